//! Crash safety of the emulator's database (issue 6): `vu2f aa-sim` is killed with SIGKILL at
//! random moments, 200 times, while two users log on with U2F and a third enrolls new tokens, and
//! restarted on the same `--data` each time. After every restart no template that the emulator
//! acknowledged (with an `auth_t_id`) is missing, and no template's stored counter is below a
//! counter it accepted (with `OK`): a cloned or replayed signature at or below it stays refused.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::aa::{admin_access, quiet, Aa, AaClient};
use rand::Rng;
use vu2f::aa::paths;
use vu2f::aa::portal::TemplateList;
use vu2f::aa_sim::SimConfig;
use vu2f::client::enroll::DEFAULT_ENROLL_EVENT;
use vu2f::client::logon::{Logon, LogonRequest};
use vu2f::client::{ClientError, TokenClient};

const KILLS: usize = 200;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(600);
/// Users who log on in a loop, each with a token of their own.
const LOGON_USERS: [&str; 2] = ["alice", "admin"];
/// The user who enrolls new tokens in a loop.
const ENROLLING_USER: &str = "bob";

/// One life of the emulator, and a client connected to it.
struct Life {
    process: Mutex<common::Running>,
    client: AaClient,
}

impl Life {
    /// Starts the emulator on `listen`: the same address each life, as the appId is its origin.
    async fn start(data: &Path, listen: &str, config: &SimConfig) -> Life {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vu2f"));
        command
            .args(["--json", "aa-sim", "--listen", listen, "--data"])
            .arg(data);
        let (process, lines) = common::Running::start(command, 1);
        let url = lines[0]["url"].as_str().unwrap();
        let client = AaClient::connect(url, config.clone(), &admin_access(config, None)).await;
        Life {
            process: Mutex::new(process),
            client,
        }
    }

    /// Kills the emulator with SIGKILL.
    fn kill(&self) {
        self.process.lock().unwrap().kill();
    }

    /// The templates of `user`, by id, with their stored counters.
    async fn templates(&self, user: &str) -> HashMap<String, u32> {
        let client = &self.client;
        let session = Logon::new(
            &client.http,
            &client.endpoint,
            None,
            &client.policy,
            &mut quiet(),
        )
        .run(&LogonRequest {
            user: user.into(),
            event: DEFAULT_ENROLL_EVENT.into(),
            password: Some(client.password(user)),
            chain: None,
        })
        .await
        .unwrap();
        let user_id = session.user_id.unwrap();
        let list: TemplateList = client
            .http
            .get(
                &paths::fill(paths::TEMPLATES, &[("user_id", &user_id)]),
                &[("login_session_id", &session.login_session_id)],
            )
            .await
            .unwrap();
        list.templates
            .into_iter()
            .map(|t| {
                let counter = t.extra["counter"].as_u64().unwrap() as u32;
                (t.id, counter)
            })
            .collect()
    }

    /// A U2F logon; the counter the emulator accepted.
    async fn logon(&self, token: &mut TokenClient, user: &str) -> Result<u32, ClientError> {
        let logged_on = self.client.logon(token, user).await?;
        Ok(logged_on.counter.expect("a U2F logon has a counter"))
    }

    /// A new template in `category` (one U2F template per category); its id.
    async fn enroll(
        &self,
        token: &mut TokenClient,
        user: &str,
        category: &str,
    ) -> Result<String, ClientError> {
        Ok(self
            .client
            .enroll_in(token, user, category)
            .await?
            .template_id)
    }
}

/// What the emulator acknowledged: per user, per template, the highest counter it accepted.
#[derive(Default)]
struct Acknowledged {
    templates: HashMap<String, HashMap<String, u32>>,
}

impl Acknowledged {
    fn template(&mut self, user: &str, id: String) {
        self.templates
            .entry(user.into())
            .or_default()
            .entry(id)
            .or_insert(0);
    }

    /// The one template of a logon user.
    fn only_template(&self, user: &str) -> String {
        let of_user = &self.templates[user];
        assert_eq!(of_user.len(), 1);
        of_user.keys().next().unwrap().clone()
    }

    fn accepted(&mut self, user: &str, counter: u32) {
        let id = self.only_template(user);
        let highest = self.templates.get_mut(user).unwrap().get_mut(&id).unwrap();
        *highest = (*highest).max(counter);
    }

    /// Every acknowledged template is stored, with a counter no lower than any accepted.
    fn check(&self, run: usize, user: &str, stored: &HashMap<String, u32>) {
        for (id, &accepted) in self.templates.get(user).into_iter().flatten() {
            let Some(&counter) = stored.get(id) else {
                panic!("run {run}: template {id} of {user} was acknowledged and is gone");
            };
            assert!(
                counter >= accepted,
                "run {run}: template {id} of {user} stores counter {counter} after accepting {accepted}"
            );
        }
    }
}

/// Whether an error is the server going away under a kill the test made.
fn gone(error: &ClientError, killed: &AtomicBool) -> bool {
    assert!(
        killed.load(Ordering::SeqCst),
        "an error while the emulator was alive: {error}"
    );
    !matches!(error, ClientError::Refused { .. })
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loses_no_template_and_accepts_no_counter_regression() {
    let begun = Instant::now();
    let config = SimConfig::default();
    let (dir, store) = common::store_with(&[]);
    let store = Arc::new(store);
    let data = dir.path().join("aa-sim");
    let mut acknowledged = Acknowledged::default();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();

    let mut tokens: HashMap<&str, TokenClient> = HashMap::new();
    {
        let life = Life::start(&data, &listen, &config).await;
        for user in LOGON_USERS {
            let mut token = Aa::token(&store, user);
            let id = life.enroll(&mut token, user, "").await.unwrap();
            acknowledged.template(user, id);
            tokens.insert(user, token);
        }
    }

    let enrolled_tokens = Arc::new(AtomicUsize::new(0));
    let mut rng = rand::thread_rng();
    let (mut logons, mut enrollments) = (0usize, 0usize);
    for run in 0..KILLS {
        assert!(begun.elapsed() < BOUND, "run {run} began after {BOUND:?}");
        let life = Arc::new(Life::start(&data, &listen, &config).await);
        for user in LOGON_USERS.iter().chain([&ENROLLING_USER]) {
            acknowledged.check(run, user, &life.templates(user).await);
        }
        for user in LOGON_USERS {
            let counter = life
                .logon(tokens.get_mut(user).unwrap(), user)
                .await
                .unwrap_or_else(|e| panic!("run {run}: {user} cannot log on after restart: {e}"));
            acknowledged.accepted(user, counter);
        }

        let killed = Arc::new(AtomicBool::new(false));
        let mut loggers = Vec::new();
        for user in LOGON_USERS {
            let (life, killed) = (Arc::clone(&life), Arc::clone(&killed));
            let mut token = tokens.remove(user).unwrap();
            loggers.push(tokio::spawn(async move {
                let mut accepted = Vec::new();
                loop {
                    match life.logon(&mut token, user).await {
                        Ok(counter) => accepted.push(counter),
                        Err(e) if gone(&e, &killed) => break,
                        Err(e) => panic!("{user} refused: {e}"),
                    }
                }
                (user, token, accepted)
            }));
        }
        let enroller = {
            let (life, killed, store) =
                (Arc::clone(&life), Arc::clone(&killed), Arc::clone(&store));
            let count = Arc::clone(&enrolled_tokens);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let name = format!("bob-{}", count.fetch_add(1, Ordering::SeqCst));
                    let mut token = Aa::token(&store, &name);
                    match life.enroll(&mut token, ENROLLING_USER, &name).await {
                        Ok(id) => ids.push(id),
                        Err(e) if gone(&e, &killed) => break,
                        Err(e) => panic!("bob's enrollment refused: {e}"),
                    }
                }
                ids
            })
        };

        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..150))).await;
        killed.store(true, Ordering::SeqCst);
        life.kill();
        for logger in loggers {
            let (user, token, accepted) = logger.await.unwrap();
            logons += accepted.len();
            for counter in accepted {
                acknowledged.accepted(user, counter);
            }
            tokens.insert(user, token);
        }
        for id in enroller.await.unwrap() {
            enrollments += 1;
            acknowledged.template(ENROLLING_USER, id);
        }
    }
    assert!(
        logons > KILLS && enrollments > KILLS / 4,
        "enough under load to mean something: {logons} logons, {enrollments} enrollments"
    );
    eprintln!(
        "{KILLS} SIGKILLs under {logons} logons and {enrollments} enrollments in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
}
