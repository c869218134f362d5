//! `vu2f token ...`: manage the tokens of a store.
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use keystore::{TokenInfo, TokenOptions};

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
    },
    /// List the tokens.
    List,
    /// Show one token.
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

fn describe(tokens: &[TokenInfo]) -> String {
    let mut text = String::new();
    for t in tokens {
        let cert = if t.own_certificate {
            "own certificate"
        } else {
            "batch certificate"
        };
        let _ = writeln!(
            text,
            "{}\t{cert}\tcounter ceiling {}",
            t.name, t.counter_ceiling
        );
    }
    text
}

pub(super) fn run(global: &Global, command: TokenCommand) -> anyhow::Result<()> {
    let store = global.open_store()?;
    match command {
        TokenCommand::Create {
            name,
            count,
            own_certificate,
        } => {
            let names: Vec<String> = match count {
                None => vec![name],
                Some(0) => anyhow::bail!("--count must be at least 1"),
                Some(n) => (1..=n).map(|i| format!("{name}-{i:05}")).collect(),
            };
            let created = store.create_tokens(&names, TokenOptions { own_certificate })?;
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
        TokenCommand::List => print(global, &store.list()?, |t| describe(t)),
        TokenCommand::Show { name } => print(global, &store.info(&name)?, |t| {
            describe(std::slice::from_ref(t))
        }),
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
