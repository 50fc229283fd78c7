//! The privacy contract, proven against the real ClickHouse.

use crate::common::*;
use crate::logs;
use time::Duration;

/// Canary client addresses. 127.51.100.77 can be a real socket peer on
/// Linux loopback; the others arrive through a trusted proxy header.
const PEER_V4: &str = "127.51.100.77";
const XFF_V4: &str = "198.51.100.77";
const XFF_V6: &str = "2001:db8:abcd:12:3456:789a:bcde:f012";

/// Every textual and binary form of an address we must never find.
pub(crate) fn forms(ip: &str) -> Vec<(String, Vec<u8>)> {
    let addr: std::net::IpAddr = ip.parse().expect("ip");
    let mut out = vec![(format!("text {ip}"), ip.as_bytes().to_vec())];
    match addr {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            out.push(("octets".into(), o.to_vec()));
            out.push(("u32 le".into(), u32::from(v4).to_le_bytes().to_vec()));
            out.push(("mapped text".into(), format!("::ffff:{ip}").into_bytes()));
            out.push(("decimal".into(), u32::from(v4).to_string().into_bytes()));
            out.push(("hex".into(), hex::encode(o).into_bytes()));
            out.push(("HEX".into(), hex::encode_upper(o).into_bytes()));
        }
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            out.push(("octets".into(), o.to_vec()));
            let mut rev = o;
            rev.reverse();
            out.push(("octets reversed".into(), rev.to_vec()));
            out.push((
                "expanded".into(),
                v6.segments().iter().map(|s| format!("{s:04x}")).collect::<Vec<_>>().join(":").into_bytes(),
            ));
            out.push(("hex".into(), hex::encode(o).into_bytes()));
            out.push(("HEX".into(), hex::encode_upper(o).into_bytes()));
            // The host part alone (what truncation removes).
            out.push(("host part".into(), b"3456:789a:bcde:f012".to_vec()));
        }
    }
    out
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Dump every table of the test database as TSV text and as RowBinary.
pub(crate) async fn dump_all(db: &Db) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for t in db.tables().await {
        out.push((format!("{t} TSV"), db.raw(&format!("SELECT * FROM `{t}` FORMAT TabSeparated")).await));
        out.push((format!("{t} RowBinary"), db.raw(&format!("SELECT * FROM `{t}` FORMAT RowBinary")).await));
        out.push((format!("{t} JSON"), db.raw(&format!("SELECT * FROM `{t}` FORMAT JSONEachRow")).await));
    }
    out
}

async fn send_canaries(app: &App) {
    let body = r#"{"n":"pageview","u":"https://example.com/canary","d":"example.com"}"#;
    let peer = client_from(PEER_V4);
    for path in ["/api/event", "/p.gif?d=example.com&u=https://example.com/canary-pixel"] {
        let resp = if path == "/api/event" {
            peer.post(app.url(path)).header("user-agent", UA_CHROME).body(body).send().await
        } else {
            peer.get(app.url(path)).header("user-agent", UA_CHROME).send().await
        }
        .expect("request");
        assert_eq!(resp.headers()["x-headcount-event"], "accepted");
    }
    // Through the trusted proxy (127.0.0.1), IPv4 and IPv6, each header style.
    let c = client_from("127.0.0.1");
    for (h, v) in [
        ("x-forwarded-for", XFF_V4.to_string()),
        ("x-forwarded-for", XFF_V6.to_string()),
        ("forwarded", format!("for=\"[{XFF_V6}]:443\"")),
        ("x-real-ip", XFF_V4.to_string()),
    ] {
        let resp = c
            .post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .header(h, v)
            .body(body)
            .send()
            .await
            .expect("req");
        assert_eq!(resp.headers()["x-headcount-event"], "accepted");
    }
    // A malformed request carrying the canary must not echo it either.
    let bad =
        c.post(app.url("/api/event")).header("x-forwarded-for", XFF_V4).body("{not json").send().await.expect("req");
    let text = bad.text().await.expect("body");
    assert!(!text.contains(XFF_V4), "error message echoes the IP: {text}");
}

/// Every file under `dir`, with its path.
pub(crate) fn read_tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(read_tree(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

async fn assert_no_canary(db: &Db, extra: &[(String, Vec<u8>)]) {
    let dumps = dump_all(db).await;
    let mut everything = dumps.clone();
    everything.extend_from_slice(extra);
    for ip in [PEER_V4, XFF_V4, XFF_V6] {
        for (form, needle) in forms(ip) {
            for (what, hay) in &everything {
                assert!(!find(hay, &needle), "canary {ip} ({form}) found in {what}");
            }
        }
    }
}

#[tokio::test]
async fn canary_ip_appears_nowhere_in_hash_mode() {
    let logs = logs::capture();
    let mut env = Env::new("canary");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = env.start().await;
    send_canaries(&app).await;
    let metrics = client().get(app.url("/metrics")).send().await.expect("req").bytes().await.expect("body").to_vec();
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 6, "all canary events stored");
    // The spool (segments, checkpoint) holds the events too: depersonalized.
    let spool = read_tree(&env.dir.path().join("spool"));
    assert!(
        spool.iter().any(|(_, bytes)| find(bytes, b"example.com")),
        "positive control: the spool files hold the stored events"
    );
    // Nothing of the address: not even its /24 or /48.
    let dumps = dump_all(&db).await;
    for (what, hay) in &dumps {
        for prefix in ["127.51.100.", "198.51.100.", "2001:db8:abcd"] {
            assert!(
                !find(hay, prefix.as_bytes()),
                "network {prefix} found in {what} (hash mode stores nothing of the IP)"
            );
        }
    }
    let mut extra = vec![("logs".to_string(), logs.contents().into_bytes()), ("metrics".to_string(), metrics)];
    extra.extend(spool);
    if let Ok(path) = std::env::var("HEADCOUNT_TEST_CLICKHOUSE_LOG")
        && let Ok(log) = std::fs::read(&path)
    {
        extra.push(("ClickHouse server log".into(), log));
    }
    assert!(logs.contents().contains("headcount listening"), "log capture works");
    assert_no_canary(&db, &extra).await;
}

#[tokio::test]
async fn truncate_mode_stores_only_the_network() {
    let logs = logs::capture();
    let mut env = Env::new("truncate");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    env.raw.privacy.ip_mode = "truncate".into();
    let app = env.start().await;
    send_canaries(&app).await;
    let db = app.stop().await;
    let prefixes = db.text("SELECT DISTINCT ip_prefix FROM events ORDER BY ip_prefix FORMAT TSV").await;
    assert_eq!(prefixes, "127.51.100.0/24\n198.51.100.0/24\n2001:db8:abcd::/48\n");
    assert_no_canary(&db, &[("logs".to_string(), logs.contents().into_bytes())]).await;
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let env = Env::new("untrusted");
    // No trusted proxies at all.
    let app = env.start().await;
    let body = r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#;
    let c = client_from("127.0.0.1");
    // Ten "different" clients forged through X-Forwarded-For from one peer…
    for i in 0..10 {
        c.post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .header("forwarded", format!("for=203.0.114.{i}"))
            .header("x-real-ip", format!("203.0.115.{i}"))
            .body(body)
            .send()
            .await
            .expect("req");
    }
    let db = app.stop().await;
    // …are one visitor: the socket peer.
    assert_eq!(db.text("SELECT count(), uniqExact(visitor_id) FROM events FORMAT TSV").await, "10\t1\n");
}

#[tokio::test]
async fn visitor_id_is_stable_within_a_day_and_changes_across_days_and_sites() {
    let mut env = Env::new("days");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = env.start().await;
    let c = client_from("127.0.0.1");
    let send = |ip: &'static str, ua: &'static str, site: &'static str| {
        let body = format!(r#"{{"n":"pageview","u":"https://{site}/","d":"{site}"}}"#);
        c.post(app.url("/api/event")).header("user-agent", ua).header("x-forwarded-for", ip).body(body).send()
    };
    send(XFF_V4, UA_CHROME, "example.com").await.expect("req");
    env.clock.advance(Duration::hours(3));
    send(XFF_V4, UA_CHROME, "example.com").await.expect("req");
    send(XFF_V4, UA_IPHONE, "example.com").await.expect("req");
    send("198.51.100.78", UA_CHROME, "example.com").await.expect("req");
    send(XFF_V4, UA_CHROME, "other.org").await.expect("req");
    // Next day (the keeper agrees tomorrow's salt; no waiting for midnight).
    env.clock.advance(Duration::days(1));
    app.running.keeper.tick().await.expect("salt for the new day");
    send(XFF_V4, UA_CHROME, "example.com").await.expect("req");
    let db = app.stop().await;

    let rows = db.rows("SELECT site, toString(ts) AS ts, hex(visitor_id) AS v FROM events ORDER BY ts, site").await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    let v: Vec<&str> = rows.iter().map(|r| r["v"].as_str().expect("hex")).collect();
    // rows sorted by ts: [d1 10:00 a], [d1 13:00: a/chrome, a/iphone, a/.78, other.org (order within ts by site)], [d2]
    let same_day_first = v[0];
    let same_day_later: Vec<&str> =
        rows[1..5].iter().filter(|r| r["site"] == "example.com").map(|r| r["v"].as_str().expect("hex")).collect();
    assert!(same_day_later.contains(&same_day_first), "same (site, ip, ua) same day → same id");
    let distinct: std::collections::HashSet<&str> = v.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "ua, ip, site and day each change the id: {rows:?}");
    assert_ne!(v[5], same_day_first, "next day → new id");
}
