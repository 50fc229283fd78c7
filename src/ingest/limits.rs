//! Admission to the tracking routes (`/api/event`, `/p.gif`) under overload
//! and abuse.
//!
//! Two checks, cheapest first, before any request data is parsed:
//!
//! 1. **In-flight requests.** A semaphore of `limits.max_inflight_requests`
//!    permits; a request holds one while it is read and processed. When none
//!    is free the request is refused at once ([`Refusal::Overloaded`]) —
//!    queueing it would only add latency and memory to an overloaded process.
//! 2. **Per-client rate.** A token bucket (GCRA: one "theoretical arrival
//!    time" per client) of `rate_limit_per_second` sustained with a burst of
//!    `rate_limit_burst`, keyed by [`ClientIp::limiter_key`]: a keyed BLAKE3
//!    hash of the client address (after `trusted_proxies`; IPv6 by /64)
//!    under a random key drawn at startup, held only in memory and never
//!    written or logged. The map is a bounded `quick_cache`: when more
//!    clients are active than it holds, the least recently seen are
//!    forgotten, which can only ever let a client through, never block one.
//!    Clients in `rate_limit_exempt` (their address or the socket peer's)
//!    are not limited.

use super::client_ip;
use crate::config::LimitsConfig;
use crate::privacy::ClientIp;
use crate::telemetry::DropReason;
use hyper::HeaderMap;
use ipnet::IpNet;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

/// Why a tracking request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every in-flight permit is taken.
    Overloaded,
    /// The client is over its rate; it may try again after this long.
    RateLimited { retry_after: Duration },
}

impl Refusal {
    pub fn reason(self) -> DropReason {
        match self {
            Refusal::Overloaded => DropReason::Overloaded,
            Refusal::RateLimited { .. } => DropReason::RateLimited,
        }
    }

    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Overloaded => 1,
            Refusal::RateLimited { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

/// The admission state shared by all connections of one process.
pub struct Limits {
    inflight: Arc<Semaphore>,
    rate: Option<RateLimiter>,
    exempt: Vec<IpNet>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Limits {
        let rate = (config.rate_limit_per_second > 0).then(|| {
            RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst, config.rate_limit_clients)
        });
        Limits {
            inflight: Arc::new(Semaphore::new(config.max_inflight_requests)),
            rate,
            exempt: config.rate_limit_exempt.clone(),
        }
    }

    /// Admit one tracking request from `peer`, or say why not. The permit
    /// is held until the request is answered.
    pub fn admit(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        trusted: &[IpNet],
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        let permit = self.inflight.clone().try_acquire_owned().map_err(|_| Refusal::Overloaded)?;
        let Some(rate) = &self.rate else {
            return Ok(permit);
        };
        let ip = client_ip::client_ip(peer, headers, trusted);
        if ip.is_within(&self.exempt) || ClientIp::new(peer.ip()).is_within(&self.exempt) {
            return Ok(permit);
        }
        rate.check(&ip).map_err(|retry_after| Refusal::RateLimited { retry_after })?;
        Ok(permit)
    }
}

/// Per-client GCRA rate limiter over a bounded map.
pub struct RateLimiter {
    /// Keys the client hash; random per process, never leaves memory.
    key: Zeroizing<[u8; 32]>,
    /// Time that one request costs.
    interval_ns: u64,
    /// How far ahead of now a client's arrival time may run: the burst.
    tolerance_ns: u64,
    /// Client key → theoretical arrival time (ns since `epoch`).
    clients: Cache<[u8; 16], u64>,
    epoch: Instant,
}

impl RateLimiter {
    /// `per_second` sustained (at least 1), bursts of `burst`, at most
    /// `capacity` clients remembered.
    pub fn new(per_second: u32, burst: u32, capacity: usize) -> RateLimiter {
        let mut key = Zeroizing::new([0u8; 32]);
        // Without an OS random source the hash key is fixed; the limiter
        // still works, and the key stays in memory only.
        let _ = getrandom::fill(key.as_mut_slice());
        let interval_ns = 1_000_000_000 / u64::from(per_second.max(1));
        RateLimiter {
            key,
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.max(1))),
            clients: Cache::new(capacity.max(1)),
            epoch: Instant::now(),
        }
    }

    /// Count one request of `ip`: `Err(wait)` when it is over its rate.
    pub fn check(&self, ip: &ClientIp) -> Result<(), Duration> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(ip.limiter_key(&self.key), now)
    }

    fn check_at(&self, client: [u8; 16], now: u64) -> Result<(), Duration> {
        let (interval, tolerance) = (self.interval_ns, self.tolerance_ns);
        let decided = self.clients.entry(&client, None, |_, tat| {
            let next = (*tat).max(now).saturating_add(interval);
            if next - now > tolerance {
                EntryAction::Retain(Err(Duration::from_nanos(next - now - tolerance)))
            } else {
                *tat = next;
                EntryAction::Retain(Ok(()))
            }
        });
        match decided {
            EntryResult::Retained(verdict) => verdict,
            // A client not seen (or forgotten): its bucket is full.
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                let _ = guard.insert(now.saturating_add(interval));
                Ok(())
            }
            EntryResult::Removed(..) | EntryResult::Timeout => Ok(()),
        }
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_then_sustained_rate() {
        let r = RateLimiter::new(10, 5, 100);
        let a = [1u8; 16];
        for i in 0..5 {
            assert_eq!(r.check_at(a, 0), Ok(()), "burst request {i}");
        }
        let wait = r.check_at(a, 0).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(100), "one interval until the next token");
        // Another client is unaffected.
        assert_eq!(r.check_at([2u8; 16], 0), Ok(()));
        // One token per 100 ms.
        assert_eq!(r.check_at(a, SEC / 10), Ok(()));
        assert!(r.check_at(a, SEC / 10).is_err());
        // After a quiet second the whole burst is back, no more.
        let later = 2 * SEC;
        for _ in 0..5 {
            assert_eq!(r.check_at(a, later), Ok(()));
        }
        assert!(r.check_at(a, later).is_err());
    }

    #[test]
    fn refused_requests_do_not_push_the_client_further_back() {
        let r = RateLimiter::new(1, 1, 10);
        let a = [7u8; 16];
        assert!(r.check_at(a, 0).is_ok());
        for _ in 0..100 {
            assert!(r.check_at(a, 0).is_err());
        }
        assert!(r.check_at(a, SEC).is_ok(), "a refused request costs nothing");
    }

    #[test]
    fn the_map_is_bounded_and_forgetting_only_forgives() {
        let r = RateLimiter::new(1, 1, 1_000);
        for i in 0..50_000u32 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            let _ = r.check_at(k, 0);
        }
        assert!(r.len() <= 2_000, "{} clients remembered", r.len());
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(Refusal::Overloaded.retry_after_secs(), 1);
        assert_eq!(Refusal::RateLimited { retry_after: Duration::from_millis(20) }.retry_after_secs(), 1);
        assert_eq!(Refusal::RateLimited { retry_after: Duration::from_millis(2_100) }.retry_after_secs(), 3);
    }
}
