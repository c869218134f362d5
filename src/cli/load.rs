//! `vu2f load`: many virtual tokens logging on at once, against the embedded emulator or a server.
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::companion::{PasswordArgs, ServerArgs};
use super::Global;
use crate::load::{Fido2Users, LoadOptions, Model, Target, Until, FIDO2_EVENT};

#[derive(Debug, Args)]
pub(super) struct LoadArgs {
    /// Run the emulator in this process (the default when no --server is given).
    #[arg(long, conflicts_with = "server")]
    embedded: bool,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    password: PasswordArgs,
    /// How many tokens (and users): PREFIX00001 … created in the store when missing.
    #[arg(long, default_value_t = 100)]
    tokens: usize,
    /// Tokens and users are named PREFIX followed by five digits.
    #[arg(long, default_value = "load-")]
    prefix: String,
    /// Enroll every token first (always done with --embedded).
    #[arg(long)]
    enroll: bool,
    /// The method every user is enrolled with and logs on with: U2F:1, or FIDO2:1 (WebAuthn,
    /// as AA's portal runs it).
    #[arg(long, value_name = "METHOD", default_value = crate::aa::U2F)]
    method: String,
    /// A mixed population: this share of the users (0 to 1, e.g. 0.5) on FIDO2:1, spread evenly
    /// among the rest, which are on U2F:1.
    #[arg(long, value_name = "SHARE", conflicts_with = "method")]
    fido2_share: Option<f64>,
    /// The event the U2F:1 users log on to.
    #[arg(long, default_value = "Search Card")]
    event: String,
    /// The chain the U2F:1 users log on with, by name [default: the first of each user's chains
    /// for the event that a token completes].
    #[arg(long, value_name = "NAME")]
    chain: Option<String>,
    /// The event the FIDO2:1 users log on to.
    #[arg(long, value_name = "EVENT", default_value = FIDO2_EVENT)]
    fido2_event: String,
    /// The chain the FIDO2:1 users log on with, by name [default: the first that a token
    /// completes].
    #[arg(long, value_name = "NAME")]
    fido2_chain: Option<String>,
    /// Closed model: this many logons in flight.
    #[arg(long, value_name = "C", conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open model: this many logons started per second, however the server keeps up.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// How long to start logons for (20s, 5m, 1h, or seconds) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse, conflicts_with = "logons")]
    duration: Option<Duration>,
    /// Logons to start.
    #[arg(long, value_name = "M")]
    logons: Option<u64>,
    /// How long the load takes to rise to its level (30s, 1m, or seconds).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse, default_value = "0s")]
    ramp_up: Duration,
    /// With --embedded: hold every answer back this long (a slow server on purpose).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    server_delay_ms: u64,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

pub(super) fn run(global: &Global, args: LoadArgs) -> anyhow::Result<()> {
    let target = if args.server.server.is_none() || args.embedded {
        Target::Embedded {
            server_delay: Duration::from_millis(args.server_delay_ms),
        }
    } else {
        Target::Server {
            url: args.server.url()?.to_owned(),
            trust: args.server.trust(),
            access: args.server.access()?,
            app_ids: args.server.app_ids().to_vec(),
            password: args.password.password()?,
        }
    };
    let embedded = matches!(target, Target::Embedded { .. });
    anyhow::ensure!(args.tokens > 0, "--tokens must be at least 1");
    let model = match (args.concurrency, args.rate) {
        (_, Some(rate)) if rate > 0.0 && rate.is_finite() => Model::Rate(rate),
        (_, Some(rate)) => anyhow::bail!("--rate {rate}: must be a positive number"),
        (Some(c), None) => Model::Concurrency(c.clamp(1, args.tokens)),
        (None, None) => Model::Concurrency(32.min(args.tokens)),
    };
    let until = match (args.duration, args.logons) {
        (_, Some(m)) => Until::Logons(m),
        (Some(d), None) if !d.is_zero() => Until::Duration(d),
        (Some(_), None) => anyhow::bail!("--duration must be longer than zero"),
        (None, None) => Until::Duration(Duration::from_secs(10)),
    };
    let share = match (args.fido2_share, args.method.as_str()) {
        (Some(share), _) if (0.0..=1.0).contains(&share) => share,
        (Some(share), _) => anyhow::bail!("--fido2-share {share}: must be from 0 to 1"),
        (None, crate::aa::U2F) => 0.0,
        (None, crate::aa::FIDO2) => 1.0,
        (None, other) => anyhow::bail!(
            "--method {}: vu2f load runs {} and {}",
            crate::client::one_line(other),
            crate::aa::U2F,
            crate::aa::FIDO2
        ),
    };
    let options = LoadOptions {
        target,
        tokens: args.tokens,
        prefix: args.prefix,
        enroll: args.enroll || embedded,
        event: args.event,
        chain: args.chain,
        fido2: Fido2Users {
            share,
            event: args.fido2_event,
            chain: args.fido2_chain,
        },
        model,
        until,
        ramp_up: args.ramp_up,
        progress: !global.json,
        timeout: args.server.timeout(),
    };
    let store = global.open_store()?;
    let report = super::runtime()?.block_on(crate::load::run(&store, options))?;
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_html())
            .map_err(|e| anyhow::anyhow!("--report {}: {e}", path.display()))?;
    }
    super::print(global, &report, |r| r.to_text())
}
