//! `vu2f serve`: run tokens for hosts to use, and with `--control` the automation API that adds
//! and drives more while it runs ([`crate::automation`]).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Global;
use crate::automation::{Fleet, FleetSettings};
use crate::device::uhid::UhidServer;
use crate::device::SharedToken;
use crate::u2f::{Button, Presence, PresencePolicy};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Serve CTAPHID over UDP, one report per datagram. With several tokens the ports count up from
    /// ADDR's port (port 0: any free port for each).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8111")]
    udp: Option<SocketAddr>,
    /// Serve each token as a HID device through /dev/uhid: the kernel shows a /dev/hidrawN that
    /// browsers, libfido2 and python-fido2 take for a U2F key.
    #[arg(long)]
    uhid: bool,
    /// Serve AA's Device Service API (FIDO U2F: sign, register, abort) over HTTPS, at
    /// 127.0.0.1:8441 like the vendor's unless ADDR is given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::device::service::DEFAULT_ADDR)]
    device_service: Option<SocketAddr>,
    /// The Device Service speaks plain HTTP instead of HTTPS.
    #[arg(long, requires = "device_service")]
    plain_http: bool,
    /// The uhid interface.
    #[arg(long, value_name = "PATH", default_value = crate::device::uhid::UHID_PATH, hide = true)]
    uhid_path: PathBuf,
    /// A token to serve (repeatable).
    #[arg(long = "token", value_name = "NAME")]
    tokens: Vec<String>,
    /// Serve every token of the store.
    #[arg(long, conflicts_with = "tokens")]
    all: bool,
    /// User presence: auto, deny, delay:MS, prompt or touch (wait for `vu2f touch NAME`).
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    presence: PresencePolicy,
    /// Built-in user verification of fido2 tokens, as a fingerprint key has it: none, or the
    /// policy that verifies (auto, delay:MS, prompt or touch; it shares the token's button), or
    /// deny: a finger that never matches, which counts uvRetries down to blocked.
    #[arg(long, default_value = "none", value_name = "POLICY", value_parser = parse_uv)]
    uv: BuiltInUv,
    /// Serve the automation API (HTTP JSON, WebDriver's virtual authenticator commands: add and
    /// remove authenticators, user verification and presence, press, replug, credentials,
    /// faults) on a Unix socket in $XDG_RUNTIME_DIR/vu2f, or on ADDR. Requests need the bearer
    /// token of the file it prints.
    #[arg(long, value_name = "ADDR", num_args = 0..=1)]
    control: Option<Option<SocketAddr>>,
    /// Allow a UDP, Device Service or automation API address that is not loopback: anyone who
    /// reaches it can use the tokens.
    #[arg(long)]
    allow_remote: bool,
}

/// What `serve` prints for the Device Service, with `--json` as one JSON line after the tokens'.
#[derive(serde::Serialize)]
struct DeviceService {
    device_service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<PathBuf>,
}

/// What `serve` prints for the automation API, with `--json` as one JSON line after the others.
#[derive(serde::Serialize)]
struct Automation {
    /// `http://ADDR` or `unix:PATH`.
    automation: String,
    token_file: PathBuf,
}

/// What `serve` prints for each token, one JSON object per line with `--json`.
#[derive(serde::Serialize)]
struct Served {
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidraw: Option<PathBuf>,
}

pub(super) fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    if args.udp.is_none() && !args.uhid && args.device_service.is_none() && args.control.is_none() {
        anyhow::bail!(
            "nothing to serve on: pass --udp [ADDR], --uhid, --device-service [ADDR] or --control [ADDR]"
        );
    }
    let control = args.control.flatten();
    for addr in args.udp.iter().chain(&args.device_service).chain(&control) {
        if !addr.ip().is_loopback() && !args.allow_remote {
            anyhow::bail!("{addr} is not a loopback address; pass --allow-remote to expose the tokens to the network");
        }
        if !addr.ip().is_loopback() {
            eprintln!("vu2f: warning: serving on {addr}: anyone who reaches it can use the tokens");
        }
    }
    let store = global.open_store()?;
    let names = if args.all {
        store.names()?
    } else {
        args.tokens.clone()
    };
    if names.is_empty() && args.control.is_none() {
        anyhow::bail!("no token to serve: pass --token NAME or --all (create one with `vu2f token create NAME`), or --control to add them while serving");
    }
    let tokens = store
        .load_many(&names)?
        .into_iter()
        .map(|keys| {
            let u2f = crate::u2f::Authenticator::new(keys, Presence::new(args.presence));
            crate::ctap2::Authenticator::new(u2f, args.uv.0)
        })
        .collect();
    super::runtime()?.block_on(serve_all(global, Arc::new(store), tokens, &args))
}

/// `--uv`: `none`, or the policy of built-in user verification.
#[derive(Debug, Clone, Copy)]
struct BuiltInUv(Option<PresencePolicy>);

fn parse_uv(text: &str) -> Result<BuiltInUv, String> {
    match text {
        "none" => Ok(BuiltInUv(None)),
        policy => policy.parse().map(|p| BuiltInUv(Some(p))),
    }
}

/// Asks on the terminal for the touches of every engine, when a policy is `prompt`.
fn prompt_for_touches(engines: &[crate::ctap2::Authenticator], args: &ServeArgs) {
    let prompt =
        args.presence == PresencePolicy::Prompt || args.uv.0 == Some(PresencePolicy::Prompt);
    if prompt {
        for engine in engines {
            let button = Arc::clone(engine.u2f().presence().button());
            spawn_prompt(engine.u2f().name().to_owned(), button);
        }
    }
}

/// Listens on the control socket. Without one the server runs on, out of reach of `vu2f touch`
/// and `vu2f replug`, unless `--presence touch` or `--uv touch` needs it.
fn listen_control(
    store: &keystore::Store,
    fleet: Arc<Fleet>,
    args: &ServeArgs,
) -> anyhow::Result<Option<(PathBuf, tokio::task::JoinHandle<()>)>> {
    let flag = if args.presence == PresencePolicy::Touch {
        Some("--presence touch")
    } else if args.uv.0 == Some(PresencePolicy::Touch) {
        Some("--uv touch")
    } else {
        None
    };
    match (crate::device::control::listen(store.dir(), fleet), flag) {
        (Ok(listening), _) => Ok(Some(listening)),
        (Err(e), None) => {
            eprintln!(
                "vu2f: warning: no control socket ({e}); `vu2f touch` and `vu2f replug` cannot \
                 reach this server, which needs it only with --presence touch"
            );
            Ok(None)
        }
        (Err(e), Some(flag)) => anyhow::bail!("{flag} needs the control socket: {e}"),
    }
}

async fn serve_all(
    global: &Global,
    store: Arc<keystore::Store>,
    engines: Vec<crate::ctap2::Authenticator>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    prompt_for_touches(&engines, args);
    let uhid = if args.uhid {
        Some(UhidServer::<SharedToken>::new(Vec::new())?)
    } else {
        None
    };
    let fleet = Arc::new(Fleet::new(FleetSettings {
        store: Arc::clone(&store),
        uhid: uhid
            .as_ref()
            .map(|server| (server.handle(), args.uhid_path.clone())),
        udp: args.udp,
        allow_remote: args.allow_remote,
    }));
    let uhid = uhid.map(|server| {
        let stop = server.stop_handle();
        (stop, std::thread::spawn(move || server.run()))
    });
    // Listening before the tokens are announced: once a token's line is out, `vu2f touch` works.
    let control = listen_control(&store, Arc::clone(&fleet), args)?;
    let mut served = Vec::with_capacity(engines.len());
    for (index, engine) in engines.into_iter().enumerate() {
        let udp = args
            .udp
            .map(|first| udp_address(first, index))
            .transpose()?;
        served.push(fleet.serve_loaded(engine, udp).await?);
    }
    for token in &served {
        let hidraw = Fleet::wait_for_hidraw(token)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let line = Served {
            token: token.id().to_owned(),
            udp: token.udp(),
            hidraw,
        };
        print_served(global, &line, args.presence)?;
    }
    let device_service = match args.device_service {
        Some(addr) => {
            let tokens = Arc::clone(&fleet) as crate::device::service::Tokens;
            Some(start_device_service(global, &store, tokens, addr, args.plain_http).await?)
        }
        None => None,
    };
    drop(served);
    let automation = match args.control {
        Some(addr) => {
            let listening =
                crate::automation::server::listen(Arc::clone(&fleet), store.dir(), addr).await?;
            print_automation(global, &listening)?;
            Some(listening)
        }
        None => None,
    };

    super::wait_for_termination().await?;
    if let Some(listening) = automation {
        listening.stop();
    }
    if let Some((stop, thread)) = uhid {
        stop.stop();
        let _ = thread.join();
    }
    if let Some(handle) = device_service {
        handle.shutdown();
    }
    if let Some((path, task)) = control {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    fleet.shutdown().await;
    Ok(())
}

fn print_automation(
    global: &Global,
    listening: &crate::automation::server::Listening,
) -> anyhow::Result<()> {
    let line = Automation {
        automation: listening.endpoint().to_string(),
        token_file: listening.token_file().to_owned(),
    };
    if global.json {
        println!("{}", serde_json::to_string(&line)?);
    } else {
        println!(
            "automation API on {} (bearer token in {})",
            line.automation,
            line.token_file.display()
        );
    }
    Ok(())
}

/// Starts the Device Service on `addr`, answered by every served token (those added through
/// the automation API later too).
async fn start_device_service(
    global: &Global,
    store: &keystore::Store,
    tokens: crate::device::service::Tokens,
    addr: SocketAddr,
    plain_http: bool,
) -> anyhow::Result<axum_server::Handle> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("binding the Device Service to {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let tls = if plain_http {
        None
    } else {
        Some(crate::https::certificate(
            store.dir(),
            "device-service",
            &bound.ip().to_string(),
        )?)
    };
    let served = DeviceService {
        device_service: format!("{}://{bound}", if plain_http { "http" } else { "https" }),
        certificate: tls.as_ref().map(|t| t.path.clone()),
    };
    let app = crate::device::service::router(tokens);
    let (handle, _task) = crate::https::serve(listener, app, tls).await?;
    if global.json {
        println!("{}", serde_json::to_string(&served)?);
    } else {
        println!("Device Service on {}", served.device_service);
    }
    Ok(handle)
}

/// The UDP address of the `index`th token: ports count up from `first`'s (0: any free port).
fn udp_address(first: SocketAddr, index: usize) -> anyhow::Result<SocketAddr> {
    let mut addr = first;
    if first.port() != 0 {
        let port = u16::try_from(usize::from(first.port()) + index)
            .map_err(|_| anyhow::anyhow!("not enough ports above {first} for every token"))?;
        addr.set_port(port);
    }
    Ok(addr)
}

fn print_served(global: &Global, served: &Served, policy: PresencePolicy) -> anyhow::Result<()> {
    if global.json {
        println!("{}", serde_json::to_string(served)?);
    } else {
        let mut line = format!("serving token {}", served.token);
        if let Some(udp) = served.udp {
            line.push_str(&format!(" on udp {udp}"));
        }
        if let Some(hidraw) = &served.hidraw {
            line.push_str(&format!(" as {}", hidraw.display()));
        }
        println!("{line} (presence {policy})");
    }
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
