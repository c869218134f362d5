//! The store's directory on disk (issue 6, "Secrets at rest"): who may read it, the lock file that
//! gives it to one process, the sled database inside, and the swap that replaces that database
//! when `set_passphrase` rewrites it.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Result, StoreError};

/// The database, and where a rewrite (`set_passphrase`) builds its successor and puts it away.
pub(super) const DB: &str = "db";
pub(super) const NEXT_DB: &str = "db.next";
const OLD_DB: &str = "db.old";
/// Held (flock) by the process that has the store open, rewrites included.
const LOCK_FILE: &str = "lock";
/// sled's page cache; the store's records are small.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub(super) fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(path)? {
            restrict_permissions(&entry?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Whether `dir` is a store vu2f made (it holds `db`, or the `db.next` of a rewrite that a crash
/// interrupted: `true`) or is empty (`false`, to be made one). A directory that holds other
/// files is refused: vu2f would take it over, chmod it and write its database into it.
pub(super) fn check_is_store(dir: &Path) -> Result<bool> {
    let io = |source| StoreError::Dir {
        path: dir.to_owned(),
        source,
    };
    let mut other = None;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if name == DB || name == NEXT_DB {
            return Ok(true);
        }
        other.get_or_insert(name);
    }
    match other {
        None => Ok(false),
        Some(entry) => Err(StoreError::NotAStore {
            path: dir.to_owned(),
            entry: entry.to_string_lossy().into_owned(),
        }),
    }
}

/// Refuses a store whose secrets other users could read: an entry they can reach (every directory
/// above it searchable by them) and read. A 0644 file that sled made inside the 0700 store is
/// unreachable, so it passes; a store directory opened to the group does not.
pub(super) fn check_private(dir: &Path) -> Result<()> {
    fn walk(path: &Path, reach: u32, top: &Path) -> Result<()> {
        let io = |source| StoreError::Dir {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        // `reach`: the group (0o070) and other (0o007) bits of those who can get this far.
        let readable = mode & reach & 0o044;
        if readable != 0 {
            let who = if readable & 0o004 != 0 {
                "everyone"
            } else {
                "its group"
            };
            return Err(StoreError::NotPrivate {
                path: top.to_owned(),
                detail: format!("{} (mode {mode:o}) is readable by {who}", path.display()),
            });
        }
        if meta.is_dir() {
            let searchable = mode & reach & 0o011;
            let reach = (searchable * 7) & reach;
            if reach != 0 {
                for entry in std::fs::read_dir(path).map_err(io)? {
                    walk(&entry.map_err(io)?.path(), reach, top)?;
                }
            }
        }
        Ok(())
    }
    walk(dir, 0o077, dir)
}

/// How long [`take_lock`] retries a held lock before calling the store in use. A lock released
/// a moment ago can still be held by a child process that another thread forked and that has not
/// yet reached `exec` (until then it shares every open file, close-on-exec or not): the keystore's
/// own abort test caught a sibling test's store held so. The window is well under a millisecond;
/// a store that a running server holds is reported after this long.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

/// Takes the store's lock file, or says which process kind holds it.
pub(super) fn take_lock(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StoreError::Dir { path, source })?;
    let started = std::time::Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(StoreError::InUse(dir.to_owned())),
            Err(e) => {
                return Err(StoreError::Dir {
                    path: dir.to_owned(),
                    source: e.into(),
                })
            }
        }
    }
}

/// How long [`open_db`] waits for this process's own last handle on a database to close.
const DB_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the sled database at `path`; the caller holds the store's lock file.
///
/// sled's own lock on its files is released only when the last reference to the database goes,
/// and a write sled handed to its thread pool keeps one for a moment after `flush` returns. Since
/// every vu2f process takes the store's lock file first, a database locked while we hold that
/// file is this process's own, closing: wait for it (briefly) rather than call the store in use.
pub(super) fn open_db(dir: &Path, path: &Path) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("lock") => {
                if started.elapsed() >= DB_LOCK_PATIENCE {
                    return Err(StoreError::InUse(dir.to_owned()));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(other) => return Err(StoreError::Db(other)),
        }
    }
}

/// Replaces the database with the rewritten one: `db` → `db.old`, `db.next` → `db`, then
/// `db.old` is deleted.
pub(super) fn swap_in_rewrite(dir: &Path) -> std::io::Result<()> {
    std::fs::rename(dir.join(DB), dir.join(OLD_DB))?;
    std::fs::rename(dir.join(NEXT_DB), dir.join(DB))?;
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::remove_dir_all(dir.join(OLD_DB))
}

/// Finishes or forgets a rewrite that a crash interrupted: a `db.next` without a `db` is the
/// new database half swapped in; a `db.next` beside a `db` never was.
pub(super) fn finish_rewrite(dir: &Path) -> std::io::Result<()> {
    let (db, next, old) = (dir.join(DB), dir.join(NEXT_DB), dir.join(OLD_DB));
    if !db.exists() && next.exists() {
        std::fs::rename(&next, &db)?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    if next.exists() {
        std::fs::remove_dir_all(&next)?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A directory of other files is refused as not a store, with no chmod advice and nothing
    /// changed in it; an empty one becomes a store.
    #[test]
    fn a_directory_that_is_not_a_store_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("etc");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("passwd"), "root:x:0:0").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = Store::open(&other).err().expect("not a store");
        assert!(matches!(refused, StoreError::NotAStore { .. }), "{refused}");
        let text = refused.to_string();
        assert!(text.contains("is not a vu2f store"), "{text}");
        assert!(!text.contains("chmod"), "{text}");
        let mode = std::fs::metadata(&other).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "untouched");
        let names: Vec<_> = std::fs::read_dir(&other).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing written");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::open(&empty).expect("an empty directory becomes a store"));
        let mode = std::fs::metadata(&empty).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "made private");
    }

    #[test]
    fn a_store_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        drop(Store::open(&path).unwrap());
        let set = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(&path, 0o750);
        let refused = Store::open(&path)
            .err()
            .expect("a group-readable store is refused");
        assert!(matches!(refused, StoreError::NotPrivate { .. }));
        assert!(refused.to_string().contains("chmod -R go="), "{refused}");
        set(&path, 0o700);
        let conf = path.join("db").join("conf");
        set(&conf, 0o644);
        drop(Store::open(&path).expect("a 0644 file in a 0700 store is out of reach"));
        set(&conf, 0o644);
        set(&path, 0o711);
        set(&path.join("db"), 0o711);
        let refused = Store::open(&path)
            .err()
            .expect("searchable and readable by others");
        assert!(
            refused.to_string().contains("readable by everyone"),
            "{refused}"
        );
    }
}
