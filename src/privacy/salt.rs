//! Daily salts.
//!
//! A salt is 32 bytes from the operating system's CSPRNG, valid for one UTC
//! day. The visitor hash is keyed by it, so once every copy of a day's salt is
//! destroyed, that day's visitor ids can no longer be linked to any IP — the
//! ids become anonymous rather than pseudonymous. Salts zeroize their memory
//! on drop and never print their bytes.
//!
//! [`SaltBook`] is the in-memory set of salts an instance holds (today's, and
//! for a grace period yesterday's, plus tomorrow's once agreed). Its one rule:
//! **the first salt recorded for a day wins for the life of the process**, so
//! one instance can never use two different salts for one day.

use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use time::Date;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a salt in bytes (a BLAKE3 key).
pub const SALT_LEN: usize = 32;

/// One day's secret. Never logged, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Salt([u8; SALT_LEN]);

impl Salt {
    /// A fresh salt from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SALT_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Salt(bytes))
    }

    /// Rebuild a salt from bytes (opened from its sealed form, or in tests).
    pub fn from_bytes(bytes: [u8; SALT_LEN]) -> Self {
        Salt(bytes)
    }

    /// The secret bytes. Only the visitor hash, sealing, and audits that
    /// prove destruction (tests scanning disks for these bytes) use this.
    /// Never log, print or store the result.
    pub fn expose_secret(&self) -> &[u8; SALT_LEN] {
        &self.0
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<secret>)")
    }
}

/// The salts this process holds, by UTC day.
///
/// Every request reads it, a few times a day something writes it, so reads
/// are lock-free ([`ArcSwap`]: one atomic load) and writers copy the small
/// map under a mutex that readers never touch.
#[derive(Default)]
pub struct SaltBook {
    days: ArcSwap<BTreeMap<Date, Arc<Salt>>>,
    writer: Mutex<()>,
}

impl SaltBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// The salt for `day`, if held. Lock-free.
    pub fn get(&self, day: Date) -> Option<Arc<Salt>> {
        self.days.load().get(&day).cloned()
    }

    /// Record the salt for `day`. If one is already held, it is kept and
    /// returned: a day's salt never changes inside one process.
    pub fn adopt(&self, day: Date, salt: Salt) -> Arc<Salt> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.days.load_full();
        if let Some(held) = current.get(&day) {
            return held.clone();
        }
        let mut next = (*current).clone();
        let salt = Arc::new(salt);
        next.insert(day, salt.clone());
        self.days.store(Arc::new(next));
        salt
    }

    /// Forget every salt for days before `day`; returns the days forgotten.
    /// The bytes are zeroized once the last in-flight user drops its `Arc`.
    pub fn forget_before(&self, day: Date) -> Vec<Date> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.days.load_full()).clone();
        let keep = next.split_off(&day);
        let gone: Vec<Date> = next.keys().copied().collect();
        if !gone.is_empty() {
            self.days.store(Arc::new(keep));
        }
        gone
    }

    /// Days currently held, oldest first.
    pub fn days(&self) -> Vec<Date> {
        self.days.load().keys().copied().collect()
    }
}

impl fmt::Debug for SaltBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltBook").field("days", &self.days()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn salts_are_random() {
        let a = Salt::generate().expect("rng");
        let b = Salt::generate().expect("rng");
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), &[0u8; SALT_LEN]);
    }

    #[test]
    fn debug_hides_bytes() {
        let s = Salt::from_bytes([0xAB; SALT_LEN]);
        let shown = format!("{s:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn first_salt_for_a_day_wins() {
        let book = SaltBook::new();
        let d = date!(2026 - 11 - 22);
        let first = book.adopt(d, Salt::from_bytes([1; SALT_LEN]));
        let second = book.adopt(d, Salt::from_bytes([2; SALT_LEN]));
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(book.get(d).expect("held").expose_secret(), &[1; SALT_LEN]);
    }

    #[test]
    fn forgetting_drops_older_days_only() {
        let book = SaltBook::new();
        for (i, d) in [date!(2026 - 11 - 20), date!(2026 - 11 - 21), date!(2026 - 11 - 22)].into_iter().enumerate() {
            book.adopt(d, Salt::from_bytes([i as u8; SALT_LEN]));
        }
        assert_eq!(book.forget_before(date!(2026 - 11 - 21)), vec![date!(2026 - 11 - 20)]);
        assert_eq!(book.days(), vec![date!(2026 - 11 - 21), date!(2026 - 11 - 22)]);
    }
}
