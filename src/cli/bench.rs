//! `vu2f bench`: see [`crate::bench`].
use std::time::Duration;

use clap::Args;

use super::{print, Global};

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// How long each measurement runs (2s, 1m, or seconds; at most 10m).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse, default_value = "2s")]
    seconds: Duration,
    /// Instead: create this many tokens in one process, use each once, and measure the memory
    /// per token.
    #[arg(long, value_name = "TOKENS")]
    scale: Option<usize>,
}

pub(super) fn run(global: &Global, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.seconds.is_zero() && args.seconds <= Duration::from_secs(600),
        "--seconds must be longer than zero and at most 10m"
    );
    if let Some(tokens) = args.scale {
        anyhow::ensure!(tokens > 0, "--scale needs at least one token");
        let dir = tempfile::tempdir()?;
        let store = dir.path().join("store");
        let started = std::time::Instant::now();
        let created = std::process::Command::new(std::env::current_exe()?)
            .arg("--store")
            .arg(&store)
            .args(["token", "create", "scale", "--count", &tokens.to_string()])
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(created.success(), "creating {tokens} tokens failed");
        let heap = global
            .heap_in_use
            .ok_or_else(|| anyhow::anyhow!("--scale needs the vu2f binary's counting allocator"))?;
        let report = crate::bench::scale(&store, started.elapsed().as_secs_f64(), heap)?;
        return print(global, &report, |r| r.to_text());
    }
    let report = crate::bench::run(args.seconds)?;
    print(global, &report, |r| r.to_text())
}
