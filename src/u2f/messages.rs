//! The host side of U2F messages: building requests, parsing responses and verifying them, as a
//! relying party does (FIDO U2F raw message formats v1.2, sections 4.3 and 5.4; PROTOCOLS.md
//! section 4). Used by the client, the emulator, `vu2f probe` and the tests.
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::apdu::{encode_extended, Instruction};
use super::authenticator::Control;

/// What is wrong with a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The response is shorter than its fixed fields.
    #[error("response too short: {0}")]
    TooShort(&'static str),
    /// A byte that must have a fixed value has another.
    #[error("unexpected {field}: {value:#04x}")]
    Unexpected {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u8,
    },
    /// The token answered with an error status word.
    #[error("token answered status {0:04X}")]
    Status(u16),
    /// The attestation certificate could not be parsed.
    #[error("attestation certificate: {0}")]
    Certificate(String),
    /// A public key is not a valid uncompressed P-256 point.
    #[error("public key is not an uncompressed P-256 point")]
    PublicKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
}

/// `typ` of the client data of a registration.
pub const TYP_REGISTER: &str = "navigator.id.finishEnrollment";
/// `typ` of the client data of an authentication.
pub const TYP_SIGN: &str = "navigator.id.getAssertion";
/// The U2F protocol version of the JS API's requests and responses.
pub const U2F_V2: &str = "U2F_V2";

/// The client data of U2F (PROTOCOLS.md 2.4), serialized in this field order.
#[derive(Debug, Serialize)]
pub struct ClientData<'a> {
    /// `navigator.id.getAssertion` or `navigator.id.finishEnrollment`.
    pub typ: &'a str,
    /// The server's challenge, verbatim.
    pub challenge: &'a str,
    /// The facet the request comes from.
    pub origin: &'a str,
}

impl ClientData<'_> {
    /// The exact bytes that are hashed and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `SHA-256(appId)`: the application parameter.
pub fn app_param(app_id: &str) -> [u8; 32] {
    Sha256::digest(app_id.as_bytes()).into()
}

/// `SHA-256(clientData)`: the challenge parameter, over the exact bytes.
pub fn challenge_param(client_data: &[u8]) -> [u8; 32] {
    Sha256::digest(client_data).into()
}

/// A VERSION command.
pub fn version_request() -> Vec<u8> {
    encode_extended(Instruction::Version as u8, 0, 0, &[])
}

/// A REGISTER command.
pub fn register_request(challenge: &[u8; 32], app: &[u8; 32]) -> Vec<u8> {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(challenge);
    data[32..].copy_from_slice(app);
    encode_extended(Instruction::Register as u8, 0x03, 0, &data)
}

/// An AUTHENTICATE command.
pub fn authenticate_request(
    control: Control,
    challenge: &[u8; 32],
    app: &[u8; 32],
    key_handle: &[u8],
) -> Vec<u8> {
    let mut data = Vec::with_capacity(65 + key_handle.len());
    data.extend_from_slice(challenge);
    data.extend_from_slice(app);
    data.push(u8::try_from(key_handle.len()).unwrap_or(u8::MAX));
    data.extend_from_slice(key_handle);
    encode_extended(Instruction::Authenticate as u8, control as u8, 0, &data)
}

/// Splits `data ‖ SW1 SW2`; an SW other than `9000` is an error.
pub fn split_status(response: &[u8]) -> Result<&[u8], MessageError> {
    let [data @ .., sw1, sw2] = response else {
        return Err(MessageError::TooShort("no status word"));
    };
    match u16::from_be_bytes([*sw1, *sw2]) {
        0x9000 => Ok(data),
        other => Err(MessageError::Status(other)),
    }
}

/// The status word of a response, if it has one.
pub fn status_of(response: &[u8]) -> Option<u16> {
    let [.., sw1, sw2] = response else {
        return None;
    };
    Some(u16::from_be_bytes([*sw1, *sw2]))
}

/// Length of the DER element at the start of `bytes` (tag, length, contents).
fn der_element_len(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = match first {
        0..=0x7f => (usize::from(first), 2),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let len = rest
                .get(..n)?
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, 2 + n)
        }
        _ => return None,
    };
    let total = header + len;
    (total <= bytes.len()).then_some(total)
}

fn verify_p256(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), MessageError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(message, signature)
        .map_err(|_| MessageError::Signature)
}

/// A parsed registration response (the data before the status word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    /// The credential's public key, uncompressed P-256.
    pub public_key: [u8; 65],
    /// The key handle.
    pub key_handle: Vec<u8>,
    /// The attestation certificate, DER.
    pub attestation_certificate: Vec<u8>,
    /// The attestation signature, DER.
    pub signature: Vec<u8>,
}

impl TryFrom<&[u8]> for RegistrationResponse {
    type Error = MessageError;
    fn try_from(bytes: &[u8]) -> Result<Self, MessageError> {
        let (&reserved, rest) = bytes
            .split_first()
            .ok_or(MessageError::TooShort("reserved byte"))?;
        if reserved != 0x05 {
            return Err(MessageError::Unexpected {
                field: "reserved byte",
                value: reserved,
            });
        }
        let public_key: [u8; 65] = rest
            .get(..65)
            .and_then(|k| k.try_into().ok())
            .ok_or(MessageError::TooShort("public key"))?;
        if public_key[0] != 0x04 {
            return Err(MessageError::PublicKey);
        }
        let rest = &rest[65..];
        let (&handle_len, rest) = rest
            .split_first()
            .ok_or(MessageError::TooShort("key handle length"))?;
        let key_handle = rest
            .get(..usize::from(handle_len))
            .ok_or(MessageError::TooShort("key handle"))?
            .to_vec();
        let rest = &rest[key_handle.len()..];
        let cert_len = der_element_len(rest)
            .ok_or_else(|| MessageError::Certificate("not a DER SEQUENCE".into()))?;
        let signature = rest[cert_len..].to_vec();
        if signature.is_empty() {
            return Err(MessageError::TooShort("signature"));
        }
        Ok(Self {
            public_key,
            key_handle,
            attestation_certificate: rest[..cert_len].to_vec(),
            signature,
        })
    }
}

impl RegistrationResponse {
    /// Verifies the attestation signature with the certificate's key (PROTOCOLS.md section 4,
    /// registration steps 2 to 4).
    pub fn verify(&self, app: &[u8; 32], challenge: &[u8; 32]) -> Result<(), MessageError> {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.attestation_certificate)
            .map_err(|e| MessageError::Certificate(e.to_string()))?;
        let cert_key = cert.public_key().subject_public_key.data.as_ref();
        let mut signed = Vec::with_capacity(1 + 64 + self.key_handle.len() + 65);
        signed.push(0x00);
        signed.extend_from_slice(app);
        signed.extend_from_slice(challenge);
        signed.extend_from_slice(&self.key_handle);
        signed.extend_from_slice(&self.public_key);
        verify_p256(cert_key, &signed, &self.signature)
    }
}

/// A parsed authentication response (the data before the status word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationResponse {
    /// The flags byte (bit 0: user present).
    pub flags: u8,
    /// The signature counter.
    pub counter: u32,
    /// The signature, DER.
    pub signature: Vec<u8>,
}

impl TryFrom<&[u8]> for AuthenticationResponse {
    type Error = MessageError;
    fn try_from(bytes: &[u8]) -> Result<Self, MessageError> {
        let [flags, c0, c1, c2, c3, signature @ ..] = bytes else {
            return Err(MessageError::TooShort("flags and counter"));
        };
        if signature.is_empty() {
            return Err(MessageError::TooShort("signature"));
        }
        Ok(Self {
            flags: *flags,
            counter: u32::from_be_bytes([*c0, *c1, *c2, *c3]),
            signature: signature.to_vec(),
        })
    }
}

impl AuthenticationResponse {
    /// Verifies the signature with the credential's public key (PROTOCOLS.md section 4,
    /// authentication step 4).
    pub fn verify(
        &self,
        app: &[u8; 32],
        challenge: &[u8; 32],
        public_key: &[u8],
    ) -> Result<(), MessageError> {
        let mut signed = [0u8; 69];
        signed[..32].copy_from_slice(app);
        signed[32] = self.flags;
        signed[33..37].copy_from_slice(&self.counter.to_be_bytes());
        signed[37..].copy_from_slice(challenge);
        verify_p256(public_key, &signed, &self.signature)
    }

    /// The exact bytes of the response (the U2F JS API's `signatureData`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.signature.len());
        out.push(self.flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The example of FIDO U2F raw message formats v1.2, section 8.1 (registration).
    #[test]
    fn spec_registration_example_verifies() {
        let app = unhex("f0e6a6a97042a4f1f1c87f5f7d44315b2d852c2df5c7991cc66241bf7072d1c4");
        let challenge = unhex("4142d21c00d94ffb9d504ada8f99b721f4b191ae4e37ca0140f696b6983cfacb");
        let response = unhex(concat!(
            "0504b174bc49c7ca254b70d2e5c207cee9cf174820ebd77ea3c65508c26da51b657c1cc6b952f8621697936482da0a6d3d3826a59095daf6cd7c03e2e60385d2f6d9", // 05 ‖ public key
            "402a552dfdb7477ed65fd84133f86196010b2215b57da75d315b7b9e8fe2e3925a6019551bab61d16591659cbaf00b4950f7abfe6660e2e006f76868b772d70c25", // L ‖ key handle
            "3082013c3081e4a003020102020a47901280001155957352300a06082a8648ce3d0403023017311530130603550403130c476e756262792050696c6f74301e170d3132303831343138323933325a170d3133303831343138323933325a3031312f302d0603550403132650696c6f74476e756262792d302e342e312d34373930313238303030313135353935373335323059301306072a8648ce3d020106082a8648ce3d030107034200048d617e65c9508e64bcc5673ac82a6799da3c1446682c258c463fffdf58dfd2fa3e6c378b53d795c4a4dffb4199edd7862f23abaf0203b4b8911ba0569994e101300a06082a8648ce3d0403020347003044022060cdb6061e9c22262d1aac1d96d8c70829b2366531dda268832cb836bcd30dfa0220631b1459f09e6330055722c8d89b7f48883b9089b88d60d1d9795902b30410df", // attestation certificate
            "304502201471899bcc3987e62e8202c9b39c33c19033f7340352dba80fcab017db9230e402210082677d673d891933ade6f617e5dbde2e247e70423fd5ad7804a6d3d3961ef871", // signature
        ));
        let parsed = RegistrationResponse::try_from(&response[..]).unwrap();
        assert_eq!(parsed.key_handle.len(), 64);
        assert_eq!(parsed.attestation_certificate.len(), 0x13c + 4);
        parsed
            .verify(
                &app.clone().try_into().unwrap(),
                &challenge.clone().try_into().unwrap(),
            )
            .unwrap();

        let mut wrong_app: [u8; 32] = app.try_into().unwrap();
        wrong_app[0] ^= 1;
        assert_eq!(
            parsed.verify(&wrong_app, &challenge.try_into().unwrap()),
            Err(MessageError::Signature)
        );
    }

    /// The example of FIDO U2F raw message formats v1.2, section 8.2 (authentication).
    #[test]
    fn spec_authentication_example_verifies() {
        let app: [u8; 32] =
            unhex("4b0be934baebb5d12d26011b69227fa5e86df94e7d94aa2949a89f2d493992ca")
                .try_into()
                .unwrap();
        let challenge: [u8; 32] =
            unhex("ccd6ee2e47baef244d49a222db496bad0ef5b6f93aa7cc4d30c4821b3b9dbc57")
                .try_into()
                .unwrap();
        let public_key = unhex("04d368f1b665bade3c33a20f1e429c7750d5033660c019119d29aa4ba7abc04aa7c80a46bbe11ca8cb5674d74f31f8a903f6bad105fb6ab74aefef4db8b0025e1d");
        let response = unhex("0100000001304402204b5f0cd17534cedd8c34ee09570ef542a353df4436030ce43d406de870b847780220267bb998fac9b7266eb60e7cb0b5eabdfd5ba9614f53c7b22272ec10047a923f");
        let parsed = AuthenticationResponse::try_from(&response[..]).unwrap();
        assert_eq!((parsed.flags, parsed.counter), (1, 1));
        parsed.verify(&app, &challenge, &public_key).unwrap();
        assert_eq!(parsed.to_bytes(), response);
        let mut tampered = parsed.clone();
        tampered.counter = 2;
        assert_eq!(
            tampered.verify(&app, &challenge, &public_key),
            Err(MessageError::Signature)
        );
    }

    #[test]
    fn short_and_odd_responses_are_errors_not_panics() {
        assert!(RegistrationResponse::try_from(&[][..]).is_err());
        assert!(RegistrationResponse::try_from(&[0x05; 70][..]).is_err());
        assert!(AuthenticationResponse::try_from(&[1, 0, 0, 0, 1][..]).is_err());
        assert_eq!(
            split_status(&[0x69, 0x85]),
            Err(MessageError::Status(0x6985))
        );
        assert_eq!(split_status(&[1, 0x90, 0x00]), Ok(&[1u8][..]));
        assert!(split_status(&[0x90]).is_err());
    }
}
