//! Serving HTTP or HTTPS on loopback (the emulator, the device service): a self-signed
//! certificate generated once and kept beside the data, and an axum app on a bound listener.
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A certificate and its key, PEM.
pub struct Certificate {
    /// Where the certificate is, for clients to trust (`--ca`).
    pub path: PathBuf,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// The certificate `<dir>/<stem>-certificate.pem` (and its key), generated on first use for
/// `localhost`, `127.0.0.1` and `host`.
pub fn certificate(dir: &Path, stem: &str, host: &str) -> anyhow::Result<Certificate> {
    let path = dir.join(format!("{stem}-certificate.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    if !path.exists() || !key_path.exists() {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !names.iter().any(|n| n == host) {
            names.push(host.to_owned());
        }
        let generated =
            rcgen::generate_simple_self_signed(names).context("generating the TLS certificate")?;
        write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
        std::fs::write(&path, generated.cert.pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let cert = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
    let key = std::fs::read(&key_path).with_context(|| format!("{}", key_path.display()))?;
    Ok(Certificate { path, cert, key })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// Serves `app` on `listener` (non-blocking), over TLS with `tls`; stops with the handle.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Certificate>,
) -> anyhow::Result<(
    axum_server::Handle,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let app = app.into_make_service();
    let task = match tls {
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(tls.cert, tls.key)
                .await
                .context("loading the TLS certificate")?;
            let server = axum_server::from_tcp_rustls(listener, config).handle(handle.clone());
            tokio::spawn(server.serve(app))
        }
        None => {
            let server = axum_server::from_tcp(listener).handle(handle.clone());
            tokio::spawn(server.serve(app))
        }
    };
    Ok((handle, task))
}
