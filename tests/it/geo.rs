//! Where visitors come from, end to end: the shipped geo databases resolve
//! known addresses; country, ASN, source and channel reach ClickHouse while
//! the address does not; referrer spam is dropped and counted; databases
//! that appear later are picked up without a restart.
//!
//! The databases are installed by `scripts/install-geo.sh` into `var/geo/`
//! (`make test` runs it). Tests that need them print why and pass when they
//! are absent — unless `HEADCOUNT_TEST_REQUIRE_GEO=1`, as in CI, where a
//! missing database is a failure.

use crate::common::*;
use crate::logs;
use crate::privacy::{dump_all, find, forms};
use headcount::config::GeoConfig;
use headcount::enrich::geo::{GeoDb, Location};
use headcount::telemetry::{DropReason, Metrics};
use std::path::PathBuf;
use std::time::Duration;

fn geo_dir() -> PathBuf {
    std::env::var_os("HEADCOUNT_TEST_GEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("var/geo"))
}

/// The installed country and ASN files, or `None` after saying why.
fn shipped() -> Option<(PathBuf, PathBuf)> {
    let dir = geo_dir();
    let (country, asn) = (dir.join("country.mmdb"), dir.join("asn.csv"));
    if country.is_file() && asn.is_file() {
        return Some((country, asn));
    }
    let why = format!("geo databases not installed in {} (run scripts/install-geo.sh)", dir.display());
    assert!(std::env::var_os("HEADCOUNT_TEST_REQUIRE_GEO").is_none_or(|v| v != "1"), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

fn location(country: &str, asn: u32, asn_org: &str) -> Location {
    Location { country: country.into(), asn, asn_org: asn_org.into(), ..Location::default() }
}

#[test]
fn shipped_databases_resolve_known_addresses() {
    let Some((country, asn)) = shipped() else {
        return;
    };
    let cfg =
        GeoConfig { country_db: Some(country), asn_db: Some(asn), city_db: None, reload_interval: Duration::ZERO };
    let metrics = Metrics::new().expect("metrics");
    let geo = GeoDb::open(&cfg, &metrics);
    assert_eq!(geo.loaded(), (true, true, false));
    let cases = [
        ("8.8.8.8", location("US", 15169, "Google LLC")),
        ("77.88.8.8", location("RU", 13238, "YANDEX LLC")),
        ("87.250.250.242", location("RU", 13238, "YANDEX LLC")),
        ("95.213.4.1", location("RU", 47541, "LLC VK")),
        ("2001:4860:4860::8888", location("US", 15169, "Google LLC")),
        ("2a02:6b8::2:242", location("RU", 13238, "YANDEX LLC")),
        ("2a00:1450:4001:82b::200e", location("IE", 15169, "Google LLC")),
        ("::ffff:77.88.8.8", location("RU", 13238, "YANDEX LLC")),
    ];
    for (ip, want) in cases {
        assert_eq!(geo.locate_addr(ip.parse().expect("ip")), want, "{ip}");
    }
    let cloudflare = geo.locate_addr("2606:4700:4700::1111".parse().expect("ip"));
    assert_eq!((cloudflare.asn, cloudflare.asn_org.as_str()), (13335, "Cloudflare, Inc."));
    assert_eq!(cloudflare.country.len(), 2);
    for private in [
        "10.1.2.3",
        "192.168.0.10",
        "100.64.1.1",
        "127.0.0.1",
        "198.51.100.77",
        "::1",
        "fd00::1",
        "fe80::1",
        "2001:db8::1",
    ] {
        assert_eq!(geo.locate_addr(private.parse().expect("ip")), Location::default(), "{private}");
    }
    let text = metrics.render();
    assert!(text.contains("headcount_geo_database_loaded{database=\"country\"} 1"), "{text}");
    assert!(text.contains("headcount_geo_database_loaded{database=\"asn\"} 1"), "{text}");
}

/// Send one pageview through the trusted proxy (127.0.0.1) as `ip`.
async fn visit(app: &App, ip: &str, body: &str) -> String {
    let r = client_from("127.0.0.1")
        .post(app.url("/api/event"))
        .header("user-agent", UA_CHROME)
        .header("x-forwarded-for", ip)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    r.headers().get("x-headcount-event").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn location_and_source_are_stored_and_the_address_is_not() {
    let Some((country, asn)) = shipped() else {
        return;
    };
    let log = logs::capture();
    let mut env = Env::new("geo");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1".into()];
    env.raw.geo.country_db = country.display().to_string();
    env.raw.geo.asn_db = asn.display().to_string();
    let app = env.start().await;
    let body = r#"{"n":"pageview","u":"https://example.com/landing?utm_medium=cpc&gclid=secret","d":"example.com","r":"https://www.google.ru/search?q=my+own+name","w":1280}"#;
    assert_eq!(visit(&app, "77.88.8.8", body).await, "accepted");
    let body = r#"{"n":"pageview","u":"https://example.com/","d":"example.com","r":"https://t.me/channel","w":390}"#;
    assert_eq!(visit(&app, "2a02:6b8::2:242", body).await, "accepted");
    let body = r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#;
    assert_eq!(visit(&app, "10.20.30.40", body).await, "accepted");
    let db = app.stop().await;

    let rows = db
        .rows("SELECT country, region, city, asn, asn_org, source, channel, screen_class, referrer_host, referrer_path FROM events ORDER BY asn DESC, source")
        .await;
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            [
                "country",
                "region",
                "city",
                "asn",
                "asn_org",
                "source",
                "channel",
                "screen_class",
                "referrer_host",
                "referrer_path",
            ]
            .iter()
            .map(|k| r[k].to_string().trim_matches('"').to_string())
            .collect::<Vec<_>>()
            .join("|")
        })
        .collect();
    assert_eq!(
        got,
        [
            "RU|||13238|YANDEX LLC|Google|Paid Search|laptop|google.ru|/search",
            "RU|||13238|YANDEX LLC|Telegram|Organic Social|mobile|t.me|/channel",
            "|||0|||Direct|desktop||",
        ],
    );

    // Neither address, in any spelling, anywhere in ClickHouse or the logs;
    // nor the search query or the click id.
    let mut needles: Vec<(String, Vec<u8>)> = forms("77.88.8.8").into_iter().chain(forms("2a02:6b8::2:242")).collect();
    needles.push(("search query".into(), b"my own name".to_vec()));
    needles.push(("search query (encoded)".into(), b"my+own+name".to_vec()));
    needles.push(("click id".into(), b"secret".to_vec()));
    for (what, hay) in dump_all(&db).await {
        for (form, needle) in &needles {
            assert!(!find(&hay, needle), "{form} found in {what}");
        }
    }
    let log = log.contents();
    for ip in ["77.88.8.8", "2a02:6b8::2:242", "2a02:6b8:0:0:0:0:2:242"] {
        assert!(!log.contains(ip), "{ip} appears in the log");
    }
}

#[tokio::test]
async fn spam_referrers_are_dropped_and_counted() {
    let mut env = Env::new("spam");
    env.raw.referrers.spam_domains = vec!["spam-one.example".into()];
    let app = env.start().await;
    let send = |r: &str| {
        let body = format!(r#"{{"n":"pageview","u":"https://example.com/","d":"example.com","r":"{r}"}}"#);
        let url = app.url("/api/event");
        async move {
            let resp = client().post(url).header("user-agent", UA_CHROME).body(body).send().await.expect("request");
            assert_eq!(resp.status(), 202);
            resp.headers()["x-headcount-event"].to_str().expect("header").to_string()
        }
    };
    assert_eq!(send("https://semalt.com/").await, "dropped; reason=referrer_spam");
    assert_eq!(send("http://www.darodar.com/page?x=1").await, "dropped; reason=referrer_spam");
    assert_eq!(send("https://sub.spam-one.example/").await, "dropped; reason=referrer_spam");
    assert_eq!(send("https://notsemalt.com/").await, "accepted");
    assert_eq!(send("https://yandex.ru/").await, "accepted");
    let pixel = client()
        .get(app.url("/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2F&r=https%3A%2F%2Fsemalt.com%2F"))
        .header("user-agent", UA_CHROME)
        .send()
        .await
        .expect("pixel");
    assert_eq!(pixel.headers()["x-headcount-event"], "dropped; reason=referrer_spam");
    assert_eq!(pixel.headers()["content-type"], "image/gif");

    assert_eq!(app.running.metrics.dropped_count(DropReason::Spam), 4);
    let metrics = client().get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("headcount_events_dropped_total{reason=\"referrer_spam\"} 4"), "{metrics}");
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 2);
    assert_eq!(db.count("referrer_host IN ('semalt.com', 'darodar.com', 'sub.spam-one.example')").await, 0);
}

#[tokio::test]
async fn a_database_that_appears_later_is_loaded_without_a_restart() {
    let Some((country, asn)) = shipped() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let mut env = Env::new("georeload");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1".into()];
    env.raw.geo.country_db = dir.path().join("country.mmdb").display().to_string();
    env.raw.geo.asn_db = dir.path().join("asn.csv").display().to_string();
    env.raw.geo.reload_interval_seconds = 1;
    let app = env.start().await;
    let metrics =
        || async { client().get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text") };
    let m = metrics().await;
    assert!(m.contains("headcount_geo_database_loaded{database=\"country\"} 0"), "{m}");
    let body = r#"{"n":"pageview","u":"https://example.com/before","d":"example.com"}"#;
    assert_eq!(visit(&app, "8.8.8.8", body).await, "accepted", "a missing database never blocks collection");

    // Copy, then rename into place, as install-geo.sh does.
    for (from, name) in [(&country, "country.mmdb"), (&asn, "asn.csv")] {
        let tmp = dir.path().join(format!(".{name}.tmp"));
        std::fs::copy(from, &tmp).expect("copy");
        std::fs::rename(&tmp, dir.path().join(name)).expect("rename");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics().await;
        if m.contains("headcount_geo_database_loaded{database=\"country\"} 1")
            && m.contains("headcount_geo_database_loaded{database=\"asn\"} 1")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "databases not picked up:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = r#"{"n":"pageview","u":"https://example.com/after","d":"example.com"}"#;
    assert_eq!(visit(&app, "8.8.8.8", body).await, "accepted");
    let db = app.stop().await;
    let rows = db.rows("SELECT pathname, country, asn FROM events ORDER BY pathname").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["pathname"].as_str(), rows[0]["country"].as_str(), rows[0]["asn"].as_u64()),
        (Some("/after"), Some("US"), Some(15169))
    );
    assert_eq!(
        (rows[1]["pathname"].as_str(), rows[1]["country"].as_str(), rows[1]["asn"].as_u64()),
        (Some("/before"), Some(""), Some(0))
    );
}
