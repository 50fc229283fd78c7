//! Numbered schema migrations from `sql/`, applied in order, idempotently.
//!
//! The files are compiled into the binary, so a deployed `headcount` always
//! carries the schema it expects. A ledger table, `schema_migrations`, records
//! what ran (with a checksum, so an edited migration is caught instead of
//! silently diverging). Every statement is written to be safe to re-run
//! (`IF NOT EXISTS`), so two instances starting at once do no harm.
//!
//! Migrations run on ClickHouse 18.16 and 24+. 18.16 has no
//! `ADD COLUMN IF NOT EXISTS`; a future migration adding columns must check
//! `system.columns` first (see [`column_exists`]).

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
    let applied: Vec<Applied> = db.query("SELECT version, any(checksum) AS checksum FROM schema_migrations GROUP BY version").fetch_all().await?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if let Some(a) = applied.iter().find(|a| a.version == m.version) {
            if a.checksum != m.checksum() {
                return Err(StoreError::MigrationChanged { file: m.file, applied: a.checksum.clone(), now: m.checksum() });
            }
            continue;
        }
        for stmt in m.statements() {
            db.query(&stmt).execute().await.map_err(|source| StoreError::Migration { file: m.file, source })?;
        }
        let checksum = m.checksum();
        let mut ins = db.insert::<LedgerRow<'static>>("schema_migrations").await?;
        ins.write(&LedgerRow { version: m.version, name: m.file, checksum: &checksum, applied_at: time::OffsetDateTime::now_utc() })
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
    fn statements_split_and_skip_comments() {
        let s = split_statements("-- a comment; with semicolon\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nSELECT 1;\nSELECT 2");
        assert_eq!(s, vec!["CREATE TABLE a (x UInt8)\nENGINE = Memory", "SELECT 1", "SELECT 2"]);
    }
}
