//! `vu2f serve`: run tokens for hosts to use.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Global;
use crate::device::control::Controlled;
use crate::device::replug::{Plug, ReplugRequest};
use crate::device::uhid::{UhidDevice, UhidServer, HIDRAW_APPEARS};
use crate::device::SharedToken;
use crate::hid::CtapHid;
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
    /// Allow a UDP address that is not loopback: anyone who reaches it can use the tokens.
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
    if args.udp.is_none() && !args.uhid && args.device_service.is_none() {
        anyhow::bail!("nothing to serve on: pass --udp [ADDR], --uhid or --device-service [ADDR]");
    }
    for addr in args.udp.iter().chain(&args.device_service) {
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
    if names.is_empty() {
        anyhow::bail!("no token to serve: pass --token NAME or --all (create one with `vu2f token create NAME`)");
    }
    let tokens = store
        .load_many(&names)?
        .into_iter()
        .map(|keys| {
            let u2f = crate::u2f::Authenticator::new(keys, Presence::new(args.presence));
            crate::ctap2::Authenticator::new(u2f, args.uv.0)
        })
        .collect();
    super::runtime()?.block_on(serve_all(global, &store, tokens, &args))
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

/// Creates every token's uhid device, in order.
fn create_devices(
    path: &std::path::Path,
    tokens: &[Token],
) -> anyhow::Result<Vec<(String, UhidDevice, CtapHid<SharedToken>)>> {
    let process = std::process::id();
    let mut devices = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        let name = &token.name;
        let device = UhidDevice::create(path, name, &format!("vu2f:{process}:{index}"))
            .map_err(|e| anyhow::anyhow!("token {name}: {e}"))?;
        devices.push((name.clone(), device, CtapHid::new(token.shared.clone())));
    }
    Ok(devices)
}

/// A served token: its name, its engine as its devices share it, and its button.
struct Token {
    name: String,
    shared: SharedToken,
    button: Arc<Button>,
}

/// Shares every engine among its devices; with a prompt, asks on the terminal for its touches.
fn share(engines: Vec<crate::ctap2::Authenticator>, args: &ServeArgs) -> Vec<Token> {
    let prompt =
        args.presence == PresencePolicy::Prompt || args.uv.0 == Some(PresencePolicy::Prompt);
    engines
        .into_iter()
        .map(|engine| {
            let name = engine.u2f().name().to_owned();
            let button = Arc::clone(engine.u2f().presence().button());
            if prompt {
                spawn_prompt(name.clone(), Arc::clone(&button));
            }
            Token {
                name,
                shared: SharedToken::new(engine),
                button,
            }
        })
        .collect()
}

/// What the control socket reaches of each token: its button, and its plugs: the engine first
/// (power-cycled once per replug), then one per CTAPHID device. Also the receiving end of each
/// UDP task's plug.
fn controls(
    tokens: &[Token],
    uhid: Option<&UhidServer<SharedToken>>,
    udp: bool,
) -> (
    HashMap<String, Controlled>,
    Vec<mpsc::UnboundedReceiver<ReplugRequest>>,
) {
    let mut controlled = HashMap::with_capacity(tokens.len());
    let mut udp_replugs = Vec::new();
    for token in tokens {
        let mut plugs: Vec<Arc<dyn Plug>> = vec![Arc::new(token.shared.clone())];
        if let Some(server) = uhid {
            plugs.push(Arc::new(server.plug(&token.name)));
        }
        if udp {
            let (sender, receiver) = mpsc::unbounded_channel();
            plugs.push(Arc::new(sender));
            udp_replugs.push(receiver);
        }
        let button = Arc::clone(&token.button);
        controlled.insert(token.name.clone(), Controlled { button, plugs });
    }
    (controlled, udp_replugs)
}

/// Listens on the control socket. Without one the server runs on, out of reach of `vu2f touch`
/// and `vu2f replug`, unless `--presence touch` or `--uv touch` needs it.
fn listen_control(
    store: &keystore::Store,
    controlled: HashMap<String, Controlled>,
    args: &ServeArgs,
) -> anyhow::Result<Option<(PathBuf, tokio::task::JoinHandle<()>)>> {
    let flag = if args.presence == PresencePolicy::Touch {
        Some("--presence touch")
    } else if args.uv.0 == Some(PresencePolicy::Touch) {
        Some("--uv touch")
    } else {
        None
    };
    match (
        crate::device::control::listen(store.dir(), controlled),
        flag,
    ) {
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
    store: &keystore::Store,
    engines: Vec<crate::ctap2::Authenticator>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let tokens = share(engines, args);
    let uhid = if args.uhid {
        Some(UhidServer::new(create_devices(&args.uhid_path, &tokens)?)?)
    } else {
        None
    };
    let (controlled, udp_replugs) = controls(&tokens, uhid.as_ref(), args.udp.is_some());
    // Listening before the tokens are announced: once a token's line is out, `vu2f touch` works.
    let control = listen_control(store, controlled, args)?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut udp_replugs = udp_replugs.into_iter();
    for (index, token) in tokens.iter().enumerate() {
        let name = &token.name;
        let mut served = Served {
            token: name.clone(),
            udp: None,
            hidraw: None,
        };
        if let (Some(first), Some(replugs)) = (args.udp, udp_replugs.next()) {
            let socket = bind_udp(first, index, name).await?;
            served.udp = Some(socket.local_addr()?);
            let (name, hid) = (name.clone(), CtapHid::new(token.shared.clone()));
            tasks.spawn(async move {
                if let Err(e) = crate::device::udp::serve(socket, hid, replugs).await {
                    eprintln!("vu2f: token {name} stopped serving UDP: {e}");
                }
            });
        }
        if let Some(server) = &uhid {
            served.hidraw = Some(server.hidraw(name).ok_or_else(|| {
                anyhow::anyhow!("token {name}: the kernel made no hidraw node for the uhid device within {HIDRAW_APPEARS:?}")
            })?);
        }
        print_served(global, &served, args.presence)?;
    }
    let uhid = uhid.map(|server| {
        let stop = server.stop_handle();
        (stop, std::thread::spawn(move || server.run()))
    });
    let shared: Vec<(String, SharedToken)> = tokens
        .iter()
        .map(|t| (t.name.clone(), t.shared.clone()))
        .collect();
    let device_service = match args.device_service {
        Some(addr) => {
            Some(start_device_service(global, store, &shared, addr, args.plain_http).await?)
        }
        None => None,
    };

    super::wait_for_termination().await?;
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
    tasks.abort_all();
    Ok(())
}

/// Starts the Device Service on `addr` with every served token.
async fn start_device_service(
    global: &Global,
    store: &keystore::Store,
    tokens: &[(String, SharedToken)],
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
    let app = crate::device::service::router(crate::device::service::Tokens::new(tokens.to_vec()));
    let (handle, _task) = crate::https::serve(listener, app, tls).await?;
    if global.json {
        println!("{}", serde_json::to_string(&served)?);
    } else {
        println!("Device Service on {}", served.device_service);
    }
    Ok(handle)
}

/// The UDP socket of the `index`th token: ports count up from `first`'s (0: any free port).
async fn bind_udp(first: SocketAddr, index: usize, name: &str) -> anyhow::Result<UdpSocket> {
    let mut addr = first;
    if first.port() != 0 {
        let port = u16::try_from(usize::from(first.port()) + index)
            .map_err(|_| anyhow::anyhow!("not enough ports above {first} for every token"))?;
        addr.set_port(port);
    }
    UdpSocket::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding UDP {addr} for token {name}: {e}"))
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
