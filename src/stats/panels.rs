//! Panel declarations: `dashboards/*.toml`, with custom SQL in
//! `sql/queries/panels/*.sql`.
//!
//! Adding a panel needs no Rust change. Both directories are embedded in the
//! binary at build time (`build.rs` lists whatever files are there), and a
//! test loads every declaration and runs every panel on a real ClickHouse.
//!
//! ```toml
//! id = "overview"                # the dashboard
//! title_en = "Overview"
//! title_ru = "Обзор"
//!
//! [[panels]]
//! id = "sources"                 # unique over all dashboards: a-z, 0-9, _ and -
//! title_en = "Top sources"
//! title_ru = "Источники"
//! kind = "breakdown"             # aggregate | timeseries | breakdown
//! dimension = "source"           # a stats::Dimension (as in ?f=source:Google)
//! visualisation = "bars"         # number | chart | bars | table | map
//! limit = 10                     # rows shown (breakdowns; default 10)
//! # prop = "plan"                # for dimension = "prop": the property key
//!                                # (without it, the request's `prop` is used)
//! # query = "not_found"          # custom SQL: sql/queries/panels/not_found.sql
//! ```
//!
//! A breakdown panel without `query` is computed by the engine for its
//! dimension (from the rollup when it can, see [`super::engine`]). With
//! `query`, the SQL file is the panel. Its result columns are, in this
//! order: `value` (String), `visitors`, `visits`, `pageviews`, `events`
//! (unsigned integers); the engine sorts, limits and folds rows with fewer
//! than k visitors into "(other)". It reads raw `events` and may use these
//! slots (see [`super::template`]; the defaults make the file runnable as
//! is):
//!
//! | slot | filled with |
//! |---|---|
//! | `/*site*/('example.com')` | the site |
//! | `/*from*/('2024-01-01 00:00:00')` | start of the range (inclusive, UTC) |
//! | `/*to*/('2024-01-31 00:00:00')` | end of the range (exclusive) |
//! | `/*until*/('2024-02-01 00:00:00')` | a day after the end (visits still running) |
//! | `/*filters*/(1)` | the request's filters, a boolean over `events` columns |
//!
//! Values are always bound (escaped by the client), never spliced in.

use super::Dimension;
use super::template::{Template, TemplateError};
use serde::Deserialize;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_panels.rs"));
}

/// Slots a custom panel query may use.
pub const PANEL_SLOTS: &[&str] = &["site", "from", "to", "until", "filters"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Aggregate,
    Timeseries,
    Breakdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visualisation {
    Number,
    Chart,
    Bars,
    Table,
    Map,
}

/// One panel of a dashboard.
#[derive(Debug, Clone)]
pub struct Panel {
    pub id: String,
    /// The dashboard it belongs to.
    pub dashboard: String,
    pub title_en: String,
    pub title_ru: String,
    pub kind: Kind,
    /// What a breakdown's values are (also for custom queries: clicking a
    /// row filters on this dimension).
    pub dimension: Option<Dimension>,
    /// Property key for a [`Dimension::Prop`] breakdown; `None`: the
    /// request's [`super::StatsRequest::prop`] (chosen in the UI).
    pub prop: Option<String>,
    pub visualisation: Visualisation,
    pub limit: usize,
    /// Custom SQL (`query = "name"` → `sql/queries/panels/name.sql`).
    pub query: Option<Template>,
}

/// A dashboard: panels in display order.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub id: String,
    pub title_en: String,
    pub title_ru: String,
    pub panels: Vec<Panel>,
}

/// Every declared dashboard.
#[derive(Debug, Clone, Default)]
pub struct Panels {
    pub dashboards: Vec<Dashboard>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid panel declarations:\n  {}", .problems.join("\n  "))]
pub struct PanelError {
    /// Every problem found, not only the first.
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    id: String,
    title_en: String,
    title_ru: String,
    #[serde(default)]
    panels: Vec<RawPanel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPanel {
    id: String,
    title_en: String,
    title_ru: String,
    kind: Kind,
    dimension: Option<String>,
    prop: Option<String>,
    visualisation: Visualisation,
    limit: Option<usize>,
    query: Option<String>,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Panels {
    /// The dashboards built into the binary.
    pub fn embedded() -> Result<Panels, PanelError> {
        Panels::parse(embedded::DASHBOARDS, embedded::PANEL_QUERIES)
    }

    /// Names of the embedded files (for tests and diagnostics).
    pub fn embedded_files() -> (Vec<&'static str>, Vec<&'static str>) {
        (
            embedded::DASHBOARDS.iter().map(|(f, _)| *f).collect(),
            embedded::PANEL_QUERIES.iter().map(|(f, _)| *f).collect(),
        )
    }

    /// Parse dashboards (`(file name, TOML)`) and panel queries
    /// (`(file name, SQL)`); report every problem at once.
    pub fn parse(dashboards: &[(&str, &str)], queries: &[(&str, &str)]) -> Result<Panels, PanelError> {
        let mut problems = Vec::new();
        let mut out = Panels::default();
        let mut ids: Vec<String> = Vec::new();
        let mut dash_ids: Vec<String> = Vec::new();
        for (file, text) in dashboards {
            let raw: RawDashboard = match toml::from_str(text) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("dashboards/{file}: {e}"));
                    continue;
                }
            };
            if !valid_id(&raw.id) {
                problems.push(format!("dashboards/{file}: dashboard id `{}` must be a-z, 0-9, _ or -", raw.id));
            }
            if dash_ids.contains(&raw.id) {
                problems.push(format!("dashboards/{file}: dashboard `{}` declared twice", raw.id));
            }
            dash_ids.push(raw.id.clone());
            let mut dash =
                Dashboard { id: raw.id.clone(), title_en: raw.title_en, title_ru: raw.title_ru, panels: Vec::new() };
            for p in raw.panels {
                let at = format!("dashboards/{file}: panel `{}`", p.id);
                if !valid_id(&p.id) {
                    problems.push(format!("{at}: id must be a-z, 0-9, _ or -"));
                }
                if ids.contains(&p.id) {
                    problems.push(format!("{at}: id used twice"));
                }
                ids.push(p.id.clone());
                let dimension = match p.dimension.as_deref().map(|d| (d, Dimension::parse(d))) {
                    None => None,
                    Some((_, Some(d))) => Some(d),
                    Some((d, None)) => {
                        problems.push(format!("{at}: unknown dimension `{d}`"));
                        None
                    }
                };
                let query = match &p.query {
                    None => None,
                    Some(q) => match queries.iter().find(|(f, _)| f.strip_suffix(".sql") == Some(q.as_str())) {
                        None => {
                            problems.push(format!("{at}: no file sql/queries/panels/{q}.sql"));
                            None
                        }
                        Some((f, sql)) => match Template::parse(&format!("sql/queries/panels/{f}"), sql, PANEL_SLOTS) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                problems.push(format!("{at}: {e}"));
                                None
                            }
                        },
                    },
                };
                match p.kind {
                    Kind::Breakdown if p.dimension.is_none() => {
                        problems.push(format!("{at}: a breakdown needs a dimension"));
                    }
                    Kind::Aggregate | Kind::Timeseries if p.dimension.is_some() || p.query.is_some() => {
                        problems.push(format!("{at}: only breakdowns take a dimension or a query"));
                    }
                    _ => {}
                }
                let fits = match p.kind {
                    Kind::Aggregate => p.visualisation == Visualisation::Number,
                    Kind::Timeseries => p.visualisation == Visualisation::Chart,
                    Kind::Breakdown => {
                        matches!(p.visualisation, Visualisation::Bars | Visualisation::Table | Visualisation::Map)
                    }
                };
                if !fits {
                    problems
                        .push(format!("{at}: visualisation {:?} does not fit a {:?} panel", p.visualisation, p.kind));
                }
                let limit = p.limit.unwrap_or(10);
                if !(1..=1000).contains(&limit) {
                    problems.push(format!("{at}: limit must be 1 to 1000"));
                }
                dash.panels.push(Panel {
                    id: p.id,
                    dashboard: raw.id.clone(),
                    title_en: p.title_en,
                    title_ru: p.title_ru,
                    kind: p.kind,
                    dimension,
                    prop: p.prop,
                    visualisation: p.visualisation,
                    limit,
                    query,
                });
            }
            out.dashboards.push(dash);
        }
        for (f, _) in queries {
            let name = f.strip_suffix(".sql").unwrap_or(f);
            let used = out.panels().any(|p| p.query.as_ref().is_some_and(|q| q.name.ends_with(&format!("/{f}"))));
            if !used {
                problems.push(format!("sql/queries/panels/{f}: no panel declares query = \"{name}\""));
            }
        }
        if problems.is_empty() { Ok(out) } else { Err(PanelError { problems }) }
    }

    pub fn dashboard(&self, id: &str) -> Option<&Dashboard> {
        self.dashboards.iter().find(|d| d.id == id)
    }

    /// A panel by id (ids are unique over all dashboards).
    pub fn panel(&self, id: &str) -> Option<&Panel> {
        self.panels().find(|p| p.id == id)
    }

    pub fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.dashboards.iter().flat_map(|d| d.panels.iter())
    }
}

impl From<TemplateError> for PanelError {
    fn from(e: TemplateError) -> Self {
        PanelError { problems: vec![e.to_string()] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_dashboards_load() {
        let p = Panels::embedded().expect("embedded dashboards are valid");
        let overview = p.dashboard("overview").expect("an overview dashboard");
        assert!(overview.panels.iter().any(|p| p.kind == Kind::Aggregate));
        assert!(overview.panels.iter().any(|p| p.kind == Kind::Timeseries));
        assert!(overview.panels.iter().any(|p| p.kind == Kind::Breakdown));
        let (tomls, sqls) = Panels::embedded_files();
        assert!(tomls.contains(&"overview.toml"), "{tomls:?}");
        assert!(!sqls.is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        let toml = r#"
id = "d"
title_en = "D"
title_ru = "Д"
[[panels]]
id = "a"
title_en = "A"
title_ru = "А"
kind = "breakdown"
visualisation = "number"
[[panels]]
id = "a"
title_en = "A"
title_ru = "А"
kind = "breakdown"
dimension = "colour"
visualisation = "bars"
query = "missing"
"#;
        let err = Panels::parse(&[("d.toml", toml)], &[("stray.sql", "SELECT 1")]).expect_err("invalid");
        let all = err.problems.join("\n");
        for needle in [
            "needs a dimension",
            "does not fit",
            "id used twice",
            "unknown dimension `colour`",
            "no file sql/queries/panels/missing.sql",
            "stray.sql: no panel declares",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn custom_queries_may_only_use_known_slots() {
        let toml = r#"
id = "d"
title_en = "D"
title_ru = "Д"
[[panels]]
id = "q"
title_en = "Q"
title_ru = "Q"
kind = "breakdown"
dimension = "page"
visualisation = "table"
query = "q"
"#;
        let err =
            Panels::parse(&[("d.toml", toml)], &[("q.sql", "SELECT 1 WHERE x = /*limit*/10")]).expect_err("invalid");
        assert!(err.problems[0].contains("unknown slot /*limit*/"), "{:?}", err.problems);
    }
}
