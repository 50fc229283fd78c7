//! Criterion benchmarks of the "where from" enrichment, per event: country
//! `.mmdb` lookup, ASN range-table lookup, source/channel classification,
//! screen class, the whole `GeoDb::locate`, and the whole ingest pipeline
//! with real databases (compare `pipeline/record_plausible_event` in
//! `hot_path`, which uses no databases).
//!
//! Needs the databases of `scripts/install-geo.sh` in `var/geo/` (or
//! `HEADCOUNT_GEO_DIR`); without them the geo benches are skipped with a
//! message. No ClickHouse needed.
//!
//! Run: `cargo bench --bench enrich`

use criterion::{Criterion, criterion_group, criterion_main};
use headcount::clock::SystemClock;
use headcount::config::{GeoConfig, RawConfig, RawSite};
use headcount::enrich::geo::asn::AsnTable;
use headcount::enrich::geo::mmdb::MmdbDb;
use headcount::enrich::geo::{GeoDb, GeoLookup, NoGeo};
use headcount::enrich::screen;
use headcount::enrich::source::Referrers;
use headcount::enrich::ua::{DeviceType, UaParser};
use headcount::event::Campaign;
use headcount::ingest::{Ingest, client_ip::client_ip, payload};
use headcount::privacy::{MidnightBridge, Salt, SaltBook};
use headcount::telemetry::{Health, Metrics};
use hyper::HeaderMap;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const BODY: &[u8] = br#"{"n":"pageview","u":"https://example.com/blog/some-post?utm_source=newsletter&utm_medium=email","d":"example.com","r":"https://www.google.com/search?q=x","w":1440}"#;

/// Public addresses spread over the space, IPv4 and IPv6.
const V4: &[&str] = &["8.8.8.8", "77.88.8.8", "1.1.1.1", "95.213.4.1", "5.255.255.242", "151.101.1.69", "185.199.108.153", "213.180.204.62"];
const V6: &[&str] = &["2001:4860:4860::8888", "2a02:6b8::2:242", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e"];

fn geo_files() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("HEADCOUNT_GEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("var/geo"));
    let (c, a) = (dir.join("country.mmdb"), dir.join("asn.csv"));
    if c.is_file() && a.is_file() {
        Some((c, a))
    } else {
        eprintln!("enrich bench: no geo databases in {} (run scripts/install-geo.sh); geo benches skipped", dir.display());
        None
    }
}

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().expect("ip")).collect()
}

fn geo(c: &mut Criterion) {
    let Some((country_path, asn_path)) = geo_files() else { return };
    let (v4, v6) = (addrs(V4), addrs(V6));

    let country = MmdbDb::open(&country_path).expect("country mmdb");
    c.bench_function("geo/country_mmdb_v4", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % v4.len();
            country.country(black_box(v4[i]))
        })
    });
    c.bench_function("geo/country_mmdb_v6", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % v6.len();
            country.country(black_box(v6[i]))
        })
    });

    let started = std::time::Instant::now();
    let asn = AsnTable::open(&asn_path).expect("asn csv");
    let (r4, r6) = asn.ranges();
    eprintln!("enrich bench: ASN table loaded in {:?} ({r4} IPv4 + {r6} IPv6 ranges)", started.elapsed());
    c.bench_function("geo/asn_table_v4", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % v4.len();
            asn.lookup(black_box(v4[i])).map(|a| a.asn)
        })
    });
    c.bench_function("geo/asn_table_v6", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % v6.len();
            asn.lookup(black_box(v6[i])).map(|a| a.asn)
        })
    });

    let cfg = GeoConfig { country_db: Some(country_path), asn_db: Some(asn_path), city_db: None, reload_interval: Duration::ZERO };
    let db = GeoDb::open(&cfg, &Metrics::new().expect("metrics"));
    let all: Vec<IpAddr> = v4.iter().chain(&v6).copied().collect();
    c.bench_function("geo/locate_country_and_asn", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % all.len();
            db.locate_addr(black_box(all[i]))
        })
    });
    c.bench_function("geo/locate_private_address", |b| b.iter(|| db.locate_addr(black_box("192.168.1.20".parse().expect("ip")))));
}

fn sources(c: &mut Criterion) {
    let r = Referrers::builtin();
    let none = Campaign::default();
    let tagged = Campaign { utm_source: "yandex".into(), utm_medium: "cpc".into(), utm_campaign: "spring".into(), ..Campaign::default() };
    c.bench_function("source/known_host", |b| b.iter(|| r.classify(black_box("google.com.br"), &none)));
    c.bench_function("source/known_subdomain", |b| b.iter(|| r.classify(black_box("l.facebook.com"), &none)));
    c.bench_function("source/unknown_host", |b| b.iter(|| r.classify(black_box("blog.some-site.example.org"), &none)));
    c.bench_function("source/utm_override", |b| b.iter(|| r.classify(black_box("t.me"), &tagged)));
    c.bench_function("source/direct", |b| b.iter(|| r.classify(black_box(""), &none)));
    c.bench_function("source/spam_check", |b| b.iter(|| r.is_spam(black_box("blog.some-site.example.org"))));
    c.bench_function("screen/class", |b| b.iter(|| screen::class(black_box(1280), black_box(DeviceType::Desktop))));
}

fn pipeline(c: &mut Criterion) {
    let geo: Arc<dyn GeoLookup> = match geo_files() {
        Some((country, asn)) => Arc::new(GeoDb::open(
            &GeoConfig { country_db: Some(country), asn_db: Some(asn), city_db: None, reload_interval: Duration::ZERO },
            &Metrics::new().expect("metrics"),
        )),
        None => Arc::new(NoGeo),
    };
    let mut raw = RawConfig { sites: vec![RawSite { domain: "example.com".into() }], ..RawConfig::default() };
    raw.privacy.trusted_proxies = vec!["10.0.0.0/8".into()];
    let config = Arc::new(raw.validate(std::path::Path::new("/")).expect("config"));
    let salts = Arc::new(SaltBook::new());
    salts.adopt(time::OffsetDateTime::now_utc().date(), Salt::generate().expect("rng"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 20);
    let ingest = Ingest {
        config,
        ua: Arc::new(UaParser::embedded(10_000).expect("ua")),
        geo,
        referrers: Arc::new(Referrers::builtin()),
        salts,
        bridge: Arc::new(MidnightBridge::new(1000)),
        clock: Arc::new(SystemClock),
        sink: tx,
        metrics: Metrics::new().expect("metrics"),
        health: Arc::new(Health::default()),
    };
    let peer: SocketAddr = "10.0.0.1:5555".parse().expect("addr");
    let trusted = ingest.config.privacy.trusted_proxies.clone();
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", "77.88.8.8".parse().expect("hv"));
    c.bench_function("pipeline/record_with_geo_and_source", |b| {
        b.iter(|| {
            let beacon = payload::from_json(BODY).expect("payload");
            let ip = client_ip(peer, &headers, &trusted);
            let out = ingest.record(beacon, ip, UA).expect("recorded");
            while rx.try_recv().is_ok() {}
            out
        })
    });
}

criterion_group!(benches, geo, sources, pipeline);
criterion_main!(benches);
