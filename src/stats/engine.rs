//! The stats engine: answers [`StatsRequest`]s from ClickHouse.
//!
//! Two sources, chosen per question — correctness first:
//!
//! * **rollups** (`sql/0005_sessions.sql`), filled by materialized views on
//!   every insert: uniq states of visitor (and visit) ids and sums of
//!   pageviews, custom events, visits, bounces and seconds —
//!   `rollup_hourly` for the whole site per hour (a 30-day overview reads
//!   720 rows instead of millions of events), `rollup_daily` per dimension,
//!   value and day.
//! * **raw `events`**, for everything a rollup cannot answer exactly.
//!
//! | question | source |
//! |---|---|
//! | aggregate / timeseries, no filter | `rollup_hourly` |
//! | aggregate / daily or monthly timeseries, one filter on a session-constant dimension (entry page, source, channel, referrer, UTM, browser (version), OS (version), device, country, region, city, ASN) | `rollup_daily` (`dim` = that dimension) |
//! | aggregate / timeseries, any other filter or several filters; hourly timeseries with a filter | raw |
//! | breakdown, no filter, by a session-constant dimension, page, screen or event | `rollup_daily` |
//! | breakdown with filters; by exit page, property, download, outbound link | raw |
//! | custom panel queries (`sql/queries/panels/`), realtime visitors | raw |
//!
//! A filter on a session-constant dimension selects whole visits, so every
//! number — visits, bounces, durations included — can be read from that
//! dimension's rollup rows. A filter on an event-level dimension (page,
//! event, property, screen) selects events for the event numbers and "visits
//! with such an event" for the visit numbers, which no per-value rollup row
//! holds; several filters need their intersection. Those go to raw events.
//!
//! Semantics (shared by both sources, so they agree exactly on the same
//! data — a test checks it):
//! * visitors: distinct visitor ids among a day's events other than
//!   `engagement`; over several days the sum of the days (visitor-days —
//!   ids change daily anyway, and a visitor whose visit crosses midnight is
//!   there on both days). Sums are additive: a chart adds up to its total,
//!   and a finished day never needs recounting;
//! * pageviews, events: counted when they happen;
//! * visits, bounce rate, visit duration: visits **started** in the range
//!   (sums of the session deltas of [`crate::sessions`]), whole — a visit
//!   started at 23:50 on the last day keeps its pages after midnight;
//! * uniq counts use ClickHouse's `uniq` (exact for small sets, within about
//!   1 % beyond tens of thousands).
//!
//! Aggregates and daily/monthly charts are sums of per-day rows. Finished
//! days (before yesterday) read from the rollups are kept in memory for
//! [`DAY_CACHE_TTL`], so a repeated 30-day overview asks ClickHouse for two
//! days, not thirty: merging a month of `uniq` states costs ~100 ms on
//! ClickHouse 18.16 and 2 cores (see BENCHMARKS.md), a day's ~5 ms.
//!
//! SQL lives in `sql/queries/engine/*.sql` (see [`super::template`] for the
//! slots); values from requests are always bound, never spliced.

use super::panels::{Kind, Panel, Panels};
use super::template::{Sql, Template, Value};
use super::{
    Aggregate, Breakdown, BreakdownRow, DateRange, Dimension, Filter, Interval, Point, StatsError, StatsRequest,
    StatsResult,
};
use crate::store::StoreError;
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
use time::{Date, Duration, OffsetDateTime, Time};

/// Where a number comes from (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `rollup_hourly`: the whole site.
    Totals,
    /// `rollup_daily` rows of this dimension.
    Rollup(&'static str),
    Raw,
}

/// How a dimension relates to visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The same on every event of a visit (the visit's acquisition and
    /// entry page, copied by the collector; facts from the User-Agent and
    /// the IP, constant per visitor id).
    Visit,
    /// Differs between events of a visit.
    Event,
    /// The visit's last pageview.
    Exit,
}

fn level(d: Dimension) -> Level {
    use Dimension as D;
    match d {
        D::EntryPage
        | D::Source
        | D::Channel
        | D::Referrer
        | D::UtmSource
        | D::UtmMedium
        | D::UtmCampaign
        | D::UtmContent
        | D::UtmTerm
        | D::Browser
        | D::BrowserVersion
        | D::Os
        | D::OsVersion
        | D::Device
        | D::Country
        | D::Region
        | D::City
        | D::Asn => Level::Visit,
        D::Page | D::ScreenClass | D::Event | D::Prop | D::Download | D::Outbound => Level::Event,
        D::ExitPage => Level::Exit,
    }
}

/// Is this dimension in `rollup_daily` (under `dim = as_str()`)?
fn rolled_up(d: Dimension) -> bool {
    level(d) == Level::Visit || matches!(d, Dimension::Page | Dimension::ScreenClass | Dimension::Event)
}

const URL_PROP: &str = "prop_values[indexOf(prop_keys, 'url')]";

/// The value of `d` on an event, and which events have one.
fn expression(d: Dimension, prop: Option<&str>) -> Result<(Sql, Sql), StatsError> {
    use Dimension as D;
    let col = |c: &str| Ok((Sql::raw(c), Sql::raw("1")));
    match d {
        D::Page => Ok((Sql::raw("pathname"), Sql::raw("name = 'pageview'"))),
        D::EntryPage => Ok((Sql::raw("session_entry_page"), Sql::raw("session_id != 0"))),
        D::ExitPage => Ok((Sql::raw("pathname"), Sql::raw("name = 'pageview'"))),
        D::Source => col("session_source"),
        D::Channel => col("session_channel"),
        D::Referrer => col("session_referrer"),
        D::UtmSource => col("session_utm_source"),
        D::UtmMedium => col("session_utm_medium"),
        D::UtmCampaign => col("session_utm_campaign"),
        D::UtmContent => col("session_utm_content"),
        D::UtmTerm => col("session_utm_term"),
        D::Browser => col("browser"),
        D::BrowserVersion => col("browser_version"),
        D::Os => col("os"),
        D::OsVersion => col("os_version"),
        D::Device => col("device"),
        D::ScreenClass => col("screen_class"),
        D::Country => col("country"),
        D::Region => col("region"),
        D::City => col("city"),
        D::Asn => col("asn_org"),
        D::Event => Ok((Sql::raw("name"), Sql::raw("name NOT IN ('pageview', 'engagement')"))),
        D::Prop => {
            let key = prop
                .filter(|k| !k.is_empty())
                .ok_or_else(|| StatsError::Invalid("a property breakdown or filter needs a property key".into()))?;
            let mut value = Sql::raw("prop_values[indexOf(prop_keys, ");
            value.push(Sql::str(key));
            value.push_str(")]");
            let mut has = Sql::raw("has(prop_keys, ");
            has.push(Sql::str(key));
            has.push_str(")");
            Ok((value, has))
        }
        D::Download => Ok((Sql::raw(URL_PROP), Sql::raw("name = 'File Download' AND has(prop_keys, 'url')"))),
        D::Outbound => Ok((Sql::raw(URL_PROP), Sql::raw("name = 'Outbound Link: Click' AND has(prop_keys, 'url')"))),
    }
}

/// `dimension = value` as a condition on one event.
fn condition(f: &Filter) -> Result<Sql, StatsError> {
    if f.dimension == Dimension::Page {
        // Any event on the page (pageviews, and custom events sent from it).
        let mut s = Sql::raw("pathname = ");
        s.push(Sql::str(&f.value));
        return Ok(s);
    }
    let (value, has) = expression(f.dimension, f.prop.as_deref())?;
    let mut s = has;
    s.push_str(" AND ");
    s.push(value);
    s.push_str(" = ");
    s.push(Sql::str(&f.value));
    Ok(s)
}

/// A request's filters, split the way the queries use them.
struct Filters {
    /// Keeps the events of the selected visits (all filters; event-level
    /// ones select the visits containing a matching event).
    scope: Sql,
    /// Only the session-level filters (cheaper: no "visits containing"
    /// subquery). Enough where `matches` also applies.
    visit_scope: Sql,
    /// Keeps the events that event-level filters name.
    matches: Sql,
}

/// The time bounds of a request, as bound values.
#[derive(Clone)]
struct Bounds {
    site: String,
    from: String,
    to: String,
    until: String,
    first_day: String,
    last_day: String,
}

fn fmt_dt(t: OffsetDateTime) -> String {
    let d = t.date();
    let (h, m, s) = (t.hour(), t.minute(), t.second());
    format!("{:04}-{:02}-{:02} {h:02}:{m:02}:{s:02}", d.year(), u8::from(d.month()), d.day())
}

fn start_of(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

impl Bounds {
    fn new(site: &str, r: &DateRange) -> Bounds {
        let end = start_of(r.to) + Duration::DAY;
        Bounds {
            site: site.to_string(),
            from: fmt_dt(start_of(r.from)),
            to: fmt_dt(end),
            until: fmt_dt(end + Duration::DAY),
            first_day: r.from.to_string(),
            last_day: r.to.to_string(),
        }
    }

    fn slot(&self, name: &str) -> Option<Sql> {
        Some(match name {
            "site" => Sql::str(&self.site),
            "from" => Sql::str(&self.from),
            "to" => Sql::str(&self.to),
            "until" => Sql::str(&self.until),
            "first_day" => Sql::str(&self.first_day),
            "last_day" => Sql::str(&self.last_day),
            _ => return None,
        })
    }

    /// `site = ? AND ts >= from AND ts < until`: the window a visit started
    /// in the range can have events in.
    fn window(&self) -> Sql {
        let mut s = Sql::raw("site = ");
        s.push(Sql::str(&self.site));
        s.push_str(" AND ts >= ");
        s.push(Sql::str(&self.from));
        s.push_str(" AND ts < ");
        s.push(Sql::str(&self.until));
        s
    }
}

fn filters(req: &StatsRequest, b: &Bounds) -> Result<Filters, StatsError> {
    let mut scope = Vec::new();
    let mut events = Vec::new();
    for f in &req.filters {
        match level(f.dimension) {
            Level::Visit => scope.push(condition(f)?),
            Level::Event => events.push(condition(f)?),
            Level::Exit => {
                let mut s = Sql::raw("session_id IN (SELECT session_id FROM events WHERE ");
                s.push(b.window());
                s.push_str(
                    " AND name = 'pageview' AND session_id != 0 GROUP BY session_id HAVING argMax(pathname, ts) = ",
                );
                s.push(Sql::str(&f.value));
                s.push_str(")");
                scope.push(s);
            }
        }
    }
    let visit_scope = Sql::and(scope.clone());
    if !events.is_empty() {
        // Visits with an event matching every event-level filter.
        let mut s = Sql::raw("session_id IN (SELECT session_id FROM events WHERE ");
        s.push(b.window());
        s.push_str(" AND ");
        s.push(Sql::and(events.clone()));
        s.push_str(")");
        scope.push(s);
    }
    Ok(Filters { scope: Sql::and(scope), visit_scope, matches: Sql::and(events) })
}

/// The engine's own queries, parsed once.
struct Queries {
    days_rollup: Template,
    days_rollup_dim: Template,
    days_raw: Template,
    timeseries_rollup: Template,
    timeseries_raw: Template,
    breakdown_rollup: Template,
    breakdown_rollup_days: Template,
    breakdown_raw: Template,
    breakdown_raw_visits: Template,
    breakdown_exit: Template,
    fold: Template,
    realtime: Template,
}

const SLOTS: &[&str] = &[
    "site",
    "from",
    "to",
    "until",
    "first_day",
    "last_day",
    "since",
    "scope",
    "visit_scope",
    "match",
    "dim",
    "dim_filter",
    "dim_name",
    "dim_value",
    "interval",
    "visits_merge",
    "k",
    "limit",
    "rows",
];

macro_rules! engine_sql {
    ($name:literal) => {
        ($name, include_str!(concat!("../../sql/queries/engine/", $name, ".sql")))
    };
}

const ENGINE_SQL: [(&str, &str); 12] = [
    engine_sql!("days_rollup"),
    engine_sql!("days_rollup_dim"),
    engine_sql!("days_raw"),
    engine_sql!("timeseries_rollup"),
    engine_sql!("timeseries_raw"),
    engine_sql!("breakdown_rollup"),
    engine_sql!("breakdown_rollup_days"),
    engine_sql!("breakdown_raw"),
    engine_sql!("breakdown_raw_visits"),
    engine_sql!("breakdown_exit"),
    engine_sql!("fold"),
    engine_sql!("realtime"),
];

static QUERIES: LazyLock<Result<Queries, String>> = LazyLock::new(|| {
    let parse = |i: usize| {
        let (name, text) = ENGINE_SQL[i];
        Template::parse(&format!("sql/queries/engine/{name}.sql"), text, SLOTS).map_err(|e| e.to_string())
    };
    Ok(Queries {
        days_rollup: parse(0)?,
        days_rollup_dim: parse(1)?,
        days_raw: parse(2)?,
        timeseries_rollup: parse(3)?,
        timeseries_raw: parse(4)?,
        breakdown_rollup: parse(5)?,
        breakdown_rollup_days: parse(6)?,
        breakdown_raw: parse(7)?,
        breakdown_raw_visits: parse(8)?,
        breakdown_exit: parse(9)?,
        fold: parse(10)?,
        realtime: parse(11)?,
    })
});

fn queries() -> Result<&'static Queries, StatsError> {
    QUERIES.as_ref().map_err(|e| StatsError::Invalid(format!("engine SQL: {e}")))
}

/// One UTC day's numbers: what every aggregate and daily or monthly chart
/// is summed from.
#[derive(Debug, Clone, Copy, Deserialize, clickhouse::Row)]
struct DayRow {
    #[serde(with = "clickhouse::serde::time::date")]
    day: Date,
    visitors: u64,
    pageviews: u64,
    events: u64,
    visits: u64,
    bounces: i64,
    duration: u64,
}

impl DayRow {
    fn zero(day: Date) -> DayRow {
        DayRow { day, visitors: 0, pageviews: 0, events: 0, visits: 0, bounces: 0, duration: 0 }
    }

    fn add(&mut self, o: &DayRow) {
        self.visitors += o.visitors;
        self.pageviews += o.pageviews;
        self.events += o.events;
        self.visits += o.visits;
        self.bounces += o.bounces;
        self.duration += o.duration;
    }
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct PointRow {
    bucket: u64,
    visitors: u64,
    visits: u64,
    pageviews: u64,
}

/// One value's numbers on one day (rollup breakdowns, kept per finished day).
#[derive(Debug, Clone, Deserialize, clickhouse::Row)]
struct ValueDay {
    value: String,
    #[serde(with = "clickhouse::serde::time::date")]
    day: Date,
    visitors: u64,
    visits: u64,
    pageviews: u64,
    events: u64,
    bounces: i64,
    duration: u64,
}

#[derive(Debug, Clone, Deserialize, clickhouse::Row)]
struct FoldRow {
    folded: u8,
    value: String,
    visitors: u64,
    visits: u64,
    pageviews: u64,
    events: u64,
    bounces: i64,
    duration: u64,
}

/// The label of the row that folds small groups.
pub const OTHER: &str = "(other)";

fn ratio(n: f64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n / d as f64 }
}

impl From<DayRow> for Aggregate {
    fn from(r: DayRow) -> Aggregate {
        Aggregate {
            visitors: r.visitors,
            visits: r.visits,
            pageviews: r.pageviews,
            events: r.events,
            views_per_visit: ratio(r.pageviews as f64, r.visits),
            bounce_rate: ratio(r.bounces.max(0) as f64 * 100.0, r.visits),
            visit_duration: ratio(r.duration as f64, r.visits),
        }
    }
}

fn store(e: clickhouse::error::Error) -> StatsError {
    StatsError::Store(StoreError::ClickHouse(e))
}

fn template(e: super::template::TemplateError) -> StatsError {
    StatsError::Invalid(e.to_string())
}

/// Render `t` with `slots`, then the request's bounds.
fn fill(t: &Template, b: &Bounds, slots: &[(&str, Sql)]) -> Result<Sql, StatsError> {
    t.render(&|s| slots.iter().find(|(n, _)| *n == s).map(|(_, v)| v.clone()).or_else(|| b.slot(s))).map_err(template)
}

/// Finished days' numbers from the rollups, kept in memory: a 30-day
/// overview then reads only today and yesterday from ClickHouse. Keyed by
/// (site, dimension, value) and day; entries older than [`DAY_CACHE_TTL`]
/// are read again (events can arrive late, e.g. replayed after an outage),
/// and days later than the day before yesterday are never kept (visits
/// still running add to the day they started).
type DayCache = quick_cache::sync::Cache<(Arc<str>, Date), (std::time::Instant, DayRow)>;

/// How long a finished day's numbers are trusted.
pub const DAY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Finished days' breakdown rows, per (site, dimension) and day, weighed by
/// row count: at most [`ROWS_CACHE_ROWS`] rows in all, and a day with more
/// than [`ROWS_CACHE_DAY_ROWS`] values is never kept.
type RowsCache = quick_cache::sync::Cache<(Arc<str>, Date), (std::time::Instant, Arc<Vec<ValueDay>>), RowsWeight>;

#[derive(Clone)]
struct RowsWeight;

impl quick_cache::Weighter<(Arc<str>, Date), (std::time::Instant, Arc<Vec<ValueDay>>)> for RowsWeight {
    fn weight(&self, _: &(Arc<str>, Date), v: &(std::time::Instant, Arc<Vec<ValueDay>>)) -> u64 {
        v.1.len() as u64 + 1
    }
}

/// Rows all cached breakdown days may hold (a row is ~100 bytes).
pub const ROWS_CACHE_ROWS: u64 = 1_000_000;
/// A finished day with more values than this is not cached.
pub const ROWS_CACHE_DAY_ROWS: usize = 20_000;
/// More (value, day) rows than this in a range: the breakdown is summed in
/// ClickHouse instead (`breakdown_rollup.sql`), uncached.
const ROWS_FETCH_LIMIT: u64 = 200_000;

/// The stats engine. Cheap to clone (clones share the day cache).
#[derive(Clone)]
pub struct Engine {
    client: clickhouse::Client,
    panels: Arc<Panels>,
    rollups: bool,
    days: Option<Arc<DayCache>>,
    rows: Option<Arc<RowsCache>>,
}

impl Engine {
    /// `client` must be bound to Headcount's database.
    pub fn new(client: clickhouse::Client, panels: Arc<Panels>) -> Engine {
        Engine {
            client,
            panels,
            rollups: true,
            days: Some(Arc::new(DayCache::new(100_000))),
            rows: Some(Arc::new(RowsCache::with_weighter(20_000, ROWS_CACHE_ROWS, RowsWeight))),
        }
    }

    /// Never keep finished days in memory (the benchmark measures both).
    pub fn without_day_cache(mut self) -> Engine {
        self.days = None;
        self.rows = None;
        self
    }

    /// Never read the rollup: every answer from raw events (tests compare
    /// the two; the benchmark measures the difference).
    pub fn raw_only(mut self) -> Engine {
        self.rollups = false;
        self
    }

    pub fn panels(&self) -> &Panels {
        &self.panels
    }

    /// Which source answers an aggregate of `req`.
    pub fn plan(&self, req: &StatsRequest) -> Plan {
        if !self.rollups {
            return Plan::Raw;
        }
        match req.filters.as_slice() {
            [] => Plan::Totals,
            [f] if level(f.dimension) == Level::Visit => Plan::Rollup(f.dimension.as_str()),
            _ => Plan::Raw,
        }
    }

    /// Which source answers a timeseries of `req` (the daily rollup has no hours).
    pub fn timeseries_plan(&self, req: &StatsRequest, interval: Interval) -> Plan {
        match self.plan(req) {
            Plan::Rollup(_) if interval == Interval::Hour => Plan::Raw,
            p => p,
        }
    }

    /// Which source answers a breakdown of `req` by `d`.
    pub fn breakdown_plan(&self, req: &StatsRequest, d: Dimension) -> Plan {
        if self.rollups && req.filters.is_empty() && rolled_up(d) { Plan::Rollup(d.as_str()) } else { Plan::Raw }
    }

    /// The SQL of the per-day numbers of `req` (for tests and the benchmark).
    pub fn days_sql(&self, req: &StatsRequest) -> Result<Sql, StatsError> {
        let q = queries()?;
        let b = Bounds::new(&req.site, &req.range);
        match self.plan(req) {
            Plan::Totals => fill(&q.days_rollup, &b, &[]),
            Plan::Rollup(dim) => {
                let value = req.filters.first().map(|f| f.value.as_str()).unwrap_or("");
                fill(&q.days_rollup_dim, &b, &[("dim_name", Sql::str(dim)), ("dim_value", Sql::str(value))])
            }
            Plan::Raw => {
                let f = filters(req, &b)?;
                fill(&q.days_raw, &b, &[("scope", f.scope), ("visit_scope", f.visit_scope), ("match", f.matches)])
            }
        }
    }

    /// One row per day of the range, finished days from the cache when the
    /// rollups answer.
    async fn days(&self, req: &StatsRequest) -> Result<Vec<DayRow>, StatsError> {
        let all: Vec<Date> = day_list(&req.range);
        let plan = self.plan(req);
        let cache = match (&self.days, plan) {
            (Some(c), Plan::Totals | Plan::Rollup(_)) => Some(c),
            _ => None,
        };
        let key: Arc<str> = match plan {
            Plan::Rollup(dim) => {
                let value = req.filters.first().map(|f| f.value.as_str()).unwrap_or("");
                format!("{}\u{0}{dim}\u{0}{value}", req.site).into()
            }
            _ => req.site.as_str().into(),
        };
        let mut rows: Vec<Option<DayRow>> = all
            .iter()
            .map(|d| {
                let (at, row) = cache?.get(&(key.clone(), *d))?;
                (at.elapsed() < DAY_CACHE_TTL).then_some(row)
            })
            .collect();
        let missing: Vec<usize> = (0..all.len()).filter(|&i| rows[i].is_none()).collect();
        if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
            let sub = StatsRequest { range: DateRange { from: all[first], to: all[last] }, ..req.clone() };
            let fetched: Vec<DayRow> = self.days_sql(&sub)?.query(&self.client).fetch_all().await.map_err(store)?;
            let settled = OffsetDateTime::now_utc().date() - Duration::days(2);
            for i in missing {
                let row = fetched.iter().find(|r| r.day == all[i]).copied().unwrap_or(DayRow::zero(all[i]));
                if let Some(c) = cache
                    && all[i] <= settled
                {
                    c.insert((key.clone(), all[i]), (std::time::Instant::now(), row));
                }
                rows[i] = Some(row);
            }
        }
        Ok(rows.into_iter().zip(all).map(|(r, d)| r.unwrap_or(DayRow::zero(d))).collect())
    }

    /// Visitors, visits, pageviews, events, views per visit, bounce rate and
    /// visit duration for `req`. Over several days, visitors are the sum of
    /// each day's distinct ids (visitor-days).
    pub async fn aggregate(&self, req: &StatsRequest) -> Result<Aggregate, StatsError> {
        let mut total = DayRow::zero(req.range.from);
        for d in self.days(req).await? {
            total.add(&d);
        }
        Ok(total.into())
    }

    /// The SQL of an hourly time series (daily and monthly ones are
    /// [`Engine::days_sql`]).
    pub fn hourly_sql(&self, req: &StatsRequest) -> Result<Sql, StatsError> {
        let q = queries()?;
        let b = Bounds::new(&req.site, &req.range);
        match self.timeseries_plan(req, Interval::Hour) {
            Plan::Totals => fill(&q.timeseries_rollup, &b, &[]),
            _ => {
                let f = filters(req, &b)?;
                fill(&q.timeseries_raw, &b, &[("scope", f.scope), ("match", f.matches)])
            }
        }
    }

    /// One point per bucket of the range (empty buckets included). Daily and
    /// monthly points are sums of days (visitors: visitor-days).
    pub async fn timeseries(&self, req: &StatsRequest, interval: Interval) -> Result<Vec<Point>, StatsError> {
        let mut points: Vec<Point> = buckets(&req.range, interval)
            .into_iter()
            .map(|bucket| Point { bucket, visitors: 0, visits: 0, pageviews: 0 })
            .collect();
        let mut add = |at: OffsetDateTime, visitors: u64, visits: u64, pageviews: u64| {
            if let Some(p) = points.iter_mut().rev().find(|p| p.bucket <= at) {
                p.visitors += visitors;
                p.visits += visits;
                p.pageviews += pageviews;
            }
        };
        if interval == Interval::Hour {
            let rows: Vec<PointRow> = self.hourly_sql(req)?.query(&self.client).fetch_all().await.map_err(store)?;
            for r in rows {
                if let Ok(at) = OffsetDateTime::from_unix_timestamp(r.bucket as i64) {
                    add(at, r.visitors, r.visits, r.pageviews);
                }
            }
        } else {
            for d in self.days(req).await? {
                add(start_of(d.day), d.visitors, d.visits, d.pageviews);
            }
        }
        Ok(points)
    }

    /// The inner breakdown query (rows: value, visitors, visits, pageviews,
    /// events, bounces, duration) for `d`.
    fn breakdown_rows(&self, req: &StatsRequest, d: Dimension, prop: Option<&str>) -> Result<Sql, StatsError> {
        let q = queries()?;
        let b = Bounds::new(&req.site, &req.range);
        if let Plan::Rollup(dim) = self.breakdown_plan(req, d) {
            let visits = if level(d) == Level::Visit { "sumMerge(visits)" } else { "uniqIfMerge(sessions)" };
            let slots = [("dim_name", Sql::str(dim)), ("visits_merge", Sql::raw(visits))];
            return fill(&q.breakdown_rollup, &b, &slots);
        }
        let f = filters(req, &b)?;
        let (expr, has) = expression(d, prop)?;
        let t = match level(d) {
            Level::Visit => &q.breakdown_raw_visits,
            Level::Event => &q.breakdown_raw,
            Level::Exit => &q.breakdown_exit,
        };
        let slots = [
            ("scope", f.scope),
            ("visit_scope", f.visit_scope),
            ("match", f.matches),
            ("dim", expr),
            ("dim_filter", has),
        ];
        fill(t, &b, &slots)
    }

    /// Wrap breakdown rows: fold those under `k` visitors, keep the `limit` largest.
    fn fold_sql(&self, rows: Sql, limit: usize, k: Option<u64>) -> Result<Sql, StatsError> {
        let q = queries()?;
        q.fold
            .render(&|s| match s {
                "rows" => Some(rows.clone()),
                "k" => Some(Sql::value(Value::U64(k.unwrap_or(0)))),
                "limit" => Some(Sql::value(Value::U64(limit as u64 + 1))),
                _ => None,
            })
            .map_err(template)
    }

    pub fn breakdown_sql(
        &self,
        req: &StatsRequest,
        d: Dimension,
        limit: usize,
        k: Option<u64>,
    ) -> Result<Sql, StatsError> {
        let rows = self.breakdown_rows(req, d, req.prop.as_deref())?;
        self.fold_sql(rows, limit, k)
    }

    /// The `limit` values of `d` with most visitors; with `k`, values with
    /// fewer than `k` visitors are summed into [`Breakdown::other`]
    /// ("(other)") and never shown alone.
    pub async fn breakdown(
        &self,
        req: &StatsRequest,
        d: Dimension,
        limit: usize,
        k: Option<u64>,
    ) -> Result<Breakdown, StatsError> {
        let per_visit = level(d) != Level::Event;
        if let (Plan::Rollup(dim), Some(_)) = (self.breakdown_plan(req, d), &self.rows) {
            let (rows, total) = tokio::try_join!(self.rollup_rows(req, d, dim), self.aggregate(req))?;
            if let Some(rows) = rows {
                return Ok(assemble(d, fold(rows, limit, k), &total, per_visit, limit));
            }
        }
        let sql = self.breakdown_sql(req, d, limit, k)?;
        self.run_breakdown(req, d, sql, per_visit, limit).await
    }

    /// A rollup breakdown's rows summed per value, finished days from the
    /// cache; `None` when the range has too many rows to sum here.
    async fn rollup_rows(
        &self,
        req: &StatsRequest,
        d: Dimension,
        dim: &str,
    ) -> Result<Option<Vec<FoldRow>>, StatsError> {
        let Some(cache) = &self.rows else {
            return Ok(None);
        };
        let q = queries()?;
        let key: Arc<str> = format!("{}\u{0}{dim}", req.site).into();
        let all = day_list(&req.range);
        let mut days: Vec<Option<Arc<Vec<ValueDay>>>> = all
            .iter()
            .map(|day| {
                let (at, rows) = cache.get(&(key.clone(), *day))?;
                (at.elapsed() < DAY_CACHE_TTL).then_some(rows)
            })
            .collect();
        let missing: Vec<usize> = (0..all.len()).filter(|&i| days[i].is_none()).collect();
        if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
            let b = Bounds::new(&req.site, &DateRange { from: all[first], to: all[last] });
            let visits = if level(d) == Level::Visit { "sumMerge(visits)" } else { "uniqIfMerge(sessions)" };
            let slots = [
                ("dim_name", Sql::str(dim)),
                ("visits_merge", Sql::raw(visits)),
                ("limit", Sql::value(Value::U64(ROWS_FETCH_LIMIT))),
            ];
            let fetched: Vec<ValueDay> =
                fill(&q.breakdown_rollup_days, &b, &slots)?.query(&self.client).fetch_all().await.map_err(store)?;
            if fetched.len() as u64 >= ROWS_FETCH_LIMIT {
                return Ok(None);
            }
            let settled = OffsetDateTime::now_utc().date() - Duration::days(2);
            for i in missing {
                let rows: Arc<Vec<ValueDay>> = Arc::new(fetched.iter().filter(|r| r.day == all[i]).cloned().collect());
                if all[i] <= settled && rows.len() <= ROWS_CACHE_DAY_ROWS {
                    cache.insert((key.clone(), all[i]), (std::time::Instant::now(), rows.clone()));
                }
                days[i] = Some(rows);
            }
        }
        let mut sums: std::collections::HashMap<&str, FoldRow> = std::collections::HashMap::new();
        for r in days.iter().flatten().flat_map(|d| d.iter()) {
            let e = sums.entry(r.value.as_str()).or_insert_with(|| FoldRow::zero(&r.value));
            e.add(&FoldRow::of_day(r));
        }
        Ok(Some(sums.into_values().collect()))
    }

    async fn run_breakdown(
        &self,
        req: &StatsRequest,
        d: Dimension,
        sql: Sql,
        per_visit: bool,
        limit: usize,
    ) -> Result<Breakdown, StatsError> {
        let (rows, total) = tokio::try_join!(
            async { sql.query(&self.client).fetch_all::<FoldRow>().await.map_err(store) },
            self.aggregate(req),
        )?;
        Ok(assemble(d, rows, &total, per_visit, limit))
    }

    /// Distinct visitors in the five minutes before `now`.
    pub async fn realtime_visitors(&self, site: &str, now: OffsetDateTime) -> Result<u64, StatsError> {
        let q = queries()?;
        let since = fmt_dt(now - Duration::minutes(5));
        let sql = q
            .realtime
            .render(&|s| match s {
                "site" => Some(Sql::str(site)),
                "since" => Some(Sql::str(&since)),
                _ => None,
            })
            .map_err(template)?;
        sql.query(&self.client).fetch_one::<u64>().await.map_err(store)
    }

    /// A custom panel's SQL, wrapped for folding and limiting.
    pub fn custom_sql(&self, panel: &Panel, req: &StatsRequest, k: Option<u64>) -> Result<Option<Sql>, StatsError> {
        let Some(t) = &panel.query else {
            return Ok(None);
        };
        let b = Bounds::new(&req.site, &req.range);
        let f = filters(req, &b)?;
        // The panel's rows are events: the matching ones, of the selected visits.
        let all = Sql::and(vec![f.visit_scope, f.matches]);
        let inner = fill(t, &b, &[("filters", all)])?;
        let mut rows = Sql::raw(
            "SELECT toString(value) AS value, toUInt64(visitors) AS visitors, toUInt64(visits) AS visits, \
             toUInt64(pageviews) AS pageviews, toUInt64(events) AS events, toInt64(0) AS bounces, \
             toUInt64(0) AS duration FROM (",
        );
        rows.push(inner);
        rows.push_str(")");
        self.fold_sql(rows, panel.limit, k).map(Some)
    }

    /// Answer a panel: its current numbers and, for aggregates and time
    /// series, the previous period's for comparison.
    pub async fn panel(&self, panel: &Panel, req: &StatsRequest, k: Option<u64>) -> Result<StatsResult, StatsError> {
        let visitor_days = req.range.days() > 1;
        let previous = StatsRequest { range: req.range.previous(), ..req.clone() };
        match panel.kind {
            Kind::Aggregate => {
                let (current, previous) = tokio::try_join!(self.aggregate(req), self.aggregate(&previous))?;
                Ok(StatsResult::Aggregate { current, previous, visitor_days })
            }
            Kind::Timeseries => {
                let interval = Interval::for_range(&req.range);
                let (current, previous) =
                    tokio::try_join!(self.timeseries(req, interval), self.timeseries(&previous, interval))?;
                Ok(StatsResult::Timeseries { interval, current, previous, visitor_days })
            }
            Kind::Breakdown => {
                let d = panel
                    .dimension
                    .ok_or_else(|| StatsError::Invalid(format!("panel `{}` has no dimension", panel.id)))?;
                if let Some(sql) = self.custom_sql(panel, req, k)? {
                    return self.run_breakdown(req, d, sql, false, panel.limit).await.map(StatsResult::Breakdown);
                }
                let mut req = req.clone();
                if panel.prop.is_some() {
                    req.prop = panel.prop.clone();
                }
                self.breakdown(&req, d, panel.limit, k).await.map(StatsResult::Breakdown)
            }
        }
    }

    /// [`Engine::panel`] by panel id.
    pub async fn panel_by_id(&self, id: &str, req: &StatsRequest, k: Option<u64>) -> Result<StatsResult, StatsError> {
        let panel = self.panels.panel(id).ok_or_else(|| StatsError::UnknownPanel(id.to_string()))?;
        self.panel(panel, req, k).await
    }
}

impl FoldRow {
    fn zero(value: &str) -> FoldRow {
        FoldRow {
            folded: 0,
            value: value.to_string(),
            visitors: 0,
            visits: 0,
            pageviews: 0,
            events: 0,
            bounces: 0,
            duration: 0,
        }
    }

    fn of_day(r: &ValueDay) -> FoldRow {
        FoldRow {
            folded: 0,
            value: String::new(),
            visitors: r.visitors,
            visits: r.visits,
            pageviews: r.pageviews,
            events: r.events,
            bounces: r.bounces,
            duration: r.duration,
        }
    }

    fn add(&mut self, o: &FoldRow) {
        self.visitors += o.visitors;
        self.visits += o.visits;
        self.pageviews += o.pageviews;
        self.events += o.events;
        self.bounces += o.bounces;
        self.duration += o.duration;
    }
}

/// What `fold.sql` does, in Rust: rows with fewer than `k` visitors summed
/// into one folded row (first), then the `limit` largest by visitors, ties
/// by value.
fn fold(rows: Vec<FoldRow>, limit: usize, k: Option<u64>) -> Vec<FoldRow> {
    let k = k.unwrap_or(0);
    let (mut keep, small): (Vec<FoldRow>, Vec<FoldRow>) = rows.into_iter().partition(|r| r.visitors >= k);
    keep.sort_by(|a, b| b.visitors.cmp(&a.visitors).then_with(|| a.value.cmp(&b.value)));
    keep.truncate(limit);
    let mut out = Vec::with_capacity(keep.len() + 1);
    if !small.is_empty() {
        let mut other = FoldRow::zero("");
        other.folded = 1;
        for r in &small {
            other.add(r);
        }
        out.push(other);
    }
    out.extend(keep);
    out
}

/// Breakdown rows (folded row first, then by visitors) into a [`Breakdown`].
fn assemble(d: Dimension, rows: Vec<FoldRow>, total: &Aggregate, per_visit: bool, limit: usize) -> Breakdown {
    let to_row = |r: FoldRow| {
        let session = |n: f64| (per_visit && r.visits > 0).then(|| n / r.visits as f64);
        BreakdownRow {
            percentage: ratio(r.visitors as f64 * 100.0, total.visitors),
            bounce_rate: session(r.bounces.max(0) as f64 * 100.0),
            visit_duration: session(r.duration as f64),
            value: if r.folded == 1 { OTHER.to_string() } else { r.value },
            visitors: r.visitors,
            visits: r.visits,
            pageviews: r.pageviews,
            events: r.events,
        }
    };
    let mut other = None;
    let mut out = Vec::new();
    for r in rows {
        if r.folded == 1 {
            other = Some(to_row(r));
        } else if out.len() < limit {
            out.push(to_row(r));
        }
    }
    Breakdown { dimension: d, rows: out, other }
}

/// Every day of `r`.
fn day_list(r: &DateRange) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = r.from;
    while d <= r.to {
        out.push(d);
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}

/// The start of every bucket of `r`.
pub fn buckets(r: &DateRange, interval: Interval) -> Vec<OffsetDateTime> {
    let start = start_of(r.from);
    let end = start_of(r.to) + Duration::DAY;
    let mut out = Vec::new();
    match interval {
        Interval::Hour => {
            let mut t = start;
            while t < end {
                out.push(t);
                t += Duration::HOUR;
            }
        }
        Interval::Day => {
            let mut t = start;
            while t < end {
                out.push(t);
                t += Duration::DAY;
            }
        }
        Interval::Month => {
            let mut d = r.from.replace_day(1).unwrap_or(r.from);
            while d <= r.to {
                out.push(start_of(d));
                let (y, m) = (d.year(), d.month());
                let (y, m) = if m == time::Month::December { (y + 1, time::Month::January) } else { (y, m.next()) };
                match Date::from_calendar_date(y, m, 1) {
                    Ok(n) => d = n,
                    Err(_) => break,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn req(filters: Vec<Filter>) -> StatsRequest {
        StatsRequest {
            site: "example.com".into(),
            range: DateRange { from: date!(2026 - 03 - 01), to: date!(2026 - 03 - 30) },
            filters,
            prop: None,
        }
    }

    fn f(d: Dimension, v: &str) -> Filter {
        Filter { dimension: d, value: v.into(), prop: None }
    }

    fn engine() -> Engine {
        Engine::new(clickhouse::Client::default(), Arc::new(Panels::default()))
    }

    #[test]
    fn the_engine_sql_parses() {
        assert!(queries().is_ok(), "{:?}", QUERIES.as_ref().err());
    }

    #[test]
    fn plans() {
        let e = engine();
        assert_eq!(e.plan(&req(vec![])), Plan::Totals);
        assert_eq!(e.timeseries_plan(&req(vec![]), Interval::Hour), Plan::Totals);
        let google = req(vec![f(Dimension::Source, "Google")]);
        assert_eq!(e.timeseries_plan(&google, Interval::Day), Plan::Rollup("source"));
        assert_eq!(e.timeseries_plan(&google, Interval::Hour), Plan::Raw);
        assert_eq!(e.plan(&req(vec![f(Dimension::Source, "Google")])), Plan::Rollup("source"));
        assert_eq!(e.plan(&req(vec![f(Dimension::Page, "/")])), Plan::Raw);
        assert_eq!(e.plan(&req(vec![f(Dimension::ExitPage, "/")])), Plan::Raw);
        assert_eq!(e.plan(&req(vec![f(Dimension::Source, "Google"), f(Dimension::Country, "RU")])), Plan::Raw);
        assert_eq!(e.breakdown_plan(&req(vec![]), Dimension::Page), Plan::Rollup("page"));
        assert_eq!(e.breakdown_plan(&req(vec![]), Dimension::ExitPage), Plan::Raw);
        assert_eq!(e.breakdown_plan(&req(vec![]), Dimension::Prop), Plan::Raw);
        assert_eq!(e.breakdown_plan(&req(vec![f(Dimension::Os, "Linux")]), Dimension::Page), Plan::Raw);
        assert_eq!(e.clone().raw_only().plan(&req(vec![])), Plan::Raw);
    }

    #[test]
    fn every_dimension_has_sql() {
        for d in Dimension::ALL {
            let mut r = req(vec![Filter { dimension: d, value: "x".into(), prop: Some("plan".into()) }]);
            r.prop = Some("plan".into());
            let e = engine();
            e.days_sql(&r).expect("days");
            e.hourly_sql(&r).expect("hourly");
            e.breakdown_sql(&r, d, 10, Some(5)).expect("filtered breakdown");
            e.breakdown_sql(&req(vec![]), d, 10, None)
                .or_else(|_| e.breakdown_sql(&r, d, 10, None))
                .expect("breakdown");
        }
    }

    #[test]
    fn filter_values_are_bound_not_spliced() {
        let evil = "'; DROP TABLE events; --";
        let sql = engine().days_sql(&req(vec![f(Dimension::Page, evil), f(Dimension::Source, evil)])).expect("sql");
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(sql.binds.contains(&Value::Str(evil.into())));
    }

    #[test]
    fn a_prop_needs_a_key() {
        let r = req(vec![f(Dimension::Prop, "pro")]);
        assert!(matches!(engine().days_sql(&r), Err(StatsError::Invalid(_))));
    }

    #[test]
    fn folding_matches_fold_sql() {
        let row = |v: &str, n: u64| FoldRow { visitors: n, visits: n, ..FoldRow::zero(v) };
        let rows = vec![row("b", 5), row("a", 5), row("c", 9), row("d", 1), row("e", 2)];
        let got: Vec<(u8, String, u64)> =
            fold(rows.clone(), 2, Some(3)).into_iter().map(|r| (r.folded, r.value, r.visitors)).collect();
        assert_eq!(got, vec![(1, String::new(), 3), (0, "c".into(), 9), (0, "a".into(), 5)]);
        let got: Vec<String> = fold(rows, 10, None).into_iter().map(|r| r.value).collect();
        assert_eq!(got, vec!["c", "a", "b", "e", "d"]);
    }

    #[test]
    fn bucket_lists() {
        let r = DateRange { from: date!(2026 - 01 - 30), to: date!(2026 - 03 - 02) };
        let m = buckets(&r, Interval::Month);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].date(), date!(2026 - 01 - 01));
        assert_eq!(m[2].date(), date!(2026 - 03 - 01));
        assert_eq!(buckets(&r, Interval::Day).len(), 32);
        let one = DateRange { from: date!(2026 - 03 - 02), to: date!(2026 - 03 - 03) };
        assert_eq!(buckets(&one, Interval::Hour).len(), 48);
        let dec = DateRange { from: date!(2025 - 12 - 15), to: date!(2026 - 01 - 15) };
        assert_eq!(buckets(&dec, Interval::Month).len(), 2);
    }
}

#[cfg(test)]
mod dump {
    //! `HEADCOUNT_DUMP_SQL=DIR cargo test --lib dump_rendered_sql` writes
    //! every query the engine can send (each dimension as filter and
    //! breakdown) with values inlined, for `scripts/check_sql_modern.py
    //! --sql-dir` to run on a modern ClickHouse.
    use super::*;

    #[test]
    fn dump_rendered_sql() {
        let Ok(dir) = std::env::var("HEADCOUNT_DUMP_SQL") else {
            return;
        };
        let e = Engine::new(clickhouse::Client::default(), Arc::new(Panels::default()));
        let range = DateRange { from: time::macros::date!(2024 - 01 - 01), to: time::macros::date!(2024 - 01 - 30) };
        let mut out = String::new();
        let mut push = |sql: Sql| out.push_str(&format!("{};\n\n", sql.display().replace("??", "?")));
        for d in Dimension::ALL {
            let base = StatsRequest { site: "example.com".into(), range, filters: vec![], prop: Some("plan".into()) };
            let one = StatsRequest {
                filters: vec![Filter { dimension: d, value: "x'; --".into(), prop: Some("plan".into()) }],
                ..base.clone()
            };
            for r in [&base, &one] {
                for eng in [e.clone(), e.clone().raw_only()] {
                    push(eng.days_sql(r).expect("days"));
                    push(eng.hourly_sql(r).expect("hourly"));
                    push(eng.breakdown_sql(r, d, 10, Some(5)).expect("breakdown"));
                }
            }
        }
        std::fs::write(format!("{dir}/rendered.sql"), out).expect("write");
    }
}
