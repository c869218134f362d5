//! `vu2f bench`: see [`crate::bench`].
use std::time::Duration;

use clap::Args;

use super::{print, Global};

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

pub(super) fn run(global: &Global, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 600.0,
        "--seconds must be between 0 and 600"
    );
    let report = crate::bench::run(Duration::from_secs_f64(args.seconds))?;
    print(global, &report, |r| r.to_text())
}
