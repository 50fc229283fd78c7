//! HTTP plumbing of the dashboard: responses with the security headers every
//! page gets, cookies, form bodies, and the same-origin check of POSTs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use ipnet::IpNet;
use std::net::SocketAddr;

pub type Resp = Response<Full<Bytes>>;

/// Scripts, styles and images only from Headcount itself; no framing; forms
/// post only to Headcount.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Largest form body accepted.
pub const MAX_FORM: usize = 16 * 1024;

/// `same-origin`, not `no-referrer`: with `no-referrer` browsers send
/// `Origin: null` on form posts, which the same-origin check must refuse.
/// Share tokens in URLs still never leave for other sites.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language, Cookie"));
}

pub fn html(status: StatusCode, body: maud::Markup) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.into_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(r.headers_mut());
    r
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

pub fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    secure_headers(r.headers_mut());
    r
}

/// A download: `content_type`, saved as `filename` (ASCII).
pub fn download(content_type: &'static str, filename: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let safe: String =
        filename.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    secure_headers(h);
    r
}

/// A static asset, cacheable (URLs carry a version).
pub fn asset(content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// `303 See Other` to a local path.
pub fn redirect(location: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(r.headers_mut());
    r
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure over
/// TLS. `max_age` zero deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"))
        .ok()
}

/// Did the request reach us over TLS? Headcount itself speaks plain HTTP,
/// so only a trusted proxy's `X-Forwarded-Proto: https` (or `Forwarded:
/// proto=https`) says so.
pub fn is_https(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    let peer = crate::privacy::ip::normalize(peer.ip());
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return false;
    }
    let xfp = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next_back())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let fwd = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split([';', ',']).any(|p| p.trim().eq_ignore_ascii_case("proto=https")));
    xfp || fwd
}

/// The host the browser addressed (`Host`, or a trusted proxy's `X-Forwarded-Host`).
pub fn host(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<String> {
    let peer = crate::privacy::ip::normalize(peer.ip());
    let forwarded = trusted
        .iter()
        .any(|n| n.contains(&peer))
        .then(|| headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.split(',').next_back())
        .map(str::trim);
    forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// Is a POST same-origin? Its `Origin` (or, failing that, `Referer`) must
/// name the host the request was sent to. A form posted from another site
/// carries that site's origin; one with neither header is refused too.
pub fn same_origin(headers: &HeaderMap, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null")
        .or_else(|| headers.get(header::REFERER).and_then(|v| v.to_str().ok()));
    let Some(Ok(url)) = source.map(url::Url::parse) else {
        return false;
    };
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    authority.eq_ignore_ascii_case(host)
}

/// A request body the dashboard can read (hyper's `Incoming`, or `Full` in tests).
pub trait ReqBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}
impl<B> ReqBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}

/// Read an `application/x-www-form-urlencoded` body (at most [`MAX_FORM`]).
pub async fn read_form<B: ReqBody>(body: B) -> Option<Vec<(String, String)>> {
    let bytes = Limited::new(body, MAX_FORM).collect().await.ok()?.to_bytes();
    Some(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

/// The first value of `name` in a form.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// A local path safe to redirect to after login (no other host, no scheme).
pub fn safe_next(next: &str) -> &str {
    let ok =
        next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.chars().any(char::is_control);
    if ok { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn cookies_are_parsed() {
        let h = headers(&[("cookie", "a=1; hc_session=abc"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, "hc_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn same_origin_posts_only() {
        let h = headers(&[("origin", "http://stats.example.com:8080")]);
        assert!(same_origin(&h, Some("stats.example.com:8080")));
        assert!(!same_origin(&h, Some("stats.example.com")));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example")]), Some("stats.example.com")));
        assert!(same_origin(&headers(&[("referer", "https://stats.example.com/login")]), Some("stats.example.com")));
        assert!(!same_origin(&headers(&[("origin", "null")]), Some("stats.example.com")));
        assert!(!same_origin(&headers(&[]), Some("stats.example.com")));
    }

    #[test]
    fn tls_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let h = headers(&[("x-forwarded-proto", "https")]);
        assert!(is_https("10.1.2.3:5000".parse().expect("addr"), &h, &trusted));
        assert!(!is_https("192.0.2.1:5000".parse().expect("addr"), &h, &trusted));
        assert!(is_https(
            "10.1.2.3:5000".parse().expect("addr"),
            &headers(&[("forwarded", "for=x;proto=https")]),
            &trusted
        ));
    }

    #[test]
    fn redirects_stay_local() {
        assert_eq!(safe_next("/example.com?period=7d"), "/example.com?period=7d");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie("hc_session", "x", "/", 60, true).expect("value");
        assert_eq!(c, "hc_session=x; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
    }
}
