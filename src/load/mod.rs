//! # load — many virtual tokens logging on at once (`vu2f load`)
//!
//! Each virtual user is a token of the store, enrolled for a user of the same name, with its own
//! endpoint session. Logons run the flow of PROTOCOLS.md 1.1 through the companion client, as a
//! portal does it: the user's chains for the event, then the logon on the first chain a token
//! completes. A user is on one method, `U2F:1` or `FIDO2:1` (PROTOCOLS.md 1.9): enrolled with
//! it, and logging on at that method's event; [`Fido2Users::share`] of them are on `FIDO2:1`,
//! spread evenly among the rest so that both are in flight together.
//!
//! * Closed model (`--concurrency C`): C workers, each starting a logon when its last one ends.
//! * Open model (`--rate R`): logons are started on a schedule whatever the server does, and each
//!   is timed from when it was meant to start, so a slow server shows as latency and the offered
//!   rate holds (no coordinated omission).
//!
//! * `stats`: histograms, timeline, errors. * `report`: text, JSON and the HTML page.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aa::api::AuthData;
use crate::aa_sim::config::UserConfig;
use crate::aa_sim::{self, RunningSim, SimConfig, SimOptions};
use crate::client::enroll::{enroll_method, EnrollRequest, DEFAULT_ENROLL_EVENT};
use crate::client::logon::{Logon, LogonRequest, FIDO2, PASSWORD, U2F};
use crate::client::{
    AaHttp, ClientError, Endpoint, EndpointAccess, OriginPolicy, Step, TlsTrust, TokenClient,
};
use crate::transport::InProcess;
use crate::u2f::{Authenticator, Presence, PresencePolicy};

pub mod report;
pub mod stats;

use stats::{Recorder, Summary, ALL_STEPS};

/// The password of the users the embedded emulator gets for a load run.
pub const EMBEDDED_PASSWORD: &str = "load-password";

/// Lifetime of the login sessions of the embedded emulator of a load run, in seconds.
const EMBEDDED_LOGIN_SESSION_SECS: u64 = 300;

/// How many users are set up (endpoint session, enrollment) at once.
const SETUP_BATCH: usize = 64;

/// Where the logons go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The emulator, started in this process on a loopback port.
    Embedded {
        /// Extra delay of every answer (to see what a slow server does to the load).
        server_delay: Duration,
    },
    /// A real server.
    Server {
        /// Its base URL.
        url: String,
        /// How to trust its certificate.
        trust: TlsTrust,
        /// The endpoint.
        access: EndpointAccess,
        /// appIds allowed besides the server's origin.
        app_ids: Vec<String>,
        /// The users' password, to enroll them (with `enroll`).
        password: Option<String>,
    },
}

/// How logons are started.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// This many logons in flight at all times.
    Concurrency(usize),
    /// This many logons started per second.
    Rate(f64),
}

/// When the run ends.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// Start no logon after this long.
    Duration(Duration),
    /// Start this many logons.
    Logons(u64),
}

/// Which users are on `FIDO2:1`, and where they log on.
#[derive(Debug, Clone, PartialEq)]
pub struct Fido2Users {
    /// The share of users on `FIDO2:1`, 0 to 1; the others are on `U2F:1`.
    pub share: f64,
    /// The event they log on to.
    pub event: String,
    /// Their chain, by name [default: the first of each user's chains that a token completes].
    pub chain: Option<String>,
}

pub use crate::aa_sim::config::FIDO2_EVENT;

impl Default for Fido2Users {
    /// Nobody on `FIDO2:1`.
    fn default() -> Self {
        Self {
            share: 0.0,
            event: FIDO2_EVENT.into(),
            chain: None,
        }
    }
}

impl Fido2Users {
    /// Every user on `FIDO2:1`.
    pub fn all() -> Self {
        Self {
            share: 1.0,
            ..Self::default()
        }
    }

    /// The method of the `index`th user (from 0): `FIDO2:1` for `share` of them, spread evenly
    /// (the user is `FIDO2:1` when the count of FIDO2:1 users up to it, `share` × users rounded
    /// down, goes up at it).
    pub fn method_of(&self, index: usize) -> &'static str {
        // The small margin keeps 0.3 × 10 at 3, where floating point makes it 2.999….
        let up_to = |n: usize| (n as f64 * self.share + 1e-9).floor();
        if up_to(index + 1) > up_to(index) {
            FIDO2
        } else {
            U2F
        }
    }
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where.
    pub target: Target,
    /// How many tokens (and users).
    pub tokens: usize,
    /// Tokens and users are `{prefix}{n:05}`.
    pub prefix: String,
    /// Enroll each token first.
    pub enroll: bool,
    /// The event the `U2F:1` users log on to.
    pub event: String,
    /// Their chain, by name [default: the first of each user's chains that a token completes].
    pub chain: Option<String>,
    /// The users on `FIDO2:1`.
    pub fido2: Fido2Users,
    /// Closed or open model.
    pub model: Model,
    /// When to stop.
    pub until: Until,
    /// Time over which the load rises to its level.
    pub ramp_up: Duration,
    /// Show a progress bar.
    pub progress: bool,
    /// Seconds to wait for each server answer.
    pub timeout: Duration,
}

/// What a run did.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// The server.
    pub server: String,
    /// Tokens used.
    pub tokens: usize,
    /// How many users are on each method (`U2F:1`, `FIDO2:1`).
    pub users_by_method: std::collections::BTreeMap<String, usize>,
    /// The model.
    pub model: Model,
    /// Seconds from the first start to the last answer.
    pub elapsed_s: f64,
    /// Logons started.
    pub started: u64,
    /// Logons that ended in `OK`.
    pub completed: u64,
    /// Logons that failed.
    pub failed: u64,
    /// Logons started per second, as offered.
    pub offered_per_s: f64,
    /// Logons completed per second.
    pub logons_per_s: f64,
    /// Seconds spent creating, loading and enrolling tokens.
    pub setup_s: f64,
    /// Latencies, errors, timeline.
    pub summary: Summary,
    /// The whole-logon latencies as a histogram: (upper bound in ms, logons).
    pub latency_buckets: Vec<(f64, u64)>,
}

/// One virtual user: a token, its user, its method, its endpoint session.
struct VirtualUser {
    name: String,
    /// `U2F:1` or `FIDO2:1`: what the user is enrolled with and logs on with.
    method: &'static str,
    token: TokenClient,
    endpoint: Endpoint,
}

/// The kind of a failure, for counting.
fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Refused { reason, .. } => {
            format!("FAILED {}", reason.as_deref().unwrap_or("(no reason)"))
        }
        ClientError::Http { status, msgid, .. } => match msgid {
            Some(msgid) => format!("HTTP {status} {msgid}"),
            None => format!("HTTP {status}"),
        },
        ClientError::Timeout { .. } => "timeout".into(),
        ClientError::Unreachable { .. } => "unreachable".into(),
        ClientError::BadReply { .. } => "bad reply".into(),
        ClientError::AppIdNotAllowed { .. } => "appId not allowed".into(),
        ClientError::RpIdNotAllowed { .. } => "RP id not allowed".into(),
        ClientError::Token(_) => "token".into(),
        ClientError::NoTouch { .. } => "no touch".into(),
        ClientError::NotThisToken { .. } => "key handle not this token's".into(),
        ClientError::Config(_) => "configuration".into(),
        ClientError::NoChain(_) => "no usable chain".into(),
    }
}

struct Shared {
    http: AaHttp,
    /// The endpoint's credentials, to open a new session for a user whose session expired.
    access: EndpointAccess,
    policy: OriginPolicy,
    event: String,
    chain: Option<String>,
    fido2: Fido2Users,
    /// Users not logging on now, the longest idle first: every user takes its turn, so that the
    /// logons of each method follow the population's shares.
    idle: Mutex<std::collections::VecDeque<VirtualUser>>,
    recorder: Mutex<Recorder>,
    t0: Instant,
}

impl Shared {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one logon meant to start at `intended`, and records it.
    async fn logon(self: &Arc<Self>, intended: Instant) {
        self.recorder()
            .started(intended.saturating_duration_since(self.t0));
        let user = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some(mut user) = user else {
            self.recorder().failed(
                None,
                self.t0.elapsed(),
                "no idle token (raise --tokens)".into(),
            );
            return;
        };
        let (event, chain) = if user.method == FIDO2 {
            (&self.fido2.event, &self.fido2.chain)
        } else {
            (&self.event, &self.chain)
        };
        let mut marks = Vec::with_capacity(ALL_STEPS.len());
        let began = Instant::now();
        let result = {
            let mut sink = |_: &Step| marks.push(Instant::now());
            Logon::new(
                &self.http,
                &user.endpoint,
                Some(&mut user.token),
                &self.policy,
                &mut sink,
            )
            .run(&LogonRequest {
                user: user.name.clone(),
                event: event.clone(),
                password: None,
                chain: chain.clone(),
            })
            .await
        };
        let now = Instant::now();
        match result {
            Ok(logged_on) => {
                let mut previous = began;
                let steps: Vec<Duration> = marks
                    .iter()
                    .map(|mark| {
                        let step = mark.duration_since(previous);
                        previous = *mark;
                        step
                    })
                    .collect();
                self.recorder().completed(
                    method_passed(&logged_on.completed_methods, user.method),
                    now.duration_since(self.t0),
                    now.duration_since(intended),
                    &steps,
                );
            }
            Err(error) => {
                self.recorder().failed(
                    Some(user.method),
                    now.duration_since(self.t0),
                    error_kind(&error),
                );
                // The endpoint session expired (AA's 433): open a new one, as AA's portal does,
                // so that a long run goes on rather than failing every logon of this user.
                if matches!(error, ClientError::Http { status: 433, .. }) {
                    if let Ok(endpoint) =
                        Endpoint::open(&self.http, &self.access, &mut |_: &Step| {}).await
                    {
                        user.endpoint = endpoint;
                    }
                }
            }
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(user);
    }
}

/// The token method a logon passed: `FIDO2:1` or `U2F:1` from its completed methods, else the
/// user's own (a chain of neither).
fn method_passed(completed: &[String], user_method: &'static str) -> &'static str {
    [FIDO2, U2F]
        .into_iter()
        .find(|m| completed.iter().any(|c| c == m))
        .unwrap_or(user_method)
}

/// The `k`th start time after `t0` for `rate` per second, rising linearly over `ramp_up`.
fn scheduled(k: u64, rate: f64, ramp_up: Duration) -> Duration {
    let ramp = ramp_up.as_secs_f64();
    let k = k as f64;
    let during_ramp = rate * ramp / 2.0;
    let seconds = if ramp > 0.0 && k < during_ramp {
        (2.0 * ramp * k / rate).sqrt()
    } else if ramp > 0.0 {
        ramp / 2.0 + k / rate
    } else {
        k / rate
    };
    Duration::from_secs_f64(seconds)
}

fn token_names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("{prefix}{n:05}")).collect()
}

/// The embedded emulator, with a user per token.
async fn start_embedded(
    names: &[String],
    server_delay: Duration,
    dir: &std::path::Path,
) -> anyhow::Result<RunningSim> {
    let mut config = SimConfig::default();
    config.users.extend(names.iter().map(|name| UserConfig {
        name: name.clone(),
        password: EMBEDDED_PASSWORD.into(),
        admin: false,
    }));
    config.response_delay_ms = u64::try_from(server_delay.as_millis()).unwrap_or(u64::MAX);
    // Every logon opens a login session that a load run never uses: kept for an hour (the
    // default), they are what the emulator's memory and database grow with. Five minutes bound
    // them to five minutes of logons; enrollment uses its session at once.
    config.login_session_ttl_secs = EMBEDDED_LOGIN_SESSION_SECS;
    aa_sim::start(SimOptions {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.join("aa-sim"),
        tls: false,
        config,
    })
    .await
}

/// Runs a load test with the tokens of `store`.
pub async fn run(store: &keystore::Store, options: LoadOptions) -> anyhow::Result<LoadReport> {
    let setup = Instant::now();
    let share = options.fido2.share;
    anyhow::ensure!(
        (0.0..=1.0).contains(&share),
        "the share of FIDO2:1 users must be from 0 to 1, not {share}"
    );
    let names = token_names(&options.prefix, options.tokens);
    let missing: Vec<&String> = names.iter().filter(|n| store.info(n).is_err()).collect();
    if !missing.is_empty() {
        store.create_tokens(&missing, keystore::TokenOptions::default())?;
    }
    let scratch = tempfile::tempdir()?;
    let (sim, url, trust, access, app_ids, password) = match &options.target {
        Target::Embedded { server_delay } => {
            let sim = start_embedded(&names, *server_delay, scratch.path()).await?;
            let url = sim.url.clone();
            let admin = SimConfig::default()
                .users
                .into_iter()
                .find(|u| u.admin)
                .ok_or_else(|| anyhow::anyhow!("no administrator in the default configuration"))?;
            let access = EndpointAccess::Admin {
                auth: AuthData {
                    method_id: PASSWORD.into(),
                    user_name: admin.name,
                    password: admin.password,
                },
                keep: None,
            };
            (
                Some(sim),
                url,
                TlsTrust::System,
                access,
                Vec::new(),
                Some(EMBEDDED_PASSWORD.to_owned()),
            )
        }
        Target::Server {
            url,
            trust,
            access,
            app_ids,
            password,
        } => (
            None,
            url.clone(),
            trust.clone(),
            access.clone(),
            app_ids.clone(),
            password.clone(),
        ),
    };
    let http = AaHttp::new(&url, &trust, options.timeout)?;
    let policy = OriginPolicy::new(http.origin(), app_ids, None);
    let registered = Endpoint::open(&http, &access, &mut |_: &Step| {}).await?;
    let same = registered.same_endpoint();
    let mut recorder = Recorder::new();
    let mut users = Vec::with_capacity(names.len());
    let mut loaded = store.load_many(&names)?.into_iter();
    for chunk in names.chunks(SETUP_BATCH) {
        let sessions = futures::future::join_all(chunk.iter().map(|_| async {
            let opened = Instant::now();
            let endpoint = Endpoint::open(&http, &same, &mut |_: &Step| {}).await;
            (opened.elapsed(), endpoint)
        }))
        .await;
        for ((name, (took, endpoint)), keys) in chunk.iter().zip(sessions).zip(&mut loaded) {
            recorder.endpoint_session(took);
            let method = options.fido2.method_of(users.len());
            let u2f = Authenticator::new(keys, Presence::new(PresencePolicy::Auto));
            // A U2F:1 user's token answers U2F alone, as before FIDO2:1; a FIDO2:1 user's is the
            // CTAP2 engine (a u2f-profile token then says it speaks no CTAP2).
            let transport = if method == FIDO2 {
                InProcess::ctap2(crate::ctap2::Authenticator::new(u2f, None))
            } else {
                InProcess::new(u2f)
            };
            users.push(VirtualUser {
                name: name.clone(),
                method,
                token: TokenClient::new(Box::new(transport), Duration::from_secs(10)),
                endpoint: endpoint?,
            });
        }
    }
    if options.enroll {
        let password = password.ok_or_else(|| {
            anyhow::anyhow!(
                "enrolling the load users needs their password (--password-file or VU2F_PASSWORD)"
            )
        })?;
        enroll_all(&http, &policy, &mut users, &password).await?;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let mut users_by_method = std::collections::BTreeMap::new();
    for user in &users {
        *users_by_method.entry(user.method.to_owned()).or_insert(0) += 1;
    }

    let shared = Arc::new(Shared {
        http,
        access: same,
        policy,
        event: options.event.clone(),
        chain: options.chain.clone(),
        fido2: options.fido2.clone(),
        idle: Mutex::new(users.into()),
        recorder: Mutex::new(recorder),
        t0: Instant::now(),
    });
    let progress = report::Progress::new(options.progress, options.until);
    let started = drive(&shared, &options, &progress).await;
    progress.finish();
    let elapsed = shared.t0.elapsed().as_secs_f64();

    let users = std::mem::take(&mut *shared.idle.lock().unwrap_or_else(|e| e.into_inner()));
    for user in users {
        let _ = user.endpoint.close(&shared.http).await;
    }
    let _ = registered.close(&shared.http).await;
    if let Some(sim) = sim {
        sim.stop().await?;
    }
    let summary = shared.recorder().summary();
    let latency_buckets = shared.recorder().latency_buckets(60);
    let completed = summary.logon.count;
    let failed: u64 = summary.errors.values().sum();
    Ok(LoadReport {
        server: if matches!(options.target, Target::Embedded { .. }) {
            format!("embedded emulator at {url}")
        } else {
            url
        },
        tokens: options.tokens,
        users_by_method,
        model: options.model,
        elapsed_s: elapsed,
        started,
        completed,
        failed,
        offered_per_s: started as f64 / elapsed.max(1e-9),
        logons_per_s: completed as f64 / elapsed.max(1e-9),
        setup_s,
        summary,
        latency_buckets,
    })
}

/// Enrolls every user's token with the user's method, a few at a time.
async fn enroll_all(
    http: &AaHttp,
    policy: &OriginPolicy,
    users: &mut [VirtualUser],
    password: &str,
) -> anyhow::Result<()> {
    for chunk in users.chunks_mut(SETUP_BATCH) {
        let mut pending = Vec::with_capacity(chunk.len());
        for user in chunk.iter_mut() {
            let request = EnrollRequest {
                user: user.name.clone(),
                password: password.to_owned(),
                event: DEFAULT_ENROLL_EVENT.into(),
                chain: None,
                category: String::new(),
                comment: "vu2f load".into(),
            };
            pending.push(async move {
                let name = user.name.clone();
                let method = user.method;
                enroll_method(
                    http,
                    &user.endpoint,
                    &mut user.token,
                    policy,
                    &request,
                    method,
                    &mut |_: &Step| {},
                )
                .await
                .map_err(|e| anyhow::anyhow!("enrolling {name} with {method}: {e}"))
            });
        }
        for result in futures::future::join_all(pending).await {
            result?;
        }
    }
    Ok(())
}

/// Starts logons as the model says until the run ends; returns how many were started.
async fn drive(shared: &Arc<Shared>, options: &LoadOptions, progress: &report::Progress) -> u64 {
    let t0 = shared.t0;
    let deadline = match options.until {
        Until::Duration(d) => Some(t0 + d),
        Until::Logons(_) => None,
    };
    let limit = match options.until {
        Until::Logons(m) => m,
        Until::Duration(_) => u64::MAX,
    };
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let ticker = {
        let shared = Arc::clone(shared);
        let bar = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let (completed, failed) = shared.recorder().counts();
                bar.update(completed, failed, t0.elapsed());
            }
        })
    };
    match options.model {
        Model::Rate(rate) => {
            for k in 0..limit {
                let intended = t0 + scheduled(k, rate, options.ramp_up);
                if deadline.is_some_and(|d| intended >= d) {
                    break;
                }
                tokio::time::sleep_until(intended.into()).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let shared = Arc::clone(shared);
                tasks.spawn(async move { shared.logon(intended).await });
                while tasks.try_join_next().is_some() {}
            }
        }
        Model::Concurrency(workers) => {
            let workers = workers.max(1);
            for worker in 0..workers {
                let shared = Arc::clone(shared);
                let counter = Arc::clone(&counter);
                let delay = options.ramp_up.mul_f64(worker as f64 / workers as f64);
                tasks.spawn(async move {
                    tokio::time::sleep(delay).await;
                    loop {
                        let now = Instant::now();
                        if deadline.is_some_and(|d| now >= d) {
                            break;
                        }
                        if counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= limit {
                            counter.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        shared.logon(now).await;
                    }
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    ticker.abort();
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::{scheduled, Fido2Users, FIDO2, U2F};
    use std::time::Duration;

    #[test]
    fn fido2_users_are_their_share_spread_evenly() {
        let methods = |share: f64, users: usize| -> Vec<&str> {
            let fido2 = Fido2Users {
                share,
                ..Fido2Users::default()
            };
            (0..users).map(|i| fido2.method_of(i)).collect()
        };
        assert_eq!(methods(0.5, 4), [U2F, FIDO2, U2F, FIDO2]);
        assert_eq!(methods(0.0, 3), [U2F; 3]);
        assert_eq!(methods(1.0, 3), [FIDO2; 3]);
        for (share, users, expected) in [(0.3, 10, 3), (0.25, 1000, 250), (0.1, 7, 0)] {
            let fido2 = methods(share, users)
                .iter()
                .filter(|m| **m == FIDO2)
                .count();
            assert_eq!(fido2, expected, "{share} of {users}");
        }
    }

    #[test]
    fn the_schedule_holds_the_rate_after_the_ramp() {
        assert_eq!(
            scheduled(10, 100.0, Duration::ZERO),
            Duration::from_millis(100)
        );
        let ramp = Duration::from_secs(2);
        assert_eq!(scheduled(0, 100.0, ramp), Duration::ZERO);
        let at_end_of_ramp = scheduled(100, 100.0, ramp).as_secs_f64();
        assert!((at_end_of_ramp - 2.0).abs() < 1e-9, "{at_end_of_ramp}");
        let later = scheduled(300, 100.0, ramp).as_secs_f64() - at_end_of_ramp;
        assert!(
            (later - 2.0).abs() < 1e-9,
            "200 more at 100/s take 2 s: {later}"
        );
    }
}
