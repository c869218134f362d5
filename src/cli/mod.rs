//! # cli — the `vu2f` command line (clap). Every command takes `--store DIR` and `--json`
//! (`DESIGN.md`, "Contracts"); errors are one line on stderr and a non-zero exit.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod aa_sim;
mod bench;
mod companion;
mod ctl;
mod duration;
mod generate;
mod load;
mod serve;
mod store;
mod token;

/// vu2f: a software U2F security key for Linux.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The key store directory [default: $VU2F_STORE, else $XDG_DATA_HOME/vu2f, else ~/.local/share/vu2f]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Read the passphrase of a locked store from this file [default: $VU2F_PASSPHRASE, else
    /// asked on the terminal]
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Bytes of heap in use, from the binary's allocator.
    #[arg(skip)]
    heap_in_use: Option<crate::bench::HeapMeter>,
}

impl Global {
    fn store_dir(&self) -> anyhow::Result<PathBuf> {
        self.store
            .clone()
            .or_else(keystore::default_store_dir)
            .ok_or_else(|| {
                anyhow::anyhow!("no store directory: pass --store DIR or set VU2F_STORE")
            })
    }

    fn open_store(&self) -> anyhow::Result<keystore::Store> {
        let dir = self.store_dir()?;
        Ok(keystore::Store::open_unlocking(&dir, || {
            store::passphrase(self, &dir)
        })?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show and remove tokens; export the attestation CA.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Lock the store's secrets with a passphrase, change it, or remove it.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Serve tokens to hosts: as HID devices through uhid (browsers, libfido2), CTAPHID over UDP,
    /// and AA's Device Service API.
    Serve(serve::ServeArgs),
    /// Press the button of a token that a running `vu2f serve` serves.
    Touch {
        /// The token's name.
        name: String,
    },
    /// Unplug a token that a running `vu2f serve` serves and plug it in again, as at power-up.
    ///
    /// Its uhid device is made anew (a new hidraw node); its CTAPHID channels, a pending request
    /// and a touch not used yet are forgotten; its keys and counter stay. Returns once the token
    /// is back.
    Replug {
        /// The token's name.
        name: String,
    },
    /// Drive a running `vu2f serve --control`: add, list and remove authenticators, flip their
    /// user verification and presence, press, replug, put credentials in and read them back,
    /// arm faults.
    Ctl(ctl::CtlArgs),
    /// Measure signing throughput against the raw ECDSA limit, on one core.
    Bench(bench::BenchArgs),
    /// Log a user on to an AA server with a token, through the first of the user's chains that
    /// vu2f can complete (U2F:1, and PASSWORD:1 with a password).
    Logon(Box<companion::LogonArgs>),
    /// Enroll a token for a user on an AA server (a password logon, then U2F:1 enrollment as AA's
    /// portal does it).
    Enroll(Box<companion::EnrollArgs>),
    /// List a user's templates, or test an enrolled U2F template with a token.
    #[command(subcommand)]
    Template(companion::TemplateCommand),
    /// Log on with many virtual tokens at once and report throughput and latency.
    Load(Box<load::LoadArgs>),
    /// Run the AA emulator: the REST API of logon and enrollment, with real U2F verification.
    AaSim(aa_sim::AaSimArgs),
    /// The whole flow in one process: the emulator, a token, enrollment and logon, step by step.
    Demo,
    /// Check a U2F or FIDO2 token: register, authenticate, verify, and when it speaks CTAP2
    /// getInfo, makeCredential and getAssertion (a throwaway in-process token by default).
    Probe(ProbeArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (vu2f.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages {
        /// Where to write them.
        dir: PathBuf,
    },
}

/// Runs a parsed command line; prints errors as one line and returns the exit code.
/// `heap_in_use` tells the bytes of heap in use, where the binary's allocator counts them.
pub fn run(mut cli: Cli, heap_in_use: Option<crate::bench::HeapMeter>) -> ExitCode {
    cli.global.heap_in_use = heap_in_use;
    std::panic::set_hook(Box::new(|info| {
        eprintln!("vu2f: internal error: {info}");
    }));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("VU2F_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vu2f: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Token(command) => token::run(global, command),
        Command::Store(command) => store::run(global, command),
        Command::Serve(args) => serve::run(global, args),
        Command::Touch { name } => crate::device::control::touch(&global.store_dir()?, &name),
        Command::Replug { name } => crate::device::control::replug(&global.store_dir()?, &name),
        Command::Ctl(args) => ctl::run(global, args),
        Command::Bench(args) => bench::run(global, args),
        Command::Logon(args) => companion::logon(global, *args),
        Command::Enroll(args) => companion::enroll(global, *args),
        Command::Template(command) => companion::template(global, command),
        Command::AaSim(args) => aa_sim::run(global, args),
        Command::Load(args) => load::run(global, *args),
        Command::Demo => demo(global),
        Command::Probe(args) => probe(global, args),
        Command::Completions { shell } => generate::completions(shell),
        Command::Manpages { dir } => generate::manpages(&dir),
    }
}

#[derive(Debug, Args)]
struct ProbeArgs {
    /// A U2F or FIDO2 HID device: the virtual one of `vu2f serve --uhid`, or a physical key.
    #[arg(long, value_name = "PATH")]
    hidraw: Option<PathBuf>,
    /// A token served by `vu2f serve --udp`.
    #[arg(long, value_name = "ADDR", conflicts_with = "hidraw")]
    udp: Option<std::net::SocketAddr>,
    /// Also measure AUTHENTICATE latency over this many rounds (a physical key wants a touch each).
    #[arg(long, default_value_t = 0)]
    rounds: usize,
    /// How long to wait for a touch (20s, 1m, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
    touch_timeout: std::time::Duration,
}

fn probe(global: &Global, args: ProbeArgs) -> anyhow::Result<()> {
    use crate::transport::{HidrawTransport, TokenTransport, UdpTransport};
    let (target, token): (String, Option<Box<dyn TokenTransport>>) = match (&args.hidraw, args.udp)
    {
        (Some(path), _) => (
            format!("hidraw {}", path.display()),
            Some(Box::new(HidrawTransport::open_path(path)?)),
        ),
        (None, Some(addr)) => (
            format!("udp {addr}"),
            Some(Box::new(UdpTransport::connect(addr)?)),
        ),
        (None, None) => ("a throwaway token in this process".into(), None),
    };
    let report = crate::probe::run(target, token, args.rounds, args.touch_timeout)?;
    print(global, &report, |r| r.to_text())
}

/// Prints the demo as it happens (or its report with `--json`).
struct DemoPrinter {
    live: bool,
}

impl crate::demo::DemoObserver for DemoPrinter {
    fn section(&mut self, title: &str) {
        if self.live {
            println!("\n{title}");
        }
    }

    fn step(&mut self, step: &crate::client::Step) {
        if self.live {
            println!("  {}", step.to_line());
        }
    }

    fn result(&mut self, result: &str) {
        if self.live {
            println!("  => {result}");
        }
    }
}

fn demo(global: &Global) -> anyhow::Result<()> {
    let mut printer = DemoPrinter { live: !global.json };
    if printer.live {
        println!("vu2f demo: the AA emulator on loopback, a virtual token in this process");
    }
    let report = runtime()?.block_on(crate::demo::run(&mut printer))?;
    print(global, &report, |r| {
        format!(
            "\nlogged on to {} as {} with token {:?}: login_session_id {}\n",
            r.server, r.user, r.token, r.login_session_id
        )
    })
}

/// The tokio runtime of a command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Returns on SIGINT or SIGTERM.
async fn wait_for_termination() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Prints `value` as pretty JSON with `--json`, else as `text(value)`.
fn print<T: serde::Serialize>(
    global: &Global,
    value: &T,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if global.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}
