//! The dashboard's state lives in its URL: period, filters, language.
//!
//! `?period=30d&f=source:Google&f=country:RU&lang=ru` — every link the page
//! makes is this state with one thing changed, so any view can be
//! bookmarked or sent on, and nothing is kept on the server or in a cookie.
//! Filter values are opaque strings: they reach the engine as values of a
//! [`Filter`], never as SQL.

use super::i18n::Lang;
use crate::stats::{DateRange, Dimension, Filter, Period};
use time::Date;

/// Longest filter value accepted (longer ones are ignored).
const MAX_VALUE: usize = 2000;
/// Most filters at once.
const MAX_FILTERS: usize = 10;

/// What a dashboard URL asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub period: Period,
    pub filters: Vec<Filter>,
    /// `?lang=` when given (kept in links); else negotiated.
    pub lang: Option<Lang>,
    /// Property key for the event-properties panel.
    pub prop: Option<String>,
}

impl Default for View {
    fn default() -> Self {
        View { period: Period::Last30Days, filters: Vec::new(), lang: None, prop: None }
    }
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s.trim(), DATE).ok()
}

pub fn format_date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

/// `source:Google` → source == "Google"; `prop.plan:pro` → props[plan] == "pro".
pub fn parse_filter(s: &str) -> Option<Filter> {
    let (dim, value) = s.split_once(':')?;
    if value.len() > MAX_VALUE {
        return None;
    }
    if let Some(key) = dim.strip_prefix("prop.") {
        if key.is_empty() || key.len() > 300 {
            return None;
        }
        return Some(Filter { dimension: Dimension::Prop, value: value.to_string(), prop: Some(key.to_string()) });
    }
    let dimension = Dimension::parse(dim).filter(|d| *d != Dimension::Prop)?;
    Some(Filter { dimension, value: value.to_string(), prop: None })
}

/// The URL form of a filter.
pub fn filter_param(f: &Filter) -> String {
    match (&f.dimension, &f.prop) {
        (Dimension::Prop, Some(key)) => format!("prop.{key}:{}", f.value),
        (d, _) => format!("{}:{}", d.as_str(), f.value),
    }
}

impl View {
    /// Read a query string. Unknown or malformed parts are ignored (a link
    /// never fails), except that a custom range needs both dates.
    pub fn parse(query: &str) -> View {
        let mut v = View::default();
        let (mut period, mut from, mut to, mut date) = (None, None, None, None);
        for (k, val) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "period" => period = Some(val.into_owned()),
                "from" => from = parse_date(&val),
                "to" => to = parse_date(&val),
                "date" => date = Some(val.into_owned()),
                "f" if v.filters.len() < MAX_FILTERS => {
                    if let Some(f) = parse_filter(&val) {
                        // One filter per dimension (and property key): the last wins.
                        v.filters.retain(|g| !(g.dimension == f.dimension && g.prop == f.prop));
                        v.filters.push(f);
                    }
                }
                "lang" => v.lang = Lang::parse(&val),
                "prop" if !val.trim().is_empty() && val.len() <= 300 => v.prop = Some(val.trim().to_string()),
                _ => {}
            }
        }
        let custom_dates = match (from, to) {
            (Some(a), Some(b)) => Some(format!("{},{}", format_date(a.min(b)), format_date(a.max(b)))),
            _ => date,
        };
        if let Some(p) = period.as_deref().and_then(|p| Period::parse(p, custom_dates.as_deref())) {
            v.period = p;
        }
        v
    }

    /// This view as a query string (without `?`), in a stable order.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.period != Period::Last30Days {
            q.append_pair("period", self.period.as_str());
        }
        if let Period::Custom(DateRange { from, to }) = self.period {
            q.append_pair("from", &format_date(from));
            q.append_pair("to", &format_date(to));
        }
        for f in &self.filters {
            q.append_pair("f", &filter_param(f));
        }
        if let Some(p) = &self.prop {
            q.append_pair("prop", p);
        }
        if let Some(l) = self.lang {
            q.append_pair("lang", l.code());
        }
        q.finish()
    }

    /// `base` with this view's query appended.
    pub fn href(&self, base: &str) -> String {
        let q = self.query();
        if q.is_empty() { base.to_string() } else { format!("{base}?{q}") }
    }

    pub fn with_period(&self, period: Period) -> View {
        View { period, ..self.clone() }
    }

    pub fn with_lang(&self, lang: Lang) -> View {
        View { lang: Some(lang), ..self.clone() }
    }

    /// This view with `f` added (replacing a filter on the same dimension).
    pub fn with_filter(&self, f: Filter) -> View {
        let mut v = self.clone();
        v.filters.retain(|g| !(g.dimension == f.dimension && g.prop == f.prop));
        v.filters.push(f);
        v
    }

    pub fn without_filter(&self, i: usize) -> View {
        let mut v = self.clone();
        if i < v.filters.len() {
            v.filters.remove(i);
        }
        v
    }

    pub fn without_filters(&self) -> View {
        View { filters: Vec::new(), ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = View::parse("period=7d&f=source:Google&f=country:RU&f=prop.plan:pro%3Bx&lang=ru&junk=1");
        assert_eq!(v.period, Period::Last7Days);
        assert_eq!(v.filters.len(), 3);
        assert_eq!(
            v.filters[2],
            Filter { dimension: Dimension::Prop, value: "pro;x".into(), prop: Some("plan".into()) }
        );
        assert_eq!(v.lang, Some(Lang::Ru));
        assert_eq!(View::parse(&v.query()), v);
    }

    #[test]
    fn values_are_opaque() {
        let v = View::parse("f=page:%2Fa%27%3B%20DROP%20TABLE%20events%3B--&f=page:%2Fb%3Ac");
        assert_eq!(v.filters, vec![Filter { dimension: Dimension::Page, value: "/b:c".into(), prop: None }]);
        let v = View::parse("f=page:%2Fa%27%3B%20DROP%20TABLE%20events%3B--");
        assert_eq!(v.filters[0].value, "/a'; DROP TABLE events;--");
        assert!(View::parse("f=nonsense:x&f=prop:x&f=:x").filters.is_empty());
    }

    #[test]
    fn custom_ranges() {
        let v = View::parse("period=custom&from=2025-03-10&to=2025-03-01");
        let Period::Custom(r) = v.period else { panic!("custom: {v:?}") };
        assert_eq!((format_date(r.from), format_date(r.to)), ("2025-03-01".into(), "2025-03-10".into()));
        assert_eq!(View::parse(&v.query()).period, v.period);
        assert_eq!(View::parse("period=custom&date=2025-01-01,2025-01-31").period.as_str(), "custom");
        assert_eq!(View::parse("period=custom&from=2025-03-10").period, Period::Last30Days, "incomplete: default");
    }

    #[test]
    fn links_change_one_thing() {
        let v = View::parse("period=7d&f=source:Google");
        let w = v.with_filter(Filter { dimension: Dimension::Source, value: "Yandex".into(), prop: None });
        assert_eq!(w.query(), "period=7d&f=source%3AYandex");
        assert_eq!(v.without_filter(0).query(), "period=7d");
        assert_eq!(v.with_period(Period::Last30Days).href("/example.com"), "/example.com?f=source%3AGoogle");
    }
}
