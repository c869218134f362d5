//! Authenticator data (WebAuthn Level 2 section 6.1; CTAP 2.1 section 6.1, step 18, and section
//! 6.2, step 13; CTAP2.md section 4).
//!
//! ```text
//!  +-------------+-------+-----------+---------------------------------------------+------------+
//!  | rpIdHash    | flags | signCount | attested credential data (AT set)           | extensions |
//!  | 32 bytes    | 1     | 4, BE     | AAGUID 16 ‖ credIdLen 2, BE ‖ credId ‖ COSE  | (ED set)   |
//!  +-------------+-------+-----------+---------------------------------------------+------------+
//!  flags: 0x01 UP (user present), 0x04 UV (user verified), 0x40 AT, 0x80 ED
//! ```
//! What is signed is the authenticator data followed by the client data hash.
use super::cbor::{self, Value};

/// Flag: the user was present (touched the token).
pub const USER_PRESENT: u8 = 0x01;
/// Flag: the user was verified.
pub const USER_VERIFIED: u8 = 0x04;
/// Flag: attested credential data follows the counter.
pub const ATTESTED: u8 = 0x40;
/// Flag: an extension map ends the authenticator data.
pub const EXTENSION_DATA: u8 = 0x80;

/// The credential a makeCredential attests: its AAGUID, id and public key.
pub struct AttestedCredential<'a> {
    /// The token's AAGUID.
    pub aaguid: &'a [u8; 16],
    /// The credential id.
    pub id: &'a [u8],
    /// The credential's public key, a COSE_Key.
    pub public_key: &'a Value,
}

/// Length of authenticator data that carries no attested credential and no extensions.
pub const PLAIN_LEN: usize = 37;

/// The authenticator data of an assertion without extensions: rpIdHash, flags, counter.
pub fn plain(rp_id_hash: &[u8; 32], flags: u8, counter: u32) -> [u8; PLAIN_LEN] {
    let mut data = [0u8; PLAIN_LEN];
    data[..32].copy_from_slice(rp_id_hash);
    data[32] = flags;
    data[33..].copy_from_slice(&counter.to_be_bytes());
    data
}

/// The authenticator data of a new credential (the AT flag set), with room after it for the
/// clientDataHash that is signed with it.
pub fn attested(
    rp_id_hash: &[u8; 32],
    flags: u8,
    counter: u32,
    credential: &AttestedCredential<'_>,
) -> Vec<u8> {
    let mut data = Vec::with_capacity(PLAIN_LEN + 18 + credential.id.len() + 77 + 32);
    data.extend_from_slice(&plain(rp_id_hash, flags | ATTESTED, counter));
    data.extend_from_slice(credential.aaguid);
    // Credential ids are at most a few hundred bytes (KEY_HANDLE_LEN): the cast cannot cut.
    data.extend_from_slice(&(credential.id.len() as u16).to_be_bytes());
    data.extend_from_slice(credential.id);
    data.extend_from_slice(&cbor::encode(credential.public_key));
    data
}

/// Appends the extension outputs `extensions` (a CBOR map) to `data` and sets the ED flag.
pub fn extend(data: &mut Vec<u8>, extensions: Value) {
    data[32] |= EXTENSION_DATA;
    cbor::encode_into(&extensions, data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_s_data_is_hash_flags_and_counter() {
        let data = plain(&[7; 32], USER_PRESENT, 0x0102_0304);
        assert_eq!(data.len(), 37);
        assert_eq!(data[..32], [7; 32]);
        assert_eq!(data[32], USER_PRESENT);
        assert_eq!(data[33..], [1, 2, 3, 4]);
    }

    #[test]
    fn an_attested_credential_follows_the_counter_with_the_at_flag() {
        let key = cbor::int_map([(1, Value::Integer(1.into()))]);
        let credential = AttestedCredential {
            aaguid: &[9; 16],
            id: &[5; 3],
            public_key: &key,
        };
        let data = attested(&[7; 32], USER_PRESENT | USER_VERIFIED, 1, &credential);
        assert_eq!(data[32], USER_PRESENT | USER_VERIFIED | ATTESTED);
        assert_eq!(data[37..53], [9; 16]);
        assert_eq!(data[53..55], [0, 3]);
        assert_eq!(data[55..58], [5; 3]);
        assert_eq!(data[58..], [0xA1, 0x01, 0x01]);
    }
}
