//! The server's creation and request options, read as a browser reads them (WebAuthn Level 2
//! §5.4 PublicKeyCredentialCreationOptions, §5.5 PublicKeyCredentialRequestOptions): the
//! challenge at least 16 bytes, the RP id checked against the page's origin, only `public-key`
//! credentials, the levels defaulted as the spec defaults them.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::rp_id::{check_rp_id, default_rp_id};
use super::{bad_reply, base64url};
use crate::aa::fido2::{CreationOptions, RequestOptions};
use crate::client::ClientError;
use crate::webauthn::PUBLIC_KEY;

/// The challenge (base64url again, without padding, as the client data carries it) and the RP
/// id of options answered to `call`, both checked for a page of `origin`.
fn challenge_and_rp_id(
    challenge: &str,
    rp_id: Option<&String>,
    origin: &str,
    call: &str,
) -> Result<(String, String), ClientError> {
    let challenge = base64url(challenge, call, "challenge")?;
    if challenge.len() < 16 {
        return Err(bad_reply(call, "challenge: shorter than 16 bytes"));
    }
    let rp_id = rp_id.cloned().unwrap_or_else(|| default_rp_id(origin));
    check_rp_id(&rp_id, origin)?;
    Ok((URL_SAFE_NO_PAD.encode(challenge), rp_id))
}

/// A registration, as the browser prepares it from the creation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The challenge, base64url without padding, as the client data carries it.
    pub challenge: String,
    /// The RP id.
    pub rp_id: String,
    /// The RP's name.
    pub rp_name: String,
    /// The user handle.
    pub user_id: Vec<u8>,
    /// The user name.
    pub user_name: String,
    /// The name shown.
    pub display_name: String,
    /// COSE algorithms, most preferred first.
    pub algorithms: Vec<i64>,
    /// Credential ids the token must not register again.
    pub exclude: Vec<Vec<u8>>,
    /// `discouraged`, `preferred` or `required`.
    pub resident_key: String,
    /// `discouraged`, `preferred` or `required`.
    pub user_verification: String,
}

impl Creation {
    /// Reads `options` (the answer to `call`) for a page of `origin`, checking its RP id.
    pub fn from_options(
        options: &CreationOptions,
        origin: &str,
        call: &str,
    ) -> Result<Self, ClientError> {
        let (challenge, rp_id) =
            challenge_and_rp_id(&options.challenge, options.rp.id.as_ref(), origin, call)?;
        let user_id = base64url(&options.user.id, call, "user.id")?;
        if user_id.is_empty() || user_id.len() > 64 {
            return Err(bad_reply(call, "user.id: not 1 to 64 bytes"));
        }
        let algorithms: Vec<i64> = options
            .pub_key_cred_params
            .iter()
            .filter(|p| p.kind == PUBLIC_KEY)
            .map(|p| p.alg)
            .collect();
        if algorithms.is_empty() {
            return Err(bad_reply(call, "pubKeyCredParams: no public-key algorithm"));
        }
        let exclude = options
            .exclude_credentials
            .iter()
            .enumerate()
            .map(|(i, c)| base64url(&c.id, call, &format!("excludeCredentials[{i}].id")))
            .collect::<Result<_, _>>()?;
        let selection = options.authenticator_selection.clone().unwrap_or_default();
        let resident_key = match (selection.resident_key, selection.require_resident_key) {
            (Some(level), _) => level,
            (None, Some(true)) => "required".into(),
            (None, _) => "discouraged".into(),
        };
        Ok(Self {
            challenge,
            rp_id,
            rp_name: options.rp.name.clone(),
            user_id,
            user_name: options.user.name.clone(),
            display_name: options.user.display_name.clone(),
            algorithms,
            exclude,
            resident_key,
            user_verification: selection
                .user_verification
                .unwrap_or_else(|| "preferred".into()),
        })
    }
}

/// An authentication, as the browser prepares it from the request options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The challenge, base64url without padding, as the client data carries it.
    pub challenge: String,
    /// The RP id.
    pub rp_id: String,
    /// The credentials offered; empty: a discoverable one.
    pub allow: Vec<Vec<u8>>,
    /// `discouraged`, `preferred` or `required`.
    pub user_verification: String,
}

impl Request {
    /// Reads `options` (the answer to `call`) for a page of `origin`, checking its RP id.
    pub fn from_options(
        options: &RequestOptions,
        origin: &str,
        call: &str,
    ) -> Result<Self, ClientError> {
        let (challenge, rp_id) =
            challenge_and_rp_id(&options.challenge, options.rp_id.as_ref(), origin, call)?;
        let allow = options
            .allow_credentials
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == PUBLIC_KEY)
            .map(|(i, c)| base64url(&c.id, call, &format!("allowCredentials[{i}].id")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            challenge,
            rp_id,
            allow,
            user_verification: options
                .user_verification
                .clone()
                .unwrap_or_else(|| "preferred".into()),
        })
    }
}
