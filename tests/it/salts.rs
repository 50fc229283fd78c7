//! Salts: shared, stable across restarts, guarded by the key, destroyed.

use crate::common::*;
use headcount::clock::Clock;
use time::Duration;

async fn visitor_of(app: &App) -> String {
    let r = client()
        .post(app.url("/api/event"))
        .header("user-agent", UA_CHROME)
        .body(r#"{"n":"pageview","u":"https://example.com/","d":"example.com"}"#)
        .send()
        .await
        .expect("req");
    assert_eq!(r.headers()["x-headcount-event"], "accepted");
    String::new()
}

async fn ids(db: &Db) -> Vec<String> {
    db.text("SELECT hex(visitor_id) FROM events ORDER BY ts FORMAT TSV").await.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn restart_mid_day_keeps_visitor_ids() {
    let env = Env::new("restart");
    let a = env.start().await;
    visitor_of(&a).await;
    a.stop().await;
    env.clock.advance(Duration::hours(5));
    let b = env.start().await;
    visitor_of(&b).await;
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
    let env = Env::new("together");
    let (a, b) = tokio::join!(env.start(), env.start());
    visitor_of(&a).await;
    visitor_of(&b).await;
    a.stop().await;
    let db = b.stop().await;
    let ids = ids(&db).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "two instances, one salt");
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
async fn key_file_is_created_owner_only() {
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
    // The key never enters ClickHouse.
    let dump = env.db().raw("SELECT * FROM salts FORMAT TSV").await;
    let key_bytes = hex::decode(text.trim()).expect("hex key");
    assert!(!String::from_utf8_lossy(&dump).contains(text.trim()), "key (hex) stored in ClickHouse");
    assert!(!dump.windows(32).any(|w| w == key_bytes.as_slice()), "key (raw) stored in ClickHouse");
}

#[tokio::test]
async fn salts_rotate_and_old_ones_are_destroyed_after_grace() {
    let env = Env::new("rotate");
    let app = env.start().await;
    let day1 = env.clock.now().date();
    // Afternoon: tomorrow's salt is agreed ahead of midnight.
    env.clock.advance(Duration::hours(4)); // 14:00
    app.running.keeper.tick().await.expect("tick");
    let day2 = day1.next_day().expect("day");
    assert!(app.running.salts.get(day2).is_some(), "tomorrow's salt held before midnight");
    // 00:30 next day, inside the 60-minute grace: yesterday kept.
    env.clock.set(day2.midnight().assume_utc() + Duration::minutes(30));
    app.running.keeper.tick().await.expect("tick");
    assert!(app.running.salts.get(day1).is_some());
    // 01:30: grace over: forgotten and dropped from ClickHouse.
    env.clock.set(day2.midnight().assume_utc() + Duration::minutes(90));
    app.running.keeper.tick().await.expect("tick");
    assert!(app.running.salts.get(day1).is_none(), "yesterday's salt forgotten");
    let db = app.stop().await;
    let days = db.text("SELECT toString(day) FROM salts ORDER BY day FORMAT TSV").await;
    assert!(!days.contains(&day1.to_string()), "yesterday's salt still stored: {days}");
    assert!(days.contains(&day2.to_string()));
}
