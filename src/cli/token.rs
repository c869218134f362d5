//! `vu2f token ...`: manage the tokens of a store.
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use keystore::{AttestationType, Profile, TokenInfo, TokenOptions, DEFAULT_DISCOVERABLE_LIMIT};

use super::{print, Global};

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
         pin             {}\n",
        t.name,
        t.profile,
        attestation(t),
        t.aaguid,
        t.counter_ceiling,
        t.discoverable,
        t.discoverable_limit,
        pin_state(t)
    )
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
