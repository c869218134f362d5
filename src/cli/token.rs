//! `vu2f token ...`: manage the tokens of a store.
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use keystore::{
    AttestationType, DiscoverableCredential, Profile, TokenConfig, TokenInfo, TokenOptions,
    DEFAULT_DISCOVERABLE_LIMIT,
};

use super::store::new_secret;
use super::{print, Global};
use crate::ctap2::client_pin::check_new_pin;
use crate::ctap2::get_info::{self, Facts};

/// The environment variable that may hold a new PIN for `token pin`.
const PIN_ENV: &str = "VU2F_PIN";

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token, or N tokens NAME-00001 ... with --count.
    Create {
        /// The token's name (with --count: the prefix).
        name: String,
        /// Create this many tokens, named NAME-00001, NAME-00002, ...
        #[arg(long)]
        count: Option<u32>,
        /// Give each token its own attestation certificate instead of the store's batch certificate.
        #[arg(long)]
        own_certificate: bool,
        /// What the token presents itself as: fido2 (CTAP2 and U2F) or u2f (U2F only).
        #[arg(long, value_name = "PROFILE", default_value_t = Profile::default())]
        profile: Profile,
        /// How many discoverable credentials (passkeys) each token may keep.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_DISCOVERABLE_LIMIT)]
        discoverable_limit: u32,
        /// How CTAP2 credentials are attested: batch (packed, signed by the store's FIDO2 batch
        /// certificate, which chains to `token export-ca`) or self (packed, signed by the new
        /// credential's own key, no certificate).
        #[arg(long, value_name = "TYPE", default_value_t = AttestationType::default())]
        attestation: AttestationType,
        /// Keep a record of every credential the token makes, discoverable or not, with its
        /// sign count, for the automation API's Get Credentials (`serve --control`).
        #[arg(long)]
        track_credentials: bool,
        /// Let the automation API read the private keys of the token's credentials back: for
        /// test tokens only.
        #[arg(long)]
        exportable: bool,
    },
    /// Change a token's settings.
    Set {
        /// The token's name.
        name: String,
        /// What the token presents itself as: fido2 (CTAP2 and U2F) or u2f (U2F only). A running
        /// `vu2f serve` must be restarted to see it.
        #[arg(long, value_name = "PROFILE")]
        profile: Option<Profile>,
    },
    /// List the tokens.
    List,
    /// Show one token: its profile, certificate, AAGUID, counter and discoverable credentials.
    Show {
        /// The token's name.
        name: String,
    },
    /// Set or change a token's clientPIN, in the store (not while `vu2f serve` holds it).
    Pin {
        /// The token's name.
        name: String,
        /// Read the new PIN from this file [default: $VU2F_PIN, else asked twice on the
        /// terminal]. At least the token's minimum PIN length (4 unless raised) in characters,
        /// at most 63 bytes of UTF-8.
        #[arg(long, value_name = "FILE")]
        pin_file: Option<PathBuf>,
    },
    /// List a token's discoverable credentials (passkeys): RP, user, credential id, credProtect.
    Creds {
        /// The token's name.
        name: String,
    },
    /// Reset a token to its factory state (as CTAP2's authenticatorReset): a new master key, so
    /// that every credential and U2F registration it made stops working; no discoverable
    /// credential, no PIN, default settings. The signature counter goes on.
    Reset {
        /// The token's name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Remove a token: every credential it registered stops working.
    Rm {
        /// The token's name.
        name: String,
    },
    /// Print the store's attestation CA certificate (PEM), for a server that should trust it.
    ExportCa {
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// How the token attests: its U2F certificate, and for CTAP2 self attestation when chosen.
fn attestation(t: &TokenInfo) -> String {
    let certificate = if t.own_certificate {
        "own certificate"
    } else {
        "batch certificate"
    };
    match t.attestation {
        AttestationType::Batch => certificate.to_owned(),
        AttestationType::SelfAttestation => format!("{certificate} (U2F), self (CTAP2)"),
    }
}

/// One line per token, for `token list`.
fn describe(tokens: &[TokenInfo]) -> String {
    let mut text = String::new();
    for t in tokens {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\tcounter ceiling {}\tdiscoverable {}/{}",
            t.name,
            t.profile,
            attestation(t),
            t.counter_ceiling,
            t.discoverable,
            t.discoverable_limit
        );
    }
    text
}

/// One token in detail, for `token show` and `token set`.
fn describe_one(t: &TokenInfo) -> String {
    format!(
        "name            {}\n\
         profile         {}\n\
         attestation     {}\n\
         aaguid          {}\n\
         counter ceiling {}\n\
         discoverable    {} of {}\n\
         pin             {}\n\
         built-in uv     {}\n\
         settings        {}\n\
         claims          {}\n",
        t.name,
        t.profile,
        attestation(t),
        t.aaguid,
        t.counter_ceiling,
        t.discoverable,
        t.discoverable_limit,
        pin_state(t),
        uv_state(t),
        settings(&t.config),
        claims(t)
    )
}

/// What authenticatorConfig set.
fn settings(config: &TokenConfig) -> String {
    let mut text = format!(
        "alwaysUv {}, minPINLength {}",
        if config.always_uv { "on" } else { "off" },
        config.min_pin_length
    );
    if !config.min_pin_length_rp_ids.is_empty() {
        let _ = write!(
            text,
            " (told to {})",
            config.min_pin_length_rp_ids.join(", ")
        );
    }
    if config.force_pin_change {
        text.push_str(", forcePINChange");
    }
    text
}

/// The options getInfo claims for a `fido2` token (`uv` too when served with `--uv`).
fn claims(t: &TokenInfo) -> String {
    if t.profile != Profile::Fido2 {
        return "U2F only".to_owned();
    }
    let facts = Facts {
        aaguid: [0; 16],
        built_in_uv: false,
        resident_keys: true,
        pin_set: t.pin_set,
        remaining_discoverable: 0,
        settings: t.config.clone(),
    };
    get_info::options(&facts)
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per discoverable credential, for `token creds`.
fn describe_creds(creds: &[DiscoverableCredential]) -> String {
    let mut text = String::new();
    for c in creds {
        let _ = writeln!(
            text,
            "{}\tuser {} ({})\tuser id {}\tcredential {}\tcredProtect {}",
            c.rp_id,
            c.user_name.as_deref().unwrap_or("-"),
            c.user_display_name.as_deref().unwrap_or("-"),
            hex::encode(&c.user_id),
            hex::encode(&c.credential_id),
            c.cred_protect
        );
    }
    if creds.is_empty() {
        text.push_str("no discoverable credentials\n");
    }
    text
}

/// Asks on the terminal whether to reset `name`; without a terminal, `--yes` is needed.
fn confirm_reset(name: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("resetting token {name} erases it: confirm with --yes");
    }
    print!(
        "Reset token {name}? Every credential and U2F registration it made stops working, its PIN \
         and passkeys are erased. Type the token's name to confirm: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim_end() != name {
        anyhow::bail!("not confirmed; token {name} is unchanged");
    }
    Ok(())
}

/// Whether the token has a PIN and how many attempts it has left (never the PIN).
fn pin_state(t: &TokenInfo) -> String {
    match (t.pin_set, t.pin_retries) {
        (false, _) => "not set".to_owned(),
        (true, 0) => "set, blocked (no attempt left)".to_owned(),
        (true, retries) => format!(
            "set, {retries} of {} attempts left",
            keystore::MAX_PIN_RETRIES
        ),
    }
}

/// How many built-in user verification attempts the token has left (`serve --uv`).
fn uv_state(t: &TokenInfo) -> String {
    if t.profile == keystore::Profile::U2f {
        return "none (a U2F key)".to_owned();
    }
    match t.uv_retries {
        0 => "blocked (no attempt left: a right PIN or a reset gives them back)".to_owned(),
        retries => format!("{retries} of {} attempts left", keystore::MAX_UV_RETRIES),
    }
}

pub(super) fn run(global: &Global, command: TokenCommand) -> anyhow::Result<()> {
    let store = global.open_store()?;
    match command {
        TokenCommand::Create {
            name,
            count,
            own_certificate,
            profile,
            discoverable_limit,
            attestation,
            track_credentials,
            exportable,
        } => {
            if profile == Profile::U2f && attestation != AttestationType::Batch {
                anyhow::bail!(
                    "--attestation {attestation} is for CTAP2, which a u2f token does not speak: \
                     use --profile fido2"
                );
            }
            let names: Vec<String> = match count {
                None => vec![name],
                Some(0) => anyhow::bail!("--count must be at least 1"),
                Some(n) => (1..=n).map(|i| format!("{name}-{i:05}")).collect(),
            };
            let options = TokenOptions {
                own_certificate,
                profile,
                discoverable_limit,
                attestation,
                tracks_credentials: track_credentials,
                exportable,
            };
            let created = store.create_tokens(&names, options)?;
            print(global, &created, |c| {
                if c.len() == 1 {
                    format!("created token {}\n", c[0].name)
                } else {
                    format!(
                        "created {} tokens {} .. {}\n",
                        c.len(),
                        c[0].name,
                        c[c.len() - 1].name
                    )
                }
            })
        }
        TokenCommand::Set { name, profile } => {
            let Some(profile) = profile else {
                anyhow::bail!("nothing to set: give --profile fido2|u2f");
            };
            store.set_profile(&name, profile)?;
            print(global, &store.info(&name)?, describe_one)
        }
        TokenCommand::List => print(global, &store.list()?, |t| describe(t)),
        TokenCommand::Show { name } => print(global, &store.info(&name)?, describe_one),
        TokenCommand::Pin { name, pin_file } => {
            let mut keys = store.load(&name)?;
            let pin = new_secret(pin_file.as_deref(), PIN_ENV, "PIN", "--pin-file")?;
            let mut config = keys.config.get().clone();
            let (hash, code_points) = check_new_pin(pin.as_bytes(), config.min_pin_length.into())
                .map_err(|_| {
                anyhow::anyhow!(
                    "the PIN must be at least {} characters and at most 63 bytes of UTF-8",
                    config.min_pin_length
                )
            })?;
            if config.force_pin_change && keys.pin.is_current(&hash) {
                anyhow::bail!("token {name} must get a new PIN, not the same one again");
            }
            keys.pin.set(&hash, code_points)?;
            if config.force_pin_change {
                config.force_pin_change = false;
                keys.config.set(config)?;
            }
            drop(keys);
            print(global, &store.info(&name)?, describe_one)
        }
        TokenCommand::Creds { name } => {
            let keys = store.load(&name)?;
            let creds: Vec<DiscoverableCredential> = keys.discoverable.iter().cloned().collect();
            print(global, &creds, |c| describe_creds(c))
        }
        TokenCommand::Reset { name, yes } => {
            store.info(&name)?;
            if !yes {
                confirm_reset(&name)?;
            }
            store.reset_token(&name)?;
            print(global, &store.info(&name)?, |t| {
                format!("reset token {}\n{}", t.name, describe_one(t))
            })
        }
        TokenCommand::Rm { name } => {
            store.remove(&name)?;
            print(global, &serde_json::json!({ "removed": name }), |_| {
                format!("removed token {name}\n")
            })
        }
        TokenCommand::ExportCa { out } => {
            let pem = store.attestation().ca_certificate_pem();
            match out {
                Some(path) => std::fs::write(&path, pem)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display())),
                None => {
                    print!("{pem}");
                    Ok(())
                }
            }
        }
    }
}
