//! `vu2f aa-sim`: run the AA emulator until interrupted.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::Global;
use crate::aa_sim::{self, SimConfig, SimOptions};

#[derive(Debug, Args)]
pub(super) struct AaSimArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8440")]
    listen: SocketAddr,
    /// Where the emulator keeps its database [default: $XDG_DATA_HOME/vu2f-aa-sim].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated once and kept in the data directory.
    #[arg(long)]
    tls: bool,
    /// Users, chains and events (JSON; see --print-config).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Allow an address that is not loopback.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Serialize)]
struct Listening {
    url: String,
    app_id: String,
    certificate: Option<PathBuf>,
}

fn default_data_dir() -> Option<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data_home.join("vu2f-aa-sim"))
}

pub(super) fn run(global: &Global, args: AaSimArgs) -> anyhow::Result<()> {
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&SimConfig::default())?);
        return Ok(());
    }
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "{} is not a loopback address; pass --allow-remote to expose the emulator to the network",
            args.listen
        );
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "vu2f: warning: the emulator listens on {}: anyone who reaches it can log on as its users",
            args.listen
        );
    }
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
            SimConfig::from_json(&text)
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?
        }
        None => SimConfig::default(),
    };
    let data_dir = args
        .data
        .or_else(default_data_dir)
        .ok_or_else(|| anyhow::anyhow!("no data directory: pass --data DIR"))?;
    super::runtime()?.block_on(async {
        let sim = aa_sim::start(SimOptions {
            listen: args.listen,
            data_dir,
            tls: args.tls,
            config,
        })
        .await?;
        let listening = Listening {
            url: sim.url.clone(),
            app_id: sim.app_id.clone(),
            certificate: sim.certificate.clone(),
        };
        if global.json {
            println!("{}", serde_json::to_string(&listening)?);
        } else {
            println!(
                "aa-sim listening on {} (App ID {})",
                listening.url, listening.app_id
            );
            if let Some(cert) = &listening.certificate {
                println!("clients trust it with --ca {}", cert.display());
            }
        }
        super::wait_for_termination().await?;
        sim.stop().await
    })
}
