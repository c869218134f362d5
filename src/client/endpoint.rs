//! The endpoint: registered once with an administrator's credentials (or given as id and secret),
//! then an endpoint session opened with the salted secret hash (PROTOCOLS.md 1.2).
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};

use super::{AaHttp, ClientError, Step, StepSink};
use crate::aa::api::{
    AuthData, CreateSessionRequest, DeleteEndpointRequest, EndpointCredentials, EndpointSession,
    RegisterEndpointRequest,
};
use crate::aa::{endpoint_secret_hash, paths};

/// How the client gets an endpoint.
#[derive(Debug, Clone)]
pub enum EndpointAccess {
    /// An endpoint registered before.
    Given(EndpointCredentials),
    /// Register one with these administrator credentials. With `keep`, the endpoint is saved to
    /// that file (mode 0600) and reused on later runs; without, it is deleted when done.
    Admin {
        /// The administrator.
        auth: AuthData,
        /// Where to keep the endpoint between runs.
        keep: Option<PathBuf>,
    },
}

/// An open endpoint session.
#[derive(Debug)]
pub struct Endpoint {
    credentials: EndpointCredentials,
    session_id: String,
    delete_with: Option<AuthData>,
}

/// Reads endpoint credentials (`{"id":…,"secret":…}`) from a file.
pub fn read_credentials(path: &Path) -> Result<EndpointCredentials, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Config(format!("endpoint file {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        ClientError::Config(format!(
            "endpoint file {}: expected {{\"id\":…,\"secret\":…}}: {e}",
            path.display()
        ))
    })
}

fn write_credentials(path: &Path, credentials: &EndpointCredentials) -> Result<(), ClientError> {
    let error =
        |e: std::io::Error| ClientError::Config(format!("endpoint file {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(error)?;
    let json = serde_json::to_vec_pretty(credentials).unwrap_or_default();
    file.write_all(&json).map_err(error)
}

impl Endpoint {
    /// Gets an endpoint as `access` says and opens a session on it.
    pub async fn open(
        http: &AaHttp,
        access: &EndpointAccess,
        steps: StepSink<'_>,
    ) -> Result<Self, ClientError> {
        let (credentials, delete_with) = match access {
            EndpointAccess::Given(credentials) => (credentials.clone(), None),
            EndpointAccess::Admin {
                keep: Some(path), ..
            } if path.exists() => (read_credentials(path)?, None),
            EndpointAccess::Admin { auth, keep } => {
                let credentials = register(http, auth, steps).await?;
                match keep {
                    Some(path) => {
                        write_credentials(path, &credentials)?;
                        (credentials, None)
                    }
                    None => (credentials, Some(auth.clone())),
                }
            }
        };
        let salt = Alphanumeric.sample_string(&mut rand::thread_rng(), 16);
        let path = paths::fill(
            paths::ENDPOINT_SESSIONS,
            &[("endpoint_id", &credentials.id)],
        );
        let session: EndpointSession = http
            .post(
                &path,
                &CreateSessionRequest {
                    endpoint_secret_hash: endpoint_secret_hash(
                        &credentials.id,
                        &credentials.secret,
                        &salt,
                    ),
                    salt,
                    session_data: None,
                },
            )
            .await?;
        steps(&Step {
            request: format!("POST {}", paths::ENDPOINT_SESSIONS),
            status: "endpoint session opened".into(),
            reason: None,
            msgid: None,
        });
        Ok(Self {
            credentials,
            session_id: session.endpoint_session_id,
            delete_with,
        })
    }

    /// The endpoint session id, sent with every logon call.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The endpoint's id.
    pub fn id(&self) -> &str {
        &self.credentials.id
    }

    /// Access to the same endpoint, for opening more sessions on it.
    pub fn same_endpoint(&self) -> EndpointAccess {
        EndpointAccess::Given(self.credentials.clone())
    }

    /// Deletes the endpoint if this run registered it for itself.
    pub async fn close(self, http: &AaHttp) -> Result<(), ClientError> {
        if let Some(auth_data) = self.delete_with {
            let path = paths::fill(paths::ENDPOINT, &[("endpoint_id", &self.credentials.id)]);
            http.delete(&path, &DeleteEndpointRequest { auth_data })
                .await?;
        }
        Ok(())
    }
}

async fn register(
    http: &AaHttp,
    auth: &AuthData,
    steps: StepSink<'_>,
) -> Result<EndpointCredentials, ClientError> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let credentials: EndpointCredentials = http
        .post(
            paths::ENDPOINTS,
            &RegisterEndpointRequest {
                name: format!("vu2f@{host}"),
                typ: 3,
                desc: "vu2f virtual U2F token".into(),
                is_trusted: true,
                tenant_name: "TOP".into(),
                auth_data: auth.clone(),
            },
        )
        .await?;
    steps(&Step {
        request: format!("POST {}", paths::ENDPOINTS),
        status: format!("endpoint {} registered", credentials.id),
        reason: None,
        msgid: None,
    });
    Ok(credentials)
}
