//! Where the web side gets its numbers.
//!
//! [`StatsSource`] is the seam between the HTML/API/exports and the stats
//! engine ([`crate::stats`]): the web side builds a [`StatsRequest`] and
//! renders what comes back, never SQL. Keeping the seam a trait lets the
//! page rendering be tested on fixed data ([`Fixture`]) and keeps the web
//! side indifferent to how the engine computes (rollups, raw scans).

use crate::stats::{Aggregate, Breakdown, BreakdownRow, Dimension, Interval, Point, StatsError, StatsRequest};
use std::future::Future;
use std::pin::Pin;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StatsError>> + Send + 'a>>;

/// Headline numbers for a range and the one before it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub current: Aggregate,
    pub previous: Aggregate,
    pub visitor_days: bool,
}

/// A time series for a range and the one before it (same bucket count).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub interval: Interval,
    pub current: Vec<Point>,
    pub previous: Vec<Point>,
    pub visitor_days: bool,
}

/// One breakdown panel of a dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelSpec {
    /// Stable id (CSV file names, anchors): letters, digits, `_`, `-`.
    pub id: String,
    pub dimension: Dimension,
    /// Property key for a [`Dimension::Prop`] panel; `None`: chosen in the UI.
    pub prop: Option<String>,
    /// Titles from the panel declaration; the dimension's title otherwise.
    pub title_en: Option<String>,
    pub title_ru: Option<String>,
    /// Rows shown on the dashboard.
    pub limit: usize,
    /// Computed by the panel's own SQL (`query =` in its declaration).
    pub custom: bool,
}

impl PanelSpec {
    pub fn new(dimension: Dimension) -> PanelSpec {
        PanelSpec {
            id: dimension.as_str().into(),
            dimension,
            prop: None,
            title_en: None,
            title_ru: None,
            limit: 10,
            custom: false,
        }
    }
}

/// The panels shown when the engine declares none: every breakdown of the issue.
pub fn default_panels() -> Vec<PanelSpec> {
    use Dimension as D;
    [
        D::Page,
        D::EntryPage,
        D::ExitPage,
        D::Source,
        D::Channel,
        D::Referrer,
        D::UtmSource,
        D::UtmMedium,
        D::UtmCampaign,
        D::Browser,
        D::Os,
        D::Device,
        D::ScreenClass,
        D::Country,
        D::Asn,
        D::Event,
        D::Prop,
        D::Download,
        D::Outbound,
    ]
    .into_iter()
    .map(PanelSpec::new)
    .collect()
}

/// The numbers behind every dashboard, API call and export.
pub trait StatsSource: Send + Sync + 'static {
    fn aggregate<'a>(&'a self, req: &'a StatsRequest) -> BoxFut<'a, Totals>;
    fn timeseries<'a>(&'a self, req: &'a StatsRequest, interval: Interval) -> BoxFut<'a, Series>;
    /// Top `limit` rows by visitors; with `k`, rows with fewer than `k`
    /// visitors folded into [`Breakdown::other`].
    fn breakdown<'a>(
        &'a self,
        req: &'a StatsRequest,
        dimension: Dimension,
        limit: usize,
        k: Option<u64>,
    ) -> BoxFut<'a, Breakdown>;
    /// The breakdown of a declared panel (its own SQL, if it has one).
    fn panel_breakdown<'a>(
        &'a self,
        req: &'a StatsRequest,
        spec: &'a PanelSpec,
        limit: usize,
        k: Option<u64>,
    ) -> BoxFut<'a, Breakdown> {
        self.breakdown(req, spec.dimension, limit, k)
    }
    /// Visitors in the last 5 minutes.
    fn realtime_visitors<'a>(&'a self, site: &'a str) -> BoxFut<'a, u64>;
    /// The breakdown panels of `site`'s dashboard, in order.
    fn panels(&self, site: &str) -> Vec<PanelSpec>;
}

/// Fold rows with fewer than `k` visitors into "(other)". Applied by the
/// web side to whatever the engine returns, so shared links and exports
/// never show a small group even if a source forgot the threshold.
pub fn apply_k(mut b: Breakdown, k: u64) -> Breakdown {
    if k <= 1 {
        return b;
    }
    let (keep, small): (Vec<_>, Vec<_>) = b.rows.into_iter().partition(|r| r.visitors >= k);
    b.rows = keep;
    if !small.is_empty() {
        let other = b.other.take().unwrap_or_else(|| BreakdownRow {
            value: String::new(),
            visitors: 0,
            visits: 0,
            pageviews: 0,
            events: 0,
            percentage: 0.0,
            bounce_rate: None,
            visit_duration: None,
        });
        b.other = Some(small.into_iter().fold(other, |mut o, r| {
            o.visitors += r.visitors;
            o.visits += r.visits;
            o.pageviews += r.pageviews;
            o.events += r.events;
            o.percentage += r.percentage;
            o.bounce_rate = None;
            o.visit_duration = None;
            o
        }));
    }
    b
}

/// The stats engine of [`crate::stats`] behind this seam, with the panels
/// embedded from `dashboards/*.toml`.
pub fn engine(db: &clickhouse::Client, clock: crate::clock::SharedClock) -> std::sync::Arc<dyn StatsSource> {
    match crate::stats::Panels::embedded() {
        Ok(panels) => std::sync::Arc::new(super::engine::EngineSource {
            engine: crate::stats::Engine::new(db.clone(), std::sync::Arc::new(panels)),
            clock,
        }),
        Err(e) => {
            tracing::error!(error = %e, "dashboard panels are invalid; dashboards show no numbers");
            std::sync::Arc::new(Unavailable)
        }
    }
}

/// A source that answers every question with an error (no engine wired).
pub struct Unavailable;

impl StatsSource for Unavailable {
    fn aggregate<'a>(&'a self, _: &'a StatsRequest) -> BoxFut<'a, Totals> {
        Box::pin(async { Err(StatsError::Invalid("no stats engine".into())) })
    }
    fn timeseries<'a>(&'a self, _: &'a StatsRequest, _: Interval) -> BoxFut<'a, Series> {
        Box::pin(async { Err(StatsError::Invalid("no stats engine".into())) })
    }
    fn breakdown<'a>(&'a self, _: &'a StatsRequest, _: Dimension, _: usize, _: Option<u64>) -> BoxFut<'a, Breakdown> {
        Box::pin(async { Err(StatsError::Invalid("no stats engine".into())) })
    }
    fn realtime_visitors<'a>(&'a self, _: &'a str) -> BoxFut<'a, u64> {
        Box::pin(async { Err(StatsError::Invalid("no stats engine".into())) })
    }
    fn panels(&self, _: &str) -> Vec<PanelSpec> {
        default_panels()
    }
}

/// Fixed numbers for rendering tests: every breakdown has the rows given
/// in [`Fixture::rows`] (or none), and a filter halves their visitors so
/// tests can see that it reached the source; filtered headline numbers are
/// [`Fixture::filtered`] when set. Records every request.
#[derive(Default)]
pub struct Fixture {
    pub totals: Totals,
    pub filtered: Option<Aggregate>,
    pub points: Vec<Point>,
    pub rows: Vec<(Dimension, Vec<BreakdownRow>)>,
    pub live: u64,
    pub requests: std::sync::Mutex<Vec<StatsRequest>>,
}

impl Fixture {
    fn record(&self, req: &StatsRequest) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).push(req.clone());
    }

    fn scale(req: &StatsRequest, n: u64) -> u64 {
        if req.filters.is_empty() { n } else { n / 2 }
    }

    /// A row with `visitors` visitors and plausible other numbers.
    pub fn row(value: &str, visitors: u64) -> BreakdownRow {
        BreakdownRow {
            value: value.into(),
            visitors,
            visits: visitors + visitors / 5,
            pageviews: visitors * 2,
            events: visitors,
            percentage: 0.0,
            bounce_rate: Some(40.0),
            visit_duration: Some(75.0),
        }
    }
}

impl StatsSource for Fixture {
    fn aggregate<'a>(&'a self, req: &'a StatsRequest) -> BoxFut<'a, Totals> {
        self.record(req);
        let mut t = self.totals.clone();
        if let (false, Some(f)) = (req.filters.is_empty(), &self.filtered) {
            t.current = f.clone();
        }
        t.visitor_days = req.range.days() > 1;
        Box::pin(async move { Ok(t) })
    }

    fn timeseries<'a>(&'a self, req: &'a StatsRequest, interval: Interval) -> BoxFut<'a, Series> {
        self.record(req);
        let s = Series {
            interval,
            current: self.points.clone(),
            previous: self.points.clone(),
            visitor_days: req.range.days() > 1,
        };
        Box::pin(async move { Ok(s) })
    }

    fn breakdown<'a>(
        &'a self,
        req: &'a StatsRequest,
        dimension: Dimension,
        limit: usize,
        k: Option<u64>,
    ) -> BoxFut<'a, Breakdown> {
        self.record(req);
        let total: u64 = self.totals.current.visitors.max(1);
        let mut rows: Vec<BreakdownRow> = self
            .rows
            .iter()
            .filter(|(d, _)| *d == dimension)
            .flat_map(|(_, r)| r.clone())
            .map(|mut r| {
                r.visitors = Self::scale(req, r.visitors);
                r.percentage = r.visitors as f64 * 100.0 / total as f64;
                r
            })
            .collect();
        rows.truncate(limit);
        let b = Breakdown { dimension, rows, other: None };
        Box::pin(async move { Ok(k.map_or(b.clone(), |k| apply_k(b, k))) })
    }

    fn realtime_visitors<'a>(&'a self, _: &'a str) -> BoxFut<'a, u64> {
        let n = self.live;
        Box::pin(async move { Ok(n) })
    }

    fn panels(&self, _: &str) -> Vec<PanelSpec> {
        default_panels()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_threshold_folds_small_rows() {
        let b = Breakdown {
            dimension: Dimension::Page,
            rows: vec![Fixture::row("/a", 50), Fixture::row("/b", 9), Fixture::row("/c", 1)],
            other: None,
        };
        let b = apply_k(b, 10);
        assert_eq!(b.rows.len(), 1);
        let other = b.other.expect("other");
        assert_eq!(other.visitors, 10);
        assert_eq!(
            apply_k(Breakdown { dimension: Dimension::Page, rows: vec![Fixture::row("/a", 1)], other: None }, 1)
                .rows
                .len(),
            1
        );
    }
}
