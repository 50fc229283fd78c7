//! ClickHouse plumbing: migrations, row round trips, the compress=1 trap.

use crate::common::*;
use headcount::event::{Campaign, Event, Location};
use headcount::privacy::VisitorId;
use headcount::store::{self, migrate, row::EventRow};

fn ch_config(database: &str) -> headcount::config::ClickHouseConfig {
    let mut raw = headcount::config::RawConfig::default();
    raw.clickhouse.url = clickhouse_url();
    raw.clickhouse.database = database.into();
    raw.sites = vec![headcount::config::RawSite { domain: "example.com".into() }];
    raw.privacy.salt_key_file = "/nonexistent/salt.key".into();
    raw.validate(std::path::Path::new("/")).expect("valid").clickhouse
}

/// A fresh database, migrated, and the configuration that points at it.
async fn migrated(tag: &str) -> headcount::config::ClickHouseConfig {
    let database = fresh_database(tag);
    let cfg = ch_config(&database);
    migrate::run(&store::server_client(&cfg), &database).await.expect("migrate");
    cfg
}

#[tokio::test]
async fn single_row_select_round_trip() {
    // Guards the broken `compress=1` of the Debian 18.16 build: a small
    // result must come back as one row, not as an empty 200.
    let cfg = ch_config("default");
    let client = store::server_client(&cfg);
    let one: u8 = client.query("SELECT 1").fetch_one().await.expect("one row");
    assert_eq!(one, 1);
    let s: String = client.query("SELECT 'héllo'").fetch_one().await.expect("one row");
    assert_eq!(s, "héllo");
}

#[tokio::test]
async fn migrations_are_idempotent_and_recorded() {
    let database = fresh_database("migrate");
    let cfg = ch_config(&database);
    let server = store::server_client(&cfg);
    let first = migrate::run(&server, &database).await.expect("first run");
    assert_eq!(first.len(), migrate::MIGRATIONS.len());
    let second = migrate::run(&server, &database).await.expect("second run");
    assert!(second.is_empty(), "nothing to do the second time");
    let db = store::client(&cfg);
    let n: u64 = db.query("SELECT count() FROM schema_migrations").fetch_one().await.expect("ledger");
    assert_eq!(n, migrate::MIGRATIONS.len() as u64);
    assert!(migrate::column_exists(&db, "events", "visitor_id").await.expect("columns"));
    assert!(!migrate::column_exists(&db, "events", "ip").await.expect("columns"));
    let engine: String = db
        .query("SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'events'")
        .fetch_one()
        .await
        .expect("engine");
    assert_eq!(engine, "MergeTree");
}

#[tokio::test]
async fn an_interrupted_add_column_migration_reruns() {
    // 18.16 has no ADD COLUMN IF NOT EXISTS: the runner must skip columns
    // that a half-applied 0003 already added instead of failing on them.
    let database = fresh_database("halfmigrated");
    let cfg = ch_config(&database);
    let server = store::server_client(&cfg);
    server.query(&format!("CREATE DATABASE `{database}`")).execute().await.expect("create db");
    let db = store::client(&cfg);
    for stmt in migrate::MIGRATIONS[0].statements() {
        db.query(&stmt).execute().await.expect("0001");
    }
    db.query("ALTER TABLE events ADD COLUMN country LowCardinality(String)")
        .execute()
        .await
        .expect("one column of 0003");
    let applied = migrate::run(&server, &database).await.expect("migrations run over the half-applied state");
    assert_eq!(applied.len(), migrate::MIGRATIONS.len());
    for column in ["country", "asn", "asn_org", "source", "channel", "screen_class"] {
        assert!(migrate::column_exists(&db, "events", column).await.expect("columns"), "{column}");
    }
}

/// One event with every column set to a recognisable value.
fn sample_event(ts: time::OffsetDateTime) -> Event {
    Event {
        site: "example.com".into(),
        ts,
        name: "Signup".into(),
        visitor_id: VisitorId([0xAB; 16]),
        ip_prefix: "203.0.113.0/24".into(),
        hostname: "example.com".into(),
        pathname: "/путь".into(),
        referrer_host: "yandex.ru".into(),
        referrer_path: "/search".into(),
        campaign: Campaign {
            utm_source: "s".into(),
            utm_medium: "m".into(),
            utm_campaign: "c".into(),
            utm_content: "co".into(),
            utm_term: "t".into(),
            ref_param: "r".into(),
            source_param: "so".into(),
        },
        browser: "Firefox".into(),
        browser_version: "121".into(),
        os: "Linux".into(),
        os_version: "".into(),
        device: "desktop",
        screen_width: 1920,
        interactive: false,
        revenue_micros: -1_500_000,
        revenue_currency: "EUR".into(),
        prop_keys: vec!["plan".into(), "seats".into()],
        prop_values: vec!["pro".into(), "3".into()],
        location: Location {
            country: "RU".into(),
            region: "Moscow".into(),
            city: "Москва".into(),
            asn: 4_200_000_001,
            asn_org: "YANDEX LLC".into(),
        },
        source: "Yandex".into(),
        channel: "Organic Search",
        screen_class: "laptop",
        session: headcount::sessions::Session {
            id: u64::MAX - 7,
            start: ts - time::Duration::minutes(5),
            started: true,
            bounce: -1,
            seconds: 4_000_000_000,
            entry: std::sync::Arc::new(headcount::sessions::Entry::new(
                "/вход",
                "Google",
                "Paid Search",
                "google.com",
                &headcount::event::Campaign {
                    utm_source: "us".into(),
                    utm_medium: "um".into(),
                    utm_campaign: "uc".into(),
                    utm_content: "uco".into(),
                    utm_term: "ut".into(),
                    ..Default::default()
                },
            )),
        },
    }
}

/// One spool record holding `event`.
fn entry(event: &Event) -> headcount::spool::Entry {
    let mut entry = headcount::spool::Entry::default();
    headcount::store::sink::encode_event(event, &mut entry).expect("encode");
    entry
}

/// A spool holding `events`, closed, and a writer over it into `cfg`.
async fn spooled(
    cfg: &headcount::config::ClickHouseConfig,
    dir: &std::path::Path,
    batch_bytes: usize,
    events: impl IntoIterator<Item = Event>,
) -> (headcount::spool::Spool, headcount::store::writer::Writer) {
    spooled_entries(cfg, dir, batch_bytes, events.into_iter().map(|e| entry(&e))).await
}

/// A spool holding `entries`, closed, and a writer over it into `cfg`.
async fn spooled_entries(
    cfg: &headcount::config::ClickHouseConfig,
    dir: &std::path::Path,
    batch_bytes: usize,
    entries: impl IntoIterator<Item = headcount::spool::Entry>,
) -> (headcount::spool::Spool, headcount::store::writer::Writer) {
    let spool = headcount::spool::Spool::open(headcount::spool::SpoolConfig::memory(dir.to_path_buf(), 1 << 30))
        .expect("spool");
    for entry in entries {
        spool.append(entry).expect("append").wait().await.expect("queued");
    }
    spool.close();
    let writer = headcount::store::writer::Writer {
        client: store::client(cfg),
        table: "events".into(),
        batch_rows: 50_000,
        batch_bytes,
        batch_interval: std::time::Duration::from_secs(60),
        shutdown_retry: std::time::Duration::from_secs(5),
        dead_letter_dir: dir.to_path_buf(),
        metrics: headcount::telemetry::Metrics::new().expect("metrics"),
        health: std::sync::Arc::default(),
    };
    (spool, writer)
}

#[tokio::test]
async fn every_event_column_round_trips() {
    let cfg = migrated("roundtrip").await;
    let db = store::client(&cfg);
    let ts = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("ts");
    let event = sample_event(ts);
    let mut ins = db.insert::<EventRow<'static>>("events").await.expect("insert");
    ins.write(&EventRow::from(&event)).await.expect("write");
    ins.end().await.expect("end");
    // The same event as the writer sends it: encoded by Headcount's own
    // RowBinary encoder into the spool, then turned into a Native block.
    let dir = tempfile::tempdir().expect("tmp");
    let (spool, writer) = spooled(&cfg, dir.path(), 10 << 20, [event]).await;
    tokio::time::timeout(std::time::Duration::from_secs(60), writer.run(spool)).await.expect("drained");
    let texts: Vec<String> = db
        .query(
            "SELECT concat(site,'|',toString(toUnixTimestamp(ts)),'|',name,'|',hex(visitor_id),'|',ip_prefix,'|',hostname,'|',pathname,'|',referrer_host,'|',referrer_path,'|',\
             utm_source,utm_medium,utm_campaign,utm_content,utm_term,ref_param,source_param,'|',browser,'|',browser_version,'|',os,'|',os_version,'|',device,'|',\
             toString(screen_width),'|',toString(interactive),'|',toString(revenue_micros),'|',revenue_currency,'|',arrayStringConcat(prop_keys,','),'|',arrayStringConcat(prop_values,','),'|',\
             country,'|',region,'|',city,'|',toString(asn),'|',asn_org,'|',source,'|',channel,'|',screen_class,'|',\
             toString(session_id),'|',toString(toUnixTimestamp(session_start)),'|',toString(session_visit),'|',toString(session_bounce),'|',toString(session_seconds),'|',\
             session_entry_page,'|',session_source,'|',session_channel,'|',session_referrer,'|',session_utm_source,session_utm_medium,session_utm_campaign,session_utm_content,session_utm_term) FROM events ORDER BY batch_id",
        )
        .fetch_all()
        .await
        .expect("rows");
    assert_eq!(texts.len(), 2, "one row from the crate's encoder, one from Headcount's writer");
    for text in texts {
        assert_eq!(
            text,
            format!(
                "example.com|1795000000|Signup|{}|203.0.113.0/24|example.com|/путь|yandex.ru|/search|smccotrso|Firefox|121|Linux||desktop|1920|0|-1500000|EUR|plan,seats|pro,3|RU|Moscow|Москва|4200000001|YANDEX LLC|Yandex|Organic Search|laptop|{}|1794999700|1|-1|4000000000|/вход|Google|Paid Search|google.com|usumucucout",
                "AB".repeat(16),
                u64::MAX - 7
            )
        );
    }
}

/// The writer's Native blocks state each column's type; they must be the
/// migrated table's, column for column.
#[tokio::test]
async fn the_writer_states_the_types_of_the_migrated_table() {
    let cfg = migrated("coltypes").await;
    let columns: Vec<(String, String)> = store::client(&cfg)
        .query("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'")
        .fetch_all()
        .await
        .expect("columns");
    let ours: Vec<(String, String)> = headcount::store::row::INSERT_COLUMNS
        .iter()
        .map(|(name, ty)| (name.to_string(), ty.sql().to_string()))
        .collect();
    assert_eq!(columns, ours);
}

/// `clickhouse.batch_bytes` cuts a backlog into several INSERTs, each
/// streamed to ClickHouse in 512 KiB Native blocks (several LZ4 blocks in one
/// request), and every row still arrives exactly once, every value intact:
/// thousands of distinct LowCardinality values (two-byte indexes) and
/// arrays of every length from 0 to 4.
#[tokio::test]
async fn large_backlogs_go_out_in_byte_capped_streamed_batches() {
    let cfg = migrated("batchbytes").await;
    let dir = tempfile::tempdir().expect("tmp");
    // 6,000 rows of ~600 bytes: ~3.6 MB of backlog before the writer starts.
    let ts = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("ts");
    let events = (0..6_000u32).map(|i| {
        let mut event = sample_event(ts);
        event.pathname = format!("/backlog/{i}/{}", "x".repeat(400));
        event.location.city = format!("city {i}");
        event.prop_keys = (0..i % 5).map(|k| format!("k{k}")).collect();
        event.prop_values = (0..i % 5).map(|k| format!("{i}.{k}")).collect();
        event
    });
    let (spool, writer) = spooled(&cfg, dir.path(), 1_500_000, events).await;
    let metrics = writer.metrics.clone();
    tokio::time::timeout(std::time::Duration::from_secs(60), writer.run(spool)).await.expect("drained");

    let db = store::client(&cfg);
    let (rows, paths, batches): (u64, u64, u64) = db
        .query("SELECT count(), uniqExact(pathname), uniqExact(batch_id) FROM events")
        .fetch_one()
        .await
        .expect("counts");
    assert_eq!((rows, paths), (6_000, 6_000), "every row once");
    assert_eq!(metrics.rows_written.get(), 6_000);
    // Every row's own values, whichever block carried it.
    let mismatched: u64 = db
        .query(
            "SELECT countIf(city != concat('city ', extract(pathname, '^/backlog/([0-9]+)/')) \
             OR length(prop_keys) != toUInt32(extract(pathname, '^/backlog/([0-9]+)/')) % 5 \
             OR arrayStringConcat(prop_values, ',') != arrayStringConcat(arrayMap(k -> concat(extract(pathname, '^/backlog/([0-9]+)/'), '.', toString(k)), range(length(prop_keys))), ',') \
             OR browser != 'Firefox' OR session_channel != 'Paid Search') FROM events",
        )
        .fetch_one()
        .await
        .expect("check");
    assert_eq!(mismatched, 0, "values survive the Native blocks");
    // ~3.6 MB in batches that stop at the row reaching 1.5 MB: three.
    assert_eq!(batches, 3, "byte-capped batches");
    let biggest: u64 = db
        .query("SELECT max(c) FROM (SELECT batch_id, count() AS c FROM events GROUP BY batch_id)")
        .fetch_one()
        .await
        .expect("sizes");
    assert!(biggest * 600 > 1 << 20, "a batch spans several 512 KiB pieces: {biggest} rows");
}

/// A batch is read again from the spool, a piece of about 512 KiB at a time,
/// as it is sent. A row that does not decode, in its third piece, goes to
/// the dead-letter file on the way; the insert is not aborted (ClickHouse
/// 18.16 would keep the blocks already sent) and every other row is stored
/// once.
#[tokio::test]
async fn a_bad_row_deep_in_a_batch_of_several_pieces_is_found_and_the_rest_stored() {
    let cfg = migrated("pieces").await;
    let dir = tempfile::tempdir().expect("tmp");
    let ts = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("ts");
    let bad = 4_321;
    let entries = (0..6_000u32).map(|i| {
        if i == bad {
            let mut e = headcount::spool::Entry::default();
            e.record::<()>(1_795_000_000, |b| {
                b.extend_from_slice(&[200, 1, b'x']); // a string that claims 200 bytes
                Ok(())
            })
            .expect("record");
            return e;
        }
        let mut event = sample_event(ts);
        event.pathname = format!("/piece/{i}/{}", "x".repeat(400));
        entry(&event)
    });
    let (spool, writer) = spooled_entries(&cfg, dir.path(), 64 << 20, entries).await;
    let metrics = writer.metrics.clone();
    tokio::time::timeout(std::time::Duration::from_secs(120), writer.run(spool)).await.expect("drained");

    let db = store::client(&cfg);
    let (rows, paths, batches, bad_rows): (u64, u64, u64, u64) = db
        .query("SELECT count(), uniqExact(pathname), uniqExact(batch_id), countIf(batch_row = ?) FROM events")
        .bind(bad)
        .fetch_one()
        .await
        .expect("counts");
    assert_eq!((rows, paths, batches, bad_rows), (5_999, 5_999, 1, 0), "one batch, every good row once");
    assert_eq!(metrics.dead_lettered.get(), 1);
    assert_eq!((metrics.rows_written.get(), metrics.flush_errors.get()), (5_999, 0), "one insert, not retried");
    let dead = std::fs::read(dir.path().join("dead-letter.rowbinary")).expect("dead-letter file");
    assert_eq!(&dead[..3], &[200, 1, b'x'], "the bad row");
    assert_eq!(&dead[3 + 8..], &bad.to_le_bytes(), "its batch_row");
    let log = std::fs::read_to_string(dir.path().join("dead-letter.log")).expect("log");
    assert!(log.contains(&format!("batch_row={bad}")), "{log}");
}
