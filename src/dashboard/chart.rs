//! The visitors chart, drawn on the server as inline SVG.
//!
//! Server-side SVG shows without JavaScript, prints, and needs no chart
//! library. Each bucket has an invisible hit area with a `<title>`, so the
//! browser's own tooltip gives exact numbers; the page's small script only
//! adds a nicer tooltip on top. Colours come from CSS classes, so dark mode
//! needs nothing here.

use super::i18n::{Lang, Msg};
use super::source::Series;
use crate::stats::{Interval, Point};
use maud::{Markup, html};
use std::fmt::Write;

// The outer SVG has no viewBox: it is as wide as the page and as tall as
// CSS says, and positions its text in percentages so labels keep their
// shape on a phone. The plot itself is a nested SVG stretched over the
// plot area (`preserveAspectRatio="none"`, strokes non-scaling); dots are
// zero-length round-capped strokes, which stay round however it stretches.
const LEFT: f64 = 8.0; // % of the width for the y labels
const WIDTH: f64 = 90.5; // % of the width for the plot
const TOP: f64 = 6.0; // % of the height above the plot
const HEIGHT: f64 = 80.0; // % of the height for the plot
const UNITS: f64 = 1000.0; // the plot's own coordinates

/// A "nice" axis maximum ≥ `max` (1, 2, 2.5 or 5 × 10ⁿ) and its tick step.
fn nice_max(max: u64) -> (f64, f64) {
    if max == 0 {
        return (4.0, 1.0);
    }
    let raw = max as f64 / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let step = if step < 1.0 { 1.0 } else { step };
    (step * 4.0, step)
}

/// The label of a bucket.
pub fn bucket_label(lang: Lang, interval: Interval, p: &Point, with_date: bool) -> String {
    match interval {
        Interval::Hour if with_date => format!("{} {}", lang.day(p.bucket.date()), lang.hour(p.bucket)),
        Interval::Hour => lang.hour(p.bucket),
        Interval::Day => lang.day(p.bucket.date()),
        Interval::Month => lang.month_short_year(p.bucket.date()),
    }
}

fn path(points: &[Point], x: impl Fn(usize) -> f64, y: impl Fn(u64) -> f64) -> String {
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x(i), y(p.visitors));
    }
    d
}

fn pct(x: f64) -> String {
    format!("{x:.2}%")
}

/// The chart of `s`, current period over the previous one (dashed).
pub fn render(s: &Series, lang: Lang) -> Markup {
    let n = s.current.len().max(1);
    let max = s.current.iter().chain(&s.previous).map(|p| p.visitors).max().unwrap_or(0);
    let (ymax, step) = nice_max(max);
    // Plot coordinates (0..UNITS both ways).
    let x = |i: usize| if n == 1 { UNITS / 2.0 } else { UNITS * i as f64 / (n - 1) as f64 };
    let y = |v: u64| UNITS * (1.0 - v as f64 / ymax);
    // The same points as percentages of the whole chart, for labels.
    let px = |i: usize| LEFT + WIDTH * x(i) / UNITS;
    let py = |v: f64| TOP + HEIGHT * (1.0 - v / ymax);
    let cur = path(&s.current, x, y);
    let area = if s.current.is_empty() {
        String::new()
    } else {
        format!("{cur} L{:.1},{UNITS} L{:.1},{UNITS} Z", x(s.current.len() - 1), x(0))
    };
    let prev: Vec<Point> = s.previous.iter().take(n).cloned().collect();
    let prev_path = path(&prev, x, y);
    let ticks: Vec<f64> = (0..=4).map(|i| i as f64 * step).collect();
    let label_every = n.div_ceil(6).max(1);
    let multi_day_hours = s.interval == Interval::Hour
        && s.current.first().zip(s.current.last()).is_some_and(|(a, b)| a.bucket.date() != b.bucket.date());
    let slot = UNITS / n as f64;
    let dots = n <= 62;
    let dot_path: String = if dots {
        s.current.iter().enumerate().map(|(i, p)| format!("M{:.1},{:.1} l0,0 ", x(i), y(p.visitors))).collect()
    } else {
        String::new()
    };
    html! {
        svg.chart role="img" aria-label=(Msg::Chart.text(lang)) {
            @for t in &ticks {
                text.ylabel x=(pct(LEFT - 1.0)) y=(pct(py(*t))) dy="0.35em" text-anchor="end" { (lang.compact(*t)) }
            }
            @for (i, p) in s.current.iter().enumerate() {
                @if i % label_every == 0 {
                    text.xlabel x=(pct(px(i))) y="97%" text-anchor="middle" { (bucket_label(lang, s.interval, p, multi_day_hours && p.bucket.hour() == 0)) }
                }
            }
            svg.plot x=(pct(LEFT)) y=(pct(TOP)) width=(pct(WIDTH)) height=(pct(HEIGHT)) viewBox=(format!("0 0 {UNITS} {UNITS}")) preserveAspectRatio="none" overflow="visible" {
                @for t in &ticks {
                    line.grid x1="0" x2=(UNITS) y1=(format!("{:.1}", y(*t as u64))) y2=(format!("{:.1}", y(*t as u64))) {}
                }
                @if !prev.is_empty() {
                    path.prev d=(prev_path) {}
                }
                @if !s.current.is_empty() {
                    path.area d=(area) {}
                    path.cur d=(cur) {}
                }
                @if dots {
                    path.dot d=(dot_path) {}
                }
                @for (i, p) in s.current.iter().enumerate() {
                    @let before = prev.get(i).map(|q| q.visitors);
                    @let title = match before {
                        Some(b) => format!("{}: {} {} ({}: {})", bucket_label(lang, s.interval, p, true), lang.int(p.visitors), Msg::Visitors.text(lang).to_lowercase(), Msg::PreviousPeriod.text(lang), lang.int(b)),
                        None => format!("{}: {} {}", bucket_label(lang, s.interval, p, true), lang.int(p.visitors), Msg::Visitors.text(lang).to_lowercase()),
                    };
                    rect.hit x=(format!("{:.1}", (x(i) - slot / 2.0).max(0.0))) y="0" width=(format!("{:.1}", slot)) height=(UNITS) data-x=(format!("{:.2}", px(i))) data-label=(title) {
                        title { (title) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn pt(h: u8, v: u64) -> Point {
        Point {
            bucket: datetime!(2025-03-05 00:00 UTC).replace_hour(h).expect("hour"),
            visitors: v,
            visits: v,
            pageviews: v,
        }
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0), (4.0, 1.0));
        assert_eq!(nice_max(3), (4.0, 1.0));
        assert_eq!(nice_max(97), (100.0, 25.0));
        assert_eq!(nice_max(1234), (2000.0, 500.0));
    }

    #[test]
    fn draws_both_periods_with_titles() {
        let s = Series {
            interval: Interval::Hour,
            current: vec![pt(0, 5), pt(1, 10)],
            previous: vec![pt(0, 2), pt(1, 1)],
            visitor_days: false,
        };
        let svg = render(&s, Lang::En).into_string();
        assert!(svg.contains("class=\"cur\"") && svg.contains("class=\"prev\""), "{svg}");
        assert!(svg.contains("<title>Mar 5 01:00: 10 visitors (previous period: 1)</title>"), "{svg}");
        let empty = Series { interval: Interval::Day, current: vec![], previous: vec![], visitor_days: false };
        assert!(render(&empty, Lang::Ru).into_string().starts_with("<svg"));
    }
}
