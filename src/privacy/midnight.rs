//! Sessions that cross midnight.
//!
//! Visitor ids change with the salt at 00:00 UTC. Without help, someone
//! reading at 23:55 and clicking at 00:05 would become two visitors and two
//! visits. Plausible's answer, and ours: while yesterday's salt is still held
//! (the grace period), an event whose id *under yesterday's salt* belongs to
//! a session active in the last 30 minutes keeps that id — the session simply
//! continues. Nothing links the two days' ids in storage: the continuing
//! event is stored under yesterday's id only.
//!
//! The bridge remembers ids seen in the last [`SESSION_GAP`] before midnight
//! (and ids that continued after it), in memory only, bounded, and is cleared
//! when yesterday's salt is destroyed. With several instances behind a
//! non-sticky load balancer a crossing session continues only if it returns to
//! an instance that saw it; otherwise it is counted as a new visit.

use super::VisitorId;
use super::visitor::site_key;
use quick_cache::sync::Cache;
use time::{Duration, OffsetDateTime, Time};

/// Inactivity that ends a session (Plausible, Matomo and GA use 30 minutes).
pub const SESSION_GAP: Duration = Duration::minutes(30);

/// Recently active visitor ids around midnight.
pub struct MidnightBridge {
    /// Keyed by ([`site_key`], visitor id): no allocation per lookup.
    recent: Cache<(u64, [u8; 16]), i64>,
}

impl MidnightBridge {
    /// Remember at most `capacity` ids (48 bytes each plus overhead).
    pub fn new(capacity: usize) -> Self {
        MidnightBridge { recent: Cache::new(capacity.max(1)) }
    }

    /// Is `now` in the last [`SESSION_GAP`] of its UTC day?
    pub fn is_closing(now: OffsetDateTime) -> bool {
        let midnight = now.replace_time(Time::MIDNIGHT) + Duration::DAY;
        midnight - now <= SESSION_GAP
    }

    /// Record that `id` (on `site`) was active at `now`. Only ids active
    /// shortly before midnight, or continuing after it, are kept.
    pub fn note(&self, site: &str, id: &VisitorId, now: OffsetDateTime, continued: bool) {
        if continued || Self::is_closing(now) {
            self.recent.insert((site_key(site), id.0), now.unix_timestamp());
        }
    }

    /// Was `id` (under yesterday's salt) active on `site` within
    /// [`SESSION_GAP`] of `now`?
    pub fn is_active(&self, site: &str, id: &VisitorId, now: OffsetDateTime) -> bool {
        match self.recent.get(&(site_key(site), id.0)) {
            Some(seen) => now.unix_timestamp() - seen <= SESSION_GAP.whole_seconds(),
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Forget everything (when yesterday's salt is destroyed).
    pub fn clear(&self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn remembers_only_the_last_half_hour_of_the_day() {
        let b = MidnightBridge::new(100);
        let id = VisitorId([1; 16]);
        b.note("a.com", &id, datetime!(2026-11-22 23:00 UTC), false);
        assert!(b.is_empty());
        b.note("a.com", &id, datetime!(2026-11-22 23:45 UTC), false);
        assert!(b.is_active("a.com", &id, datetime!(2026-11-23 00:10 UTC)));
        assert!(!b.is_active("b.com", &id, datetime!(2026-11-23 00:10 UTC)), "per site");
        assert!(!b.is_active("a.com", &id, datetime!(2026-11-23 00:20 UTC)), "35 minutes idle ends the session");
        b.note("a.com", &id, datetime!(2026-11-23 00:10 UTC), true);
        assert!(b.is_active("a.com", &id, datetime!(2026-11-23 00:35 UTC)), "continuing refreshes");
        b.clear();
        assert!(!b.is_active("a.com", &id, datetime!(2026-11-23 00:36 UTC)));
    }
}
