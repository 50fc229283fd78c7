//! Who may read the numbers: operators, their sessions, API keys, shared links.
//!
//! Headcount's visitors are never authenticated and never get a cookie; this
//! module is only about the *operators* who read the dashboards. It keeps
//! them in ClickHouse (`sql/0004_access.sql`), next to the data they guard, so
//! every Headcount instance behind a load balancer agrees on who is logged
//! in without another database.
//!
//! * [`secret`]: random tokens, their BLAKE3 hashes (only hashes are
//!   stored), argon2id passwords, CSRF tokens derived from the session.
//! * [`db`]: the tables — users with per-site access, sessions, API keys,
//!   shared links — written append-only and read with `argMax(…, version)`.
//! * [`limit`]: in-memory login rate limiting (per account and overall; no
//!   IP address is kept, not even in memory).
//! * [`cli`]: `headcount user|share|apikey …`.

pub mod cli;
pub mod db;
pub mod limit;
pub mod secret;

pub use db::{AccessStore, Session, Share, User};

/// An access-control failure that is not "wrong password".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("ClickHouse: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("random number generator: {0}")]
    Random(String),
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<clickhouse::error::Error> for AuthError {
    fn from(e: clickhouse::error::Error) -> Self {
        AuthError::Store(e.into())
    }
}
