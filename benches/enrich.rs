//! Criterion benchmarks of the "where from" enrichment, per event: country
//! `.mmdb` lookup, ASN range-table lookup, source/channel classification,
//! screen class, the whole `GeoDb::locate`, and the whole enrichment step
//! (compare `pipeline/record_plausible_event` in `hot_path`).
//!
//! Needs the databases of `scripts/install-geo.sh` in `var/geo/` (or
//! `HEADCOUNT_GEO_DIR`); without them the geo benches are skipped with a
//! message. No ClickHouse needed.
//!
//! Run: `cargo bench --bench enrich`

use criterion::{Criterion, criterion_group, criterion_main};
use headcount::config::GeoConfig;
use headcount::enrich::geo::asn::AsnTable;
use headcount::enrich::geo::mmdb::MmdbDb;
use headcount::enrich::geo::{GeoDb, GeoLookup};
use headcount::enrich::screen;
use headcount::enrich::source::Referrers;
use headcount::enrich::ua::DeviceType;
use headcount::event::Campaign;
use headcount::privacy::ClientIp;
use headcount::telemetry::Metrics;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Public addresses spread over the space, IPv4 and IPv6.
const V4: &[&str] = &[
    "8.8.8.8",
    "77.88.8.8",
    "1.1.1.1",
    "95.213.4.1",
    "5.255.255.242",
    "151.101.1.69",
    "185.199.108.153",
    "213.180.204.62",
];
const V6: &[&str] = &["2001:4860:4860::8888", "2a02:6b8::2:242", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e"];

fn geo_files() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("HEADCOUNT_GEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("var/geo"));
    let (c, a) = (dir.join("country.mmdb"), dir.join("asn.csv"));
    if c.is_file() && a.is_file() {
        Some((c, a))
    } else {
        eprintln!(
            "enrich bench: no geo databases in {} (run scripts/install-geo.sh); geo benches skipped",
            dir.display()
        );
        None
    }
}

/// Bench `f` over `ips` in turn (one address per iteration), so lookups do
/// not hit one cached tree path only.
fn each<T>(c: &mut Criterion, name: &str, ips: &[IpAddr], mut f: impl FnMut(IpAddr) -> T) {
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            f(black_box(ips[i]))
        })
    });
}

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().expect("ip")).collect()
}

fn geo(c: &mut Criterion) {
    let Some((country_path, asn_path)) = geo_files() else {
        return;
    };
    let (v4, v6) = (addrs(V4), addrs(V6));

    let country = MmdbDb::open(&country_path).expect("country mmdb");
    each(c, "geo/country_mmdb_v4", &v4, |ip| country.country(ip));
    each(c, "geo/country_mmdb_v6", &v6, |ip| country.country(ip));

    let started = std::time::Instant::now();
    let asn = AsnTable::open(&asn_path).expect("asn csv");
    let (r4, r6) = asn.ranges();
    eprintln!("enrich bench: ASN table loaded in {:?} ({r4} IPv4 + {r6} IPv6 ranges)", started.elapsed());
    each(c, "geo/asn_table_v4", &v4, |ip| asn.lookup(ip).map(|a| a.asn));
    each(c, "geo/asn_table_v6", &v6, |ip| asn.lookup(ip).map(|a| a.asn));

    let cfg = GeoConfig {
        country_db: Some(country_path),
        asn_db: Some(asn_path),
        city_db: None,
        reload_interval: Duration::ZERO,
    };
    let db = GeoDb::open(&cfg, &Metrics::new().expect("metrics"));
    let all: Vec<IpAddr> = v4.iter().chain(&v6).copied().collect();
    each(c, "geo/locate_country_and_asn", &all, |ip| db.locate_addr(ip));
    c.bench_function("geo/locate_private_address", |b| {
        b.iter(|| db.locate_addr(black_box("192.168.1.20".parse().expect("ip"))))
    });
}

fn sources(c: &mut Criterion) {
    let r = Referrers::builtin();
    let none = Campaign::default();
    let tagged = Campaign {
        utm_source: "yandex".into(),
        utm_medium: "cpc".into(),
        utm_campaign: "spring".into(),
        ..Campaign::default()
    };
    c.bench_function("source/known_host", |b| b.iter(|| r.classify(black_box("google.com.br"), &none)));
    c.bench_function("source/known_subdomain", |b| b.iter(|| r.classify(black_box("l.facebook.com"), &none)));
    c.bench_function("source/unknown_host", |b| b.iter(|| r.classify(black_box("blog.some-site.example.org"), &none)));
    c.bench_function("source/utm_override", |b| b.iter(|| r.classify(black_box("t.me"), &tagged)));
    c.bench_function("source/direct", |b| b.iter(|| r.classify(black_box(""), &none)));
    c.bench_function("source/spam_check", |b| b.iter(|| r.is_spam(black_box("blog.some-site.example.org"))));
    c.bench_function("screen/class", |b| b.iter(|| screen::class(black_box(1280), black_box(DeviceType::Desktop))));
}

/// Everything `Ingest::record` adds for "where from", per event: spam check,
/// country + ASN lookup, source/channel classification, screen class.
/// Compare with `pipeline/record_plausible_event` in `hot_path` (the whole
/// request pipeline, ~2.6 µs).
fn whole_step(c: &mut Criterion) {
    let Some((country, asn)) = geo_files() else { return };
    let cfg =
        GeoConfig { country_db: Some(country), asn_db: Some(asn), city_db: None, reload_interval: Duration::ZERO };
    let geo = GeoDb::open(&cfg, &Metrics::new().expect("metrics"));
    let referrers = Referrers::builtin();
    let none = Campaign::default();
    let campaign = Campaign { utm_source: "newsletter".into(), utm_medium: "email".into(), ..Campaign::default() };
    let visits: Vec<(&str, &str)> =
        [("77.88.8.8", "google.com"), ("2a02:6b8::2:242", "t.me"), ("8.8.8.8", "blog.example.org")].to_vec();
    let mut i = 0;
    c.bench_function("enrich/whole_step", |b| {
        b.iter(|| {
            i = (i + 1) % visits.len();
            let (ip, host) = visits[i];
            let ip = ClientIp::new(black_box(ip).parse().expect("ip"));
            if referrers.is_spam(black_box(host)) {
                return None;
            }
            let location = geo.locate(&ip);
            let acquisition = referrers.classify(host, if i == 0 { &campaign } else { &none });
            Some((location, acquisition, screen::class(1280, DeviceType::Desktop)))
        })
    });
}

criterion_group!(benches, geo, sources, whole_step);
criterion_main!(benches);
