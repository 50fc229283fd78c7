//! Visits: which session each event belongs to, decided by the collector.
//!
//! A visit (session) is a run of a visitor's interactive events on one site
//! with no gap longer than [`SESSION_GAP`] (30 minutes, as Plausible,
//! Matomo and GA). Headcount decides this **at ingest**, like Plausible,
//! and not at query time: [`Sessions`] keeps a bounded in-memory map
//! `(site, visitor id) → visit` and stamps every event with a [`Session`].
//!
//! Why here and not in SQL: sessionizing at query time means grouping every
//! event of the range by visitor and sorting by time — over a 30-day range
//! of 10M events that is seconds on ClickHouse 18.16 (no window functions),
//! and no rollup can pre-compute it, because a visit's bounce and duration
//! are only known once it ends. Instead each event carries what it *changes*
//! about its visit — it started one (`started`), it made a bounce stop being
//! one (`bounce = -1`), it extended the visit by `seconds` — so any set of
//! visits is summed, exactly, from rollups that never look at single events
//! (`sql/0005_sessions.sql`). The visit's acquisition and entry page
//! ([`Entry`]) are copied onto each of its events, so "visits from Google"
//! also counts the pages viewed after landing, whose own referrer is the
//! site itself.
//!
//! The rules:
//! * An **interactive** event (pageview, or a custom event not sent with
//!   `interactive: false`) continues the visitor's visit if its previous
//!   interactive event is at most [`SESSION_GAP`] old, and starts a new one
//!   (a fresh random 64-bit id) otherwise.
//! * **Engagement** events (`engagement`, sent when a page is hidden) and
//!   non-interactive events never start a visit, never end a bounce and do
//!   not extend it: they join the active visit if there is one (so filters
//!   and breakdowns see them with it), and belong to none otherwise
//!   (`id = 0`).
//! * **Bounce:** a visit whose only interactive event is one pageview.
//! * **Duration:** from the visit's first to its last interactive event.
//! * **Midnight:** visitor ids change with the daily salt, but during the
//!   grace period [`crate::privacy::midnight`] keeps yesterday's id for a
//!   visitor active just before midnight, so the visit continues under the
//!   same key here and keeps its id.
//!
//! **Several instances:** the map lives in one process. Behind a load
//! balancer that does not keep a visitor on one instance, consecutive
//! events of one visit can reach different instances, which then each count
//! a visit: visits (and bounces) are over-counted, durations under-counted.
//! Visitors and pageviews are unaffected. Route by client address (sticky
//! sessions, e.g. nginx `hash $remote_addr consistent` or `ip_hash`) to
//! avoid it. A restart likewise starts every ongoing visit anew.
//!
//! Memory is bounded: at most `capacity` visits are remembered (a few hundred
//! bytes each with their entry page and campaign strings); when more are
//! active, the least recently used are forgotten and their visitors' next
//! events start new visits.

use crate::event::{Campaign, Event};
use crate::privacy::VisitorId;
use crate::privacy::midnight::SESSION_GAP;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use std::sync::Arc;
use time::OffsetDateTime;

/// Where a visit came from and where it landed: its first event's values.
///
/// Kept for every remembered visit, so it is packed: the eight strings in
/// one allocation (a visit costs 260 instead of 400 heap bytes, see the
/// `heap` test below; with 200,000 visits remembered that is 28 MB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The fields in [`FIELDS`] order, one after another.
    text: Box<str>,
    /// Where each field but the last ends in `text`.
    ends: [u32; FIELDS - 1],
    pub channel: &'static str,
}

/// Page, source, referrer host, and the five campaign parameters.
const FIELDS: usize = 8;

impl Entry {
    pub fn new(page: &str, source: &str, channel: &'static str, referrer: &str, campaign: &Campaign) -> Entry {
        let fields: [&str; FIELDS] = [
            page,
            source,
            referrer,
            &campaign.utm_source,
            &campaign.utm_medium,
            &campaign.utm_campaign,
            &campaign.utm_content,
            &campaign.utm_term,
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        let mut ends = [0u32; FIELDS - 1];
        for (i, field) in fields.iter().enumerate() {
            text.push_str(field);
            if let Some(end) = ends.get_mut(i) {
                // Fields are bounded URL parts (kilobytes), far below 4 GiB.
                *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
            }
        }
        Entry { text: text.into_boxed_str(), ends, channel }
    }

    /// The entry values of an event, were it to start a visit.
    pub fn of(e: &Event) -> Entry {
        Entry::new(&e.pathname, &e.source, e.channel, &e.referrer_host, &e.campaign)
    }

    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or_default()
    }

    /// Path of the visit's first event (its landing page).
    pub fn page(&self) -> &str {
        self.field(0)
    }

    pub fn source(&self) -> &str {
        self.field(1)
    }

    /// Referrer host.
    pub fn referrer(&self) -> &str {
        self.field(2)
    }

    pub fn utm_source(&self) -> &str {
        self.field(3)
    }

    pub fn utm_medium(&self) -> &str {
        self.field(4)
    }

    pub fn utm_campaign(&self) -> &str {
        self.field(5)
    }

    pub fn utm_content(&self) -> &str {
        self.field(6)
    }

    pub fn utm_term(&self) -> &str {
        self.field(7)
    }
}

/// What an event says about its visit (stored as the `session_*` columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random id of the visit; 0 when the event belongs to none.
    pub id: u64,
    /// When the visit started (its first interactive event); the event's own
    /// time when it belongs to none.
    pub start: OffsetDateTime,
    /// This event started the visit.
    pub started: bool,
    /// +1: the visit started with a pageview (a bounce so far); -1: this
    /// event ended the bounce; 0 otherwise.
    pub bounce: i8,
    /// Seconds this event adds to the visit's duration.
    pub seconds: u32,
    /// The visit's entry page and acquisition (the event's own when it
    /// belongs to no visit).
    pub entry: Arc<Entry>,
}

impl Session {
    /// An event outside any visit.
    pub fn none(ts: OffsetDateTime, entry: Arc<Entry>) -> Session {
        Session { id: 0, start: ts, started: false, bounce: 0, seconds: 0, entry }
    }
}

/// How an event takes part in visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An interactive pageview.
    Pageview,
    /// Another interactive event (a click, a signup).
    Interactive,
    /// Engagement and non-interactive events: join, never start or extend.
    Passive,
}

impl Kind {
    pub fn of(name: &str, interactive: bool) -> Kind {
        match (name, interactive) {
            ("engagement", _) | (_, false) => Kind::Passive,
            ("pageview", true) => Kind::Pageview,
            _ => Kind::Interactive,
        }
    }
}

#[derive(Clone)]
struct Visit {
    id: u64,
    start: i64,
    /// Time of the last interactive event (unix seconds).
    last: i64,
    /// Still a bounce (one interactive pageview, nothing else).
    bounce: bool,
    entry: Arc<Entry>,
}

/// The collector's visit map. Cheap to share (`Arc`); all methods take `&self`.
pub struct Sessions {
    /// Keyed by (FNV-1a of the site, visitor id): no allocation per event.
    /// Visitor ids are keyed hashes that already include the site, so the
    /// site hash only has to keep equal ids of different sites apart.
    visits: Cache<(u64, [u8; 16]), Visit>,
}

impl Sessions {
    /// Remember at most `capacity` visits.
    pub fn new(capacity: usize) -> Sessions {
        Sessions { visits: Cache::new(capacity.max(1)) }
    }

    /// Place an event of `visitor` on `site` at `ts` in a visit. `entry`
    /// is called only when the event starts a visit or belongs to none.
    pub fn track(
        &self,
        site: &str,
        visitor: &VisitorId,
        ts: OffsetDateTime,
        kind: Kind,
        entry: impl FnOnce() -> Entry,
    ) -> Session {
        let now = ts.unix_timestamp();
        let gap = SESSION_GAP.whole_seconds();
        let key = (crate::privacy::visitor::site_key(site), visitor.0);
        let continued = self.visits.entry(&key, None, |_, v| {
            if now - v.last > gap {
                return EntryAction::ReplaceWithGuard;
            }
            let mut s = Session {
                id: v.id,
                start: OffsetDateTime::from_unix_timestamp(v.start).unwrap_or(ts),
                started: false,
                bounce: 0,
                seconds: 0,
                entry: v.entry.clone(),
            };
            if kind != Kind::Passive {
                // Out-of-order clocks never shorten a visit.
                s.seconds = u32::try_from(now - v.last).unwrap_or(0);
                v.last = v.last.max(now);
                if v.bounce {
                    v.bounce = false;
                    s.bounce = -1;
                }
            }
            EntryAction::Retain(s)
        });
        let guard = match continued {
            EntryResult::Retained(s) => return s,
            EntryResult::Vacant(g) | EntryResult::Replaced(g, _) => g,
            // Unreachable with no timeout; counted as outside any visit.
            EntryResult::Removed(..) | EntryResult::Timeout => {
                return Session::none(ts, Arc::new(entry()));
            }
        };
        let entry = Arc::new(entry());
        if kind == Kind::Passive {
            // Dropping the guard leaves no entry behind.
            drop(guard);
            return Session::none(ts, entry);
        }
        let visit = Visit { id: new_id(), start: now, last: now, bounce: kind == Kind::Pageview, entry: entry.clone() };
        let session =
            Session { id: visit.id, start: ts, started: true, bounce: i8::from(visit.bounce), seconds: 0, entry };
        let _ = guard.insert(visit);
        session
    }

    /// Visits remembered now (some may have ended).
    pub fn len(&self) -> usize {
        self.visits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visits.is_empty()
    }
}

/// A random, non-zero visit id (0 means "no visit").
fn new_id() -> u64 {
    let mut b = [0u8; 8];
    // The OS RNG does not fail on supported platforms; if it ever did, a
    // time-derived id still separates visits.
    if getrandom::fill(&mut b).is_err() {
        let t = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        b = t.to_le_bytes();
    }
    u64::from_le_bytes(b).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Campaign;
    use time::macros::datetime;

    fn entry(page: &str) -> impl FnOnce() -> Entry + '_ {
        move || Entry::new(page, "", "", "", &Campaign::default())
    }

    const A: VisitorId = VisitorId([1; 16]);
    const B: VisitorId = VisitorId([2; 16]);

    #[test]
    fn a_visit_continues_within_thirty_minutes() {
        let s = Sessions::new(100);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let first = s.track("a.com", &A, t0, Kind::Pageview, entry("/"));
        assert!(first.started);
        assert_ne!(first.id, 0);
        assert_eq!((first.bounce, first.seconds, first.start), (1, 0, t0));
        assert_eq!(first.entry.page(), "/");

        let second = s.track("a.com", &A, t0 + SESSION_GAP, Kind::Pageview, entry("/b"));
        assert_eq!(second.id, first.id);
        assert!(!second.started);
        assert_eq!((second.bounce, second.seconds), (-1, 1800), "ends the bounce, adds 30 min");
        assert_eq!(second.start, t0);
        assert_eq!(second.entry.page(), "/", "the visit's entry page, not the event's");

        let third = s.track("a.com", &A, t0 + SESSION_GAP * 2, Kind::Interactive, entry("/c"));
        assert_eq!((third.id, third.bounce, third.seconds), (first.id, 0, 1800));

        let next = s.track("a.com", &A, t0 + SESSION_GAP * 3 + time::Duration::SECOND, Kind::Pageview, entry("/d"));
        assert!(next.started, "31 minutes idle start a new visit");
        assert_ne!(next.id, first.id);
        assert_eq!(next.entry.page(), "/d");
    }

    #[test]
    fn visits_are_per_visitor_and_site() {
        let s = Sessions::new(100);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let a = s.track("a.com", &A, t0, Kind::Pageview, entry("/"));
        let b = s.track("a.com", &B, t0, Kind::Pageview, entry("/"));
        let other = s.track("b.com", &A, t0, Kind::Pageview, entry("/"));
        assert!(b.started && other.started);
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, other.id);
    }

    #[test]
    fn passive_events_neither_start_nor_extend_nor_end_bounces() {
        let s = Sessions::new(100);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let orphan = s.track("a.com", &A, t0, Kind::Passive, entry("/"));
        assert_eq!(orphan.id, 0, "engagement without a visit belongs to none");
        assert!(s.is_empty(), "and leaves nothing behind");

        let first = s.track("a.com", &A, t0, Kind::Pageview, entry("/"));
        let engaged = s.track("a.com", &A, t0 + time::Duration::minutes(20), Kind::Passive, entry("/"));
        assert_eq!(engaged.id, first.id, "joins the visit");
        assert_eq!((engaged.started, engaged.bounce, engaged.seconds), (false, 0, 0));
        // The visit's last interactive event is still t0: 31 minutes later it has ended.
        let later = s.track("a.com", &A, t0 + time::Duration::minutes(31), Kind::Passive, entry("/"));
        assert_eq!(later.id, 0);
        let back = s.track("a.com", &A, t0 + time::Duration::minutes(32), Kind::Pageview, entry("/x"));
        assert!(back.started);
    }

    #[test]
    fn a_visit_starting_with_a_custom_event_is_no_bounce() {
        let s = Sessions::new(100);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let first = s.track("a.com", &A, t0, Kind::Interactive, entry("/"));
        assert_eq!((first.started, first.bounce), (true, 0));
        let pv = s.track("a.com", &A, t0 + time::Duration::MINUTE, Kind::Pageview, entry("/"));
        assert_eq!((pv.started, pv.bounce, pv.seconds), (false, 0, 60));
    }

    #[test]
    fn a_visit_crossing_midnight_keeps_its_id() {
        // The midnight bridge hands the same (yesterday's) visitor id on.
        let s = Sessions::new(100);
        let a = s.track("a.com", &A, datetime!(2026-03-01 23:50 UTC), Kind::Pageview, entry("/"));
        let b = s.track("a.com", &A, datetime!(2026-03-02 00:05 UTC), Kind::Pageview, entry("/b"));
        assert_eq!(b.id, a.id);
        assert_eq!(b.start, datetime!(2026-03-01 23:50 UTC));
        assert_eq!((b.bounce, b.seconds), (-1, 900));
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("pageview", true), Kind::Pageview);
        assert_eq!(Kind::of("Signup", true), Kind::Interactive);
        assert_eq!(Kind::of("engagement", true), Kind::Passive);
        assert_eq!(Kind::of("Video played", false), Kind::Passive);
        assert_eq!(Kind::of("pageview", false), Kind::Passive);
    }

    #[test]
    fn memory_is_bounded() {
        let s = Sessions::new(50);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        for i in 0..1000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            s.track("a.com", &VisitorId(id), t0, Kind::Pageview, entry("/"));
        }
        assert!(s.len() <= 100, "{}", s.len());
    }
}

#[cfg(test)]
mod heap {
    use super::*;
    use crate::event::Campaign;
    use time::macros::datetime;

    /// Heap bytes one remembered visit costs, for a typical entry: a
    /// landing page, a search engine, its host, no campaign. The map holds
    /// up to `capacity` of them (200,000 by default), so this is most of
    /// the collector's memory on a busy site.
    #[test]
    fn a_visit_costs_at_most_280_heap_bytes() {
        const VISITS: usize = 10_000;
        let s = Sessions::new(VISITS * 2);
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let campaign = Campaign::default();
        let info = allocation_counter::measure(|| {
            for i in 0..VISITS {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let page = format!("/blog/{i}-some-post");
                s.track("a.com", &VisitorId(id), t0, Kind::Pageview, || {
                    Entry::new(&page, "Google", "Organic Search", "www.google.com", &campaign)
                });
            }
        });
        assert_eq!(s.len(), VISITS);
        let per_visit = info.bytes_current as usize / VISITS;
        eprintln!("heap per visit: {per_visit} bytes ({} allocations per visit)", info.count_current as usize / VISITS);
        assert!(per_visit <= 280, "a visit costs {per_visit} heap bytes");
    }
}
