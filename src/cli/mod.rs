//! # cli — the `vu2f` command line (clap). Every command takes `--store DIR` and `--json`
//! (`DESIGN.md`, "Contracts"); errors are one line on stderr and a non-zero exit.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod serve;
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
        Ok(keystore::Store::open(&self.store_dir()?)?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show and remove tokens; export the attestation CA.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Serve tokens to hosts: CTAPHID over UDP.
    Serve(serve::ServeArgs),
    /// Press the button of a token that a running `vu2f serve` serves.
    Touch {
        /// The token's name.
        name: String,
    },
    /// Measure signing throughput against the raw ECDSA limit, on one core.
    Bench(bench::BenchArgs),
    /// Run the self-check: a token registers and authenticates in-process, every signature verified.
    Demo,
}

/// Runs a parsed command line; prints errors as one line and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
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
        Command::Serve(args) => serve::run(global, args),
        Command::Touch { name } => crate::device::control::touch(&global.store_dir()?, &name),
        Command::Bench(args) => bench::run(global, args),
        Command::Demo => {
            let report = crate::selfcheck::run()?;
            print(global, &report, |r| r.to_text())
        }
    }
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
