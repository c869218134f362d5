//! The control socket: a Unix stream socket (mode 0600 in a 0700 directory) that a running
//! `vu2f serve` listens on, one per store. It lives in `$XDG_RUNTIME_DIR/vu2f/` (else in
//! `vu2f-UID` under the temporary directory), named after the store's path, because a store may
//! sit on a filesystem that cannot hold sockets (9p, some network mounts). One request line, one
//! answer line:
//!
//! ```text
//!  -> touch NAME          <- ok | error: MESSAGE     presses the token's button
//!  -> replug NAME         <- ok | error: MESSAGE     unplugs every device of the token and plugs
//!                                                    it in again ([`super::replug`]); ok once all
//!                                                    are back (a uhid device: its new hidraw node
//!                                                    is there)
//! ```
//! The tokens it reaches are the ones served at the moment ([`Targets`]): the automation API
//! ([`crate::automation`]) adds and removes them while the server runs.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::replug::{replug_all, Plug};
use super::uhid::HIDRAW_APPEARS;
use crate::u2f::Button;

/// How long `vu2f touch` waits for the answer.
const TOUCH_ANSWER: Duration = Duration::from_secs(5);
/// How long `vu2f replug` waits for the answer: a uhid device's new node may take
/// [`HIDRAW_APPEARS`] to show.
const REPLUG_ANSWER: Duration = HIDRAW_APPEARS.saturating_add(Duration::from_secs(5));

/// What the control socket reaches of one served token.
#[derive(Clone)]
pub struct Controlled {
    /// The button that `touch` presses.
    pub button: Arc<Button>,
    /// The devices that serve the token, which `replug` unplugs and plugs in again.
    pub plugs: Vec<Arc<dyn Plug>>,
}

/// The tokens a control socket reaches, looked up by name at each request.
pub trait Targets: Send + Sync + 'static {
    /// The button and plugs of token `name`, if it is served now.
    fn controlled(&self, name: &str) -> Option<Controlled>;
}

/// The directory of the control sockets: `$XDG_RUNTIME_DIR/vu2f`, else `vu2f-UID` in the
/// temporary directory. Made 0700 when missing; refused when another user could reach it.
pub fn runtime_dir() -> std::io::Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("vu2f"),
        None => std::env::temp_dir().join(format!("vu2f-{}", rustix::process::getuid().as_raw())),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir()
        || meta.uid() != rustix::process::getuid().as_raw()
        || meta.mode() & 0o077 != 0
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of this user (owner {}, mode {:o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(dir)
}

/// The control socket of the store in `store_dir`: one per store, named after its full path.
pub fn socket_path(store_dir: &Path) -> std::io::Result<PathBuf> {
    runtime_file(store_dir, "sock")
}

/// The file `control-HASH.EXTENSION` of the store in `store_dir`, in [`runtime_dir`]: HASH is
/// the store's, as in its control socket's name.
pub fn runtime_file(store_dir: &Path, extension: &str) -> std::io::Result<PathBuf> {
    let store = std::fs::canonicalize(store_dir)?;
    let digest = Sha256::digest(store.as_os_str().as_encoded_bytes());
    Ok(runtime_dir()?.join(format!("control-{}.{extension}", hex::encode(&digest[..8]))))
}

/// Binds the control socket (replacing a stale one) and answers requests for `tokens`.
pub fn listen(
    store_dir: &Path,
    tokens: Arc<dyn Targets>,
) -> std::io::Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let path = socket_path(store_dir)?;
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read.take(256));
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = answer(&*tokens, line.trim_end()).await;
                let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    });
    Ok((path, task))
}

/// The answer line to one request line (without its newline).
async fn answer(tokens: &dyn Targets, request: &str) -> String {
    let done = match request.split_once(' ') {
        Some(("touch", name)) => served(tokens, name).map(|token| token.button.press()),
        Some(("replug", name)) => match served(tokens, name) {
            Ok(token) => replug_all(&token.plugs).await,
            Err(e) => Err(e),
        },
        _ => Err(format!("unknown request {request:?}")),
    };
    match done {
        Ok(()) => "ok".into(),
        // One line, whatever a device said.
        Err(message) => format!("error: {}", message.replace(['\r', '\n'], " ")),
    }
}

fn served(tokens: &dyn Targets, name: &str) -> Result<Controlled, String> {
    tokens
        .controlled(name)
        .ok_or_else(|| format!("token {name:?} is not served by this process"))
}

/// Presses the button of token `name` served by the `vu2f serve` running on `store_dir`.
pub fn touch(store_dir: &Path, name: &str) -> anyhow::Result<()> {
    request(store_dir, &format!("touch {name}"), TOUCH_ANSWER)
}

/// Unplugs token `name` served by the `vu2f serve` running on `store_dir` and plugs it in
/// again; returns once every device of it is back.
pub fn replug(store_dir: &Path, name: &str) -> anyhow::Result<()> {
    request(store_dir, &format!("replug {name}"), REPLUG_ANSWER)
}

/// Sends one request line to the server on `store_dir`'s control socket and waits at most
/// `patience` for its answer: `Ok` for `ok`, else the error's message.
fn request(store_dir: &Path, line: &str, patience: Duration) -> anyhow::Result<()> {
    let path = socket_path(store_dir)
        .map_err(|e| anyhow::anyhow!("the control socket of store {}: {e}", store_dir.display()))?;
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        anyhow::anyhow!(
            "no running `vu2f serve` on store {} ({}: {e})",
            store_dir.display(),
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(patience))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                anyhow::anyhow!("the server did not answer within {patience:?}")
            }
            _ => anyhow::anyhow!("reading the server's answer: {e}"),
        })?;
    match answer.trim_end() {
        "ok" => Ok(()),
        "" => anyhow::bail!("the server closed the control socket without an answer"),
        other => anyhow::bail!("{}", other.strip_prefix("error: ").unwrap_or(other)),
    }
}
