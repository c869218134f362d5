//! The `vu2f` binary: parses arguments and hands them to [`vu2f::cli::run`].
use clap::Parser;

/// mimalloc: a load run allocates for every HTTP message, and glibc's malloc took 15 % of its
/// profile (`vu2f load --tokens 1000`, perf); see the README's performance section.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vu2f::cli::run(vu2f::cli::Cli::parse())
}
