//! Fuzz tests of everything that parses request data before it is dropped:
//! the payload parsers, page URLs and referrers (with source classification
//! and the spam check), User-Agents and the bot scan, and the client address
//! behind trusted proxies.
//!
//! Each `#[test]` is one target: a proptest strategy that mixes random bytes
//! with structure-aware inputs (valid payloads with mutated fields, URLs with
//! odd schemes, escapes, IDNA hosts and huge lengths, header lists of forged
//! and appended proxy hops, real User-Agents mutated), run through a driver
//! that stops after `HEADCOUNT_FUZZ_CASES` cases (default 2,000, so
//! `make test` stays fast) or, when `HEADCOUNT_FUZZ_SECONDS` is set, when
//! that many seconds have passed. `HEADCOUNT_FUZZ_SEED` replays a run (the
//! seed is printed with every report and failure). `scripts/fuzz.sh SECONDS`
//! runs every target for a time budget in an optimized build.
//!
//! Every case checks what the code promises, not only that it does not panic:
//! size limits of the parsed payload, paths that start with `/`, no secret
//! from a query string, user info or unrequested fragment in what is kept, a
//! client address that is never a hop a client could forge, error messages of
//! bounded length that never echo the request's data, cache answers equal to
//! fresh parses. And every call runs under a counting allocator
//! ([`allocation_counter`], per thread): its peak of live heap bytes must stay
//! under a fixed base plus a small multiple of the input's length — the
//! inputs that the server already bounds (URLs, User-Agents) must not cost
//! more when they are longer than that bound.

use allocation_counter::AllocationInfo;
use headcount::enrich::source::{BUILTIN_SPAM, Channel, Referrers};
use headcount::enrich::ua::{MAX_FIELD_LEN, MAX_UA_LEN, UaInfo, UaParser};
use headcount::enrich::{bots, url};
use headcount::ingest::client_ip::client_ip;
use headcount::ingest::payload::{
    self, Beacon, ENGAGED_MS, ENGAGEMENT, LINK_EVENTS, MAX_DOMAINS, MAX_ENGAGED_MS, MAX_NAME, MAX_PROP_KEY,
    MAX_PROP_VALUE, MAX_PROPS, PayloadError, SCROLL_DEPTH,
};
use headcount::ingest::places;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use std::cell::Cell;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------

/// Cases per target when neither budget variable is set.
const DEFAULT_CASES: u64 = 2_000;
/// Cases per proptest runner; a time budget is checked between chunks.
const CHUNK: u64 = 250;

/// Run `check` on values of `strategy` until the budget is spent. Panics
/// with the seed and the shrunk input on the first failing case.
fn fuzz<S>(target: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let deadline = env("HEADCOUNT_FUZZ_SECONDS").map(|s| {
        let secs: f64 = s.trim().parse().expect("HEADCOUNT_FUZZ_SECONDS: a number of seconds");
        Instant::now() + Duration::from_secs_f64(secs.max(0.0))
    });
    let max_cases = match env("HEADCOUNT_FUZZ_CASES") {
        Some(n) => n.trim().parse().expect("HEADCOUNT_FUZZ_CASES: a whole number"),
        None if deadline.is_some() => u64::MAX,
        None => DEFAULT_CASES,
    };
    let seed = match env("HEADCOUNT_FUZZ_SEED") {
        Some(s) => s.trim().parse().expect("HEADCOUNT_FUZZ_SEED: a whole number"),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed),
    };
    let started = Instant::now();
    PEAKS.with(|p| p.set((0, 0.0)));
    let (mut cases, mut chunk) = (0u64, 0u64);
    while cases < max_cases && deadline.is_none_or(|d| Instant::now() < d) {
        let n = (max_cases - cases).min(CHUNK);
        let config = Config {
            cases: n as u32,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed.wrapping_add(chunk)),
            max_shrink_iters: 10_000,
            ..Config::default()
        };
        match TestRunner::new(config).run(&strategy, &check) {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                let shown = format!("{input:#?}");
                let cut = shown.char_indices().nth(4000).map_or(shown.len(), |(i, _)| i);
                panic!(
                    "fuzz {target}: failed after {cases} cases (HEADCOUNT_FUZZ_SEED={seed}): {why}\n\
                     shrunk input ({} bytes of Debug, first 4000 chars):\n{}",
                    shown.len(),
                    &shown[..cut]
                );
            }
            Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted (HEADCOUNT_FUZZ_SEED={seed}): {why}"),
        }
        cases += n;
        chunk += 1;
    }
    let (peak, share) = PEAKS.with(Cell::get);
    eprintln!(
        "fuzz-report target={target} cases={cases} seconds={:.1} seed={seed} peak_heap_max={peak} \
         peak_of_bound_max={:.0}%",
        started.elapsed().as_secs_f64(),
        share * 100.0
    );
}

/// `f()` and the heap it used on this thread while it ran.
fn measured<T>(f: impl FnOnce() -> T) -> (T, AllocationInfo) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    (out.expect("the measured closure ran"), info)
}

/// A peak-heap budget: `base` bytes plus `per_byte` per byte of input.
#[derive(Clone, Copy)]
struct Bound {
    base: u64,
    per_byte: u64,
}

thread_local! {
    /// Largest peak seen by this thread's target, and its largest share of
    /// the bound, for the report.
    static PEAKS: Cell<(u64, f64)> = const { Cell::new((0, 0.0)) };
}

impl Bound {
    fn check(self, what: &str, info: &AllocationInfo, input_len: usize) -> Result<(), TestCaseError> {
        let limit = self.base + self.per_byte * input_len as u64;
        PEAKS.with(|p| {
            let (peak, share) = p.get();
            p.set((peak.max(info.bytes_max), share.max(info.bytes_max as f64 / limit as f64)));
        });
        prop_assert!(
            info.bytes_max <= limit,
            "{what}: peak heap {} bytes > {} + {} x {input_len} input bytes = {limit} ({info:?})",
            info.bytes_max,
            self.base,
            self.per_byte
        );
        Ok(())
    }
}

// Peak-heap budgets, per call. The largest peaks in 60-second runs of
// `scripts/fuzz.sh` reach 78 % of the client-address bound (its worst case:
// a hop per byte), 56 % of the JSON one and at most 25 % of the others.
// JSON trees cost tens of bytes per input byte (a `Value` is 32 bytes, map
// nodes and vectors over-allocate); a pixel query costs a copy per value.
const JSON_BOUND: Bound = Bound { base: 16 * 1024, per_byte: 48 };
const PIXEL_BOUND: Bound = Bound { base: 16 * 1024, per_byte: 24 };
/// Page URL and referrer: only the first `max_len` bytes count (longer
/// ones are refused before any work). The most expensive input found is a
/// host of many empty labels (`1.......`): the `url` crate's IPv4 parser
/// keeps a 16-byte slice per label, ~42 bytes per input byte with the
/// vector's growth, ~63 for a referrer (IDNA runs too); linear, so at most
/// ~130 KB at the default 2,000-byte limit.
const URL_BOUND: Bound = Bound { base: 16 * 1024, per_byte: 96 };
/// A User-Agent parse costs the same whatever the string (at most
/// [`MAX_UA_LEN`] bytes are ever looked at), so no per-byte allowance. The
/// regex engine's lazy caches are created on a thread's first parses.
const UA_BOUND: Bound = Bound { base: 8 * 1024 * 1024, per_byte: 0 };
/// What the parser may keep across all calls: the result cache (bounded by
/// its item capacity, each key at most [`MAX_UA_LEN`] bytes) plus the regex
/// engine's lazy DFA caches, one set per thread, each bounded per regex. In
/// a release build they level off near 40 MB: 30 MB after 80,000 random
/// User-Agents, 39 MB after 1.3 million, 40 MB after 3 million.
const UA_RETAINED_MAX: i64 = 64 * 1024 * 1024;
/// One vector of parsed hops per header list: a hop (17 bytes) per input
/// byte at worst (`,,,`), three times while the vector grows (old and new
/// buffer are both live).
const IP_BOUND: Bound = Bound { base: 1024, per_byte: 64 };
/// Error messages are answered to the client: short, whatever the input.
const MAX_ERROR_LEN: usize = 200;

/// A value that marks request data which must never be kept or echoed:
/// query parameters that are not campaign tags, user info, fragments when
/// hash routing is off, and the client's address in payload fields.
const SECRET: &str = "SeCrEtQ7zK";
const FRAGMENT_SECRET: &str = "FrAgMeNtW3x";
const SECRET_IP: &str = "203.0.113.77";

// ---------------------------------------------------------------------------
// Shared input pieces.
// ---------------------------------------------------------------------------

/// Pieces that stress parsers: escapes, quotes, separators, controls,
/// surrogates, bidi overrides, long runs.
const NASTY: &[&str] = &[
    "",
    " ",
    "\t",
    "\0",
    "\r\n",
    "\u{7f}",
    "\u{202e}",
    "\u{feff}",
    "\u{10ffff}",
    "привет",
    "例え",
    "🙂",
    "%",
    "%2",
    "%zz",
    "%FF%FE",
    "%C3%28",
    "%D0%BF%D1%80%D0%B8",
    "%00",
    "%2F%2e%2E",
    "+",
    "&",
    "=",
    "?",
    "#",
    ",",
    ";",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    "null",
    "1e400",
    "-0",
    "NaN",
    "..",
    "//",
    "@",
    "[::1]",
    "xn--",
];

fn nasty() -> impl Strategy<Value = String> {
    select(NASTY).prop_map(str::to_string)
}

/// Short text from a mix of plain and nasty pieces.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ._~/-]{0,24}",
        2 => proptest::collection::vec(prop_oneof!["[a-z0-9]{0,6}", nasty()], 0..6).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => (nasty(), 1usize..3000).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// A valid-looking page URL.
fn page_like() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://example.com/".to_string()),
        "https://(www\\.)?example\\.(com|org)(/[a-z0-9%._-]{0,12}){0,4}(\\?[a-z_]{1,10}=[a-z0-9]{0,8})?(#[a-z/]{0,8})?",
        Just(format!("https://example.com/reset?token={SECRET}&utm_source=news")),
        Just("https://пример.рф/путь?utm_source=почта".to_string()),
        Just("not a url".to_string()),
        Just("/relative/path".to_string()),
        Just("data:text/html,hi".to_string()),
        text(),
    ]
}

/// Insert, delete, replace or duplicate bytes: inputs near valid ones.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Replace(Index, u8),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation(pieces: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), prop_oneof![select(pieces).prop_map(|s| s.as_bytes().to_vec()), select(NASTY).prop_map(|s| s.as_bytes().to_vec()), proptest::collection::vec(any::<u8>(), 1..8)])
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::Insert(i, b) => {
                let p = at(i, bytes.len());
                bytes.splice(p..p, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let p = at(i, bytes.len());
                let end = (p + n).min(bytes.len());
                bytes.drain(p..end);
            }
            Mutation::Replace(i, b) if !bytes.is_empty() => {
                let p = i.index(bytes.len());
                bytes[p] = *b;
            }
            Mutation::Replace(..) => {}
            Mutation::Duplicate(i, n) => {
                let p = at(i, bytes.len());
                let end = (p + n).min(bytes.len());
                let copy = bytes[p..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// Payloads.
// ---------------------------------------------------------------------------

const JSON_KEYS: &[&str] = &[
    "n",
    "name",
    "u",
    "url",
    "d",
    "domain",
    "r",
    "referrer",
    "m",
    "meta",
    "p",
    "props",
    "h",
    "hashMode",
    "$",
    "revenue",
    "i",
    "interactive",
    "w",
    "v",
    "sd",
    "e",
];

const JSON_PIECES: &[&str] = &[
    "\"n\":\"pageview\",",
    "\"u\":\"https://a.com/\",",
    "\"n\":\"engagement\",\"sd\":50,\"e\":1000,",
    "\"p\":{\"url\":\"https://b.org/x?t=1#f\"},",
    "\"$\":{\"amount\":\"9.99\",\"currency\":\"EUR\"},",
    "\"p\":\"{\\\"a\\\":1}\",",
    "\"d\":\"a.com,b.com\",",
    "\"w\":1e309,",
    "\"n\":",
    ",\"n\":\"x\"",
    "\"\\ud800\"",
    "1e400",
    "-1e-400",
    "18446744073709551616",
];

fn json_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        select(vec![0.0, -0.0, 0.5, 99.5, 100.4, 133.7, 1e300, -1e300, 5e-324, 86_400_000.5, 8.99e12, 9e12, 9.3e12])
            .prop_map(serde_json::Value::from),
    ]
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text(),
        2 => page_like(),
        1 => Just(format!("https://{SECRET_IP}/?ip={SECRET_IP}")),
        1 => select(vec!["pageview", "engagement", "Outbound Link: Click", "File Download", "404", "EUR", "eur", "1", "true", "{}", "null", "{\"a\":\"b\"}", "{\"amount\":1,\"currency\":\"USD\"}", "[1]"]).prop_map(str::to_string),
        1 => (1usize..200).prop_map(|n| "n".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        json_number(),
        json_string().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            proptest::collection::vec((json_string(), inner), 0..8)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object written by hand, so keys may repeat.
fn json_object() -> impl Strategy<Value = String> {
    let key = prop_oneof![4 => select(JSON_KEYS).prop_map(str::to_string), 1 => json_string()];
    let value = prop_oneof![
        3 => json_string().prop_map(serde_json::Value::String),
        2 => json_value(),
        1 => proptest::collection::vec(("[a-z]{0,8}", json_string()), 0..40)
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect())),
    ];
    // A plausible event, then extra or replaced fields.
    let base = (
        select(vec!["pageview", "engagement", "Outbound Link: Click", "File Download", "Signup", " x ", ""]),
        page_like(),
        proptest::option::of(select(vec!["a.com", "example.com", " ", "a.com,b.com", ",,,", "a,b,c,d,e,f,g,h,i,j,k"])),
    );
    (base, proptest::collection::vec((key, value), 0..10)).prop_map(|((n, u, d), extra)| {
        let mut fields =
            vec![("n".to_string(), serde_json::Value::from(n)), ("u".to_string(), serde_json::Value::from(u))];
        if let Some(d) = d {
            fields.push(("d".to_string(), serde_json::Value::from(d)));
        }
        fields.extend(extra);
        let body: Vec<String> =
            fields.iter().map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), v)).collect();
        format!("{{{}}}", body.join(","))
    })
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => json_object().prop_map(String::into_bytes),
        4 => (json_object(), proptest::collection::vec(mutation(JSON_PIECES), 1..6))
            .prop_map(|(o, m)| mutate(o.into_bytes(), &m)),
        2 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => any::<String>().prop_map(String::into_bytes),
        // Nesting beyond serde_json's recursion limit, directly and inside
        // a JSON-encoded `p`.
        1 => (1usize..400, any::<bool>()).prop_map(|(depth, in_string)| {
            let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if in_string {
                format!(r#"{{"n":"x","u":"https://a.com/","p":{}}}"#, serde_json::Value::from(format!("{{\"a\":{nest}}}")))
            } else {
                format!(r#"{{"n":"x","u":"https://a.com/","p":{{"a":{nest}}}}}"#)
            }
            .into_bytes()
        }),
        // Many and long properties.
        1 => (0usize..100, 0usize..2500).prop_map(|(n, len)| {
            let props: serde_json::Map<String, serde_json::Value> =
                (0..n).map(|i| (format!("k{i}{}", "k".repeat(len % 400)), serde_json::Value::from("v".repeat(len)))).collect();
            serde_json::json!({"n": "engagement", "u": "https://a.com/", "sd": 10, "e": 5, "p": props}).to_string().into_bytes()
        }),
    ]
}

/// What every parsed beacon promises, whichever wire format it came from.
fn check_beacon(b: &Beacon) -> Result<(), TestCaseError> {
    prop_assert!(!b.name.is_empty() && b.name == b.name.trim(), "name {:?}", b.name);
    prop_assert!(b.name.chars().count() <= MAX_NAME, "name longer than {MAX_NAME} characters");
    prop_assert!(!b.name.chars().any(char::is_control), "control character in name {:?}", b.name);
    // Blank is refused later, by the URL parser (the pixel keeps `u=+++`).
    prop_assert!(!b.url.is_empty(), "empty url");
    prop_assert!((1..=MAX_DOMAINS).contains(&b.domains.len()), "{} domains", b.domains.len());
    for d in &b.domains {
        prop_assert!(!d.is_empty() && d == d.trim() && !d.contains(','), "domain {d:?}");
    }
    prop_assert!(b.referrer.as_deref() != Some(""), "empty referrer kept");
    prop_assert!(b.props.len() <= MAX_PROPS, "{} props", b.props.len());
    for (k, v) in &b.props {
        prop_assert!(!k.is_empty() && k.len() <= MAX_PROP_KEY, "prop key of {} bytes", k.len());
        prop_assert!(!v.is_empty() && v.len() <= MAX_PROP_VALUE, "prop value of {} bytes", v.len());
    }
    for key in [SCROLL_DEPTH, ENGAGED_MS] {
        prop_assert!(b.props.iter().filter(|(k, _)| k == key).count() <= 1, "{key} twice");
    }
    if b.name == ENGAGEMENT {
        prop_assert!(!b.interactive, "an engagement event is never interactive");
    }
    if LINK_EVENTS.contains(&b.name.as_str()) {
        for (_, v) in b.props.iter().filter(|(k, _)| k == "url") {
            prop_assert!(!v.contains(['?', '#']), "link url kept its query or fragment: {v:?}");
        }
    }
    if let Some(r) = &b.revenue {
        prop_assert!(r.currency.len() == 3 && r.currency.bytes().all(|c| c.is_ascii_uppercase()), "{r:?}");
        prop_assert!(r.micros.unsigned_abs() <= 9_000_000_000_000_000_000, "{r:?}");
    }
    Ok(())
}

/// Errors are short and never echo the request's data.
fn check_error(e: &impl std::fmt::Display) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(msg.len() <= MAX_ERROR_LEN, "error message of {} bytes: {msg:?}", msg.len());
    prop_assert!(!msg.contains(SECRET_IP) && !msg.contains(SECRET), "error message echoes request data: {msg:?}");
    Ok(())
}

#[test]
fn fuzz_payload_json() {
    fuzz("payload_json", json_body(), |body| {
        let (result, info) = measured(|| payload::from_json(&body));
        JSON_BOUND.check("from_json", &info, body.len())?;
        match &result {
            Ok(b) => {
                check_beacon(b)?;
                prop_assert!(!b.url.trim().is_empty(), "blank url");
                // `sd` and `e` become whole numbers in range, first among
                // the props (a parsed body has no duplicate keys).
                let top = serde_json::from_slice::<serde_json::Value>(&body).ok();
                let sent = |key: &str| top.as_ref().and_then(|t| t.get(key)).is_some_and(|v| !v.is_null());
                let prop = |key: &str| b.props.iter().find(|(k, _)| k == key).map(|(_, v)| v.parse::<u64>());
                if sent("sd") {
                    let depth = prop(SCROLL_DEPTH);
                    prop_assert!(matches!(depth, Some(Ok(0..=100))), "scroll depth {depth:?}");
                    prop_assert_eq!(&b.props[0].0, SCROLL_DEPTH);
                }
                if sent("e") {
                    let ms = prop(ENGAGED_MS);
                    prop_assert!(matches!(ms, Some(Ok(n)) if n as f64 <= MAX_ENGAGED_MS), "engaged ms {ms:?}");
                }
            }
            Err(e) => check_error(e)?,
        }
        Ok(())
    });
}

const PIXEL_KEYS: &[&str] =
    &["d", "domain", "u", "url", "r", "referrer", "n", "name", "p", "props", "h", "w", "x", "", "u=", "%75"];

fn pixel_value() -> impl Strategy<Value = String> {
    let enc = |s: String| percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC).to_string();
    prop_oneof![
        3 => page_like().prop_map(enc),
        2 => json_string().prop_map(enc),
        2 => text(),
        1 => json_value().prop_map(|v| v.to_string()).prop_map(enc),
        1 => select(vec!["1", "true", "0", "65536", "4294967296", "-1", "%", "%G0", "a+b", "+++", "%2B", "%FF"]).prop_map(str::to_string),
    ]
}

fn pixel_query() -> impl Strategy<Value = (String, Option<String>)> {
    let pair = (select(PIXEL_KEYS), prop_oneof![4 => pixel_value().prop_map(Some), 1 => Just(None)]).prop_map(
        |(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_string(),
        },
    );
    let query = prop_oneof![
        6 => proptest::collection::vec(pair, 0..12).prop_map(|p| p.join("&")),
        1 => any::<String>(),
        1 => (1usize..20_000).prop_map(|n| format!("d=a.com&u=https%3A%2F%2Fa.com%2F&p={}", "%7B".repeat(n))),
        1 => (1usize..5_000).prop_map(|n| "&".repeat(n)),
    ];
    (query, proptest::option::of(page_like()))
}

#[test]
fn fuzz_payload_pixel() {
    fuzz("payload_pixel", pixel_query(), |(query, referer)| {
        let (result, info) = measured(|| payload::from_pixel_query(&query, referer.as_deref()));
        PIXEL_BOUND.check("from_pixel_query", &info, query.len() + referer.as_ref().map_or(0, String::len))?;
        match &result {
            Ok(b) => {
                check_beacon(b)?;
                prop_assert!(b.revenue.is_none(), "the pixel has no revenue");
            }
            Err(e) => {
                check_error(e)?;
                prop_assert!(!matches!(e, PayloadError::Json(_)), "the pixel parses no JSON body: {e:?}");
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// URLs, referrers, sources and spam.
// ---------------------------------------------------------------------------

const SCHEMES: &[&str] = &[
    "https",
    "http",
    "HTTP",
    "hTTps",
    " https",
    "ftp",
    "ws",
    "file",
    "foo",
    "a+b.c-d",
    "data",
    "javascript",
    " JavaScript",
    "blob",
    "vbscript",
    "mailto",
    "",
    "1http",
];
const SEPARATORS: &[&str] = &["://", ":", ":/", ":///", ":\\\\", "://\\", ": //"];
const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "WWW.Example.COM.",
    "blog.example.com",
    "example.com.evil.org",
    "пример.рф",
    "xn--e1afmkfd.xn--p1ai",
    "Bücher.example",
    "ＥＸＡＭＰＬＥ.com",
    "ex\u{ad}ample.com",
    "1.2.3.4",
    "0x7f.1",
    "256.1.1.1",
    "[::1]",
    "[2001:db8::1]",
    "[v1.x]",
    "%41.com",
    "a..b",
    ".",
    "..",
    "www.",
    "www.www.example.com",
    "",
    "google.com",
    "t.co",
    "semalt.com",
    "sub.semalt.com",
    "com.google.android.googlequicksearchbox",
];

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(HOSTS).prop_map(str::to_string),
        2 => "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,10}){0,3}",
        1 => (1usize..400).prop_map(|n| format!("{}.com", "a".repeat(n))),
        1 => (1usize..200).prop_map(|n| "a.".repeat(n) + "com"),
        1 => text(),
    ]
}

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9._~-]{0,12}",
        2 => select(vec!["%D0%BF%D1%80%D0%B8", "привет", "%FF", "%", "%2", "%2F", "%00", "..", ".", "%2e%2e", " ", "\\", "%23", "%3F", "\u{0}", "🙂"]).prop_map(str::to_string),
        1 => (1usize..3000).prop_map(|n| "%D0%BF".repeat(n)),
    ]
}

const CAMPAIGN_KEYS: &[&str] =
    &["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "ref", "source"];

fn query_pair() -> impl Strategy<Value = String> {
    let campaign_value = prop_oneof![
        select(vec![
            "google",
            "cpc",
            "email",
            "social",
            "  spaced  ",
            "%D0%BF%D0%BE%D1%87%D1%82%D0%B0",
            "a+b",
            "%FF",
            "",
            "cross-network",
            "summer-shop",
            "fb",
            "t.co"
        ])
        .prop_map(str::to_string),
        "[a-z0-9_-]{0,20}",
        (1usize..400).prop_map(|n| "x".repeat(n)),
    ];
    prop_oneof![
        3 => (select(CAMPAIGN_KEYS), campaign_value).prop_map(|(k, v)| format!("{k}={v}")),
        2 => select(vec!["token", "email", "q", "UTM_SOURCE", "utm_source_x", "session", ""]).prop_map(|k| format!("{k}={SECRET}")),
        1 => Just(format!("{SECRET}=1")),
        1 => "[a-z=&;%+]{0,12}",
    ]
}

/// A URL built from parts, most of them odd.
fn url_parts() -> impl Strategy<Value = String> {
    (
        (select(SCHEMES), select(SEPARATORS)),
        prop_oneof![4 => Just(String::new()), 1 => Just("user@".to_string()), 1 => Just(format!("user:{SECRET}@")), 1 => Just(format!("{SECRET}@"))],
        host(),
        select(vec!["", "", "", ":80", ":0", ":65535", ":65536", ":x", ":"]),
        proptest::collection::vec(path_segment(), 0..6),
        proptest::option::of(proptest::collection::vec(query_pair(), 0..6)),
        proptest::option::of(prop_oneof![
            Just(format!("/{FRAGMENT_SECRET}")),
            Just(format!("{FRAGMENT_SECRET}%D0%BF")),
            Just(String::new()),
        ]),
        select(vec!["", "", " ", "\t", "\n"]),
    )
        .prop_map(|((scheme, sep), user, host, port, path, query, fragment, pad)| {
            let mut u = format!("{pad}{scheme}{sep}{user}{host}{port}");
            for seg in path {
                u.push('/');
                u.push_str(&seg);
            }
            if let Some(q) = query {
                u.push('?');
                u.push_str(&q.join("&"));
            }
            if let Some(f) = fragment {
                u.push('#');
                u.push_str(&f);
            }
            u.push_str(pad);
            u
        })
}

fn url_input() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => url_parts(),
        2 => (url_parts(), proptest::collection::vec(mutation(NASTY), 1..4))
            .prop_map(|(u, m)| String::from_utf8_lossy(&mutate(u.into_bytes(), &m)).into_owned()),
        1 => any::<String>(),
        // Far over any limit: must be refused before any work.
        1 => (1usize..200_000).prop_map(|n| format!("https://example.com/{}", "a".repeat(n))),
    ]
}

fn max_len() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(2000usize), 1 => 0usize..5000]
}

/// What of `raw` may be kept, by the URL standard's reading of it: host and
/// path, for a page its campaign tags and in hash mode its fragment. A secret
/// marker lands there only when mutations move it (into the path, say).
fn keepable(raw: &str, page: bool, fragment: bool) -> String {
    let Ok(u) = ::url::Url::parse(raw.trim()) else {
        return String::new();
    };
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut out = format!("{} {} {}", u.host_str().unwrap_or_default(), u.path(), decoded(u.path()));
    if page {
        for (k, v) in u.query_pairs().filter(|(k, _)| CAMPAIGN_KEYS.contains(&k.as_ref())) {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    if let Some(f) = u.fragment().filter(|_| fragment) {
        out.push_str(&format!(" {f} {}", decoded(f)));
    }
    out
}

/// No secret marker from the query string, the user info or an unwanted
/// fragment is in what is kept.
fn check_url_result(what: &str, kept: &str, raw: &str, page: bool, fragment: bool) -> Result<(), TestCaseError> {
    let allowed = keepable(raw, page, fragment);
    for marker in [SECRET, FRAGMENT_SECRET] {
        prop_assert!(
            !kept.contains(marker) || allowed.contains(marker),
            "{what} kept data from the query string, user info or fragment: {kept:?} from {raw:?}"
        );
    }
    Ok(())
}

#[test]
fn fuzz_page_url() {
    fuzz("page_url", (url_input(), max_len(), any::<bool>()), |(raw, max_len, keep_fragment)| {
        let (result, info) = measured(|| url::page_url(&raw, max_len, keep_fragment));
        URL_BOUND.check("page_url", &info, raw.len().min(max_len))?;
        if raw.len() > max_len {
            prop_assert_eq!(&result, &Err(url::UrlError::TooLong(max_len)));
            prop_assert_eq!(info.bytes_total, 0, "a URL over the limit is refused before any work");
            return Ok(());
        }
        match &result {
            Ok(p) => {
                prop_assert!(p.pathname.starts_with('/'), "pathname {:?} from {raw:?}", p.pathname);
                prop_assert!(p.pathname.len() <= max_len, "pathname of {} bytes", p.pathname.len());
                prop_assert!(
                    !p.hostname.bytes().any(|b| b.is_ascii_uppercase()) && !p.hostname.ends_with('.'),
                    "hostname {:?} not normalized",
                    p.hostname
                );
                let c = &p.campaign;
                for v in [
                    &c.utm_source,
                    &c.utm_medium,
                    &c.utm_campaign,
                    &c.utm_content,
                    &c.utm_term,
                    &c.ref_param,
                    &c.source_param,
                ] {
                    // Trimmed, then cut to 200 bytes (so the cut may end in a space).
                    prop_assert!(v.len() <= 200 && v == v.trim_start(), "campaign value {v:?}");
                }
                check_url_result("page_url", &format!("{p:?}"), &raw, true, keep_fragment)?;
            }
            Err(e) => {
                check_error(e)?;
                if *e == url::UrlError::ForbiddenScheme {
                    let scheme = raw.trim().split(':').next().unwrap_or_default().to_ascii_lowercase();
                    prop_assert!(["data", "javascript", "blob", "vbscript"].contains(&scheme.as_str()), "{raw:?}");
                }
            }
        }
        Ok(())
    });
}

static REFERRERS: LazyLock<Referrers> =
    LazyLock::new(|| Referrers::new(&[], &["spam.example".to_string(), "*.junk.example".to_string()]));

/// Spam hosts of the built-in list, a few operator ones and their subdomains.
fn spam_host() -> impl Strategy<Value = String> {
    let listed: Vec<String> = BUILTIN_SPAM
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .chain(["spam.example".to_string(), "junk.example".to_string()])
        .collect();
    (select(listed), select(vec!["", "www.", "a.", "A.B.", "x-y."])).prop_map(|(h, sub)| format!("{sub}{h}"))
}

#[test]
fn fuzz_referrer_source_and_spam() {
    let sites = ["example.com", "example.org", "пример.рф", "a.com"];
    let referrer = prop_oneof![
        6 => url_input(),
        2 => (select(vec!["https://", "http://", "HTTPS://"]), spam_host(), "(/[a-z]{0,8}){0,2}")
            .prop_map(|(s, h, p)| format!("{s}{h}{p}?q={SECRET}")),
        2 => (select(vec!["", "www.", "blog.", "WWW.", "a.b."]), select(sites.to_vec()), select(vec!["", ".", ":8080"]))
            .prop_map(|(sub, site, tail)| format!("https://{sub}{site}{tail}/page?token={SECRET}")),
    ];
    let page = prop_oneof![
        Just("https://example.com/".to_string()),
        "https://(www\\.)?example\\.com/[a-z]{0,6}\\?(utm_source=[a-z.]{0,10}&)?(utm_medium=(cpc|email|social|paid|display|organic|[a-z]{0,6})&)?(utm_campaign=[a-z-]{0,12}&)?(ref=[a-z]{0,6})?",
        url_parts(),
    ];
    let strategy = (referrer, page, select(sites.to_vec()), max_len());
    // Built outside the measurements: the tables are made once at startup.
    REFERRERS.classify("warm.up", &Default::default());
    // Small, so answers are evicted and recomputed within a run.
    let places = places::Places::new(64);
    fuzz("referrer", strategy, |(raw, page_raw, site, max_len)| {
        // The ingest path's cache of parsed places answers exactly what a
        // fresh parse does, hit or miss.
        let inputs = places::Inputs { site, url: &page_raw, referrer: &raw, hash_mode: false, max_len };
        let (cached, fresh) = (places.get(&inputs, &REFERRERS), places::compute(&inputs, &REFERRERS));
        match (cached.as_ref(), &fresh) {
            (Ok(a), Ok(b)) => prop_assert_eq!(
                (&a.page, &a.referrer, a.spam, &a.acquisition),
                (&b.page, &b.referrer, b.spam, &b.acquisition)
            ),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "cache {a:?} vs fresh {b:?}"),
        }
        let Ok(page) = url::page_url(&page_raw, 2000, false) else {
            return Ok(());
        };
        let (result, info) = measured(|| {
            url::referrer(&raw, max_len, &page.hostname, site).map(|r| {
                let spam = REFERRERS.is_spam(&r.host);
                let acquisition = REFERRERS.classify(&r.host, &page.campaign);
                (r, spam, acquisition)
            })
        });
        URL_BOUND.check("referrer + is_spam + classify", &info, raw.len().min(max_len))?;
        if raw.len() > max_len && !raw.trim().is_empty() {
            prop_assert!(matches!(result, Err(url::UrlError::TooLong(_))), "{result:?}");
            prop_assert_eq!(info.bytes_total, 0, "a referrer over the limit is refused before any work");
            return Ok(());
        }
        let (r, spam, acquisition) = match result {
            Ok(ok) => ok,
            Err(e) => return check_error(&e),
        };
        if !r.host.is_empty() {
            prop_assert!(
                r.host != page.hostname && r.host != site && !r.host.ends_with(&format!(".{site}")),
                "self-referral kept: {:?} on {:?} of {site}",
                r.host,
                page.hostname
            );
        }
        prop_assert!(r.path.is_empty() || r.path.starts_with('/'), "referrer path {:?}", r.path);
        prop_assert!(r.path.len() <= max_len, "referrer path of {} bytes", r.path.len());
        check_url_result("referrer", &format!("{r:?}"), &raw, false, false)?;
        // Spam: a listed host's subdomains are spam too.
        if spam {
            prop_assert!(REFERRERS.is_spam(&format!("x.{}", r.host)), "subdomain of spam host {:?}", r.host);
        }
        prop_assert!(!REFERRERS.is_spam(""), "an empty host is never spam");
        // Source and channel.
        let medium_empty = page.campaign.utm_medium.trim().is_empty();
        prop_assert_eq!(
            acquisition.channel == Channel::Direct,
            acquisition.source.is_empty() && medium_empty,
            "{:?} for host {:?} and {:?}",
            acquisition,
            r.host,
            page.campaign
        );
        prop_assert!(Channel::ALL.contains(&acquisition.channel));
        prop_assert!(
            acquisition.source.len() <= r.host.len().max(200),
            "source of {} bytes from a host of {} and tags of at most 200",
            acquisition.source.len(),
            r.host.len()
        );
        if r.host.is_empty() && page.campaign == Default::default() {
            prop_assert_eq!(acquisition.channel, Channel::Direct);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// User-Agents and bots.
// ---------------------------------------------------------------------------

const CORPUS: &str = include_str!("../benches/data/user_agents.txt");

static CORPUS_LINES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| CORPUS.lines().filter(|l| !l.trim().is_empty()).collect());

/// The parser under test. A small cache, so eviction happens within a run.
static UA: LazyLock<UaParser> = LazyLock::new(|| UaParser::embedded(256).expect("embedded uap rules compile"));

const UA_PIECES: &[&str] = &[
    "Mobi",
    "Mobile",
    "iPad",
    "Android 14; ",
    "Tablet",
    "SMART-TV",
    "CUBOT",
    "Botswana",
    "bot",
    "Googlebot/2.1",
    "HeadlessChrome/120.0",
    "curl/8.0",
    "(KHTML, like Gecko)",
    "Chrome/124.0.0.0",
    "Version/17.4",
    "Windows NT 10.0",
    "CPU iPhone OS 17_4 like Mac OS X",
    "Build/",
    "; wv)",
    "(((((((((((",
    ")))))))))",
    "//////",
    "9999999999999999999999",
];

fn corpus_ua() -> impl Strategy<Value = String> {
    any::<Index>().prop_map(|i| CORPUS_LINES[i.index(CORPUS_LINES.len())].to_string())
}

fn user_agent() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => corpus_ua(),
        6 => (corpus_ua(), proptest::collection::vec(mutation(UA_PIECES), 1..6))
            .prop_map(|(ua, m)| String::from_utf8_lossy(&mutate(ua.into_bytes(), &m)).into_owned()),
        2 => (corpus_ua(), corpus_ua(), any::<Index>()).prop_map(|(a, b, i)| {
            let cut = i.index(a.len() + 1);
            let cut = (0..=cut).rev().find(|c| a.is_char_boundary(*c)).unwrap_or(0);
            format!("{}{b}", &a[..cut])
        }),
        1 => (corpus_ua(), 1usize..600).prop_map(|(ua, n)| ua.repeat(n)),
        1 => (corpus_ua(), any::<bool>()).prop_map(|(ua, up)| if up { ua.to_uppercase() } else { ua.to_lowercase() }),
        // Around the length limit.
        1 => (corpus_ua(), MAX_UA_LEN - 3..MAX_UA_LEN + 3).prop_map(|(ua, n)| {
            let mut s: String = ua.chars().cycle().take(n).collect();
            while s.len() > n {
                s.pop();
            }
            s
        }),
        1 => any::<String>(),
        1 => "[ \t]{0,5}",
    ]
}

fn check_ua_info(ua: &str, info: &UaInfo) -> Result<(), TestCaseError> {
    for (name, v) in [
        ("browser", &info.browser),
        ("browser_version", &info.browser_version),
        ("os", &info.os),
        ("os_version", &info.os_version),
    ] {
        prop_assert!(!v.is_empty() && v.len() <= MAX_FIELD_LEN, "{name} {v:?} of {} bytes", v.len());
    }
    if info.is_bot {
        prop_assert_eq!(info.device.as_str(), "other", "a bot is no device");
    }
    if ua.len() > MAX_UA_LEN {
        prop_assert_eq!(info, &UaInfo::unknown(), "a User-Agent over {} bytes is not parsed", MAX_UA_LEN);
    } else if ua.trim().is_empty() {
        prop_assert!(info.is_bot, "an empty User-Agent is a bot");
    } else if bots::is_bot(ua) {
        prop_assert!(info.is_bot, "a bot token without the bot flag");
    }
    Ok(())
}

#[test]
fn fuzz_user_agent() {
    let retained = Cell::new(0i64);
    let most_retained = Cell::new(0i64);
    // Compiled outside the measurements: the parser is built once at startup.
    UA.parse("warm up");
    fuzz("user_agent", user_agent(), |ua| {
        // Everything the call allocates and does not free is what the parser
        // keeps: the result is dropped inside the measurement (a copy made
        // outside the count is checked).
        let mut copy = None;
        let info = allocation_counter::measure(|| {
            let parsed = UA.parse(&ua);
            allocation_counter::opt_out(|| copy = Some(UaInfo::clone(&parsed)));
        });
        let parsed = copy.expect("the measured closure ran");
        UA_BOUND.check("UaParser::parse", &info, ua.len())?;
        retained.set(retained.get() + info.bytes_current);
        most_retained.set(most_retained.get().max(retained.get()));
        prop_assert!(
            retained.get() <= UA_RETAINED_MAX,
            "the parser keeps {} bytes after {} bytes of User-Agents",
            retained.get(),
            ua.len()
        );
        check_ua_info(&ua, &parsed)?;
        let fresh = UA.parse_uncached(&ua);
        prop_assert_eq!(&parsed, &fresh, "cached and fresh parses differ");
        if let Some(hit) = UA.cached(&ua) {
            prop_assert_eq!(&*hit, &fresh, "cache answer differs from a fresh parse");
        }
        if ua.len() > MAX_UA_LEN {
            prop_assert!(UA.cached(&ua).is_none(), "a long User-Agent entered the cache");
        }
        Ok(())
    });
    eprintln!(
        "fuzz-report target=user_agent retained_bytes_now={} retained_bytes_max={}",
        retained.get(),
        most_retained.get()
    );
}

fn mangle_case(token: &str, mask: u64) -> String {
    token.chars().enumerate().map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
}

#[test]
fn fuzz_bots() {
    let strategy = (
        prop_oneof![3 => user_agent(), 1 => text()],
        proptest::option::of((select(bots::BOT_TOKENS), any::<u64>(), any::<Index>())),
    );
    bots::is_bot("warm up the automaton");
    fuzz("bots", strategy, |(ua, token)| {
        let (bot, info) = measured(|| bots::is_bot(&ua));
        prop_assert_eq!(info.bytes_total, 0, "is_bot allocated");
        prop_assert_eq!(bot, bots::is_bot(&ua.to_ascii_uppercase()), "case matters");
        prop_assert_eq!(bot, bots::is_bot(&ua.to_ascii_lowercase()), "case matters");
        if ua.trim().is_empty() {
            prop_assert!(bot, "an empty User-Agent is a bot");
        }
        if let Some((token, mask, at)) = token {
            // A listed token, as a word of its own in any case, is always
            // found: no allowed word can hide it.
            let cut = at.index(ua.len() + 1);
            let cut = (0..=cut).rev().find(|c| ua.is_char_boundary(*c)).unwrap_or(0);
            let with = format!("{} {} {}", &ua[..cut], mangle_case(token, mask), &ua[cut..]);
            prop_assert!(bots::is_bot(&with), "token {token:?} not found in {with:?}");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Client addresses behind proxies.
// ---------------------------------------------------------------------------

const TRUSTED_POOL: &[&str] =
    &["10.0.0.0/8", "127.0.0.1/32", "::1/128", "192.168.0.0/16", "fd00::/8", "172.16.0.0/12", "100.64.0.0/10"];

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        2 => any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        1 => any::<u32>().prop_map(|v| IpAddr::V6(Ipv4Addr::from(v).to_ipv6_mapped())),
        2 => select(vec!["127.0.0.1", "10.1.2.3", "::1", "::ffff:10.0.0.1", "192.168.1.1", "0.0.0.0", "::", "255.255.255.255", "fd00::1", SECRET_IP])
            .prop_map(|s| s.parse().expect("literal address")),
    ]
}

/// An address inside `net`, from random host bits.
fn inside(net: &IpNet, bits: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | (bits as u32 & u32::from(n.hostmask())))),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | (bits & u128::from(n.hostmask())))),
    }
}

fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How a proxy writes an address into `X-Forwarded-For` or `Forwarded`.
fn render_hop(ip: IpAddr, style: u8, forwarded: bool) -> String {
    let port = 1024 + u16::from(style) * 7;
    let text = match (ip, style % 4) {
        (IpAddr::V4(v4), 0) => v4.to_string(),
        (IpAddr::V4(v4), 1) => format!("{v4}:{port}"),
        (IpAddr::V4(v4), 2) => format!("::ffff:{v4}"),
        (IpAddr::V6(v6), 0) => v6.to_string(),
        (IpAddr::V6(v6), 1) => format!("[{v6}]:{port}"),
        (IpAddr::V6(v6), 2) => format!("[{v6}]"),
        (ip, _) => format!(" {ip} "),
    };
    if !forwarded {
        return text;
    }
    let text = text.trim();
    match style % 3 {
        0 => format!("for=\"{text}\""),
        1 => format!("For={text};proto=https;by=10.9.9.9"),
        _ => format!("proto=http; for=\"{text}\"; host=a.com"),
    }
}

/// What a client may put in its own headers: lists of addresses (trusted
/// ones too), garbage, and odd syntax.
fn forged_value() -> impl Strategy<Value = String> {
    let hop = prop_oneof![
        3 => (ip(), any::<u8>(), any::<bool>()).prop_map(|(ip, s, f)| render_hop(ip, s, f)),
        1 => select(vec!["unknown", "_hidden", "", " ", "for=", "for=\"", "\"", "[", "]", "[::1", "1.2.3", "1.2.3.4.5", "::ffff:", ";", "=", "by=1.1.1.1", "é", "例", "\u{fffd}", "1.2.3.4é"]).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ];
    prop_oneof![
        6 => proptest::collection::vec(hop, 0..8).prop_map(|h| h.join(", ")),
        1 => (1usize..3000).prop_map(|n| "1.2.3.4,".repeat(n)),
        1 => (1usize..3000).prop_map(|n| ",".repeat(n)),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["x-forwarded-for", "forwarded", "x-real-ip"]).prop_map(str::to_string),
        1 => "[a-z-]{1,12}",
    ]
}

/// The headers that HTTP can carry (visible ASCII, tabs, spaces and any
/// byte from 0x80 up: `obs-text`); the others are left out.
fn header_map(headers: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// Every address that could be read out of the headers, however liberally.
fn addresses_in(map: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in map.values().map(|v| String::from_utf8_lossy(v.as_bytes())) {
        let tokens = value.split(|c: char| ",;=\"[]".contains(c) || c.is_whitespace());
        for t in tokens {
            if let Ok(ip) = t.parse::<IpAddr>() {
                out.push(normalize(ip));
            } else if let Ok(sa) = t.parse::<SocketAddr>() {
                out.push(normalize(sa.ip()));
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
struct RandomHeaders {
    peer: SocketAddr,
    trusted: Vec<IpNet>,
    headers: Vec<(String, Vec<u8>)>,
}

fn random_headers() -> impl Strategy<Value = RandomHeaders> {
    (
        prop_oneof![3 => ip(), 1 => Just(IpAddr::from([127, 0, 0, 1]))],
        proptest::collection::vec(select(TRUSTED_POOL), 0..4),
        proptest::option::of(select(vec!["0.0.0.0/0", "::/0", "::ffff:0:0/96"])),
        proptest::collection::vec(
            (
                header_name(),
                prop_oneof![
                    4 => forged_value().prop_map(String::into_bytes),
                    1 => (forged_value(), proptest::collection::vec(prop_oneof![Just(0xffu8), 0x80u8..0xff], 1..3), any::<Index>())
                        .prop_map(|(v, raw, at)| mutate(v.into_bytes(), &[Mutation::Insert(at, raw)])),
                ],
            ),
            0..8,
        ),
    )
        .prop_map(|(peer, nets, wide, headers)| RandomHeaders {
            peer: SocketAddr::new(peer, 443),
            trusted: nets.iter().copied().chain(wide).map(|n| n.parse().expect("literal net")).collect(),
            headers,
        })
}

/// A client behind a chain of trusted proxies that append what they saw,
/// after whatever the client forged in its own headers.
#[derive(Debug, Clone)]
struct ProxiedRequest {
    trusted: Vec<IpNet>,
    client: IpAddr,
    peer: SocketAddr,
    headers: Vec<(String, Vec<u8>)>,
}

fn proxied_request() -> impl Strategy<Value = ProxiedRequest> {
    (
        proptest::collection::vec(select(TRUSTED_POOL), 1..4),
        ip(),
        proptest::collection::vec((any::<u128>(), any::<u8>(), any::<bool>()), 1..5),
        any::<bool>(),
        proptest::collection::vec((header_name(), forged_value()), 0..6),
        any::<u8>(),
    )
        .prop_map(|(nets, client, proxies, forwarded, forged, style)| {
            let trusted: Vec<IpNet> = nets.iter().map(|n| n.parse().expect("literal net")).collect();
            let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&normalize(ip)));
            // The client is, by definition, not one of the proxies.
            let client = if is_trusted(client) {
                match client {
                    IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::new(198, 51, 100, v4.octets()[3])),
                    IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(v6) & 0xffff)),
                }
            } else {
                client
            };
            let chain: Vec<(IpAddr, u8, bool)> = proxies
                .iter()
                .enumerate()
                .map(|(i, (bits, s, new_line))| (inside(&trusted[i % trusted.len()], *bits), *s, *new_line))
                .collect();
            // The proxies speak one header; a client's header of higher
            // priority than theirs (`Forwarded` over `X-Forwarded-For`) must
            // be stripped by them, so none is forged here.
            let (family, stripped) = if forwarded { ("forwarded", "") } else { ("x-forwarded-for", "forwarded") };
            let mut headers: Vec<(String, String)> = forged
                .into_iter()
                .filter(|(n, v)| {
                    n != stripped && HeaderName::from_bytes(n.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
                })
                .collect();
            // Proxy k writes the address it saw (the client, then proxy k-1)
            // by appending to the last such header or adding a new one; the
            // last proxy is the socket peer.
            let mut seen = client;
            let mut seen_style = style;
            for (proxy, s, new_line) in &chain {
                let hop = render_hop(seen, seen_style, forwarded);
                match headers.iter_mut().rev().find(|(n, _)| n == family) {
                    Some((_, v)) if !new_line => {
                        v.push_str(", ");
                        v.push_str(&hop);
                    }
                    _ => headers.push((family.to_string(), hop)),
                }
                seen = *proxy;
                seen_style = *s;
            }
            let headers = headers.into_iter().map(|(n, v)| (n, v.into_bytes())).collect();
            ProxiedRequest { trusted, client, peer: SocketAddr::new(seen, 8443), headers }
        })
}

#[test]
fn fuzz_client_ip() {
    let strategy = prop_oneof![
        1 => random_headers().prop_map(Ok),
        1 => proxied_request().prop_map(Err),
    ];
    fuzz("client_ip", strategy, |case| {
        let (peer, trusted, headers, want) = match case {
            Ok(r) => (r.peer, r.trusted, r.headers, None),
            Err(p) => (p.peer, p.trusted, p.headers, Some(normalize(p.client))),
        };
        let map = header_map(&headers);
        let header_bytes: usize = map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let (ip, info) = measured(|| client_ip(peer, &map, &trusted));
        IP_BOUND.check("client_ip", &info, header_bytes)?;
        prop_assert_eq!(format!("{ip:?}"), "ClientIp(<redacted>)");
        let got = ip.reveal_for_lookup();
        let peer_ip = normalize(peer.ip());
        if !trusted.iter().any(|n| n.contains(&peer_ip)) {
            prop_assert_eq!(got, peer_ip, "headers believed from an untrusted peer");
        }
        prop_assert!(
            got == peer_ip || addresses_in(&map).contains(&got),
            "{got} is neither the peer nor in the headers"
        );
        if let Some(want) = want {
            prop_assert_eq!(got, want, "not the client the first trusted proxy saw");
        }
        Ok(())
    });
}
