//! CTAP2 status codes (CTAP 2.1 section 8.2, "Status codes"): the first byte of every reply to a
//! CTAPHID_CBOR request. `0x01`–`0x0B` and `0x7F` are the CTAP1 errors that CBOR replies share with
//! the framing; failures of a CTAP2 command are a normal reply with one of these, never a
//! CTAPHID_ERROR (hosts treat that as a dead device).

/// A CTAP2 status, with its wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// CTAP2_OK.
    Ok = 0x00,
    /// CTAP1_ERR_INVALID_COMMAND: an unknown command byte.
    InvalidCommand = 0x01,
    /// CTAP1_ERR_INVALID_PARAMETER.
    InvalidParameter = 0x02,
    /// CTAP1_ERR_INVALID_LENGTH.
    InvalidLength = 0x03,
    /// CTAP1_ERR_INVALID_SEQ: a large-blob fragment not where the last one ended.
    InvalidSeq = 0x04,
    /// CTAP1_ERR_OTHER.
    Other = 0x7F,
    /// CTAP2_ERR_CBOR_UNEXPECTED_TYPE: a value of the wrong CBOR type.
    CborUnexpectedType = 0x11,
    /// CTAP2_ERR_INVALID_CBOR: not CBOR, trailing bytes, duplicate keys, too deep.
    InvalidCbor = 0x12,
    /// CTAP2_ERR_MISSING_PARAMETER: a required member is absent.
    MissingParameter = 0x14,
    /// CTAP2_ERR_LIMIT_EXCEEDED.
    LimitExceeded = 0x15,
    /// CTAP2_ERR_LARGE_BLOB_STORAGE_FULL: a large-blob array longer than the token keeps.
    LargeBlobStorageFull = 0x18,
    /// CTAP2_ERR_CREDENTIAL_EXCLUDED: a credential of the excludeList is ours.
    CredentialExcluded = 0x19,
    /// CTAP2_ERR_PROCESSING.
    Processing = 0x21,
    /// CTAP2_ERR_INVALID_CREDENTIAL.
    InvalidCredential = 0x22,
    /// CTAP2_ERR_UNSUPPORTED_ALGORITHM: none of pubKeyCredParams is supported.
    UnsupportedAlgorithm = 0x26,
    /// CTAP2_ERR_OPERATION_DENIED: the user declined, or no touch came.
    OperationDenied = 0x27,
    /// CTAP2_ERR_KEY_STORE_FULL.
    KeyStoreFull = 0x28,
    /// CTAP2_ERR_UNSUPPORTED_OPTION.
    UnsupportedOption = 0x2B,
    /// CTAP2_ERR_INVALID_OPTION.
    InvalidOption = 0x2C,
    /// CTAP2_ERR_KEEPALIVE_CANCEL: CTAPHID_CANCEL ended the operation.
    KeepaliveCancel = 0x2D,
    /// CTAP2_ERR_NO_CREDENTIALS.
    NoCredentials = 0x2E,
    /// CTAP2_ERR_USER_ACTION_TIMEOUT.
    UserActionTimeout = 0x2F,
    /// CTAP2_ERR_NOT_ALLOWED.
    NotAllowed = 0x30,
    /// CTAP2_ERR_PIN_INVALID.
    PinInvalid = 0x31,
    /// CTAP2_ERR_PIN_BLOCKED.
    PinBlocked = 0x32,
    /// CTAP2_ERR_PIN_AUTH_INVALID.
    PinAuthInvalid = 0x33,
    /// CTAP2_ERR_PIN_AUTH_BLOCKED.
    PinAuthBlocked = 0x34,
    /// CTAP2_ERR_PIN_NOT_SET.
    PinNotSet = 0x35,
    /// CTAP2_ERR_PUAT_REQUIRED (2.0: PIN_REQUIRED).
    PuatRequired = 0x36,
    /// CTAP2_ERR_PIN_POLICY_VIOLATION.
    PinPolicyViolation = 0x37,
    /// CTAP2_ERR_REQUEST_TOO_LARGE.
    RequestTooLarge = 0x39,
    /// CTAP2_ERR_UP_REQUIRED.
    UpRequired = 0x3B,
    /// CTAP2_ERR_UV_BLOCKED.
    UvBlocked = 0x3C,
    /// CTAP2_ERR_INTEGRITY_FAILURE.
    IntegrityFailure = 0x3D,
    /// CTAP2_ERR_INVALID_SUBCOMMAND.
    InvalidSubcommand = 0x3E,
    /// CTAP2_ERR_UV_INVALID.
    UvInvalid = 0x3F,
    /// CTAP2_ERR_UNAUTHORIZED_PERMISSION.
    UnauthorizedPermission = 0x40,
}

impl Status {
    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} (0x{:02X})", self.byte())
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::Status;

    /// The values of CTAP 2.1's table, spot-checked where hosts act on them.
    #[test]
    fn wire_values_are_the_specs() {
        assert_eq!(Status::InvalidCbor.byte(), 0x12);
        assert_eq!(Status::MissingParameter.byte(), 0x14);
        assert_eq!(Status::CredentialExcluded.byte(), 0x19);
        assert_eq!(Status::KeepaliveCancel.byte(), 0x2D);
        assert_eq!(Status::NoCredentials.byte(), 0x2E);
        assert_eq!(Status::PuatRequired.byte(), 0x36);
        assert_eq!(Status::Other.byte(), 0x7F);
        assert_eq!(Status::NoCredentials.to_string(), "NoCredentials (0x2E)");
    }
}
