//! Keeps this instance's [`SaltBook`] in step with every other instance.
//!
//! ## Protocol
//! Instances pointed at one ClickHouse agree on each day's salt with no
//! coordinator, through the `salts` table:
//!
//! 1. **Propose** (day D−1, from [`PROPOSE_FROM_HOUR`]:00 UTC): an instance
//!    that sees no proposal for day D generates a fresh salt (OS CSPRNG),
//!    seals it under the operator key and inserts it with its `proposed_at`
//!    time and a random `proposal_id`.
//! 2. **Decide** (day D−1, from [`DECIDE_AT_HOUR`]:00 UTC — six hours after
//!    the window opened, far longer than any insert takes to become
//!    visible): every instance reads D's proposals and adopts the
//!    **earliest** (`proposed_at`, then `proposal_id`). The same rows and the
//!    same rule give every instance the same salt.
//! 3. **Use** at 00:00 UTC: the switch is a lookup in memory; the salt has
//!    been held for hours, so there is no gap.
//! 4. **Cold start** (no proposal for the day an instance needs now, e.g. the
//!    very first start, or every instance was down during the window):
//!    propose, wait `settle` so proposals racing with ours become visible,
//!    then adopt the earliest. A restart mid-day finds the day's proposal
//!    and adopts it, so visitor ids stay stable.
//! 5. **Never two salts for one day in one process**: once adopted, a day's
//!    salt is fixed ([`SaltBook::adopt`]). If the earliest proposal does not
//!    open with our key, that is an error (wrong `salt_key_file`), never a
//!    reason to use another salt.
//! 6. **Destroy**: yesterday's salt is kept `grace` after midnight (sessions
//!    crossing midnight, see [`crate::privacy::midnight`]), then forgotten —
//!    its memory is zeroized when the last reference drops — and its
//!    partition is dropped from ClickHouse. The table keeps dropped and merged
//!    parts only seconds (`old_parts_lifetime`), so the ciphertext leaves the
//!    disk soon after.
//!
//! Assumption: instance clocks agree to within minutes (NTP); the windows are
//! hours wide.
//!
//! ## ClickHouse unreachable
//! The keeper keeps serving with the salts it already holds and retries every
//! round. An instance that holds no salt for today reports not-ready on
//! `/readyz` (`salt_loaded: false`), sets `headcount_salt_ready` to 0 and
//! drops events as `no_salt` — it never invents a private salt, because a
//! salt other instances do not share would split every visitor in two.

use crate::clock::SharedClock;
use crate::privacy::seal::{self, SaltKey, SealError, Sealed};
use crate::privacy::{MidnightBridge, Salt, SaltBook};
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

/// Hour (UTC) from which tomorrow's salt may be proposed.
pub const PROPOSE_FROM_HOUR: u8 = 12;
/// Hour (UTC) from which tomorrow's proposals are final and adopted.
pub const DECIDE_AT_HOUR: u8 = 18;

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
    /// Cleared when yesterday's salt is forgotten.
    pub bridge: Arc<MidnightBridge>,
}

impl SaltKeeper {
    /// The agreed salt for `day`, proposing one (cold start) if none exists.
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
        self.adopt_earliest(day, &rows)
    }

    /// Adopt the earliest proposal in `rows` (already in agreed order).
    fn adopt_earliest(&self, day: Date, rows: &[SaltRow]) -> Result<Arc<Salt>, KeeperError> {
        let Some(first) = rows.first() else {
            // Our own proposal is not visible: treat as a store failure.
            return Err(KeeperError::Store(StoreError::ClickHouse(clickhouse::error::Error::Custom(
                "salt proposal not visible after insert".into(),
            ))));
        };
        let sealed = Sealed { nonce: first.nonce, ciphertext: first.sealed.clone() };
        match seal::open(&self.key, day, &first.proposal_id, &sealed) {
            Ok(salt) => {
                tracing::info!(%day, proposals = rows.len(), "salt for day agreed");
                Ok(self.book.adopt(day, salt))
            }
            Err(_) => {
                Err(KeeperError::WrongKey { day, ours: self.key.fingerprint(), theirs: first.key_fingerprint.clone() })
            }
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

    /// One round: hold today's salt; propose tomorrow's inside the window
    /// and adopt it once the window has closed; destroy what is past grace.
    pub async fn tick(&self) -> Result<(), KeeperError> {
        let now = self.clock.now();
        let today = now.date();
        let held_today = self.ensure(today).await;
        self.metrics.salt_ready.set(i64::from(self.book.get(today).is_some()));
        held_today?;
        if let Some(tomorrow) = today.next_day().filter(|_| now.hour() >= PROPOSE_FROM_HOUR)
            && self.book.get(tomorrow).is_none()
        {
            if now.hour() >= DECIDE_AT_HOUR {
                self.ensure(tomorrow).await?;
            } else if salts::proposals(&self.db, tomorrow).await?.is_empty() {
                self.propose(tomorrow).await?;
                tracing::info!(day = %tomorrow, "proposed a salt");
            }
        }
        self.destroy_expired(now).await
    }

    /// Forget and delete every salt older than what the grace period allows.
    pub async fn destroy_expired(&self, now: OffsetDateTime) -> Result<(), KeeperError> {
        let today = now.date();
        let since_midnight = now - now.replace_time(Time::MIDNIGHT);
        let keep_from = if since_midnight >= self.grace { today } else { today.previous_day().unwrap_or(today) };
        let forgotten = self.book.forget_before(keep_from);
        if !forgotten.is_empty() {
            self.bridge.clear();
        }
        for day in forgotten {
            tracing::info!(%day, "salt forgotten (zeroized)");
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
