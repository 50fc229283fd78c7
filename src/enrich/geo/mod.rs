//! Where country and ASN lookups run: on the full IP, before it is dropped.
//!
//! The ingest path calls [`GeoLookup::locate`] with the [`ClientIp`] while
//! it still holds the full address and before [`crate::privacy::depersonalize`]
//! consumes it. Only the derived codes and names leave this module — the
//! address itself is never stored, logged or kept.
//!
//! [`GeoDb`] reads local files only (no network calls at runtime, so the
//! data stays on the operator's servers):
//!
//! * a **country** `.mmdb` ([`mmdb`]) — by default ip-location-db's
//!   `geo-whois-asn-country.mmdb` (IPv4 + IPv6, CC BY 4.0);
//! * an **ASN** table: CSV ranges ([`asn`], ip-location-db's `asn` package
//!   or DB-IP's ASN Lite CSV) or a GeoLite2-ASN `.mmdb`;
//! * optionally a **city** `.mmdb` (GeoLite2-City, DB-IP City Lite,
//!   ip-location-db city files) for region and city.
//!
//! Why files are watched rather than read once: the databases are refreshed
//! (monthly or daily) while Headcount runs for months. [`GeoDb::watch`] polls
//! each file's size and mtime; a changed file is loaded on a blocking thread
//! and swapped in atomically ([`arc_swap`]), so lookups never wait and never
//! see half a database. A missing or broken file is not fatal: its fields
//! stay empty, one warning is logged, and `headcount_geo_database_loaded`
//! says 0 until a good file appears.
//!
//! Reserved and private addresses (RFC 1918, loopback, CGNAT, documentation,
//! link-local, ULA, multicast, …) get no location at all ([`is_public`]).

pub mod asn;
pub mod mmdb;
#[cfg(test)]
mod test_mmdb;

use crate::config::GeoConfig;
use crate::privacy::ClientIp;
use crate::telemetry::{GeoDatabase, Metrics};
use arc_swap::ArcSwapOption;
use asn::AsnTable;
use mmdb::MmdbDb;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

pub use crate::event::Location;

/// A source of IP → location facts.
pub trait GeoLookup: Send + Sync + 'static {
    fn locate(&self, ip: &ClientIp) -> Location;
}

/// No database configured: every location is unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGeo;

impl GeoLookup for NoGeo {
    fn locate(&self, _ip: &ClientIp) -> Location {
        Location::default()
    }
}

/// Why a database file could not be used. Never contains an IP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not a usable database: {0}")]
    Format(String),
}

impl GeoError {
    fn io(path: &Path, source: std::io::Error) -> GeoError {
        GeoError::Io { path: path.to_path_buf(), source }
    }

    fn at(self, path: &Path) -> GeoError {
        match self {
            GeoError::Format(m) => GeoError::Format(format!("{}: {m}", path.display())),
            other => other,
        }
    }
}

/// Is `ip` a globally routed unicast address? Everything else — private,
/// loopback, link-local, CGNAT, documentation, benchmarking, multicast,
/// reserved, ULA, 6to4/Teredo/NAT64 wrappers — gets no location.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF 192.0.0/24, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)) // TEST-NET-3
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Global unicast is 2000::/3; everything else (::, ::1, fc00::/7,
    // fe80::/10, ff00::/8, 64:ff9b::/96, 100::/64, …) is not.
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23 IETF (Teredo, benchmarking, ORCHID)
        && !(s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        && s[0] != 0x2002 // 6to4
        && (s[0] & 0xfff0) != 0x3ff0 // 3fff::/20 documentation
}

/// A file's identity for change detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| Stamp { len: m.len(), modified: m.modified().ok() })
}

/// The ASN source: CSV ranges or a GeoLite2-ASN mmdb, by file extension.
#[derive(Debug)]
pub enum AsnDb {
    Ranges(AsnTable),
    Mmdb(MmdbDb),
}

impl AsnDb {
    pub fn open(path: &Path) -> Result<AsnDb, GeoError> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mmdb")) {
            MmdbDb::open(path).map(AsnDb::Mmdb)
        } else {
            AsnTable::open(path).map(AsnDb::Ranges)
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<(u32, String)> {
        match self {
            AsnDb::Ranges(t) => t.lookup(ip).map(|i| (i.asn, i.org.to_string())),
            AsnDb::Mmdb(m) => m.asn(ip),
        }
    }
}

/// One database file and what is currently loaded from it.
struct Slot<T> {
    kind: GeoDatabase,
    path: Option<PathBuf>,
    open: fn(&Path) -> Result<T, GeoError>,
    current: ArcSwapOption<T>,
    /// What the file looked like when last examined (`None` inside: absent).
    /// Outer `None`: never examined.
    seen: Mutex<Option<Option<Stamp>>>,
}

impl<T> Slot<T> {
    fn new(kind: GeoDatabase, path: Option<PathBuf>, open: fn(&Path) -> Result<T, GeoError>) -> Slot<T> {
        Slot { kind, path, open, current: ArcSwapOption::empty(), seen: Mutex::new(None) }
    }

    /// Load the file if it changed since last time. Blocking I/O.
    fn refresh(&self, metrics: &Metrics) {
        let Some(path) = &self.path else { return };
        let now = stamp(path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == Some(now) {
                return;
            }
            *seen = Some(now);
        }
        let db = self.kind.as_str();
        let loaded = self.current.load().is_some();
        if now.is_none() {
            if loaded {
                tracing::warn!(database = db, path = %path.display(), "geo database file disappeared; keeping the copy in memory");
            } else {
                tracing::warn!(
                    database = db,
                    path = %path.display(),
                    "geo database not found: its fields stay empty until the file appears (scripts/install-geo.sh installs it)"
                );
                metrics.geo_loaded(self.kind, false);
            }
            return;
        }
        let started = std::time::Instant::now();
        match (self.open)(path) {
            Ok(t) => {
                self.current.store(Some(Arc::new(t)));
                metrics.geo_loaded(self.kind, true);
                metrics.geo_load(self.kind, true);
                tracing::info!(database = db, path = %path.display(), ms = started.elapsed().as_millis() as u64, reload = loaded, "geo database loaded");
            }
            Err(e) => {
                metrics.geo_load(self.kind, false);
                metrics.geo_loaded(self.kind, loaded);
                if loaded {
                    tracing::warn!(database = db, error = %e, "geo database changed but cannot be read; keeping the previous one");
                } else {
                    tracing::warn!(database = db, error = %e, "geo database cannot be read: its fields stay empty until it is fixed");
                }
            }
        }
    }

    fn get(&self) -> arc_swap::Guard<Option<Arc<T>>> {
        self.current.load()
    }
}

/// Country, ASN and city lookups from local files, reloaded when they change.
pub struct GeoDb {
    country: Slot<MmdbDb>,
    asn: Slot<AsnDb>,
    city: Slot<MmdbDb>,
    reload_interval: Duration,
    metrics: Metrics,
}

impl GeoDb {
    /// Load every configured database now (blocking: the ASN CSV takes a few
    /// hundred milliseconds). Missing or broken files are warned about, not
    /// fatal.
    pub fn open(config: &GeoConfig, metrics: &Metrics) -> GeoDb {
        let db = GeoDb {
            country: Slot::new(GeoDatabase::Country, config.country_db.clone(), MmdbDb::open),
            asn: Slot::new(GeoDatabase::Asn, config.asn_db.clone(), AsnDb::open),
            city: Slot::new(GeoDatabase::City, config.city_db.clone(), MmdbDb::open),
            reload_interval: config.reload_interval,
            metrics: metrics.clone(),
        };
        db.refresh();
        db
    }

    /// Reload whichever files changed on disk. Blocking I/O.
    pub fn refresh(&self) {
        self.country.refresh(&self.metrics);
        self.asn.refresh(&self.metrics);
        self.city.refresh(&self.metrics);
    }

    /// Which databases are loaded now: (country, asn, city).
    pub fn loaded(&self) -> (bool, bool, bool) {
        (self.country.get().is_some(), self.asn.get().is_some(), self.city.get().is_some())
    }

    /// Poll the files every `reload_interval` until `stop` turns true.
    /// A zero interval disables reloading.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.reload_interval.is_zero()
            || self.country.path.is_none() && self.asn.path.is_none() && self.city.path.is_none()
        {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.reload_interval) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let me = self.clone();
            if tokio::task::spawn_blocking(move || me.refresh()).await.is_err() {
                tracing::error!("geo database reload panicked");
            }
        }
    }

    /// The lookup proper, on a plain address (benches and tests).
    pub fn locate_addr(&self, ip: IpAddr) -> Location {
        let ip = ip.to_canonical(); // ::ffff:a.b.c.d is looked up as a.b.c.d
        if !is_public(ip) {
            return Location::default();
        }
        let mut loc = match &*self.city.get() {
            Some(city) => city.city(ip),
            None => Location::default(),
        };
        // A city file's country keeps country, region and city consistent;
        // the country file fills in where the city file has nothing.
        if loc.country.is_empty()
            && let Some(country) = &*self.country.get()
        {
            loc.country = country.country(ip);
        }
        if let Some(asn) = &*self.asn.get()
            && let Some((n, org)) = asn.lookup(ip)
        {
            loc.asn = n;
            loc.asn_org = org;
        }
        loc
    }
}

impl GeoLookup for GeoDb {
    fn locate(&self, ip: &ClientIp) -> Location {
        self.locate_addr(ip.reveal_for_lookup())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_not_public() {
        for ip in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.77",
            "203.0.113.9",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "64:ff9b::808:808",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "2002:808:808::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().expect(ip)), "{ip} must not be public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "77.88.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.1",
            "::ffff:8.8.8.8",
            "2001:4860:4860::8888",
            "2a02:6b8::2:242",
            "2606:4700:4700::1111",
            "2001:200::1",
        ] {
            assert!(is_public(ip.parse().expect(ip)), "{ip} must be public");
        }
    }

    fn config(country: Option<PathBuf>, asn: Option<PathBuf>) -> GeoConfig {
        GeoConfig { country_db: country, asn_db: asn, city_db: None, reload_interval: Duration::from_millis(20) }
    }

    #[test]
    fn missing_files_give_empty_locations_and_a_metric() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Metrics::new().expect("metrics");
        let geo = GeoDb::open(&config(Some(dir.path().join("none.mmdb")), Some(dir.path().join("none.csv"))), &metrics);
        assert_eq!(geo.loaded(), (false, false, false));
        assert_eq!(geo.locate_addr("8.8.8.8".parse().expect("ip")), Location::default());
        assert!(metrics.render().contains("headcount_geo_database_loaded{database=\"asn\"} 0"), "{}", metrics.render());
    }

    #[test]
    fn a_file_that_appears_or_changes_is_loaded_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("asn.csv");
        let metrics = Metrics::new().expect("metrics");
        let geo = GeoDb::open(&config(None, Some(path.clone())), &metrics);
        let ip: IpAddr = "8.8.8.8".parse().expect("ip");
        assert_eq!(geo.locate_addr(ip).asn, 0);

        std::fs::write(&path, "8.8.8.0,8.8.8.255,15169,Google LLC\n").expect("write");
        geo.refresh();
        assert_eq!((geo.locate_addr(ip).asn, geo.locate_addr(ip).asn_org.as_str()), (15169, "Google LLC"));

        std::fs::write(
            &path,
            "8.8.8.0,8.8.8.255,15169,Google LLC (renamed)\n8.8.4.0,8.8.4.255,15169,Google LLC (renamed)\n",
        )
        .expect("write");
        geo.refresh();
        assert_eq!(geo.locate_addr(ip).asn_org, "Google LLC (renamed)");

        std::fs::write(&path, "garbage,,\n").expect("write");
        geo.refresh();
        assert_eq!(geo.locate_addr(ip).asn_org, "Google LLC (renamed)", "a broken file keeps the previous table");
        assert!(
            metrics.render().contains("headcount_geo_loads_total{database=\"asn\",result=\"error\"} 1"),
            "{}",
            metrics.render()
        );

        // Private addresses never get a location, even when a range covers them.
        std::fs::write(&path, "10.0.0.0,10.255.255.255,64512,Private\n").expect("write");
        geo.refresh();
        assert_eq!(geo.locate_addr("10.1.2.3".parse().expect("ip")), Location::default());
    }

    #[test]
    fn a_city_file_wins_and_the_country_file_fills_in() {
        use test_mmdb::{Value::*, build};
        let dir = tempfile::tempdir().expect("tmp");
        let (city, country) = (dir.path().join("city.mmdb"), dir.path().join("country.mmdb"));
        let moscow = Map(vec![
            ("city", Map(vec![("names", Map(vec![("en", Str("Moscow"))]))])),
            ("country", Map(vec![("iso_code", Str("RU"))])),
            ("subdivisions", Array(vec![Map(vec![("names", Map(vec![("en", Str("Moscow"))]))])])),
        ]);
        std::fs::write(&city, build(6, vec![("77.88.0.0".parse().expect("ip"), 18, moscow)])).expect("write");
        let nl = |net: &str| (net.parse().expect("ip"), 16, Map(vec![("country_code", Str("NL"))]));
        std::fs::write(&country, build(6, vec![nl("77.88.0.0"), nl("5.255.0.0")])).expect("write");
        let cfg =
            GeoConfig { country_db: Some(country), asn_db: None, city_db: Some(city), reload_interval: Duration::ZERO };
        let geo = GeoDb::open(&cfg, &Metrics::new().expect("metrics"));
        assert_eq!(geo.loaded(), (true, false, true));
        let want =
            Location { country: "RU".into(), region: "Moscow".into(), city: "Moscow".into(), ..Location::default() };
        assert_eq!(geo.locate_addr("77.88.8.8".parse().expect("ip")), want, "country, region and city agree");
        assert_eq!(geo.locate_addr("5.255.1.1".parse().expect("ip")), location_in("NL"));
        assert_eq!(geo.locate_addr("9.9.9.9".parse().expect("ip")), Location::default());
    }

    fn location_in(country: &str) -> Location {
        Location { country: country.into(), ..Location::default() }
    }

    #[tokio::test]
    async fn watch_reloads_in_the_background_and_stops() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("asn.csv");
        let geo = Arc::new(GeoDb::open(&config(None, Some(path.clone())), &Metrics::new().expect("metrics")));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(geo.clone().watch(stop_rx));
        std::fs::write(&path, "1.1.1.0,1.1.1.255,13335,Cloudflare\n").expect("write");
        let ip: IpAddr = "1.1.1.1".parse().expect("ip");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while geo.locate_addr(ip).asn != 13335 {
            assert!(std::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(2), task).await.expect("watch stops").expect("no panic");
    }
}
