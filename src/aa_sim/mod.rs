//! # aa_sim — the embedded NetIQ / OpenText Advanced Authentication emulator (`DESIGN.md`, "The
//! emulator is a real server"; PROTOCOLS.md sections 1 and 4)
//!
//! A real HTTP(S) server on loopback that answers the REST calls of the logon and enrollment flows
//! with the fields of the documentation's samples, verifies every registration and signature with
//! real ECDSA, hands out single-use challenges that expire, and keeps endpoints, sessions and
//! templates in its own sled database.
//!
//! * [`config`]: users, chains, events, App ID and facets, lifetimes.
//! * `endpoints`, `logon`, `enroll`, `template_test`: the handlers, by part of the API.
//! * `u2f_check`: what a relying party verifies (section 4), as pure functions.
//! * `fido2`, `fido2_check`: the `FIDO2:1` method as the portal drives it (1.9), and the WebAuthn
//!   verification of its registrations and assertions (WebAuthn Level 2 §7.1, §7.2, §8.2).
//! * `state`, `records`: what is kept, in sled and in memory; `expiring`: sessions that expire,
//!   removed as new ones come in.
//! * `error`: AA's error bodies and statuses (1.5, 1.9) and the extractors that produce them.
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::aa::fido2 as aa_fido2;
use crate::aa::paths;

pub mod config;
mod endpoints;
mod enroll;
mod error;
mod expiring;
mod fido2;
mod fido2_check;
mod logon;
mod records;
mod responses;
mod state;
mod template_test;
mod u2f_check;

pub use config::{AttestationPolicy, Conveyance, Fido2Config, Requirement, SimConfig};
use state::SimState;

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the database (and the TLS certificate) live.
    pub data_dir: PathBuf,
    /// HTTPS with a certificate generated once and kept in `data_dir`.
    pub tls: bool,
    /// Users, chains, events.
    pub config: SimConfig,
}

/// A running emulator.
pub struct RunningSim {
    /// The base URL clients use (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The U2F App ID it asks tokens to sign for.
    pub app_id: String,
    /// The PEM certificate clients must trust, with `tls`.
    pub certificate: Option<PathBuf>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    state: Arc<SimState>,
}

/// Holds every answer back by the configured delay.
async fn delay(
    axum::extract::State(delay): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    tokio::time::sleep(delay).await;
    next.run(request).await
}

fn router(state: Arc<SimState>) -> Router {
    let response_delay = std::time::Duration::from_millis(state.config.response_delay_ms);
    let body_limit = axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes);
    let router = Router::new()
        .route(paths::ENDPOINTS, post(endpoints::register))
        .route(paths::ENDPOINT, delete(endpoints::delete))
        .route(paths::ENDPOINT_SESSIONS, post(endpoints::open_session))
        .route(paths::CHAINS, get(logon::chains).post(logon::chains))
        .route(paths::LOGON, post(logon::start))
        .route(paths::DO_LOGON, post(logon::do_logon))
        .route(paths::NEXT, post(logon::next))
        .route(paths::USERS, get(enroll::find_user))
        .route(
            paths::TEMPLATES,
            get(enroll::list_templates).post(enroll::save_template),
        )
        .route(paths::TEMPLATE, delete(enroll::delete_template))
        .route(paths::TEMPLATE_TEST, post(template_test::test))
        .route(paths::ENROLL, post(enroll::start))
        .route(paths::ENROLL_PROCESS, delete(enroll::abort))
        .route(paths::DO_ENROLL, post(enroll::do_enroll))
        .route(aa_fido2::ENROLL_EXCHANGE, post(fido2::enroll_exchange))
        .route(aa_fido2::LOGIN_EXCHANGE, post(fido2::login_exchange))
        .fallback(error::no_route)
        .layer(body_limit)
        .with_state(state);
    if response_delay.is_zero() {
        router
    } else {
        router.layer(axum::middleware::from_fn_with_state(response_delay, delay))
    }
}

/// Starts the emulator; it serves until [`RunningSim::stop`].
pub async fn start(options: SimOptions) -> anyhow::Result<RunningSim> {
    options
        .config
        .validate()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating {}", options.data_dir.display()))?;
    let listener = TcpListener::bind(options.listen)
        .with_context(|| format!("listening on {}", options.listen))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let host = if bound.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        bound.ip().to_string()
    };
    let scheme = if options.tls { "https" } else { "http" };
    let url = match bound {
        SocketAddr::V6(_) => format!("{scheme}://[{host}]:{}", bound.port()),
        SocketAddr::V4(_) => format!("{scheme}://{host}:{}", bound.port()),
    };
    let app_id = options.config.app_id.clone().unwrap_or_else(|| url.clone());
    // The App ID's origin, the configured facets, and the server's own origin: AA's portal is
    // served from the server, and tells its own origin as the appId of an enrollment or test.
    let mut facets: Vec<String> = crate::aa::origin_of(&app_id).into_iter().collect();
    facets.extend(options.config.facets.iter().cloned());
    facets.extend(crate::aa::origin_of(&url));
    let mut trusted_cas = Vec::new();
    for path in &options.config.fido2.trusted_cas {
        let text = std::fs::read(path)
            .with_context(|| format!("fido2.trusted_cas: reading {}", path.display()))?;
        let certificates = fido2_check::pem_certificates(&text)
            .map_err(|e| anyhow::anyhow!("fido2.trusted_cas: {}: {e}", path.display()))?;
        trusted_cas.extend(certificates);
    }
    let mut state = SimState::open(&options.data_dir, options.config, app_id.clone(), facets)
        .with_context(|| {
            format!(
                "opening the emulator database in {} (is another aa-sim using it?)",
                options.data_dir.display()
            )
        })?;
    state.trusted_cas = trusted_cas;
    let state = Arc::new(state);
    let tls = if options.tls {
        Some(crate::https::certificate(&options.data_dir, "tls", &host)?)
    } else {
        None
    };
    let certificate = tls.as_ref().map(|t| t.path.clone());
    let (handle, task) = crate::https::serve(listener, router(state.clone()), tls).await?;
    Ok(RunningSim {
        url,
        app_id,
        certificate,
        handle,
        task,
        state,
    })
}

impl RunningSim {
    /// Stops serving, waits for the connections to let go of the database, flushes and closes
    /// it: once this returns, another emulator can open the same data directory.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.shutdown();
        self.task.await??;
        // The server returns at once; its connection tasks, told to stop, drop their handles to
        // the state (and any flush they started finishes) a moment later.
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut state = self.state;
        let state = loop {
            match Arc::try_unwrap(state) {
                Ok(state) => break state,
                Err(shared) if tokio::time::Instant::now() < deadline => {
                    state = shared;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(_) => anyhow::bail!(
                    "connections still hold the emulator's database {} s after the stop",
                    STOP_GRACE.as_secs()
                ),
            }
        };
        state.flush()?;
        Ok(())
    }
}

/// How long [`RunningSim::stop`] waits for connections to let go of the database.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
