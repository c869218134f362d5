//! Helpers shared by the integration tests: temporary stores and a `vu2f serve` child process.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use vu2f::u2f::{Authenticator, Presence, PresencePolicy};

pub mod aa;

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

/// The `vu2f` binary.
pub fn vu2f(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vu2f"));
    command.arg("--store").arg(store);
    command
}

/// A running `vu2f serve --udp 127.0.0.1:0`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<(String, SocketAddr)>,
}

impl Server {
    pub fn start(store: &Path, tokens: &[&str], presence: &str) -> Server {
        let mut command = vu2f(store);
        command.args([
            "--json",
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--presence",
            presence,
        ]);
        for t in tokens {
            command.args(["--token", t]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addrs = tokens
            .iter()
            .map(|_| {
                let line = lines.next().expect("serve printed its address").unwrap();
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                (
                    v["token"].as_str().unwrap().to_owned(),
                    v["udp"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        Server { child, addrs }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
