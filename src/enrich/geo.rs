//! Where country and ASN lookups run: on the full IP, before it is dropped.
//!
//! The ingest path calls [`GeoLookup::locate`] with the [`ClientIp`] while
//! it still holds the full address and before [`crate::privacy::depersonalize`]
//! consumes it. Only the derived codes leave this function. The lookup
//! databases (local `.mmdb` files, no network calls) arrive with a later
//! change; until then [`NoGeo`] answers "unknown" for everyone.

use crate::privacy::ClientIp;

/// Location facts derived from an IP. Coarse by design.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2, empty when unknown.
    pub country: String,
    /// Autonomous system number, 0 when unknown.
    pub asn: u32,
    /// AS organisation ("ISP name"), empty when unknown.
    pub asn_org: String,
}

/// A source of IP → location facts.
pub trait GeoLookup: Send + Sync + 'static {
    fn locate(&self, ip: &ClientIp) -> Location;
}

/// No database configured: every location is unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGeo;

impl GeoLookup for NoGeo {
    fn locate(&self, _ip: &ClientIp) -> Location {
        Location::default()
    }
}
