//! What a browser sends, parsed into a [`Beacon`].
//!
//! Two wire formats:
//!
//! * `POST /api/event` — the **Plausible Events API payload, unchanged**, so
//!   a Plausible user switches by changing one URL. Short and long keys
//!   (`n`/`name`, `u`/`url`, `d`/`domain`, `r`/`referrer`, `m`/`meta` or
//!   `p`/`props`, `h`/`hashMode`, `$`/`revenue`, `i`/`interactive`), plus `w`
//!   (viewport width) and `v` (tracker version). `p` may be an object or a
//!   JSON-encoded string (the legacy `plausible-tracker` package sends a
//!   string). The body is parsed as JSON whatever the Content-Type says:
//!   trackers send `text/plain` to avoid a CORS preflight. Without `d`, the
//!   site is the host of `u` (as for the pixel).
//! * Plausible's **engagement** event (`n: "engagement"`, `sd` scroll depth
//!   in percent, `e` engaged milliseconds), sent by Headcount's tracker and
//!   Plausible's when a page is hidden or left. There are no columns for
//!   them: they become the properties [`SCROLL_DEPTH`] and [`ENGAGED_MS`],
//!   and an engagement event is never interactive (it is no visit of its own).
//! * The link events (`Outbound Link: Click`, `File Download`) keep their
//!   `url` property without query string or fragment ([`LINK_EVENTS`]).
//! * `GET /p.gif?d=…&u=…&r=…&n=…` — the no-JavaScript pixel.
//!
//! Parsing is strict about structure (clear 400s naming the problem) and
//! lenient about sizes that do not matter (props beyond the limit are cut).

use serde::Deserialize;
use serde_json::Value;

/// Most custom properties kept per event (Plausible's limit).
pub const MAX_PROPS: usize = 30;
/// Longest property key kept.
pub const MAX_PROP_KEY: usize = 300;
/// Longest property value kept.
pub const MAX_PROP_VALUE: usize = 2000;
/// Longest event name.
pub const MAX_NAME: usize = 120;
/// Most sites one event may be recorded to (`d: "a.com,b.com"`).
pub const MAX_DOMAINS: usize = 10;
/// Name of the engagement event.
pub const ENGAGEMENT: &str = "engagement";
/// Property holding an engagement event's scroll depth (`sd`), 0–100 percent.
pub const SCROLL_DEPTH: &str = "scroll_depth";
/// Property holding an engagement event's engaged time (`e`), milliseconds.
pub const ENGAGED_MS: &str = "engaged_ms";
/// Longest engaged time kept, in milliseconds (a day).
pub const MAX_ENGAGED_MS: f64 = 86_400_000.0;
/// The link events of Plausible's and Headcount's trackers. Their `url`
/// property is stored without query string or fragment, like page URLs:
/// links carry tokens, and Plausible's tracker sends outbound links whole.
pub const LINK_EVENTS: [&str; 2] = ["Outbound Link: Click", "File Download"];

/// A parsed, not yet validated, tracking request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Beacon {
    pub name: String,
    pub url: String,
    pub domains: Vec<String>,
    pub referrer: Option<String>,
    pub props: Vec<(String, String)>,
    pub hash_mode: bool,
    pub revenue: Option<Revenue>,
    pub interactive: bool,
    pub screen_width: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    pub micros: i64,
    pub currency: String,
}

/// A request the client must fix; answered with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("request body is not valid UTF-8")]
    NotUtf8,
    #[error("request body is not a JSON object: {0}")]
    Json(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("invalid field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: &'static str },
}

#[derive(Deserialize)]
struct Wire {
    #[serde(alias = "name")]
    n: Option<String>,
    #[serde(alias = "url")]
    u: Option<String>,
    #[serde(alias = "domain")]
    d: Option<String>,
    #[serde(alias = "referrer")]
    r: Option<String>,
    #[serde(alias = "meta", alias = "p", alias = "props")]
    m: Option<Value>,
    #[serde(alias = "hashMode")]
    h: Option<Value>,
    #[serde(rename = "$", alias = "revenue")]
    revenue: Option<Value>,
    #[serde(alias = "interactive")]
    i: Option<Value>,
    w: Option<Value>,
    #[allow(dead_code)]
    v: Option<Value>,
    sd: Option<Value>,
    e: Option<Value>,
}

/// Parse a Plausible Events API body.
pub fn from_json(body: &[u8]) -> Result<Beacon, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    let wire: Wire = serde_json::from_str(text).map_err(|e| PayloadError::Json(e.to_string()))?;
    let name = event_name(required(wire.n, "n")?)?;
    let url = required(wire.u, "u")?;
    let domains = match wire.d.filter(|d| !d.trim().is_empty()) {
        Some(d) => domains(&d)?,
        None => domains(&host_of(&url).ok_or(PayloadError::Missing("d"))?)?,
    };
    let mut props = props(wire.m)?;
    engagement(&mut props, wire.sd.as_ref(), wire.e.as_ref())?;
    if LINK_EVENTS.contains(&name.as_str()) {
        for (_, v) in props.iter_mut().filter(|(k, _)| k == "url") {
            v.truncate(v.find(['?', '#']).unwrap_or(v.len()));
        }
    }
    Ok(Beacon {
        interactive: name != ENGAGEMENT && wire.i.as_ref().map(|v| truthy(Some(v))).unwrap_or(true),
        name,
        url,
        domains,
        referrer: wire.r.filter(|r| !r.is_empty()),
        props,
        hash_mode: truthy(wire.h.as_ref()),
        revenue: wire.revenue.map(revenue).transpose()?,
        screen_width: width(wire.w.as_ref()),
    })
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string))
}

/// Put `sd` and `e` first among the props (so the props limit never cuts
/// them), as whole numbers: depth clamped to 0–100, time to a day.
fn engagement(props: &mut Vec<(String, String)>, sd: Option<&Value>, e: Option<&Value>) -> Result<(), PayloadError> {
    let number = |v: &Value, field, reason| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|f: &f64| f.is_finite())
            .ok_or(PayloadError::Invalid { field, reason })
    };
    let mut metrics = Vec::new();
    if let Some(v) = sd.filter(|v| !v.is_null()) {
        let depth = number(v, "sd", "scroll depth must be a number (percent)")?.clamp(0.0, 100.0).round();
        metrics.push((SCROLL_DEPTH.to_string(), (depth as u8).to_string()));
    }
    if let Some(v) = e.filter(|v| !v.is_null()) {
        let ms = number(v, "e", "engaged time must be a number (milliseconds)")?.clamp(0.0, MAX_ENGAGED_MS).round();
        metrics.push((ENGAGED_MS.to_string(), (ms as u64).to_string()));
    }
    if !metrics.is_empty() {
        props.retain(|(k, _)| k != SCROLL_DEPTH && k != ENGAGED_MS);
        metrics.append(props);
        metrics.truncate(MAX_PROPS);
        *props = metrics;
    }
    Ok(())
}

/// Parse the pixel's query string. `u` falls back to the `Referer` header
/// (the page embedding the `<img>`), `d` to that URL's host.
pub fn from_pixel_query(query: &str, referer_header: Option<&str>) -> Result<Beacon, PayloadError> {
    let mut b = Beacon { name: "pageview".into(), interactive: true, ..Beacon::default() };
    let mut domain = None;
    let mut props_raw = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode_component(v)?;
        match k {
            "d" | "domain" => domain = Some(v),
            "u" | "url" => b.url = v,
            "r" | "referrer" => b.referrer = Some(v).filter(|r| !r.is_empty()),
            "n" | "name" => b.name = v,
            "p" | "props" => props_raw = Some(Value::String(v)),
            "h" => b.hash_mode = v == "1" || v == "true",
            "w" => b.screen_width = v.parse::<u32>().map(|w| w.min(u16::MAX as u32) as u16).unwrap_or(0),
            _ => {}
        }
    }
    if b.url.is_empty() {
        b.url = referer_header.unwrap_or_default().to_string();
    } else if b.referrer.is_none() {
        // Without an explicit `r`, the Referer header is the best referrer
        // we have; when it is the page itself it is dropped as a self-referral.
        b.referrer = referer_header.filter(|r| !r.is_empty() && *r != b.url).map(str::to_string);
    }
    if b.url.is_empty() {
        return Err(PayloadError::Missing("u"));
    }
    let domain = match domain {
        Some(d) if !d.is_empty() => d,
        _ => host_of(&b.url).ok_or(PayloadError::Missing("d"))?,
    };
    b.domains = domains(&domain)?;
    b.name = event_name(std::mem::take(&mut b.name))?;
    b.interactive = b.name != ENGAGEMENT;
    b.props = props(props_raw)?;
    Ok(b)
}

/// One `application/x-www-form-urlencoded` value: `+` is a space, `%XY`
/// the byte 0xXY, a `%` not followed by two hex digits itself (as the
/// `percent-encoding` crate reads it); the bytes must be UTF-8.
///
/// Hand-written rather than `percent_encoding::percent_decode_str`: that
/// grows its output a byte at a time (a few `realloc`s per URL, 2–3 % of a
/// pixel request's CPU in the profile), and `+` needed a second pass. Here
/// a value without escapes is one copy, any other one allocation of the
/// input's length — decoding never makes a value longer.
fn decode_component(v: &str) -> Result<String, PayloadError> {
    let bytes = v.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(v.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = match (b, bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[h, l])) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(x) => {
                out.push(x);
                i += 3;
            }
            None => {
                out.push(if b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| PayloadError::NotUtf8)
}

fn hex(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|x| x as u8)
}

fn required(v: Option<String>, field: &'static str) -> Result<String, PayloadError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(PayloadError::Missing(field)),
    }
}

fn event_name(name: String) -> Result<String, PayloadError> {
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(PayloadError::Missing("n"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(PayloadError::Invalid { field: "n", reason: "event name longer than 120 characters" });
    }
    if name.chars().any(char::is_control) {
        return Err(PayloadError::Invalid { field: "n", reason: "event name contains control characters" });
    }
    Ok(name)
}

fn domains(d: &str) -> Result<Vec<String>, PayloadError> {
    let list: Vec<String> = d.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if list.is_empty() {
        return Err(PayloadError::Missing("d"));
    }
    if list.len() > MAX_DOMAINS {
        return Err(PayloadError::Invalid { field: "d", reason: "more than 10 domains" });
    }
    Ok(list)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

fn width(v: Option<&Value>) -> u16 {
    v.and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .filter(|w| w.is_finite() && *w >= 0.0)
        .map(|w| w.min(u16::MAX as f64) as u16)
        .unwrap_or(0)
}

fn clip(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

fn props(m: Option<Value>) -> Result<Vec<(String, String)>, PayloadError> {
    let obj = match m {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(o)) => o,
            Ok(Value::Null) => return Ok(Vec::new()),
            _ => {
                return Err(PayloadError::Invalid {
                    field: "p",
                    reason: "props must be an object or a JSON-encoded object",
                });
            }
        },
        Some(_) => {
            return Err(PayloadError::Invalid {
                field: "p",
                reason: "props must be an object or a JSON-encoded object",
            });
        }
    };
    let mut out = Vec::with_capacity(obj.len().min(MAX_PROPS));
    for (k, v) in obj {
        if out.len() >= MAX_PROPS {
            break;
        }
        let value = match v {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(PayloadError::Invalid {
                    field: "p",
                    reason: "property values must be strings, numbers or booleans",
                });
            }
        };
        if k.is_empty() || value.is_empty() {
            continue;
        }
        out.push((clip(&k, MAX_PROP_KEY), clip(&value, MAX_PROP_VALUE)));
    }
    Ok(out)
}

fn revenue(v: Value) -> Result<Revenue, PayloadError> {
    const BAD: PayloadError = PayloadError::Invalid {
        field: "$",
        reason: "revenue must be {\"amount\": number, \"currency\": \"ISO code\"}",
    };
    let obj = match v {
        Value::Object(o) => o,
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(o)) => o,
            _ => return Err(BAD),
        },
        _ => return Err(BAD),
    };
    let amount = match obj.get("amount") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|a| a.is_finite() && a.abs() < 9.0e12)
    .ok_or(BAD)?;
    let currency = obj.get("currency").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(BAD);
    }
    Ok(Revenue { micros: (amount * 1_000_000.0).round() as i64, currency: currency.to_ascii_uppercase() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys() {
        let short =
            from_json(br#"{"n":"pageview","u":"https://a.com/x","d":"a.com","r":null,"w":1280,"h":1}"#).expect("ok");
        let long = from_json(
            br#"{"name":"pageview","url":"https://a.com/x","domain":"a.com","referrer":null,"w":1280,"hashMode":true}"#,
        )
        .expect("ok");
        assert_eq!(short, long);
        assert_eq!(short.screen_width, 1280);
        assert!(short.hash_mode && short.interactive);
    }

    #[test]
    fn props_as_object_or_string() {
        let obj = from_json(
            br#"{"n":"Signup","u":"https://a.com/","d":"a.com","p":{"plan":"pro","seats":3,"trial":true,"none":null}}"#,
        )
        .expect("ok");
        let string = from_json(
            br#"{"n":"Signup","u":"https://a.com/","d":"a.com","p":"{\"plan\":\"pro\",\"seats\":3,\"trial\":true}"}"#,
        )
        .expect("ok");
        let meta =
            from_json(br#"{"n":"Signup","u":"https://a.com/","d":"a.com","m":{"plan":"pro","seats":3,"trial":true}}"#)
                .expect("ok");
        let want = vec![("plan".into(), "pro".into()), ("seats".into(), "3".into()), ("trial".into(), "true".into())];
        assert_eq!(obj.props, want);
        assert_eq!(string.props, want);
        assert_eq!(meta.props, want);
    }

    #[test]
    fn revenue_and_interactive() {
        let b = from_json(
            br#"{"n":"Purchase","u":"https://a.com/","d":"a.com","$":{"amount":"19.99","currency":"eur"},"i":false}"#,
        )
        .expect("ok");
        assert_eq!(b.revenue, Some(Revenue { micros: 19_990_000, currency: "EUR".into() }));
        assert!(!b.interactive);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&[u8], PayloadError)] = &[
            (b"\xff\xfe", PayloadError::NotUtf8),
            (br#"{"u":"https://a.com","d":"a.com"}"#, PayloadError::Missing("n")),
            (br#"{"n":"pageview","d":"a.com"}"#, PayloadError::Missing("u")),
            (br#"{"n":"pageview","u":"not a url"}"#, PayloadError::Missing("d")),
            (
                br#"{"n":"pageview","u":"https://a.com","d":"a.com","p":[1]}"#,
                PayloadError::Invalid { field: "p", reason: "props must be an object or a JSON-encoded object" },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&from_json(body).expect_err("invalid"), want, "{}", String::from_utf8_lossy(body));
        }
        assert!(matches!(from_json(b"not json"), Err(PayloadError::Json(_))));
        assert!(matches!(from_json(b"[1,2]"), Err(PayloadError::Json(_))));
        assert!(matches!(from_json(br#"{"n":5,"u":"x","d":"a"}"#), Err(PayloadError::Json(_))));
    }

    #[test]
    fn domain_defaults_to_the_page_host() {
        let b = from_json(br#"{"n":"pageview","u":"https://www.a.com/x"}"#).expect("ok");
        assert_eq!(b.domains, vec!["www.a.com"]);
    }

    #[test]
    fn engagement_becomes_props_and_is_not_interactive() {
        // As Plausible's tracker sends it, and as Headcount's does (float depth).
        let plausible =
            from_json(br#"{"n":"engagement","sd":57,"d":"a.com","u":"https://a.com/","p":{"k":"v"},"e":4200,"v":36}"#)
                .expect("ok");
        assert_eq!(
            plausible.props,
            vec![("scroll_depth".into(), "57".into()), ("engaged_ms".into(), "4200".into()), ("k".into(), "v".into())]
        );
        assert!(!plausible.interactive);
        let ours =
            from_json(br#"{"u":"https://a.com/","sd":133.7,"e":-5,"n":"engagement","h":false,"w":1280}"#).expect("ok");
        assert_eq!(ours.props, vec![("scroll_depth".into(), "100".into()), ("engaged_ms".into(), "0".into())]);
        let huge = from_json(br#"{"n":"engagement","u":"https://a.com/","e":1e300}"#).expect("ok");
        assert_eq!(huge.props, vec![("engaged_ms".into(), "86400000".into())]);
        assert_eq!(
            from_json(br#"{"n":"engagement","u":"https://a.com/","sd":"deep"}"#),
            Err(PayloadError::Invalid { field: "sd", reason: "scroll depth must be a number (percent)" })
        );
        // A full set of props never pushes the engagement metrics out.
        let many: serde_json::Map<String, Value> = (0..40).map(|i| (format!("k{i}"), Value::from("v"))).collect();
        let body = serde_json::json!({"n":"engagement","u":"https://a.com","sd":10,"e":1,"p":many}).to_string();
        let b = from_json(body.as_bytes()).expect("ok");
        assert_eq!(b.props.len(), MAX_PROPS);
        assert_eq!(b.props[0].0, SCROLL_DEPTH);
        assert_eq!(b.props[1].0, ENGAGED_MS);
    }

    #[test]
    fn link_urls_lose_query_and_fragment() {
        let b = from_json(
            br#"{"n":"Outbound Link: Click","u":"https://a.com/","p":{"url":"https://b.org/x?token=s3cret#frag"}}"#,
        )
        .expect("ok");
        assert_eq!(b.props, vec![("url".into(), "https://b.org/x".into())]);
        let custom =
            from_json(br#"{"n":"Shared","u":"https://a.com/","p":{"url":"https://b.org/x?q=1"}}"#).expect("ok");
        assert_eq!(custom.props, vec![("url".into(), "https://b.org/x?q=1".into())]);
    }

    #[test]
    fn props_are_bounded() {
        let many: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("k{i}"), Value::from("v".repeat(5000)))).collect();
        let body = serde_json::json!({"n":"x","u":"https://a.com","d":"a.com","p":many}).to_string();
        let b = from_json(body.as_bytes()).expect("ok");
        assert_eq!(b.props.len(), MAX_PROPS);
        assert!(b.props.iter().all(|(_, v)| v.len() == MAX_PROP_VALUE));
    }

    #[test]
    fn pixel_values_decode_as_the_percent_encoding_crate_reads_them() {
        // Escapes upper and lower case, multi-byte UTF-8, `%` not followed
        // by two hex digits (kept as is), at the end, `+` (a space), and
        // `%2B` (a real plus).
        for v in [
            "",
            "plain",
            "https%3A%2F%2Fa.com%2Fp%3Fq%3D1",
            "%e2%82%ac%E2%82%AC",
            "%",
            "a%",
            "a%4",
            "%zz%4g%%41",
            "100%",
            "%2",
            "a+b%2Bc",
            "+++",
            "%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82",
            "%41%42%43",
        ] {
            let expected = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| PayloadError::NotUtf8);
            assert_eq!(decode_component(v), expected, "{v:?}");
        }
        assert_eq!(decode_component("a+b%2Bc").as_deref(), Ok("a b+c"));
        assert_eq!(decode_component("%e2%82%ac").as_deref(), Ok("€"));
        assert_eq!(decode_component("%e2%82"), Err(PayloadError::NotUtf8));
        assert_eq!(decode_component("%FF"), Err(PayloadError::NotUtf8));
    }

    #[test]
    fn pixel_query() {
        let b = from_pixel_query(
            "d=a.com&u=https%3A%2F%2Fa.com%2Fp%3Futm_source%3Dx&r=https%3A%2F%2Fgoogle.com%2F&n=Download",
            None,
        )
        .expect("ok");
        assert_eq!(b.domains, vec!["a.com"]);
        assert_eq!(b.url, "https://a.com/p?utm_source=x");
        assert_eq!(b.referrer.as_deref(), Some("https://google.com/"));
        assert_eq!(b.name, "Download");

        let from_header = from_pixel_query("", Some("https://a.com/page")).expect("ok");
        assert_eq!(from_header.url, "https://a.com/page");
        assert_eq!(from_header.domains, vec!["a.com"]);
        assert_eq!(from_header.name, "pageview");

        assert_eq!(from_pixel_query("d=a.com", None), Err(PayloadError::Missing("u")));
        assert_eq!(from_pixel_query("d=a.com&u=%FF%FE", None), Err(PayloadError::NotUtf8));
    }

    /// Found by `tests/fuzz.rs`: `n=engagement` on the pixel made an
    /// interactive engagement event, which the JSON API never does.
    #[test]
    fn pixel_engagement_is_not_interactive() {
        let b = from_pixel_query("n=engagement&u=https%3A%2F%2Fa.com%2F", None).expect("ok");
        assert!(!b.interactive);
        assert!(from_pixel_query("n=Signup&u=https%3A%2F%2Fa.com%2F", None).expect("ok").interactive);
    }
}
