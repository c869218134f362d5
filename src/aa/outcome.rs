//! What a logon or enrollment step answers: `status`, `reason`, `msgid` and `msg` together, so that
//! the emulator and the client's checks agree (PROTOCOLS.md 1.4).
//!
//! The documented rows carry the documentation's values, and the portal's (PROTOCOLS.md 1.9) where
//! it shows them: `PASSWORD_WRONG` (AUCORE-2007), AUCORE-1016 for an enrollment already done. AA's
//! reasons for a failed U2F check and for the U2F enrollment rounds were not found in any public
//! source (**inferred**): the emulator's are below, each naming one check of PROTOCOLS.md section
//! 4, and have no `msgid`.
use super::api::LogonStatus;

/// One row of the status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `status`.
    pub status: LogonStatus,
    /// `reason`, when the server sends one.
    pub reason: Option<&'static str>,
    /// `msgid`, when known.
    pub msgid: Option<&'static str>,
    /// `msg`.
    pub msg: &'static str,
}

const fn documented(
    status: LogonStatus,
    reason: Option<&'static str>,
    msgid: &'static str,
    msg: &'static str,
) -> Outcome {
    Outcome {
        status,
        reason,
        msgid: Some(msgid),
        msg,
    }
}

const fn failed(reason: &'static str, msg: &'static str) -> Outcome {
    Outcome {
        status: LogonStatus::Failed,
        reason: Some(reason),
        msgid: None,
        msg,
    }
}

/// After `POST /logon` and `/next` (documented).
pub const PROCESS_STARTED: Outcome = documented(
    LogonStatus::MoreData,
    Some("PROCESS_STARTED"),
    "AUCORE-1008",
    "Process has been started",
);
/// The U2F challenge is issued (documented).
pub const U2F_WAITING_AUTH_RESPONSE: Outcome = documented(
    LogonStatus::MoreData,
    Some("U2F_WAITING_AUTH_RESPONSE"),
    "AUCORE-2059",
    "Waiting for an authentication response",
);
/// A method passed and the chain goes on (documented).
pub const NEXT: Outcome = documented(
    LogonStatus::Next,
    None,
    "AUCORE-1091",
    "Welcome. Continue with the next login method",
);
/// The chain is complete (documented).
pub const OK: Outcome = documented(LogonStatus::Ok, None, "AUCORE-2001", "Welcome");

/// Enrollment: the registration challenge is issued (inferred).
pub const U2F_WAITING_REG_RESPONSE: Outcome = Outcome {
    status: LogonStatus::MoreData,
    reason: Some("U2F_WAITING_REG_RESPONSE"),
    msgid: None,
    msg: "Waiting for a registration response",
};
/// Enrollment: the registration verified; the template can be saved (inferred).
pub const ENROLLED: Outcome = Outcome {
    status: LogonStatus::Ok,
    reason: None,
    msgid: None,
    msg: "Authenticator is enrolled",
};

/// The password is wrong (the portal's values).
pub const PASSWORD_WRONG: Outcome = Outcome {
    status: LogonStatus::Failed,
    reason: Some("PASSWORD_WRONG"),
    msgid: Some("AUCORE-2007"),
    msg: "Wrong password",
};
/// A `do_enroll` after the enrollment completed (the portal's msgid; its reason was not seen).
pub const ENROLLMENT_DONE: Outcome = Outcome {
    status: LogonStatus::Failed,
    reason: Some("ENROLLMENT_DONE"),
    msgid: Some("AUCORE-1016"),
    msg: "Enrollment is already done",
};
/// A template test passed (inferred).
pub const TEST_PASSED: Outcome = Outcome {
    status: LogonStatus::Ok,
    reason: None,
    msgid: None,
    msg: "The authenticator works",
};
/// The appId of an enrollment or test is not the server's App ID or one of its facets (inferred).
pub const U2F_APPID_MISMATCH: Outcome = failed(
    "U2F_APPID_MISMATCH",
    "The App ID is not this server's App ID or one of its facets",
);
/// The user has no U2F template.
pub const U2F_NOT_ENROLLED: Outcome = failed(
    "U2F_NOT_ENROLLED",
    "The user has no U2F authenticator enrolled",
);
/// A field of the response is missing or not base64url (PROTOCOLS.md 4, parsing).
pub const U2F_MALFORMED_RESPONSE: Outcome =
    failed("U2F_MALFORMED_RESPONSE", "The U2F response is malformed");
/// The key handle was not offered to this user (PROTOCOLS.md 4, logon step 1).
pub const U2F_UNKNOWN_KEY_HANDLE: Outcome = failed(
    "U2F_UNKNOWN_KEY_HANDLE",
    "The key handle is not one of the user's authenticators",
);
/// `typ` is not the one of the operation (PROTOCOLS.md 4, step 1 / 2).
pub const U2F_WRONG_TYP: Outcome = failed("U2F_WRONG_TYP", "The client data has the wrong typ");
/// The challenge was never issued to this process (PROTOCOLS.md 4, step 2).
pub const U2F_CHALLENGE_MISMATCH: Outcome = failed(
    "U2F_CHALLENGE_MISMATCH",
    "The challenge was not issued to this process",
);
/// The challenge was already answered once: a replay (PROTOCOLS.md 4, "single use").
pub const U2F_CHALLENGE_REUSED: Outcome = failed(
    "U2F_CHALLENGE_REUSED",
    "The challenge has already been used",
);
/// The challenge is older than its lifetime (PROTOCOLS.md 4, "short expiry").
pub const U2F_CHALLENGE_EXPIRED: Outcome =
    failed("U2F_CHALLENGE_EXPIRED", "The challenge has expired");
/// `origin` is neither the appId nor one of its facets (PROTOCOLS.md 4, step 2).
pub const U2F_ORIGIN_MISMATCH: Outcome = failed(
    "U2F_ORIGIN_MISMATCH",
    "The origin does not match the App ID or its facets",
);
/// The user-presence flag is not set (PROTOCOLS.md 4, logon step 3).
pub const U2F_USER_NOT_PRESENT: Outcome =
    failed("U2F_USER_NOT_PRESENT", "The user was not present");
/// The signature does not verify (PROTOCOLS.md 4, registration 4 / logon 4).
pub const U2F_BAD_SIGNATURE: Outcome =
    failed("U2F_BAD_SIGNATURE", "The U2F signature does not verify");
/// The counter did not increase: a cloned or restored token (PROTOCOLS.md 4, logon step 5).
pub const U2F_COUNTER_NOT_INCREASED: Outcome = failed(
    "U2F_COUNTER_NOT_INCREASED",
    "The signature counter did not increase",
);
/// The registration response does not parse (PROTOCOLS.md 4, registration step 2).
pub const U2F_BAD_REGISTRATION: Outcome =
    failed("U2F_BAD_REGISTRATION", "The registration data is malformed");
/// The key handle is already enrolled (PROTOCOLS.md 4, registration step 6).
pub const U2F_ALREADY_ENROLLED: Outcome = failed(
    "U2F_ALREADY_ENROLLED",
    "This authenticator is already enrolled",
);

// FIDO2:1. AA's reasons for its FIDO2 rounds and checks were not found in any public source: the
// ones below are **the emulator's own** (inferred), one per check of WebAuthn Level 2 §7.1 and
// §7.2, with no msgid. The exchange calls answer them as `errorMessage` (`REASON: msg`), and the
// `do_logon` / `do_enroll` that follows as `FAILED` with the reason.

const fn more_data(reason: &'static str, msg: &'static str) -> Outcome {
    Outcome {
        status: LogonStatus::MoreData,
        reason: Some(reason),
        msgid: None,
        msg,
    }
}

/// Logon: the client is to run the WebAuthn exchange on the login path (inferred).
pub const FIDO2_WAITING_ASSERTION: Outcome = more_data(
    "FIDO2_WAITING_ASSERTION",
    "Waiting for a FIDO2 authentication",
);
/// Enrollment: the client is to run the WebAuthn exchange on the enroll path (inferred).
pub const FIDO2_WAITING_ATTESTATION: Outcome = more_data(
    "FIDO2_WAITING_ATTESTATION",
    "Waiting for a FIDO2 registration",
);
/// The user has no FIDO2 template.
pub const FIDO2_NOT_ENROLLED: Outcome = failed(
    "FIDO2_NOT_ENROLLED",
    "The user has no FIDO2 authenticator enrolled",
);
/// A field is missing, not base64url, not JSON or not CBOR.
pub const FIDO2_MALFORMED_RESPONSE: Outcome = failed(
    "FIDO2_MALFORMED_RESPONSE",
    "The FIDO2 response is malformed",
);
/// The client data's `type` is not the ceremony's (§7.1 step 7, §7.2 step 11).
pub const FIDO2_WRONG_TYPE: Outcome =
    failed("FIDO2_WRONG_TYPE", "The client data has the wrong type");
/// The challenge was never issued to this process (§7.1 step 8, §7.2 step 12).
pub const FIDO2_CHALLENGE_MISMATCH: Outcome = failed(
    "FIDO2_CHALLENGE_MISMATCH",
    "The challenge was not issued to this process",
);
/// The challenge was answered once already: a replay.
pub const FIDO2_CHALLENGE_REUSED: Outcome = failed(
    "FIDO2_CHALLENGE_REUSED",
    "The challenge has already been used",
);
/// The challenge is older than its lifetime.
pub const FIDO2_CHALLENGE_EXPIRED: Outcome =
    failed("FIDO2_CHALLENGE_EXPIRED", "The challenge has expired");
/// `origin` is not one of the server's (§7.1 step 9, §7.2 step 13).
pub const FIDO2_ORIGIN_MISMATCH: Outcome = failed(
    "FIDO2_ORIGIN_MISMATCH",
    "The origin is not one of the server's",
);
/// `crossOrigin` is true: the ceremony ran in a frame of another origin.
pub const FIDO2_CROSS_ORIGIN: Outcome = failed(
    "FIDO2_CROSS_ORIGIN",
    "The ceremony ran in a cross-origin frame",
);
/// The rpIdHash is not SHA-256 of the server's RP id, or `rp_id` is not it (§7.1 step 13,
/// §7.2 step 15).
pub const FIDO2_RP_ID_MISMATCH: Outcome =
    failed("FIDO2_RP_ID_MISMATCH", "The RP id is not this server's");
/// UP is not set (§7.1 step 14, §7.2 step 16).
pub const FIDO2_USER_NOT_PRESENT: Outcome =
    failed("FIDO2_USER_NOT_PRESENT", "The user was not present");
/// UV is not set and the method's policy requires it (§7.1 step 15, §7.2 step 17).
pub const FIDO2_USER_NOT_VERIFIED: Outcome = failed(
    "FIDO2_USER_NOT_VERIFIED",
    "The user was not verified and the policy requires it",
);
/// The credential's algorithm is not one the server asked for (§7.1 step 16).
pub const FIDO2_UNSUPPORTED_ALGORITHM: Outcome = failed(
    "FIDO2_UNSUPPORTED_ALGORITHM",
    "The credential's algorithm is not one the server accepts",
);
/// The attestation statement's format is not accepted (§7.1 steps 18-19).
pub const FIDO2_ATTESTATION_UNSUPPORTED: Outcome = failed(
    "FIDO2_ATTESTATION_UNSUPPORTED",
    "The attestation format is not accepted",
);
/// The attestation statement does not verify (§7.1 step 19, §8.2).
pub const FIDO2_BAD_ATTESTATION: Outcome = failed(
    "FIDO2_BAD_ATTESTATION",
    "The attestation statement does not verify",
);
/// The attestation does not chain to a CA the server trusts, and its policy requires that
/// (§7.1 steps 20-21).
pub const FIDO2_ATTESTATION_UNTRUSTED: Outcome = failed(
    "FIDO2_ATTESTATION_UNTRUSTED",
    "The attestation does not chain to a trusted CA",
);
/// The credential is enrolled already (§7.1 step 22).
pub const FIDO2_ALREADY_ENROLLED: Outcome = failed(
    "FIDO2_ALREADY_ENROLLED",
    "This credential is already enrolled",
);
/// The credential is not one of the user's (§7.2 steps 5-6).
pub const FIDO2_UNKNOWN_CREDENTIAL: Outcome = failed(
    "FIDO2_UNKNOWN_CREDENTIAL",
    "The credential is not one of the user's authenticators",
);
/// The user handle is not the user's (§7.2 step 6).
pub const FIDO2_USER_HANDLE_MISMATCH: Outcome = failed(
    "FIDO2_USER_HANDLE_MISMATCH",
    "The user handle is not this user's",
);
/// The signature does not verify (§7.2 step 20).
pub const FIDO2_BAD_SIGNATURE: Outcome =
    failed("FIDO2_BAD_SIGNATURE", "The FIDO2 signature does not verify");
/// The counter did not increase: a cloned or restored authenticator (§7.2 step 21).
pub const FIDO2_COUNTER_NOT_INCREASED: Outcome = failed(
    "FIDO2_COUNTER_NOT_INCREASED",
    "The signature counter did not increase",
);
/// The credential public key is not a valid key: an EC point off the curve, an Ed25519 key of
/// the wrong length (§7.1 step 16, the key being the one every later assertion is checked with).
pub const FIDO2_BAD_PUBLIC_KEY: Outcome = failed(
    "FIDO2_BAD_PUBLIC_KEY",
    "The credential public key is not a valid key",
);

/// A refused step: its row of the table, and what exactly was wrong where the check knows it.
/// The reply's `reason` is the row's; its `msg` (and a WebAuthn exchange's `errorMessage`) carries
/// the detail after the row's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The row.
    pub outcome: Outcome,
    /// What was wrong, for people.
    pub detail: Option<String>,
}

impl Refusal {
    /// `outcome`, with `detail`.
    pub fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            detail: Some(detail.into()),
        }
    }

    /// The row's message, then the detail if there is one.
    pub fn message(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{}: {detail}", self.outcome.msg),
            None => self.outcome.msg.to_owned(),
        }
    }

    /// The reason (`FAILED` where the row has none).
    pub fn reason(&self) -> &'static str {
        self.outcome.reason.unwrap_or("FAILED")
    }
}

impl From<Outcome> for Refusal {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            detail: None,
        }
    }
}
