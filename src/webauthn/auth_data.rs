//! Authenticator data (WebAuthn Level 2 §6.1), split:
//!
//! ```text
//!  rpIdHash (32) ‖ flags (1) ‖ signCount (4, BE)
//!  [ ‖ AAGUID (16) ‖ credIdLen (2, BE) ‖ credId ‖ COSE key ]   AT (0x40)   §6.5.1
//!  [ ‖ extensions (CBOR map) ]                                  ED (0x80)
//! ```
use super::{FLAG_AT, FLAG_ED};
use crate::ctap2::cbor::{Arena, Item};

/// Authenticator data, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData<'a> {
    /// SHA-256 of the RP id.
    pub rp_id_hash: [u8; 32],
    /// UP, UV, AT, ED.
    pub flags: u8,
    /// The signature counter.
    pub counter: u32,
    /// The new credential, when the AT flag is set.
    pub attested: Option<AttestedCredential<'a>>,
}

/// Attested credential data: AAGUID ‖ id length ‖ id ‖ COSE key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential<'a> {
    /// The authenticator's model.
    pub aaguid: [u8; 16],
    /// The credential id.
    pub id: &'a [u8],
    /// The credential's public key, as COSE_Key bytes.
    pub public_key: &'a [u8],
}

impl<'a> AuthData<'a> {
    /// Splits authenticator data; an error names what is wrong.
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        if data.len() < 37 {
            return Err(format!(
                "authData: {} bytes, shorter than rpIdHash ‖ flags ‖ signCount",
                data.len()
            ));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&data[..32]);
        let flags = data[32];
        let counter = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
        let mut rest = &data[37..];
        let attested = if flags & FLAG_AT != 0 {
            if rest.len() < 18 {
                return Err(
                    "authData: AT is set but the attested credential data is cut short".into(),
                );
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&rest[..16]);
            let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if rest.len() < id_len {
                return Err(format!(
                    "authData: credentialId: {id_len} bytes announced, {} there",
                    rest.len()
                ));
            }
            let (id, after) = rest.split_at(id_len);
            let (_, length) = Item::decode_prefix(after, &Arena::new())
                .map_err(|e| format!("authData: credentialPublicKey: not CBOR: {e}"))?;
            let (public_key, after) = after.split_at(length);
            rest = after;
            Some(AttestedCredential {
                aaguid,
                id,
                public_key,
            })
        } else {
            None
        };
        if flags & FLAG_ED != 0 {
            let (_, length) = Item::decode_prefix(rest, &Arena::new())
                .map_err(|e| format!("authData: extensions: not CBOR: {e}"))?;
            rest = &rest[length..];
        }
        if !rest.is_empty() {
            return Err(format!("authData: {} bytes left over", rest.len()));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            counter,
            attested,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webauthn::FLAG_UP;

    #[test]
    fn short_or_cut_authenticator_data_is_an_error_not_a_panic() {
        for length in 0..120 {
            let mut data = vec![0u8; length];
            if length > 32 {
                data[32] = FLAG_AT | FLAG_ED;
            }
            let _ = AuthData::parse(&data);
        }
        let mut data = vec![0u8; 37];
        data[32] = FLAG_UP;
        data[36] = 7;
        let parsed = AuthData::parse(&data).unwrap();
        assert_eq!((parsed.flags, parsed.counter), (FLAG_UP, 7));
        data.push(0);
        assert!(AuthData::parse(&data).unwrap_err().contains("left over"));
    }
}
