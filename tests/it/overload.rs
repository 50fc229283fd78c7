//! Overload and hostile clients: slow and idle connections, connection
//! floods, oversize heads, compressed bodies and zip bombs, in-flight and
//! per-client rate limits — against the real server, with short limits.

use crate::common::*;
use crate::logs;
use crate::privacy::{find, forms};
use headcount::telemetry::DropReason;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EVENT: &str = r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#;

fn event(path: &str) -> String {
    format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com"}}"#)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

async fn connect(app: &App) -> TcpStream {
    TcpStream::connect(app.running.addr).await.expect("connect")
}

/// Read until the server closes the connection (EOF or reset), at most
/// `within`; `None` if it is still open then.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, reading).await.ok().map(|()| got)
}

/// Read until `needle` has arrived (at most 10 s).
async fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        while !find(&got, needle) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), reading).await;
    got
}

/// A complete `GET /healthz` request head.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// The answer to `GET /healthz` on a raw connection is a 200.
async fn expect_healthz_ok(s: &mut TcpStream) {
    let answer = read_until(s, b"ok\n").await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

/// Poll `f` until it holds (at most 10 s).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn healthz(app: &App) -> u16 {
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    c.get(app.url("/healthz")).send().await.expect("healthz").status().as_u16()
}

fn event_header(r: &reqwest::Response) -> String {
    r.headers().get("x-headcount-event").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// POST an event as `client` (a proxy header or none); status and header.
async fn post(app: &App, client: &reqwest::Client, xff: Option<&str>, body: &str) -> (u16, String) {
    let mut req = client.post(app.url("/api/event")).header("user-agent", UA_CHROME).body(body.to_string());
    if let Some(ip) = xff {
        req = req.header("x-forwarded-for", ip);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), event_header(&r))
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_while_others_are_served() {
    let mut env = Env::new("slowloris");
    env.raw.limits.header_read_timeout_ms = 400;
    let app = env.start().await;
    let started = Instant::now();
    // A head that never ends, a connection that never speaks, half an
    // HTTP/2 preface, and a keep-alive connection left idle after a request.
    let mut partial = connect(&app).await;
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
    let mut silent = connect(&app).await;
    let mut preface = connect(&app).await;
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
    let mut idle = connect(&app).await;
    idle.write_all(HEALTHZ).await.expect("write");
    expect_healthz_ok(&mut idle).await;
    // After one answered request, the next head trickles in a byte every
    // 100 ms: bytes arriving must not keep the connection open.
    let mut trickle = connect(&app).await;
    trickle.write_all(HEALTHZ).await.expect("write");
    expect_healthz_ok(&mut trickle).await;
    let (mut trickle_read, mut trickle_write) = trickle.into_split();
    let trickler = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle().take(200) {
            if trickle_write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Meanwhile everyone else is served.
    assert_eq!(healthz(&app).await, 200);

    for (what, s) in [("partial head", &mut partial), ("silent", &mut silent), ("h2 preface", &mut preface)] {
        let got = read_to_close(s, Duration::from_secs(5)).await;
        assert!(got.is_some(), "{what}: still open 5 s after a 400 ms timeout");
    }
    assert!(read_to_close(&mut idle, Duration::from_secs(5)).await.is_some(), "idle keep-alive still open");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), trickle_read.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a trickled head kept its connection open 5 s after a 400 ms timeout");
    trickler.abort();
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the timeout: {:?}", started.elapsed());
    let m = app.running.metrics.clone();
    eventually("5 connections timed out", || m.connections_timed_out.get() >= 5).await;
    assert_eq!(healthz(&app).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn connections_are_capped_and_the_server_recovers() {
    let mut env = Env::new("conncap");
    env.raw.limits.max_connections = 3;
    env.raw.limits.header_read_timeout_ms = 30_000;
    let app = env.start().await;
    let m = app.running.metrics.clone();
    let mut open = Vec::new();
    for _ in 0..3 + 2 {
        open.push(connect(&app).await);
    }
    eventually("3 connections open", || m.connections_open.get() == 3).await;
    eventually("the limit is counted", || m.connections_limited.get() >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(m.connections_open.get(), 3, "never more than the cap");
    assert!(m.render().contains("headcount_connections_open 3"), "gauge exported");
    // At the cap nobody new is served: the connection waits in the backlog…
    let mut queued = connect(&app).await;
    queued.write_all(HEALTHZ).await.expect("write");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), queued.read(&mut buf)).await;
    assert!(early.is_err(), "served past the connection cap");

    // …and is served once others close.
    drop(open);
    expect_healthz_ok(&mut queued).await;
    drop(queued);
    assert_eq!(healthz(&app).await, 200);
    eventually("gauge back to 0", || m.connections_open.get() == 0).await;
    app.stop().await;
}

#[tokio::test]
async fn oversize_request_heads_get_431() {
    let mut env = Env::new("bighead");
    env.raw.limits.max_header_bytes = 8192;
    env.raw.limits.max_headers = 20;
    let app = env.start().await;
    let big_header = |n: usize| format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(n));
    let huge = big_header(20_000);
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..40).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    for (what, request) in [("20 kB header", huge), ("40 headers", many)] {
        let mut s = connect(&app).await;
        let _ = s.write_all(request.as_bytes()).await;
        let got = read_to_close(&mut s, Duration::from_secs(5)).await.expect("connection closed");
        let text = String::from_utf8_lossy(&got);
        assert!(got.is_empty() || text.starts_with("HTTP/1.1 431"), "{what}: {text}");
    }
    // A head just under the limit is fine, and the server is unaffected.
    let mut s = connect(&app).await;
    s.write_all(big_header(6000).as_bytes()).await.expect("write");
    expect_healthz_ok(&mut s).await;
    assert_eq!(healthz(&app).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn compressed_bodies_are_accepted_and_stored() {
    let env = Env::new("gzipbody");
    let app = env.start().await;
    let c = client();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(event("/deflated").as_bytes()).expect("zlib");
    for (encoding, body) in [("gzip", gzip(event("/gzipped").as_bytes())), ("deflate", zlib.finish().expect("zlib"))] {
        let r = c
            .post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 202, "{encoding}");
        assert_eq!(event_header(&r), "accepted", "{encoding}");
    }
    let db = app.stop().await;
    assert_eq!(db.count("pathname = '/gzipped'").await, 1);
    assert_eq!(db.count("pathname = '/deflated'").await, 1);
}

/// Peak resident memory of this process, in kB (Linux).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_zip_bomb_gets_413_without_the_memory() {
    let mut env = Env::new("zipbomb");
    env.raw.server.max_body_bytes = 1024 * 1024;
    let app = env.start().await;
    let c = client();
    // 1 MB of zeros is about 1 kB gzipped; 600 members decompress to 600 MB.
    let member = gzip(&vec![0u8; 1024 * 1024]);
    let bomb = member.repeat(600);
    assert!(bomb.len() < 1024 * 1024, "the bomb itself fits the limit: {}", bomb.len());
    let before = peak_rss_kb();
    let r = c.post(app.url("/api/event")).header("content-encoding", "gzip").body(bomb).send().await.expect("request");
    assert_eq!(r.status(), 413);
    assert_eq!(event_header(&r), "dropped; reason=invalid");
    let msg = r.text().await.expect("body");
    assert!(msg.contains("decompressed"), "{msg}");
    if let (Some(before), Some(after)) = (before, peak_rss_kb()) {
        assert!(after.saturating_sub(before) < 300 * 1024, "peak RSS grew {} kB", after - before);
    }
    let (status, header) = post(&app, &c, None, EVENT).await;
    assert_eq!((status, header.as_str()), (202, "accepted"), "normal requests still work");
    app.stop().await;
}

#[tokio::test]
async fn ten_megabytes_of_zeros_at_the_default_limit() {
    let env = Env::new("zipbomb10");
    let app = env.start().await;
    let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
    let r = client().post(app.url("/api/event")).header("content-encoding", "gzip").body(bomb).send().await;
    let r = r.expect("request");
    assert_eq!(r.status(), 413);
    assert!(r.text().await.expect("body").contains("65536 bytes when decompressed"));
    assert_eq!(healthz(&app).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn unknown_content_encoding_gets_415() {
    let env = Env::new("encoding");
    let app = env.start().await;
    for encoding in ["br", "zstd", "gzip, gzip"] {
        let r = client()
            .post(app.url("/api/event"))
            .header("content-encoding", encoding)
            .body(EVENT)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 415, "{encoding}");
        assert_eq!(event_header(&r), "dropped; reason=invalid");
    }
    let (status, _) = post(&app, &client(), None, EVENT).await;
    assert_eq!(status, 202);
    app.stop().await;
}

#[tokio::test]
async fn overloaded_requests_are_refused_not_queued_and_slow_bodies_time_out() {
    let mut env = Env::new("inflight");
    env.raw.limits.max_inflight_requests = 1;
    env.raw.limits.body_read_timeout_ms = 3000;
    let app = env.start().await;
    let c = client();
    // One request whose body never finishes holds the only permit.
    let mut slow = connect(&app).await;
    slow.write_all(b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"n\":").await.expect("write");
    let mut pixel_refused = false;
    for _ in 0..100 {
        let r = c.get(app.url("/p.gif?d=example.com&u=https://example.com/")).send().await.expect("pixel");
        assert_eq!(r.status(), 200, "the pixel always answers");
        if event_header(&r) == "dropped; reason=overloaded" {
            assert_eq!(r.bytes().await.expect("gif").len(), 43);
            pixel_refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pixel_refused, "the pixel was never refused while the permit was held");
    let r = c.post(app.url("/api/event")).header("user-agent", UA_CHROME).body(EVENT).send().await.expect("req");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(event_header(&r), "dropped; reason=overloaded");

    // The slow body times out with 408 and the connection is closed.
    let got = read_to_close(&mut slow, Duration::from_secs(10)).await.expect("slow body connection closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    let (status, header) = post(&app, &c, None, EVENT).await;
    assert_eq!((status, header.as_str()), (202, "accepted"), "the permit is back");
    assert!(app.running.metrics.dropped_count(DropReason::Overloaded) >= 2);
    app.stop().await;
}

/// Send `n` API events and `n` pixels as one client; count each outcome.
struct Flood {
    accepted: u64,
    limited: u64,
}

async fn flood(app: &App, from: &str, xff: Option<&str>, n: usize) -> Flood {
    let c = client_from(from);
    let mut f = Flood { accepted: 0, limited: 0 };
    for i in 0..n {
        let (status, header) = post(app, &c, xff, &event(&format!("/flood/{i}"))).await;
        match (status, header.as_str()) {
            (202, "accepted") => f.accepted += 1,
            (429, "dropped; reason=rate_limited") => f.limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        let mut pixel = c.get(app.url(&format!("/p.gif?d=example.com&u=https://example.com/px/{i}")));
        pixel = pixel.header("user-agent", UA_CHROME);
        if let Some(ip) = xff {
            pixel = pixel.header("x-forwarded-for", ip);
        }
        let r = pixel.send().await.expect("pixel");
        assert_eq!(r.status(), 200);
        match event_header(&r).as_str() {
            "accepted" => f.accepted += 1,
            "dropped; reason=rate_limited" => f.limited += 1,
            other => panic!("unexpected pixel answer {other:?}"),
        }
    }
    f
}

#[tokio::test]
async fn clients_over_their_rate_get_429() {
    let mut env = Env::new("ratelimit");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    env.raw.limits.rate_limit_per_second = 1;
    env.raw.limits.rate_limit_burst = 5;
    let app = env.start().await;
    let started = Instant::now();
    let f = flood(&app, "127.0.0.1", Some("198.51.100.123"), 10).await;
    let allowed = 5 + started.elapsed().as_secs() + 1;
    assert!(f.accepted >= 5 && f.accepted <= allowed, "{} accepted, at most {allowed} allowed", f.accepted);
    assert!(f.limited >= 1, "never limited");
    // The answer says when to come back.
    let r = client_from("127.0.0.1")
        .post(app.url("/api/event"))
        .header("x-forwarded-for", "198.51.100.123")
        .body(EVENT)
        .send()
        .await
        .expect("req");
    if r.status() == 429 {
        let secs: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=2).contains(&secs), "Retry-After {secs}");
    }
    let extra = u64::from(r.status() == 202);
    let limited_total = f.limited + u64::from(r.status() == 429);
    // Another client behind the same proxy is not affected.
    let other = flood(&app, "127.0.0.1", Some("198.51.100.124"), 2).await;
    assert_eq!((other.accepted, other.limited), (4, 0));
    assert_eq!(app.running.metrics.dropped_count(DropReason::RateLimited), limited_total);
    let db = app.stop().await;
    assert_eq!(db.count("1").await, f.accepted + extra + other.accepted, "only admitted events stored");
}

#[tokio::test]
async fn exempt_networks_are_never_limited() {
    let mut env = Env::new("exempt");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into(), "127.0.0.3/32".into()];
    env.raw.limits.rate_limit_per_second = 1;
    env.raw.limits.rate_limit_burst = 2;
    // A network of clients, and a load generator's own address (its
    // visitors arrive in X-Forwarded-For from everywhere).
    env.raw.limits.rate_limit_exempt = vec!["198.51.100.0/24".into(), "127.0.0.3".into()];
    let app = env.start().await;
    let by_client = flood(&app, "127.0.0.1", Some("198.51.100.50"), 10).await;
    assert_eq!((by_client.accepted, by_client.limited), (20, 0), "exempt client address");
    let by_peer = flood(&app, "127.0.0.3", Some("203.0.113.7"), 10).await;
    assert_eq!((by_peer.accepted, by_peer.limited), (20, 0), "exempt socket peer");
    let control = flood(&app, "127.0.0.1", Some("203.0.113.9"), 10).await;
    assert!(control.limited > 0, "the limiter is on for everyone else");
    app.stop().await;
}

#[tokio::test]
async fn the_limiter_never_reveals_the_client_address() {
    const PEER: &str = "127.51.100.99";
    const XFF_V4: &str = "198.51.100.199";
    const XFF_V6: &str = "2001:db8:77:1:2:3:4:5";
    let logs = logs::capture();
    let mut env = Env::new("limitprivacy");
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    env.raw.limits.rate_limit_per_second = 1;
    env.raw.limits.rate_limit_burst = 1;
    let app = env.start().await;
    let mut answers = Vec::new();
    for (from, xff) in [(PEER, None), ("127.0.0.1", Some(XFF_V4)), ("127.0.0.1", Some(XFF_V6))] {
        let f = flood(&app, from, xff, 3).await;
        assert!(f.limited > 0, "{from} {xff:?} limited");
        // Refusals of every kind carry no address either.
        let c = client_from(from);
        for (encoding, body) in [("br", EVENT.as_bytes().to_vec()), ("gzip", b"not gzip".to_vec())] {
            let mut req = c.post(app.url("/api/event")).header("content-encoding", encoding).body(body);
            if let Some(ip) = xff {
                req = req.header("x-forwarded-for", ip);
            }
            let r = req.send().await.expect("request");
            answers.extend_from_slice(format!("{:?}", r.headers()).as_bytes());
            answers.extend_from_slice(&r.bytes().await.expect("body"));
        }
    }
    let metrics = client().get(app.url("/metrics")).send().await.expect("req").bytes().await.expect("body").to_vec();
    assert!(String::from_utf8_lossy(&metrics).contains("headcount_events_dropped_total{reason=\"rate_limited\"}"));
    app.stop().await;
    let logs = logs.contents();
    assert!(logs.contains("headcount listening"), "log capture works");
    let places = [("logs", logs.as_bytes()), ("metrics", &metrics[..]), ("answers", &answers[..])];
    for ip in [PEER, XFF_V4, XFF_V6] {
        for (form, needle) in forms(ip) {
            for (what, hay) in places {
                assert!(!find(hay, &needle), "{ip} ({form}) found in {what}");
            }
        }
    }
}
