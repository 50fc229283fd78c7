//! The tracker script, the opt-out page and Do-Not-Track, over HTTP.
//! (The script's behaviour in a browser is tested in `tests/browser/`.)

use crate::common::*;
use headcount::ingest::tracker::{GZIP_BUDGET, SCRIPT};
use headcount::telemetry::DropReason;
use std::io::Read;

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn script_is_small_cached_and_revalidated() {
    let env = Env::new("script");
    let app = env.start().await;
    let c = client();

    let gz = c.get(app.url("/js/script.js")).header("accept-encoding", "gzip, deflate, br").send().await.expect("get");
    assert_eq!(gz.status(), 200);
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(header(&gz, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&gz, "cache-control"), "public, max-age=86400");
    assert_eq!(header(&gz, "vary"), "Accept-Encoding");
    assert_eq!(header(&gz, "access-control-allow-origin"), "*");
    let gz_etag = header(&gz, "etag");
    assert!(gz_etag.starts_with('"') && gz_etag.ends_with('"'), "{gz_etag}");
    let bytes = gz.bytes().await.expect("body");
    assert!(bytes.len() <= GZIP_BUDGET, "tracker is {} bytes gzipped, budget {GZIP_BUDGET}", bytes.len());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("gunzip");
    assert_eq!(text, SCRIPT);

    let plain = c.get(app.url("/js/script.js")).send().await.expect("get");
    assert_eq!(header(&plain, "content-encoding"), "");
    let plain_etag = header(&plain, "etag");
    assert_ne!(plain_etag, gz_etag, "different bytes need different ETags");
    assert_eq!(plain.text().await.expect("body"), SCRIPT);

    // A cached copy of either encoding is current: 304, no body.
    for tag in [&gz_etag, &plain_etag] {
        let r = c
            .get(app.url("/js/script.js"))
            .header("accept-encoding", "gzip")
            .header("if-none-match", tag.as_str())
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 304);
        assert_eq!(header(&r, "etag"), gz_etag);
        assert_eq!(header(&r, "cache-control"), "public, max-age=86400");
        assert!(r.bytes().await.expect("body").is_empty());
    }
    let stale = c.get(app.url("/js/script.js")).header("if-none-match", "\"0000\"").send().await.expect("get");
    assert_eq!(stale.status(), 200);

    let head = c.head(app.url("/js/script.js")).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "etag"), plain_etag);
    assert!(head.bytes().await.expect("body").is_empty());

    let post = c.post(app.url("/js/script.js")).send().await.expect("post");
    assert_eq!(post.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn no_route_sets_a_cookie() {
    let env = Env::new("cookie");
    let app = env.start().await;
    let c = client();
    let event = r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#;
    let requests = [
        c.get(app.url("/js/script.js")).header("accept-encoding", "gzip"),
        c.get(app.url("/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2F")),
        c.post(app.url("/api/event")).body(event),
        c.request(reqwest::Method::OPTIONS, app.url("/api/event")),
        c.get(app.url("/opt-out?return=https%3A%2F%2Fexample.com%2F")),
        c.get(app.url("/healthz")),
        c.get(app.url("/readyz")),
        c.get(app.url("/metrics")),
        c.get(app.url("/nope")),
    ];
    for req in requests {
        let r = req.header("user-agent", UA_CHROME).send().await.expect("request");
        let url = r.url().to_string();
        assert!(r.headers().get("set-cookie").is_none(), "{url} sets a cookie");
    }
    app.stop().await;
}

#[tokio::test]
async fn do_not_track_and_gpc_are_dropped_and_counted() {
    let env = Env::new("dnt");
    let app = env.start().await;
    let c = client();
    let body = r#"{"n":"pageview","u":"https://example.com/private","d":"example.com"}"#;

    // The pixel still answers its GIF.
    let pixel = c
        .get(app.url("/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2Fprivate"))
        .header("user-agent", UA_CHROME)
        .header("dnt", "1")
        .send()
        .await
        .expect("pixel");
    assert_eq!(pixel.status(), 200);
    assert_eq!(header(&pixel, "content-type"), "image/gif");
    assert_eq!(header(&pixel, "x-headcount-event"), "dropped; reason=dnt");
    assert_eq!(pixel.bytes().await.expect("gif").len(), 43);

    for (name, value, body) in [("sec-gpc", "1", body), ("dnt", "1", body), ("sec-gpc", "1", "not even json")] {
        let r = c
            .post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .header(name, value)
            .body(body)
            .send()
            .await
            .expect("event");
        assert_eq!(r.status(), 202, "{name}: {value}");
        assert_eq!(header(&r, "x-headcount-event"), "dropped; reason=dnt");
    }
    // `DNT: 0` and `Sec-GPC: 0` are no refusal.
    let counted = c
        .post(app.url("/api/event"))
        .header("user-agent", UA_CHROME)
        .header("dnt", "0")
        .header("sec-gpc", "0")
        .body(r#"{"n":"pageview","u":"https://example.com/counted","d":"example.com"}"#)
        .send()
        .await
        .expect("event");
    assert_eq!(header(&counted, "x-headcount-event"), "accepted");

    assert_eq!(app.running.metrics.dropped_count(DropReason::DoNotTrack), 4);
    let metrics = c.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"headcount_events_dropped_total{reason="dnt"} 4"#), "{metrics}");
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 1);
    assert_eq!(db.count("pathname = '/private'").await, 0);
}

#[tokio::test]
async fn opt_out_page_speaks_russian_and_english() {
    let env = Env::new("optout");
    let app = env.start().await;
    let c = client();
    let back = "https%3A%2F%2Fexample.com%2Fprivacy%3Fa%3D1";

    let ru = c
        .get(app.url(&format!("/opt-out?return={back}")))
        .header("accept-language", "ru-RU,ru;q=0.9,en;q=0.8")
        .send()
        .await
        .expect("get");
    assert_eq!(ru.status(), 200);
    assert_eq!(header(&ru, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&ru, "cache-control"), "no-store");
    assert!(header(&ru, "content-security-policy").starts_with("default-src 'none'"));
    let html = ru.text().await.expect("html");
    assert!(html.contains(r#"<html lang="ru">"#), "{html}");
    assert!(html.contains("Отказ от учёта посещений"));
    assert!(html.contains(r#"href="https://example.com/privacy?a=1#headcount_ignore=true""#), "{html}");
    assert!(html.contains(r#"href="https://example.com/privacy?a=1#headcount_ignore=false""#));
    assert!(!html.contains("<script"));

    // ?lang= overrides the header; the switch link keeps the return URL.
    let en = c
        .get(app.url(&format!("/opt-out?lang=en&return={back}")))
        .header("accept-language", "ru")
        .header("sec-gpc", "1")
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(en.contains(r#"<html lang="en">"#) && en.contains("Opt out of visit counting"), "{en}");
    assert!(en.contains("Global Privacy Control signal"), "the page tells a GPC browser it is not counted");
    assert!(en.contains("?lang=ru&amp;return=https%3A%2F%2Fexample.com%2Fprivacy%3Fa%3D1"), "{en}");

    let default = c.get(app.url("/opt-out")).send().await.expect("get").text().await.expect("html");
    assert!(default.contains(r#"<html lang="en">"#));
    assert!(default.contains("localStorage.headcount_ignore"));

    // Only configured sites: the page is no open redirect.
    let evil = c.get(app.url("/opt-out?return=https%3A%2F%2Fevil.test%2F")).send().await.expect("get");
    let evil = evil.text().await.expect("html");
    assert!(!evil.contains("evil.test") && !evil.contains("#headcount_ignore=true"), "{evil}");
    app.stop().await;
}

#[tokio::test]
async fn engagement_from_either_tracker_lands_as_props() {
    let env = Env::new("engage");
    let app = env.start().await;
    let c = client();
    let bodies = [
        // Plausible's tracker.
        r#"{"n":"engagement","sd":64,"d":"example.com","u":"https://example.com/a","p":{},"e":5230,"v":36}"#,
        // Headcount's: no `d` (the page's host), fractional depth.
        r#"{"u":"https://example.com/b","sd":99.6,"e":812,"n":"engagement","r":"","w":1280,"h":false}"#,
    ];
    for body in bodies {
        let r = c.post(app.url("/api/event")).header("user-agent", UA_CHROME).body(body).send().await.expect("event");
        assert_eq!(header(&r, "x-headcount-event"), "accepted", "{body}");
    }
    let db = app.stop().await;
    let rows = db.rows("SELECT pathname, interactive, prop_keys, prop_values FROM events ORDER BY pathname").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["prop_keys"], serde_json::json!(["scroll_depth", "engaged_ms"]));
    assert_eq!(rows[0]["prop_values"], serde_json::json!(["64", "5230"]));
    assert_eq!(rows[1]["prop_values"], serde_json::json!(["100", "812"]));
    assert!(rows.iter().all(|r| r["interactive"] == 0), "{rows:?}");
}
