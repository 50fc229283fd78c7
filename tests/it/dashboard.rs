//! The web side against a real ClickHouse: logins, sessions, CSRF, per-site
//! access, shared links and their k-threshold, exports, the Plausible
//! compatible Stats API. The numbers come from a fixed `Fixture` source
//! (so shapes and thresholds are checked exactly) except in the end-to-end
//! tests at the bottom, which read events through the real engine.

use crate::common::*;
use headcount::auth::{AccessStore, secret};
use headcount::dashboard::source::{Fixture, Totals};
use headcount::stats::{Aggregate, Dimension, Point};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::sync::Arc;

const PASSWORD: &str = "correct horse battery";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client")
}

fn fixture() -> Fixture {
    let now = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    Fixture {
        totals: Totals {
            current: Aggregate {
                visitors: 120,
                visits: 150,
                pageviews: 400,
                events: 9,
                views_per_visit: 2.67,
                bounce_rate: 41.2,
                visit_duration: 95.4,
            },
            previous: Aggregate {
                visitors: 100,
                visits: 130,
                pageviews: 300,
                events: 3,
                views_per_visit: 2.31,
                bounce_rate: 45.0,
                visit_duration: 80.0,
            },
            visitor_days: true,
        },
        points: (0..3)
            .map(|i| Point {
                bucket: now + time::Duration::days(i),
                visitors: 40,
                visits: 50,
                pageviews: 130 + i as u64,
            })
            .collect(),
        rows: vec![
            (
                Dimension::Page,
                vec![Fixture::row("/", 80), Fixture::row("/pricing", 30), Fixture::row("/secret-small-page", 2)],
            ),
            (Dimension::Country, vec![Fixture::row("RU", 90), Fixture::row("IS", 1)]),
            (Dimension::Source, vec![Fixture::row("Google", 60), Fixture::row("", 50)]),
        ],
        live: 4,
        filtered: Some(Aggregate { visitors: 3, visits: 3, pageviews: 5, ..Default::default() }),
        requests: Default::default(),
    }
}

struct Web {
    app: App,
    access: AccessStore,
    fixture: Option<Arc<Fixture>>,
    _env: Env,
}

/// Headcount with the fixture as its stats source (or the real engine), and
/// an AccessStore on the same database.
async fn start(tag: &str, with_fixture: bool) -> Web {
    let mut env = Env::new(tag);
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    let fixture = with_fixture.then(|| Arc::new(fixture()));
    let mut opts = env.options();
    opts.stats = fixture.clone().map(|f| f as Arc<dyn headcount::dashboard::source::StatsSource>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = headcount::app::start(listener, env.config(), opts).await.expect("starts");
    let app = App { base: format!("http://{}", running.addr), running, db: env.db() };
    let access = AccessStore::new(headcount::store::client(&env.config().clickhouse), Arc::new(env.clock.clone()));
    Web { app, access, fixture, _env: env }
}

impl Web {
    async fn user(&self, email: &str, sites: &[&str]) {
        let hash = secret::hash_password(PASSWORD).expect("hash");
        let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        self.access.put_user(email, &hash, false, &sites).await.expect("user");
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut r = http().get(self.url(path));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send().await.expect("request")
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)], origin: bool) -> reqwest::Response {
        let mut r =
            http().post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(encode(form));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        if origin {
            r = r.header("origin", &self.app.base);
        }
        r.send().await.expect("request")
    }

    /// Log in; returns the `Cookie` header value.
    async fn login(&self, email: &str) -> String {
        let page = self.get("/login", None).await.text().await.expect("body");
        let t = hidden(&page, "t");
        let r = self
            .post("/login", None, &[("t", &t), ("email", email), ("password", PASSWORD), ("next", "/")], true)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {email}");
        cookie_of(&r, "hc_session").expect("session cookie")
    }

    /// POST a form with exactly these extra headers.
    async fn post_headers(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r =
            http().post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(encode(form));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.expect("request")
    }

    async fn api(&self, path: &str, key: &str) -> (StatusCode, serde_json::Value) {
        let r = http().get(self.url(path)).bearer_auth(key).send().await.expect("request");
        let status = r.status();
        (status, r.json().await.expect("json body"))
    }
}

fn encode(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The value of hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page.find(&needle).unwrap_or_else(|| panic!("no {name} in page:\n{page}")) + needle.len();
    page[start..].split('"').next().expect("value").to_string()
}

/// `name=value` of a Set-Cookie header, for sending back.
fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn set_cookie_header(r: &reqwest::Response) -> String {
    r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn unauthenticated_requests_get_the_login_page() {
    let w = start("dash_anon", true).await;
    for path in [
        "/",
        "/example.com",
        "/example.com?period=7d",
        "/example.com/export.zip",
        "/example.com/export/page.csv",
        "/example.com/shares",
        "/other.org",
    ] {
        let r = w.get(path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let loc = r.headers()["location"].to_str().expect("location").to_string();
        assert!(loc.starts_with("/login?next="), "{path} → {loc}");
        assert!(r.headers().get("set-cookie").is_none(), "{path} sets a cookie");
        let page = w.get(&loc, None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.headers().get("set-cookie").is_none(), "the login page sets no cookie");
        let body = page.text().await.expect("body");
        assert!(body.contains("name=\"password\"") && body.contains("action=\"/login"), "{body}");
    }
    // A path that is no configured site is not found, logged in or not.
    let r = w.get("/nope", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get("set-cookie").is_none());
    let r = w.get("/login?lang=ru", None).await.text().await.expect("body");
    assert!(r.contains("Вход в Headcount"), "Russian login page");
    let r = http().get(w.url("/api/v1/stats/aggregate?site_id=example.com")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.json::<serde_json::Value>().await.expect("json")["error"].as_str().expect("error").contains("API key"));
    // Ingest routes keep priority and never set cookies.
    let r = w.get("/healthz", None).await;
    assert_eq!(r.text().await.expect("body"), "ok\n");
    w.app.stop().await;
}

#[tokio::test]
async fn login_sessions_csrf_and_logout() {
    let w = start("dash_login", true).await;
    w.user("Alice@Example.com", &["example.com"]).await;
    let page = w.get("/login?next=/example.com", None).await.text().await.expect("body");
    let t = hidden(&page, "t");
    let good = [("t", t.as_str()), ("email", "alice@example.com"), ("password", PASSWORD), ("next", "/example.com")];

    // No token, a foreign origin, no origin at all: refused.
    let r = w.post("/login", None, &[("email", "alice@example.com"), ("password", PASSWORD)], true).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = w.post_headers("/login", &good, &[("origin", "https://evil.example")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(w.post("/login", None, &good, false).await.status(), StatusCode::FORBIDDEN);

    // Wrong password.
    let r = w.post("/login", None, &[("t", &t), ("email", "alice@example.com"), ("password", "nope nope")], true).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.expect("body").contains("Wrong e-mail or password"));

    // Right password: a session cookie, HttpOnly + SameSite=Strict, no Secure over plain HTTP.
    let r = w.post("/login", None, &good, true).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/example.com");
    let sc = set_cookie_header(&r);
    assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Strict") && sc.contains("Path=/"), "{sc}");
    assert!(!sc.contains("Secure"), "{sc}");
    let cookie = cookie_of(&r, "hc_session").expect("cookie");
    // Only the hash of the token is stored.
    let token = cookie.trim_start_matches("hc_session=");
    assert_eq!(
        w.app.db.text(&format!("SELECT count() FROM dashboard_sessions WHERE token_hash = '{token}'")).await.trim(),
        "0"
    );
    assert_eq!(
        w.app
            .db
            .text(&format!("SELECT count() FROM dashboard_sessions WHERE token_hash = '{}'", secret::hash_token(token)))
            .await
            .trim(),
        "1"
    );

    // Behind a trusted TLS proxy the cookie is Secure.
    let tls = [
        ("origin", "https://stats.example.com"),
        ("x-forwarded-host", "stats.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let r = w.post_headers("/login", &good, &tls).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie_header(&r).contains("; Secure"), "{}", set_cookie_header(&r));

    let page = w.get("/example.com", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let page = page.text().await.expect("body");
    let csrf = hidden(&page, "csrf");

    // Logout needs the CSRF token.
    assert_eq!(w.post("/logout", Some(&cookie), &[], true).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.post("/logout", Some(&cookie), &[("csrf", "0000")], true).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.post("/logout", Some(&cookie), &[("csrf", &csrf)], false).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.get("/example.com", Some(&cookie)).await.status(), StatusCode::OK, "still logged in");
    let r = w.post("/logout", Some(&cookie), &[("csrf", &csrf)], true).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie_header(&r).contains("Max-Age=0"));
    assert_eq!(w.get("/example.com", Some(&cookie)).await.status(), StatusCode::SEE_OTHER, "the session is over");

    // Expiry follows the clock.
    let cookie = w.login("alice@example.com").await;
    assert_eq!(w.get("/example.com", Some(&cookie)).await.status(), StatusCode::OK);
    w._env.clock.advance(time::Duration::days(8));
    assert_eq!(
        w.get("/example.com", Some(&cookie)).await.status(),
        StatusCode::SEE_OTHER,
        "expired after session_hours"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn logins_are_rate_limited() {
    let w = start("dash_limit", true).await;
    w.user("bob@example.com", &["example.com"]).await;
    let page = w.get("/login", None).await.text().await.expect("body");
    let t = hidden(&page, "t");
    for _ in 0..5 {
        let r = w
            .post("/login", None, &[("t", &t), ("email", "bob@example.com"), ("password", "wrong password")], true)
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is not tried now.
    let r = w.post("/login", None, &[("t", &t), ("email", "bob@example.com"), ("password", PASSWORD)], true).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("set-cookie").is_none());
    w.app.stop().await;
}

#[tokio::test]
async fn a_user_of_one_site_cannot_read_another() {
    let w = start("dash_access", true).await;
    w.user("a@example.com", &["example.com"]).await;
    let cookie = w.login("a@example.com").await;
    assert_eq!(w.get("/example.com", Some(&cookie)).await.status(), StatusCode::OK);
    for path in [
        "/other.org",
        "/other.org?period=7d",
        "/other.org/export.zip",
        "/other.org/export/page.csv",
        "/other.org/shares",
        "/unknown.net",
    ] {
        let r = w.get(path, Some(&cookie)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let page = w.get("/example.com", Some(&cookie)).await.text().await.expect("body");
    let csrf = hidden(&page, "csrf");
    let r = w.post("/other.org/shares", Some(&cookie), &[("csrf", &csrf)], true).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no shares of other sites");
    assert!(w.access.shares(None).await.expect("shares").is_empty());

    // The API: the same key reads its site, not the other.
    let key = w.access.create_api_key("a@example.com", "test").await.expect("key");
    let (s, _) = w.api("/api/v1/stats/aggregate?site_id=example.com", &key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = w.api("/api/v1/stats/aggregate?site_id=other.org", &key).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, _) = w.api("/api/v1/stats/breakdown?site_id=other.org&property=event:page", &key).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = w.api("/api/v1/stats/aggregate?site_id=example.com", "hc_0000").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only the key's hash is stored.
    assert_eq!(w.app.db.text(&format!("SELECT count() FROM api_keys WHERE key_hash = '{key}'")).await.trim(), "0");

    // The fixture never saw a request for the other site.
    let fx = w.fixture.as_ref().expect("fixture");
    assert!(fx.requests.lock().expect("lock").iter().all(|r| r.site == "example.com"));

    // A deleted user's session and key stop working.
    w.access.delete_user("a@example.com").await.expect("delete");
    assert_eq!(w.get("/example.com", Some(&cookie)).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(w.api("/api/v1/stats/aggregate?site_id=example.com", &key).await.0, StatusCode::UNAUTHORIZED);
    w.app.stop().await;
}

#[tokio::test]
async fn shares_need_csrf_and_apply_the_k_threshold() {
    let w = start("dash_share", true).await;
    w.user("c@example.com", &["example.com"]).await;
    let cookie = w.login("c@example.com").await;
    let page = w.get("/example.com/shares", Some(&cookie)).await.text().await.expect("body");
    let csrf = hidden(&page, "csrf");

    // Without the token, or from another origin: refused, nothing created.
    assert_eq!(
        w.post("/example.com/shares", Some(&cookie), &[("label", "x")], true).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.post("/example.com/shares", Some(&cookie), &[("csrf", &csrf)], false).await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(w.access.shares(None).await.expect("shares").is_empty());

    let r = w.post("/example.com/shares", Some(&cookie), &[("csrf", &csrf), ("label", "<b>board</b>")], true).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.expect("body");
    assert!(body.contains("&lt;b&gt;board&lt;/b&gt;"), "label escaped");
    let start = body.find("/share/").expect("link shown");
    let token: String = body[start + 7..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    assert_eq!(token.len(), 64);

    // The shared view: no login, rows under k folded, exports too.
    let r = w.get(&format!("/share/{token}"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("body");
    assert!(html.contains(">/pricing<"), "rows above k are shown");
    assert!(!html.contains("secret-small-page"), "a row under k leaked");
    assert!(!html.contains("Iceland"), "a country under k leaked");
    assert!(html.contains("(other)"));
    assert!(!html.contains("/shares"), "no management links in a shared view");
    let zip = w.get(&format!("/share/{token}/export.zip"), None).await;
    assert_eq!(zip.status(), StatusCode::OK);
    let files = unzip(&zip.bytes().await.expect("zip"));
    let pages = &files.iter().find(|(n, _)| n == "page.csv").expect("page.csv").1;
    assert!(pages.contains("/pricing,30") && pages.contains("(other),2,") && !pages.contains("secret"), "{pages}");
    let csv = w.get(&format!("/share/{token}/export/country.csv"), None).await.text().await.expect("csv");
    assert!(csv.starts_with("country,visitors") && csv.contains("RU,90") && !csv.contains("IS,"), "{csv}");
    // A filter that narrows the shared view below k shows no numbers.
    let html = w.get(&format!("/share/{token}?f=page:/secret-small-page"), None).await.text().await.expect("body");
    assert!(html.contains("Too few visitors"), "filtered small group withheld");

    // Operators' exports apply k as well; their dashboard does not.
    let csv = w.get("/example.com/export/page.csv", Some(&cookie)).await.text().await.expect("csv");
    assert!(!csv.contains("secret-small-page"), "{csv}");
    let html = w.get("/example.com", Some(&cookie)).await.text().await.expect("body");
    assert!(html.contains("secret-small-page"));

    // Revoking needs the token too, then the link is dead.
    let id = w.access.shares(Some("example.com")).await.expect("shares")[0].id.clone();
    assert_eq!(
        w.post(&format!("/example.com/shares/{id}/revoke"), Some(&cookie), &[], true).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(w.get(&format!("/share/{token}"), None).await.status(), StatusCode::OK);
    let r = w.post(&format!("/example.com/shares/{id}/revoke"), Some(&cookie), &[("csrf", &csrf)], true).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(w.get(&format!("/share/{token}"), None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(w.get(&format!("/share/{}", "0".repeat(64)), None).await.status(), StatusCode::NOT_FOUND);
    w.app.stop().await;
}

#[tokio::test]
async fn password_protected_shares() {
    let w = start("dash_sharepw", true).await;
    let hash = secret::hash_password("share secret").expect("hash");
    let (share, token) = w.access.create_share("example.com", &hash, "", "test").await.expect("share");
    let base = format!("/share/{token}");
    let r = w.get(&base, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let page = r.text().await.expect("body");
    assert!(!page.contains("/pricing"), "no data before the password");
    let t = hidden(&page, "t");
    assert_eq!(w.get(&format!("{base}/export.zip"), None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.post(&base, None, &[("t", &t), ("password", "wrong")], true).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.post(&base, None, &[("password", "share secret")], true).await.status(),
        StatusCode::FORBIDDEN,
        "no form token"
    );
    let r = w.post(&base, None, &[("t", &t), ("password", "share secret")], true).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sc = set_cookie_header(&r);
    assert!(sc.starts_with("hc_share=") && sc.contains(&format!("Path={base}")) && sc.contains("HttpOnly"), "{sc}");
    let cookie = cookie_of(&r, "hc_share").expect("cookie");
    let r = w.get(&base, Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("body").contains(">/pricing<"));
    // The share cookie is no operator session.
    assert_eq!(
        w.get("/example.com", Some(&cookie.replace("hc_share", "hc_session"))).await.status(),
        StatusCode::SEE_OTHER
    );
    w.access.revoke_share(&share.id).await.expect("revoke");
    assert_eq!(w.get(&base, Some(&cookie)).await.status(), StatusCode::NOT_FOUND);
    w.app.stop().await;
}

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("zip");
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).expect("entry");
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).expect("utf8");
            (f.name().to_string(), s)
        })
        .collect()
}

#[tokio::test]
async fn plausible_stats_api_shapes() {
    let w = start("dash_api", true).await;
    w.user("api@example.com", &["example.com"]).await;
    let key = w.access.create_api_key("api@example.com", "").await.expect("key");

    let (s, v) = w.api("/api/v1/stats/realtime/visitors?site_id=example.com", &key).await;
    assert_eq!((s, v), (StatusCode::OK, serde_json::json!(4)));

    let (s, v) = w.api("/api/v1/stats/aggregate?site_id=example.com&period=30d&metrics=visitors,pageviews,bounce_rate,visit_duration,views_per_visit&compare=previous_period", &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"]["visitors"], serde_json::json!({"value": 120, "change": 20}));
    assert_eq!(v["results"]["pageviews"]["value"], 400);
    assert_eq!(v["results"]["bounce_rate"], serde_json::json!({"value": 41, "change": -4}));
    assert_eq!(v["results"]["visit_duration"]["value"], 95);
    assert_eq!(v["results"]["views_per_visit"]["value"], 2.67);
    let (_, v) = w.api("/api/v1/stats/aggregate?site_id=example.com", &key).await;
    assert_eq!(v, serde_json::json!({"results": {"visitors": {"value": 120}}}), "default metric, no compare");

    let (s, v) = w.api("/api/v1/stats/timeseries?site_id=example.com&period=7d&metrics=visitors,pageviews", &key).await;
    assert_eq!(s, StatusCode::OK);
    let rows = v["results"].as_array().expect("array");
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0]["date"].as_str().expect("date").len() == 10 && rows[0]["visitors"] == 40 && rows[0]["pageviews"] == 130,
        "{v}"
    );

    let (s, v) = w.api("/api/v1/stats/breakdown?site_id=example.com&period=7d&property=visit:country&metrics=visitors,bounce_rate&limit=1", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!({"results": [{"country": "RU", "visitors": 90, "bounce_rate": 40}]}));
    let (_, v) = w.api("/api/v1/stats/breakdown?site_id=example.com&property=event:page&limit=2&page=2", &key).await;
    assert_eq!(
        v,
        serde_json::json!({"results": [{"page": "/secret-small-page", "visitors": 2}]}),
        "page 2, and no k-threshold for operators' keys"
    );

    // Filters reach the source as values.
    let (s, _) = w
        .api(
            "/api/v1/stats/aggregate?site_id=example.com&filters=visit:source%3D%3DGoogle%3Bevent:page%3D%3D%2Fblog",
            &key,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let last = w.fixture.as_ref().expect("fixture").requests.lock().expect("lock").last().cloned().expect("request");
    assert_eq!(last.filters.len(), 2);
    assert_eq!((last.filters[0].dimension, last.filters[0].value.as_str()), (Dimension::Source, "Google"));

    for (path, needle) in [
        ("/api/v1/stats/aggregate?site_id=example.com&metrics=nonsense", "nonsense"),
        ("/api/v1/stats/aggregate?site_id=example.com&period=5y", "period"),
        ("/api/v1/stats/breakdown?site_id=example.com", "property"),
        ("/api/v1/stats/aggregate?site_id=example.com&filters=visit:country!%3DFR", "!="),
        ("/api/v1/stats/aggregate", "site_id"),
    ] {
        let (s, v) = w.api(path, &key).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v["error"].as_str().expect("error").contains(needle), "{path}: {v}");
    }
    w.app.stop().await;
}

#[tokio::test]
async fn sql_looking_filter_values_are_just_values() {
    let w = start("dash_sqlish", true).await;
    w.user("d@example.com", &["example.com"]).await;
    let cookie = w.login("d@example.com").await;
    let evil = "x' OR 1=1) UNION SELECT password_hash FROM users --";
    let q = form_urlencoded::Serializer::new(String::new()).append_pair("f", &format!("source:{evil}")).finish();
    let r = w.get(&format!("/example.com?{q}"), Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("body");
    assert!(html.contains("x' OR 1=1) UNION SELECT password_hash FROM users --"), "shown as the value it is");
    let fx = w.fixture.as_ref().expect("fixture");
    let last = fx.requests.lock().expect("lock").last().cloned().expect("request");
    assert_eq!(last.filters[0].value, evil);
    w.app.stop().await;
}

// ---- end to end, through the real stats engine -------------------------

/// Events written straight into ClickHouse, as any tool (or an import)
/// could: 12 visitors from Google on `/`, one direct visitor on a page
/// whose path is markup.
async fn seed(w: &Web) {
    let day = headcount::clock::Clock::now(&w._env.clock).date();
    let mut rows = String::new();
    for i in 0..13 {
        let (path, source) = if i < 12 { ("/", "Google") } else { (EVIL_PATH, "") };
        rows.push_str(
            &serde_json::json!({
                "site": "example.com", "ts": format!("{day} 09:{i:02}:00"), "name": "pageview",
                "visitor_id": format!("visitor{i:09}"), "hostname": "example.com", "pathname": path,
                "interactive": 1, "source": source, "country": "RU",
                // What the collector's session map adds: each is a one-page visit.
                "session_id": i + 1, "session_start": format!("{day} 09:{i:02}:00"), "session_visit": 1,
                "session_bounce": 1, "session_entry_page": path, "session_source": source,
            })
            .to_string(),
        );
        rows.push('\n');
    }
    w.app.db.raw(&format!("INSERT INTO events FORMAT JSONEachRow\n{rows}")).await;
}

const EVIL_PATH: &str = "/<script>alert(\"hc\")</script>'\"";

#[tokio::test]
async fn end_to_end_escaping_filters_k_and_api() {
    let w = start("dash_e2e", false).await;
    seed(&w).await;
    w.user("e@example.com", &["example.com"]).await;
    let cookie = w.login("e@example.com").await;

    let html = w.get("/example.com?period=day", Some(&cookie)).await.text().await.expect("body");
    assert!(html.contains("data-metric=\"visitors\">13<"), "13 visitors today");
    assert!(!html.contains("<script>alert"), "markup from the data reached the page");
    assert!(html.contains("&lt;script&gt;alert(&quot;hc&quot;)&lt;/script&gt;'&quot;"), "the path is shown, escaped");
    assert!(html.contains(" Russia</a>"));

    // Filters: by the markup path, by Google, and by a value that looks like SQL.
    let q = |v: &str| {
        form_urlencoded::Serializer::new(String::new()).append_pair("period", "day").append_pair("f", v).finish()
    };
    let html = w
        .get(&format!("/example.com?{}", q(&format!("page:{EVIL_PATH}"))), Some(&cookie))
        .await
        .text()
        .await
        .expect("body");
    assert!(html.contains("data-metric=\"visitors\">1<") && !html.contains("<script>alert"));
    let html = w.get(&format!("/example.com?{}", q("source:Google")), Some(&cookie)).await.text().await.expect("body");
    assert!(html.contains("data-metric=\"visitors\">12<"));
    for sqlish in [
        "page:' OR 1=1 --",
        "page:/') OR ('1'='1",
        "source:Google' UNION SELECT password_hash FROM users --",
        "country:RU\\'; DROP TABLE events; --",
    ] {
        let r = w.get(&format!("/example.com?{}", q(sqlish)), Some(&cookie)).await;
        assert_eq!(r.status(), StatusCode::OK, "{sqlish}");
        let html = r.text().await.expect("body");
        assert!(html.contains("data-metric=\"visitors\">0<"), "{sqlish} matched something");
    }
    assert_eq!(w.app.db.count("site = 'example.com'").await, 13, "the table is intact");

    // A shared link folds the single visitor's page into "(other)"; so do exports.
    let (_, token) = w.access.create_share("example.com", "", "", "test").await.expect("share");
    let html = w.get(&format!("/share/{token}?period=day"), None).await.text().await.expect("body");
    assert!(!html.contains("alert"), "a page of one visitor in a shared link");
    assert!(html.contains("(other)") && html.contains("data-metric=\"visitors\">13<"));
    let csv = w.get("/example.com/export/pages.csv?period=day", Some(&cookie)).await.text().await.expect("csv");
    assert!(csv.contains("\n/,12,") && csv.contains("(other),1,") && !csv.contains("alert"), "{csv}");
    let zip = w.get("/example.com/export.zip?period=day", Some(&cookie)).await.bytes().await.expect("zip");
    let files = unzip(&zip);
    assert!(files.iter().any(|(n, _)| n == "aggregate.csv") && files.iter().all(|(_, c)| !c.contains("alert")));

    // The API sees the same numbers (operators' keys: no k).
    let key = w.access.create_api_key("e@example.com", "").await.expect("key");
    let (_, v) = w.api("/api/v1/stats/aggregate?site_id=example.com&period=day", &key).await;
    assert_eq!(v["results"]["visitors"]["value"], 13, "{v}");
    let (_, v) = w.api("/api/v1/stats/breakdown?site_id=example.com&period=day&property=event:page", &key).await;
    assert_eq!(v["results"][1], serde_json::json!({"page": EVIL_PATH, "visitors": 1}), "{v}");
    w.app.stop().await;
}
