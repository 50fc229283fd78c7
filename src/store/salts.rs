//! The `salts` table: sealed salt proposals, one partition per day.
//!
//! Only ciphertext is stored here (see [`crate::privacy::seal`]); this module
//! moves opaque bytes and never holds a key or a salt in the clear.

use super::StoreError;
use clickhouse::Client;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

/// One sealed salt proposal for a day.
#[derive(Debug, Clone, Serialize, Deserialize, clickhouse::Row, PartialEq, Eq)]
pub struct SaltRow {
    #[serde(with = "clickhouse::serde::time::date")]
    pub day: Date,
    pub proposal_id: [u8; 16],
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub proposed_at: OffsetDateTime,
    pub key_fingerprint: String,
    pub nonce: [u8; 24],
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// Every proposal for `day`, in the agreed order: earliest `proposed_at`
/// first, ties broken by `proposal_id`. The first that opens is the salt.
pub async fn proposals(db: &Client, day: Date) -> Result<Vec<SaltRow>, StoreError> {
    Ok(db
        .query("SELECT day, proposal_id, proposed_at, key_fingerprint, nonce, sealed FROM salts WHERE day = ? ORDER BY proposed_at, proposal_id")
        .bind(day.to_string())
        .fetch_all()
        .await?)
}

/// Store a proposal.
pub async fn propose(db: &Client, row: &SaltRow) -> Result<(), StoreError> {
    let mut ins = db.insert::<SaltRow>("salts").await?;
    ins.write(row).await?;
    ins.end().await?;
    Ok(())
}

/// Days that have at least one stored proposal, oldest first.
pub async fn days(db: &Client) -> Result<Vec<(Date, u64)>, StoreError> {
    #[derive(Deserialize, clickhouse::Row)]
    struct DayCount {
        #[serde(with = "clickhouse::serde::time::date")]
        day: Date,
        n: u64,
    }
    let rows: Vec<DayCount> =
        db.query("SELECT day, count() AS n FROM salts GROUP BY day ORDER BY day").fetch_all().await?;
    Ok(rows.into_iter().map(|r| (r.day, r.n)).collect())
}

/// Destroy every stored salt for `day` (drops the day's partition).
pub async fn destroy(db: &Client, day: Date) -> Result<(), StoreError> {
    // Partition values are dates, which cannot carry injection; formatted
    // here because 18.16 does not accept a bound parameter in PARTITION.
    db.query(&format!("ALTER TABLE salts DROP PARTITION '{day}'")).execute().await?;
    Ok(())
}
