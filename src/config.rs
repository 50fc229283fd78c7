//! Configuration: a TOML file, every key overridable from the environment.
//!
//! `HEADCOUNT_<SECTION>__<KEY>` overrides `[section] key` (for example
//! `HEADCOUNT_CLICKHOUSE__URL`). [`Config::load`] takes the environment as an
//! argument, so tests never touch the process environment.
//!
//! Loading is two-step: the file and environment are read into permissive
//! raw types (strings, numbers), then [`RawConfig::validate`] checks every
//! field and reports **every** problem at once — an operator fixes the whole
//! file in one go instead of one error per restart.

use crate::privacy::IpMode;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "HEADCOUNT_";

/// The annotated default configuration printed by `headcount config example`.
pub const EXAMPLE: &str = include_str!("config_example.toml");

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub clickhouse: ClickHouseConfig,
    pub privacy: PrivacyConfig,
    pub sites: Vec<SiteConfig>,
    pub log: LogConfig,
    pub geo: GeoConfig,
    pub referrers: ReferrersConfig,
    pub dashboard: DashboardConfig,
    pub limits: LimitsConfig,
    /// The durable spool between ingest and the ClickHouse writer.
    pub spool: crate::spool::SpoolConfig,
    /// Directory of the config file; relative paths are resolved against it.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest accepted URL or referrer, in bytes.
    pub max_url_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Flush when this many events are buffered.
    pub batch_rows: usize,
    /// Most bytes of spooled rows in one INSERT.
    pub batch_bytes: usize,
    /// Flush at least this often while events are buffered.
    pub batch_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct PrivacyConfig {
    pub ip_mode: IpMode,
    pub trusted_proxies: Vec<IpNet>,
    /// File holding the key that seals salts at rest.
    pub salt_key_file: PathBuf,
    /// How long after midnight yesterday's salt is still used to continue
    /// sessions that cross midnight, before it is destroyed.
    pub salt_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub domain: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `headcount=debug`.
    pub level: String,
}

/// IP geolocation databases (see [`crate::enrich::geo`]).
#[derive(Debug, Clone)]
pub struct GeoConfig {
    /// Country `.mmdb`; `None` when disabled.
    pub country_db: Option<PathBuf>,
    /// ASN ranges (`.csv`) or GeoLite2-ASN `.mmdb`; `None` when disabled.
    pub asn_db: Option<PathBuf>,
    /// City `.mmdb` for region and city; `None` when disabled.
    pub city_db: Option<PathBuf>,
    /// How often the files are checked for changes; zero: never.
    pub reload_interval: Duration,
}

/// The operator's additions to the built-in source table and spam list,
/// read and checked when the configuration is validated.
#[derive(Debug, Clone, Default)]
pub struct ReferrersConfig {
    pub sources: Vec<crate::enrich::source::SourceDef>,
    /// Normalised spam hosts (from `spam_domains` and `spam_file`).
    pub spam: Vec<String>,
}

/// The dashboards, shared links and exports (see [`crate::dashboard`]).
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Breakdown rows with fewer visitors are folded into "(other)" in
    /// shared links and exports.
    pub k_threshold: u64,
    /// Per-site overrides of `k_threshold`, by normalised domain.
    pub site_k_threshold: std::collections::BTreeMap<String, u64>,
    /// How long a dashboard login lasts.
    pub session: Duration,
}

impl DashboardConfig {
    /// The k-threshold of `site`.
    pub fn k_for(&self, site: &str) -> u64 {
        self.site_k_threshold.get(site).copied().unwrap_or(self.k_threshold)
    }
}

/// Overload and abuse limits (see [`crate::conn`] and [`crate::ingest::limits`]).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Connections open at once; at the limit no more are accepted until one closes.
    pub max_connections: usize,
    /// Tracking requests (`/api/event`, `/p.gif`) read or processed at once;
    /// beyond it they are refused (503, or the pixel without its event).
    pub max_inflight_requests: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// A request head must arrive within this long; also how long an idle
    /// connection is kept.
    pub header_read_timeout: Duration,
    /// An `/api/event` body must arrive within this long after its head (408).
    pub body_read_timeout: Duration,
    /// Tracking requests per second one client may keep sending; 0: no limit.
    pub rate_limit_per_second: u32,
    /// How many a client may send at once above the sustained rate.
    pub rate_limit_burst: u32,
    /// Clients remembered by the limiter (least recently seen are forgotten).
    pub rate_limit_clients: usize,
    /// Clients (or socket peers) in these networks are never rate-limited.
    pub rate_limit_exempt: Vec<IpNet>,
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The configuration as read, before validation. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RawConfig {
    pub server: RawServer,
    pub clickhouse: RawClickHouse,
    pub privacy: RawPrivacy,
    pub sites: Vec<RawSite>,
    pub log: RawLog,
    pub geo: RawGeo,
    pub referrers: RawReferrers,
    pub dashboard: RawDashboard,
    pub limits: RawLimits,
    pub spool: RawSpool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: u64,
    pub max_url_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawClickHouse {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub batch_rows: u64,
    pub batch_bytes: u64,
    pub batch_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawPrivacy {
    pub ip_mode: String,
    pub trusted_proxies: Vec<String>,
    pub salt_key_file: String,
    pub salt_grace_minutes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RawSite {
    pub domain: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawGeo {
    pub country_db: String,
    pub asn_db: String,
    pub city_db: String,
    pub reload_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RawReferrers {
    pub sources_file: String,
    pub spam_domains: Vec<String>,
    pub spam_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawDashboard {
    pub k_threshold: u64,
    pub site_k_threshold: std::collections::BTreeMap<String, u64>,
    pub session_hours: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawLimits {
    pub max_connections: u64,
    pub max_inflight_requests: u64,
    pub max_header_bytes: u64,
    pub max_headers: u64,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub rate_limit_per_second: u64,
    pub rate_limit_burst: u64,
    pub rate_limit_clients: u64,
    pub rate_limit_exempt: Vec<String>,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_connections: 8192,
            max_inflight_requests: 4096,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            rate_limit_per_second: 50,
            rate_limit_burst: 500,
            rate_limit_clients: 100_000,
            rate_limit_exempt: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawSpool {
    pub durability: String,
    pub ack: String,
    pub dir: String,
    pub max_bytes: u64,
    pub memory_bytes: u64,
    pub segment_bytes: u64,
    pub overflow: String,
    pub sync_interval_ms: u64,
}

impl Default for RawSpool {
    fn default() -> Self {
        RawSpool {
            durability: "spool".into(),
            ack: "fsync".into(),
            dir: "spool".into(),
            max_bytes: 1 << 30,
            memory_bytes: 64 << 20,
            segment_bytes: 64 << 20,
            overflow: "reject".into(),
            sync_interval_ms: crate::spool::DEFAULT_SYNC_INTERVAL.as_millis() as u64,
        }
    }
}

/// `value` of `key` as one of `choices` (the word in the file, the value it
/// means); otherwise a problem naming the choices, and `None`.
fn choose<T: Copy>(p: &mut Vec<String>, key: &str, value: &str, choices: &[(&str, T)]) -> Option<T> {
    if let Some((_, v)) = choices.iter().find(|(word, _)| *word == value) {
        return Some(*v);
    }
    let words: Vec<String> = choices.iter().map(|(word, _)| format!("\"{word}\"")).collect();
    p.push(format!("{key}: `{value}` must be {}", words.join(" or ")));
    None
}

impl RawSpool {
    fn validate(&self, p: &mut Vec<String>, base_dir: &std::path::Path) -> crate::spool::SpoolConfig {
        use crate::spool::{AckOn, Durability, Overflow, SpoolConfig};
        let durability = choose(
            p,
            "spool.durability",
            &self.durability,
            &[("spool", Durability::Spool), ("memory", Durability::Memory)],
        )
        .unwrap_or(Durability::Spool);
        let ack = choose(p, "spool.ack", &self.ack, &[("fsync", AckOn::Fsync), ("write", AckOn::Write)])
            .unwrap_or(AckOn::Fsync);
        let overflow = choose(
            p,
            "spool.overflow",
            &self.overflow,
            &[("reject", Overflow::Reject), ("drop_newest", Overflow::DropNewest)],
        )
        .unwrap_or(Overflow::Reject);
        if self.dir.trim().is_empty() {
            p.push("spool.dir: must not be empty".into());
        }
        if !(1 << 16..=1 << 50).contains(&self.max_bytes) {
            p.push("spool.max_bytes: must be between 65536 and 2^50".into());
        }
        if !(1 << 16..=1 << 40).contains(&self.memory_bytes) {
            p.push("spool.memory_bytes: must be between 65536 and 2^40".into());
        }
        if !(1 << 12..=1 << 32).contains(&self.segment_bytes) {
            p.push("spool.segment_bytes: must be between 4096 and 2^32".into());
        }
        if !(1..=1000).contains(&self.sync_interval_ms) {
            p.push("spool.sync_interval_ms: must be between 1 and 1000".into());
        }
        let dir = PathBuf::from(self.dir.trim());
        SpoolConfig {
            durability,
            ack,
            dir: if dir.is_absolute() { dir } else { base_dir.join(dir) },
            max_bytes: self.max_bytes,
            memory_bytes: self.memory_bytes,
            segment_bytes: self.segment_bytes,
            overflow,
            sync_interval: std::time::Duration::from_millis(self.sync_interval_ms),
        }
    }
}

impl RawLimits {
    fn validate(&self, p: &mut Vec<String>) -> LimitsConfig {
        let mut in_range = |key: &str, value: u64, lo: u64, hi: u64| {
            if !(lo..=hi).contains(&value) {
                p.push(format!("limits.{key}: must be between {lo} and {hi}"));
            }
        };
        in_range("max_connections", self.max_connections, 1, 1_000_000);
        in_range("max_inflight_requests", self.max_inflight_requests, 1, 1_000_000);
        // hyper refuses (panics on) a read buffer under 8 KiB.
        in_range("max_header_bytes", self.max_header_bytes, 8192, 1024 * 1024);
        in_range("max_headers", self.max_headers, 16, 1000);
        in_range("header_read_timeout_ms", self.header_read_timeout_ms, 100, 600_000);
        in_range("body_read_timeout_ms", self.body_read_timeout_ms, 100, 600_000);
        in_range("rate_limit_per_second", self.rate_limit_per_second, 0, 1_000_000);
        in_range("rate_limit_burst", self.rate_limit_burst, 1, 1_000_000);
        in_range("rate_limit_clients", self.rate_limit_clients, 1000, 10_000_000);
        let rate_limit_exempt = parse_cidrs("limits.rate_limit_exempt", &self.rate_limit_exempt, p);
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        LimitsConfig {
            max_connections: self.max_connections as usize,
            max_inflight_requests: self.max_inflight_requests as usize,
            max_header_bytes: self.max_header_bytes as usize,
            max_headers: self.max_headers as usize,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            rate_limit_per_second: small(self.rate_limit_per_second),
            rate_limit_burst: small(self.rate_limit_burst),
            rate_limit_clients: self.rate_limit_clients as usize,
            rate_limit_exempt,
        }
    }
}

/// CIDRs (or bare addresses) of `key`; each one that is neither is a problem.
fn parse_cidrs(key: &str, values: &[String], p: &mut Vec<String>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for cidr in values {
        match cidr.parse::<IpNet>().or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from)) {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => p.push(format!("{key}: `{cidr}` is not a CIDR like 10.0.0.0/8 or an address")),
        }
    }
    nets
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard { k_threshold: 10, site_k_threshold: Default::default(), session_hours: 168 }
    }
}

impl RawDashboard {
    fn validate(&self, p: &mut Vec<String>, sites: &[SiteConfig]) -> DashboardConfig {
        if !(1..=10_000).contains(&self.k_threshold) {
            p.push("dashboard.k_threshold: must be between 1 and 10000".into());
        }
        let mut site_k_threshold = std::collections::BTreeMap::new();
        for (domain, k) in &self.site_k_threshold {
            let d = normalize_domain(domain);
            if !sites.iter().any(|s| s.domain == d) {
                p.push(format!("dashboard.site_k_threshold: `{domain}` is not a configured [[sites]] domain"));
            } else if !(1..=10_000).contains(k) {
                p.push(format!("dashboard.site_k_threshold.\"{domain}\": must be between 1 and 10000"));
            } else {
                site_k_threshold.insert(d, *k);
            }
        }
        if !(1..=24 * 366).contains(&self.session_hours) {
            p.push("dashboard.session_hours: must be between 1 and 8784".into());
        }
        DashboardConfig {
            k_threshold: self.k_threshold,
            site_k_threshold,
            session: Duration::from_secs(self.session_hours * 3600),
        }
    }
}

impl Default for RawGeo {
    fn default() -> Self {
        RawGeo {
            country_db: "geo/country.mmdb".into(),
            asn_db: "geo/asn.csv".into(),
            city_db: String::new(),
            reload_interval_seconds: 30,
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer { listen: "127.0.0.1:8080".into(), max_body_bytes: 64 * 1024, max_url_bytes: 2000 }
    }
}

impl Default for RawClickHouse {
    fn default() -> Self {
        RawClickHouse {
            url: "http://127.0.0.1:8123".into(),
            database: "headcount".into(),
            user: None,
            password: None,
            batch_rows: 100_000,
            batch_bytes: 64 << 20,
            batch_interval_ms: 5_000,
        }
    }
}

impl Default for RawPrivacy {
    fn default() -> Self {
        RawPrivacy {
            ip_mode: "hash".into(),
            trusted_proxies: Vec::new(),
            salt_key_file: "salt.key".into(),
            salt_grace_minutes: 60,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { format: "text".into(), level: "info".into() }
    }
}

const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("server", &["listen", "max_body_bytes", "max_url_bytes"]),
    ("clickhouse", &["url", "database", "user", "password", "batch_rows", "batch_bytes", "batch_interval_ms"]),
    (
        "spool",
        &["durability", "ack", "dir", "max_bytes", "memory_bytes", "segment_bytes", "overflow", "sync_interval_ms"],
    ),
    ("privacy", &["ip_mode", "trusted_proxies", "salt_key_file", "salt_grace_minutes"]),
    ("sites", &["domain"]),
    ("log", &["format", "level"]),
    ("geo", &["country_db", "asn_db", "city_db", "reload_interval_seconds"]),
    ("referrers", &["sources_file", "spam_domains", "spam_file"]),
    ("dashboard", &["k_threshold", "site_k_threshold", "session_hours"]),
    (
        "limits",
        &[
            "max_connections",
            "max_inflight_requests",
            "max_header_bytes",
            "max_headers",
            "header_read_timeout_ms",
            "body_read_timeout_ms",
            "rate_limit_per_second",
            "rate_limit_burst",
            "rate_limit_clients",
            "rate_limit_exempt",
        ],
    ),
];

impl Config {
    /// Load `path` (which may be absent: defaults apply) and the given
    /// environment pairs, then validate.
    pub fn load<I, K, V>(path: &Path, env: I) -> Result<Config, ConfigErrors>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
        let mut problems = Vec::new();
        if path.exists() {
            fig = fig.merge(Toml::file_exact(path));
        }
        for (k, v) in env {
            let Some(rest) = k.as_ref().strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Only `HEADCOUNT_<SECTION>__<KEY>` (and the top-level
            // `HEADCOUNT_SITES`) configure Headcount; other HEADCOUNT_*
            // variables (e.g. the test suite's) are not ours to judge.
            if !rest.contains("__") && !rest.eq_ignore_ascii_case("sites") {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            let value: Value = v.as_ref().parse().unwrap_or_else(|_| Value::from(v.as_ref().to_string()));
            fig = fig.merge(Serialized::defaults(figment::util::nest(&key, value)));
        }
        problems.extend(unknown_keys(&fig));
        let raw: RawConfig = match fig.extract() {
            Ok(raw) => raw,
            Err(e) => {
                problems.extend(e.into_iter().map(|e| e.to_string()));
                return Err(ConfigErrors(problems));
            }
        };
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match raw.validate(&base_dir) {
            Ok(cfg) if problems.is_empty() => Ok(cfg),
            Ok(_) => Err(ConfigErrors(problems)),
            Err(ConfigErrors(more)) => {
                problems.extend(more);
                Err(ConfigErrors(problems))
            }
        }
    }

    /// The configured site for `domain`, if any (case-insensitive, a leading
    /// `www.` is ignored on both sides).
    pub fn site(&self, domain: &str) -> Option<&SiteConfig> {
        let d = normalize_domain(domain);
        self.sites.iter().find(|s| s.domain == d)
    }
}

fn unknown_keys(fig: &Figment) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(Value::Dict(_, top)) = fig.find_value("") else {
        return out;
    };
    for (section, value) in &top {
        let Some((_, keys)) = KNOWN_KEYS.iter().find(|(s, _)| s == section) else {
            out.push(format!("unknown section [{section}]"));
            continue;
        };
        let dicts: Vec<&figment::value::Dict> = match value {
            Value::Dict(_, d) => vec![d],
            Value::Array(_, items) => items.iter().filter_map(|i| i.as_dict()).collect(),
            _ => Vec::new(),
        };
        for d in dicts {
            for k in d.keys() {
                if !keys.contains(&k.as_str()) {
                    out.push(format!("unknown key `{k}` in [{section}] (known: {})", keys.join(", ")));
                }
            }
        }
    }
    out
}

/// Lowercase, strip a trailing dot and a leading `www.`.
pub fn normalize_domain(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    d.strip_prefix("www.").map(str::to_string).unwrap_or(d)
}

impl RawConfig {
    /// Check every field; collect every problem.
    pub fn validate(&self, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut p = Vec::new();

        let listen = self
            .server
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                p.push(format!("server.listen: `{}` is not an address like 127.0.0.1:8080", self.server.listen))
            })
            .ok();
        if self.server.max_body_bytes < 1024 || self.server.max_body_bytes > 16 * 1024 * 1024 {
            p.push("server.max_body_bytes: must be between 1024 and 16777216".into());
        }
        if !(256..=65_536).contains(&self.server.max_url_bytes) {
            p.push("server.max_url_bytes: must be between 256 and 65536".into());
        }

        let ch = &self.clickhouse;
        match url::Url::parse(&ch.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => p.push(format!("clickhouse.url: `{}` is not an http(s) URL", ch.url)),
        }
        if ch.database.is_empty() || !ch.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            p.push(format!("clickhouse.database: `{}` must be non-empty letters, digits or _", ch.database));
        }
        if ch.batch_rows == 0 || ch.batch_rows > 1_000_000 {
            p.push("clickhouse.batch_rows: must be between 1 and 1000000".into());
        }
        if ch.batch_bytes < 64 << 10 || ch.batch_bytes > 1 << 30 {
            p.push("clickhouse.batch_bytes: must be between 65536 and 1073741824".into());
        }
        if ch.batch_interval_ms < 10 || ch.batch_interval_ms > 60_000 {
            p.push("clickhouse.batch_interval_ms: must be between 10 and 60000".into());
        }

        let ip_mode = choose(
            &mut p,
            "privacy.ip_mode",
            &self.privacy.ip_mode,
            &[("hash", IpMode::Hash), ("truncate", IpMode::Truncate)],
        );
        let trusted_proxies = parse_cidrs("privacy.trusted_proxies", &self.privacy.trusted_proxies, &mut p);
        if self.privacy.salt_key_file.is_empty() {
            p.push("privacy.salt_key_file: must not be empty".into());
        }
        if self.privacy.salt_grace_minutes > 48 * 60 {
            p.push("privacy.salt_grace_minutes: at most 2880 (48 hours)".into());
        }

        let mut sites = Vec::new();
        if self.sites.is_empty() {
            p.push("sites: at least one [[sites]] entry with a domain is required".into());
        }
        for (i, s) in self.sites.iter().enumerate() {
            let d = normalize_domain(&s.domain);
            let valid = !d.is_empty()
                && d.len() <= 253
                && !d.contains("://")
                && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
            if !valid {
                p.push(format!("sites[{i}].domain: `{}` must be a bare host name like example.com", s.domain));
            } else if sites.iter().any(|x: &SiteConfig| x.domain == d) {
                p.push(format!("sites[{i}].domain: `{d}` is listed twice"));
            } else {
                sites.push(SiteConfig { domain: d });
            }
        }

        let format =
            choose(&mut p, "log.format", &self.log.format, &[("text", LogFormat::Text), ("json", LogFormat::Json)]);
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level: `{}` is not a tracing filter like \"info\"", self.log.level));
        }

        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base_dir.join(p) }
        };
        let optional_path = |p: &str| (!p.trim().is_empty()).then(|| resolve(p.trim()));
        if self.geo.reload_interval_seconds > 24 * 3600 {
            p.push("geo.reload_interval_seconds: at most 86400 (0 disables reloading)".into());
        }
        let geo = GeoConfig {
            country_db: optional_path(&self.geo.country_db),
            asn_db: optional_path(&self.geo.asn_db),
            city_db: optional_path(&self.geo.city_db),
            reload_interval: Duration::from_secs(self.geo.reload_interval_seconds),
        };
        let referrers = self.referrers.validate(&mut p, &optional_path);
        let dashboard = self.dashboard.validate(&mut p, &sites);
        let limits = self.limits.validate(&mut p);
        let spool = self.spool.validate(&mut p, base_dir);

        match (listen, ip_mode, format) {
            (Some(listen), Some(ip_mode), Some(format)) if p.is_empty() => {
                let key = PathBuf::from(&self.privacy.salt_key_file);
                Ok(Config {
                    server: ServerConfig {
                        listen,
                        max_body_bytes: self.server.max_body_bytes as usize,
                        max_url_bytes: self.server.max_url_bytes as usize,
                    },
                    clickhouse: ClickHouseConfig {
                        url: ch.url.clone(),
                        database: ch.database.clone(),
                        user: ch.user.clone(),
                        password: ch.password.clone(),
                        batch_rows: ch.batch_rows as usize,
                        batch_bytes: ch.batch_bytes as usize,
                        batch_interval: Duration::from_millis(ch.batch_interval_ms),
                    },
                    privacy: PrivacyConfig {
                        ip_mode,
                        trusted_proxies,
                        salt_key_file: if key.is_absolute() { key } else { base_dir.join(key) },
                        salt_grace: Duration::from_secs(self.privacy.salt_grace_minutes * 60),
                    },
                    sites,
                    log: LogConfig { format, level: self.log.level.clone() },
                    geo,
                    referrers,
                    dashboard,
                    limits,
                    spool,
                    base_dir: base_dir.to_path_buf(),
                })
            }
            _ => Err(ConfigErrors(p)),
        }
    }
}

impl RawReferrers {
    /// Read the operator's sources and spam files now, so `config check`
    /// reports their problems with everything else.
    fn validate(&self, p: &mut Vec<String>, path: &dyn Fn(&str) -> Option<PathBuf>) -> ReferrersConfig {
        use crate::enrich::source;
        let mut out = ReferrersConfig::default();
        if let Some(file) = path(&self.sources_file) {
            match std::fs::read_to_string(&file) {
                Ok(text) => match source::parse_sources(&text) {
                    Ok(defs) => out.sources = defs,
                    Err(problems) => p.extend(
                        problems.into_iter().map(|e| format!("referrers.sources_file {}: {e}", file.display())),
                    ),
                },
                Err(e) => p.push(format!("referrers.sources_file: cannot read {}: {e}", file.display())),
            }
        }
        for d in &self.spam_domains {
            match source::spam_host(d) {
                Some(h) => out.spam.push(h),
                None => p.push(format!("referrers.spam_domains: `{d}` is not a host name like spam.example")),
            }
        }
        if let Some(file) = path(&self.spam_file) {
            match std::fs::read_to_string(&file) {
                Ok(text) => match source::parse_spam(&text) {
                    Ok(hosts) => out.spam.extend(hosts),
                    Err(problems) => {
                        p.extend(problems.into_iter().map(|e| format!("referrers.spam_file {}: {e}", file.display())))
                    }
                },
                Err(e) => p.push(format!("referrers.spam_file: cannot read {}: {e}", file.display())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(toml.as_bytes()).expect("write");
        Config::load(f.path(), env.iter().copied())
    }

    #[test]
    fn example_is_valid_and_matches_defaults() {
        let cfg = load_str(EXAMPLE, &[]).expect("example config is valid");
        assert_eq!(cfg.server.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(cfg.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(cfg.clickhouse.database, "headcount");
        assert_eq!(cfg.privacy.ip_mode, IpMode::Hash);
        assert!(cfg.privacy.trusted_proxies.is_empty());
        assert_eq!(cfg.sites, vec![SiteConfig { domain: "example.com".into() }]);
        let defaults = RawConfig::default();
        assert_eq!(cfg.clickhouse.batch_rows as u64, defaults.clickhouse.batch_rows);
        assert_eq!(cfg.clickhouse.batch_bytes as u64, defaults.clickhouse.batch_bytes);
        assert_eq!(cfg.clickhouse.batch_bytes, 64 << 20);
        assert_eq!(cfg.clickhouse.batch_interval, std::time::Duration::from_secs(5));
        assert_eq!(cfg.server.max_body_bytes as u64, defaults.server.max_body_bytes);
    }

    #[test]
    fn env_overrides_file() {
        let cfg = load_str(
            EXAMPLE,
            &[
                ("HEADCOUNT_CLICKHOUSE__URL", "http://10.0.0.5:8123"),
                ("HEADCOUNT_PRIVACY__IP_MODE", "truncate"),
                ("HEADCOUNT_PRIVACY__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"::1\"]"),
                ("HEADCOUNT_CLICKHOUSE__BATCH_ROWS", "10"),
                ("UNRELATED", "x"),
                ("HEADCOUNT_TEST_CLICKHOUSE_URL", "http://elsewhere"),
            ],
        )
        .expect("valid");
        assert_eq!(cfg.clickhouse.url, "http://10.0.0.5:8123");
        assert_eq!(cfg.privacy.ip_mode, IpMode::Truncate);
        assert_eq!(cfg.privacy.trusted_proxies.len(), 2);
        assert_eq!(cfg.clickhouse.batch_rows, 10);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load_str(
            r#"
            [server]
            listen = "nope"
            [clickhouse]
            url = "ftp://x"
            database = "bad-name"
            batch_bytes = 100
            [privacy]
            ip_mode = "plain"
            trusted_proxies = ["10.0.0.0/33", "10.0.0.0/8"]
            colour = "blue"
            [spool]
            ack = "later"
            [log]
            format = "xml"
            [[sites]]
            domain = "https://example.com/"
            [[sites]]
            domain = "a.com"
            [[sites]]
            domain = "www.A.com"
            "#,
            &[],
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "spool.ack: `later` must be \"fsync\" or \"write\"",
            "log.format: `xml` must be \"text\" or \"json\"",
            "server.listen",
            "clickhouse.url",
            "clickhouse.database",
            "clickhouse.batch_bytes: must be between 65536 and 1073741824",
            "privacy.ip_mode",
            "10.0.0.0/33",
            "unknown key `colour`",
            "sites[0].domain",
            "listed twice",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(err.0.len() >= 8, "{text}");
    }

    #[test]
    fn site_lookup_is_normalized() {
        let cfg = load_str(EXAMPLE, &[]).expect("valid");
        assert!(cfg.site("Example.COM").is_some());
        assert!(cfg.site("www.example.com").is_some());
        assert!(cfg.site("example.org").is_none());
    }

    #[test]
    fn geo_and_referrer_settings() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("headcount.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        let cfg = Config::load(&path, std::iter::empty::<(String, String)>()).expect("valid");
        assert_eq!(cfg.geo.country_db, Some(dir.path().join("geo/country.mmdb")));
        assert_eq!(cfg.geo.asn_db, Some(dir.path().join("geo/asn.csv")));
        assert_eq!(cfg.geo.city_db, None);
        assert_eq!(cfg.geo.reload_interval, Duration::from_secs(30));

        std::fs::write(
            dir.path().join("sources.toml"),
            "[[source]]\nname = \"Intranet\"\nhosts = [\"intra.example\"]\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("spam.txt"), "# mine\nspam-one.example\n").expect("write");
        let cfg = Config::load(
            &path,
            [
                ("HEADCOUNT_GEO__CITY_DB", "/srv/geo/city.mmdb"),
                ("HEADCOUNT_GEO__COUNTRY_DB", ""),
                ("HEADCOUNT_REFERRERS__SOURCES_FILE", "sources.toml"),
                ("HEADCOUNT_REFERRERS__SPAM_FILE", "spam.txt"),
                ("HEADCOUNT_REFERRERS__SPAM_DOMAINS", "[\"www.Spam-Two.example\"]"),
            ],
        )
        .expect("valid");
        assert_eq!(cfg.geo.city_db, Some(PathBuf::from("/srv/geo/city.mmdb")));
        assert_eq!(cfg.geo.country_db, None, "empty disables");
        assert_eq!(cfg.referrers.sources.len(), 1);
        assert_eq!(cfg.referrers.spam, vec!["spam-two.example".to_string(), "spam-one.example".to_string()]);
    }

    #[test]
    fn referrer_file_problems_are_reported_with_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("headcount.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        std::fs::write(dir.path().join("sources.toml"), "[[source]]\nname = \"\"\n").expect("write");
        let err = Config::load(
            &path,
            [
                ("HEADCOUNT_REFERRERS__SOURCES_FILE", "sources.toml"),
                ("HEADCOUNT_REFERRERS__SPAM_FILE", "absent.txt"),
                ("HEADCOUNT_REFERRERS__SPAM_DOMAINS", "[\"not a host\"]"),
                ("HEADCOUNT_GEO__RELOAD_INTERVAL_SECONDS", "999999"),
                ("HEADCOUNT_GEO__COLOUR", "x"),
            ],
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "referrers.sources_file",
            "`name` must not be empty",
            "referrers.spam_file: cannot read",
            "`not a host`",
            "geo.reload_interval_seconds",
            "unknown key `colour` in [geo]",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn dashboard_settings() {
        let cfg = load_str(EXAMPLE, &[]).expect("valid");
        assert_eq!(cfg.dashboard.k_for("example.com"), 10);
        assert_eq!(cfg.dashboard.session, Duration::from_secs(168 * 3600));
        let cfg = load_str(
            &format!("{EXAMPLE}\n[dashboard.site_k_threshold]\n\"www.Example.com\" = 3\n"),
            &[("HEADCOUNT_DASHBOARD__K_THRESHOLD", "20")],
        )
        .expect("valid");
        assert_eq!((cfg.dashboard.k_for("example.com"), cfg.dashboard.k_for("other.org")), (3, 20));
        let err = load_str(
            &format!("{EXAMPLE}\n[dashboard.site_k_threshold]\n\"nope.org\" = 3\n"),
            &[("HEADCOUNT_DASHBOARD__K_THRESHOLD", "0"), ("HEADCOUNT_DASHBOARD__SESSION_HOURS", "0")],
        )
        .expect_err("invalid")
        .to_string();
        for needle in ["dashboard.k_threshold", "dashboard.session_hours", "`nope.org` is not a configured"] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn limits_settings() {
        let cfg = load_str(EXAMPLE, &[]).expect("valid");
        let d = RawLimits::default();
        assert_eq!(cfg.limits.max_connections as u64, d.max_connections);
        assert_eq!(u64::from(cfg.limits.rate_limit_per_second), d.rate_limit_per_second);
        assert_eq!(cfg.limits.header_read_timeout, Duration::from_millis(d.header_read_timeout_ms));
        assert!(cfg.limits.rate_limit_exempt.is_empty());
        let cfg = load_str(
            EXAMPLE,
            &[
                ("HEADCOUNT_LIMITS__RATE_LIMIT_PER_SECOND", "0"),
                ("HEADCOUNT_LIMITS__RATE_LIMIT_EXEMPT", "[\"10.1.2.3/8\", \"2001:db8::1\"]"),
            ],
        )
        .expect("valid");
        assert_eq!(cfg.limits.rate_limit_per_second, 0, "0 disables");
        let exempt: Vec<String> = cfg.limits.rate_limit_exempt.iter().map(ToString::to_string).collect();
        assert_eq!(exempt, ["10.0.0.0/8", "2001:db8::1/128"]);
        let err = load_str(
            EXAMPLE,
            &[
                ("HEADCOUNT_LIMITS__MAX_HEADER_BYTES", "4096"),
                ("HEADCOUNT_LIMITS__MAX_CONNECTIONS", "0"),
                ("HEADCOUNT_LIMITS__RATE_LIMIT_EXEMPT", "[\"nope\"]"),
                ("HEADCOUNT_LIMITS__BODY_READ_TIMEOUT_MS", "1"),
            ],
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "limits.max_header_bytes",
            "limits.max_connections",
            "limits.rate_limit_exempt: `nope`",
            "limits.body_read_timeout_ms",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn salt_key_path_is_relative_to_config() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("headcount.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        let cfg = Config::load(&path, std::iter::empty::<(String, String)>()).expect("valid");
        assert_eq!(cfg.privacy.salt_key_file, dir.path().join("salt.key"));
    }
}
