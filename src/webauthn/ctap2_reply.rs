//! A CTAP2 reply as a client (the companion, `vu2f probe`) reads it (CTAP 2.1 §8.2, §6):
//!
//! ```text
//!  status (1) ‖ CBOR map {uint key: value}      status 0x00 = CTAP2_OK; else no map follows
//! ```
use crate::ctap2::cbor::{Arena, Parameters};

/// The name of a CTAP2 status byte (CTAP 2.1 §8.2), for people.
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "OK",
        0x01 => "INVALID_COMMAND",
        0x02 => "INVALID_PARAMETER",
        0x03 => "INVALID_LENGTH",
        0x11 => "CBOR_UNEXPECTED_TYPE",
        0x12 => "INVALID_CBOR",
        0x14 => "MISSING_PARAMETER",
        0x15 => "LIMIT_EXCEEDED",
        0x19 => "CREDENTIAL_EXCLUDED",
        0x22 => "INVALID_CREDENTIAL",
        0x26 => "UNSUPPORTED_ALGORITHM",
        0x27 => "OPERATION_DENIED",
        0x28 => "KEY_STORE_FULL",
        0x2B => "UNSUPPORTED_OPTION",
        0x2C => "INVALID_OPTION",
        0x2D => "KEEPALIVE_CANCEL",
        0x2E => "NO_CREDENTIALS",
        0x2F => "USER_ACTION_TIMEOUT",
        0x30 => "NOT_ALLOWED",
        0x31 => "PIN_INVALID",
        0x32 => "PIN_BLOCKED",
        0x33 => "PIN_AUTH_INVALID",
        0x34 => "PIN_AUTH_BLOCKED",
        0x35 => "PIN_NOT_SET",
        0x36 => "PUAT_REQUIRED",
        0x37 => "PIN_POLICY_VIOLATION",
        0x39 => "REQUEST_TOO_LARGE",
        0x3B => "UP_REQUIRED",
        0x3C => "UV_BLOCKED",
        0x3F => "UV_INVALID",
        0x40 => "UNAUTHORIZED_PERMISSION",
        0x7F => "OTHER",
        _ => "an error",
    }
}

/// Why a reply has no map to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not even a status byte.
    Empty,
    /// A status other than 0.
    Status(u8),
    /// Status 0, but not one CBOR map after it.
    NotAMap(String),
}

/// A successful reply's map: status 0, then one CBOR map.
pub fn reply_map<'a>(reply: &'a [u8], arena: &'a Arena) -> Result<Parameters<'a>, ReplyError> {
    let (&status, body) = reply.split_first().ok_or(ReplyError::Empty)?;
    if status != 0 {
        return Err(ReplyError::Status(status));
    }
    Parameters::decode(body, arena).map_err(|e| ReplyError::NotAMap(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_a_status_then_one_map() {
        let arena = Arena::new();
        assert_eq!(reply_map(&[], &arena).unwrap_err(), ReplyError::Empty);
        assert_eq!(
            reply_map(&[0x2E], &arena).unwrap_err(),
            ReplyError::Status(0x2E)
        );
        assert_eq!(status_name(0x2E), "NO_CREDENTIALS");
        assert!(matches!(
            reply_map(&[0x00, 0x01], &arena).unwrap_err(),
            ReplyError::NotAMap(_)
        ));
        let params = reply_map(&[0x00, 0xA1, 0x01, 0x02], &arena).unwrap();
        assert!(params.get(0x01).is_some());
    }
}
