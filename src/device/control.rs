//! The control socket: a Unix stream socket (mode 0600 in a 0700 directory) that a running
//! `vu2f serve` listens on, one per store. It lives in `$XDG_RUNTIME_DIR/vu2f/` (else in
//! `vu2f-UID` under the temporary directory), named after the store's path, because a store may
//! sit on a filesystem that cannot hold sockets (9p, some network mounts). One request line, one
//! answer line:
//!
//! ```text
//!  -> touch NAME          <- ok | error: MESSAGE
//! ```
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::u2f::Button;

/// The directory of the control sockets: `$XDG_RUNTIME_DIR/vu2f`, else `vu2f-UID` in the
/// temporary directory. Made 0700 when missing; refused when another user could reach it.
fn runtime_dir() -> std::io::Result<PathBuf> {
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
    let store = std::fs::canonicalize(store_dir)?;
    let digest = Sha256::digest(store.as_os_str().as_encoded_bytes());
    Ok(runtime_dir()?.join(format!("control-{}.sock", hex::encode(&digest[..8]))))
}

/// Binds the control socket (replacing a stale one) and answers requests for `buttons`.
pub fn listen(
    store_dir: &Path,
    buttons: HashMap<String, Arc<Button>>,
) -> std::io::Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let path = socket_path(store_dir)?;
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let buttons = Arc::new(buttons);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let buttons = Arc::clone(&buttons);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read.take(256));
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = answer(&buttons, line.trim_end());
                let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    });
    Ok((path, task))
}

fn answer(buttons: &HashMap<String, Arc<Button>>, request: &str) -> String {
    match request.split_once(' ') {
        Some(("touch", name)) => match buttons.get(name) {
            Some(button) => {
                button.press();
                "ok".into()
            }
            None => format!("error: token {name:?} is not served by this process"),
        },
        _ => format!("error: unknown request {request:?}"),
    }
}

/// Presses the button of token `name` served by the `vu2f serve` running on `store_dir`.
pub fn touch(store_dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = socket_path(store_dir)
        .map_err(|e| anyhow::anyhow!("the control socket of store {}: {e}", store_dir.display()))?;
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        anyhow::anyhow!(
            "no running `vu2f serve` on store {} ({}: {e})",
            store_dir.display(),
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(format!("touch {name}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    match line.trim_end() {
        "ok" => Ok(()),
        other => anyhow::bail!("{}", other.strip_prefix("error: ").unwrap_or(other)),
    }
}
