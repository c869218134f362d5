//! `vu2f serve`: run tokens for hosts to use.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Global;
use crate::hid::CtapHid;
use crate::u2f::{Authenticator, Button, Presence, PresencePolicy};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Serve CTAPHID over UDP, one report per datagram. With several tokens the ports count up from
    /// ADDR's port (port 0: any free port for each).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8111")]
    udp: Option<SocketAddr>,
    /// A token to serve (repeatable).
    #[arg(long = "token", value_name = "NAME")]
    tokens: Vec<String>,
    /// Serve every token of the store.
    #[arg(long, conflicts_with = "tokens")]
    all: bool,
    /// User presence: auto, deny, delay:MS, prompt or touch (wait for `vu2f touch NAME`).
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    presence: PresencePolicy,
    /// Allow a UDP address that is not loopback: anyone who reaches it can use the tokens.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(serde::Serialize)]
struct Served {
    token: String,
    udp: SocketAddr,
}

pub(super) fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let Some(udp) = args.udp else {
        anyhow::bail!("nothing to serve on: pass --udp [ADDR]");
    };
    if !udp.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!("{udp} is not a loopback address; pass --allow-remote to expose the tokens to the network");
    }
    let store = global.open_store()?;
    let names = if args.all {
        store.names()?
    } else {
        args.tokens.clone()
    };
    if names.is_empty() {
        anyhow::bail!("no token to serve: pass --token NAME or --all (create one with `vu2f token create NAME`)");
    }
    let mut engines = Vec::with_capacity(names.len());
    for name in &names {
        engines.push(Authenticator::new(
            store.load(name)?,
            Presence::new(args.presence),
        ));
    }
    super::runtime()?.block_on(serve_all(global, &store, engines, udp, args.presence))
}

async fn serve_all(
    global: &Global,
    store: &keystore::Store,
    engines: Vec<Authenticator>,
    first: SocketAddr,
    policy: PresencePolicy,
) -> anyhow::Result<()> {
    let mut buttons: HashMap<String, Arc<Button>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, engine) in engines.into_iter().enumerate() {
        let name = engine.name().to_owned();
        let mut addr = first;
        if first.port() != 0 {
            let port = u16::try_from(usize::from(first.port()) + index)
                .map_err(|_| anyhow::anyhow!("not enough ports above {first} for every token"))?;
            addr.set_port(port);
        }
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding UDP {addr} for token {name}: {e}"))?;
        let bound = socket.local_addr()?;
        buttons.insert(name.clone(), Arc::clone(engine.presence().button()));
        if policy == PresencePolicy::Prompt {
            spawn_prompt(name.clone(), Arc::clone(engine.presence().button()));
        }
        let served = Served {
            token: name.clone(),
            udp: bound,
        };
        if global.json {
            println!("{}", serde_json::to_string(&served)?);
        } else {
            println!(
                "serving token {} on udp {} (presence {policy})",
                served.token, served.udp
            );
        }
        tasks.spawn(async move {
            if let Err(e) = crate::device::udp::serve(socket, CtapHid::new(engine)).await {
                eprintln!("vu2f: token {name} stopped: {e}");
            }
        });
    }
    let control = crate::device::control::listen(store.dir(), buttons)
        .map_err(|e| anyhow::anyhow!("control socket in {}: {e}", store.dir().display()))?;
    super::wait_for_termination().await?;
    control.abort();
    tasks.abort_all();
    let _ = std::fs::remove_file(crate::device::control::socket_path(store.dir()));
    Ok(())
}

/// Asks on the terminal whenever the token waits for a touch.
fn spawn_prompt(name: String, button: Arc<Button>) {
    std::thread::spawn(move || loop {
        if button.wait_for_request(Duration::from_secs(3600)) {
            eprintln!("vu2f: token {name} wants a touch: press Enter");
            let mut line = String::new();
            if std::io::stdin()
                .read_line(&mut line)
                .map_or(true, |n| n == 0)
            {
                return;
            }
            button.press();
        }
    });
}
