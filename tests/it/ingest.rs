//! Events end to end: HTTP in, rows in ClickHouse out.

use crate::common::*;

#[tokio::test]
async fn pixel_event_lands_with_parsed_fields() {
    let env = Env::new("pixel");
    let app = env.start().await;
    let resp = client()
        .get(app.url("/p.gif"))
        .query(&[
            ("d", "example.com"),
            ("u", "https://www.example.com/blog/post?utm_source=newsletter&utm_campaign=nov&secret=token123"),
            ("r", "https://www.google.com/search?q=private+query"),
        ])
        .header("user-agent", UA_CHROME)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/gif");
    assert_eq!(resp.headers()["cache-control"], "no-store, max-age=0");
    assert_eq!(resp.headers()["x-headcount-event"], "accepted");
    assert_eq!(resp.bytes().await.expect("body").len(), 43);

    let db = app.stop().await;
    let rows = db
        .rows("SELECT site, name, hostname, pathname, referrer_host, referrer_path, utm_source, utm_campaign, browser, browser_version, os, device, ip_prefix, length(visitor_id) AS idlen FROM events")
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["site"], "example.com");
    assert_eq!(r["name"], "pageview");
    assert_eq!(r["hostname"], "example.com");
    assert_eq!(r["pathname"], "/blog/post");
    assert_eq!(r["referrer_host"], "google.com");
    assert_eq!(r["referrer_path"], "/search");
    assert_eq!(r["utm_source"], "newsletter");
    assert_eq!(r["utm_campaign"], "nov");
    assert_eq!(r["browser"], "Chrome");
    assert_eq!(r["browser_version"], "120");
    assert_eq!(r["os"], "Windows");
    assert_eq!(r["device"], "desktop");
    assert_eq!(r["ip_prefix"], "");
    assert_eq!(r["idlen"], "16");
    let all = db.text("SELECT * FROM events FORMAT TSV").await;
    assert!(!all.contains("token123") && !all.contains("private"), "query strings leaked: {all}");
}

#[tokio::test]
async fn pixel_without_url_uses_referer_header() {
    let env = Env::new("pixelref");
    let app = env.start().await;
    let resp = client()
        .get(app.url("/p.gif"))
        .header("referer", "https://example.com/from-header")
        .header("user-agent", UA_IPHONE)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["x-headcount-event"], "accepted");
    let db = app.stop().await;
    let rows = db.rows("SELECT site, pathname, device, os FROM events").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["pathname"], "/from-header");
    assert_eq!(rows[0]["device"], "mobile");
    assert_eq!(rows[0]["os"], "iOS");
}

#[tokio::test]
async fn plausible_payloads_are_accepted_unchanged() {
    let env = Env::new("plausible");
    let app = env.start().await;
    let c = client();
    // What Plausible's script sends: text/plain, short keys, props object.
    let bodies = [
        (
            "text/plain",
            r#"{"n":"pageview","u":"https://example.com/pricing","d":"example.com","r":"https://t.co/abc","w":1440}"#,
        ),
        (
            "application/json",
            r#"{"name":"Signup","url":"https://example.com/signup","domain":"example.com","referrer":null,"props":{"plan":"pro","seats":3}}"#,
        ),
        // legacy plausible-tracker: props as a JSON string, meta key
        (
            "text/plain",
            r#"{"n":"Download","u":"https://example.com/files","d":"example.com","p":"{\"file\":\"report.pdf\"}","h":0}"#,
        ),
        (
            "text/plain",
            r#"{"n":"Purchase","u":"https://example.com/cart","d":"example.com","$":{"amount":"49.90","currency":"RUB"},"i":false}"#,
        ),
        // no content type at all
        ("", r#"{"n":"pageview","u":"https://example.com/#/spa","d":"example.com","h":1}"#),
    ];
    for (ct, body) in bodies {
        let mut req = c.post(app.url("/api/event")).header("user-agent", UA_CHROME).body(body);
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 202, "{body}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(resp.headers()["x-headcount-event"], "accepted", "{body}");
        assert_eq!(resp.text().await.expect("body"), "ok");
    }
    let db = app.stop().await;
    let rows = db
        .rows("SELECT name, pathname, referrer_host, screen_width, prop_keys, prop_values, revenue_micros, revenue_currency, interactive FROM events ORDER BY name, pathname")
        .await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let by = |n: &str| rows.iter().find(|r| r["name"] == n).cloned().expect("row");
    assert_eq!(by("Signup")["prop_keys"], serde_json::json!(["plan", "seats"]));
    assert_eq!(by("Signup")["prop_values"], serde_json::json!(["pro", "3"]));
    assert_eq!(by("Download")["prop_values"], serde_json::json!(["report.pdf"]));
    assert_eq!(by("Purchase")["revenue_micros"], "49900000");
    assert_eq!(by("Purchase")["revenue_currency"], "RUB");
    assert_eq!(by("Purchase")["interactive"], 0);
    let pv: Vec<_> = rows.iter().filter(|r| r["name"] == "pageview").collect();
    assert_eq!(pv[0]["pathname"], "/#/spa");
    assert_eq!(pv[1]["pathname"], "/pricing");
    assert_eq!(pv[1]["referrer_host"], "t.co");
    assert_eq!(pv[1]["screen_width"], 1440);
}

#[tokio::test]
async fn preflight_allows_any_origin_without_credentials() {
    let env = Env::new("cors");
    let app = env.start().await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, app.url("/api/event"))
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(resp.headers().get("access-control-allow-credentials").is_none());
    assert!(resp.headers().get("set-cookie").is_none());
    app.stop().await;
}

#[tokio::test]
async fn unknown_sites_and_bots_are_dropped_and_counted() {
    let env = Env::new("drops");
    let app = env.start().await;
    let c = client();
    let send =
        |body: &'static str, ua: &'static str| c.post(app.url("/api/event")).header("user-agent", ua).body(body).send();
    let unknown = send(r#"{"n":"pageview","u":"https://evil.test/","d":"evil.test"}"#, UA_CHROME).await.expect("req");
    assert_eq!(unknown.status(), 202);
    assert_eq!(unknown.headers()["x-headcount-event"], "dropped; reason=unknown_site");
    for ua in [
        UA_GOOGLEBOT,
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        "",
    ] {
        let r = send(r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#, ua).await.expect("req");
        assert_eq!(r.headers()["x-headcount-event"], "dropped; reason=bot", "{ua}");
    }
    for _ in 0..3 {
        let r = send(r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#, UA_CHROME).await.expect("req");
        assert_eq!(r.headers()["x-headcount-event"], "accepted");
    }
    // A pixel from a bot still gets its GIF.
    let px = c
        .get(app.url("/p.gif?d=example.com&u=https://example.com/"))
        .header("user-agent", UA_GOOGLEBOT)
        .send()
        .await
        .expect("req");
    assert_eq!(px.status(), 200);
    assert_eq!(px.headers()["x-headcount-event"], "dropped; reason=bot");

    let metrics = c.get(app.url("/metrics")).send().await.expect("req").text().await.expect("body");
    assert!(metrics.contains("headcount_events_dropped_total{reason=\"bot\"} 5"), "{metrics}");
    assert!(metrics.contains("headcount_events_dropped_total{reason=\"unknown_site\"} 1"), "{metrics}");
    assert!(metrics.contains("headcount_events_accepted_total 3"), "{metrics}");
    assert!(metrics.contains("headcount_http_requests_total{route=\"event\",status=\"202\"} 8"), "{metrics}");
    let m = app.running.metrics.clone();
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 3);
    assert_eq!(m.rows_written.get(), 3, "rows written equals rows accepted");
}

#[tokio::test]
async fn one_event_for_several_sites_gets_unlinkable_ids() {
    let env = Env::new("rollup");
    let app = env.start().await;
    let r = client()
        .post(app.url("/api/event"))
        .header("user-agent", UA_CHROME)
        .body(r#"{"n":"pageview","u":"https://example.com/","d":"example.com,other.org,unknown.net"}"#)
        .send()
        .await
        .expect("req");
    assert_eq!(r.headers()["x-headcount-event"], "accepted");
    let db = app.stop().await;
    let rows = db.rows("SELECT site, hex(visitor_id) AS v FROM events ORDER BY site").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["site"], "example.com");
    assert_eq!(rows[1]["site"], "other.org");
    assert_ne!(rows[0]["v"], rows[1]["v"], "the same person must not be linkable across sites");
}

/// `headcount_visits_remembered`: the visits kept in memory (about 260
/// bytes each, at most 200,000), for sizing an instance.
#[tokio::test]
async fn metrics_count_the_visits_remembered() {
    let env = Env::new("visitsgauge");
    let app = env.start().await;
    let c = client();
    let gauge = async || {
        let text = c.get(app.url("/metrics")).send().await.expect("req").text().await.expect("body");
        text.lines().find_map(|l| l.strip_prefix("headcount_visits_remembered ")).map(str::to_owned)
    };
    assert_eq!(gauge().await.as_deref(), Some("0"));
    // Two visitors (the User-Agent is part of the visitor id), two pageviews each.
    for ua in [UA_CHROME, UA_IPHONE] {
        for page in ["https://example.com/", "https://example.com/next"] {
            let resp = c
                .get(app.url("/p.gif"))
                .query(&[("d", "example.com"), ("u", page)])
                .header("user-agent", ua)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.headers()["x-headcount-event"], "accepted");
        }
    }
    assert_eq!(gauge().await.as_deref(), Some("2"));
    app.stop().await;
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints() {
    let env = Env::new("health");
    let app = env.start().await;
    let c = client();
    assert_eq!(c.get(app.url("/healthz")).send().await.expect("req").status(), 200);
    let ready = c.get(app.url("/readyz")).send().await.expect("req");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["salt_loaded"], true);
    assert_eq!(body["store_reachable"], true);
    let m = c.get(app.url("/metrics")).send().await.expect("req");
    assert!(m.headers()["content-type"].to_str().expect("ct").starts_with("text/plain"));
    let text = m.text().await.expect("body");
    for name in [
        "headcount_events_accepted_total",
        "headcount_events_dropped_total",
        "headcount_rows_written_total",
        "headcount_flush_duration_seconds",
        "headcount_queue_depth",
        "headcount_flush_errors_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert_eq!(c.get(app.url("/nope")).send().await.expect("req").status(), 404);
    app.stop().await;
}
