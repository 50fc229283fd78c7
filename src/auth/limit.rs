//! Login rate limiting, in memory.
//!
//! Two fixed windows: failed logins per account (so one password cannot be
//! guessed quickly) and failed logins overall (so spraying many accounts is
//! slow too). Keyed by a hash of the e-mail, never by IP address: the
//! dashboard keeps no visitor or operator address, not even in memory. Each
//! instance limits on its own; behind a load balancer the effective limit is
//! the per-instance limit times the number of instances, which is still far
//! below what guessing an argon2id password needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account per window.
pub const PER_ACCOUNT: u32 = 5;
/// Failures allowed overall per window.
pub const OVERALL: u32 = 100;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts tracked at most (oldest windows are dropped first).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl Window {
    fn current(&mut self, now: Instant) -> &mut Self {
        if now.duration_since(self.start) >= WINDOW {
            *self = Window { start: now, failures: 0 };
        }
        self
    }
}

/// The limiter shared by all requests of one process.
pub struct LoginLimiter {
    accounts: Mutex<HashMap<[u8; 32], Window>>,
    overall: Mutex<Window>,
    per_account: u32,
    total: u32,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(PER_ACCOUNT, OVERALL)
    }
}

fn key(email: &str) -> [u8; 32] {
    *blake3::hash(super::db::normalize_email(email).as_bytes()).as_bytes()
}

impl LoginLimiter {
    pub fn new(per_account: u32, total: u32) -> LoginLimiter {
        LoginLimiter {
            accounts: Mutex::new(HashMap::new()),
            overall: Mutex::new(Window { start: Instant::now(), failures: 0 }),
            per_account,
            total,
        }
    }

    /// `Err(retry_after)` when a login for `email` must not even be tried now.
    pub fn check(&self, email: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let blocked = |w: &mut Window, limit: u32| {
            let w = w.current(now);
            (w.failures >= limit).then(|| WINDOW.saturating_sub(now.duration_since(w.start)))
        };
        if let Some(wait) = blocked(&mut self.overall.lock().unwrap_or_else(|p| p.into_inner()), self.total) {
            return Err(wait);
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        match accounts.get_mut(&key(email)).and_then(|w| blocked(w, self.per_account)) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Count a failed login.
    pub fn failed(&self, email: &str) {
        let now = Instant::now();
        self.overall.lock().unwrap_or_else(|p| p.into_inner()).current(now).failures += 1;
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= MAX_KEYS {
            accounts.retain(|_, w| now.duration_since(w.start) < WINDOW);
            if accounts.len() >= MAX_KEYS {
                accounts.clear();
            }
        }
        accounts.entry(key(email)).or_insert(Window { start: now, failures: 0 }).current(now).failures += 1;
    }

    /// A successful login clears the account's failures.
    pub fn succeeded(&self, email: &str) {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_account_after_too_many_failures() {
        let l = LoginLimiter::new(3, 100);
        for _ in 0..3 {
            assert!(l.check("a@example.com").is_ok());
            l.failed("A@example.com ");
        }
        let wait = l.check("a@example.com").expect_err("blocked");
        assert!(wait <= WINDOW && wait > Duration::from_secs(60));
        assert!(l.check("b@example.com").is_ok(), "other accounts are not blocked");
        l.succeeded("a@example.com");
        assert!(l.check("a@example.com").is_ok());
    }

    #[test]
    fn blocks_everyone_after_too_many_failures_overall() {
        let l = LoginLimiter::new(100, 5);
        for i in 0..5 {
            l.failed(&format!("u{i}@example.com"));
        }
        assert!(l.check("new@example.com").is_err());
    }
}
