//! Salts: shared, stable across restarts, rotated at midnight, guarded by
//! the key, destroyed — proven against the real ClickHouse with an injected
//! clock.

use crate::common::*;
use headcount::clock::Clock;
use headcount::privacy::seal::{self, SaltKey, Sealed};
use headcount::store::salts::SaltRow;
use time::{Date, Duration, OffsetDateTime};

const IP_A: &str = "198.51.100.10";
const IP_B: &str = "198.51.100.20";

fn trusting_env(tag: &str) -> Env {
    let mut env = Env::new(tag);
    env.raw.privacy.trusted_proxies = vec!["127.0.0.1/32".into()];
    env
}

async fn ids(db: &Db) -> Vec<String> {
    db.text("SELECT hex(visitor_id) FROM events ORDER BY ts FORMAT TSV").await.lines().map(str::to_string).collect()
}

fn at(day: Date, h: u8, m: u8) -> OffsetDateTime {
    day.with_hms(h, m, 0).expect("time").assume_utc()
}

async fn sealed_rows(env: &Env) -> Vec<SaltRow> {
    let cfg = env.config();
    let db = headcount::store::client(&cfg.clickhouse);
    db.query("SELECT day, proposal_id, proposed_at, key_fingerprint, nonce, sealed FROM salts ORDER BY day, proposed_at, proposal_id")
        .fetch_all()
        .await
        .expect("salts")
}

#[tokio::test]
async fn restart_mid_day_keeps_visitor_ids() {
    let env = trusting_env("restart");
    let a = env.start().await;
    assert_eq!(pageview(&a, UA_CHROME, IP_A).await, "accepted");
    a.stop().await;
    env.clock.advance(Duration::hours(1));
    let b = env.start().await;
    assert_eq!(pageview(&b, UA_CHROME, IP_A).await, "accepted");
    let db = b.stop().await;
    let ids = ids(&db).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "same salt after restart on the same day");
    let today = env.clock.now().date();
    let salts = db.text(&format!("SELECT count() FROM salts WHERE day = '{today}' FORMAT TSV")).await;
    assert_eq!(salts.trim(), "1", "one proposal for the day, reused");
}

#[tokio::test]
async fn instances_started_together_agree_on_the_salt() {
    let env = trusting_env("together");
    let (a, b) = tokio::join!(env.start(), env.start());
    assert_eq!(pageview(&a, UA_CHROME, IP_A).await, "accepted");
    assert_eq!(pageview(&b, UA_CHROME, IP_A).await, "accepted");
    a.stop().await;
    let db = b.stop().await;
    let ids = ids(&db).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "two instances, one salt");
}

#[tokio::test]
async fn instances_started_hours_apart_agree_and_rotate_together() {
    let env = trusting_env("apart");
    let day1 = env.clock.now().date();
    let day2 = day1.next_day().expect("day");
    let a = env.start().await; // 10:00
    env.clock.set(at(day1, 15, 0));
    let b = env.start().await; // 15:00, inside the proposal window
    assert_eq!(pageview(&a, UA_CHROME, IP_A).await, "accepted");
    assert_eq!(pageview(&b, UA_CHROME, IP_A).await, "accepted");
    // Both propose/see tomorrow's salt in the window; both decide at 18:00.
    a.running.keeper.tick().await.expect("tick a");
    b.running.keeper.tick().await.expect("tick b");
    assert!(a.running.salts.get(day2).is_none(), "not adopted before the decision hour");
    env.clock.set(at(day1, 18, 5));
    a.running.keeper.tick().await.expect("tick a");
    b.running.keeper.tick().await.expect("tick b");
    assert!(
        a.running.salts.get(day2).is_some() && b.running.salts.get(day2).is_some(),
        "tomorrow held hours before midnight"
    );
    // After midnight both use the new salt with no network round trip.
    env.clock.set(at(day2, 2, 0));
    assert_eq!(pageview(&a, UA_CHROME, IP_A).await, "accepted");
    assert_eq!(pageview(&b, UA_CHROME, IP_A).await, "accepted");
    a.stop().await;
    let db = b.stop().await;
    let ids = ids(&db).await;
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], ids[1], "day 1: same id on both instances");
    assert_eq!(ids[2], ids[3], "day 2: same id on both instances");
    assert_ne!(ids[0], ids[2], "the id changes at midnight");
    let proposals = db.text(&format!("SELECT count() FROM salts WHERE day = '{day2}' FORMAT TSV")).await;
    assert_eq!(proposals.trim(), "1", "the second instance saw the first one's proposal and did not add its own");
}

#[tokio::test]
async fn sessions_crossing_midnight_continue_then_ids_change() {
    let env = trusting_env("midnight");
    let day1 = env.clock.now().date();
    let day2 = day1.next_day().expect("day");
    let app = env.start().await;
    env.clock.set(at(day1, 19, 0));
    app.running.keeper.tick().await.expect("tomorrow agreed");

    env.clock.set(at(day1, 23, 0));
    assert_eq!(pageview(&app, UA_IPHONE, IP_B).await, "accepted"); // B: active 23:00 only
    env.clock.set(at(day1, 23, 50));
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted"); // A: reading at 23:50
    env.clock.set(at(day2, 0, 10));
    app.running.keeper.tick().await.expect("tick");
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted"); // A continues
    assert_eq!(pageview(&app, UA_IPHONE, IP_B).await, "accepted"); // B: 70 min idle, new visit
    env.clock.set(at(day2, 0, 35));
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted"); // A still going
    // Grace (60 min) over: yesterday's salt destroyed; A's next visit is a new id.
    env.clock.set(at(day2, 1, 30));
    app.running.keeper.tick().await.expect("tick");
    assert!(app.running.salts.get(day1).is_none());
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted");
    let db = app.stop().await;

    let rows = db.rows("SELECT toString(ts) AS ts, hex(visitor_id) AS v FROM events ORDER BY ts, browser").await;
    let v: Vec<&str> = rows.iter().map(|r| r["v"].as_str().expect("hex")).collect();
    assert_eq!(v.len(), 6, "{rows:?}");
    let (b_2300, a_2350, a_0010, b_0010, a_0035, a_0130) = (v[0], v[1], v[2], v[3], v[4], v[5]);
    assert_eq!(a_2350, a_0010, "A's session continues across midnight under yesterday's id");
    assert_eq!(a_0010, a_0035);
    assert_ne!(b_2300, b_0010, "B was idle: new day, new id");
    assert_ne!(a_0130, a_2350, "after the grace period the day's id is used");
    assert_ne!(a_0130, b_0010);
}

#[tokio::test]
async fn a_wrong_key_is_a_startup_error_not_a_new_salt() {
    let env = Env::new("wrongkey");
    env.start().await.stop().await;
    let mut other = Env::new("wrongkey2");
    other.raw.clickhouse.database = env.database.clone();
    other.clock.set(env.clock.now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = headcount::app::start(listener, other.config(), other.options()).await.err().expect("must refuse");
    let text = err.to_string();
    assert!(text.contains("does not open with the salt key"), "{text}");
    assert_eq!(env.db().text("SELECT count() FROM salts FORMAT TSV").await.trim(), "1", "no second salt was proposed");
}

#[tokio::test]
async fn a_missing_key_is_a_startup_error_when_not_allowed_to_create() {
    let env = Env::new("nokey");
    let mut opts = env.options();
    opts.create_key = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = headcount::app::start(listener, env.config(), opts).await.err().expect("must refuse");
    assert!(err.to_string().contains("salt key file"), "{err}");
}

#[tokio::test]
async fn key_file_is_created_owner_only_and_never_stored() {
    let env = Env::new("keyfile");
    env.start().await.stop().await;
    let path = env.dir.path().join("salt.key");
    let text = std::fs::read_to_string(&path).expect("key file");
    assert_eq!(text.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let dump = env.db().raw("SELECT * FROM salts FORMAT TSV").await;
    let key_bytes = hex::decode(text.trim()).expect("hex key");
    assert!(!String::from_utf8_lossy(&dump).contains(text.trim()), "key (hex) stored in ClickHouse");
    assert!(!dump.windows(32).any(|w| w == key_bytes.as_slice()), "key (raw) stored in ClickHouse");
}

/// Every file under `dir` (recursively) and whether any contains a needle.
fn files_containing(dir: &std::path::Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

fn data_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("HEADCOUNT_TEST_CLICKHOUSE_DATA")
            .expect("HEADCOUNT_TEST_CLICKHOUSE_DATA must name the test ClickHouse directory (make test sets it)"),
    )
}

fn salt_forms(salt: &[u8; 32]) -> Vec<Vec<u8>> {
    vec![salt.to_vec(), hex::encode(salt).into_bytes(), hex::encode_upper(salt).into_bytes()]
}

#[tokio::test]
async fn salts_are_sealed_at_rest_and_gone_from_disk_after_grace() {
    let env = Env::new("destroy");
    let key = SaltKey::from_hex(&{
        env.start().await.stop().await; // creates the key
        std::fs::read_to_string(env.dir.path().join("salt.key")).expect("key")
    })
    .expect("key parses");
    let app = env.start().await;
    let day1 = env.clock.now().date();
    let day2 = day1.next_day().expect("day");
    let salt1 = *app.running.salts.get(day1).expect("today's salt").expose_secret();

    // Sealed at rest: the stored row opens with the key, and only with it.
    let rows = sealed_rows(&env).await;
    let row = rows.iter().find(|r| r.day == day1).expect("stored proposal");
    let sealed = Sealed { nonce: row.nonce, ciphertext: row.sealed.clone() };
    assert_eq!(seal::open(&key, day1, &row.proposal_id, &sealed).expect("opens").expose_secret(), &salt1);
    assert!(
        seal::open(&SaltKey::generate().expect("rng"), day1, &row.proposal_id, &sealed).is_err(),
        "opens without the key"
    );

    // No salt in the clear in any table dump or anywhere on ClickHouse's disk.
    let db = env.db();
    for t in db.tables().await {
        for fmt in ["TabSeparated", "RowBinary", "JSONEachRow"] {
            let dump = db.raw(&format!("SELECT * FROM `{t}` FORMAT {fmt}")).await;
            for form in salt_forms(&salt1) {
                assert!(!dump.windows(form.len()).any(|w| w == form.as_slice()), "salt found in {t} {fmt}");
            }
        }
    }
    let dir = data_dir();
    assert!(files_containing(&dir, &salt_forms(&salt1)).is_empty(), "salt in the clear on disk");
    // Positive control: the scan does find the sealed bytes while they exist.
    assert!(
        !files_containing(&dir, std::slice::from_ref(&row.sealed)).is_empty(),
        "the disk scan cannot see stored data"
    );

    // Rotate and pass the grace period.
    env.clock.set(at(day1, 19, 0));
    app.running.keeper.tick().await.expect("tick");
    env.clock.set(at(day2, 1, 5));
    app.running.keeper.tick().await.expect("tick");
    assert!(app.running.salts.get(day1).is_none(), "forgotten in memory");
    let active = db.text(&format!("SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'salts' AND active AND partition = '{day1}' FORMAT TSV")).await;
    assert_eq!(active.trim(), "0", "no active part holds the old salt");
    assert_eq!(db.text(&format!("SELECT count() FROM salts WHERE day = '{day1}' FORMAT TSV")).await.trim(), "0");

    // The bytes leave the disk within the cleanup window.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let hits = files_containing(&dir, std::slice::from_ref(&row.sealed));
        if hits.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sealed salt still on disk after 90 s: {hits:?}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn clickhouse_down_at_start_means_not_ready_then_recovers() {
    let outage = Outage::start(false).await;
    let mut env = trusting_env("downstart");
    env.raw.clickhouse.url = outage.url.clone();
    let app = env.start().await;
    let ready = client().get(app.url("/readyz")).send().await.expect("req");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["salt_loaded"], false);
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "dropped; reason=no_salt");
    assert_eq!(app.running.metrics.dropped_count(headcount::telemetry::DropReason::NoSalt), 1);

    outage.restore();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while client().get(app.url("/readyz")).send().await.expect("req").status() != 200 {
        assert!(std::time::Instant::now() < deadline, "did not become ready after ClickHouse returned");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted");
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 1);
}

#[tokio::test]
async fn clickhouse_outage_keeps_the_held_salt_and_loses_nothing() {
    let outage = Outage::start(true).await;
    let mut env = trusting_env("outage");
    env.raw.clickhouse.url = outage.url.clone();
    let app = env.start().await;
    assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted");
    outage.cut().await;
    env.clock.advance(Duration::hours(1));
    assert!(app.running.keeper.tick().await.is_err(), "the keeper notices ClickHouse is down");
    for _ in 0..5 {
        assert_eq!(pageview(&app, UA_CHROME, IP_A).await, "accepted", "keeps serving with the held salt");
    }
    let ready: serde_json::Value =
        client().get(app.url("/readyz")).send().await.expect("req").json().await.expect("json");
    assert_eq!(ready["salt_loaded"], true);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    outage.restore();
    let db = app.stop().await;
    assert_eq!(db.count("1").await, 6, "every accepted event written after ClickHouse returned");
    assert_eq!(db.text("SELECT uniqExact(visitor_id) FROM events FORMAT TSV").await.trim(), "1", "one salt throughout");
}

#[tokio::test]
async fn salts_status_shows_days_never_values() {
    let env = Env::new("status");
    let app = env.start().await;
    let salt = *app.running.salts.get(env.clock.now().date()).expect("salt").expose_secret();
    app.stop().await;
    let mut raw = env.raw.clone();
    raw.privacy.salt_key_file = env.dir.path().join("salt.key").display().to_string();
    let cfg_path = env.dir.path().join("headcount.toml");
    std::fs::write(&cfg_path, toml::to_string(&raw).expect("toml")).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
        .args(["--config", cfg_path.to_str().expect("path"), "salts", "status"])
        .output()
        .expect("run headcount");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Day of the (real) clock the salt was proposed for.
    assert!(stdout.contains("sealed proposal"), "{stdout}");
    assert!(stdout.contains("destroyed after"), "{stdout}");
    for form in salt_forms(&salt) {
        let f = String::from_utf8_lossy(&form).to_string();
        assert!(!stdout.contains(&f) && !stderr.contains(&f), "salt printed");
    }
}
