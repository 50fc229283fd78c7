//! Rendering on fixed data (no ClickHouse): escaping, localisation, links,
//! the k-threshold of shared views.

use super::source::{Fixture, Totals};
use super::*;
use crate::clock::ManualClock;
use crate::config::{RawConfig, RawSite};
use crate::stats::{Aggregate, Point};
use time::macros::datetime;

const EVIL: &str = "/<script>alert(\"x\")</script>'\"&";

fn fixture() -> Fixture {
    let t0 = datetime!(2025-03-10 00:00 UTC);
    Fixture {
        totals: Totals {
            current: Aggregate {
                visitors: 1234,
                visits: 1500,
                pageviews: 4321,
                events: 12,
                views_per_visit: 2.88,
                bounce_rate: 41.5,
                visit_duration: 95.0,
            },
            previous: Aggregate {
                visitors: 1000,
                visits: 1200,
                pageviews: 4000,
                events: 10,
                views_per_visit: 3.3,
                bounce_rate: 45.0,
                visit_duration: 80.0,
            },
            visitor_days: true,
        },
        points: (0..7)
            .map(|i| Point {
                bucket: t0 + time::Duration::days(i),
                visitors: 100 + i as u64 * 10,
                visits: 120,
                pageviews: 300,
            })
            .collect(),
        rows: vec![
            (Dimension::Page, vec![Fixture::row("/", 800), Fixture::row(EVIL, 300), Fixture::row("/rare", 3)]),
            (Dimension::Country, vec![Fixture::row("RU", 700), Fixture::row("DE", 200)]),
            (Dimension::Source, vec![Fixture::row("", 500), Fixture::row("Yandex", 400)]),
        ],
        live: 7,
        filtered: None,
        requests: Default::default(),
    }
}

fn dashboard(stats: Arc<dyn StatsSource>) -> Dashboard {
    let raw = RawConfig { sites: vec![RawSite { domain: "example.com".into() }], ..RawConfig::default() };
    let config = Arc::new(raw.validate(std::path::Path::new("/tmp")).expect("valid"));
    let clock = Arc::new(ManualClock::new(datetime!(2025-03-16 12:00 UTC)));
    Dashboard::new(config, clickhouse::Client::default(), clock, stats).expect("dashboard")
}

async fn render(query: &str, accept: Option<&str>, shared: bool) -> (String, Arc<Fixture>) {
    let fx = Arc::new(fixture());
    let d = dashboard(fx.clone());
    let mut headers = HeaderMap::new();
    if let Some(a) = accept {
        headers.insert(header::ACCEPT_LANGUAGE, a.parse().expect("header"));
    }
    let view = View::parse(query);
    let lang = view.lang.unwrap_or_else(|| Lang::negotiate(accept));
    let ctx =
        Ctx { peer: "127.0.0.1:1".parse().expect("addr"), headers: &headers, path: "/example.com", query, lang, view };
    let dash = dashboard_data(&d, &ctx, "example.com", "/example.com", shared, vec![]).await;
    let f = d.frame(&ctx, "example.com".into(), None, None);
    (view::page(&f, view::dashboard(&dash)).into_string(), fx)
}

#[tokio::test]
async fn visitor_data_is_escaped_everywhere() {
    let (html, _) = render("period=7d", None, false).await;
    assert!(!html.contains("<script>alert"), "raw script tag in page");
    assert!(!html.contains("alert(\"x\")"), "unescaped quotes in page");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'&quot;&amp;"), "escaped text missing");
    // The filter link carries the value URL-encoded.
    assert!(html.contains("f=page%3A%2F%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%27%22%26"), "{html}");
    // And a filter with the value renders escaped in the chip.
    let (html, fx) = render("period=7d&f=page:%2F%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E", None, false).await;
    assert!(!html.contains("<script>alert"));
    let reqs = fx.requests.lock().expect("lock");
    assert!(
        reqs.iter().all(|r| r.filters[0].value == "/<script>alert(\"x\")</script>"),
        "value reaches the engine as is"
    );
}

#[tokio::test]
async fn english_and_russian() {
    let (en, _) = render("period=7d", Some("en-US,en;q=0.9"), false).await;
    assert!(en.contains("<html lang=\"en\">"));
    assert!(en.contains(">1,234<"), "grouped number");
    assert!(en.contains("Visitor-days"), "honest label for several days");
    assert!(en.contains(" Russia</a>") && en.contains(" Germany</a>"));
    assert!(en.contains("Direct / none"));
    let (ru, _) = render("period=7d", Some("ru-RU,ru;q=0.9"), false).await;
    assert!(ru.contains("<html lang=\"ru\">"));
    assert!(ru.contains(">1\u{a0}234<"), "Russian grouping");
    assert!(ru.contains("Посетитель-дни"));
    assert!(ru.contains(" Россия</a>") && ru.contains(" Германия</a>"));
    assert!(ru.contains("2,88"), "decimal comma");
    assert!(ru.contains("1\u{a0}мин 35\u{a0}с"), "duration");
    // ?lang= wins and is kept in links.
    let (ru, _) = render("period=7d&lang=ru", Some("en"), false).await;
    assert!(ru.contains("<html lang=\"ru\">"));
    assert!(
        ru.contains("href=\"/example.com?period=30d&amp;lang=ru\"") || ru.contains("href=\"/example.com?lang=ru\""),
        "lang kept in period links"
    );
}

#[tokio::test]
async fn one_day_shows_unique_visitors_and_links_keep_state() {
    let (html, _) = render("period=day&f=source:Yandex", None, false).await;
    assert!(html.contains("Unique visitors") && !html.contains("Visitor-days"));
    // Clicking a country adds to the source filter.
    assert!(html.contains("href=\"/example.com?period=day&amp;f=source%3AYandex&amp;f=country%3ARU\""), "{html}");
    // The chip removes the filter.
    assert!(html.contains("href=\"/example.com?period=day\""));
}

#[tokio::test]
async fn shared_views_fold_small_rows() {
    let (html, fx) = render("period=7d", None, true).await;
    assert!(!html.contains(">/rare<"), "a row under k is shown");
    assert!(html.contains("(other)"));
    assert!(fx.requests.lock().expect("lock").iter().all(|r| r.site == "example.com"));
    let (html, _) = render("period=7d", None, false).await;
    assert!(html.contains(">/rare<"), "operators see every row");
}

#[test]
fn small_filtered_views_are_withheld_from_shares() {
    let small = Totals { current: Aggregate { visitors: 3, ..Default::default() }, ..Default::default() };
    let filtered = View::parse("f=page:/x");
    assert!(suppress(Some(10), &filtered, Some(&small)));
    assert!(!suppress(Some(10), &View::default(), Some(&small)), "unfiltered totals are aggregates of the whole site");
    assert!(!suppress(None, &filtered, Some(&small)), "operators see everything");
}

#[test]
fn ingest_paths_keep_priority() {
    for p in ["/p.gif", "/api/event", "/js/script.js", "/opt-out", "/healthz", "/readyz", "/metrics"] {
        assert!(is_ingest_path(p), "{p}");
    }
    assert!(!is_ingest_path("/example.com") && !is_ingest_path("/api/v1/stats/aggregate"));
}
