//! What a User-Agent parse costs: Headcount's uap engine (`src/enrich/uap.rs`)
//! against the `ua-parser` (uap-rust) and `uaparser` crates, and what the
//! cache and the bot prefilter cost.
//!
//! Every benchmark runs over the same corpus: the 1,459 distinct User-Agents
//! of uap-core's `tests/test_ua.yaml` (`benches/data/user_agents.txt`), a mix
//! of current and historic browsers, apps, feature phones and bots. Each
//! iteration processes the whole corpus; criterion's throughput line gives
//! strings per second, so the cost of one string is `1 / thrpt`.
//!
//! * `uncached/*` — a full browser + OS + device parse with no cache:
//!   the cost of every cache miss. `ua-parser 0.2.2` and `uaparser 0.6.4`
//!   load the same uap-core `regexes.yaml`; `uaparser` is measured both as
//!   configured by `from_bytes` (Unicode-aware regexes, its default) and with
//!   Unicode off. `headcount parse_uncached` is ours: the same rules with
//!   `ua-parser`'s prefilter in front of `regex-lite` (a sixth of the
//!   memory), plus the bot token scan, classification and owned strings.
//! * `cached_hit/*` — `UaParser::parse` on strings already in the cache.
//! * `is_bot/*` — the token prefilter that runs before any parse.
//!
//! Needs nothing but the checked-in fixtures:
//! `cargo bench --bench ua_parsers -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use headcount::enrich::bots;
use headcount::enrich::ua::UaParser;
use uaparser::Parser as _;

/// One User-Agent per line, deduplicated, from uap-core 0.18.0 tests.
const CORPUS: &str = include_str!("data/user_agents.txt");
/// The same rules file `ua.rs` embeds.
const REGEXES: &str = include_str!("../data/uap-core/regexes.yaml");
/// A common, current desktop browser.
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn corpus() -> Vec<&'static str> {
    CORPUS.lines().filter(|l| !l.is_empty()).collect()
}

fn uncached(c: &mut Criterion) {
    let uas = corpus();

    let regexes: ua_parser::Regexes<'static> = serde_yaml::from_str(REGEXES).expect("regexes.yaml deserializes");
    let uap_rust = ua_parser::Extractor::try_from(regexes).expect("ua-parser compiles");
    let uaparser_unicode = uaparser::UserAgentParser::from_bytes(REGEXES.as_bytes()).expect("uaparser compiles");
    let uaparser_ascii = uaparser::UserAgentParser::builder()
        .with_unicode_support(false)
        .build_from_bytes(REGEXES.as_bytes())
        .expect("uaparser compiles");
    let ours = UaParser::embedded(0).expect("UaParser builds");

    let mut group = c.benchmark_group("uncached");
    group.throughput(Throughput::Elements(uas.len() as u64));
    // One iteration is the whole corpus (tens to hundreds of milliseconds):
    // few, equal-sized samples.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);

    group.bench_function("ua-parser 0.2.2", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(uap_rust.extract(black_box(ua)));
            }
        })
    });
    group.bench_function("uaparser 0.6.4", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(uaparser_unicode.parse(black_box(ua)));
            }
        })
    });
    group.bench_function("uaparser 0.6.4 no-unicode", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(uaparser_ascii.parse(black_box(ua)));
            }
        })
    });
    group.bench_function("headcount parse_uncached", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(ours.parse_uncached(black_box(ua)));
            }
        })
    });
    group.finish();
}

fn cached_hit(c: &mut Criterion) {
    let uas = corpus();
    let parser = UaParser::embedded(uas.len() * 2).expect("UaParser builds");
    for ua in uas.iter().copied().chain([CHROME]) {
        parser.parse(ua);
    }

    let mut group = c.benchmark_group("cached_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chrome", |b| b.iter(|| parser.parse(black_box(CHROME))));
    group.throughput(Throughput::Elements(uas.len() as u64));
    group.bench_function("corpus", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(parser.parse(black_box(ua)));
            }
        })
    });
    group.finish();
}

fn is_bot(c: &mut Criterion) {
    let uas = corpus();
    let mut group = c.benchmark_group("is_bot");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chrome", |b| b.iter(|| bots::is_bot(black_box(CHROME))));
    group.throughput(Throughput::Elements(uas.len() as u64));
    group.bench_function("corpus", |b| {
        b.iter(|| {
            for ua in &uas {
                black_box(bots::is_bot(black_box(ua)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, uncached, cached_hit, is_bot);
criterion_main!(benches);
