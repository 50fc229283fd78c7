//! The HTTP beacon: where requests arrive and raw data is turned into events.
//!
//! Order of work for every tracking request, cheapest first:
//!
//! 1. route, admission — in-flight and per-client rate limits ([`limits`]) —
//!    and size, time and encoding limits on the body ([`body`]);
//! 2. client IP from the socket peer, believing proxy headers only from
//!    configured proxies ([`client_ip`]) — the address is wrapped in
//!    [`ClientIp`] and never printed;
//! 3. payload parsing ([`payload`]) and site check — unknown sites are
//!    dropped before any expensive work;
//! 4. bot tokens in the User-Agent (cheap substring scan), the referrer-spam
//!    list, then the cached User-Agent parse;
//! 5. country/ASN lookup on the full IP ([`crate::enrich::geo`]), then
//!    [`crate::privacy::depersonalize`] consumes the IP;
//! 6. the depersonalized [`Event`] goes to the [`EventSink`] — the durable
//!    spool — and the request is answered once the sink says the event is
//!    durable (one group-commit fsync, well under a millisecond here; with
//!    `spool.ack = "write"`, once it is written). When
//!    the spool is at its cap the event is refused or dropped at once and
//!    counted: memory and disk stay bounded.
//!
//! This module never mentions ClickHouse: it hands events to an
//! [`EventSink`] and whoever implements it stores them.

pub mod body;
pub mod client_ip;
pub mod limits;
pub mod opt_out;
pub mod payload;
pub mod places;
pub mod routes;
pub mod tracker;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::enrich::geo::GeoLookup;
use crate::enrich::source::Referrers;
use crate::enrich::ua::UaParser;
use crate::enrich::{bots, screen, url};
use crate::event::Event;
use crate::privacy::{self, Carry, ClientIp, MidnightBridge, SaltBook, VisitorId};
use crate::sessions::{self, Sessions};
use crate::spool::{Ack, AppendError};
use crate::telemetry::{DropReason, Health, Metrics};
use payload::Beacon;
use std::sync::Arc;

/// Where accepted events go. The store implements it (encode, then append
/// to the spool); ingest only learns whether they were taken.
pub trait EventSink: Send + Sync {
    /// Hand over events; the [`Ack`] resolves once they are durable.
    fn submit(&self, events: &[Event]) -> Result<Ack, AppendError>;
}

/// The outcome of handing `n` events to the sink.
fn outcome_of(n: usize, stored: Result<(), AppendError>) -> Outcome {
    match stored {
        Ok(()) => Outcome::Accepted(n),
        Err(AppendError::Full) => Outcome::Dropped(DropReason::QueueFull),
        Err(AppendError::Closed) => Outcome::Dropped(DropReason::ShuttingDown),
        Err(AppendError::Io(e)) => {
            tracing::error!(error = %e, "spool write failed");
            Outcome::Dropped(DropReason::SpoolError)
        }
    }
}

/// Counts `outcome` in `metrics`.
fn count(metrics: &Metrics, outcome: Outcome) {
    match outcome {
        Outcome::Accepted(n) => metrics.events_accepted.inc_by(n as u64),
        Outcome::Dropped(reason) => metrics.dropped(reason),
    }
}

/// Events handed to the sink whose acknowledgement is awaited. Dropped
/// while still waiting — the request was cancelled because its client
/// disconnected — it leaves a task that awaits the acknowledgement and
/// counts the outcome, since the events will be stored regardless.
struct Unanswered<'a> {
    ack: Option<Ack>,
    n: usize,
    metrics: &'a Metrics,
}

impl Unanswered<'_> {
    /// Wait for the acknowledgement; once it came, nothing is left to count.
    async fn wait(mut self) -> Result<(), AppendError> {
        let stored = match self.ack.as_mut() {
            Some(ack) => ack.wait_mut().await,
            None => Ok(()),
        };
        self.ack = None;
        stored
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        let Some(ack) = self.ack.take() else { return };
        let (n, metrics) = (self.n, self.metrics.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { count(&metrics, outcome_of(n, ack.wait().await)) });
        }
    }
}

/// What happened to one tracking request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many events (one per listed site) were queued.
    Accepted(usize),
    Dropped(DropReason),
}

/// A request whose data is unusable; the API answers 400.
#[derive(Debug, thiserror::Error)]
pub enum RejectError {
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    #[error("invalid `u`: {0}")]
    Url(url::UrlError),
    #[error("invalid `r`: {0}")]
    Referrer(url::UrlError),
}

/// Everything the ingest path needs, shared by all connections.
pub struct Ingest {
    pub config: Arc<Config>,
    pub ua: Arc<UaParser>,
    pub geo: Arc<dyn GeoLookup>,
    /// Traffic sources, channels and the referrer-spam list.
    pub referrers: Arc<Referrers>,
    /// Parsed page URLs and referrers, cached (see [`places`]).
    pub places: places::Places,
    pub salts: Arc<SaltBook>,
    /// Continues sessions that cross midnight (see [`privacy::midnight`]).
    pub bridge: Arc<MidnightBridge>,
    /// Places every event in a visit (see [`crate::sessions`]).
    pub sessions: Arc<Sessions>,
    pub clock: SharedClock,
    pub sink: Arc<dyn EventSink>,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    /// In-flight and per-client rate limits of the tracking routes.
    pub limits: limits::Limits,
}

impl Ingest {
    /// Validate, enrich, depersonalize and spool one beacon; resolves once
    /// the events are durable (or refused).
    pub async fn record(&self, beacon: Beacon, ip: ClientIp, user_agent: &str) -> Result<Outcome, RejectError> {
        let events = match self.prepare(beacon, ip, user_agent)? {
            Ok(events) => events,
            Err(dropped) => return Ok(Outcome::Dropped(dropped)),
        };
        let n = events.len();
        let submitted = self.sink.submit(&events);
        drop(events);
        let stored = match submitted {
            Ok(ack) => {
                // If the client goes away while we wait (hyper then drops
                // this future), the events are stored all the same: the
                // guard still counts them once the ack resolves, so
                // `events_accepted` keeps equalling the rows stored.
                Unanswered { ack: Some(ack), n, metrics: &self.metrics }.wait().await
            }
            Err(e) => Err(e),
        };
        Ok(outcome_of(n, stored))
    }

    /// Everything up to the sink: the events to store, or why none.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        beacon: Beacon,
        ip: ClientIp,
        user_agent: &str,
    ) -> Result<Result<Vec<Event>, DropReason>, RejectError> {
        let sites: Vec<&str> =
            beacon.domains.iter().filter_map(|d| self.config.site(d)).map(|s| s.domain.as_str()).collect();
        if sites.is_empty() {
            return Ok(Err(DropReason::UnknownSite));
        }
        // A cached answer that is not a bot means the token scan would find
        // nothing (`is_bot` includes it): most requests skip the scan.
        let cached = self.ua.cached(user_agent);
        let known_human = cached.as_ref().is_some_and(|info| !info.is_bot);
        if !known_human && bots::is_bot(user_agent) {
            return Ok(Err(DropReason::Bot));
        }
        let place = self.places.get(
            &places::Inputs {
                site: sites[0],
                url: &beacon.url,
                referrer: beacon.referrer.as_deref().unwrap_or_default(),
                hash_mode: beacon.hash_mode,
                max_len: self.config.server.max_url_bytes,
            },
            &self.referrers,
        );
        let place = match place.as_ref() {
            Ok(place) => place,
            Err(places::PlaceError::Url(e)) => return Err(RejectError::Url(e.clone())),
            Err(places::PlaceError::Referrer(e)) => return Err(RejectError::Referrer(e.clone())),
        };
        if place.spam {
            return Ok(Err(DropReason::Spam));
        }
        let (page, referrer, acquisition) = (&place.page, &place.referrer, &place.acquisition);
        let ua = match cached {
            Some(info) => info,
            None => self.ua.parse(user_agent),
        };
        if ua.is_bot {
            return Ok(Err(DropReason::Bot));
        }

        let now = self.clock.now();
        let Some(salt) = self.salts.get(now.date()) else {
            return Ok(Err(DropReason::NoSalt));
        };
        // Everything derived from the full IP happens here, before it is dropped.
        let location = self.geo.locate(&ip);
        // During the grace period after midnight, yesterday's salt can
        // continue a session that was active just before midnight.
        let yesterday = now.date().previous_day().and_then(|d| self.salts.get(d));
        let is_active = |site: &str, id: &VisitorId| self.bridge.is_active(site, id, now);
        let carry = match &yesterday {
            Some(salt) if !self.bridge.is_empty() => Some(Carry { salt, is_active: &is_active }),
            _ => None,
        };
        let pseudonyms = privacy::depersonalize(ip, user_agent, &sites, &salt, self.config.privacy.ip_mode, carry);
        for (site, p) in sites.iter().zip(&pseudonyms) {
            self.bridge.note(site, &p.visitor_id, now, p.continued);
        }

        let kind = sessions::Kind::of(&beacon.name, beacon.interactive);
        // Visits are tracked before the request's data moves into the event.
        let visits: Vec<_> = sites
            .iter()
            .zip(pseudonyms)
            .map(|(site, pseudonym)| {
                let session = self.sessions.track(site, &pseudonym.visitor_id, now, kind, || {
                    sessions::Entry::new(
                        &page.pathname,
                        &acquisition.source,
                        acquisition.channel.as_str(),
                        &referrer.host,
                        &page.campaign,
                    )
                });
                (*site, pseudonym, session)
            })
            .collect();
        let mut visits = visits.into_iter();
        let Some((site, pseudonym, session)) = visits.next() else {
            return Ok(Err(DropReason::UnknownSite));
        };
        let (revenue_micros, revenue_currency) = match beacon.revenue {
            Some(r) => (r.micros, r.currency),
            None => (0, String::new()),
        };
        let (prop_keys, prop_values): (Vec<String>, Vec<String>) = beacon.props.into_iter().unzip();
        // The request's data moves into the first site's event; only an
        // event recorded to several sites (`d: "a.com,b.com"`) copies it.
        let first = Event {
            site: site.to_string(),
            ts: now,
            name: beacon.name,
            visitor_id: pseudonym.visitor_id,
            ip_prefix: pseudonym.ip_prefix.unwrap_or_default(),
            hostname: page.hostname.clone(),
            pathname: page.pathname.clone(),
            referrer_host: referrer.host.clone(),
            referrer_path: referrer.path.clone(),
            campaign: page.campaign.clone(),
            browser: ua.browser.clone(),
            browser_version: ua.browser_version.clone(),
            os: ua.os.clone(),
            os_version: ua.os_version.clone(),
            device: ua.device.as_str(),
            screen_width: beacon.screen_width,
            interactive: beacon.interactive,
            revenue_micros,
            revenue_currency,
            prop_keys,
            prop_values,
            location,
            source: acquisition.source.clone(),
            channel: acquisition.channel.as_str(),
            screen_class: screen::class(beacon.screen_width, ua.device),
            session,
        };
        let others: Vec<Event> = visits
            .map(|(site, pseudonym, session)| Event {
                site: site.to_string(),
                visitor_id: pseudonym.visitor_id,
                ip_prefix: pseudonym.ip_prefix.unwrap_or_default(),
                session,
                ..first.clone()
            })
            .collect();
        let mut events = Vec::with_capacity(1 + others.len());
        events.push(first);
        events.extend(others);
        Ok(Ok(events))
    }

    /// Count an outcome in the metrics.
    pub fn count(&self, outcome: Outcome) {
        count(&self.metrics, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Durability, Entry, Spool, SpoolConfig};

    fn fsync_spool(dir: &std::path::Path) -> Spool {
        let config = SpoolConfig { durability: Durability::Spool, ..SpoolConfig::memory(dir.to_path_buf(), 1 << 20) };
        Spool::open(config).expect("spool")
    }

    fn one_record() -> Entry {
        let mut entry = Entry::default();
        entry
            .record::<()>(1_700_000_000, |b| {
                b.extend_from_slice(b"row");
                Ok(())
            })
            .expect("record");
        entry
    }

    /// A request cancelled while its events wait for the fsync (the client
    /// hung up) still counts them as accepted once they are durable — they
    /// will be stored — and exactly once.
    #[tokio::test]
    async fn events_of_a_cancelled_request_are_still_counted_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = fsync_spool(dir.path());
        let metrics = Metrics::new().expect("metrics");
        let ack = spool.append(one_record()).expect("append");
        drop(Unanswered { ack: Some(ack), n: 3, metrics: &metrics });
        for _ in 0..500 {
            if metrics.events_accepted.get() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.events_accepted.get(), 3);
        // A wait that completed leaves nothing behind to count twice.
        let answered = Unanswered { ack: Some(spool.append(one_record()).expect("append")), n: 2, metrics: &metrics };
        answered.wait().await.expect("durable");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(metrics.events_accepted.get(), 3, "the request path counts completed waits itself");
        spool.close();
    }
}
