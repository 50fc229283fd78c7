//! The stats engine: attendance numbers for one site, from ClickHouse.
//!
//! This module is the contract between the data side (queries, rollups,
//! sessions — owned here) and the web side (`crate::dashboard`: HTML
//! dashboards, the Plausible-compatible Stats API, exports). The web side
//! never writes SQL; it builds a [`StatsRequest`] and renders what comes back.
//!
//! Panels are declared in `dashboards/*.toml` and their SQL lives in
//! `sql/queries/`; adding a panel needs no Rust change (see [`panels`]).
//!
//! Honesty rules every result follows:
//! * `visitors` over a range longer than one day counts **visitor-days**
//!   (daily salts: the same person on two days is two ids).
//!   [`StatsResult::visitor_days`] tells the UI when to say so.
//! * Breakdowns can fold rows with fewer than `k` visitors into one
//!   "(other)" row ([`Breakdown::other`]) so no one can be singled out in
//!   shared links and exports.

pub mod engine;
pub mod panels;
pub mod template;

pub use engine::{Engine, Plan};
pub use panels::{Panel, PanelError, Panels};

use serde::Serialize;
use time::{Date, OffsetDateTime};

/// Inclusive range of UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DateRange {
    pub from: Date,
    pub to: Date,
}

impl DateRange {
    pub fn days(&self) -> i64 {
        (self.to - self.from).whole_days() + 1
    }

    /// The range of equal length just before this one (for comparison).
    pub fn previous(&self) -> DateRange {
        let len = time::Duration::days(self.days());
        DateRange { from: self.from - len, to: self.to - len }
    }
}

/// The presets of the date picker (and the Plausible Stats API `period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    Yesterday,
    Last7Days,
    Last30Days,
    MonthToDate,
    LastMonth,
    Last12Months,
    Custom(DateRange),
}

impl Period {
    /// Parse the URL/API form: `day`|`today`, `yesterday`, `7d`, `30d`,
    /// `month`, `last_month`, `12mo`, or `custom` with `date=YYYY-MM-DD,YYYY-MM-DD`.
    pub fn parse(period: &str, date: Option<&str>) -> Option<Period> {
        Some(match period {
            "day" | "today" => Period::Today,
            "yesterday" => Period::Yesterday,
            "7d" => Period::Last7Days,
            "30d" => Period::Last30Days,
            "month" => Period::MonthToDate,
            "last_month" => Period::LastMonth,
            "12mo" => Period::Last12Months,
            "custom" => {
                let (a, b) = date?.split_once(',')?;
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                let from = Date::parse(a.trim(), &fmt).ok()?;
                let to = Date::parse(b.trim(), &fmt).ok()?;
                if to < from || (to - from).whole_days() > 3660 {
                    return None;
                }
                Period::Custom(DateRange { from, to })
            }
            _ => return None,
        })
    }

    /// The URL/API form of this period.
    pub fn as_str(&self) -> &'static str {
        match self {
            Period::Today => "day",
            Period::Yesterday => "yesterday",
            Period::Last7Days => "7d",
            Period::Last30Days => "30d",
            Period::MonthToDate => "month",
            Period::LastMonth => "last_month",
            Period::Last12Months => "12mo",
            Period::Custom(_) => "custom",
        }
    }

    /// Resolve against "now" (UTC).
    pub fn resolve(&self, now: OffsetDateTime) -> DateRange {
        let today = now.date();
        let back = |d: i64| today - time::Duration::days(d);
        match *self {
            Period::Today => DateRange { from: today, to: today },
            Period::Yesterday => DateRange { from: back(1), to: back(1) },
            Period::Last7Days => DateRange { from: back(6), to: today },
            Period::Last30Days => DateRange { from: back(29), to: today },
            Period::MonthToDate => DateRange { from: today.replace_day(1).unwrap_or(today), to: today },
            Period::LastMonth => {
                let first_this = today.replace_day(1).unwrap_or(today);
                let last_prev = first_this.previous_day().unwrap_or(first_this);
                DateRange { from: last_prev.replace_day(1).unwrap_or(last_prev), to: last_prev }
            }
            Period::Last12Months => DateRange { from: today - time::Duration::days(364), to: today },
            Period::Custom(r) => r,
        }
    }
}

/// Time-series bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    Day,
    Month,
}

impl Interval {
    /// Hourly up to two days, daily beyond, monthly over a year.
    pub fn for_range(r: &DateRange) -> Interval {
        match r.days() {
            ..=2 => Interval::Hour,
            3..=366 => Interval::Day,
            _ => Interval::Month,
        }
    }
}

/// What a breakdown or a filter is about. Only these, so user input can never
/// name an arbitrary column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Page,
    EntryPage,
    ExitPage,
    Source,
    Channel,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmContent,
    UtmTerm,
    Browser,
    BrowserVersion,
    Os,
    OsVersion,
    Device,
    ScreenClass,
    Country,
    Region,
    City,
    Asn,
    Event,
    /// Values of one custom property (the key is in [`Filter::prop`] /
    /// [`StatsRequest::prop`]).
    Prop,
    /// File downloads (event `File Download`, by `url` prop).
    Download,
    /// Outbound links (event `Outbound Link: Click`, by `url` prop).
    Outbound,
}

impl Dimension {
    pub const ALL: [Dimension; 25] = [
        Dimension::Page,
        Dimension::EntryPage,
        Dimension::ExitPage,
        Dimension::Source,
        Dimension::Channel,
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::UtmContent,
        Dimension::UtmTerm,
        Dimension::Browser,
        Dimension::BrowserVersion,
        Dimension::Os,
        Dimension::OsVersion,
        Dimension::Device,
        Dimension::ScreenClass,
        Dimension::Country,
        Dimension::Region,
        Dimension::City,
        Dimension::Asn,
        Dimension::Event,
        Dimension::Prop,
        Dimension::Download,
        Dimension::Outbound,
    ];

    /// The URL form (`?f=page:/blog`) and dashboards/*.toml form.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Page => "page",
            Dimension::EntryPage => "entry_page",
            Dimension::ExitPage => "exit_page",
            Dimension::Source => "source",
            Dimension::Channel => "channel",
            Dimension::Referrer => "referrer",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::UtmContent => "utm_content",
            Dimension::UtmTerm => "utm_term",
            Dimension::Browser => "browser",
            Dimension::BrowserVersion => "browser_version",
            Dimension::Os => "os",
            Dimension::OsVersion => "os_version",
            Dimension::Device => "device",
            Dimension::ScreenClass => "screen",
            Dimension::Country => "country",
            Dimension::Region => "region",
            Dimension::City => "city",
            Dimension::Asn => "asn",
            Dimension::Event => "event",
            Dimension::Prop => "prop",
            Dimension::Download => "download",
            Dimension::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// `dimension == value` (or, for [`Dimension::Prop`], `props[prop] == value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub dimension: Dimension,
    pub value: String,
    /// Property key when `dimension` is [`Dimension::Prop`].
    pub prop: Option<String>,
}

/// One question to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsRequest {
    /// Configured site domain.
    pub site: String,
    pub range: DateRange,
    /// Combined with AND.
    pub filters: Vec<Filter>,
    /// Property key for a [`Dimension::Prop`] breakdown.
    pub prop: Option<String>,
}

/// The headline numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Aggregate {
    /// Unique visitor ids (visitor-days when the range spans several days).
    pub visitors: u64,
    /// Sessions (30 minutes of inactivity end one).
    pub visits: u64,
    pub pageviews: u64,
    /// Custom events (not pageviews, not engagement).
    pub events: u64,
    pub views_per_visit: f64,
    /// Percent of visits with a single interactive pageview and nothing else.
    pub bounce_rate: f64,
    /// Mean visit duration, seconds.
    pub visit_duration: f64,
}

/// One bucket of a time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket, UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub bucket: OffsetDateTime,
    pub visitors: u64,
    pub visits: u64,
    pub pageviews: u64,
}

/// One row of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    pub value: String,
    pub visitors: u64,
    pub visits: u64,
    pub pageviews: u64,
    /// Events for event/prop/download/outbound breakdowns.
    pub events: u64,
    /// Share of the range's visitors, percent.
    pub percentage: f64,
    /// Bounce rate and mean duration of visits in this row, where meaningful.
    pub bounce_rate: Option<f64>,
    pub visit_duration: Option<f64>,
}

/// A breakdown: top rows, and small groups folded into "(other)".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub dimension: Dimension,
    pub rows: Vec<BreakdownRow>,
    /// Rows with fewer than `k` visitors, summed, when a threshold applied.
    pub other: Option<BreakdownRow>,
}

/// Whatever a panel returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatsResult {
    Aggregate { current: Aggregate, previous: Aggregate, visitor_days: bool },
    Timeseries { interval: Interval, current: Vec<Point>, previous: Vec<Point>, visitor_days: bool },
    Breakdown(Breakdown),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("unknown panel `{0}`")]
    UnknownPanel(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}
