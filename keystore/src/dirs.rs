//! Where a store lives when `--store` is not given (`DESIGN.md`, "Contracts").
use std::path::PathBuf;

/// The default store directory: `$VU2F_STORE`, else `$XDG_DATA_HOME/vu2f`, else
/// `$HOME/.local/share/vu2f`. `None` when none of these variables is set.
pub fn default_store_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("VU2F_STORE") {
        return Some(dir.into());
    }
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        return Some(PathBuf::from(data).join("vu2f"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share/vu2f"))
}
