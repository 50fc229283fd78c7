//! Keeps this instance's [`SaltBook`] in step with every other instance.
//!
//! ## Protocol
//! Instances pointed at one ClickHouse agree on each day's salt with no
//! coordinator:
//!
//! 1. To get the salt for day D, read D's proposals from the `salts` table.
//! 2. If there are none, generate a fresh salt (OS CSPRNG), seal it under
//!    the operator key and insert it as a proposal; wait `settle` so
//!    proposals racing with ours become visible; read again.
//! 3. The salt is the **earliest** proposal (`proposed_at`, then
//!    `proposal_id`). Every instance applies the same rule to the same rows
//!    and so picks the same salt. If that proposal does not open with our
//!    key, startup fails loudly: a wrong key must never silently become a
//!    second salt for the day.
//! 4. Once adopted, a day's salt never changes inside the process
//!    ([`SaltBook::adopt`]).
//!
//! Tomorrow's salt is agreed from noon UTC onwards, long before midnight, so
//! the switch at 00:00 is a lookup, not a network round trip. Yesterday's
//! salt is kept `grace` after midnight (for sessions crossing midnight),
//! then forgotten (zeroized) and its partition dropped from ClickHouse.
//!
//! If ClickHouse is unreachable the keeper keeps serving with the salts it
//! holds; an instance holding no salt for today reports not-ready on
//! `/readyz` and drops events as `no_salt`.

use crate::clock::SharedClock;
use crate::privacy::seal::{self, SaltKey, SealError, Sealed};
use crate::privacy::{Salt, SaltBook};
use crate::store::StoreError;
use crate::store::salts::{self, SaltRow};
use crate::telemetry::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use time::{Date, OffsetDateTime, Time};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the salt stored for {day} does not open with the salt key (fingerprint {ours}; the salt was sealed under key {theirs}). \
         Every instance sharing this ClickHouse needs the same salt_key_file"
    )]
    WrongKey { day: Date, ours: String, theirs: String },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("salt key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("salt key file {path}: {source}")]
    KeyFormat { path: String, source: SealError },
}

/// Agrees, holds, rotates and destroys salts.
#[derive(Clone)]
pub struct SaltKeeper {
    pub db: clickhouse::Client,
    pub key: SaltKey,
    pub book: Arc<SaltBook>,
    pub clock: SharedClock,
    /// How long after midnight yesterday's salt is still held.
    pub grace: Duration,
    /// How long to wait after proposing before reading the agreed salt.
    pub settle: Duration,
    pub metrics: Metrics,
}

impl SaltKeeper {
    /// The agreed salt for `day`, proposing one if none exists.
    pub async fn ensure(&self, day: Date) -> Result<Arc<Salt>, KeeperError> {
        if let Some(s) = self.book.get(day) {
            return Ok(s);
        }
        let mut rows = salts::proposals(&self.db, day).await?;
        if rows.is_empty() {
            self.propose(day).await?;
            tokio::time::sleep(self.settle).await;
            rows = salts::proposals(&self.db, day).await?;
        }
        let Some(first) = rows.first() else {
            // Our own proposal is not visible: treat as a store failure.
            return Err(KeeperError::Store(StoreError::ClickHouse(clickhouse::error::Error::Custom(
                "salt proposal not visible after insert".into(),
            ))));
        };
        let sealed = Sealed { nonce: first.nonce, ciphertext: first.sealed.clone() };
        match seal::open(&self.key, day, &first.proposal_id, &sealed) {
            Ok(salt) => {
                tracing::info!(%day, "salt for day agreed");
                Ok(self.book.adopt(day, salt))
            }
            Err(_) => Err(KeeperError::WrongKey { day, ours: self.key.fingerprint(), theirs: first.key_fingerprint.clone() }),
        }
    }

    async fn propose(&self, day: Date) -> Result<(), KeeperError> {
        let salt = Salt::generate().map_err(|_| SealError::Rng)?;
        let mut proposal_id = [0u8; 16];
        getrandom::fill(&mut proposal_id).map_err(|_| SealError::Rng)?;
        let sealed = seal::seal(&self.key, day, &proposal_id, &salt)?;
        drop(salt);
        let row = SaltRow {
            day,
            proposal_id,
            proposed_at: self.clock.now(),
            key_fingerprint: self.key.fingerprint(),
            nonce: sealed.nonce,
            sealed: sealed.ciphertext,
        };
        salts::propose(&self.db, &row).await?;
        Ok(())
    }

    /// One round: hold today's salt, agree tomorrow's after noon, destroy
    /// what is past its grace period.
    pub async fn tick(&self) -> Result<(), KeeperError> {
        let now = self.clock.now();
        let today = now.date();
        let held_today = self.ensure(today).await;
        self.metrics.salt_ready.set(i64::from(self.book.get(today).is_some()));
        held_today?;
        if now.hour() >= 12 {
            if let Some(tomorrow) = today.next_day() {
                self.ensure(tomorrow).await?;
            }
        }
        self.destroy_expired(now).await
    }

    /// Forget and delete every salt older than what the grace period allows.
    pub async fn destroy_expired(&self, now: OffsetDateTime) -> Result<(), KeeperError> {
        let today = now.date();
        let since_midnight = now - now.replace_time(Time::MIDNIGHT);
        let keep_from = if since_midnight >= self.grace { today } else { today.previous_day().unwrap_or(today) };
        for day in self.book.forget_before(keep_from) {
            tracing::info!(%day, "salt forgotten");
        }
        for (day, _) in salts::days(&self.db).await? {
            if day < keep_from {
                salts::destroy(&self.db, day).await?;
                tracing::info!(%day, "salt destroyed in ClickHouse");
            }
        }
        Ok(())
    }

    /// Tick every 30 s (and right after midnight) until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "salt keeper round failed; keeping the salts already held");
            }
            let now = self.clock.now();
            let to_midnight = (now.replace_time(Time::MIDNIGHT) + time::Duration::DAY) - now;
            let wait = to_midnight.unsigned_abs().min(Duration::from_secs(30)) + Duration::from_millis(50);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Read the salt key at `path`; if the file is absent and `create` is set,
/// write a fresh key there with mode 0600.
pub fn load_or_create_key(path: &Path, create: bool) -> Result<SaltKey, KeeperError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => SaltKey::from_hex(&text).map_err(|source| KeeperError::KeyFormat { path: shown, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = SaltKey::generate()?;
            write_key(path, &key).map_err(|source| KeeperError::KeyFile { path: shown.clone(), source })?;
            tracing::warn!(path = %shown, fingerprint = %key.fingerprint(), "created a new salt key; copy it to every instance sharing this ClickHouse");
            Ok(key)
        }
        Err(source) => Err(KeeperError::KeyFile { path: shown, source }),
    }
}

/// Write `key` to a new file (never overwriting) readable only by its owner.
pub fn write_key(path: &Path, key: &SaltKey) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    writeln!(f, "{}", key.to_hex())?;
    f.sync_all()
}
