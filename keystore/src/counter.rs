//! The crash-safe global signature counter (`DESIGN.md`, "Counter"; U2F raw message formats v1.2,
//! section 5.4: the counter "is incremented by one for each successful authentication").
//!
//! A value is handed out only when a ceiling that is already flushed to disk covers it:
//!
//! ```text
//!   persisted ceiling C (flushed)          in memory: next = n, ceiling = C
//!   ... n-1 | n  n+1  ...  C | C+1 ...     n..=C may be handed out without touching the disk;
//!           ^ next           ^ ceiling     at n = C+1, C += block is written and flushed first
//! ```
//!
//! After a crash the counter resumes at `C + 1`, above anything it could have handed out, so no
//! value repeats and none goes back; in steady state each signature advances it by exactly one and
//! only one flush happens per `block` signatures. A counter dropped cleanly (the process ends, the
//! token is unloaded) gives the unused rest of its block back: it writes `n - 1`, the last value
//! it handed out, so the next run goes on at `n`. Only a crash skips ahead, so a token used by one
//! short command per CI job advances as slowly as a real key. The write is not flushed on its own:
//! sled flushes it when the store's last handle closes, and if that never happens the persisted
//! ceiling is still the higher, safe one.
use crate::error::{Result, StoreError};

/// Values reserved per flush by default.
pub const DEFAULT_COUNTER_BLOCK: u32 = 4096;

/// One token's signature counter. Obtained from [`crate::Store::load`]; a process holds at most
/// one per token.
pub struct Counter {
    tree: sled::Tree,
    name: String,
    next: u64,
    ceiling: u32,
    block: u32,
    flushes: u64,
    _lease: crate::store::TokenLease,
}

impl Counter {
    pub(crate) fn open(
        tree: sled::Tree,
        name: &str,
        block: u32,
        lease: crate::store::TokenLease,
    ) -> Result<Self> {
        let ceiling = read_ceiling(&tree, name)?;
        Ok(Self {
            tree,
            name: name.to_owned(),
            next: u64::from(ceiling) + 1,
            ceiling,
            block: block.max(1),
            flushes: 0,
            _lease: lease,
        })
    }

    /// Hands out the next value: strictly greater than every value handed out before, in this run
    /// or any earlier one.
    pub fn next_value(&mut self) -> Result<u32> {
        if self.next > u64::from(self.ceiling) {
            self.reserve()?;
        }
        let value = u32::try_from(self.next)
            .map_err(|_| StoreError::CounterExhausted(self.name.clone()))?;
        self.next += 1;
        Ok(value)
    }

    /// The ceiling the next reservation would persist; `None` when the counter is exhausted.
    pub(crate) fn next_ceiling(&self) -> Option<u32> {
        let ceiling = self.ceiling.saturating_add(self.block);
        (ceiling != self.ceiling && self.next <= u64::from(u32::MAX)).then_some(ceiling)
    }

    /// Takes `ceiling` as reserved: the caller has written and flushed it.
    pub(crate) fn reserved(&mut self, ceiling: u32) {
        self.ceiling = ceiling;
    }

    fn reserve(&mut self) -> Result<()> {
        let Some(ceiling) = self.next_ceiling() else {
            return Err(StoreError::CounterExhausted(self.name.clone()));
        };
        self.tree
            .insert(self.name.as_bytes(), &ceiling.to_be_bytes())?;
        self.tree.flush()?;
        self.flushes += 1;
        self.ceiling = ceiling;
        Ok(())
    }

    /// Makes every value handed out from now on greater than `value`, durably (flushed when the
    /// persisted ceiling is below it): the automation API's Add Credential with a signCount. A
    /// value the counter is past already changes nothing: the counter never goes back.
    pub fn skip_past(&mut self, value: u32) -> Result<()> {
        if u64::from(value) < self.next {
            return Ok(());
        }
        if value >= self.ceiling {
            let ceiling = value.saturating_add(self.block);
            self.tree
                .insert(self.name.as_bytes(), &ceiling.to_be_bytes())?;
            self.tree.flush()?;
            self.flushes += 1;
            self.ceiling = ceiling;
        }
        self.next = u64::from(value) + 1;
        Ok(())
    }

    /// The last value handed out (0: none yet in this run nor, as far as the store knows, before).
    pub fn last_value(&self) -> u32 {
        u32::try_from(self.next.saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// How many times this counter flushed the database.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }
}

impl Drop for Counter {
    /// Gives the unused reservation back: the persisted ceiling becomes the last value handed out.
    fn drop(&mut self) {
        let last = self.next.saturating_sub(1);
        if let Ok(last) = u32::try_from(last) {
            if last < self.ceiling {
                // Lowering the ceiling can only be lost, never be wrong: every value handed out is
                // at most `last`.
                let _ = self.tree.insert(self.name.as_bytes(), &last.to_be_bytes());
            }
        }
    }
}

pub(crate) fn read_ceiling(tree: &sled::Tree, name: &str) -> Result<u32> {
    match tree.get(name.as_bytes())? {
        None => Ok(0),
        Some(bytes) => {
            let raw: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                what: format!("counter of {name:?}"),
                detail: format!("{} bytes, expected 4", bytes.len()),
            })?;
            Ok(u32::from_be_bytes(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(tree: &sled::Tree, block: u32) -> Counter {
        let lease = crate::store::TokenLease::for_tests("t");
        Counter::open(tree.clone(), "t", block, lease).unwrap()
    }

    #[test]
    fn skip_past_moves_on_durably_and_never_back() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("counters").unwrap();
        let mut first = counter(&tree, 16);
        assert_eq!(first.next_value().unwrap(), 1);
        first.skip_past(1000).unwrap();
        assert_eq!(first.next_value().unwrap(), 1001);
        first.skip_past(5).unwrap();
        assert_eq!(first.next_value().unwrap(), 1002, "never back");
        assert!(read_ceiling(&tree, "t").unwrap() >= 1002, "persisted above");
        std::mem::forget(first);
        let mut after_a_crash = counter(&tree, 16);
        assert!(after_a_crash.next_value().unwrap() > 1002);
    }
}
