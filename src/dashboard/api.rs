//! The Stats API, compatible with Plausible's Stats API v1.
//!
//! `GET /api/v1/stats/{realtime/visitors,aggregate,timeseries,breakdown}`
//! with Plausible's parameters (`site_id`, `period`, `date`, `metrics`,
//! `filters`, `property`, `interval`, `limit`, `page`, `compare`) and JSON
//! shapes, authenticated by `Authorization: Bearer <key>` (keys from
//! `headcount apikey add`), so existing Plausible API clients work when
//! pointed at Headcount.
//!
//! Plausible's property names map onto [`Dimension`] ([`property`]); a few
//! Headcount-only ones are added (`visit:channel`, `visit:asn`,
//! `visit:device_type`, `event:download`, `event:outbound`). Filters support
//! `==` joined by `;`. Plausible's `!=`, `|` (IN) and `*` wildcards are
//! answered with a 400 naming the unsupported operator, never guessed at.

use super::source::{Series, StatsSource, Totals};
use crate::stats::{Aggregate, BreakdownRow, DateRange, Dimension, Filter, Interval, StatsRequest};
use serde_json::{Map, Value, json};
use time::{Date, Month, OffsetDateTime};

/// A client error: HTTP 400 with `{"error": …}`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(msg.into())
}

/// Plausible property name → dimension (and property key for props).
pub fn property(name: &str) -> Option<(Dimension, Option<String>)> {
    use Dimension as D;
    if let Some(key) = name.strip_prefix("event:props:") {
        return (!key.is_empty()).then(|| (D::Prop, Some(key.to_string())));
    }
    let d = match name {
        "event:page" => D::Page,
        "event:goal" | "event:name" => D::Event,
        "event:download" => D::Download,
        "event:outbound" => D::Outbound,
        "visit:entry_page" => D::EntryPage,
        "visit:exit_page" => D::ExitPage,
        "visit:source" => D::Source,
        "visit:channel" => D::Channel,
        "visit:referrer" => D::Referrer,
        "visit:utm_source" => D::UtmSource,
        "visit:utm_medium" => D::UtmMedium,
        "visit:utm_campaign" => D::UtmCampaign,
        "visit:utm_content" => D::UtmContent,
        "visit:utm_term" => D::UtmTerm,
        // Plausible's "device" is the screen class (Desktop/Laptop/Tablet/Mobile).
        "visit:device" | "visit:screen" => D::ScreenClass,
        "visit:device_type" => D::Device,
        "visit:browser" => D::Browser,
        "visit:browser_version" => D::BrowserVersion,
        "visit:os" => D::Os,
        "visit:os_version" => D::OsVersion,
        "visit:country" => D::Country,
        "visit:region" => D::Region,
        "visit:city" => D::City,
        "visit:asn" => D::Asn,
        _ => return None,
    };
    Some((d, None))
}

/// The key a breakdown row's value has in Plausible's JSON (`visit:source` → `source`).
pub fn result_key(name: &str) -> &str {
    if let Some(key) = name.strip_prefix("event:props:") {
        return key;
    }
    name.split_once(':').map_or(name, |(_, k)| k)
}

/// `visit:source==Google;event:page==/blog` → filters.
pub fn parse_filters(s: &str) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains("!=") {
            return Err(bad(format!("Headcount does not support the `!=` operator yet (in `{part}`)")));
        }
        let Some((name, value)) = part.split_once("==") else {
            return Err(bad(format!("Invalid filter `{part}`: expected property==value")));
        };
        let (dimension, prop) =
            property(name.trim()).ok_or_else(|| bad(format!("Invalid filter property `{}`", name.trim())))?;
        let value = value.trim();
        if value.contains('|') && !value.contains("\\|") {
            return Err(bad(format!("Headcount does not support `|` (IN) filters yet (in `{part}`)")));
        }
        if value.contains('*') {
            return Err(bad(format!("Headcount does not support `*` wildcards yet (in `{part}`)")));
        }
        out.push(Filter { dimension, value: value.replace("\\|", "|"), prop });
    }
    Ok(out)
}

fn first_of_month(d: Date) -> Date {
    d.replace_day(1).unwrap_or(d)
}

fn months_back(d: Date, n: i32) -> Date {
    let total = d.year() * 12 + i32::from(u8::from(d.month())) - 1 - n;
    let (y, m) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u8);
    Date::from_calendar_date(y, Month::try_from(m).unwrap_or(Month::January), 1).unwrap_or(d)
}

fn last_of_month(d: Date) -> Date {
    let first_next = months_back(first_of_month(d), -1);
    first_next.previous_day().unwrap_or(d)
}

/// Plausible's periods, relative to `date` (default today, UTC).
pub fn resolve_period(period: &str, date: Option<&str>, today: Date) -> Result<DateRange, ApiError> {
    let parse =
        |s: &str| super::params::parse_date(s).ok_or_else(|| bad(format!("Invalid date `{s}`: expected YYYY-MM-DD")));
    if period == "custom" {
        let Some((a, b)) = date.and_then(|d| d.split_once(',')) else {
            return Err(bad("Period `custom` needs `date` as YYYY-MM-DD,YYYY-MM-DD"));
        };
        let (from, to) = (parse(a)?, parse(b)?);
        if to < from || (to - from).whole_days() > 3660 {
            return Err(bad("Invalid custom range"));
        }
        return Ok(DateRange { from, to });
    }
    let d = match date {
        Some(s) if !s.is_empty() => parse(s)?,
        _ => today,
    };
    let back = |n: i64| d - time::Duration::days(n);
    Ok(match period {
        "day" => DateRange { from: d, to: d },
        "7d" => DateRange { from: back(6), to: d },
        "30d" => DateRange { from: back(29), to: d },
        "month" => DateRange { from: first_of_month(d), to: last_of_month(d) },
        "6mo" => DateRange { from: months_back(d, 5), to: last_of_month(d) },
        "12mo" => DateRange { from: months_back(d, 11), to: last_of_month(d) },
        other => return Err(bad(format!("Invalid period `{other}`. Valid: day, 7d, 30d, month, 6mo, 12mo, custom"))),
    })
}

const AGGREGATE_METRICS: &[&str] =
    &["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"];
const TIMESERIES_METRICS: &[&str] = &["visitors", "visits", "pageviews", "views_per_visit"];
const BREAKDOWN_METRICS: &[&str] =
    &["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "events", "percentage"];

fn metrics(q: &Query, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let list = q.get("metrics").unwrap_or("visitors");
    let mut out = Vec::new();
    for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if !allowed.contains(&m) {
            return Err(bad(format!(
                "The metric `{m}` is not recognized or not supported here. Supported: {}",
                allowed.join(", ")
            )));
        }
        if !out.iter().any(|x: &String| x == m) {
            out.push(m.to_string());
        }
    }
    if out.is_empty() {
        return Err(bad("The `metrics` parameter is empty"));
    }
    Ok(out)
}

/// Query parameters of one API call.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: &str) -> Query {
        Query(form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

/// The request common to the aggregate, timeseries and breakdown calls.
pub fn stats_request(site: &str, q: &Query, today: Date) -> Result<(StatsRequest, String), ApiError> {
    let period = q.get("period").unwrap_or("30d").to_string();
    let range = resolve_period(&period, q.get("date"), today)?;
    let filters = parse_filters(q.get("filters").unwrap_or_default())?;
    Ok((StatsRequest { site: site.to_string(), range, filters, prop: None }, period))
}

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

fn metric_value(a: &Aggregate, m: &str) -> Value {
    match m {
        "visitors" => json!(a.visitors),
        "visits" => json!(a.visits),
        "pageviews" => json!(a.pageviews),
        "events" => json!(a.events + a.pageviews),
        "views_per_visit" => json!(round(a.views_per_visit, 2)),
        "bounce_rate" => json!(a.bounce_rate.round() as i64),
        "visit_duration" => json!(a.visit_duration.round() as i64),
        _ => Value::Null,
    }
}

fn metric_f(a: &Aggregate, m: &str) -> f64 {
    metric_value(a, m).as_f64().unwrap_or(0.0)
}

/// `/api/v1/stats/aggregate`.
pub async fn aggregate(stats: &dyn StatsSource, req: &StatsRequest, q: &Query) -> Result<Value, ApiError> {
    let ms = metrics(q, AGGREGATE_METRICS)?;
    let compare = match q.get("compare") {
        None | Some("") => false,
        Some("previous_period") => true,
        Some(other) => {
            return Err(bad(format!("Invalid `compare` value `{other}`: only previous_period is supported")));
        }
    };
    let Totals { current, previous, .. } = stats.aggregate(req).await.map_err(engine)?;
    let mut results = Map::new();
    for m in &ms {
        let mut entry = Map::new();
        entry.insert("value".into(), metric_value(&current, m));
        if compare {
            let (c, p) = (metric_f(&current, m), metric_f(&previous, m));
            let change = if m == "bounce_rate" {
                json!((c - p).round() as i64)
            } else if p == 0.0 {
                json!(if c > 0.0 { 100 } else { 0 })
            } else {
                json!(((c - p) / p * 100.0).round() as i64)
            };
            entry.insert("change".into(), change);
        }
        results.insert(m.clone(), Value::Object(entry));
    }
    Ok(json!({ "results": results }))
}

fn engine(e: crate::stats::StatsError) -> ApiError {
    match e {
        crate::stats::StatsError::Invalid(m) => bad(m),
        other => {
            tracing::error!(error = %other, "stats API query failed");
            bad("The query failed; see Headcount's log")
        }
    }
}

/// `/api/v1/stats/timeseries`.
pub async fn timeseries(
    stats: &dyn StatsSource,
    req: &StatsRequest,
    period: &str,
    q: &Query,
) -> Result<Value, ApiError> {
    let ms = metrics(q, TIMESERIES_METRICS)?;
    let interval = match q.get("interval") {
        Some("date" | "day") => Interval::Day,
        Some("month") => Interval::Month,
        Some("hour") => Interval::Hour,
        Some(other) if !other.is_empty() => return Err(bad(format!("Invalid interval `{other}`: day, month or hour"))),
        _ if matches!(period, "6mo" | "12mo") => Interval::Month,
        _ if period == "day" => Interval::Hour,
        _ => Interval::Day,
    };
    let Series { current, .. } = stats.timeseries(req, interval).await.map_err(engine)?;
    let rows: Vec<Value> = current
        .iter()
        .map(|p| {
            let mut o = Map::new();
            o.insert("date".into(), json!(bucket(interval, p.bucket)));
            for m in &ms {
                let v = match m.as_str() {
                    "visitors" => json!(p.visitors),
                    "visits" => json!(p.visits),
                    "pageviews" => json!(p.pageviews),
                    "views_per_visit" => {
                        json!(if p.visits == 0 { 0.0 } else { round(p.pageviews as f64 / p.visits as f64, 2) })
                    }
                    _ => Value::Null,
                };
                o.insert(m.clone(), v);
            }
            Value::Object(o)
        })
        .collect();
    Ok(json!({ "results": rows }))
}

fn bucket(interval: Interval, t: OffsetDateTime) -> String {
    let d = super::params::format_date(t.date());
    match interval {
        Interval::Hour => format!("{d} {:02}:00:00", t.hour()),
        Interval::Day | Interval::Month => d,
    }
}

fn row_metric(r: &BreakdownRow, m: &str) -> Value {
    match m {
        "visitors" => json!(r.visitors),
        "visits" => json!(r.visits),
        "pageviews" => json!(r.pageviews),
        "events" => json!(r.events),
        "percentage" => json!(round(r.percentage, 1)),
        "bounce_rate" => r.bounce_rate.map_or(Value::Null, |b| json!(b.round() as i64)),
        "visit_duration" => r.visit_duration.map_or(Value::Null, |d| json!(d.round() as i64)),
        _ => Value::Null,
    }
}

/// `/api/v1/stats/breakdown`.
pub async fn breakdown(stats: &dyn StatsSource, req: &StatsRequest, q: &Query) -> Result<Value, ApiError> {
    let name =
        q.get("property").filter(|p| !p.is_empty()).ok_or_else(|| bad("The `property` parameter is required"))?;
    let (dimension, prop) = property(name).ok_or_else(|| bad(format!("Invalid property `{name}`")))?;
    let ms = metrics(q, BREAKDOWN_METRICS)?;
    let limit: usize = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| bad("`limit` must be between 1 and 1000"))?,
    };
    let page: usize = match q.get("page") {
        None => 1,
        Some(p) => {
            p.parse().ok().filter(|p| (1..=100).contains(p)).ok_or_else(|| bad("`page` must be between 1 and 100"))?
        }
    };
    let req = StatsRequest { prop, ..req.clone() };
    let b = stats.breakdown(&req, dimension, limit * page, None).await.map_err(engine)?;
    let key = result_key(name);
    let rows: Vec<Value> = b
        .rows
        .iter()
        .skip(limit * (page - 1))
        .take(limit)
        .map(|r| {
            let mut o = Map::new();
            o.insert(key.to_string(), json!(r.value));
            for m in &ms {
                o.insert(m.clone(), row_metric(r, m));
            }
            Value::Object(o)
        })
        .collect();
    Ok(json!({ "results": rows }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn properties_map_both_ways() {
        assert_eq!(property("visit:source"), Some((Dimension::Source, None)));
        assert_eq!(property("event:props:plan"), Some((Dimension::Prop, Some("plan".into()))));
        assert_eq!(property("visit:device"), Some((Dimension::ScreenClass, None)));
        assert_eq!(property("visit:nope"), None);
        assert_eq!(result_key("visit:source"), "source");
        assert_eq!(result_key("event:props:plan"), "plan");
        assert_eq!(result_key("event:page"), "page");
    }

    #[test]
    fn filters_parse() {
        let f = parse_filters("visit:source==Google;event:page==/blog").expect("valid");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1], Filter { dimension: Dimension::Page, value: "/blog".into(), prop: None });
        assert_eq!(parse_filters("visit:utm_campaign==a\\|b").expect("escaped pipe")[0].value, "a|b");
        assert_eq!(parse_filters("event:props:plan==pro").expect("prop")[0].prop.as_deref(), Some("plan"));
        for bad in ["visit:country!=FR", "visit:source==A|B", "event:page==/blog*", "visit:x==1", "garbage"] {
            assert!(parse_filters(bad).is_err(), "{bad}");
        }
        assert!(parse_filters("").expect("empty").is_empty());
    }

    #[test]
    fn periods_follow_plausible() {
        let today = date!(2025 - 03 - 15);
        let r = |p: &str, d: Option<&str>| resolve_period(p, d, today).expect("valid");
        assert_eq!(r("day", None), DateRange { from: today, to: today });
        assert_eq!(r("7d", None), DateRange { from: date!(2025 - 03 - 09), to: today });
        assert_eq!(r("month", None), DateRange { from: date!(2025 - 03 - 01), to: date!(2025 - 03 - 31) });
        assert_eq!(r("6mo", None), DateRange { from: date!(2024 - 10 - 01), to: date!(2025 - 03 - 31) });
        assert_eq!(r("12mo", Some("2025-01-10")), DateRange { from: date!(2024 - 02 - 01), to: date!(2025 - 01 - 31) });
        assert_eq!(r("custom", Some("2025-01-01,2025-01-31")).days(), 31);
        assert!(resolve_period("custom", None, today).is_err());
        assert!(resolve_period("5y", None, today).is_err());
        assert!(resolve_period("day", Some("yesterday"), today).is_err());
    }
}
