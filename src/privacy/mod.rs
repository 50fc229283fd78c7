//! Depersonalization: the pure, synchronous heart of Headcount's promise.
//!
//! Nothing here performs I/O, knows about HTTP or talks to ClickHouse, so the
//! rules can be read, tested and benchmarked like a parser:
//!
//! * [`ip`] — the [`ClientIp`] wrapper (cannot be printed, serialized or
//!   cloned) and IPv4 /24, IPv6 /48 truncation.
//! * [`salt`] — random 32-byte daily salts that zeroize themselves, and the
//!   in-memory [`SaltBook`] of the days currently held.
//! * [`visitor`] — the keyed BLAKE3 visitor id over length-prefixed
//!   (site, ip, user-agent) under the day's salt.
//! * [`seal`] — XChaCha20-Poly1305 sealing of salts under the operator key,
//!   so salts can be shared through ClickHouse without ClickHouse being able
//!   to recompute a single visitor id.
//!
//! The one entry point the ingest path uses is [`depersonalize`]: it consumes
//! the [`ClientIp`], so after it returns the raw address is gone from the
//! request's data flow.

pub mod ip;
pub mod salt;
pub mod seal;
pub mod visitor;

pub use ip::{ClientIp, IpMode};
pub use salt::{Salt, SaltBook};
pub use visitor::VisitorId;

/// What survives of a client after depersonalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonym {
    /// Keyed hash, scoped to one site and one UTC day.
    pub visitor_id: VisitorId,
    /// The truncated network (`203.0.113.0/24`, `2001:db8:1::/48`) in
    /// `truncate` mode; `None` in `hash` mode, where nothing of the IP is kept.
    pub ip_prefix: Option<String>,
}

/// Turn a client into one pseudonym per site. Consumes the IP.
///
/// In [`IpMode::Hash`] the full address feeds the keyed hash and nothing else
/// is kept. In [`IpMode::Truncate`] the address is first cut to its /24 or /48
/// network; only that network feeds the hash and may be stored. Each site
/// gets an unrelated id (the site is part of the hashed input).
pub fn depersonalize(ip: ClientIp, user_agent: &str, sites: &[&str], salt: &Salt, mode: IpMode) -> Vec<Pseudonym> {
    let (material, ip_prefix) = match mode {
        IpMode::Hash => (ip.hash_material(), None),
        IpMode::Truncate => {
            let net = ip.truncate();
            (ip::net_material(&net), Some(net.to_string()))
        }
    };
    // `ip` goes out of scope here; only `material` (hashed below) remains.
    sites
        .iter()
        .map(|site| Pseudonym {
            visitor_id: visitor::visitor_id(salt, site, &material, user_agent),
            ip_prefix: ip_prefix.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ClientIp {
        ClientIp::new(s.parse().expect("test ip"))
    }

    #[test]
    fn hash_mode_keeps_nothing_of_the_ip() {
        let salt = Salt::from_bytes([3; salt::SALT_LEN]);
        let p = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Hash);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ip_prefix, None);
    }

    #[test]
    fn truncate_mode_hashes_the_network() {
        let salt = Salt::from_bytes([3; salt::SALT_LEN]);
        let a = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Truncate);
        let b = depersonalize(ip("198.51.100.200"), "UA", &["a.com"], &salt, IpMode::Truncate);
        assert_eq!(a, b, "same /24, same visitor in truncate mode");
        assert_eq!(a[0].ip_prefix.as_deref(), Some("198.51.100.0/24"));
        let h1 = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Hash);
        let h2 = depersonalize(ip("198.51.100.200"), "UA", &["a.com"], &salt, IpMode::Hash);
        assert_ne!(h1, h2, "hash mode tells addresses apart");
        assert_ne!(h1[0].visitor_id, a[0].visitor_id, "modes never collide");
    }

    #[test]
    fn sites_are_not_linkable() {
        let salt = Salt::from_bytes([3; salt::SALT_LEN]);
        let p = depersonalize(ip("2001:db8::1"), "UA", &["a.com", "b.com"], &salt, IpMode::Hash);
        assert_ne!(p[0].visitor_id, p[1].visitor_id);
    }
}
