//! ClickHouse: schema migrations, the batching event writer, shared salts.
//!
//! This is the only module that talks to ClickHouse. It receives
//! depersonalized [`crate::event::Event`]s and sealed salts; it never sees
//! an IP address or a raw User-Agent.
//!
//! Every statement here and in `sql/` must run on ClickHouse 18.16 (the
//! Debian package used in development and CI) and on 24+ (production), so
//! the SQL sticks to the common subset: no TTL, no `Map`, no `DateTime64`,
//! no server-side query parameters. The crate client runs with validation off
//! (18.16 lacks `RowBinaryWithNamesAndTypes`); round-trip tests guard every
//! row type instead. Events go in as `Native` blocks ([`native`]), which
//! state each column's type; an integration test compares those with the
//! migrated table.

pub mod migrate;
pub mod native;
pub mod row;
pub mod rowbinary;
pub mod salts;
pub mod sink;
pub mod writer;

use crate::config::ClickHouseConfig;

/// A ClickHouse failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("ClickHouse request failed: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("migration {file} failed: {source}")]
    Migration { file: &'static str, source: clickhouse::error::Error },
    #[error("migration {file} was changed after it was applied (checksum {applied} in the ledger, {now} on disk)")]
    MigrationChanged { file: &'static str, applied: String, now: String },
    #[error("spooled row {row} of the batch does not fit the events table: {source}")]
    BadRow { row: u32, source: native::RowError },
    #[error("{rows} rows of the batch could not be read again from the spool")]
    Reread { rows: usize },
}

impl StoreError {
    /// ClickHouse rejected the data itself (not a transient failure):
    /// retrying the same rows can never succeed. Codes 27 (cannot parse
    /// input), 53 (type mismatch), 117 (incorrect data), 6 (cannot parse
    /// text), 70 (cannot convert type), 33 (cannot read all data), 32
    /// (read after end of data), 128/131 (array/string too large). A
    /// spooled row that does not decode is bad data as well.
    pub fn is_bad_data(&self) -> bool {
        if let StoreError::BadRow { .. } = self {
            return true;
        }
        let StoreError::ClickHouse(clickhouse::error::Error::BadResponse(msg)) = self else {
            return false;
        };
        // ClickHouse answers "Code: 27. DB::Exception: …" (18.16 writes a
        // comma after the number instead of a dot).
        let code = msg
            .split_once("Code: ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok());
        matches!(code, Some(6 | 27 | 32 | 33 | 53 | 70 | 117 | 128 | 131))
    }
}

/// A client for the configured server, without selecting the database (it
/// may not exist yet; see [`migrate::run`]).
pub fn server_client(cfg: &ClickHouseConfig) -> clickhouse::Client {
    let mut c = clickhouse::Client::default().with_url(&cfg.url).with_validation(false);
    if let Some(u) = &cfg.user {
        c = c.with_user(u);
    }
    if let Some(p) = &cfg.password {
        c = c.with_password(p);
    }
    c
}

/// A client bound to Headcount's database.
pub fn client(cfg: &ClickHouseConfig) -> clickhouse::Client {
    server_client(cfg).with_database(&cfg.database)
}

/// `SELECT 1` — is the server reachable?
pub async fn ping(client: &clickhouse::Client) -> Result<(), StoreError> {
    client.query("SELECT 1").fetch_one::<u8>().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(msg: &str) -> StoreError {
        StoreError::ClickHouse(clickhouse::error::Error::BadResponse(msg.into()))
    }

    #[test]
    fn bad_data_codes_are_recognised_in_both_spellings() {
        assert!(bad("Code: 27. DB::Exception: Cannot parse input").is_bad_data());
        assert!(bad("Code: 53, e.displayText() = DB::Exception: Type mismatch").is_bad_data());
        assert!(bad("Code: 117. DB::Exception: Incorrect data").is_bad_data());
        assert!(!bad("Code: 271. DB::Exception: something else").is_bad_data(), "27 is not a prefix match");
        assert!(!bad("Code: 210. DB::NetException: Connection refused").is_bad_data());
        assert!(!bad("no code at all").is_bad_data());
    }
}
