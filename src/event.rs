//! The depersonalized event: the only thing that leaves the ingest path.
//!
//! By construction an [`Event`] cannot carry a raw IP or a raw User-Agent:
//! it has a [`VisitorId`] (keyed daily hash), an optional truncated network
//! (only in `truncate` mode), and coarse facts derived from the User-Agent.
//! URLs are reduced to host and path; the only query parameters kept are the
//! campaign tags (`utm_*`, `ref`, `source`). Location is the country,
//! region, city and network (ASN) looked up from the IP before it was
//! dropped — coarse facts shared by many people, never the address.

use crate::privacy::VisitorId;
use time::OffsetDateTime;

/// Campaign parameters taken from the page URL's query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Campaign {
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_content: String,
    pub utm_term: String,
    /// `?ref=` (Plausible, Product Hunt, …)
    pub ref_param: String,
    /// `?source=`
    pub source_param: String,
}

/// Where a visitor's network is, derived from the IP by
/// [`crate::enrich::geo`]. Every field is empty (or 0) when unknown, for
/// reserved/private addresses, and when no database is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code (`RU`, `US`), empty when unknown.
    pub country: String,
    /// First-level subdivision (English name), only from a city database.
    pub region: String,
    /// City (English name), only from a city database.
    pub city: String,
    /// Autonomous system number of the visitor's network, 0 when unknown.
    pub asn: u32,
    /// The AS organisation — the "ISP name" (`YANDEX LLC`, `Google LLC`).
    pub asn_org: String,
}

/// One pageview or custom event, depersonalized and enriched.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Configured site domain (normalised).
    pub site: String,
    pub ts: OffsetDateTime,
    /// `pageview`, or a custom event name.
    pub name: String,
    pub visitor_id: VisitorId,
    /// Truncated network in `truncate` mode, empty in `hash` mode.
    pub ip_prefix: String,
    pub hostname: String,
    pub pathname: String,
    /// Referrer host (lowercase, no `www.`), empty for direct/self-referral.
    pub referrer_host: String,
    /// Referrer path, without query string or fragment.
    pub referrer_path: String,
    pub campaign: Campaign,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    /// `desktop`, `mobile`, `tablet` or `other`.
    pub device: &'static str,
    /// Viewport width reported by the tracker (`w`), 0 when unknown.
    pub screen_width: u16,
    /// `false` for non-interactive events (they do not end a bounce).
    pub interactive: bool,
    /// Revenue in millionths of the currency unit, 0 when none.
    pub revenue_micros: i64,
    pub revenue_currency: String,
    pub prop_keys: Vec<String>,
    pub prop_values: Vec<String>,
    /// Country, region, city and ASN of the visitor's network.
    pub location: Location,
    /// Traffic source: a known name (`Google`, `Telegram`), else the
    /// referrer host or `utm_source` as sent; empty for direct visits.
    pub source: String,
    /// Acquisition channel (`Organic Search`, `Paid Social`, `Direct`, …),
    /// see [`crate::enrich::source::Channel`].
    pub channel: &'static str,
    /// `mobile`, `tablet`, `laptop` or `desktop` from the viewport width
    /// and device type; empty when neither is known.
    pub screen_class: &'static str,
    /// The visit this event belongs to and what it changes about it
    /// (see [`crate::sessions`]).
    pub session: crate::sessions::Session,
}

impl Event {
    /// A plain desktop pageview of `example.com` at `ts`, for benchmarks
    /// and tests that need a realistic event without running ingest.
    pub fn example(ts: OffsetDateTime, pathname: &str) -> Event {
        let campaign = Campaign::default();
        Event {
            site: "example.com".into(),
            ts,
            name: "pageview".into(),
            visitor_id: VisitorId([7; 16]),
            ip_prefix: String::new(),
            hostname: "example.com".into(),
            pathname: pathname.into(),
            referrer_host: "google.com".into(),
            referrer_path: "/".into(),
            campaign: campaign.clone(),
            browser: "Chrome".into(),
            browser_version: "120".into(),
            os: "Windows".into(),
            os_version: "10".into(),
            device: "desktop",
            screen_width: 1440,
            interactive: true,
            revenue_micros: 0,
            revenue_currency: String::new(),
            prop_keys: Vec::new(),
            prop_values: Vec::new(),
            location: Location {
                country: "RU".into(),
                asn: 13238,
                asn_org: "YANDEX LLC".into(),
                ..Location::default()
            },
            source: "Google".into(),
            channel: "Organic Search",
            screen_class: "desktop",
            session: crate::sessions::Session {
                id: 1,
                start: ts,
                started: true,
                bounce: 1,
                seconds: 0,
                entry: std::sync::Arc::new(crate::sessions::Entry::new(
                    pathname,
                    "Google",
                    "Organic Search",
                    "google.com",
                    &campaign,
                )),
            },
        }
    }
}
