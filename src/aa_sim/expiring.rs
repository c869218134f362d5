//! Sled records that expire (endpoint and login sessions, PROTOCOLS.md section 1.2), removed as
//! new ones come in, so that a long load test does not grow the database without bound.
//!
//! Inserts take turns at scanning the records from where the last scan stopped, twice as many as
//! were inserted since, and remove the expired ones: reads are cheap in sled where an index by
//! expiry time, one more write per insert, cost an eighth of the emulator's logons per second.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Deserialize;

/// Every this many inserts, an insert also scans for expired records.
const SWEEP_EVERY: u64 = 256;
/// How many records that scan reads: more than were inserted since the last, so the scans go
/// round the whole tree faster than it grows.
const SWEEP_READS: usize = 2 * SWEEP_EVERY as usize;

/// Records under an id, each a JSON object with the Unix second it expires at (`expires_unix`).
pub struct Expiring {
    records: sled::Tree,
    inserts: AtomicU64,
    /// Where the next scan starts: the key after the last one scanned.
    cursor: Mutex<Vec<u8>>,
}

/// The one field of a record that a scan reads.
#[derive(Deserialize)]
struct Expiry {
    expires_unix: u64,
}

impl Expiring {
    /// The records of tree `name` in `db`.
    pub fn open(db: &sled::Db, name: &str) -> Result<Self, sled::Error> {
        Ok(Self {
            records: db.open_tree(name)?,
            inserts: AtomicU64::new(0),
            cursor: Mutex::new(Vec::new()),
        })
    }

    /// Stores `value` under `id`; now and then also removes expired records.
    pub fn insert(&self, id: &str, value: &[u8], now_unix: u64) -> Result<(), sled::Error> {
        self.records.insert(id.as_bytes(), value)?;
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(now_unix, SWEEP_READS)?;
        }
        Ok(())
    }

    /// The record under `id`, expired or not.
    pub fn get(&self, id: &str) -> Result<Option<sled::IVec>, sled::Error> {
        self.records.get(id)
    }

    /// Reads up to `reads` records from where the last scan stopped (from the first after the
    /// last), and removes those that expired at or before `now_unix`; how many.
    pub fn sweep(&self, now_unix: u64, reads: usize) -> Result<usize, sled::Error> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let mut expired = sled::Batch::default();
        let (mut read, mut removed) = (0, 0);
        let mut last = None;
        for entry in self.records.range(cursor.as_slice()..).take(reads) {
            let (key, value) = entry?;
            read += 1;
            if serde_json::from_slice::<Expiry>(&value).is_ok_and(|e| e.expires_unix <= now_unix) {
                expired.remove(key.clone());
                removed += 1;
            }
            last = Some(key);
        }
        *cursor = match last {
            // The smallest key after `last`.
            Some(last) if read == reads => [&last[..], &[0]].concat(),
            _ => Vec::new(),
        };
        self.records.apply_batch(expired)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_unix: u64) -> Vec<u8> {
        format!(r#"{{"user":"alice","expires_unix":{expires_unix}}}"#).into_bytes()
    }

    fn open(dir: &std::path::Path) -> (sled::Db, Expiring) {
        let db = sled::open(dir.join("db")).unwrap();
        let expiring = Expiring::open(&db, "sessions").unwrap();
        (db, expiring)
    }

    #[test]
    fn a_sweep_removes_what_expired_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, sessions) = open(dir.path());
        sessions.insert("gone", &record(100), 0).unwrap();
        sessions.insert("last", &record(150), 0).unwrap();
        sessions.insert("kept", &record(151), 0).unwrap();
        assert_eq!(sessions.sweep(150, usize::MAX).unwrap(), 2);
        assert_eq!(sessions.get("gone").unwrap(), None);
        assert_eq!(sessions.get("last").unwrap(), None);
        assert_eq!(
            sessions.get("kept").unwrap().unwrap(),
            record(151).as_slice()
        );
        assert_eq!(sessions.sweep(150, usize::MAX).unwrap(), 0);
    }

    #[test]
    fn inserts_sweep_as_they_go_so_expired_records_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, sessions) = open(dir.path());
        let total = 40 * SWEEP_EVERY;
        for i in 0..total {
            // Each record lives one second; the clock moves a second per insert.
            let id = format!("{:08x}", i.wrapping_mul(0x9E37_79B9) as u32);
            sessions.insert(&id, &record(i + 1), i).unwrap();
        }
        let kept = sessions.records.len() as u64;
        assert!(kept <= 4 * SWEEP_EVERY, "{kept} of {total} records kept");
    }

    #[test]
    fn a_scan_goes_on_where_the_last_stopped_and_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, sessions) = open(dir.path());
        for id in ["a", "b", "c", "d", "e"] {
            sessions.insert(id, &record(1), 0).unwrap();
        }
        assert_eq!(sessions.sweep(5, 2).unwrap(), 2);
        assert_eq!(sessions.get("a").unwrap(), None);
        assert!(sessions.get("c").unwrap().is_some());
        assert_eq!(sessions.sweep(5, 2).unwrap(), 2);
        assert_eq!(sessions.get("d").unwrap(), None);
        assert_eq!(sessions.sweep(5, 2).unwrap(), 1);
        sessions.insert("a", &record(1), 0).unwrap();
        assert_eq!(sessions.sweep(5, 2).unwrap(), 1, "the scan starts over");
        assert_eq!(sessions.records.len(), 0);
    }
}
