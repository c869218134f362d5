//! `vu2f ctl` for an authenticator's credentials and faults: the shell's side of
//! `crate::automation::credentials` and `crate::automation::faults`.
//!
//! ```text
//!  vu2f ctl add-credential ID --rp-id RP --key KEY.pem [--resident --user-handle B64URL]
//!       [--id B64URL] [--sign-count N] [--large-blob FILE]     → the credential's id (base64url)
//!  vu2f ctl credentials ID                                     → one line each, or --json
//!  vu2f ctl remove-credential ID (CREDENTIAL_ID | --all)
//!  vu2f ctl faults ID [--corrupt-signature] [--counter N] [--delay-ms MS] [--busy]
//!                                                              → what is armed now
//! ```
//! A key is a PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey`
//! writes it) or DER; the server says whether it is a P-256 or an Ed25519 one.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Args;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

use crate::automation::client::Client;

/// The length of a credential id the CLI makes when none is given.
const MADE_ID_LEN: usize = 16;

#[derive(Debug, Args)]
pub(super) struct AddCredentialArgs {
    /// The authenticator's id.
    id: String,
    /// The relying party the credential is for.
    #[arg(long, value_name = "RP")]
    rp_id: String,
    /// Its private key: a PKCS#8 file, PEM or DER (P-256 or Ed25519).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Its id, base64url [default: 16 random bytes]
    #[arg(long = "id", value_name = "B64URL")]
    credential_id: Option<String>,
    /// Discoverable: found by the RP id alone (needs --user-handle).
    #[arg(long, requires = "user_handle")]
    resident: bool,
    /// The user handle, base64url.
    #[arg(long, value_name = "B64URL")]
    user_handle: Option<String>,
    /// The user's name (a resident credential's).
    #[arg(long, value_name = "NAME")]
    user_name: Option<String>,
    /// Its signature counter: the next signature counts above it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    sign_count: u32,
    /// A file whose bytes become the credential's large blob.
    #[arg(long, value_name = "FILE")]
    large_blob: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct RemoveCredentialArgs {
    /// The authenticator's id.
    id: String,
    /// The credential's id, base64url, as `ctl credentials` lists it.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    credential_id: Option<String>,
    /// Remove every credential of the authenticator.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub(super) struct FaultsArgs {
    /// The authenticator's id.
    id: String,
    /// The next signature does not verify.
    #[arg(long)]
    corrupt_signature: bool,
    /// The next signature reports this counter value.
    #[arg(long, value_name = "N")]
    counter: Option<u32>,
    /// The next CTAPHID answer comes this many milliseconds late.
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u64>,
    /// The next CTAPHID request is answered CHANNEL_BUSY.
    #[arg(long)]
    busy: bool,
}

fn path(id: &str, action: &str) -> String {
    format!("/webauthn/authenticator/{id}{action}")
}

/// Adds the credential; prints its id.
pub(super) fn add(client: &Client, json_out: bool, args: AddCredentialArgs) -> anyhow::Result<()> {
    let credential_id = match args.credential_id {
        Some(id) => id,
        None => {
            let mut id = [0u8; MADE_ID_LEN];
            SystemRandom::new()
                .fill(&mut id)
                .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
            URL_SAFE_NO_PAD.encode(id)
        }
    };
    let mut body = json!({
        "credentialId": credential_id,
        "isResidentCredential": args.resident,
        "rpId": args.rp_id,
        "privateKey": URL_SAFE_NO_PAD.encode(pkcs8_of(&args.key)?),
        "signCount": args.sign_count,
    });
    if let Some(handle) = &args.user_handle {
        body["userHandle"] = json!(handle);
    }
    if let Some(name) = &args.user_name {
        body["userName"] = json!(name);
    }
    if let Some(file) = &args.large_blob {
        let blob = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        body["largeBlob"] = json!(URL_SAFE_NO_PAD.encode(blob));
    }
    client.call("POST", &path(&args.id, "/credential"), Some(&body))?;
    if json_out {
        println!("{}", json!({ "credentialId": credential_id }));
    } else {
        println!("{credential_id}");
    }
    Ok(())
}

/// Lists the authenticator's credentials.
pub(super) fn list(client: &Client, json_out: bool, id: &str) -> anyhow::Result<()> {
    let credentials = client.call("GET", &path(id, "/credentials"), None)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&credentials)?);
        return Ok(());
    }
    for credential in credentials.as_array().into_iter().flatten() {
        println!("{}", credential_line(credential));
    }
    Ok(())
}

/// Removes one credential, or all.
pub(super) fn remove(client: &Client, args: RemoveCredentialArgs) -> anyhow::Result<()> {
    match args.credential_id {
        Some(credential) if !args.all => {
            client.call(
                "DELETE",
                &path(&args.id, &format!("/credentials/{credential}")),
                None,
            )?;
        }
        _ => {
            client.call("DELETE", &path(&args.id, "/credentials"), None)?;
        }
    }
    Ok(())
}

/// Arms the faults named (none: arms nothing); prints what is armed then.
pub(super) fn faults(client: &Client, json_out: bool, args: FaultsArgs) -> anyhow::Result<()> {
    let mut body = json!({
        "corruptSignature": args.corrupt_signature,
        "busy": args.busy,
    });
    if let Some(counter) = args.counter {
        body["counter"] = json!(counter);
    }
    if let Some(delay) = args.delay_ms {
        body["delayMs"] = json!(delay);
    }
    let armed = client.call("POST", &path(&args.id, "/faults"), Some(&body))?;
    if json_out {
        println!("{armed}");
    } else {
        println!("{}", faults_line(&armed));
    }
    Ok(())
}

/// The DER of the PKCS#8 key in `file`, which holds it as PEM or as DER.
fn pkcs8_of(file: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    let pem = pem::parse(&bytes).with_context(|| format!("{}: not PEM", file.display()))?;
    match pem.tag() {
        "PRIVATE KEY" => Ok(pem.into_contents()),
        tag => anyhow::bail!(
            "{}: a {tag}, not a PKCS#8 PRIVATE KEY (convert it with `openssl pkcs8 -topk8 \
             -nocrypt`)",
            file.display()
        ),
    }
}

/// One credential on one line: its id, RP, kind, counter and user handle.
fn credential_line(credential: &Value) -> String {
    let text = |field: &str| credential[field].as_str().unwrap_or("-").to_owned();
    let kind = if credential["isResidentCredential"] == json!(true) {
        "resident"
    } else {
        "non-resident"
    };
    let mut line = format!(
        "{} {} {kind} signCount={}",
        text("credentialId"),
        text("rpId"),
        credential["signCount"]
    );
    if credential.get("userHandle").is_some() {
        line.push_str(&format!(" user={}", text("userHandle")));
    }
    if credential.get("largeBlob").is_some() {
        line.push_str(" largeBlob");
    }
    line
}

/// The armed faults on one line, `-` for what is not armed.
fn faults_line(armed: &Value) -> String {
    let or_dash = |field: &str| match &armed[field] {
        Value::Null => "-".to_owned(),
        value => value.to_string(),
    };
    format!(
        "corruptSignature={} counter={} delayMs={} busy={}",
        or_dash("corruptSignature"),
        or_dash("counter"),
        or_dash("delayMs"),
        or_dash("busy")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_key_gives_its_der_and_another_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        let pkcs8 = dir.path().join("key.pem");
        std::fs::write(
            &pkcs8,
            pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone())),
        )
        .unwrap();
        assert_eq!(pkcs8_of(&pkcs8).unwrap(), der);
        let raw = dir.path().join("key.der");
        std::fs::write(&raw, &der).unwrap();
        assert_eq!(pkcs8_of(&raw).unwrap(), der);
        let sec1 = dir.path().join("sec1.pem");
        std::fs::write(&sec1, pem::encode(&pem::Pem::new("EC PRIVATE KEY", der))).unwrap();
        let refused = pkcs8_of(&sec1).unwrap_err().to_string();
        assert!(
            refused.contains("EC PRIVATE KEY, not a PKCS#8"),
            "{refused}"
        );
    }

    #[test]
    fn lines_show_what_is_there_and_dash_what_is_not() {
        let credential = json!({"credentialId": "abc", "rpId": "x.example",
            "isResidentCredential": true, "signCount": 7, "userHandle": "dXNlcg"});
        assert_eq!(
            credential_line(&credential),
            "abc x.example resident signCount=7 user=dXNlcg"
        );
        let armed = json!({"corruptSignature": true, "busy": false, "delayMs": 50});
        assert_eq!(
            faults_line(&armed),
            "corruptSignature=true counter=- delayMs=50 busy=false"
        );
    }
}
