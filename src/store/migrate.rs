//! Numbered schema migrations from `sql/`, applied in order, idempotently.
//!
//! The files are compiled into the binary, so a deployed `headcount` always
//! carries the schema it expects. A ledger table, `schema_migrations`, records
//! what ran (with a checksum, so an edited migration is caught instead of
//! silently diverging). Every statement is written to be safe to re-run
//! (`IF NOT EXISTS`), so two instances starting at once do no harm.
//!
//! Migrations run on ClickHouse 18.16 and 24+. 18.16 has no
//! `ADD COLUMN IF NOT EXISTS`, so the runner does that check itself: a
//! statement `ALTER TABLE t ADD COLUMN c …` (one column per statement) is
//! skipped when `system.columns` already lists `t.c` (see [`added_column`]
//! and [`column_exists`]). The SQL files stay plain SQL that any version
//! runs, and a migration interrupted halfway re-runs cleanly.

use super::StoreError;
use clickhouse::Client;
use serde::Deserialize;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub file: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A unit test checks this matches `sql/`.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, file: "0001_events.sql", sql: include_str!("../../sql/0001_events.sql") },
    Migration { version: 2, file: "0002_salts.sql", sql: include_str!("../../sql/0002_salts.sql") },
    Migration { version: 3, file: "0003_acquisition.sql", sql: include_str!("../../sql/0003_acquisition.sql") },
    Migration { version: 4, file: "0004_access.sql", sql: include_str!("../../sql/0004_access.sql") },
    Migration { version: 5, file: "0005_sessions.sql", sql: include_str!("../../sql/0005_sessions.sql") },
    Migration { version: 6, file: "0006_batches.sql", sql: include_str!("../../sql/0006_batches.sql") },
    Migration {
        version: 7,
        file: "0007_rollup_daily_one_view.sql",
        sql: include_str!("../../sql/0007_rollup_daily_one_view.sql"),
    },
    Migration {
        version: 8,
        file: "0008_rollup_daily_midnight_view.sql",
        sql: include_str!("../../sql/0008_rollup_daily_midnight_view.sql"),
    },
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
    (version UInt32, name String, checksum String, applied_at DateTime('UTC')) \
    ENGINE = MergeTree() ORDER BY version";

impl Migration {
    pub fn checksum(&self) -> String {
        blake3::hash(self.sql.as_bytes()).to_hex()[..16].to_string()
    }

    /// The statements of this file: `--` comment lines removed, split at `;`
    /// ending a line.
    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }
}

/// Split a SQL file into statements.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.trim_end().ends_with(';') {
            push_statement(&mut out, &mut cur);
        }
    }
    push_statement(&mut out, &mut cur);
    out
}

/// For `ALTER TABLE t ADD COLUMN c …` (without `IF NOT EXISTS`): the table
/// and column, so the runner can skip the statement when the column exists.
pub fn added_column(stmt: &str) -> Option<(String, String)> {
    let words: Vec<&str> = stmt.split_whitespace().take(6).collect();
    let is = |w: &str, kw: &str| w.eq_ignore_ascii_case(kw);
    match words.as_slice() {
        [alter, table, t, add, column, c]
            if is(alter, "ALTER") && is(table, "TABLE") && is(add, "ADD") && is(column, "COLUMN") && !is(c, "IF") =>
        {
            let unquote = |s: &str| s.trim_matches(|ch| ch == '`' || ch == '"').to_string();
            let t = t.rsplit('.').next().unwrap_or(t);
            Some((unquote(t), unquote(c)))
        }
        _ => None,
    }
}

fn push_statement(out: &mut Vec<String>, cur: &mut String) {
    let s = cur.trim().trim_end_matches(';').trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    cur.clear();
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct Applied {
    version: u32,
    checksum: String,
}

#[derive(Debug, serde::Serialize, clickhouse::Row)]
struct LedgerRow<'a> {
    version: u32,
    name: &'a str,
    checksum: &'a str,
    #[serde(with = "clickhouse::serde::time::datetime")]
    applied_at: time::OffsetDateTime,
}

/// Create the database if needed and apply missing migrations. Returns the
/// files applied by this call.
pub async fn run(server: &Client, database: &str) -> Result<Vec<&'static str>, StoreError> {
    server.query(&format!("CREATE DATABASE IF NOT EXISTS `{database}`")).execute().await?;
    let db = server.clone().with_database(database);
    db.query(LEDGER).execute().await?;
    let applied: Vec<Applied> = db
        .query("SELECT version, any(checksum) AS checksum FROM schema_migrations GROUP BY version")
        .fetch_all()
        .await?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if let Some(a) = applied.iter().find(|a| a.version == m.version) {
            if a.checksum != m.checksum() {
                return Err(StoreError::MigrationChanged {
                    file: m.file,
                    applied: a.checksum.clone(),
                    now: m.checksum(),
                });
            }
            continue;
        }
        for stmt in m.statements() {
            let added = added_column(&stmt);
            if let Some((table, column)) = &added
                && column_exists(&db, table, column).await?
            {
                tracing::debug!(migration = m.file, table, column, "column exists; ADD COLUMN skipped");
                continue;
            }
            if let Err(source) = db.query(&stmt).execute().await {
                // Another instance starting at the same time may have added
                // the column between our check and our ALTER.
                match &added {
                    Some((table, column)) if column_exists(&db, table, column).await? => continue,
                    _ => {
                        return Err(StoreError::Migration { file: m.file, source });
                    }
                }
            }
        }
        let checksum = m.checksum();
        let mut ins = db.insert::<LedgerRow<'static>>("schema_migrations").await?;
        ins.write(&LedgerRow {
            version: m.version,
            name: m.file,
            checksum: &checksum,
            applied_at: time::OffsetDateTime::now_utc(),
        })
        .await?;
        ins.end().await?;
        tracing::info!(migration = m.file, "applied migration");
        done.push(m.file);
    }
    Ok(done)
}

/// Does `table.column` exist in the current database? (18.16 has no
/// `ADD COLUMN IF NOT EXISTS`.)
pub async fn column_exists(db: &Client, table: &str, column: &str) -> Result<bool, StoreError> {
    let n: u64 = db
        .query("SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?")
        .bind(table)
        .bind(column)
        .fetch_one()
        .await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed_in_order() {
        let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
            .expect("sql dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.file.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn add_column_statements_are_recognised() {
        assert_eq!(added_column("ALTER TABLE events ADD COLUMN asn UInt32"), Some(("events".into(), "asn".into())));
        assert_eq!(
            added_column("alter table `db`.`events`\n  add column `city` String"),
            Some(("events".into(), "city".into()))
        );
        assert_eq!(added_column("ALTER TABLE events ADD COLUMN IF NOT EXISTS asn UInt32"), None);
        assert_eq!(added_column("ALTER TABLE events DROP COLUMN asn"), None);
        assert_eq!(added_column("CREATE TABLE t (x UInt8) ENGINE = Memory"), None);
    }

    /// The runner skips a whole statement when its column exists, so a
    /// statement must add exactly one column.
    #[test]
    fn every_add_column_adds_one_column() {
        for m in MIGRATIONS {
            for stmt in m.statements() {
                let n = stmt.to_ascii_uppercase().matches("ADD COLUMN").count();
                if n > 0 {
                    assert_eq!(n, 1, "{}: one ADD COLUMN per statement: {stmt}", m.file);
                    assert!(added_column(&stmt).is_some(), "{}: not recognised: {stmt}", m.file);
                }
            }
        }
    }

    #[test]
    fn statements_split_and_skip_comments() {
        let s = split_statements(
            "-- a comment; with semicolon\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nSELECT 1;\nSELECT 2",
        );
        assert_eq!(s, vec!["CREATE TABLE a (x UInt8)\nENGINE = Memory", "SELECT 1", "SELECT 2"]);
    }
}
