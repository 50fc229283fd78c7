//! Bad input gets a clear 4xx, is counted, and breaks nothing.

use crate::common::*;

#[tokio::test]
async fn malformed_requests_get_their_documented_status() {
    let env = Env::new("malformed");
    let app = env.start().await;
    let c = client();
    let long_url = format!("https://example.com/{}", "a".repeat(2100));
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not json", b"hello".to_vec(), 400, "not a JSON object"),
        ("json array", b"[1,2,3]".to_vec(), 400, "not a JSON object"),
        (
            "invalid utf-8",
            b"{\"n\":\"pageview\",\"u\":\"https://example.com/\xff\",\"d\":\"example.com\"}".to_vec(),
            400,
            "UTF-8",
        ),
        ("missing n", br#"{"u":"https://example.com/","d":"example.com"}"#.to_vec(), 400, "`n`"),
        ("missing u", br#"{"n":"pageview","d":"example.com"}"#.to_vec(), 400, "`u`"),
        // Without `d` the site is the host of `u`; a `u` without host leaves none.
        ("missing d", br#"{"n":"pageview","u":"/no/host"}"#.to_vec(), 400, "`d`"),
        ("wrong type", br#"{"n":1,"u":"https://example.com/","d":"example.com"}"#.to_vec(), 400, "invalid type"),
        (
            "data url",
            br#"{"n":"pageview","u":"data:text/html;base64,PHNjcmlwdD4=","d":"example.com"}"#.to_vec(),
            400,
            "data:",
        ),
        ("relative url", br#"{"n":"pageview","u":"/just/a/path","d":"example.com"}"#.to_vec(), 400, "invalid `u`"),
        (
            "url too long",
            format!(r#"{{"n":"pageview","u":"{long_url}","d":"example.com"}}"#).into_bytes(),
            400,
            "longer than 2000",
        ),
        (
            "bad referrer",
            br#"{"n":"pageview","u":"https://example.com/","d":"example.com","r":"javascript:alert(1)"}"#.to_vec(),
            400,
            "invalid `r`",
        ),
        (
            "bad props",
            br#"{"n":"x","u":"https://example.com/","d":"example.com","p":{"a":{"nested":1}}}"#.to_vec(),
            400,
            "`p`",
        ),
        (
            "bad revenue",
            br#"{"n":"x","u":"https://example.com/","d":"example.com","$":{"amount":"lots"}}"#.to_vec(),
            400,
            "`$`",
        ),
        (
            "name too long",
            format!(r#"{{"n":"{}","u":"https://example.com/","d":"example.com"}}"#, "n".repeat(200)).into_bytes(),
            400,
            "120",
        ),
        ("body too large", big.into_bytes(), 413, "larger than"),
        ("empty body", Vec::new(), 400, "not a JSON object"),
    ];
    for (what, body, status, needle) in &cases {
        let resp = c
            .post(app.url("/api/event"))
            .header("user-agent", UA_CHROME)
            .body(body.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), *status, "{what}");
        assert_eq!(resp.headers()["x-headcount-event"], "dropped; reason=invalid", "{what}");
        let json: serde_json::Value = resp.json().await.expect("JSON error body");
        let msg = json["error"].as_str().expect("error message");
        assert!(msg.contains(needle), "{what}: {msg:?} should mention {needle:?}");
    }
    // Pixels with bad input still answer the GIF.
    for q in ["", "d=example.com", "d=example.com&u=data:text/html,x", "d=example.com&u=%FF%FE", "u=not-a-url"] {
        let resp = c.get(app.url(&format!("/p.gif?{q}"))).header("user-agent", UA_CHROME).send().await.expect("req");
        assert_eq!(resp.status(), 200, "pixel {q}");
        assert_eq!(resp.headers()["x-headcount-event"], "dropped; reason=invalid", "pixel {q}");
        assert_eq!(resp.bytes().await.expect("gif").len(), 43);
    }
    // Wrong methods.
    assert_eq!(c.get(app.url("/api/event")).send().await.expect("req").status(), 405);
    assert_eq!(c.delete(app.url("/p.gif")).send().await.expect("req").status(), 405);

    // Still serving, counters exact.
    let ok = c
        .post(app.url("/api/event"))
        .header("user-agent", UA_CHROME)
        .body(r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#)
        .send()
        .await
        .expect("req");
    assert_eq!(ok.status(), 202);
    let m = app.running.metrics.clone();
    assert_eq!(m.dropped_count(headcount::telemetry::DropReason::Invalid), (cases.len() + 5) as u64);
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 1, "only the valid event stored");
}

#[tokio::test]
async fn a_lying_content_length_does_not_hang_or_crash() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::new("rawhttp");
    let app = env.start().await;
    let addr = app.running.addr;
    // Declared far above the limit: rejected before reading.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{").await.expect("write");
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&buf[..n]));
    // Garbage instead of HTTP.
    let mut g = tokio::net::TcpStream::connect(addr).await.expect("connect");
    g.write_all(b"\x16\x03\x01\x00garbage\r\n\r\n").await.expect("write");
    let _ = g.read(&mut buf).await;
    // Server still answers.
    assert_eq!(client().get(app.url("/healthz")).send().await.expect("req").status(), 200);
    app.stop().await;
}
