//! The `vu2f` binary: parses arguments and hands them to [`vu2f::cli::run`].
use clap::Parser;

/// mimalloc: a load run allocates for every HTTP message, and glibc's malloc took 15 % of its
/// profile (`vu2f load --tokens 1000`, perf). `cap` counts the bytes in use for
/// `vu2f bench --scale` (it sets no limit).
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

fn heap_in_use() -> usize {
    ALLOCATOR.allocated()
}

fn main() -> std::process::ExitCode {
    vu2f::cli::run(vu2f::cli::Cli::parse(), Some(heap_in_use))
}
