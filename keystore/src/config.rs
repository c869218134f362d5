//! A token's authenticatorConfig settings (CTAP 2.1 §6.11 "authenticatorConfig": toggleAlwaysUv
//! §6.11.2, setMinPINLength §6.11.4; §6.4 getInfo's `alwaysUv`, `minPINLength`,
//! `forcePINChange`; `shared/spec/CTAP2.md` §10).
//!
//! One record per token whose settings differ from the defaults, in the sled tree `config`,
//! written whole and flushed on every change, so that an acknowledged change survives `kill -9`:
//!
//! ```text
//!  key:    token name
//!  value:  0x00 ‖ JSON {always_uv, min_pin_length, min_pin_length_rp_ids, force_pin_change}
//! ```
//!
//! Nothing here is secret (the RP IDs that may read the minimum PIN length, two flags and a
//! number), so a locked store keeps it plain too; `Store::set_passphrase` copies it as it is.
//! authenticatorReset removes the record: the defaults are back.
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// The sled tree of the records.
pub(crate) const CONFIG: &str = "config";
/// The shortest PIN a token takes until setMinPINLength raises it (CTAP 2.1 §6.4: 4 code points).
pub const DEFAULT_MIN_PIN_LENGTH: u8 = 4;
/// The most RP IDs setMinPINLength's minPinLengthRPIDs may list (getInfo's
/// maxRPIDsForSetMinPINLength).
pub const MAX_MIN_PIN_LENGTH_RP_IDS: usize = 8;

const PLAIN: u8 = 0x00;

/// What authenticatorConfig changed on a token; `Default` is a token fresh from the factory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenConfig {
    /// alwaysUv: every makeCredential and getAssertion needs user verification, and U2F is off.
    pub always_uv: bool,
    /// The shortest PIN setPIN and changePIN accept, in code points; it only ever grows.
    pub min_pin_length: u8,
    /// The RP IDs the minPinLength extension tells the minimum to.
    pub min_pin_length_rp_ids: Vec<String>,
    /// The PIN must be changed before it gives a pinUvAuthToken again.
    pub force_pin_change: bool,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            always_uv: false,
            min_pin_length: DEFAULT_MIN_PIN_LENGTH,
            min_pin_length_rp_ids: Vec::new(),
            force_pin_change: false,
        }
    }
}

fn corrupt(token: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: format!("token/{token}/config"),
        detail: detail.into(),
    }
}

/// `token`'s settings as stored in `tree` (the defaults without a record).
pub(crate) fn read(tree: &sled::Tree, token: &str) -> Result<TokenConfig> {
    let Some(value) = tree.get(token.as_bytes())? else {
        return Ok(TokenConfig::default());
    };
    match value.split_first() {
        Some((&PLAIN, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(token, e.to_string()))
        }
        _ => Err(corrupt(token, "unknown record format")),
    }
}

/// One token's settings: in memory, written through to the store.
pub struct ConfigState {
    token: String,
    tree: sled::Tree,
    config: TokenConfig,
}

impl std::fmt::Debug for ConfigState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigState")
            .field("token", &self.token)
            .field("config", &self.config)
            .finish()
    }
}

impl ConfigState {
    /// Reads `token`'s settings.
    pub(crate) fn load(tree: sled::Tree, token: &str) -> Result<Self> {
        let config = read(&tree, token)?;
        Ok(Self {
            token: token.to_owned(),
            tree,
            config,
        })
    }

    /// The settings now.
    pub fn get(&self) -> &TokenConfig {
        &self.config
    }

    /// Replaces the settings, durably (flushed) before it returns; on an error the settings in
    /// memory stay as they were.
    pub fn set(&mut self, config: TokenConfig) -> Result<()> {
        if config == TokenConfig::default() {
            self.tree.remove(self.token.as_bytes())?;
        } else {
            let json =
                serde_json::to_vec(&config).map_err(|e| StoreError::Crypto(e.to_string()))?;
            let mut value = Vec::with_capacity(1 + json.len());
            value.push(PLAIN);
            value.extend_from_slice(&json);
            self.tree.insert(self.token.as_bytes(), value)?;
        }
        self.tree.flush()?;
        self.config = config;
        Ok(())
    }

    /// The defaults, in memory: the record was removed (authenticatorReset).
    pub(crate) fn forget(&mut self) {
        self.config = TokenConfig::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree(CONFIG).unwrap()
    }

    #[test]
    fn settings_survive_a_reload_and_the_defaults_leave_no_record() {
        let tree = temporary_tree();
        let mut state = ConfigState::load(tree.clone(), "t").unwrap();
        assert_eq!(state.get(), &TokenConfig::default());
        let changed = TokenConfig {
            always_uv: true,
            min_pin_length: 6,
            min_pin_length_rp_ids: vec!["example.com".into()],
            force_pin_change: true,
        };
        state.set(changed.clone()).unwrap();
        assert_eq!(
            ConfigState::load(tree.clone(), "t").unwrap().get(),
            &changed
        );
        assert_eq!(
            read(&tree, "u").unwrap(),
            TokenConfig::default(),
            "per token"
        );
        state.set(TokenConfig::default()).unwrap();
        assert!(tree.is_empty());
        tree.insert("t", b"\x01{}".to_vec()).unwrap();
        assert!(read(&tree, "t").is_err());
    }
}
