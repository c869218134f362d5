//! Status words (FIDO U2F raw message formats v1.2, section 3.3; ISO 7816-4). The one place that
//! decides which error becomes which SW.
use keystore::UnwrapError;

/// The status words a U2F token answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum StatusWord {
    /// The command completed.
    NoError = 0x9000,
    /// Test of user presence required (also check-only's answer for a valid handle).
    ConditionsNotSatisfied = 0x6985,
    /// Bad key handle: forged, foreign, or bound to another application.
    WrongData = 0x6A80,
    /// SW_COMMAND_NOT_ALLOWED: U2F is off while CTAP2's alwaysUv is on (CTAP 2.1 §6.11.2).
    CommandNotAllowed = 0x6986,
    /// The request's length is wrong.
    WrongLength = 0x6700,
    /// Unknown instruction.
    InsNotSupported = 0x6D00,
    /// Class byte is not 0.
    ClaNotSupported = 0x6E00,
    /// An internal failure (storage, randomness) with no more precise diagnosis.
    NoPreciseDiagnosis = 0x6F00,
}

impl StatusWord {
    /// The two bytes SW1 SW2.
    pub fn to_bytes(self) -> [u8; 2] {
        (self as u16).to_be_bytes()
    }
}

impl From<UnwrapError> for StatusWord {
    fn from(error: UnwrapError) -> Self {
        match error {
            UnwrapError::WrongLength => Self::WrongLength,
            UnwrapError::NotOurs => Self::WrongData,
        }
    }
}

impl From<keystore::StoreError> for StatusWord {
    fn from(_: keystore::StoreError) -> Self {
        Self::NoPreciseDiagnosis
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} ({:?})", *self as u16, self)
    }
}
