//! The stats engine against a real ClickHouse, on a fixed fixture whose
//! every number is computed by hand below.
//!
//! The fixture goes through the collector's session map
//! ([`headcount::sessions::Sessions`]) exactly as ingest does, then is
//! inserted as `EventRow`s, so the materialized views fill the rollup as in
//! production. Every question is asked twice — rollup where the engine uses
//! it, and raw events only — and both must give the hand-computed answer.
//!
//! Two UTC days, D1 = 2026-03-10 and D2 = 2026-03-11, site example.com
//! (and one event on other.org that must never show). Over both days,
//! visitors are visitor-days: C, whose visit crosses midnight, counts on
//! each day.
//!
//! | visitor | events | visits |
//! |---|---|---|
//! | A (RU, from Google) | D1 10:00 pv `/`, 10:05 pv `/blog`, 10:06 engagement, 10:10 `Signup` {plan: pro} on `/blog`; 12:00 pv `/pricing` (direct) | A1: 10:00–10:10, 600 s, no bounce; A2: bounce |
//! | B (DE, direct) | D1 11:00 pv `/`, 11:02 engagement | B1: bounce (engagement does not end it) |
//! | C (RU, Telegram, utm tg/spring) | D1 23:50 pv `/blog`; D2 00:05 pv `/about`, 00:06 `File Download` a.pdf | C1 crosses midnight: 960 s, no bounce, counted on D1 |
//! | D (US, direct) | D2 09:00 pv `/`, 09:01 `Outbound Link: Click` github | D1v: 60 s, no bounce |
//! | E (RU, Google) | D2 10:00 engagement (no visit: id 0), 10:01 pv `/blog` | E1: bounce |
//! | F (RU, direct) | D2 12:00 `Video Played` on `/blog`, non-interactive | none (id 0) |
//! | G (DE, direct) | D2 15:00 pv `/missing`, 15:00:01 `404` | G1: 1 s, no bounce |

use crate::common::*;
use headcount::event::{Campaign, Event, Location};
use headcount::privacy::VisitorId;
use headcount::sessions::{Entry, Kind, Session, Sessions};
use headcount::stats::panels::Panels;
use headcount::stats::{
    Aggregate, Breakdown, DateRange, Dimension, Engine, Filter, Interval, Plan, StatsRequest, StatsResult,
};
use headcount::store::{migrate, row::EventRow};
use std::sync::Arc;
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

const D1: Date = date!(2026 - 03 - 10);
const D2: Date = date!(2026 - 03 - 11);

struct Who {
    id: u8,
    country: &'static str,
    browser: &'static str,
    os: &'static str,
    device: &'static str,
}

const A: Who = Who { id: 0xA, country: "RU", browser: "Chrome", os: "Windows", device: "desktop" };
const B: Who = Who { id: 0xB, country: "DE", browser: "Firefox", os: "Linux", device: "desktop" };
const C: Who = Who { id: 0xC, country: "RU", browser: "Safari", os: "iOS", device: "mobile" };
const D: Who = Who { id: 0xD, country: "US", browser: "Chrome", os: "Windows", device: "desktop" };
const E: Who = Who { id: 0xE, country: "RU", browser: "Chrome", os: "Android", device: "mobile" };
const F: Who = Who { id: 0xF, country: "RU", browser: "Firefox", os: "Windows", device: "desktop" };
const G: Who = Who { id: 0x6, country: "DE", browser: "Edge", os: "Windows", device: "desktop" };

fn event(site: &str, who: &Who, ts: OffsetDateTime, name: &str, path: &str) -> Event {
    Event {
        site: site.into(),
        ts,
        name: name.into(),
        visitor_id: VisitorId([who.id; 16]),
        ip_prefix: String::new(),
        hostname: site.into(),
        pathname: path.into(),
        referrer_host: String::new(),
        referrer_path: String::new(),
        campaign: Campaign::default(),
        browser: who.browser.into(),
        browser_version: "1".into(),
        os: who.os.into(),
        os_version: String::new(),
        device: who.device,
        screen_width: 1280,
        interactive: name != "engagement",
        revenue_micros: 0,
        revenue_currency: String::new(),
        prop_keys: vec![],
        prop_values: vec![],
        location: Location { country: who.country.into(), ..Location::default() },
        source: String::new(),
        channel: "Direct",
        screen_class: "laptop",
        session: Session::none(ts, Arc::new(Entry::default())),
    }
}

fn from(mut e: Event, source: &str, channel: &'static str, referrer: &str) -> Event {
    e.source = source.into();
    e.channel = channel;
    e.referrer_host = referrer.into();
    e
}

fn props(mut e: Event, kv: &[(&str, &str)]) -> Event {
    e.prop_keys = kv.iter().map(|(k, _)| k.to_string()).collect();
    e.prop_values = kv.iter().map(|(_, v)| v.to_string()).collect();
    e
}

fn fixture() -> Vec<Event> {
    let s = "example.com";
    let mut c_land =
        from(event(s, &C, datetime!(2026-03-10 23:50 UTC), "pageview", "/blog"), "Telegram", "Organic Social", "t.me");
    c_land.campaign.utm_source = "tg".into();
    c_land.campaign.utm_campaign = "spring".into();
    let mut video = event(s, &F, datetime!(2026-03-11 12:00 UTC), "Video Played", "/blog");
    video.interactive = false;
    vec![
        from(event(s, &A, datetime!(2026-03-10 10:00 UTC), "pageview", "/"), "Google", "Organic Search", "google.com"),
        event(s, &A, datetime!(2026-03-10 10:05 UTC), "pageview", "/blog"),
        event(s, &A, datetime!(2026-03-10 10:06 UTC), "engagement", "/blog"),
        props(event(s, &A, datetime!(2026-03-10 10:10 UTC), "Signup", "/blog"), &[("plan", "pro")]),
        event(s, &A, datetime!(2026-03-10 12:00 UTC), "pageview", "/pricing"),
        event(s, &B, datetime!(2026-03-10 11:00 UTC), "pageview", "/"),
        event(s, &B, datetime!(2026-03-10 11:02 UTC), "engagement", "/"),
        c_land,
        event(s, &C, datetime!(2026-03-11 00:05 UTC), "pageview", "/about"),
        props(
            event(s, &C, datetime!(2026-03-11 00:06 UTC), "File Download", "/about"),
            &[("url", "https://example.com/a.pdf")],
        ),
        event(s, &D, datetime!(2026-03-11 09:00 UTC), "pageview", "/"),
        props(
            event(s, &D, datetime!(2026-03-11 09:01 UTC), "Outbound Link: Click", "/"),
            &[("url", "https://github.com/x")],
        ),
        from(
            event(s, &E, datetime!(2026-03-11 10:00 UTC), "engagement", "/"),
            "Google",
            "Organic Search",
            "google.com",
        ),
        from(
            event(s, &E, datetime!(2026-03-11 10:01 UTC), "pageview", "/blog"),
            "Google",
            "Organic Search",
            "google.com",
        ),
        video,
        event(s, &G, datetime!(2026-03-11 15:00 UTC), "pageview", "/missing"),
        event(s, &G, datetime!(2026-03-11 15:00:01 UTC), "404", "/missing"),
        // Another site: never counted for example.com.
        event("other.org", &A, datetime!(2026-03-10 10:00 UTC), "pageview", "/"),
    ]
}

/// Place the fixture in visits as ingest does, in time order.
fn sessionize(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|e| e.ts);
    let sessions = Sessions::new(1000);
    for e in &mut events {
        let kind = Kind::of(&e.name, e.interactive);
        e.session = sessions.track(&e.site, &e.visitor_id, e.ts, kind, || Entry::of(e));
    }
    events
}

async fn insert(client: &clickhouse::Client, events: &[Event]) {
    let mut ins = client.insert::<EventRow<'static>>("events").await.expect("insert");
    for e in events {
        ins.write(&EventRow::from(e)).await.expect("write");
    }
    ins.end().await.expect("end");
}

async fn setup(tag: &str) -> (Engine, Engine, Db) {
    let database = fresh_database(tag);
    let server = clickhouse::Client::default().with_url(clickhouse_url()).with_validation(false);
    migrate::run(&server, &database).await.expect("migrate");
    let client = server.with_database(&database);
    insert(&client, &sessionize(fixture())).await;
    let panels = Arc::new(Panels::embedded().expect("panels"));
    let engine = Engine::new(client, panels);
    let raw = engine.clone().raw_only();
    let db = Db { url: clickhouse_url(), database, http: reqwest::Client::new() };
    (engine, raw, db)
}

fn req(from: Date, to: Date, filters: &[(Dimension, &str)]) -> StatsRequest {
    StatsRequest {
        site: "example.com".into(),
        range: DateRange { from, to },
        filters: filters
            .iter()
            .map(|(d, v)| Filter {
                dimension: *d,
                value: v.to_string(),
                prop: (*d == Dimension::Prop).then(|| "plan".to_string()),
            })
            .collect(),
        prop: None,
    }
}

/// (visitors, visits, pageviews, events, bounce %, duration s)
type Numbers = (u64, u64, u64, u64, f64, f64);

fn numbers(a: &Aggregate) -> Numbers {
    (a.visitors, a.visits, a.pageviews, a.events, a.bounce_rate, a.visit_duration)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[track_caller]
fn assert_numbers(what: &str, got: &Aggregate, want: Numbers) {
    let g = numbers(got);
    assert!(
        g.0 == want.0 && g.1 == want.1 && g.2 == want.2 && g.3 == want.3 && close(g.4, want.4) && close(g.5, want.5),
        "{what}: got {g:?}, want {want:?}"
    );
    if got.visits > 0 {
        assert!(close(got.views_per_visit, got.pageviews as f64 / got.visits as f64), "{what}: views per visit");
    }
}

/// Ask both engines; they must agree and equal `want`.
async fn check_aggregate(rollup: &Engine, raw: &Engine, r: &StatsRequest, want: Numbers) {
    let what = format!("{:?} {:?}", r.range, r.filters.iter().map(|f| (f.dimension, &f.value)).collect::<Vec<_>>());
    let a = rollup.aggregate(r).await.expect("aggregate");
    let b = raw.aggregate(r).await.expect("raw aggregate");
    assert_numbers(&format!("{what} via {:?}", rollup.plan(r)), &a, want);
    assert_numbers(&format!("{what} raw"), &b, want);
}

#[tokio::test]
async fn headline_numbers_equal_the_hand_computed_ones() {
    let (e, raw, _db) = setup("stats_agg").await;
    // D1: A (A1 /,/blog,Signup; A2 /pricing), B (bounce), C (lands 23:50).
    // Visits started on D1: A1, A2, B1, C1 — C1 whole: 960 s, no bounce.
    check_aggregate(&e, &raw, &req(D1, D1, &[]), (3, 4, 5, 1, 50.0, 1560.0 / 4.0)).await;
    // D2: C (continuing, not a new visit), D, E, F (non-interactive only), G.
    check_aggregate(&e, &raw, &req(D2, D2, &[]), (5, 3, 4, 4, 100.0 / 3.0, 61.0 / 3.0)).await;
    // Both days: visitor-days, the sum of each day's visitors. C keeps
    // yesterday's id across midnight, and is there on both days: 3 + 5.
    check_aggregate(&e, &raw, &req(D1, D2, &[]), (8, 7, 9, 5, 300.0 / 7.0, 1621.0 / 7.0)).await;
    // Nothing the day before.
    check_aggregate(&e, &raw, &req(date!(2026 - 03 - 09), date!(2026 - 03 - 09), &[]), (0, 0, 0, 0, 0.0, 0.0)).await;
}

#[tokio::test]
async fn finished_days_are_cached_for_a_while() {
    let (e, _raw, db) = setup("stats_cache").await;
    let r = req(D1, D2, &[]);
    let google = req(D1, D2, &[(Dimension::Source, "Google")]);
    assert_eq!(e.aggregate(&r).await.expect("first").visitors, 8);
    assert_eq!(e.aggregate(&google).await.expect("first").visitors, 2);
    let by_browser = |b: Breakdown| b.rows.iter().map(|r| (r.value.clone(), r.visitors)).collect::<Vec<_>>();
    let before = by_browser(e.breakdown(&r, Dimension::Browser, 10, None).await.expect("browsers"));
    // A late event for D1 (e.g. replayed after an outage): the cached days
    // do not see it for up to DAY_CACHE_TTL; an engine without the cache does.
    let mut late = event("example.com", &Who { id: 0x11, ..A }, datetime!(2026-03-10 13:00 UTC), "pageview", "/");
    late.source = "Google".into();
    let server = clickhouse::Client::default().with_url(clickhouse_url()).with_validation(false);
    insert(&server.with_database(&db.database), &sessionize(vec![late])).await;
    assert_eq!(e.aggregate(&r).await.expect("cached").visitors, 8);
    assert_eq!(e.aggregate(&google).await.expect("cached").visitors, 2);
    let fresh = e.clone().without_day_cache();
    assert_eq!(fresh.aggregate(&r).await.expect("fresh").visitors, 9);
    assert_eq!(fresh.aggregate(&google).await.expect("fresh").visitors, 3);
    let points = fresh.timeseries(&r, Interval::Day).await.expect("daily");
    assert_eq!(points.iter().map(|p| p.visitors).collect::<Vec<_>>(), vec![4, 5]);
    // Breakdown days are cached the same way.
    assert_eq!(by_browser(e.breakdown(&r, Dimension::Browser, 10, None).await.expect("cached")), before);
    assert_ne!(by_browser(fresh.breakdown(&r, Dimension::Browser, 10, None).await.expect("fresh")), before);
}

#[tokio::test]
async fn filters_select_visits_and_events() {
    let (e, raw, db) = setup("stats_filters").await;
    let both = |f: &[(Dimension, &str)]| req(D1, D2, f);
    // Session-constant: visits from Google are A1 and E1, with all their pages.
    let google = both(&[(Dimension::Source, "Google")]);
    assert_eq!(e.plan(&google), Plan::Rollup("source"));
    check_aggregate(&e, &raw, &google, (2, 2, 3, 1, 50.0, 300.0)).await;
    // Entry page `/`: A1, B1, D1v.
    check_aggregate(&e, &raw, &both(&[(Dimension::EntryPage, "/")]), (3, 3, 4, 2, 100.0 / 3.0, 220.0)).await;
    // Country (visitor-constant): A and C on D1, C, E and F on D2.
    check_aggregate(&e, &raw, &both(&[(Dimension::Country, "RU")]), (5, 4, 6, 3, 50.0, 1560.0 / 4.0)).await;
    // Event-level: events on /blog (A's pageview and Signup, C, E, F's
    // video); visits containing one: A1, C1, E1.
    let blog = both(&[(Dimension::Page, "/blog")]);
    assert_eq!(e.plan(&blog), Plan::Raw);
    check_aggregate(&e, &raw, &blog, (4, 3, 3, 2, 100.0 / 3.0, 520.0)).await;
    // Exit page /blog: A1 (last pageview /blog) and E1.
    check_aggregate(&e, &raw, &both(&[(Dimension::ExitPage, "/blog")]), (2, 2, 3, 1, 50.0, 300.0)).await;
    // A property: A's Signup; its visit A1.
    check_aggregate(&e, &raw, &both(&[(Dimension::Prop, "pro")]), (1, 1, 0, 1, 0.0, 600.0)).await;
    // Custom event name.
    check_aggregate(&e, &raw, &both(&[(Dimension::Event, "Signup")]), (1, 1, 0, 1, 0.0, 600.0)).await;
    // Two filters (raw): Google visits from Russia.
    check_aggregate(
        &e,
        &raw,
        &both(&[(Dimension::Source, "Google"), (Dimension::Country, "RU")]),
        (2, 2, 3, 1, 50.0, 300.0),
    )
    .await;
    check_aggregate(
        &e,
        &raw,
        &both(&[(Dimension::Source, "Google"), (Dimension::Country, "DE")]),
        (0, 0, 0, 0, 0.0, 0.0),
    )
    .await;

    // SQL-looking values are values: no match, nothing dropped.
    let evil = "'; DROP TABLE events; --";
    for d in [Dimension::Page, Dimension::Source, Dimension::ExitPage, Dimension::Prop, Dimension::Download] {
        check_aggregate(&e, &raw, &both(&[(d, evil)]), (0, 0, 0, 0, 0.0, 0.0)).await;
        let b = e.breakdown(&both(&[(d, evil)]), Dimension::Page, 10, None).await.expect("breakdown");
        assert!(b.rows.is_empty());
    }
    let mut r = both(&[]);
    r.prop = Some(evil.into());
    assert!(e.breakdown(&r, Dimension::Prop, 10, None).await.expect("prop breakdown").rows.is_empty());
    assert_eq!(db.count("site = 'example.com'").await, 17, "events intact");
}

/// (value, visitors, visits, pageviews, events)
type Row = (&'static str, u64, u64, u64, u64);

#[track_caller]
fn assert_rows(what: &str, b: &Breakdown, want: &[Row]) {
    let got: Vec<(String, u64, u64, u64, u64)> =
        b.rows.iter().map(|r| (r.value.clone(), r.visitors, r.visits, r.pageviews, r.events)).collect();
    let want: Vec<(String, u64, u64, u64, u64)> = want.iter().map(|w| (w.0.to_string(), w.1, w.2, w.3, w.4)).collect();
    assert_eq!(got, want, "{what}");
}

/// Ask the engine (twice: the second time finished days come from its
/// cache), the engine without its day cache (rollup breakdowns summed in
/// ClickHouse) and raw events; all must agree and equal `want`.
async fn check_breakdown(e: &Engine, raw: &Engine, r: &StatsRequest, d: Dimension, want: &[Row]) -> Breakdown {
    let a = e.breakdown(r, d, 10, None).await.expect("breakdown");
    let cached = e.breakdown(r, d, 10, None).await.expect("breakdown again");
    let uncached = e.clone().without_day_cache().breakdown(r, d, 10, None).await.expect("uncached breakdown");
    let b = raw.breakdown(r, d, 10, None).await.expect("raw breakdown");
    assert_rows(&format!("{d:?} via {:?}", e.breakdown_plan(r, d)), &a, want);
    assert_eq!(a, cached, "{d:?}: cached differs");
    assert_eq!(a, uncached, "{d:?}: summed in ClickHouse differs");
    assert_eq!(a, b, "{d:?}: rollup and raw differ");
    a
}

#[tokio::test]
async fn breakdowns_equal_the_hand_computed_ones() {
    let (e, raw, _db) = setup("stats_breakdown").await;
    let r = req(D1, D2, &[]);
    let src = check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Source,
        &[("", 5, 4, 4, 3), ("Google", 2, 2, 3, 1), ("Telegram", 2, 1, 2, 1)],
    )
    .await;
    // Visitors are visitor-days: C (Telegram) is there on D1 and on D2.
    // Per-visit numbers: Direct A2, B1 bounce of 4 visits, 61 s; Google
    // E1 of 2, 600 s; Telegram C1, 960 s.
    let per_visit: Vec<_> = src.rows.iter().map(|r| (r.bounce_rate, r.visit_duration)).collect();
    assert_eq!(per_visit, vec![(Some(50.0), Some(61.0 / 4.0)), (Some(50.0), Some(300.0)), (Some(0.0), Some(960.0))]);
    let pct: Vec<f64> = src.rows.iter().map(|r| r.percentage).collect();
    assert!(close(pct[0], 500.0 / 8.0) && close(pct[1], 200.0 / 8.0), "{pct:?}");

    check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Channel,
        &[("Direct", 5, 4, 4, 3), ("Organic Search", 2, 2, 3, 1), ("Organic Social", 2, 1, 2, 1)],
    )
    .await;
    check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Referrer,
        &[("", 5, 4, 4, 3), ("google.com", 2, 2, 3, 1), ("t.me", 2, 1, 2, 1)],
    )
    .await;
    check_breakdown(&e, &raw, &r, Dimension::UtmCampaign, &[("", 6, 6, 7, 4), ("spring", 2, 1, 2, 1)]).await;
    // Pages: pageviews only; visits = visits with a view of the page.
    check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Page,
        &[
            ("/", 3, 3, 3, 0),
            ("/blog", 3, 3, 3, 0),
            ("/about", 1, 1, 1, 0),
            ("/missing", 1, 1, 1, 0),
            ("/pricing", 1, 1, 1, 0),
        ],
    )
    .await;
    let entry = check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::EntryPage,
        &[("/", 3, 3, 4, 2), ("/blog", 3, 2, 3, 1), ("/missing", 1, 1, 1, 1), ("/pricing", 1, 1, 1, 0)],
    )
    .await;
    assert_eq!(entry.rows[0].bounce_rate, Some(100.0 / 3.0));
    assert_eq!(entry.rows[0].visit_duration, Some(220.0));
    // Exit pages come from raw events only.
    assert_eq!(e.breakdown_plan(&r, Dimension::ExitPage), Plan::Raw);
    let exit = check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::ExitPage,
        &[
            ("/", 2, 2, 2, 1),
            ("/blog", 2, 2, 3, 1),
            ("/about", 1, 1, 2, 1),
            ("/missing", 1, 1, 1, 1),
            ("/pricing", 1, 1, 1, 0),
        ],
    )
    .await;
    assert_eq!(exit.rows[1].bounce_rate, Some(50.0));
    assert_eq!(exit.rows[1].visit_duration, Some(300.0));
    check_breakdown(&e, &raw, &r, Dimension::Country, &[("RU", 5, 4, 6, 3), ("DE", 2, 2, 2, 1), ("US", 1, 1, 1, 1)])
        .await;
    check_breakdown(&e, &raw, &r, Dimension::Device, &[("desktop", 5, 5, 6, 4), ("mobile", 3, 2, 3, 1)]).await;
    check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Browser,
        &[("Chrome", 3, 4, 5, 2), ("Firefox", 2, 1, 1, 1), ("Safari", 2, 1, 2, 1), ("Edge", 1, 1, 1, 1)],
    )
    .await;
    check_breakdown(&e, &raw, &r, Dimension::ScreenClass, &[("laptop", 8, 8, 9, 5)]).await;
    check_breakdown(
        &e,
        &raw,
        &r,
        Dimension::Event,
        &[
            ("404", 1, 1, 0, 1),
            ("File Download", 1, 1, 0, 1),
            ("Outbound Link: Click", 1, 1, 0, 1),
            ("Signup", 1, 1, 0, 1),
            ("Video Played", 1, 0, 0, 1),
        ],
    )
    .await;
    check_breakdown(&e, &raw, &r, Dimension::Download, &[("https://example.com/a.pdf", 1, 1, 0, 1)]).await;
    check_breakdown(&e, &raw, &r, Dimension::Outbound, &[("https://github.com/x", 1, 1, 0, 1)]).await;
    let mut with_prop = r.clone();
    with_prop.prop = Some("plan".into());
    check_breakdown(&e, &raw, &with_prop, Dimension::Prop, &[("pro", 1, 1, 0, 1)]).await;
    assert!(e.breakdown(&r, Dimension::Prop, 10, None).await.is_err(), "a property breakdown needs a key");

    // With a filter (raw): sources of Russian visitors. Direct: A (A2) and
    // F (no visit).
    let ru = req(D1, D2, &[(Dimension::Country, "RU")]);
    check_breakdown(
        &e,
        &raw,
        &ru,
        Dimension::Source,
        &[("", 2, 1, 1, 1), ("Google", 2, 2, 3, 1), ("Telegram", 2, 1, 2, 1)],
    )
    .await;
    // Pages viewed during visits from Google.
    check_breakdown(
        &e,
        &raw,
        &req(D1, D2, &[(Dimension::Source, "Google")]),
        Dimension::Page,
        &[("/blog", 2, 2, 2, 0), ("/", 1, 1, 1, 0)],
    )
    .await;
    // The visit crossing midnight: its landing page counts on D1, and on D2
    // its visitor is there but its visit is not.
    check_breakdown(
        &e,
        &raw,
        &req(D2, D2, &[]),
        Dimension::Source,
        &[("", 3, 2, 2, 3), ("Google", 1, 1, 1, 0), ("Telegram", 1, 0, 1, 1)],
    )
    .await;
    // ...and D1 has the whole of that visit: what its D2 events added to
    // its bounce and duration belongs to the day it started (960 s, no
    // bounce), as do A1's 600 s; A2 and B1 bounced.
    let d1 = check_breakdown(
        &e,
        &raw,
        &req(D1, D1, &[]),
        Dimension::Source,
        &[("", 2, 2, 2, 0), ("Google", 1, 1, 2, 1), ("Telegram", 1, 1, 1, 0)],
    )
    .await;
    let per_visit: Vec<_> = d1.rows.iter().map(|r| (r.bounce_rate, r.visit_duration)).collect();
    assert_eq!(per_visit, vec![(Some(100.0), Some(0.0)), (Some(0.0), Some(600.0)), (Some(0.0), Some(960.0))]);
}

#[tokio::test]
async fn small_groups_fold_into_other_and_limits_apply() {
    let (e, raw, _db) = setup("stats_k").await;
    let r = req(D1, D2, &[]);
    for engine in [&e, &raw] {
        // Browsers: Chrome 3, Firefox 2, Safari 2 visitor-days, Edge 1.
        let b = engine.breakdown(&r, Dimension::Browser, 10, Some(2)).await.expect("k=2");
        assert_rows("k=2", &b, &[("Chrome", 3, 4, 5, 2), ("Firefox", 2, 1, 1, 1), ("Safari", 2, 1, 2, 1)]);
        let other = b.other.expect("Edge folded");
        assert_eq!(
            (other.value.as_str(), other.visitors, other.visits, other.pageviews, other.events),
            ("(other)", 1, 1, 1, 1)
        );

        let b = engine.breakdown(&r, Dimension::Source, 10, Some(3)).await.expect("k=3");
        assert_rows("k=3", &b, &[("", 5, 4, 4, 3)]);
        let other = b.other.expect("Google and Telegram folded");
        assert_eq!((other.visitors, other.visits, other.pageviews, other.events), (4, 3, 5, 2));

        let b = engine.breakdown(&r, Dimension::Source, 10, Some(100)).await.expect("k=100");
        assert!(b.rows.is_empty());
        assert_eq!(b.other.map(|o| o.visitors), Some(9));

        let b = engine.breakdown(&r, Dimension::Source, 10, Some(1)).await.expect("k=1");
        assert_eq!((b.rows.len(), b.other), (3, None));

        let b = engine.breakdown(&r, Dimension::Page, 2, None).await.expect("limit");
        assert_rows("limit 2", &b, &[("/", 3, 3, 3, 0), ("/blog", 3, 3, 3, 0)]);
        assert_eq!(b.other, None);
    }
}

#[tokio::test]
async fn timeseries_buckets_and_realtime() {
    let (e, raw, _db) = setup("stats_series").await;
    for engine in [&e, &raw] {
        let day = engine.timeseries(&req(D1, D1, &[]), Interval::Hour).await.expect("hourly");
        assert_eq!(day.len(), 24);
        let busy: Vec<(u8, u64, u64, u64)> = day
            .iter()
            .filter(|p| p.visitors + p.visits + p.pageviews > 0)
            .map(|p| (p.bucket.hour(), p.visitors, p.visits, p.pageviews))
            .collect();
        assert_eq!(busy, vec![(10, 1, 1, 2), (11, 1, 1, 1), (12, 1, 1, 1), (23, 1, 1, 1)]);

        let daily = engine.timeseries(&req(D1, D2, &[]), Interval::Day).await.expect("daily");
        let got: Vec<(Date, u64, u64, u64)> =
            daily.iter().map(|p| (p.bucket.date(), p.visitors, p.visits, p.pageviews)).collect();
        assert_eq!(got, vec![(D1, 3, 4, 5), (D2, 5, 3, 4)]);

        let monthly = engine.timeseries(&req(D1, D2, &[]), Interval::Month).await.expect("monthly");
        assert_eq!(monthly.len(), 1);
        assert_eq!(monthly[0].bucket, datetime!(2026-03-01 00:00 UTC));
        assert_eq!((monthly[0].visitors, monthly[0].visits, monthly[0].pageviews), (8, 7, 9));

        let google =
            engine.timeseries(&req(D1, D2, &[(Dimension::Source, "Google")]), Interval::Day).await.expect("filtered");
        let got: Vec<(u64, u64, u64)> = google.iter().map(|p| (p.visitors, p.visits, p.pageviews)).collect();
        assert_eq!(got, vec![(1, 1, 2), (1, 1, 1)]);

        let blog =
            engine.timeseries(&req(D1, D2, &[(Dimension::Page, "/blog")]), Interval::Day).await.expect("page filter");
        let got: Vec<(u64, u64, u64)> = blog.iter().map(|p| (p.visitors, p.visits, p.pageviews)).collect();
        assert_eq!(got, vec![(2, 2, 2), (2, 1, 1)]);
    }
    // Last five minutes before 12:01 on D2: F's 12:00 event and G's later ones.
    assert_eq!(e.realtime_visitors("example.com", datetime!(2026-03-11 12:01 UTC)).await.expect("rt"), 2);
    assert_eq!(e.realtime_visitors("example.com", datetime!(2026-03-11 16:00 UTC)).await.expect("rt"), 0);
    assert_eq!(e.realtime_visitors("other.org", datetime!(2026-03-10 09:58 UTC)).await.expect("rt"), 1);
}

#[tokio::test]
async fn every_declared_panel_runs() {
    let (e, raw, _db) = setup("stats_panels").await;
    let r = req(D1, D2, &[]);
    let filtered = req(D1, D2, &[(Dimension::Page, "/blog"), (Dimension::Source, "")]);
    let panels: Vec<_> = e.panels().panels().cloned().collect();
    assert!(panels.len() >= 20);
    for p in &panels {
        for (engine, rq) in [(&e, &r), (&raw, &r), (&e, &filtered)] {
            let mut rq = rq.clone();
            rq.prop = Some("plan".into());
            let got = engine.panel(p, &rq, Some(1)).await;
            assert!(got.is_ok(), "panel {}: {:?}", p.id, got.err());
        }
    }
    match e.panel_by_id("top_stats", &r, None).await.expect("top stats") {
        StatsResult::Aggregate { current, previous, visitor_days } => {
            assert_eq!((current.visitors, previous.visitors, visitor_days), (8, 0, true));
        }
        other => panic!("not an aggregate: {other:?}"),
    }
    match e.panel_by_id("visitors_chart", &req(D1, D1, &[]), None).await.expect("chart") {
        StatsResult::Timeseries { interval, current, previous, visitor_days } => {
            assert_eq!((interval, current.len(), previous.len(), visitor_days), (Interval::Hour, 24, 24, false));
            assert_eq!(previous[0].bucket, datetime!(2026-03-09 00:00 UTC));
        }
        other => panic!("not a timeseries: {other:?}"),
    }
    // The custom SQL panel: 404 pages.
    match e.panel_by_id("not_found", &r, None).await.expect("not found") {
        StatsResult::Breakdown(b) => {
            assert_eq!(b.dimension, Dimension::Page);
            assert_rows("404", &b, &[("/missing", 1, 1, 0, 1)]);
        }
        other => panic!("not a breakdown: {other:?}"),
    }
    assert!(matches!(e.panel_by_id("nope", &r, None).await, Err(headcount::stats::StatsError::UnknownPanel(_))));
}

#[tokio::test]
async fn ingest_assigns_visits() {
    // Through the real HTTP path: two pageviews and an engagement form one
    // visit; the rollup sees it.
    let mut env = Env::new("stats_ingest");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = env.start().await;
    for (n, u) in [("pageview", "/a"), ("engagement", "/a"), ("pageview", "/b")] {
        let r = client_from("127.0.0.1")
            .post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .header("x-forwarded-for", "198.51.100.20")
            .body(format!(
                r#"{{"n":"{n}","u":"https://example.com{u}","d":"example.com","r":"https://www.google.com/"}}"#
            ))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 202);
    }
    let db = app.stop().await;
    let rows = db
        .rows("SELECT name, pathname, session_id != 0 AS s, session_visit, session_bounce, session_entry_page, session_source FROM events ORDER BY ts, name = 'pageview' DESC, pathname")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ids = db.text("SELECT uniqExact(session_id) FROM events").await;
    assert_eq!(ids.trim(), "1", "one visit: {rows:?}");
    let sum = db.text("SELECT sum(session_visit), sum(session_bounce) FROM events").await;
    assert_eq!(sum.trim(), "1\t0", "one visit, not a bounce: {rows:?}");
    for r in &rows {
        assert_eq!(r["session_entry_page"], "/a", "{rows:?}");
        assert_eq!(r["session_source"], "Google", "{rows:?}");
    }
    let rollup = db
        .text("SELECT sumMerge(visits), uniqMerge(visitors), sumMerge(pageviews) FROM rollup_hourly WHERE site = 'example.com'")
        .await;
    assert_eq!(rollup.trim(), "1\t1\t2");
}
