//! The control socket: `<store>/control.sock`, a Unix stream socket (mode 0600 inside the 0700
//! store directory) that a running `vu2f serve` listens on. One request line, one answer line:
//!
//! ```text
//!  -> touch NAME          <- ok | error: MESSAGE
//! ```
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::u2f::Button;

/// The control socket's path in a store directory.
pub fn socket_path(store_dir: &Path) -> PathBuf {
    store_dir.join("control.sock")
}

/// Binds the control socket (replacing a stale one) and answers requests for `buttons`.
pub fn listen(
    store_dir: &Path,
    buttons: HashMap<String, Arc<Button>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(store_dir);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let buttons = Arc::new(buttons);
    Ok(tokio::spawn(async move {
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
    }))
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
    let path = socket_path(store_dir);
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
