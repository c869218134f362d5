//! The emulator's state: what persists lives in sled (endpoints, endpoint sessions, login
//! sessions, templates with their counters); what a restart may forget lives in memory (logon and
//! enroll processes, issued challenges).
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::config::{SimConfig, UserConfig};
use super::error::ApiError;
use super::expiring::Expiring;
use super::records::{now_unix, EndpointSessionRecord, LoginSessionRecord, TemplateRecord};
use crate::aa::errors;
use crate::aa::outcome::Refusal;

/// A U2F challenge handed out by a logon or enroll process.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The challenge, base64url.
    pub challenge: String,
    /// When it was issued.
    pub at: Instant,
}

/// Who started a logon process, and so who may go on with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOwner {
    /// A logon through `POST /logon`, by this endpoint session.
    Endpoint(String),
    /// A test of the template `template_id` (`POST …/templates/{id}/test`) in this login session.
    TemplateTest {
        /// The login session of the template's owner.
        login_session: String,
        /// The template under test.
        template_id: String,
    },
}

/// A logon process between `POST /logon` and `OK` or `FAILED`, or a template test.
#[derive(Debug, Clone)]
pub struct LogonProcess {
    /// Who may go on with it.
    pub owner: ProcessOwner,
    /// The user's canonical name.
    pub user: String,
    /// The event.
    pub event: String,
    /// Indices of the chains still possible.
    pub chains: Vec<usize>,
    /// Methods passed.
    pub completed: Vec<String>,
    /// The method being run; `None` between `NEXT` and `/next`.
    pub current: Option<String>,
    /// The U2F or FIDO2 challenge of the current method, and the handles or credential ids it
    /// was offered for.
    pub challenge: Option<(Issued, Vec<String>)>,
    /// The verdict of the FIDO2 exchange of the current method (the template that signed, or
    /// why not), for the `do_logon` that follows it.
    pub fido2: Option<Result<String, Refusal>>,
    /// Last activity, to forget abandoned processes.
    pub touched: Instant,
}

/// An enroll process between `POST /enroll` and saving the template.
#[derive(Debug, Clone)]
pub struct EnrollProcess {
    /// The login session that started it.
    pub login_session: String,
    /// The user's canonical name.
    pub user: String,
    /// The registration challenge.
    pub challenge: Option<Issued>,
    /// The verified registration, waiting to be saved.
    pub registration: Option<TemplateRecord>,
    /// `U2F:1` or `FIDO2:1`.
    pub method: String,
    /// Where a `FIDO2:1` enrollment stands.
    pub fido2: Fido2Enrollment,
    /// Last activity.
    pub touched: Instant,
}

/// Where a `FIDO2:1` enrollment stands between its rounds.
#[derive(Debug, Clone, Default)]
pub struct Fido2Enrollment {
    /// The first `do_enroll` named this server's RP id: the exchange may begin.
    pub begun: bool,
    /// Why the exchange's result was refused, for the `do_enroll` that follows.
    pub failed: Option<Refusal>,
    /// The `do_enroll` after a verified registration answered `OK`.
    pub confirmed: bool,
}

/// Whom a challenge was issued to, kept until it expires so that a replay is recognised.
#[derive(Debug, Clone)]
pub struct ChallengeOwner {
    /// When it was issued.
    pub at: Instant,
    /// Whether it has been answered.
    pub used: bool,
}

/// The in-memory part.
#[derive(Debug, Default)]
pub struct Live {
    /// Logon processes by id.
    pub logons: HashMap<String, LogonProcess>,
    /// Enroll processes by id.
    pub enrolls: HashMap<String, EnrollProcess>,
    /// Issued logon challenges.
    pub challenges: HashMap<String, ChallengeOwner>,
    last_sweep: Option<Instant>,
}

/// How long an untouched process is kept.
const PROCESS_IDLE: Duration = Duration::from_secs(600);

impl Live {
    /// Forgets abandoned processes and challenges past their lifetime, at most once a second.
    pub fn sweep(&mut self, challenge_ttl: Duration) {
        let now = Instant::now();
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.logons
            .retain(|_, p| now.duration_since(p.touched) < PROCESS_IDLE);
        self.enrolls
            .retain(|_, p| now.duration_since(p.touched) < PROCESS_IDLE);
        let keep = challenge_ttl * 2;
        self.challenges
            .retain(|_, c| now.duration_since(c.at) < keep);
    }
}

/// Everything the handlers share.
pub struct SimState {
    /// The configuration.
    pub config: SimConfig,
    /// The U2F App ID.
    pub app_id: String,
    /// Origins accepted in client data.
    pub facets: Vec<String>,
    /// The FIDO2 RP id: the configured one, else the App ID's host.
    pub rp_id: String,
    /// The FIDO2 attestation CAs trusted, DER.
    pub trusted_cas: Vec<Vec<u8>>,
    /// Lowercase user name to its index in `config.users`.
    users: HashMap<String, usize>,
    db: sled::Db,
    /// Endpoints by id.
    pub endpoints: sled::Tree,
    endpoint_sessions: Expiring,
    login_sessions: Expiring,
    /// Templates, keyed `user_id/template_id`.
    pub templates: sled::Tree,
    /// Key handle to `user_id/template_id`: no handle is enrolled twice.
    key_handles: sled::Tree,
    live: Mutex<Live>,
    commits: GroupCommit,
}

/// Group commit: one flush makes the writes of every caller waiting at its start durable, so
/// concurrent acknowledgements share a flush rather than queueing one each.
#[derive(Default)]
struct GroupCommit {
    /// Tickets handed out; a caller takes one after its writes.
    issued: AtomicU64,
    /// Every ticket up to this one is on disk; held while a flush runs.
    durable: tokio::sync::Mutex<u64>,
    /// Flushes run.
    flushes: AtomicU64,
}

/// `T` from a sled value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::storage(format!("stored record: {e}")))
}

/// A sled value from `T`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl SimState {
    /// Opens (or creates) the database in `dir`.
    pub fn open(
        dir: &Path,
        config: SimConfig,
        app_id: String,
        facets: Vec<String>,
    ) -> Result<Self, sled::Error> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 << 20)
            .open()?;
        let users = config
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.to_ascii_lowercase(), i))
            .collect();
        let rp_id = config.fido2.rp_id.clone().unwrap_or_else(|| {
            reqwest::Url::parse(&app_id)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default()
        });
        Ok(Self {
            users,
            config,
            app_id,
            facets,
            rp_id,
            trusted_cas: Vec::new(),
            endpoints: db.open_tree("endpoints")?,
            endpoint_sessions: Expiring::open(&db, "endpoint_sessions")?,
            login_sessions: Expiring::open(&db, "login_sessions")?,
            templates: db.open_tree("templates")?,
            key_handles: db.open_tree("key_handles")?,
            db,
            live: Mutex::new(Live::default()),
            commits: GroupCommit::default(),
        })
    }

    /// The user called `name`, with or without the repository prefix, case-insensitively.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        let bare = self.config.bare_name(name)?.to_ascii_lowercase();
        self.users.get(&bare).map(|&i| &self.config.users[i])
    }

    /// The in-memory state, swept of what has expired.
    pub fn live(&self) -> MutexGuard<'_, Live> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.sweep(self.challenge_ttl());
        live
    }

    /// The lifetime of a challenge.
    pub fn challenge_ttl(&self) -> Duration {
        Duration::from_millis(self.config.challenge_ttl_ms)
    }

    /// Flushes the database (on shutdown).
    pub fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(|_| ())
    }

    /// Opens an endpoint session.
    pub fn open_endpoint_session(&self, id: &str, endpoint_id: &str) -> Result<(), ApiError> {
        let now = now_unix();
        let record = EndpointSessionRecord {
            endpoint_id: endpoint_id.into(),
            expires_unix: now + self.config.endpoint_session_ttl_secs,
        };
        self.endpoint_sessions
            .insert(id, &encode(&record), now)
            .map_err(ApiError::storage)
    }

    /// Checks that `id` is a live endpoint session.
    pub fn check_endpoint_session(&self, id: &str) -> Result<(), ApiError> {
        let unknown = || ApiError::aa(errors::ENDPOINT_SESSION_NOT_FOUND);
        let bytes = self
            .endpoint_sessions
            .get(id)
            .map_err(ApiError::storage)?
            .ok_or_else(unknown)?;
        let record: EndpointSessionRecord = decode(&bytes)?;
        if record.expires_unix <= now_unix()
            || !self
                .endpoints
                .contains_key(&record.endpoint_id)
                .map_err(ApiError::storage)?
        {
            return Err(unknown());
        }
        Ok(())
    }

    /// Opens a login session for `user` after a logon to `event`.
    pub fn open_login_session(&self, id: &str, user: &str, event: &str) -> Result<(), ApiError> {
        let now = now_unix();
        let record = LoginSessionRecord {
            user: user.into(),
            event: event.into(),
            expires_unix: now + self.config.login_session_ttl_secs,
        };
        self.login_sessions
            .insert(id, &encode(&record), now)
            .map_err(ApiError::storage)
    }

    /// The live login session `id`.
    pub fn login_session(&self, id: &str) -> Result<LoginSessionRecord, ApiError> {
        let bytes = self
            .login_sessions
            .get(id)
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::aa(errors::LOGIN_SESSION_NOT_FOUND))?;
        let record: LoginSessionRecord = decode(&bytes)?;
        if record.expires_unix <= now_unix() {
            return Err(ApiError::aa(errors::LOGIN_SESSION_EXPIRED));
        }
        Ok(record)
    }

    /// The templates of the user with id `user_id`.
    pub fn templates_of(&self, user_id: &str) -> Result<Vec<TemplateRecord>, ApiError> {
        self.templates
            .scan_prefix(format!("{user_id}/"))
            .map(|entry| decode(&entry.map_err(ApiError::storage)?.1))
            .collect()
    }

    /// Stores a template of `user_id` (new, or with its counter updated) and its key-handle index
    /// entry in one transaction, so that a crash never leaves one without the other.
    pub fn put_template(&self, user_id: &str, template: &TemplateRecord) -> Result<(), ApiError> {
        let key = format!("{user_id}/{}", template.id);
        let value = encode(template);
        (&self.templates, &self.key_handles)
            .transaction(|(templates, key_handles)| {
                key_handles.insert(template.key_handle.as_bytes(), key.as_bytes())?;
                templates.insert(key.as_bytes(), value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => ApiError::storage("template write aborted"),
                TransactionError::Storage(e) => ApiError::storage(e),
            })
    }

    /// Deletes a template of `user_id` and its index entry in one transaction; false if there was
    /// none.
    pub fn remove_template(&self, user_id: &str, template_id: &str) -> Result<bool, ApiError> {
        let key = format!("{user_id}/{template_id}");
        (&self.templates, &self.key_handles)
            .transaction(|(templates, key_handles)| {
                let Some(bytes) = templates.remove(key.as_bytes())? else {
                    return Ok(false);
                };
                let template: TemplateRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                key_handles.remove(template.key_handle.as_bytes())?;
                Ok(true)
            })
            .map_err(|e| match e {
                TransactionError::Abort(detail) => {
                    ApiError::storage(format!("stored record: {detail}"))
                }
                TransactionError::Storage(e) => ApiError::storage(e),
            })
    }

    /// Waits until every write so far is on disk: called before a reply that acknowledges a
    /// template or a raised counter, so that a crash after the reply loses neither. Callers that
    /// arrive while a flush runs share the next one ([`GroupCommit`]).
    pub async fn persist(self: &Arc<Self>) -> Result<(), ApiError> {
        let ticket = self.commits.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut durable = self.commits.durable.lock().await;
        if *durable >= ticket {
            return Ok(());
        }
        // Every ticket issued by now was taken after its writes, so this flush covers them all.
        let covered = self.commits.issued.load(Ordering::SeqCst);
        // sled 0.34's `flush_async` deadlocks under concurrent callers (seen under `vu2f load`);
        // its blocking `flush`, on tokio's blocking pool, does not. The flush holds the state, not
        // a clone of the database, so that [`super::RunningSim::stop`] knows when it is done.
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.db.flush())
            .await
            .map_err(ApiError::storage)?
            .map_err(ApiError::storage)?;
        self.commits.flushes.fetch_add(1, Ordering::Relaxed);
        *durable = covered;
        Ok(())
    }

    /// Whether any user has a template with this key handle.
    pub fn key_handle_enrolled(&self, key_handle: &str) -> Result<bool, ApiError> {
        self.key_handles
            .contains_key(key_handle.as_bytes())
            .map_err(ApiError::storage)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_acknowledgements_share_flushes_and_each_waits_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            SimState::open(dir.path(), SimConfig::default(), "https://x".into(), vec![]).unwrap(),
        );
        let callers: u64 = 64;
        let tasks: Vec<_> = (0..callers)
            .map(|i| {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    state.templates.insert(i.to_be_bytes(), b"t").unwrap();
                    state.persist().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let flushes = state.commits.flushes.load(Ordering::Relaxed);
        assert!(
            (1..callers).contains(&flushes),
            "{flushes} flushes for {callers} concurrent callers"
        );
        assert_eq!(*state.commits.durable.lock().await, callers);

        state.persist().await.unwrap();
        assert_eq!(
            state.commits.flushes.load(Ordering::Relaxed),
            flushes + 1,
            "a caller after the others gets a flush of its own"
        );
    }
}
