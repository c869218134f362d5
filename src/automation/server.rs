//! The API's HTTP server: its routes, the bearer check in front of them, and where it listens.
//!
//! It listens on a Unix socket beside the control socket (`$XDG_RUNTIME_DIR/vu2f/
//! control-HASH.http.sock`, mode 0600), or on a TCP address. Either way every request needs
//! `Authorization: Bearer TOKEN`: 32 random bytes, base64url, made at start and written to
//! `control-HASH.http.token` (0600) beside it; both files go when serve stops. The routes are
//! at `/webauthn/…`, and the same under `/session/{sessionId}/webauthn/…` (any session id), as
//! WebDriver clients address them.
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq as _;

use super::error::{ApiError, ErrorCode};
use super::fleet::Fleet;
use super::{authenticators, credentials, faults, switches};

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// The Unix socket and the bearer token file of the API of the store in `store_dir`.
pub fn paths(store_dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    use crate::device::control::runtime_file;
    Ok((
        runtime_file(store_dir, "http.sock")?,
        runtime_file(store_dir, "http.token")?,
    ))
}

/// The API, listening.
pub struct Listening {
    endpoint: Endpoint,
    token_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The file that holds the bearer token.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// Stops listening and removes the socket and the token file.
    pub fn stop(self) {
        self.task.abort();
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(&self.token_file);
    }
}

/// Starts the API of `fleet` on the Unix socket of the store in `store_dir`, or on `addr`.
pub async fn listen(
    fleet: Arc<Fleet>,
    store_dir: &Path,
    addr: Option<SocketAddr>,
) -> anyhow::Result<Listening> {
    let (socket, token_file) = paths(store_dir)
        .map_err(|e| anyhow::anyhow!("the runtime directory of the automation API: {e}"))?;
    let bearer = new_bearer()?;
    write_private(&token_file, bearer.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", token_file.display()))?;
    let app = router(fleet, bearer);
    let (endpoint, task) = match addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding the automation API to {addr}: {e}"))?;
            let bound = listener.local_addr()?;
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (Endpoint::Tcp(bound), task)
        }
        None => {
            if socket.exists() {
                std::fs::remove_file(&socket)?;
            }
            let listener = tokio::net::UnixListener::bind(&socket)
                .map_err(|e| anyhow::anyhow!("binding {}: {e}", socket.display()))?;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (Endpoint::Unix(socket), task)
        }
    };
    Ok(Listening {
        endpoint,
        token_file,
        task,
    })
}

/// A fresh bearer token: 32 random bytes, base64url without padding.
fn new_bearer() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for the bearer token"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Writes `contents` to a new file at `path` that only this user can read (a stale one is
/// replaced).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// The routes under `/webauthn`, with their state. Each resource module that acts on one
/// authenticator (credentials and faults too) adds its routes here, under `one`.
fn webauthn() -> Router<Arc<Fleet>> {
    let one = "/webauthn/authenticator/{authenticatorId}";
    Router::new()
        .route("/webauthn/authenticator", post(authenticators::add))
        .route("/webauthn/authenticators", get(authenticators::list))
        .route(
            one,
            get(authenticators::show).delete(authenticators::remove),
        )
        .route(&format!("{one}/uv"), post(switches::user_verified))
        .route(
            &format!("{one}/consenting"),
            post(switches::user_consenting),
        )
        .route(&format!("{one}/presence"), post(switches::presence))
        .route(&format!("{one}/press"), post(switches::press))
        .route(&format!("{one}/replug"), post(switches::replug))
        .route(&format!("{one}/credential"), post(credentials::add_route))
        .route(
            &format!("{one}/credentials"),
            get(credentials::list_route).delete(credentials::remove_all_route),
        )
        .route(
            &format!("{one}/credentials/{{credentialId}}"),
            axum::routing::delete(credentials::remove_route),
        )
        .route(
            &format!("{one}/faults"),
            get(faults::armed).post(faults::arm),
        )
}

/// The whole API of `fleet`, behind the check of `bearer`.
pub fn router(fleet: Arc<Fleet>, bearer: String) -> Router {
    Router::new()
        .merge(webauthn())
        .nest("/session/{sessionId}", webauthn())
        .fallback(|| async {
            ApiError::new(ErrorCode::UnknownCommand, "no such resource").into_response()
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::UnknownMethod,
                "the resource takes another method",
            )
            .into_response()
        })
        .layer(middleware::from_fn_with_state(
            Arc::new(bearer),
            require_bearer,
        ))
        .with_state(fleet)
}

/// Lets a request through only with `Authorization: Bearer TOKEN`.
async fn require_bearer(
    State(bearer): State<Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    // The scheme is case-insensitive (RFC 9110 §11.1), the token is not.
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if bool::from(token.as_bytes().ct_eq(bearer.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(ErrorCode::Unauthorized, "wrong bearer token").into_response(),
        None => ApiError::new(
            ErrorCode::Unauthorized,
            "no `Authorization: Bearer TOKEN` (the token is in the file serve printed)",
        )
        .into_response(),
    }
}
