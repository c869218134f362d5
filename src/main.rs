//! The `vu2f` binary: parses arguments and hands them to [`vu2f::cli::run`].
use clap::Parser;

fn main() -> std::process::ExitCode {
    vu2f::cli::run(vu2f::cli::Cli::parse())
}
