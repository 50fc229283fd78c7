//! A cheap bot, crawler and headless-browser prefilter.
//!
//! The ingest path asks [`is_bot`] *before* it parses a User-Agent with
//! [`super::ua::UaParser`]: a token scan costs a fraction of a microsecond,
//! a full uap parse costs microseconds and fills a cache slot. Crawlers,
//! monitors, link unfurlers and HTTP libraries make up a large share of the
//! traffic a public beacon sees, so rejecting them first keeps both the
//! parser's CPU and its cache for people (habit 6 in `STYLE.md`).
//!
//! # How
//!
//! One [Aho-Corasick] automaton over all tokens, ASCII case-insensitive, so a
//! User-Agent is scanned once however long the list grows. The list is the
//! union of what well-known analytics tools treat as non-human (Matomo's
//! device-detector, Plausible, liwan): generic markers (`bot`, `crawl`,
//! `spider`), headless and automation drivers, uptime and performance
//! monitors, link-preview fetchers, AI crawlers and command-line or library
//! HTTP clients. A beacon is sent by JavaScript in a browser; none of these
//! produce a page view a person saw.
//!
//! The generic token `bot` also occurs inside a few innocent words. Those are
//! listed in [`NOT_BOT_TOKENS`] and matched leftmost-longest, so `CUBOT`
//! (a phone brand) consumes its `bot` without flagging the request while a
//! real crawler token elsewhere in the same string still counts.
//!
//! An empty (or all-whitespace) User-Agent is treated as a bot: every
//! browser sends one, scripts often do not.
//!
//! [Aho-Corasick]: https://docs.rs/aho-corasick

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// Case-insensitive substrings that mark a User-Agent as non-human.
///
/// Keep entries lowercase ASCII. Prefer a specific token (`curl/`) over a
/// bare word (`curl`) when the bare word could appear in a real browser's
/// string.
pub const BOT_TOKENS: &[&str] = &[
    // Generic self-descriptions: Googlebot, bingbot, YandexBot, Baiduspider,
    // AhrefsBot, SemrushBot, Applebot, GPTBot, ClaudeBot, *crawler ...
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scraper",
    "fetcher",
    "archiver",
    // Search and ads fetchers whose names contain none of the above.
    "mediapartners-google",
    "feedfetcher-google",
    "apis-google",
    "google-inspectiontool",
    "googleother",
    "google-safety",
    "google-read-aloud",
    "google-site-verification",
    "google favicon",
    "google web preview",
    "google page speed",
    "googleimageproxy",
    "bingpreview",
    "yahooseeker",
    "teoma",
    "yeti/",
    "qwantify",
    "seekport",
    "ia_archiver",
    // Link unfurlers and social previews.
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "meta-externalfetcher",
    "whatsapp",
    "skypeuripreview",
    "embedly",
    "vkshare",
    "flipboardproxy",
    "iframely",
    // AI assistants fetching on a user's behalf, and AI crawlers without "bot".
    "chatgpt-user",
    "claude-web",
    "claude-user",
    "anthropic-ai",
    "perplexity-user",
    "cohere-ai",
    "bytespider",
    "omgili",
    // Headless browsers and automation.
    "headless",
    "phantomjs",
    "slimerjs",
    "htmlunit",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    // Performance and uptime monitors, health checks, scanners.
    "lighthouse",
    "pingdom",
    "gtmetrix",
    "pagespeed",
    "ptst/",
    "speedcurve",
    "catchpoint",
    "statuscake",
    "site24x7",
    "uptime",
    "monitor", // "Rackspace Monitoring", "YottaaMonitor", "monitis"
    "newrelicpinger",
    "datadog",
    "checkly",
    "nagios",
    "check_http",
    "zabbix",
    "blackbox exporter",
    "kube-probe",
    "elb-healthchecker",
    "googlehc",
    "netcraft",
    "censys",
    "zgrab",
    "masscan",
    "nmap",
    "nessus",
    "openvas",
    "nikto",
    "sqlmap",
    "wpscan",
    "httrack",
    "nutch",
    "heritrix",
    "scrapy",
    // Command-line tools and HTTP libraries.
    "curl/",
    "libcurl",
    "pycurl",
    "wget",
    "python-requests",
    "python-urllib",
    "python/",
    "aiohttp",
    "httpx",
    "go-http-client",
    "go-resty",
    // Java's own clients, "Java/1.8.0_151", "Java/17.0.9", but not J2ME
    // feature-phone browsers, "Java/ASVM/1.1".
    "java/1",
    "java/2",
    "java/9",
    "java-http-client",
    "apache-httpclient",
    "jakarta commons-httpclient",
    "okhttp",
    "axios",
    "node-fetch",
    "undici",
    "got (https://github.com/sindresorhus/got)",
    "libwww-perl",
    "lwp::",
    "winhttp",
    "windowspowershell",
    "postmanruntime",
    "insomnia",
    "httpie",
    "guzzlehttp",
    "rest-client",
    "faraday v",
    "http_request2",
    "reqwest",
    "hackney",
    "dart:io",
    "cpp-httplib",
    "ureq/",
    "akka-http",
    "scalaj-http",
    "urlgrabber",
    "aws-sdk",
];

/// Case-insensitive substrings that contain a [`BOT_TOKENS`] entry but name
/// something human. Matched leftmost-longest, they hide the bot token inside
/// them and nothing else.
pub const NOT_BOT_TOKENS: &[&str] = &[
    // Cubot is an Android phone brand: "Android 9; CUBOT P30".
    "cubot", // Facebook's in-app browser names the carrier: "FBCR/OrangeBotswana".
    "botswana",
];

/// One automaton over both lists; a match index below `BOT_TOKENS.len()` is a
/// bot token. `None` only if building failed, which the tests rule out; the
/// scan then falls back to [`is_bot_naive`] rather than panicking.
///
/// A full DFA, not the contiguous NFA `aho-corasick` picks by itself for more
/// than 100 patterns: about 0.5 MB instead of 50 KB, and about 100 ns instead
/// of 260 ns per uap-core corpus string, on the path every request takes.
static MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(BOT_TOKENS.iter().chain(NOT_BOT_TOKENS))
        .ok()
});

/// Whether `ua` looks like a bot, crawler, monitor, headless browser or
/// non-browser HTTP client. Empty and all-whitespace strings count as bots.
///
/// Allocation-free; one pass over the string.
pub fn is_bot(ua: &str) -> bool {
    if ua.trim().is_empty() {
        return true;
    }
    match MATCHER.as_ref() {
        Some(ac) => ac.find_iter(ua).any(|m| m.pattern().as_usize() < BOT_TOKENS.len()),
        None => is_bot_naive(ua),
    }
}

/// The same decision without an automaton: lowercase once, then try every
/// token. Used as the fallback and, in tests, as the oracle for [`is_bot`].
fn is_bot_naive(ua: &str) -> bool {
    if ua.trim().is_empty() {
        return true;
    }
    let mut rest = ua.to_ascii_lowercase();
    for allowed in NOT_BOT_TOKENS {
        rest = rest.replace(allowed, " ");
    }
    BOT_TOKENS.iter().any(|token| rest.contains(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real User-Agent strings, as sent.
    const BOTS: &[(&str, &str)] = &[
        ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        (
            "Googlebot smartphone",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.94 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        (
            "bingbot",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        ),
        ("YandexBot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"),
        ("Baiduspider", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)"),
        ("Yahoo Slurp", "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)"),
        ("DuckDuckBot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)"),
        (
            "Applebot",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        ),
        (
            "GPTBot",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        ),
        (
            "ChatGPT-User",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        ),
        (
            "Bytespider",
            "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        ),
        ("Google AdSense", "Mediapartners-Google"),
        (
            "HeadlessChrome",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36",
        ),
        (
            "PhantomJS",
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        ),
        (
            "Lighthouse",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        ),
        ("Pingdom", "Mozilla/5.0 (compatible; pingdom.com_bot_version_1.4_(http://www.pingdom.com/))"),
        ("UptimeRobot", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"),
        ("Facebook unfurler", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
        ("WhatsApp preview", "WhatsApp/2.23.20.0 A"),
        ("curl", "curl/8.5.0"),
        ("Wget", "Wget/1.21.4"),
        ("python-requests", "python-requests/2.31.0"),
        ("urllib", "Python-urllib/3.11"),
        ("aiohttp", "Python/3.12 aiohttp/3.9.1"),
        ("Go", "Go-http-client/1.1"),
        ("Java", "Java/17.0.9"),
        ("Java 8", "Java/1.8.0_151"),
        (
            "PRTG disguised as IE",
            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; SV1; PRTG Network Monitor (www.paessler.com))",
        ),
        ("OkHttp", "okhttp/4.12.0"),
        ("axios", "axios/1.6.2"),
        ("node-fetch", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"),
        ("Apache HttpClient", "Apache-HttpClient/4.5.14 (Java/17.0.9)"),
        ("kube-probe", "kube-probe/1.28"),
        ("empty", ""),
        ("whitespace", "   "),
        (
            "bot token after an allowed brand",
            "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (compatible; Googlebot/2.1)",
        ),
    ];

    /// Real browsers that must pass.
    const HUMANS: &[(&str, &str)] = &[
        (
            "Chrome Windows",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
        (
            "Chrome Android",
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        ),
        ("Firefox Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
        ("Firefox Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"),
        (
            "Safari macOS",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
        ),
        (
            "Safari iPhone",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        ),
        (
            "Safari iPad",
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        ),
        (
            "Edge",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        ),
        (
            "Yandex Browser",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
        ),
        (
            "Samsung Internet tablet",
            "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
        ),
        (
            "Opera",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
        ),
        (
            "Cubot phone",
            "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
        ),
        (
            "Facebook in-app browser on a Botswana carrier",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 11_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15G77 [FBAN/FBIOS;FBAV/194.0.0.38.99;FBBV/127868476;FBDV/iPhone7,2;FBMD/iPhone;FBSN/iOS;FBSV/11.4.1;FBSS/2;FBCR/OrangeBotswana;FBID/phone;FBLC/en_GB;FBOP/5;FBRV/128807018]",
        ),
        (
            "J2ME feature phone",
            "Mozilla/4.0 (Vodafone/1.0/LG-GU280/v10a Browser/Obigo-Q7.3 MMS/LG-MMS-V1.0/1.2 Java/ASVM/1.1 Profile/MIDP-2.1 Configuration/CLDC-1.1)",
        ),
        (
            "Facebook in-app browser",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/444.0.0.37.107;FBBV/548340315;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
        ),
        (
            "Chrome OS",
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
    ];

    #[test]
    fn flags_bots() {
        for (name, ua) in BOTS {
            assert!(is_bot(ua), "{name} should be a bot: {ua:?}");
        }
    }

    #[test]
    fn passes_browsers() {
        for (name, ua) in HUMANS {
            assert!(!is_bot(ua), "{name} should not be a bot: {ua:?}");
        }
    }

    #[test]
    fn matcher_builds() {
        assert!(MATCHER.is_some(), "the token automaton must build");
    }

    #[test]
    fn case_insensitive() {
        assert!(is_bot("GOOGLEBOT"));
        assert!(is_bot("CuRl/7.0"));
        assert!(is_bot("headlesschrome/1"));
    }

    #[test]
    fn tokens_are_lowercase_ascii() {
        for token in BOT_TOKENS.iter().chain(NOT_BOT_TOKENS) {
            assert!(token.is_ascii(), "{token:?} must be ASCII");
            assert_eq!(*token, token.to_ascii_lowercase(), "{token:?} must be lowercase");
            assert!(!token.is_empty());
        }
    }

    /// The automaton and the naive scan agree on every string of the uap-core
    /// corpus and on the tables above.
    #[test]
    fn automaton_matches_naive_oracle() {
        let corpus = include_str!("../../benches/data/user_agents.txt");
        let tables = BOTS.iter().chain(HUMANS).map(|(_, ua)| *ua);
        for ua in corpus.lines().chain(tables) {
            assert_eq!(is_bot(ua), is_bot_naive(ua), "disagree on {ua:?}");
        }
    }
}
