//! Prometheus metrics, as typed vocabulary.
//!
//! Every label value is one of the small enums below ([`Route`],
//! [`DropReason`], …) — never an IP, a User-Agent, a URL or a domain taken
//! from a request — so a metric cannot leak a visitor and cardinality stays
//! bounded whatever traffic arrives.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};

/// HTTP routes, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Pixel,
    Event,
    Preflight,
    Health,
    Ready,
    Metrics,
    /// `GET /js/script.js`, the tracker.
    Script,
    /// `GET /opt-out`.
    OptOut,
    NotFound,
}

impl Route {
    /// Every route, in declaration order (`route as usize` indexes it).
    pub const ALL: [Route; 9] = [
        Route::Pixel,
        Route::Event,
        Route::Preflight,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::Script,
        Route::OptOut,
        Route::NotFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Pixel => "pixel",
            Route::Event => "event",
            Route::Preflight => "preflight",
            Route::Health => "healthz",
            Route::Ready => "readyz",
            Route::Metrics => "metrics",
            Route::Script => "script",
            Route::OptOut => "opt_out",
            Route::NotFound => "not_found",
        }
    }
}

/// Why an event was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Crawler, bot, headless browser or HTTP library.
    Bot,
    /// Malformed payload, bad URL, oversize body, invalid UTF-8.
    Invalid,
    /// Domain not in `[[sites]]`.
    UnknownSite,
    /// The spool (or, with `durability = "memory"`, the queue) is at its
    /// cap and `spool.overflow = "drop_newest"`; with `"reject"` the API
    /// answers 503 and the event is counted here too.
    QueueFull,
    /// The spool could not write the event to disk (an I/O error).
    SpoolError,
    /// No salt is held for the event's day (ClickHouse unreachable at start).
    NoSalt,
    /// The server is shutting down.
    ShuttingDown,
    /// ClickHouse rejected the rows as bad data, or was still unreachable
    /// when the process had to exit.
    StoreFailed,
    /// The referrer is on the referrer-spam list.
    Spam,
    /// The browser asked not to be tracked (`DNT: 1` or `Sec-GPC: 1`).
    DoNotTrack,
    /// Every in-flight permit was taken (`limits.max_inflight_requests`).
    Overloaded,
    /// The client was over its rate (`limits.rate_limit_per_second`).
    RateLimited,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::Bot,
        DropReason::Invalid,
        DropReason::UnknownSite,
        DropReason::QueueFull,
        DropReason::SpoolError,
        DropReason::NoSalt,
        DropReason::ShuttingDown,
        DropReason::StoreFailed,
        DropReason::Spam,
        DropReason::DoNotTrack,
        DropReason::Overloaded,
        DropReason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Bot => "bot",
            DropReason::Invalid => "invalid",
            DropReason::UnknownSite => "unknown_site",
            DropReason::QueueFull => "queue_full",
            DropReason::SpoolError => "spool_error",
            DropReason::NoSalt => "no_salt",
            DropReason::ShuttingDown => "shutting_down",
            DropReason::StoreFailed => "store_failed",
            DropReason::Spam => "referrer_spam",
            DropReason::DoNotTrack => "dnt",
            DropReason::Overloaded => "overloaded",
            DropReason::RateLimited => "rate_limited",
        }
    }
}

/// The IP geolocation databases, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoDatabase {
    Country,
    Asn,
    City,
}

impl GeoDatabase {
    pub const ALL: [GeoDatabase; 3] = [GeoDatabase::Country, GeoDatabase::Asn, GeoDatabase::City];

    pub fn as_str(self) -> &'static str {
        match self {
            GeoDatabase::Country => "country",
            GeoDatabase::Asn => "asn",
            GeoDatabase::City => "city",
        }
    }
}

/// Status codes the routes answer with. Each (route, status) pair among
/// these has its counter resolved once ([`Resolved`]); others are looked up.
const FAST_STATUSES: [u16; 11] = [200, 202, 204, 304, 400, 404, 405, 413, 429, 500, 503];
const FAST_STATUS_LABELS: [&str; 11] = ["200", "202", "204", "304", "400", "404", "405", "413", "429", "500", "503"];

/// Counters of the per-request path, resolved from their vectors ahead of
/// time: `with_label_values` hashes every label string and takes a lock on
/// each call, which every request would pay twice; a resolved counter is one
/// atomic add.
struct Resolved {
    /// `[route as usize][index in FAST_STATUSES]`, created on first use so
    /// `/metrics` lists only the pairs that occurred, as before.
    requests: [[OnceLock<IntCounter>; FAST_STATUSES.len()]; Route::ALL.len()],
    /// `[reason as usize]`; all pre-created (dashboards see zeros, not gaps).
    dropped: [IntCounter; DropReason::ALL.len()],
}

/// All of Headcount's metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    resolved: Arc<Resolved>,
    requests: IntCounterVec,
    pub events_accepted: IntCounter,
    dropped: IntCounterVec,
    pub rows_written: IntCounter,
    pub flush_duration: Histogram,
    pub flush_errors: IntCounter,
    pub queue_depth: IntGauge,
    pub spool_bytes: IntGauge,
    pub spool_fsync: Histogram,
    pub dead_lettered: IntCounter,
    pub rows_deduplicated: IntCounter,
    pub salt_ready: IntGauge,
    pub ua_cache_misses: IntCounter,
    /// Visits kept in memory ([`crate::sessions`]), set when `/metrics` is read.
    pub visits_remembered: IntGauge,
    /// Open connections (see [`crate::conn`]).
    pub connections_open: IntGauge,
    /// Times the accept loop waited because `limits.max_connections` were open.
    pub connections_limited: IntCounter,
    /// Connections closed for sending no complete request head in time or idling.
    pub connections_timed_out: IntCounter,
    geo_loaded: IntGaugeVec,
    geo_loads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("headcount_http_requests_total", "HTTP requests by route and status code"),
            &["route", "status"],
        )?;
        let events_accepted =
            IntCounter::new("headcount_events_accepted_total", "Events accepted and queued for storage")?;
        let dropped = IntCounterVec::new(
            Opts::new("headcount_events_dropped_total", "Events not stored, by reason"),
            &["reason"],
        )?;
        let rows_written = IntCounter::new("headcount_rows_written_total", "Event rows written to ClickHouse")?;
        let flush_duration = Histogram::with_opts(
            HistogramOpts::new("headcount_flush_duration_seconds", "Time to write one batch to ClickHouse")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let flush_errors = IntCounter::new("headcount_flush_errors_total", "Failed batch writes to ClickHouse")?;
        let queue_depth =
            IntGauge::new("headcount_queue_depth", "Events accepted and not yet confirmed stored in ClickHouse")?;
        let spool_bytes =
            IntGauge::new("headcount_spool_bytes", "Bytes of accepted events not yet stored (spool or queue)")?;
        let spool_fsync = Histogram::with_opts(
            HistogramOpts::new(
                "headcount_spool_fsync_seconds",
                "Time to write and fsync one group commit to the spool",
            )
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]),
        )?;
        let dead_lettered = IntCounter::new(
            "headcount_events_dead_lettered_total",
            "Rows ClickHouse rejected as bad data, moved to the dead-letter file",
        )?;
        let rows_deduplicated = IntCounter::new(
            "headcount_rows_deduplicated_total",
            "Rows of a replayed batch found already stored, so not sent again",
        )?;
        let salt_ready = IntGauge::new("headcount_salt_ready", "1 when today's salt is held, else 0")?;
        let ua_cache_misses = IntCounter::new("headcount_ua_parse_total", "User-Agent strings parsed (cache misses)")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(events_accepted.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(rows_written.clone()))?;
        registry.register(Box::new(flush_duration.clone()))?;
        registry.register(Box::new(flush_errors.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(spool_bytes.clone()))?;
        registry.register(Box::new(spool_fsync.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(rows_deduplicated.clone()))?;
        registry.register(Box::new(salt_ready.clone()))?;
        registry.register(Box::new(ua_cache_misses.clone()))?;
        let visits_remembered = IntGauge::new(
            "headcount_visits_remembered",
            "Visits kept in memory to place events in them (about 260 bytes each)",
        )?;
        registry.register(Box::new(visits_remembered.clone()))?;
        let connections_open = IntGauge::new("headcount_connections_open", "Open HTTP connections")?;
        let connections_limited = IntCounter::new(
            "headcount_connections_limited_total",
            "Times no connection was accepted because limits.max_connections were open",
        )?;
        let connections_timed_out = IntCounter::new(
            "headcount_connections_timed_out_total",
            "Connections closed for not sending a request head in time, or idling",
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_limited.clone()))?;
        registry.register(Box::new(connections_timed_out.clone()))?;
        let geo_loaded = IntGaugeVec::new(
            Opts::new(
                "headcount_geo_database_loaded",
                "1 when the geo database is loaded, 0 when configured but missing or unreadable",
            ),
            &["database"],
        )?;
        let geo_loads = IntCounterVec::new(
            Opts::new("headcount_geo_loads_total", "Geo database (re)loads by database and result"),
            &["database", "result"],
        )?;
        registry.register(Box::new(geo_loaded.clone()))?;
        registry.register(Box::new(geo_loads.clone()))?;
        // Pre-create every label value so dashboards see zeros, not gaps.
        let resolved = Arc::new(Resolved {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            dropped: DropReason::ALL.map(|r| dropped.with_label_values(&[r.as_str()])),
        });
        Ok(Metrics {
            registry,
            resolved,
            requests,
            events_accepted,
            dropped,
            rows_written,
            flush_duration,
            flush_errors,
            queue_depth,
            spool_bytes,
            spool_fsync,
            dead_lettered,
            rows_deduplicated,
            salt_ready,
            ua_cache_misses,
            visits_remembered,
            connections_open,
            connections_limited,
            connections_timed_out,
            geo_loaded,
            geo_loads,
        })
    }

    pub fn request(&self, route: Route, status: u16) {
        match FAST_STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.resolved.requests[route as usize][i]
                .get_or_init(|| self.requests.with_label_values(&[route.as_str(), FAST_STATUS_LABELS[i]]))
                .inc(),
            None => {
                let mut buf = itoa::Buffer::new();
                self.requests.with_label_values(&[route.as_str(), buf.format(status)]).inc();
            }
        }
    }

    pub fn dropped(&self, reason: DropReason) {
        self.resolved.dropped[reason as usize].inc();
    }

    /// `n` events dropped for one reason (a whole batch).
    pub fn dropped_many(&self, reason: DropReason, n: usize) {
        self.resolved.dropped[reason as usize].inc_by(n as u64);
    }

    /// Whether a geo database is loaded now.
    pub fn geo_loaded(&self, db: GeoDatabase, loaded: bool) {
        self.geo_loaded.with_label_values(&[db.as_str()]).set(i64::from(loaded));
    }

    /// One attempt to (re)load a geo database.
    pub fn geo_load(&self, db: GeoDatabase, ok: bool) {
        self.geo_loads.with_label_values(&[db.as_str(), if ok { "ok" } else { "error" }]).inc();
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped.with_label_values(&[reason.as_str()]).get()
    }

    pub fn requests_count(&self, route: Route, status: u16) -> u64 {
        self.requests.with_label_values(&[route.as_str(), &status.to_string()]).get()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Readiness facts shared between the writer, the salt keeper and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    store_reachable: std::sync::atomic::AtomicBool,
}

impl Health {
    pub fn set_store_reachable(&self, ok: bool) {
        self.store_reachable.store(ok, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_order_matches_resolved_tables() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.as_str());
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.as_str());
        }
        for (s, label) in FAST_STATUSES.iter().zip(FAST_STATUS_LABELS) {
            assert_eq!(s.to_string(), label);
        }
    }

    #[test]
    fn resolved_counters_are_the_labelled_series() {
        let m = Metrics::new().expect("metrics");
        m.request(Route::Pixel, 200);
        m.request(Route::Pixel, 200);
        m.request(Route::Event, 418); // not pre-resolved: looked up
        m.dropped(DropReason::Bot);
        assert_eq!(m.requests_count(Route::Pixel, 200), 2);
        assert_eq!(m.requests_count(Route::Event, 418), 1);
        assert_eq!(m.dropped_count(DropReason::Bot), 1);
        let text = m.render();
        assert!(text.contains(r#"headcount_http_requests_total{route="pixel",status="200"} 2"#));
        // Pairs never seen are not listed.
        assert!(!text.contains(r#"route="event",status="200""#));
        assert!(text.contains(r#"headcount_events_dropped_total{reason="dnt"} 0"#));
    }
}
