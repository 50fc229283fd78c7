//! Where a visit came from: traffic source, acquisition channel, referrer spam.
//!
//! Site owners read "Google, Yandex, Telegram, the newsletter" — not a list of
//! referrer hosts — and want them grouped into channels ("Organic Search",
//! "Paid Social", "Email", "Direct") the way Plausible and Google Analytics
//! group them, so numbers can be compared across tools. This module turns
//! the stored referrer host and the page's campaign parameters into:
//!
//! * a **source**: `utm_source`, else `source`, else `ref`, else the referrer
//!   host — each mapped to a known name when the table knows it (`fb` →
//!   Facebook, `l.instagram.com` → Instagram, `t.co` → X), otherwise kept as
//!   sent; empty for a direct visit;
//! * a **channel** ([`Channel`]): Google Analytics 4's default channel
//!   rules, driven by the source's category and `utm_medium`/`utm_campaign`.
//!
//! The table is data, not code: `data/referrers.toml` is compiled in, and an
//! operator's file in the same format extends or overrides it. The spam
//! list works the same way (`data/referrer-spam.txt` plus per-install
//! additions); a spam referrer makes [`crate::ingest`] drop the event.
//!
//! Lookups are a handful of hash probes on label-boundary suffixes of the
//! host — no regexes — so classification costs well under a microsecond.

use crate::config::normalize_domain;
use crate::event::Campaign;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

// Lookups hash attacker-chosen hosts, but only against a fixed table built
// from trusted files (nothing from a request is ever inserted), so a fast
// non-DoS-resistant hasher is safe here and halves classification time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// The built-in source table.
pub const BUILTIN_SOURCES: &str = include_str!("../../data/referrers.toml");
/// The built-in referrer-spam list.
pub const BUILTIN_SPAM: &str = include_str!("../../data/referrer-spam.txt");

/// What kind of site a source is; decides the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Search,
    Social,
    Video,
    Email,
    Shopping,
    #[default]
    Other,
}

/// One `[[source]]` entry of a sources file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    pub name: String,
    #[serde(default)]
    pub category: Category,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    source: Vec<SourceDef>,
}

/// Parse a sources file (the format of `data/referrers.toml`). Every problem
/// is reported, one string each.
pub fn parse_sources(text: &str) -> Result<Vec<SourceDef>, Vec<String>> {
    let file: SourcesFile = toml::from_str(text).map_err(|e| vec![e.to_string().trim().to_string()])?;
    let mut problems = Vec::new();
    for (i, s) in file.source.iter().enumerate() {
        if s.name.trim().is_empty() {
            problems.push(format!("source[{i}]: `name` must not be empty"));
        }
        for h in &s.hosts {
            if host_pattern(h).is_none() {
                problems.push(format!("source[{i}] ({}): host `{h}` must look like example.com or brand.*", s.name));
            }
        }
    }
    if problems.is_empty() { Ok(file.source) } else { Err(problems) }
}

/// Parse a spam list: one host per line, `#` comments. Returns the
/// normalised hosts, or the lines that are not host names.
pub fn parse_spam(text: &str) -> Result<Vec<String>, Vec<String>> {
    let mut hosts = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        match spam_host(line) {
            Some(h) => hosts.push(h),
            None => problems.push(format!("line {}: `{line}` is not a host name", n + 1)),
        }
    }
    if problems.is_empty() { Ok(hosts) } else { Err(problems) }
}

/// A spam-list entry, normalised; `None` if it is not a plain host name.
pub fn spam_host(entry: &str) -> Option<String> {
    let h = normalize_domain(entry.trim().trim_start_matches("*."));
    valid_host(&h).then_some(h)
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('.')
        && !h.contains("..")
        && h.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '_')
}

enum Pattern {
    /// `example.com`: the host and its subdomains.
    Host(String),
    /// `google.*`: the label `google` under any (country) top-level domain.
    Brand(String),
}

fn host_pattern(raw: &str) -> Option<Pattern> {
    let h = normalize_domain(raw.trim().trim_start_matches("*."));
    if let Some(brand) = h.strip_suffix(".*") {
        return (valid_host(brand) && !brand.contains('.')).then(|| Pattern::Brand(brand.to_string()));
    }
    valid_host(&h).then_some(Pattern::Host(h))
}

/// Second-level labels under which country domains register names
/// (`google.co.uk`, `yandex.com.tr`, `amazon.com.br`).
const SECOND_LEVEL: &[&str] = &["co", "com", "net", "org", "ac", "gov", "edu", "or", "ne", "go", "gob", "mil", "nic"];

/// Is `rest` (what follows the brand label) a top-level domain, possibly
/// with a second level: `ru`, `com`, `co.uk`, `com.br`?
fn tld_like(rest: &str) -> bool {
    let alpha = |s: &str| {
        !s.is_empty() && s.len() <= 24 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit())
    };
    match rest.split_once('.') {
        None => alpha(rest),
        Some((second, cc)) => SECOND_LEVEL.contains(&second) && cc.len() == 2 && alpha(cc),
    }
}

/// Acquisition channels, after Google Analytics 4's default channel group
/// (Plausible uses the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Direct,
    CrossNetwork,
    PaidShopping,
    PaidSearch,
    PaidSocial,
    PaidVideo,
    Display,
    PaidOther,
    OrganicShopping,
    OrganicSocial,
    OrganicVideo,
    OrganicSearch,
    Referral,
    Email,
    Affiliates,
    Audio,
    Sms,
    MobilePush,
    Unassigned,
}

impl Channel {
    pub const ALL: [Channel; 19] = [
        Channel::Direct,
        Channel::CrossNetwork,
        Channel::PaidShopping,
        Channel::PaidSearch,
        Channel::PaidSocial,
        Channel::PaidVideo,
        Channel::Display,
        Channel::PaidOther,
        Channel::OrganicShopping,
        Channel::OrganicSocial,
        Channel::OrganicVideo,
        Channel::OrganicSearch,
        Channel::Referral,
        Channel::Email,
        Channel::Affiliates,
        Channel::Audio,
        Channel::Sms,
        Channel::MobilePush,
        Channel::Unassigned,
    ];

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Direct => "Direct",
            Channel::CrossNetwork => "Cross-network",
            Channel::PaidShopping => "Paid Shopping",
            Channel::PaidSearch => "Paid Search",
            Channel::PaidSocial => "Paid Social",
            Channel::PaidVideo => "Paid Video",
            Channel::Display => "Display",
            Channel::PaidOther => "Paid Other",
            Channel::OrganicShopping => "Organic Shopping",
            Channel::OrganicSocial => "Organic Social",
            Channel::OrganicVideo => "Organic Video",
            Channel::OrganicSearch => "Organic Search",
            Channel::Referral => "Referral",
            Channel::Email => "Email",
            Channel::Affiliates => "Affiliates",
            Channel::Audio => "Audio",
            Channel::Sms => "SMS",
            Channel::MobilePush => "Mobile Push Notifications",
            Channel::Unassigned => "Unassigned",
        }
    }
}

/// The source and channel of one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquisition {
    /// Known source name, else the value as sent; empty when direct.
    pub source: String,
    pub channel: Channel,
}

/// The compiled source table and spam list.
#[derive(Debug, Default)]
pub struct Referrers {
    sources: Vec<(Box<str>, Category)>,
    hosts: FastMap<Box<str>, u32>,
    brands: FastMap<Box<str>, u32>,
    aliases: FastMap<Box<str>, u32>,
    spam: FastSet<Box<str>>,
}

impl Referrers {
    /// The built-in table and spam list only.
    pub fn builtin() -> Referrers {
        Referrers::new(&[], &[])
    }

    /// The built-in table and spam list, extended by the operator's
    /// (already parsed and validated by [`crate::config`]).
    pub fn new(extra_sources: &[SourceDef], extra_spam: &[String]) -> Referrers {
        let mut r = Referrers::default();
        // The embedded files are checked by unit tests; should one ever be
        // broken, run without it rather than refuse to start.
        match parse_sources(BUILTIN_SOURCES) {
            Ok(defs) => defs.iter().for_each(|d| r.add_source(d)),
            Err(e) => tracing::error!(problems = ?e, "built-in referrer table is invalid"),
        }
        match parse_spam(BUILTIN_SPAM) {
            Ok(hosts) => r.spam.extend(hosts.into_iter().map(Into::into)),
            Err(e) => tracing::error!(problems = ?e, "built-in referrer-spam list is invalid"),
        }
        extra_sources.iter().for_each(|d| r.add_source(d));
        r.spam.extend(extra_spam.iter().filter_map(|h| spam_host(h)).map(Into::into));
        r
    }

    fn add_source(&mut self, def: &SourceDef) {
        let name = def.name.trim();
        // An operator entry with a built-in name replaces its category.
        let idx = match self.sources.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(i) => {
                self.sources[i].1 = def.category;
                i as u32
            }
            None => {
                self.sources.push((name.into(), def.category));
                (self.sources.len() - 1) as u32
            }
        };
        self.aliases.insert(name.to_lowercase().into(), idx);
        for a in &def.aliases {
            self.aliases.insert(a.trim().to_lowercase().into(), idx);
        }
        for h in &def.hosts {
            match host_pattern(h) {
                Some(Pattern::Host(h)) => self.hosts.insert(h.into(), idx),
                Some(Pattern::Brand(b)) => self.brands.insert(b.into(), idx),
                None => None,
            };
        }
    }

    /// Is this (normalised) referrer host, or a domain above it, listed as spam?
    pub fn is_spam(&self, host: &str) -> bool {
        !host.is_empty() && suffixes(host).any(|s| self.spam.contains(s))
    }

    /// The known source for a (normalised) host: the most specific listed
    /// host or parent domain first, then `brand.*` patterns.
    pub fn source_of_host(&self, host: &str) -> Option<(&str, Category)> {
        if host.is_empty() {
            return None;
        }
        let idx = suffixes(host).find_map(|s| self.hosts.get(s)).or_else(|| {
            suffixes(host).find_map(|s| {
                let (brand, rest) = s.split_once('.')?;
                if tld_like(rest) { self.brands.get(brand) } else { None }
            })
        })?;
        self.sources.get(*idx as usize).map(|(n, c)| (&**n, *c))
    }

    /// The known source for a `utm_source`/`source`/`ref` value: by name or
    /// alias, or by host when the value is a domain (`chatgpt.com`).
    pub fn source_of_tag(&self, tag: &str) -> Option<(&str, Category)> {
        let t = tag.trim().to_lowercase();
        if let Some(i) = self.aliases.get(t.as_str()) {
            return self.sources.get(*i as usize).map(|(n, c)| (&**n, *c));
        }
        if t.contains('.') && !t.contains(' ') {
            let host = t.split_once("://").map_or(t.as_str(), |(_, rest)| rest);
            let host = host.split(['/', '?', '#']).next().unwrap_or_default();
            return self.source_of_host(&normalize_domain(host));
        }
        None
    }

    /// Source and channel of a visit from its stored referrer host and the
    /// page's campaign parameters.
    pub fn classify(&self, referrer_host: &str, campaign: &Campaign) -> Acquisition {
        let tag = [&campaign.utm_source, &campaign.source_param, &campaign.ref_param]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty());
        let (source, category) = match tag {
            Some(tag) => match self.source_of_tag(tag) {
                Some((name, cat)) => (name.to_string(), Some(cat)),
                None => (tag.to_string(), None),
            },
            None => match self.source_of_host(referrer_host) {
                Some((name, cat)) => (name.to_string(), Some(cat)),
                None => (referrer_host.to_string(), None),
            },
        };
        let channel = channel(&source, category, !referrer_host.is_empty(), campaign);
        Acquisition { source, channel }
    }
}

/// `a.b.example.com`, `b.example.com`, `example.com`, `com`.
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(host), |h| h.split_once('.').map(|(_, rest)| rest))
}

/// Google Analytics 4's default channel rules, in their order.
fn channel(source: &str, category: Option<Category>, has_referrer: bool, campaign: &Campaign) -> Channel {
    let medium = campaign.utm_medium.trim().to_lowercase();
    let campaign_name = campaign.utm_campaign.trim().to_lowercase();
    let src = source.to_lowercase();
    if src.is_empty() && medium.is_empty() {
        return Channel::Direct;
    }
    let is = |c: Category| category == Some(c);
    let paid = medium.contains("cp") || medium == "ppc" || medium == "retargeting" || medium.starts_with("paid");
    let shopping_campaign = campaign_name.contains("shop");
    let email_word = |s: &str| matches!(s, "email" | "e-mail" | "e_mail" | "e mail" | "mail" | "newsletter");
    match () {
        _ if campaign_name.contains("cross-network") => Channel::CrossNetwork,
        _ if paid && (is(Category::Shopping) || shopping_campaign) => Channel::PaidShopping,
        _ if paid && is(Category::Search) => Channel::PaidSearch,
        _ if paid && is(Category::Social) => Channel::PaidSocial,
        _ if paid && is(Category::Video) => Channel::PaidVideo,
        _ if matches!(medium.as_str(), "display" | "banner" | "expandable" | "interstitial" | "cpm") => {
            Channel::Display
        }
        _ if paid => Channel::PaidOther,
        _ if is(Category::Shopping) || shopping_campaign => Channel::OrganicShopping,
        _ if is(Category::Social)
            || matches!(
                medium.as_str(),
                "social" | "social-network" | "social-media" | "sm" | "social network" | "social media"
            ) =>
        {
            Channel::OrganicSocial
        }
        _ if is(Category::Video) || medium.contains("video") => Channel::OrganicVideo,
        _ if is(Category::Search) || medium == "organic" => Channel::OrganicSearch,
        _ if is(Category::Email) || email_word(&src) || email_word(&medium) => Channel::Email,
        _ if medium == "affiliate" || medium == "affiliates" => Channel::Affiliates,
        _ if matches!(medium.as_str(), "referral" | "app" | "link") => Channel::Referral,
        _ if medium == "audio" => Channel::Audio,
        _ if src == "sms" || medium == "sms" => Channel::Sms,
        _ if medium.ends_with("push")
            || medium.contains("mobile")
            || medium.contains("notification")
            || src == "firebase" =>
        {
            Channel::MobilePush
        }
        // A referrer without tags, or a tag naming a known website.
        _ if medium.is_empty() && (has_referrer || is(Category::Other)) => Channel::Referral,
        _ => Channel::Unassigned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Referrers {
        Referrers::builtin()
    }

    fn visit(r: &Referrers, referrer_host: &str, query: &[(&str, &str)]) -> (String, &'static str) {
        let mut c = Campaign::default();
        for (k, v) in query {
            let slot = match *k {
                "utm_source" => &mut c.utm_source,
                "utm_medium" => &mut c.utm_medium,
                "utm_campaign" => &mut c.utm_campaign,
                "ref" => &mut c.ref_param,
                "source" => &mut c.source_param,
                other => panic!("unknown test key {other}"),
            };
            *slot = v.to_string();
        }
        let a = r.classify(referrer_host, &c);
        (a.source, a.channel.as_str())
    }

    #[test]
    fn the_embedded_files_are_valid() {
        let defs = parse_sources(BUILTIN_SOURCES).expect("data/referrers.toml parses");
        assert!(defs.len() > 60, "{}", defs.len());
        let spam = parse_spam(BUILTIN_SPAM).expect("data/referrer-spam.txt parses");
        assert!(spam.len() > 50);
        let mut names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a source name is listed twice");
    }

    /// Every source named in the issue, plus the tricky hosts, by the
    /// referrer host a browser actually sends (normalised: no `www.`).
    #[test]
    fn every_listed_source_is_classified() {
        let r = table();
        let cases: &[(&str, &str, &str)] = &[
            ("google.com", "Google", "Organic Search"),
            ("google.ru", "Google", "Organic Search"),
            ("google.co.uk", "Google", "Organic Search"),
            ("google.com.br", "Google", "Organic Search"),
            ("news.google.com", "Google", "Organic Search"),
            ("com.google.android.googlequicksearchbox", "Google", "Organic Search"),
            ("yandex.ru", "Yandex", "Organic Search"),
            ("yandex.com.tr", "Yandex", "Organic Search"),
            ("yandex.kz", "Yandex", "Organic Search"),
            ("ya.ru", "Yandex", "Organic Search"),
            ("bing.com", "Bing", "Organic Search"),
            ("cn.bing.com", "Bing", "Organic Search"),
            ("duckduckgo.com", "DuckDuckGo", "Organic Search"),
            ("go.mail.ru", "Mail.ru", "Organic Search"),
            ("baidu.com", "Baidu", "Organic Search"),
            ("ecosia.org", "Ecosia", "Organic Search"),
            ("rambler.ru", "Rambler", "Organic Search"),
            ("nova.rambler.ru", "Rambler", "Organic Search"),
            ("search.yahoo.com", "Yahoo!", "Organic Search"),
            ("search.brave.com", "Brave Search", "Organic Search"),
            ("vk.com", "VK", "Organic Social"),
            ("away.vk.com", "VK", "Organic Social"),
            ("m.vk.com", "VK", "Organic Social"),
            ("ok.ru", "OK", "Organic Social"),
            ("t.me", "Telegram", "Organic Social"),
            ("web.telegram.org", "Telegram", "Organic Social"),
            ("org.telegram.messenger", "Telegram", "Organic Social"),
            ("facebook.com", "Facebook", "Organic Social"),
            ("l.facebook.com", "Facebook", "Organic Social"),
            ("m.facebook.com", "Facebook", "Organic Social"),
            ("t.co", "X", "Organic Social"),
            ("twitter.com", "X", "Organic Social"),
            ("x.com", "X", "Organic Social"),
            ("linkedin.com", "LinkedIn", "Organic Social"),
            ("lnkd.in", "LinkedIn", "Organic Social"),
            ("reddit.com", "Reddit", "Organic Social"),
            ("old.reddit.com", "Reddit", "Organic Social"),
            ("github.com", "GitHub", "Organic Social"),
            ("instagram.com", "Instagram", "Organic Social"),
            ("l.instagram.com", "Instagram", "Organic Social"),
            ("pinterest.com", "Pinterest", "Organic Social"),
            ("ru.pinterest.com", "Pinterest", "Organic Social"),
            ("pinterest.co.uk", "Pinterest", "Organic Social"),
            ("dzen.ru", "Dzen", "Organic Social"),
            ("zen.yandex.ru", "Dzen", "Organic Social"),
            ("habr.com", "Habr", "Organic Social"),
            ("news.ycombinator.com", "Hacker News", "Organic Social"),
            ("youtube.com", "YouTube", "Organic Video"),
            ("m.youtube.com", "YouTube", "Organic Video"),
            ("youtu.be", "YouTube", "Organic Video"),
            ("rutube.ru", "Rutube", "Organic Video"),
            ("mail.google.com", "Gmail", "Email"),
            ("com.google.android.gm", "Gmail", "Email"),
            ("mail.yandex.ru", "Yandex Mail", "Email"),
            ("e.mail.ru", "Mail.ru Mail", "Email"),
            ("outlook.live.com", "Outlook", "Email"),
            ("ozon.ru", "Ozon", "Organic Shopping"),
            ("market.yandex.ru", "Yandex Market", "Organic Shopping"),
            ("amazon.de", "Amazon", "Organic Shopping"),
            ("en.wikipedia.org", "Wikipedia", "Referral"),
            ("chatgpt.com", "ChatGPT", "Referral"),
            ("gemini.google.com", "Gemini", "Referral"),
            ("blog.example.org", "blog.example.org", "Referral"),
            ("google.example.com", "google.example.com", "Referral"),
            ("notgoogle.com", "notgoogle.com", "Referral"),
            ("", "", "Direct"),
        ];
        for (host, source, channel) in cases {
            assert_eq!(visit(&r, host, &[]), (source.to_string(), *channel), "referrer host {host:?}");
        }
    }

    #[test]
    fn campaign_tags_override_the_referrer() {
        let r = table();
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            ("google.com", &[("utm_medium", "cpc")], "Google", "Paid Search"),
            ("", &[("utm_source", "google"), ("utm_medium", "cpc")], "Google", "Paid Search"),
            ("", &[("utm_source", "yandex"), ("utm_medium", "ppc")], "Yandex", "Paid Search"),
            ("", &[("utm_source", "yandex_direct"), ("utm_medium", "paid")], "Yandex", "Paid Search"),
            ("", &[("utm_source", "fb"), ("utm_medium", "paid_social")], "Facebook", "Paid Social"),
            ("", &[("utm_source", "ig"), ("utm_medium", "cpc")], "Instagram", "Paid Social"),
            ("", &[("utm_source", "vk"), ("utm_medium", "social")], "VK", "Organic Social"),
            ("", &[("utm_source", "vkontakte")], "VK", "Organic Social"),
            ("", &[("utm_source", "tg")], "Telegram", "Organic Social"),
            ("", &[("utm_source", "youtube"), ("utm_medium", "cpv")], "YouTube", "Paid Video"),
            ("", &[("utm_source", "newsletter"), ("utm_medium", "email")], "newsletter", "Email"),
            ("", &[("utm_source", "newsletter")], "newsletter", "Email"),
            ("", &[("utm_source", "partner"), ("utm_medium", "display")], "partner", "Display"),
            ("", &[("utm_source", "partner"), ("utm_medium", "cpm")], "partner", "Display"),
            ("", &[("utm_source", "partner"), ("utm_medium", "cpa")], "partner", "Paid Other"),
            ("", &[("utm_source", "partner"), ("utm_medium", "affiliate")], "partner", "Affiliates"),
            ("", &[("utm_source", "ozon"), ("utm_medium", "cpc")], "Ozon", "Paid Shopping"),
            ("", &[("utm_source", "partner"), ("utm_campaign", "summer-shop")], "partner", "Organic Shopping"),
            ("", &[("utm_source", "partner"), ("utm_campaign", "cross-network-q3")], "partner", "Cross-network"),
            ("", &[("utm_source", "X")], "X", "Organic Social"),
            ("", &[("utm_source", "sms")], "sms", "SMS"),
            ("", &[("utm_source", "app"), ("utm_medium", "push")], "app", "Mobile Push Notifications"),
            ("", &[("utm_source", "podcast"), ("utm_medium", "audio")], "podcast", "Audio"),
            ("", &[("utm_medium", "organic")], "", "Organic Search"),
            ("", &[("utm_source", "chatgpt.com")], "ChatGPT", "Referral"),
            ("", &[("utm_source", "something")], "something", "Unassigned"),
            ("", &[("ref", "producthunt")], "Product Hunt", "Organic Social"),
            ("", &[("source", "telegram")], "Telegram", "Organic Social"),
            ("t.me", &[("ref", "habr")], "Habr", "Organic Social"),
            ("example.org", &[("utm_medium", "referral")], "example.org", "Referral"),
            ("example.org", &[("utm_medium", "weird")], "example.org", "Unassigned"),
            // utm_source wins over source and ref.
            ("", &[("utm_source", "google"), ("ref", "vk"), ("source", "tg")], "Google", "Organic Search"),
        ];
        for (host, query, source, channel) in cases {
            assert_eq!(visit(&r, host, query), (source.to_string(), *channel), "{host:?} {query:?}");
        }
    }

    #[test]
    fn spam_matches_hosts_and_their_subdomains_only() {
        let r = Referrers::new(&[], &["spam.example".into(), "*.Junk.Example.".into()]);
        for host in ["semalt.com", "foo.semalt.com", "darodar.com", "spam.example", "a.b.spam.example", "junk.example"]
        {
            assert!(r.is_spam(host), "{host}");
        }
        for host in ["", "notsemalt.com", "semalt.com.evil.org", "google.com", "example"] {
            assert!(!r.is_spam(host), "{host}");
        }
    }

    #[test]
    fn operator_entries_extend_and_override() {
        let extra = parse_sources(
            r#"
            [[source]]
            name = "Partner Portal"
            category = "other"
            hosts = ["partners.example.net"]
            aliases = ["pp"]

            [[source]]
            name = "Habr"
            category = "other"
            hosts = ["habr.com"]
            "#,
        )
        .expect("valid");
        let r = Referrers::new(&extra, &[]);
        assert_eq!(visit(&r, "partners.example.net", &[]), ("Partner Portal".into(), "Referral"));
        assert_eq!(visit(&r, "", &[("utm_source", "PP")]), ("Partner Portal".into(), "Referral"));
        assert_eq!(visit(&r, "habr.com", &[]), ("Habr".into(), "Referral"), "category overridden");
        assert_eq!(visit(&r, "t.me", &[]), ("Telegram".into(), "Organic Social"), "built-ins stay");
    }

    #[test]
    fn bad_source_files_name_every_problem() {
        let err = parse_sources("[[source]]\nname = \"\"\nhosts = [\"bad host\", \"a.*.b\"]\n").expect_err("invalid");
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(parse_sources("[[source]]\nname = \"A\"\ncolour = \"red\"\n").is_err(), "unknown keys are refused");
        assert!(parse_sources("[[source]]\nname = \"A\"\ncategory = \"tv\"\n").is_err());
        let err = parse_spam("ok.example\nnot a host\n# comment\n\n").expect_err("invalid");
        assert_eq!(err, vec!["line 2: `not a host` is not a host name".to_string()]);
    }

    #[test]
    fn channel_names_are_distinct() {
        let mut names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Channel::ALL.len());
    }
}
