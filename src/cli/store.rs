//! `vu2f store ...`: lock the store's secrets with a passphrase, change it, or remove it; and how
//! every command gets the passphrase of a locked store (issue 6, "Secrets at rest").
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use keystore::{Passphrase, StoreError};
use serde::Serialize;

use super::{print, Global};

/// The environment variables that may hold the store's passphrase, and a new one for `lock`.
const PASSPHRASE_ENV: &str = "VU2F_PASSPHRASE";
const NEW_PASSPHRASE_ENV: &str = "VU2F_NEW_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Lock the store's secrets with a passphrase, or change it (Argon2id, then AES-256-GCM).
    Lock {
        /// Read the new passphrase from this file [default: $VU2F_NEW_PASSPHRASE, else asked
        /// twice on the terminal]
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove the passphrase: secrets are stored unsealed again, in files only you can read.
    Unlock,
}

#[derive(Serialize)]
struct Locked {
    store: PathBuf,
    locked: bool,
}

/// Makes this process non-dumpable (`PR_SET_DUMPABLE`, as ssh-agent does) before it takes a
/// passphrase: no core dump carries the store's secrets, and the user's other processes can no
/// longer attach to it or read its `/proc/PID/environ` and `/proc/PID/mem`, which the kernel then
/// gives to root. `$VU2F_PASSPHRASE` stays readable only in the moments before this call.
fn keep_secrets_from_other_processes() -> keystore::error::Result<()> {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(|e| {
        StoreError::NoPassphrase(format!(
            "could not first keep it from other processes (PR_SET_DUMPABLE: {e})"
        ))
    })
}

fn read_file(path: &Path) -> anyhow::Result<Passphrase> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("passphrase file {}: {e}", path.display()))?;
    Ok(Passphrase::from_line(bytes))
}

fn prompt(question: &str) -> std::io::Result<Passphrase> {
    Ok(Passphrase::from_line(
        rpassword::prompt_password(question)?.into_bytes(),
    ))
}

/// The passphrase of the locked store in `dir`: `--passphrase-file`, else `$VU2F_PASSPHRASE`,
/// else asked on the terminal.
pub(super) fn passphrase(global: &Global, dir: &Path) -> keystore::error::Result<Passphrase> {
    keep_secrets_from_other_processes()?;
    if let Some(file) = &global.passphrase_file {
        return read_file(file).map_err(|e| StoreError::NoPassphrase(e.to_string()));
    }
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        return Ok(Passphrase::from_line(value.into_encoded_bytes()));
    }
    if std::io::stdin().is_terminal() {
        return prompt(&format!("Passphrase of store {}: ", dir.display()))
            .map_err(|e| StoreError::NoPassphrase(format!("terminal: {e}")));
    }
    Err(StoreError::Locked(dir.to_owned()))
}

/// A new secret (`what`: "passphrase", "PIN"): from `file` (`flag`), else `$env`, else asked
/// twice on the terminal.
pub(super) fn new_secret(
    file: Option<&Path>,
    env: &str,
    what: &str,
    flag: &str,
) -> anyhow::Result<Passphrase> {
    keep_secrets_from_other_processes()?;
    if let Some(file) = file {
        return read_file(file);
    }
    if let Some(value) = std::env::var_os(env) {
        return Ok(Passphrase::from_line(value.into_encoded_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no new {what}: give it with {flag} FILE or in {env}");
    }
    let first = prompt(&format!("New {what}: "))?;
    let again = prompt(&format!("New {what} again: "))?;
    if !first.same_as(&again) {
        anyhow::bail!("the two {what}s differ; nothing changed");
    }
    Ok(first)
}

pub(super) fn run(global: &Global, command: StoreCommand) -> anyhow::Result<()> {
    let store = global.open_store()?;
    let dir = store.dir().to_owned();
    let store = match command {
        StoreCommand::Lock {
            new_passphrase_file,
        } => {
            let passphrase = new_secret(
                new_passphrase_file.as_deref(),
                NEW_PASSPHRASE_ENV,
                "passphrase",
                "--new-passphrase-file",
            )?;
            if passphrase.is_empty() {
                anyhow::bail!("the new passphrase is empty; nothing changed");
            }
            store.set_passphrase(Some(&passphrase))?
        }
        StoreCommand::Unlock => store.set_passphrase(None)?,
    };
    let locked = Locked {
        store: dir,
        locked: store.is_locked(),
    };
    print(global, &locked, |l| {
        if l.locked {
            format!(
                "store {} is locked with the passphrase\n",
                l.store.display()
            )
        } else {
            format!("store {} has no passphrase\n", l.store.display())
        }
    })
}
