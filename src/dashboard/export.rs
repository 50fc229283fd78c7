//! CSV exports of breakdowns, and a ZIP of everything.
//!
//! Exports leave the operator's hands, so the site's k-threshold always
//! applies: rows with fewer than k visitors are folded into "(other)", and
//! when filters narrow the view to fewer than k visitors the headline
//! numbers are withheld. Values are written as stored (country codes, raw
//! paths), UTF-8, one header row.

use super::source::Totals;
use crate::stats::{Breakdown, BreakdownRow, Dimension, Point};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("ZIP: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}")).unwrap_or_default()
}

fn row(w: &mut csv::Writer<Vec<u8>>, value: &str, r: &BreakdownRow) -> Result<(), csv::Error> {
    w.write_record([
        value,
        &r.visitors.to_string(),
        &r.visits.to_string(),
        &r.pageviews.to_string(),
        &r.events.to_string(),
        &format!("{:.1}", r.percentage),
        &opt(r.bounce_rate),
        &opt(r.visit_duration),
    ])
}

/// One breakdown as CSV. The first column is named after the dimension
/// (for a property breakdown, after the property key).
pub fn breakdown_csv(b: &Breakdown, prop: Option<&str>) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let name = match (b.dimension, prop) {
        (Dimension::Prop, Some(k)) => k,
        (d, _) => d.as_str(),
    };
    w.write_record([name, "visitors", "visits", "pageviews", "events", "percentage", "bounce_rate", "visit_duration"])?;
    for r in &b.rows {
        row(&mut w, &r.value, r)?;
    }
    if let Some(o) = &b.other {
        row(&mut w, "(other)", o)?;
    }
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

/// The headline numbers (empty when withheld).
pub fn aggregate_csv(t: Option<&Totals>) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "period",
        "visitors",
        "visits",
        "pageviews",
        "events",
        "views_per_visit",
        "bounce_rate",
        "visit_duration",
        "visitor_days",
    ])?;
    if let Some(t) = t {
        for (name, a) in [("current", &t.current), ("previous", &t.previous)] {
            w.write_record([
                name,
                &a.visitors.to_string(),
                &a.visits.to_string(),
                &a.pageviews.to_string(),
                &a.events.to_string(),
                &format!("{:.2}", a.views_per_visit),
                &format!("{:.1}", a.bounce_rate),
                &format!("{:.1}", a.visit_duration),
                if t.visitor_days { "true" } else { "false" },
            ])?;
        }
    }
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

pub fn timeseries_csv(points: &[Point]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["bucket", "visitors", "visits", "pageviews"])?;
    for p in points {
        let t = p.bucket.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        w.write_record([t, p.visitors.to_string(), p.visits.to_string(), p.pageviews.to_string()])?;
    }
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

/// A ZIP of named files (deflated).
pub fn zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ExportError> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        z.start_file(name.as_str(), opts)?;
        z.write_all(data)?;
    }
    Ok(z.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::source::Fixture;

    #[test]
    fn csv_has_header_rows_and_other() {
        let b = Breakdown {
            dimension: Dimension::Page,
            rows: vec![Fixture::row("/a,\"b\"", 12)],
            other: Some(Fixture::row("", 3)),
        };
        let text = String::from_utf8(breakdown_csv(&b, None).expect("csv")).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "page,visitors,visits,pageviews,events,percentage,bounce_rate,visit_duration");
        assert!(lines[1].starts_with("\"/a,\"\"b\"\"\",12,"), "{text}");
        assert!(lines[2].starts_with("(other),3,"), "{text}");
    }

    #[test]
    fn zip_round_trips() {
        let z = zip(&[("a.csv".into(), b"x,y\n".to_vec())]).expect("zip");
        let mut r = zip::ZipArchive::new(std::io::Cursor::new(z)).expect("read");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut r.by_name("a.csv").expect("file"), &mut s).expect("read");
        assert_eq!(s, "x,y\n");
    }
}
