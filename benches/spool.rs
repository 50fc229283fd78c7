//! The spool: row encoding and appends, in memory and durable (fsync).
//!
//! `cargo bench --bench spool`. The durable cases write to a temp directory
//! on the same disk as the repository; `append_durable/1` is the latency a
//! lone request pays (one fsync), `append_durable/64` the cost per event
//! when 64 requests share a group commit, as under load. `append_write_ack`
//! is the same with `spool.ack = "write"`: answered once written, the fsync
//! follows on the syncer thread.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use headcount::event::Event;
use headcount::spool::{AckOn, DEFAULT_SYNC_INTERVAL, Durability, Entry, Overflow, Spool, SpoolConfig};
use headcount::store::sink::encode_event;
use std::hint::black_box;

fn spool(durability: Durability, ack: AckOn, dir: &std::path::Path) -> Spool {
    Spool::open(SpoolConfig {
        durability,
        ack,
        dir: dir.to_path_buf(),
        max_bytes: 1 << 34,
        memory_bytes: 1 << 30,
        segment_bytes: 64 << 20,
        overflow: Overflow::Reject,
        sync_interval: DEFAULT_SYNC_INTERVAL,
    })
    .expect("spool")
}

fn benches(c: &mut Criterion) {
    let event = Event::example(time::OffsetDateTime::now_utc(), "/blog/some-post");
    c.bench_function("spool/encode_event", |b| {
        b.iter(|| {
            let mut entry = Entry::with_capacity(512);
            encode_event(black_box(&event), &mut entry).expect("encode");
            entry
        })
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("spool");
    for (name, durability, ack) in [
        ("append_memory", Durability::Memory, AckOn::Fsync),
        ("append_durable", Durability::Spool, AckOn::Fsync),
        ("append_write_ack", Durability::Spool, AckOn::Write),
    ] {
        for concurrent in [1u64, 64] {
            let dir = tempfile::tempdir().expect("tmp");
            let spool = spool(durability, ack, dir.path());
            let mut reader = spool.reader();
            group.throughput(Throughput::Elements(concurrent));
            group.bench_with_input(BenchmarkId::new(name, concurrent), &concurrent, |b, &n| {
                b.iter(|| {
                    rt.block_on(async {
                        let acks: Vec<_> = (0..n)
                            .map(|_| {
                                let mut entry = Entry::with_capacity(512);
                                encode_event(&event, &mut entry).expect("encode");
                                spool.append(entry).expect("append")
                            })
                            .collect();
                        for ack in acks {
                            ack.wait().await.expect("durable");
                        }
                    });
                    // What the writer does with them, minus ClickHouse (with
                    // `ack = "write"`, whatever the syncer has flushed so far).
                    let batch = reader.read(usize::MAX, None);
                    spool.commit(batch.span()).expect("commit");
                })
            });
            spool.close();
        }
    }
    group.finish();
}

criterion_group!(spool_benches, benches);
criterion_main!(spool_benches);
