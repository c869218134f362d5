//! `vu2f ctl`: the automation API of a running `vu2f serve --control` from the shell
//! ([`crate::automation`]): the store's Unix socket and token file by default, like `vu2f
//! touch`, or `--url` and `--token-file`. Authenticators and their switches here, credentials
//! and faults in [`credentials`].
mod credentials;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::Global;
use crate::automation::authenticators::Description;
use crate::automation::client::{Client, Target};

#[derive(Debug, Args)]
pub(super) struct CtlArgs {
    /// The API, as serve printed it: http://HOST:PORT or unix:PATH [default: the Unix socket of
    /// the store's `vu2f serve --control`]
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// The file with the bearer token [default: the one serve wrote for the store]
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        matches!(self, Self::On)
    }
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Add an authenticator: a uhid device with serve --uhid, over UDP with --udp. Prints its id.
    Add(AddArgs),
    /// Remove an authenticator: its devices go, and an ephemeral one's token with them.
    Remove {
        /// The authenticator's id.
        id: String,
    },
    /// List the served authenticators, with their devices and switches.
    List,
    /// Built-in user verification answers yes (on) or no (off).
    Uv {
        /// The authenticator's id.
        id: String,
        /// on or off.
        state: Switch,
    },
    /// The user consents to every presence test (on: presence auto) or to none (off: deny).
    Consenting {
        /// The authenticator's id.
        id: String,
        /// on or off.
        state: Switch,
    },
    /// Set the presence policy: auto, deny, delay:MS or touch.
    Presence {
        /// The authenticator's id.
        id: String,
        /// The policy.
        policy: String,
    },
    /// Press the authenticator's button.
    Press {
        /// The authenticator's id.
        id: String,
    },
    /// Unplug the authenticator and plug it in again; returns once it is back.
    Replug {
        /// The authenticator's id.
        id: String,
    },
    /// Put a credential in, with a private key of yours: hosts sign with it without a
    /// registration. Prints its id.
    AddCredential(credentials::AddCredentialArgs),
    /// List the authenticator's credentials, with their sign counts.
    Credentials {
        /// The authenticator's id.
        id: String,
    },
    /// Remove one credential, or all of them.
    RemoveCredential(credentials::RemoveCredentialArgs),
    /// Arm faults for the next operation (each spoils one, then disarms); prints what is armed.
    Faults(credentials::FaultsArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Its name, and id [default: virtual-N]
    #[arg(long)]
    name: Option<String>,
    /// What it speaks: ctap1/u2f, ctap2 or ctap2_1 (both the CTAP 2.1 engine).
    #[arg(long, default_value = "ctap2")]
    protocol: String,
    /// It makes discoverable credentials (rk).
    #[arg(long)]
    resident_key: bool,
    /// It has built-in user verification.
    #[arg(long)]
    uv: bool,
    /// Its built-in user verification verifies (with --uv; off: it refuses).
    #[arg(long, value_name = "on|off", default_value = "off", requires = "uv")]
    verified: Switch,
    /// The user consents to presence tests (off: presence denied).
    #[arg(long, value_name = "on|off", default_value = "on")]
    consenting: Switch,
    /// Keep it: a token of the store (made when missing) instead of an ephemeral one.
    #[arg(long)]
    keep: bool,
    /// Also serve it over UDP: on any free port, or on ADDR.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "any")]
    udp: Option<String>,
}

pub(super) fn run(global: &Global, args: CtlArgs) -> anyhow::Result<()> {
    let client = client(global, &args)?;
    let path = |id: &str, action: &str| format!("/webauthn/authenticator/{id}{action}");
    match args.command {
        CtlCommand::Add(add) => {
            let id = client.call("POST", "/webauthn/authenticator", Some(&add_body(&add)))?;
            let id = id.as_str().unwrap_or_default().to_owned();
            if global.json {
                let shown = client.call("GET", &path(&id, ""), None)?;
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!("{id}");
            }
        }
        CtlCommand::Remove { id } => {
            client.call("DELETE", &path(&id, ""), None)?;
        }
        CtlCommand::List => {
            let list = client.call("GET", "/webauthn/authenticators", None)?;
            if global.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let list: Vec<Description> = serde_json::from_value(list)?;
                for one in &list {
                    println!("{}", line(one));
                }
            }
        }
        CtlCommand::Uv { id, state } => {
            let body = json!({"isUserVerified": state.on()});
            client.call("POST", &path(&id, "/uv"), Some(&body))?;
        }
        CtlCommand::Consenting { id, state } => {
            let body = json!({"isUserConsenting": state.on()});
            client.call("POST", &path(&id, "/consenting"), Some(&body))?;
        }
        CtlCommand::Presence { id, policy } => {
            let body = json!({ "policy": policy });
            client.call("POST", &path(&id, "/presence"), Some(&body))?;
        }
        CtlCommand::Press { id } => {
            client.call("POST", &path(&id, "/press"), Some(&json!({})))?;
        }
        CtlCommand::Replug { id } => {
            client.call("POST", &path(&id, "/replug"), Some(&json!({})))?;
        }
        CtlCommand::AddCredential(add) => credentials::add(&client, global.json, add)?,
        CtlCommand::Credentials { id } => credentials::list(&client, global.json, &id)?,
        CtlCommand::RemoveCredential(remove) => credentials::remove(&client, remove)?,
        CtlCommand::Faults(faults) => credentials::faults(&client, global.json, faults)?,
    }
    Ok(())
}

/// The client of `--url` or of the store's socket, with the token of `--token-file` or of the
/// store's file.
fn client(global: &Global, args: &CtlArgs) -> anyhow::Result<Client> {
    let stored = || -> anyhow::Result<(PathBuf, PathBuf)> {
        let dir = global.store_dir()?;
        crate::automation::server::paths(&dir)
            .map_err(|e| anyhow::anyhow!("the automation API of store {}: {e}", dir.display()))
    };
    let target = match &args.url {
        Some(url) => Target::parse(url)?,
        None => Target::Unix(stored()?.0),
    };
    let token_file = match &args.token_file {
        Some(file) => file.clone(),
        None => stored()?.1,
    };
    Client::new(target, &token_file)
}

/// The add request's body.
fn add_body(add: &AddArgs) -> Value {
    let mut body = json!({
        "protocol": add.protocol,
        "transport": "usb",
        "hasResidentKey": add.resident_key,
        "hasUserVerification": add.uv,
        "isUserVerified": add.verified.on(),
        "isUserConsenting": add.consenting.on(),
        "ephemeral": !add.keep,
    });
    if let Some(name) = &add.name {
        body["name"] = json!(name);
    }
    match add.udp.as_deref() {
        Some("any") => body["udp"] = json!(true),
        Some(addr) => body["udp"] = json!(addr),
        None => {}
    }
    body
}

/// One authenticator of the list, on one line.
fn line(one: &Description) -> String {
    let mut line = format!("{} {}", one.authenticator_id, one.protocol.name());
    if one.ephemeral {
        line.push_str(" ephemeral");
    }
    if let Some(hidraw) = &one.hidraw {
        line.push_str(&format!(" {}", hidraw.display()));
    }
    if let Some(udp) = one.udp {
        line.push_str(&format!(" udp {udp}"));
    }
    line.push_str(&format!(
        " rk={} presence={} uv={}",
        one.has_resident_key,
        one.presence,
        one.uv.as_deref().unwrap_or("none")
    ));
    line
}
