//! What the emulator knows before its first request: users and their passwords, chains, events,
//! the U2F App ID and facets, lifetimes. A JSON file (`vu2f aa-sim --config FILE`), or the default
//! below; `vu2f aa-sim --print-config` shows it as a starting point.
use serde::{Deserialize, Serialize};

/// The emulator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The U2F App ID [default: the emulator's own origin, `http(s)://host:port`].
    pub app_id: Option<String>,
    /// Further facets (origins) accepted in client data besides the App ID's origin.
    pub facets: Vec<String>,
    /// Lifetime of a U2F challenge, in milliseconds.
    pub challenge_ttl_ms: u64,
    /// A delay before every answer, in milliseconds: a slow server on purpose, for load tests.
    pub response_delay_ms: u64,
    /// Logon processes open at once (and, apart, enroll processes); more get 503 until some end
    /// or expire (10 minutes idle).
    pub max_open_processes: usize,
    /// Largest request body, in bytes; more gets 413.
    pub max_body_bytes: usize,
    /// Lifetime of a login session, in seconds.
    pub login_session_ttl_secs: u64,
    /// Lifetime of an endpoint session, in seconds.
    pub endpoint_session_ttl_secs: u64,
    /// The repository that prefixes user names (`LOCAL\alice`).
    pub repo: String,
    /// The tenant.
    pub tenant_name: String,
    /// Users.
    pub users: Vec<UserConfig>,
    /// Chains: ordered method lists.
    pub chains: Vec<ChainConfig>,
    /// Events, each with the chains that may be used for it.
    pub events: Vec<EventConfig>,
    /// The `FIDO2:1` method's policy.
    pub fido2: Fido2Config,
}

/// The `FIDO2:1` method's policy. AA's own settings for it were not found (PROTOCOLS.md 1.9,
/// `[UNK]`): these are the emulator's, the choices a WebAuthn relying party makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fido2Config {
    /// The RP id [default: the host of the emulator's URL]. Client data origins are the App ID's,
    /// the facets and the emulator's own, as for U2F.
    pub rp_id: Option<String>,
    /// The RP name shown by authenticators.
    pub rp_name: String,
    /// COSE algorithms asked for, most preferred first (-7 ES256, -8 EdDSA).
    pub algorithms: Vec<i64>,
    /// `discouraged`, `preferred` or `required`; with `required` an assertion or registration
    /// without the UV flag is refused.
    pub user_verification: Requirement,
    /// `discouraged`, `preferred` or `required`: whether a discoverable credential is asked for.
    pub resident_key: Requirement,
    /// Whether logon options list the user's credentials; without them the client finds a
    /// discoverable one, and the user handle must then be the user's.
    pub allow_credentials: bool,
    /// The attestation conveyance asked for (`none`, `indirect`, `direct`, `enterprise`).
    pub attestation: Conveyance,
    /// Which attestations are taken: `any` (`none`, self, or a certificate whose signature
    /// verifies) or `trusted` (only a certificate chain up to one of `trusted_cas`).
    pub attestation_policy: AttestationPolicy,
    /// PEM files of the attestation CAs trusted (`vu2f token export-ca` writes one).
    pub trusted_cas: Vec<std::path::PathBuf>,
}

/// How much the relying party wants user verification or a discoverable credential
/// (WebAuthn Level 2 §5.8.6 UserVerificationRequirement, §5.4.6 ResidentKeyRequirement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// `discouraged`.
    Discouraged,
    /// `preferred`.
    Preferred,
    /// `required`.
    Required,
}

impl Requirement {
    /// The WebAuthn string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discouraged => "discouraged",
            Self::Preferred => "preferred",
            Self::Required => "required",
        }
    }
}

/// The attestation conveyance asked for (WebAuthn Level 2 §5.4.7
/// AttestationConveyancePreference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conveyance {
    /// `none`.
    None,
    /// `indirect`.
    Indirect,
    /// `direct`.
    Direct,
    /// `enterprise`.
    Enterprise,
}

impl Conveyance {
    /// The WebAuthn string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Indirect => "indirect",
            Self::Direct => "direct",
            Self::Enterprise => "enterprise",
        }
    }
}

/// Which attestations an enrollment takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationPolicy {
    /// `none`, self attestation, or a certificate whose signature verifies, trusted or not.
    Any,
    /// A certificate chain up to a trusted CA only.
    Trusted,
}

impl Default for Fido2Config {
    fn default() -> Self {
        Self {
            rp_id: None,
            rp_name: "vu2f aa-sim".into(),
            algorithms: vec![crate::webauthn::ES256, crate::webauthn::EDDSA],
            user_verification: Requirement::Discouraged,
            resident_key: Requirement::Discouraged,
            allow_credentials: true,
            attestation: Conveyance::Direct,
            attestation_policy: AttestationPolicy::Any,
            trusted_cas: Vec::new(),
        }
    }
}

impl Fido2Config {
    /// Whether registrations and assertions must carry the UV flag.
    pub fn requires_uv(&self) -> bool {
        self.user_verification == Requirement::Required
    }
}

/// A user of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Name, without the repository prefix.
    pub name: String,
    /// Password for `PASSWORD:1`.
    pub password: String,
    /// Whether the user may register endpoints.
    #[serde(default)]
    pub admin: bool,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Name (`U2F only`).
    pub name: String,
    /// Method ids in order (`PASSWORD:1`, `U2F:1`).
    pub methods: Vec<String>,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    /// Name (`Search Card`).
    pub name: String,
    /// Names of its chains, in order.
    pub chains: Vec<String>,
    /// Whether a logon to this event may enroll authenticators.
    #[serde(default)]
    pub enroll: bool,
}

fn user(name: &str, password: &str, admin: bool) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: password.into(),
        admin,
    }
}

fn chain(name: &str, methods: &[&str]) -> ChainConfig {
    ChainConfig {
        name: name.into(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn event(name: &str, chains: &[&str], enroll: bool) -> EventConfig {
    EventConfig {
        name: name.into(),
        chains: chains.iter().map(|c| (*c).to_owned()).collect(),
        enroll,
    }
}

/// The default configuration's event whose only chain is `FIDO2 only`.
pub const FIDO2_EVENT: &str = "FIDO2";

impl Default for SimConfig {
    /// Users `admin`, `alice` and `bob` (password: the name followed by `-password`); the event
    /// `Authenticators Management` (password only, permits enrollment), `Search Card` (`U2F only`
    /// or `Password & U2F`), `Password and U2F`, `FIDO2` (`FIDO2 only`) and `Password and FIDO2`.
    fn default() -> Self {
        Self {
            app_id: None,
            facets: Vec::new(),
            challenge_ttl_ms: 120_000,
            response_delay_ms: 0,
            max_open_processes: 100_000,
            max_body_bytes: 64 * 1024,
            login_session_ttl_secs: 3_600,
            endpoint_session_ttl_secs: 86_400,
            repo: "LOCAL".into(),
            tenant_name: "TOP".into(),
            users: vec![
                user("admin", "admin-password", true),
                user("alice", "alice-password", false),
                user("bob", "bob-password", false),
            ],
            chains: vec![
                chain("Password only", &["PASSWORD:1"]),
                chain("U2F only", &["U2F:1"]),
                chain("Password & U2F", &["PASSWORD:1", "U2F:1"]),
                chain("FIDO2 only", &["FIDO2:1"]),
                chain("Password & FIDO2", &["PASSWORD:1", "FIDO2:1"]),
            ],
            events: vec![
                event("Authenticators Management", &["Password only"], true),
                event("Search Card", &["U2F only", "Password & U2F"], false),
                event("Password and U2F", &["Password & U2F"], false),
                event(FIDO2_EVENT, &["FIDO2 only"], false),
                event("Password and FIDO2", &["Password & FIDO2"], false),
            ],
            fido2: Fido2Config::default(),
        }
    }
}

impl SimConfig {
    /// Reads a configuration file's JSON; an error names the field that is wrong
    /// (`fido2.user_verification: unknown variant …`).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut reader = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    /// Checks that every event's chains exist and every chain has methods.
    pub fn validate(&self) -> Result<(), String> {
        for chain in &self.chains {
            if chain.methods.is_empty() {
                return Err(format!("chain {:?} has no methods", chain.name));
            }
        }
        for event in &self.events {
            for name in &event.chains {
                if !self.chains.iter().any(|c| &c.name == name) {
                    return Err(format!(
                        "event {:?} names chain {name:?}, which is not defined",
                        event.name
                    ));
                }
            }
        }
        if let Some(alg) = self
            .fido2
            .algorithms
            .iter()
            .find(|&&a| a != crate::webauthn::ES256 && a != crate::webauthn::EDDSA)
        {
            return Err(format!(
                "fido2.algorithms: {alg} is neither -7 (ES256) nor -8 (EdDSA)"
            ));
        }
        if self.fido2.algorithms.is_empty() {
            return Err("fido2.algorithms is empty".into());
        }
        if self.challenge_ttl_ms == 0 {
            return Err("challenge_ttl_ms must be positive".into());
        }
        Ok(())
    }

    /// `name` without this configuration's repository prefix (`LOCAL\alice` is `alice`);
    /// `None` for another repository's.
    pub fn bare_name<'a>(&self, name: &'a str) -> Option<&'a str> {
        match name.split_once('\\') {
            Some((repo, bare)) if repo.eq_ignore_ascii_case(&self.repo) => Some(bare),
            Some(_) => None,
            None => Some(name),
        }
    }

    /// The user called `name`, with or without the repository prefix, case-insensitively.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        let bare = self.bare_name(name)?;
        self.users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(bare))
    }

    /// The event called `name`.
    pub fn event(&self, name: &str) -> Option<&EventConfig> {
        self.events.iter().find(|e| e.name == name)
    }

    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<(usize, &ChainConfig)> {
        self.chains.iter().enumerate().find(|(_, c)| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::SimConfig;

    #[test]
    fn the_default_is_valid_and_finds_users_with_or_without_their_repository() {
        let config = SimConfig::default();
        config.validate().unwrap();
        assert_eq!(config.user("LOCAL\\Alice").unwrap().name, "alice");
        assert_eq!(config.user("alice").unwrap().name, "alice");
        assert!(config.user("OTHER\\alice").is_none());
    }

    #[test]
    fn a_fido2_level_that_is_none_of_the_words_is_refused_naming_its_field() {
        for (field, word) in [
            ("user_verification", "requird"),
            ("resident_key", "always"),
            ("attestation", "full"),
            ("attestation_policy", "some"),
        ] {
            let text = format!(r#"{{"fido2": {{"{field}": "{word}"}}}}"#);
            let refused = SimConfig::from_json(&text).unwrap_err();
            assert!(
                refused.starts_with(&format!("fido2.{field}: unknown variant")),
                "{refused}"
            );
        }
        let taken =
            SimConfig::from_json(r#"{"fido2": {"user_verification": "required"}}"#).unwrap();
        assert!(taken.fido2.requires_uv());
    }

    #[test]
    fn an_event_naming_a_missing_chain_is_refused() {
        let mut config = SimConfig::default();
        config.events[0].chains.push("Nope".into());
        assert!(config.validate().unwrap_err().contains("Nope"));
    }
}
