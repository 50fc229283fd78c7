//! The access tables in ClickHouse (`sql/0004_access.sql`).
//!
//! ClickHouse has no transactional UPDATE, and 18.16's mutations are
//! asynchronous, so every change is a new row with a higher `version`
//! (nanoseconds, strictly increasing within a process) and every read takes
//! `argMax(column, version)` per key: correct before and after background
//! merges, on 18.16 and 24+. Tables stay tiny (operators, not visitors), so
//! reads by key are a few milliseconds.
//!
//! Expiry and revocation are decided in Rust against the injected clock, so
//! tests can move time.

use super::{AuthError, secret};
use crate::clock::SharedClock;
use clickhouse::Client;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// An operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub password_hash: String,
    pub all_sites: bool,
    pub sites: Vec<String>,
}

impl User {
    /// May this user read `site` (a normalised configured domain)?
    pub fn can_read(&self, site: &str) -> bool {
        self.all_sites || self.sites.iter().any(|s| s == site)
    }
}

/// Whose session a cookie opens: an operator's, or an unlocked shared link's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    User(String),
    Share(String),
}

/// A shared read-only link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub site: String,
    /// Empty: no password.
    pub password_hash: String,
    pub label: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

/// An API key, as listed (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub prefix: String,
    pub email: String,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// Normalised e-mail: trimmed, lowercase.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Strictly increasing row versions (nanoseconds since the epoch).
fn next_version() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos().max(0) as u64;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let v = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, v, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(p) => prev = p,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct UserRow {
    email: String,
    password_hash: String,
    all_sites: u8,
    sites: Vec<String>,
    deleted: u8,
    #[serde(with = "clickhouse::serde::time::datetime")]
    updated_at: OffsetDateTime,
    version: u64,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct SessionRow {
    token_hash: String,
    email: String,
    share_id: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    created_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime")]
    expires_at: OffsetDateTime,
    revoked: u8,
    version: u64,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct ApiKeyRow {
    key_hash: String,
    prefix: String,
    email: String,
    name: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    created_at: OffsetDateTime,
    revoked: u8,
    version: u64,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct ShareRow {
    id: String,
    token_hash: String,
    site: String,
    password_hash: String,
    label: String,
    created_by: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    created_at: OffsetDateTime,
    revoked: u8,
    version: u64,
}

impl From<ShareRow> for Share {
    fn from(r: ShareRow) -> Share {
        Share {
            id: r.id,
            site: r.site,
            password_hash: r.password_hash,
            label: r.label,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// Reads and writes the access tables.
#[derive(Clone)]
pub struct AccessStore {
    db: Client,
    clock: SharedClock,
}

const USER_COLUMNS: &str = "email, argMax(password_hash, version) AS a_password_hash, argMax(all_sites, version) AS a_all_sites, \
     argMax(sites, version) AS a_sites, argMax(deleted, version) AS a_deleted, max(updated_at) AS a_updated_at, max(version) AS a_version";
const SHARE_COLUMNS: &str = "id, argMax(token_hash, version) AS a_token_hash, argMax(site, version) AS a_site, \
     argMax(password_hash, version) AS a_password_hash, argMax(label, version) AS a_label, argMax(created_by, version) AS a_created_by, \
     min(created_at) AS a_created_at, argMax(revoked, version) AS a_revoked, max(version) AS a_version";

impl AccessStore {
    /// `db` must have Headcount's database selected and be migrated.
    pub fn new(db: Client, clock: SharedClock) -> AccessStore {
        AccessStore { db, clock }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
        &self,
        table: &str,
        row: &T,
    ) -> Result<(), AuthError> {
        let mut ins = self.db.insert::<T>(table).await?;
        ins.write(row).await?;
        ins.end().await?;
        Ok(())
    }

    // ---- users -----------------------------------------------------------

    /// Create or replace a user (password and sites).
    pub async fn put_user(
        &self,
        email: &str,
        password_hash: &str,
        all_sites: bool,
        sites: &[String],
    ) -> Result<(), AuthError> {
        self.insert(
            "users",
            &UserRow {
                email: normalize_email(email),
                password_hash: password_hash.to_string(),
                all_sites: u8::from(all_sites),
                sites: sites.to_vec(),
                deleted: 0,
                updated_at: self.now(),
                version: next_version(),
            },
        )
        .await
    }

    /// Delete a user; returns whether one existed. Their sessions and API
    /// keys stop working at once (both are checked against the user).
    pub async fn delete_user(&self, email: &str) -> Result<bool, AuthError> {
        let Some(user) = self.user(email).await? else {
            return Ok(false);
        };
        self.insert(
            "users",
            &UserRow {
                email: user.email,
                password_hash: String::new(),
                all_sites: 0,
                sites: Vec::new(),
                deleted: 1,
                updated_at: self.now(),
                version: next_version(),
            },
        )
        .await?;
        Ok(true)
    }

    pub async fn user(&self, email: &str) -> Result<Option<User>, AuthError> {
        let rows: Vec<UserRow> = self
            .db
            .query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ? GROUP BY email"))
            .bind(normalize_email(email))
            .fetch_all()
            .await?;
        Ok(rows.into_iter().find(|r| r.deleted == 0).map(user_of))
    }

    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        let rows: Vec<UserRow> = self
            .db
            .query(&format!("SELECT {USER_COLUMNS} FROM users GROUP BY email ORDER BY email"))
            .fetch_all()
            .await?;
        Ok(rows.into_iter().filter(|r| r.deleted == 0).map(user_of).collect())
    }

    // ---- sessions --------------------------------------------------------

    /// Start a session for `who`, lasting `ttl`; returns the raw token for
    /// the cookie (only its hash is stored).
    pub async fn create_session(&self, who: &Session, ttl: std::time::Duration) -> Result<String, AuthError> {
        let token = secret::new_token()?;
        let (email, share_id) = match who {
            Session::User(e) => (normalize_email(e), String::new()),
            Session::Share(id) => (String::new(), id.clone()),
        };
        let now = self.now();
        self.insert(
            "dashboard_sessions",
            &SessionRow {
                token_hash: secret::hash_token(&token),
                email,
                share_id,
                created_at: now,
                expires_at: now + ttl,
                revoked: 0,
                version: next_version(),
            },
        )
        .await?;
        Ok(token)
    }

    /// The live session a raw cookie token opens, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, AuthError> {
        if token.len() != 64 {
            return Ok(None);
        }
        let rows: Vec<SessionRow> = self
            .db
            .query(
                "SELECT token_hash, any(email) AS a_email, any(share_id) AS a_share_id, min(created_at) AS a_created_at, \
                 argMax(expires_at, version) AS a_expires_at, argMax(revoked, version) AS a_revoked, max(version) AS a_version \
                 FROM dashboard_sessions WHERE token_hash = ? GROUP BY token_hash",
            )
            .bind(secret::hash_token(token))
            .fetch_all()
            .await?;
        let now = self.now();
        Ok(rows
            .into_iter()
            .find(|r| r.revoked == 0 && r.expires_at > now)
            .map(|r| if r.share_id.is_empty() { Session::User(r.email) } else { Session::Share(r.share_id) }))
    }

    /// End a session (logout).
    pub async fn revoke_session(&self, token: &str) -> Result<(), AuthError> {
        let now = self.now();
        self.insert(
            "dashboard_sessions",
            &SessionRow {
                token_hash: secret::hash_token(token),
                email: String::new(),
                share_id: String::new(),
                created_at: now,
                expires_at: now,
                revoked: 1,
                version: next_version(),
            },
        )
        .await
    }

    /// Delete sessions that expired more than a day ago (18.16 has no TTL).
    /// Asynchronous on the server; harmless to repeat.
    pub async fn purge_expired_sessions(&self) -> Result<(), AuthError> {
        let cutoff = (self.now() - time::Duration::days(1)).unix_timestamp();
        self.db
            .query(&format!("ALTER TABLE dashboard_sessions DELETE WHERE expires_at < toDateTime({cutoff}, 'UTC')"))
            .execute()
            .await?;
        Ok(())
    }

    // ---- API keys --------------------------------------------------------

    /// A new API key for `email`; returns the key (shown once).
    pub async fn create_api_key(&self, email: &str, name: &str) -> Result<String, AuthError> {
        let key = format!("hc_{}", secret::new_token()?);
        self.insert(
            "api_keys",
            &ApiKeyRow {
                key_hash: secret::hash_token(&key),
                prefix: key[..11].to_string(),
                email: normalize_email(email),
                name: name.to_string(),
                created_at: self.now(),
                revoked: 0,
                version: next_version(),
            },
        )
        .await?;
        Ok(key)
    }

    /// The user an API key belongs to, if the key is live.
    pub async fn api_key_user(&self, key: &str) -> Result<Option<String>, AuthError> {
        if !key.starts_with("hc_") || key.len() != 67 {
            return Ok(None);
        }
        let rows: Vec<ApiKeyRow> = self
            .db
            .query(&format!("{API_KEY_SELECT} WHERE key_hash = ? GROUP BY key_hash"))
            .bind(secret::hash_token(key))
            .fetch_all()
            .await?;
        Ok(rows.into_iter().find(|r| r.revoked == 0).map(|r| r.email))
    }

    /// Live API keys (all users when `email` is `None`).
    pub async fn api_keys(&self, email: Option<&str>) -> Result<Vec<ApiKey>, AuthError> {
        let rows: Vec<ApiKeyRow> =
            self.db.query(&format!("{API_KEY_SELECT} GROUP BY key_hash ORDER BY a_created_at")).fetch_all().await?;
        let email = email.map(normalize_email);
        Ok(rows
            .into_iter()
            .filter(|r| r.revoked == 0 && email.as_ref().is_none_or(|e| *e == r.email))
            .map(|r| ApiKey { prefix: r.prefix, email: r.email, name: r.name, created_at: r.created_at })
            .collect())
    }

    /// Revoke every live key whose shown prefix is `prefix`; returns how many.
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<usize, AuthError> {
        let rows: Vec<ApiKeyRow> = self.db.query(&format!("{API_KEY_SELECT} GROUP BY key_hash")).fetch_all().await?;
        let mut n = 0;
        for r in rows.into_iter().filter(|r| r.revoked == 0 && r.prefix == prefix) {
            self.insert("api_keys", &ApiKeyRow { revoked: 1, version: next_version(), ..r }).await?;
            n += 1;
        }
        Ok(n)
    }

    // ---- shared links ----------------------------------------------------

    /// A new shared link to `site`; returns it and its raw token (shown once).
    pub async fn create_share(
        &self,
        site: &str,
        password_hash: &str,
        label: &str,
        created_by: &str,
    ) -> Result<(Share, String), AuthError> {
        let token = secret::new_token()?;
        let id = token_id(&token);
        let row = ShareRow {
            id,
            token_hash: secret::hash_token(&token),
            site: site.to_string(),
            password_hash: password_hash.to_string(),
            label: label.to_string(),
            created_by: normalize_email(created_by),
            created_at: self.now(),
            revoked: 0,
            version: next_version(),
        };
        self.insert("shares", &row).await?;
        Ok((row.into(), token))
    }

    /// The live share a raw token opens.
    pub async fn share_by_token(&self, token: &str) -> Result<Option<Share>, AuthError> {
        if token.len() != 64 {
            return Ok(None);
        }
        let hash = secret::hash_token(token);
        let rows: Vec<ShareRow> = self
            .db
            .query(&format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ? GROUP BY id"))
            .bind(token_id(token))
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .find(|r| r.revoked == 0 && secret::ct_eq(r.token_hash.as_bytes(), hash.as_bytes()))
            .map(Share::from))
    }

    pub async fn share(&self, id: &str) -> Result<Option<Share>, AuthError> {
        let rows: Vec<ShareRow> = self
            .db
            .query(&format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ? GROUP BY id"))
            .bind(id)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().find(|r| r.revoked == 0).map(Share::from))
    }

    /// Live shares (of one site, or all).
    pub async fn shares(&self, site: Option<&str>) -> Result<Vec<Share>, AuthError> {
        let rows: Vec<ShareRow> = self
            .db
            .query(&format!("SELECT {SHARE_COLUMNS} FROM shares GROUP BY id ORDER BY a_created_at"))
            .fetch_all()
            .await?;
        Ok(rows.into_iter().filter(|r| r.revoked == 0 && site.is_none_or(|s| s == r.site)).map(Share::from).collect())
    }

    /// Revoke a share; returns whether it was live.
    pub async fn revoke_share(&self, id: &str) -> Result<bool, AuthError> {
        let rows: Vec<ShareRow> = self
            .db
            .query(&format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ? GROUP BY id"))
            .bind(id)
            .fetch_all()
            .await?;
        let Some(r) = rows.into_iter().find(|r| r.revoked == 0) else {
            return Ok(false);
        };
        self.insert("shares", &ShareRow { revoked: 1, version: next_version(), ..r }).await?;
        Ok(true)
    }
}

const API_KEY_SELECT: &str = "SELECT key_hash, any(prefix) AS a_prefix, any(email) AS a_email, any(name) AS a_name, \
     min(created_at) AS a_created_at, argMax(revoked, version) AS a_revoked, max(version) AS a_version FROM api_keys";

/// The public id of a share token: the first 12 hex digits of a hash with
/// its own context, so the id reveals nothing about the stored token hash.
pub fn token_id(token: &str) -> String {
    hex::encode(&blake3::derive_key("headcount share id v1", token.as_bytes())[..6])
}

fn user_of(r: UserRow) -> User {
    User { email: r.email, password_hash: r.password_hash, all_sites: r.all_sites == 1, sites: r.sites }
}
