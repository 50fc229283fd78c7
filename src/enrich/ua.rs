//! User-Agent → browser, OS, device class and bot flag.
//!
//! # Which rules, which engine
//!
//! The rules are uap-core's `regexes.yaml`, the set that `uaparser`,
//! `ua-parser` and every other uap port implement, so a string means the same
//! here as in Matomo-style or Plausible-style tools built on uap. They run in
//! [`super::uap`]: the `ua-parser` crate's literal prefilter (only the few
//! rules whose literal atoms occur in the string are tried) in front of
//! `regex-lite`, which holds the rules in about a sixth of the memory the
//! `regex` crate needs; that module says why and what it measured.
//!
//! Measured with `cargo bench --bench ua_parsers` over the 1,459 distinct
//! strings of uap-core's `test_ua.yaml`, browser + OS + device, uncached, on a
//! shared and busy 2-core machine (see BENCHMARKS.md for the latest run):
//!
//! | parser                               | per User-Agent |
//! |--------------------------------------|---------------:|
//! | `ua-parser` 0.2.2                    |         ~13 µs |
//! | [`UaParser::parse_uncached`]         |         ~47 µs |
//! | `uaparser` 0.6.4 (`from_bytes`)      |        ~400 µs |
//! | `uaparser` 0.6.4, Unicode off        |        ~230 µs |
//! | [`UaParser::parse`], cache hit       |         ~30 ns |
//!
//! `uaparser` tries the ~1,200 rules one after another until one matches,
//! which is why it is ~8× slower than us on every cache miss; `ua-parser`
//! is ~4× faster but holds 60–100 MB once its regex caches have grown,
//! against our 16–23 MB.
//!
//! # Why a cache, and why it is bounded
//!
//! Real traffic repeats a small set of User-Agents (a few browser builds per
//! OS), so a hit costs a hash lookup of tens of nanoseconds instead of a full
//! parse. The cache is a sharded `quick_cache` with a fixed item capacity:
//! the set of distinct User-Agents is chosen by whoever sends us requests,
//! and an unbounded map would let a client that varies its header grow our
//! memory without limit. Its Clock-PRO/S3-FIFO-like eviction is scan
//! resistant, so a burst of one-off strings does not evict the popular ones. Concurrent misses on the same string wait for
//! the first parse instead of repeating it.
//!
//! The cache holds raw User-Agent strings in process memory only; they are
//! never logged, persisted or printed (`UaParser`'s `Debug` shows counts).
//!
//! # Why long User-Agents are not parsed
//!
//! Browsers send 100–300 bytes, in-app browsers up to about 400; the longest
//! string in uap-core's test corpus is 492. Regex cost grows with input length, so a client can make every
//! request expensive by sending kilobytes of header. Anything longer than
//! [`MAX_UA_LEN`] bytes is answered at once with an unknown [`UaInfo`] and
//! never enters the cache, which also bounds each cache entry to
//! [`MAX_UA_LEN`] bytes of key, so the item capacity bounds memory too.
//!
//! # What comes out
//!
//! Only coarse facts: browser family and major version, OS family and
//! major[.minor] version, a four-way [`DeviceType`] and whether it is a bot.
//! Device brand and model are used to classify and then dropped: they would
//! narrow a visitor down far more than they inform a dashboard. Values that
//! uap cannot determine are [`UNKNOWN`], never empty, and every string field
//! is capped at [`MAX_FIELD_LEN`] bytes so a crafted header cannot mint
//! arbitrary long column values.

use std::fmt;
use std::sync::Arc;

use quick_cache::sync::{Cache, GuardResult};

use super::bots;
use super::uap::{Rules, RulesError};

/// uap-core 0.18.0 `regexes.yaml`, compiled into the binary so the parser
/// cannot be started with a missing or mismatched rules file.
const REGEXES_YAML: &str = include_str!("../../data/uap-core/regexes.yaml");

/// User-Agents longer than this many bytes are not parsed nor cached.
pub const MAX_UA_LEN: usize = 512;

/// Longest value, in bytes, kept in any string field of [`UaInfo`].
pub const MAX_FIELD_LEN: usize = 64;

/// The value of any [`UaInfo`] string field uap could not determine.
pub const UNKNOWN: &str = "Unknown";

/// The class of device a User-Agent comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// Windows, macOS, Linux, ChromeOS and other desktop operating systems.
    Desktop,
    /// Phones: iPhone, Android phones and other mobile operating systems.
    Mobile,
    /// iPad, Android tablets, Kindle and similar.
    Tablet,
    /// TVs, consoles, watches, bots, and anything unrecognised.
    Other,
}

impl DeviceType {
    /// Stable lowercase name, as stored and shown on dashboards.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Other => "other",
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Coarse facts about one User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaInfo {
    /// Browser family, e.g. `"Chrome"`, `"Mobile Safari"`, `"Firefox"`.
    pub browser: String,
    /// Browser major version only, e.g. `"120"`.
    pub browser_version: String,
    /// OS family, e.g. `"Windows"`, `"Mac OS X"`, `"iOS"`, `"Android"`.
    pub os: String,
    /// OS `major[.minor]`, e.g. `"10"`, `"17.4"`.
    pub os_version: String,
    /// Device class.
    pub device: DeviceType,
    /// Whether the User-Agent is a crawler, monitor, headless browser or
    /// HTTP library: uap's `Spider` device, or a [`bots::is_bot`] token.
    pub is_bot: bool,
}

impl UaInfo {
    /// Every field unknown; not a bot.
    pub fn unknown() -> Self {
        UaInfo {
            browser: UNKNOWN.to_owned(),
            browser_version: UNKNOWN.to_owned(),
            os: UNKNOWN.to_owned(),
            os_version: UNKNOWN.to_owned(),
            device: DeviceType::Other,
            is_bot: false,
        }
    }
}

/// Why the User-Agent parser could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// The embedded `regexes.yaml` does not compile into uap rules.
    #[error("embedded uap-core regexes.yaml could not be compiled")]
    Rules(#[from] RulesError),
}

/// A uap-core User-Agent parser with a bounded, concurrent result cache.
///
/// Build one at startup with [`UaParser::embedded`] (it compiles about a
/// thousand regexes, so it is not free) and share it behind an `Arc`.
pub struct UaParser {
    rules: Rules,
    cache: Cache<String, Arc<UaInfo>>,
    /// Answer for strings over [`MAX_UA_LEN`]: unknown, not a bot.
    too_long: Arc<UaInfo>,
    /// Answer for empty strings: unknown, and a bot, as [`bots::is_bot`] says.
    empty: Arc<UaInfo>,
}

impl UaParser {
    /// Compiles the embedded uap-core rules and creates a cache holding up to
    /// `cache_capacity` parsed User-Agents (0 disables caching).
    pub fn embedded(cache_capacity: usize) -> Result<Self, UaError> {
        Ok(UaParser {
            rules: Rules::from_yaml(REGEXES_YAML)?,
            cache: Cache::new(cache_capacity),
            too_long: Arc::new(UaInfo::unknown()),
            empty: Arc::new(UaInfo { is_bot: true, ..UaInfo::unknown() }),
        })
    }

    /// Parses `ua`, answering from the cache when the same string was parsed
    /// before.
    pub fn parse(&self, ua: &str) -> Arc<UaInfo> {
        if let Some(info) = self.unparsable(ua) {
            return info;
        }
        match self.cache.get_value_or_guard(ua, None) {
            GuardResult::Value(info) => info,
            GuardResult::Guard(guard) => {
                let info = Arc::new(self.extract(ua));
                // Fails only if the entry was replaced meanwhile; the answer
                // is the same either way.
                let _ = guard.insert(Arc::clone(&info));
                info
            }
            // Only reachable with a timeout, which we do not set.
            GuardResult::Timeout => Arc::new(self.extract(ua)),
        }
    }

    /// The cached answer for `ua` if it was parsed before; never parses.
    /// `None` for strings [`UaParser::parse`] answers without parsing.
    pub fn cached(&self, ua: &str) -> Option<Arc<UaInfo>> {
        if ua.len() > MAX_UA_LEN {
            return None;
        }
        self.cache.get(ua)
    }

    /// Parses `ua` without touching the cache.
    pub fn parse_uncached(&self, ua: &str) -> UaInfo {
        match self.unparsable(ua) {
            Some(info) => UaInfo::clone(&info),
            None => self.extract(ua),
        }
    }

    /// The fixed answer for strings we refuse to parse, if `ua` is one.
    fn unparsable(&self, ua: &str) -> Option<Arc<UaInfo>> {
        if ua.len() > MAX_UA_LEN {
            Some(Arc::clone(&self.too_long))
        } else if ua.trim().is_empty() {
            Some(Arc::clone(&self.empty))
        } else {
            None
        }
    }

    /// The expensive part: run the uap rules and classify the result.
    fn extract(&self, ua: &str) -> UaInfo {
        let browser = self.rules.browser(ua);
        let os = self.rules.os(ua);
        let dev = self.rules.device(ua);

        let (browser, browser_version) = match &browser {
            Some(b) => (family(&b.family), version(b.major.as_deref(), None)),
            None => (UNKNOWN.to_owned(), UNKNOWN.to_owned()),
        };
        let (os_family, os_major, os_version) = match &os {
            Some(o) => {
                (family(&o.family), o.major.as_deref().unwrap_or(""), version(o.major.as_deref(), o.minor.as_deref()))
            }
            None => (UNKNOWN.to_owned(), "", UNKNOWN.to_owned()),
        };
        let (dev_family, brand, model) = match &dev {
            Some(d) => (d.family.as_str(), d.brand.as_deref().unwrap_or(""), d.model.as_deref().unwrap_or("")),
            None => ("", "", ""),
        };

        let is_bot = dev_family == "Spider" || bots::is_bot(ua);
        let device = if is_bot {
            DeviceType::Other
        } else {
            classify(&Signals { ua, os: &os_family, os_major, dev_family, brand, model })
        };

        UaInfo { browser, browser_version, os: os_family, os_version, device, is_bot }
    }
}

impl fmt::Debug for UaParser {
    /// Counts only: the cache keys are raw User-Agents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaParser")
            .field("cached", &self.cache.len())
            .field("capacity", &self.cache.capacity())
            .finish_non_exhaustive()
    }
}

/// A family name as stored: uap's `"Other"` and empty become [`UNKNOWN`].
fn family(raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() || raw == "Other" { UNKNOWN.to_owned() } else { capped(raw) }
}

/// `major` or `major.minor`; [`UNKNOWN`] without a major.
fn version(major: Option<&str>, minor: Option<&str>) -> String {
    let major = major.map(str::trim).filter(|m| !m.is_empty());
    let minor = minor.map(str::trim).filter(|m| !m.is_empty());
    match (major, minor) {
        (None, _) => UNKNOWN.to_owned(),
        (Some(major), None) => capped(major),
        (Some(major), Some(minor)) => capped(&format!("{major}.{minor}")),
    }
}

/// `s` cut to at most [`MAX_FIELD_LEN`] bytes on a character boundary.
fn capped(s: &str) -> String {
    let mut end = s.len().min(MAX_FIELD_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// What [`classify`] looks at.
struct Signals<'a> {
    ua: &'a str,
    os: &'a str,
    os_major: &'a str,
    dev_family: &'a str,
    brand: &'a str,
    model: &'a str,
}

/// Substrings of TVs, set-top boxes, consoles and headsets: browsers that are
/// neither phone, tablet nor desktop, and often claim to be one of them.
const OTHER_DEVICE_TOKENS: &[&str] = &[
    "SMART-TV",
    "SmartTV",
    "Smart TV",
    "SMART TV",
    "HbbTV",
    "CrKey",
    "AppleTV",
    "Apple TV",
    "GoogleTV",
    "Android TV",
    "AndroidTV",
    "BRAVIA",
    "Web0S",
    "NetCast",
    "Roku",
    "; AFT", // Amazon Fire TV models: "Android 9; AFTKA Build/..."
    "PlayStation",
    "Xbox",
    "Nintendo",
    "OculusBrowser",
];

/// OS families of TVs, set-top boxes and watches.
const OTHER_OSES: &[&str] = &[
    "tvOS",
    "ATV OS X",
    "WatchOS",
    "Roku",
    "GoogleTV",
    "FireHbbTV",
    "Web0S",
    "WebTV",
    "Chromecast Android",
    "Chromecast Fuchsia",
    "Chromecast Linux",
    "Chromecast SmartSpeaker",
];

/// User-Agent substrings of tablets: iPad apps ("Bing for iPad/1.1.2
/// CFNetwork/..."), BlackBerry PlayBook, HP TouchPad.
const TABLET_UA_TOKENS: &[&str] = &["iPad", "PlayBook", "TouchPad", "hp-tablet"];

/// User-Agent substrings of phones: Mozilla's advice that "Mobi" means a
/// phone, Opera Mini, and the markers of J2ME and WAP feature phones.
const MOBILE_UA_TOKENS: &[&str] = &["Mobi", "Opera Mini", "MIDP", "J2ME", "UP.Browser", "Obigo"];

/// Device model substrings of tablets whose browser does not say so
/// (`"Tab"`: Galaxy Tab, Lenovo Tab, IdeaTab, "Tablet").
const TABLET_MODEL_TOKENS: &[&str] = &[
    "iPad", "Kindle", "Tab", "MediaPad", "MatePad", "Mi Pad", "MiPad", "MeMO Pad", "Xoom", "Nexus 7", "Nexus 9",
    "Nexus 10", "Pixel C",
];

/// Device model prefixes of tablets (Samsung Galaxy Tab series, Lenovo).
const TABLET_MODEL_PREFIXES: &[&str] = &["SM-T", "SM-X", "SM-P", "GT-P", "TB-", "Lenovo TB"];

/// OS families of phones and feature phones.
const MOBILE_OSES: &[&str] = &[
    "iOS",
    "Android",
    "Windows Phone",
    "Windows Mobile",
    "Windows CE",
    "BlackBerry OS",
    "Symbian OS",
    "Symbian^3",
    "Symbian^3 Anna",
    "Symbian^3 Belle",
    "KaiOS",
    "Firefox OS",
    "Sailfish",
    "Bada",
    "MeeGo",
    "Maemo",
    "webOS",
    "Tizen",
    "Nokia Series 40",
    "Nokia Series 30 Plus",
    "BREW",
    "Brew MP",
    "VRE",
];

/// OS families of desktops and laptops, compared case-insensitively
/// (uap reports some, like `freebsd`, as written in the string).
const DESKTOP_OSES: &[&str] = &[
    "Windows",
    "Mac OS X",
    "Mac OS",
    "Chrome OS",
    "Linux",
    "Ubuntu",
    "Kubuntu",
    "Lubuntu",
    "Linux Mint",
    "Debian",
    "Fedora",
    "Red Hat",
    "CentOS",
    "SUSE",
    "openSUSE",
    "Arch Linux",
    "Gentoo",
    "Slackware",
    "Mandriva",
    "Mageia",
    "PCLinuxOS",
    "Puppy",
    "BackTrack",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
    "BSD",
    "Solaris",
    "SerenityOS",
];

/// Decides the device class of a non-bot User-Agent, most specific first:
/// TVs and consoles, then tablets, phones, desktops.
fn classify(s: &Signals<'_>) -> DeviceType {
    let ua = s.ua;
    let any_in = |haystack: &str, needles: &[&str]| needles.iter().any(|n| haystack.contains(n));

    // TVs, consoles, watches: many send a desktop or Android-without-Mobile
    // string that would otherwise read as a desktop or a tablet.
    if OTHER_OSES.contains(&s.os) || any_in(ua, OTHER_DEVICE_TOKENS) {
        return DeviceType::Other;
    }

    // Tablets. iPads, Kindles and uap's generic tablet rules first; then
    // browsers that say "Tablet" (Firefox, Opera) but not Windows "Tablet PC"
    // laptops; then known tablet models; then Google's rule for Android:
    // browsers on phones add "Mobile", browsers on tablets do not. The rule is
    // only applied to browsers ("Mozilla/..."), not to app HTTP clients
    // (Dalvik, okhttp), which never say "Mobile".
    let android = s.os == "Android";
    if s.dev_family == "iPad"
        || s.dev_family.starts_with("Kindle")
        || s.dev_family == "Generic Tablet"
        || s.brand == "Generic_Android_Tablet"
        || s.os == "BlackBerry Tablet OS"
        || s.os == "Kindle"
        || s.os == "WeTab"
        || (s.os == "Windows" && s.os_major == "RT")
        || any_in(ua, TABLET_UA_TOKENS)
        || (ua.contains("Tablet") && !ua.contains("Tablet PC"))
        || any_in(s.model, TABLET_MODEL_TOKENS)
        || TABLET_MODEL_PREFIXES.iter().any(|p| s.model.starts_with(p))
        || (android && ua.starts_with("Mozilla/") && !ua.contains("Mobile"))
    {
        return DeviceType::Tablet;
    }

    // Phones: by device, by OS, then by User-Agent markers.
    if matches!(s.dev_family, "iPhone" | "iPod" | "iPod Touch" | "Generic Smartphone" | "Generic Feature Phone")
        || MOBILE_OSES.contains(&s.os)
        || any_in(ua, MOBILE_UA_TOKENS)
    {
        return DeviceType::Mobile;
    }

    if DESKTOP_OSES.iter().any(|d| d.eq_ignore_ascii_case(s.os)) {
        return DeviceType::Desktop;
    }

    DeviceType::Other
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;
    use std::sync::LazyLock;
    use std::time::{Duration, Instant};

    use serde::Deserialize;

    use super::*;

    /// Compiling the rules takes a moment; share one parser across tests.
    static PARSER: LazyLock<UaParser> =
        LazyLock::new(|| UaParser::embedded(1_000).expect("embedded uap rules compile"));

    struct Case {
        name: &'static str,
        ua: &'static str,
        browser: &'static str,
        browser_version: &'static str,
        os: &'static str,
        os_version: &'static str,
        device: DeviceType,
        is_bot: bool,
    }

    const CASES: &[Case] = &[
        Case {
            name: "Chrome on Windows",
            ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            browser: "Chrome",
            browser_version: "120",
            os: "Windows",
            os_version: "10",
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Safari on iPhone",
            ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            browser: "Mobile Safari",
            browser_version: "17",
            os: "iOS",
            os_version: "17.4",
            device: DeviceType::Mobile,
            is_bot: false,
        },
        Case {
            name: "Safari on iPad",
            ua: "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            browser: "Mobile Safari",
            browser_version: "16",
            os: "iOS",
            os_version: "16.6",
            device: DeviceType::Tablet,
            is_bot: false,
        },
        Case {
            name: "Chrome on an Android phone",
            ua: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.6167.101 Mobile Safari/537.36",
            browser: "Chrome Mobile",
            browser_version: "121",
            os: "Android",
            os_version: "14",
            device: DeviceType::Mobile,
            is_bot: false,
        },
        Case {
            name: "Chrome on an Android tablet",
            ua: "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.210 Safari/537.36",
            browser: "Chrome",
            browser_version: "120",
            os: "Android",
            os_version: "13",
            device: DeviceType::Tablet,
            is_bot: false,
        },
        Case {
            name: "Samsung Galaxy Tab in an app webview that says Mobile",
            ua: "Mozilla/5.0 (Linux; Android 11; SM-T505 Build/RP1A.200720.012; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36",
            browser: "Chrome Mobile WebView",
            browser_version: "120",
            os: "Android",
            os_version: "11",
            device: DeviceType::Tablet,
            is_bot: false,
        },
        Case {
            name: "Kindle Fire",
            ua: "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.4.1 like Chrome/120.0.6099.230 Safari/537.36",
            browser: "Amazon Silk",
            browser_version: "120",
            os: "Android",
            os_version: "9",
            device: DeviceType::Tablet,
            is_bot: false,
        },
        Case {
            name: "Firefox on Linux",
            ua: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            browser: "Firefox",
            browser_version: "121",
            os: "Linux",
            os_version: UNKNOWN,
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Firefox on Ubuntu",
            ua: "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
            browser: "Firefox",
            browser_version: "115",
            os: "Ubuntu",
            os_version: UNKNOWN,
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Safari on macOS",
            ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2.1 Safari/605.1.15",
            browser: "Safari",
            browser_version: "17",
            os: "Mac OS X",
            os_version: "10.15",
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Edge on Windows",
            ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            browser: "Edge",
            browser_version: "120",
            os: "Windows",
            os_version: "10",
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Yandex Browser",
            ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
            browser: "Yandex Browser",
            browser_version: "23",
            os: "Windows",
            os_version: "10",
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Chrome on ChromeOS",
            ua: "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            browser: "Chrome",
            browser_version: "120",
            os: "Chrome OS",
            os_version: "14541.0",
            device: DeviceType::Desktop,
            is_bot: false,
        },
        Case {
            name: "Firefox on an Android tablet",
            ua: "Mozilla/5.0 (Android 13; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0",
            browser: "Firefox Mobile",
            browser_version: "121",
            os: "Android",
            os_version: "13",
            device: DeviceType::Tablet,
            is_bot: false,
        },
        Case {
            name: "Samsung smart TV",
            ua: "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
            browser: "Safari",
            browser_version: UNKNOWN,
            os: "Tizen",
            os_version: "6.0",
            device: DeviceType::Other,
            is_bot: false,
        },
        Case {
            name: "Googlebot",
            ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            browser: "Googlebot",
            browser_version: "2",
            os: UNKNOWN,
            os_version: UNKNOWN,
            device: DeviceType::Other,
            is_bot: true,
        },
        Case {
            name: "Googlebot smartphone",
            ua: "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.94 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            browser: "Googlebot",
            browser_version: "2",
            os: "Android",
            os_version: "6.0",
            device: DeviceType::Other,
            is_bot: true,
        },
    ];

    #[test]
    fn real_user_agents() {
        let mut failures = Vec::new();
        for case in CASES {
            let got = PARSER.parse_uncached(case.ua);
            let want = UaInfo {
                browser: case.browser.to_owned(),
                browser_version: case.browser_version.to_owned(),
                os: case.os.to_owned(),
                os_version: case.os_version.to_owned(),
                device: case.device,
                is_bot: case.is_bot,
            };
            if got != want {
                failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", case.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[derive(Deserialize)]
    struct UaTests {
        test_cases: Vec<UaTest>,
    }

    #[derive(Deserialize)]
    struct UaTest {
        user_agent_string: String,
        family: String,
        major: Option<String>,
    }

    /// uap-core's own expectations for the browser family: we must agree on
    /// at least 99% of them ("Other" there is [`UNKNOWN`] here).
    #[test]
    fn uap_core_corpus_families() {
        let tests: UaTests = serde_yaml::from_str(include_str!("../../benches/data/test_ua.yaml")).expect("yaml");
        let total = tests.test_cases.len();
        assert!(total > 1_000, "corpus unexpectedly small: {total}");

        let mut family_misses = Vec::new();
        let mut major_agree = 0;
        for case in &tests.test_cases {
            let got = PARSER.parse_uncached(&case.user_agent_string);
            let want_family = family(&case.family);
            if got.browser == want_family {
                let want_major = version(case.major.as_deref(), None);
                if got.browser_version == want_major {
                    major_agree += 1;
                }
            } else {
                family_misses
                    .push(format!("{:?}: got {:?}, want {want_family:?}", case.user_agent_string, got.browser));
            }
        }
        let agree = total - family_misses.len();
        assert!(agree * 100 >= total * 99, "family agreement {agree}/{total}; misses:\n{}", family_misses.join("\n"));
        assert!(major_agree * 100 >= total * 99, "family+major agreement {major_agree}/{total}");
    }

    #[test]
    fn long_user_agent_is_unknown_and_fast() {
        let ua = format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) {}",
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 ".repeat(180)
        );
        assert!(ua.len() > 10_000);

        // Best of a few tries, so a preempted thread on a busy machine does
        // not fail the test; a regex pass over 10 KB would take far longer.
        let fastest = (0..5)
            .map(|_| {
                let start = Instant::now();
                black_box(PARSER.parse(black_box(&ua)));
                start.elapsed()
            })
            .min()
            .expect("five tries");
        assert!(fastest < Duration::from_millis(1), "{fastest:?}");
        let info = PARSER.parse(&ua);
        assert_eq!(*info, UaInfo::unknown());
        assert!(!info.is_bot);
        assert_eq!(PARSER.parse_uncached(&ua), UaInfo::unknown());
    }

    #[test]
    fn long_user_agents_are_not_cached() {
        let parser = UaParser::embedded(10).expect("parser");
        let ua = "x".repeat(MAX_UA_LEN + 1);
        parser.parse(&ua);
        assert_eq!(parser.cache.len(), 0);

        let at_limit = format!("Mozilla/5.0 {}", "x".repeat(MAX_UA_LEN - 12));
        assert_eq!(at_limit.len(), MAX_UA_LEN);
        parser.parse(&at_limit);
        assert_eq!(parser.cache.len(), 1, "strings at the limit are parsed and cached");
    }

    #[test]
    fn empty_user_agent_is_unknown_bot() {
        for ua in ["", "  "] {
            let info = PARSER.parse(ua);
            assert_eq!(info.browser, UNKNOWN);
            assert_eq!(info.os, UNKNOWN);
            assert_eq!(info.device, DeviceType::Other);
            assert!(info.is_bot, "agrees with bots::is_bot");
        }
    }

    #[test]
    fn unrecognised_user_agent_is_unknown_not_empty() {
        let info = PARSER.parse_uncached("zzzz");
        assert_eq!(info, UaInfo::unknown());
    }

    #[test]
    fn cache_hit_returns_same_arc() {
        let parser = UaParser::embedded(10).expect("parser");
        let ua = CASES[0].ua;
        let first = parser.parse(ua);
        let second = parser.parse(ua);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, parser.parse_uncached(ua));
        assert_eq!(parser.cache.len(), 1);
    }

    #[test]
    fn cache_is_bounded() {
        let parser = UaParser::embedded(16).expect("parser");
        for i in 0..200 {
            parser.parse(&format!("Mozilla/5.0 (Windows NT 10.0) Chrome/{i}.0.0.0"));
        }
        assert!(parser.cache.len() <= 16, "{}", parser.cache.len());
    }

    #[test]
    fn zero_capacity_parses_without_caching() {
        let parser = UaParser::embedded(0).expect("parser");
        let info = parser.parse(CASES[0].ua);
        assert_eq!(info.browser, "Chrome");
        assert_eq!(parser.cache.len(), 0);
    }

    #[test]
    fn fields_are_capped() {
        let ua = format!("{}/1.0", "A".repeat(200));
        let info = PARSER.parse_uncached(&ua);
        for field in [&info.browser, &info.browser_version, &info.os, &info.os_version] {
            assert!(field.len() <= MAX_FIELD_LEN, "{field:?}");
            assert!(!field.is_empty());
        }
        assert_eq!(capped("ééé"), "ééé");
        assert_eq!(capped(&"é".repeat(40)).len(), MAX_FIELD_LEN);
    }

    #[test]
    fn debug_does_not_print_user_agents() {
        let parser = UaParser::embedded(10).expect("parser");
        parser.parse(CASES[0].ua);
        let shown = format!("{parser:?}");
        assert!(!shown.contains("Mozilla"), "{shown}");
    }

    #[test]
    fn device_type_names() {
        let names: Vec<_> = [DeviceType::Desktop, DeviceType::Mobile, DeviceType::Tablet, DeviceType::Other]
            .map(DeviceType::as_str)
            .into();
        assert_eq!(names, ["desktop", "mobile", "tablet", "other"]);
    }

    #[test]
    fn parser_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<UaParser>();
        assert_send_sync::<UaError>();
    }
}
