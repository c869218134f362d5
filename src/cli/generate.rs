//! `vu2f completions SHELL` and `vu2f manpages DIR`: shell completions (clap_complete) and man
//! pages (clap_mangen) generated from the same clap definitions the binary parses with, so they
//! never drift from it. The Debian package (`scripts/package.sh`) ships both.
use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// Prints the completion script for `shell` to stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "vu2f", &mut std::io::stdout());
    Ok(())
}

/// Writes `vu2f.1` and one page per subcommand (`vu2f-serve.1`, `vu2f-token-create.1`, …) into
/// `dir`.
pub(super) fn manpages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mut command = Cli::command();
    command.build();
    write_pages(&command, "vu2f", dir)
}

fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let page = command.clone().name(name.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::fs::write(&path, out).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
