//! Helpers shared by the integration tests: temporary stores and a `vu2f serve` child process.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use vu2f::u2f::{Authenticator, Presence, PresencePolicy};

pub mod aa;
pub mod kill_attempts;

/// A temporary store with the named tokens.
pub fn store_with(names: &[&str]) -> (tempfile::TempDir, keystore::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    store
        .create_tokens(names, keystore::TokenOptions::default())
        .unwrap();
    (dir, store)
}

/// An engine over a token of `store`.
pub fn engine(store: &keystore::Store, name: &str, policy: PresencePolicy) -> Authenticator {
    Authenticator::new(store.load(name).unwrap(), Presence::new(policy))
}

/// The options of a `fido2` token (CTAP2 beside U2F), the others the defaults.
pub fn fido2_options() -> keystore::TokenOptions {
    keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        ..Default::default()
    }
}

/// The CTAP2 engine of token `name` of `store`: touches answered by `presence`, built-in user
/// verification by `uv` (none: the token has none).
pub fn ctap2_engine(
    store: &keystore::Store,
    name: &str,
    presence: PresencePolicy,
    uv: Option<PresencePolicy>,
) -> vu2f::ctap2::Authenticator {
    vu2f::ctap2::Authenticator::new(engine(store, name, presence), uv)
}

/// A temporary store with one `fido2` token, `t`, and its CTAP2 engine.
pub fn fido2_token(
    presence: PresencePolicy,
    uv: Option<PresencePolicy>,
) -> (tempfile::TempDir, vu2f::ctap2::Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    store.create_token("t", fido2_options()).unwrap();
    let engine = ctap2_engine(&store, "t", presence, uv);
    (dir, engine)
}

/// The JSON a command printed, which must have succeeded (else its stderr shows).
pub fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The `vu2f` binary.
pub fn vu2f(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vu2f"));
    command.arg("--store").arg(store);
    command
}

/// The `vu2f` binary with no store, as a command that is not about one (`bench`, `demo`).
pub fn vu2f_storeless() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vu2f"))
}

/// Runs `command` to its end and returns its stdout; a failure shows its stderr.
pub fn succeeded(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output.stdout
}

/// A `vu2f` process that announces itself in JSON lines on stdout; killed on drop.
pub struct Running {
    pub child: Child,
}

impl Running {
    /// Starts `command` and reads its first `lines` JSON lines.
    pub fn start(mut command: Command, lines: usize) -> (Running, Vec<serde_json::Value>) {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let announced = (0..lines)
            .map(|_| {
                let line = stdout.next().expect("vu2f announced itself").unwrap();
                serde_json::from_str(&line).unwrap()
            })
            .collect();
        (Running { child }, announced)
    }

    /// Sends `signal` (a `kill -s` name) and waits for the exit.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `vu2f aa-sim` on a loopback port, killed on drop.
pub struct Sim {
    pub process: Running,
    pub url: String,
    /// With `--tls`: the generated certificate, for clients' `--ca`.
    pub certificate: Option<String>,
}

impl Sim {
    /// An emulator with its default configuration, over HTTPS when `tls`.
    pub fn start(data: &Path, tls: bool) -> Sim {
        Sim::configured(data, tls, None)
    }

    /// An emulator with the configuration `config` (a JSON file), or its default.
    pub fn configured(data: &Path, tls: bool, config: Option<&Path>) -> Sim {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vu2f"));
        command
            .args(["--json", "aa-sim", "--listen", "127.0.0.1:0", "--data"])
            .arg(data);
        if tls {
            command.arg("--tls");
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let (process, lines) = Running::start(command, 1);
        Sim {
            process,
            url: lines[0]["url"].as_str().unwrap().to_owned(),
            certificate: lines[0]["certificate"].as_str().map(str::to_owned),
        }
    }
}

/// A running `vu2f serve --udp 127.0.0.1:0`, killed on drop.
pub struct Server {
    pub process: Running,
    pub addrs: Vec<(String, SocketAddr)>,
}

impl Server {
    pub fn start(store: &Path, tokens: &[&str], presence: &str) -> Server {
        Server::start_with_env(store, tokens, presence, &[])
    }

    /// As [`Server::start`], with these environment variables.
    pub fn start_with_env(
        store: &Path,
        tokens: &[&str],
        presence: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_with(store, tokens, presence, env, &[])
    }

    /// As [`Server::start`], with these environment variables and these more arguments of
    /// `serve` (`--uv auto`).
    pub fn start_with(
        store: &Path,
        tokens: &[&str],
        presence: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let mut command = vu2f(store);
        command.envs(env.iter().copied());
        command.args([
            "--json",
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--presence",
            presence,
        ]);
        command.args(args);
        for t in tokens {
            command.args(["--token", t]);
        }
        let (process, lines) = Running::start(command, tokens.len());
        let addrs = lines
            .iter()
            .map(|v| {
                (
                    v["token"].as_str().unwrap().to_owned(),
                    v["udp"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        Server { process, addrs }
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The address of the token `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(token, _)| token == name)
            .unwrap_or_else(|| panic!("token {name} is not served"))
            .1
    }
}

/// Registers `token` for `app` and checks the attestation signature.
pub fn register(
    token: &mut dyn vu2f::transport::TokenTransport,
    app: &[u8; 32],
    challenge: &[u8; 32],
) -> vu2f::u2f::messages::RegistrationResponse {
    use vu2f::u2f::messages;
    let response = token
        .exchange(&messages::register_request(challenge, app))
        .unwrap();
    let registration =
        messages::RegistrationResponse::try_from(messages::split_status(&response).unwrap())
            .unwrap();
    registration.verify(app, challenge).unwrap();
    registration
}
