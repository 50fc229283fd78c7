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
pub mod midnight;
pub mod salt;
pub mod seal;
pub mod visitor;

pub use ip::{ClientIp, IpMode};
pub use midnight::MidnightBridge;
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
    /// The id is yesterday's: a session that crossed midnight continues.
    pub continued: bool,
}

/// Yesterday's salt and a test for "this id had a session active just now";
/// see [`midnight`].
pub struct Carry<'a> {
    pub salt: &'a Salt,
    pub is_active: &'a dyn Fn(&str, &VisitorId) -> bool,
}

/// Turn a client into one pseudonym per site. Consumes the IP.
///
/// In [`IpMode::Hash`] the full address feeds the keyed hash and nothing else
/// is kept. In [`IpMode::Truncate`] the address is first cut to its /24 or /48
/// network; only that network feeds the hash and may be stored. Each site
/// gets an unrelated id (the site is part of the hashed input).
pub fn depersonalize(
    ip: ClientIp,
    user_agent: &str,
    sites: &[&str],
    salt: &Salt,
    mode: IpMode,
    carry: Option<Carry<'_>>,
) -> Vec<Pseudonym> {
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
        .map(|site| {
            let yesterdays = carry.as_ref().map(|c| (visitor::visitor_id(c.salt, site, &material, user_agent), c));
            match yesterdays {
                Some((old, c)) if (c.is_active)(site, &old) => {
                    Pseudonym { visitor_id: old, ip_prefix: ip_prefix.clone(), continued: true }
                }
                _ => Pseudonym {
                    visitor_id: visitor::visitor_id(salt, site, &material, user_agent),
                    ip_prefix: ip_prefix.clone(),
                    continued: false,
                },
            }
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
        let p = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Hash, None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ip_prefix, None);
    }

    #[test]
    fn truncate_mode_hashes_the_network() {
        let salt = Salt::from_bytes([3; salt::SALT_LEN]);
        let a = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Truncate, None);
        let b = depersonalize(ip("198.51.100.200"), "UA", &["a.com"], &salt, IpMode::Truncate, None);
        assert_eq!(a, b, "same /24, same visitor in truncate mode");
        assert_eq!(a[0].ip_prefix.as_deref(), Some("198.51.100.0/24"));
        let h1 = depersonalize(ip("198.51.100.77"), "UA", &["a.com"], &salt, IpMode::Hash, None);
        let h2 = depersonalize(ip("198.51.100.200"), "UA", &["a.com"], &salt, IpMode::Hash, None);
        assert_ne!(h1, h2, "hash mode tells addresses apart");
        assert_ne!(h1[0].visitor_id, a[0].visitor_id, "modes never collide");
    }

    #[test]
    fn carry_keeps_yesterdays_id_only_for_active_sessions() {
        let today = Salt::from_bytes([1; salt::SALT_LEN]);
        let yesterday = Salt::from_bytes([2; salt::SALT_LEN]);
        let fresh = depersonalize(ip("198.51.100.7"), "UA", &["a.com"], &today, IpMode::Hash, None);
        let old = depersonalize(ip("198.51.100.7"), "UA", &["a.com"], &yesterday, IpMode::Hash, None);
        let old_id = old[0].visitor_id;
        let active = |_: &str, id: &VisitorId| *id == old_id;
        let carried = depersonalize(
            ip("198.51.100.7"),
            "UA",
            &["a.com"],
            &today,
            IpMode::Hash,
            Some(Carry { salt: &yesterday, is_active: &active }),
        );
        assert_eq!(carried[0].visitor_id, old_id);
        assert!(carried[0].continued);
        let other = depersonalize(
            ip("198.51.100.8"),
            "UA",
            &["a.com"],
            &today,
            IpMode::Hash,
            Some(Carry { salt: &yesterday, is_active: &active }),
        );
        assert!(!other[0].continued);
        assert_ne!(other[0].visitor_id, fresh[0].visitor_id);
        assert_ne!(fresh[0].visitor_id, old_id, "days differ");
    }

    #[test]
    fn sites_are_not_linkable() {
        let salt = Salt::from_bytes([3; salt::SALT_LEN]);
        let p = depersonalize(ip("2001:db8::1"), "UA", &["a.com", "b.com"], &salt, IpMode::Hash, None);
        assert_ne!(p[0].visitor_id, p[1].visitor_id);
    }
}
