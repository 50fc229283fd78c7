//! The client address and what may be derived from it.
//!
//! [`ClientIp`] is deliberately awkward: it has no `Display`, no `Serialize`,
//! no `Clone`, and its `Debug` prints `ClientIp(<redacted>)`. A stray
//! `tracing::debug!(?ip)` or `format!("{ip:?}")` therefore cannot leak an
//! address into a log line, a metric label or an error message. The address
//! is revealed only to [`ClientIp::reveal_for_lookup`] (country/ASN lookups,
//! which must see the full IP before it is dropped) and consumed by
//! [`super::depersonalize`].

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 addresses are kept to this prefix length in truncate mode (Google
/// Analytics' "IP anonymization" and Matomo's default: 2 bytes would be
/// stronger, 1 byte is the common legal minimum).
pub const V4_PREFIX: u8 = 24;
/// IPv6 addresses are kept to a /48: one site's network, not one household.
pub const V6_PREFIX: u8 = 48;

/// How the client address is depersonalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    /// Full IP → keyed daily visitor hash; nothing of the IP is stored.
    #[default]
    Hash,
    /// IP cut to /24 (IPv4) or /48 (IPv6); the prefix may be stored and the
    /// visitor hash is computed from the prefix.
    Truncate,
}

/// The raw client address of one request. See the module docs.
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// Wrap an address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack
    /// socket reports) is normalised to IPv4 so both spellings of one client
    /// are treated alike.
    pub fn new(ip: IpAddr) -> Self {
        ClientIp(normalize(ip))
    }

    /// The full address, for country/ASN lookups that must run before the
    /// address is dropped. Do not store or log the result.
    pub fn reveal_for_lookup(&self) -> IpAddr {
        self.0
    }

    /// The network this address belongs to, truncated to /24 or /48.
    pub fn truncate(&self) -> IpNet {
        truncate(self.0)
    }

    /// Whether the address lies in one of `nets` (the answer is all that
    /// leaves: the address itself is not revealed).
    pub fn is_within(&self, nets: &[IpNet]) -> bool {
        nets.iter().any(|net| net.contains(&self.0))
    }

    /// The rate limiter's key for this client: a keyed BLAKE3 hash, under a
    /// per-process random `key`, of the IPv4 address or of the IPv6 /64 (one
    /// subscriber line gets a whole /64, so a client cannot escape its limit
    /// by rotating addresses inside it). Not reversible without the key,
    /// which lives only in the limiter's memory.
    pub fn limiter_key(&self, key: &[u8; 32]) -> [u8; 16] {
        let mut material = [0u8; 9];
        match self.0 {
            IpAddr::V4(v4) => {
                material[0] = 4;
                material[1..5].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                material[0] = 6;
                material[1..].copy_from_slice(&v6.octets()[..8]);
            }
        }
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(b"headcount.ratelimit.v1");
        hasher.update(&material);
        let mut out = [0u8; 16];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        out
    }

    /// Bytes fed to the visitor hash in `hash` mode: family tag + address.
    pub(crate) fn hash_material(&self) -> Vec<u8> {
        match self.0 {
            IpAddr::V4(v4) => [&[4u8][..], &v4.octets()].concat(),
            IpAddr::V6(v6) => [&[6u8][..], &v6.octets()].concat(),
        }
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIp(<redacted>)")
    }
}

/// Bytes fed to the visitor hash in `truncate` mode: family tag, prefix
/// length, network address. Tagged differently from full addresses so a
/// truncated network can never collide with a full address.
pub(crate) fn net_material(net: &IpNet) -> Vec<u8> {
    match net {
        IpNet::V4(n) => [&[0x44u8, n.prefix_len()][..], &n.network().octets()].concat(),
        IpNet::V6(n) => [&[0x66u8, n.prefix_len()][..], &n.network().octets()].concat(),
    }
}

/// IPv4-mapped IPv6 → IPv4; everything else unchanged.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Cut an address to its /24 (IPv4) or /48 (IPv6) network.
pub fn truncate(ip: IpAddr) -> IpNet {
    match normalize(ip) {
        IpAddr::V4(v4) => {
            let masked = u32::from(v4) & (u32::MAX << (32 - V4_PREFIX));
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(masked), V4_PREFIX))
        }
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & (u128::MAX << (128 - V6_PREFIX));
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(masked), V6_PREFIX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_edge_cases() {
        let cases = [
            ("0.0.0.0", "0.0.0.0/24"),
            ("255.255.255.255", "255.255.255.0/24"),
            ("198.51.100.77", "198.51.100.0/24"),
            ("10.1.2.3", "10.1.2.0/24"),
            ("::ffff:198.51.100.77", "198.51.100.0/24"),
            ("::", "::/48"),
            ("::1", "::/48"),
            ("2001:db8:abcd:12:3456:789a:bcde:f012", "2001:db8:abcd::/48"),
            ("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", "2001:db8:abcd::/48"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff::/48"),
            ("fe80::1", "fe80::/48"),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("test ip");
            assert_eq!(truncate(ip).to_string(), want, "truncating {ip}");
        }
    }

    #[test]
    fn debug_never_prints_the_address() {
        let ip = ClientIp::new("198.51.100.77".parse().expect("test ip"));
        let shown = format!("{ip:?} {:#?}", ip);
        assert!(!shown.contains("198"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn limiter_key_is_per_address_v4_per_slash64_v6_and_keyed() {
        let key = |ip: &str, k: u8| ClientIp::new(ip.parse().expect("ip")).limiter_key(&[k; 32]);
        assert_eq!(key("198.51.100.77", 1), key("::ffff:198.51.100.77", 1));
        assert_ne!(key("198.51.100.77", 1), key("198.51.100.78", 1));
        assert_eq!(key("2001:db8:1:2::1", 1), key("2001:db8:1:2:ffff::9", 1), "one /64, one client");
        assert_ne!(key("2001:db8:1:2::1", 1), key("2001:db8:1:3::1", 1));
        assert_ne!(key("198.51.100.77", 1), key("198.51.100.77", 2), "another process, another key");
        let ip = ClientIp::new("198.51.100.77".parse().expect("ip"));
        assert!(ip.is_within(&["198.51.100.0/24".parse().expect("net")]));
        assert!(!ip.is_within(&["10.0.0.0/8".parse().expect("net")]));
    }

    #[test]
    fn mapped_and_plain_ipv4_are_the_same_client() {
        let a = ClientIp::new("198.51.100.77".parse().expect("ip"));
        let b = ClientIp::new("::ffff:198.51.100.77".parse().expect("ip"));
        assert_eq!(a.hash_material(), b.hash_material());
    }

    proptest::proptest! {
        #[test]
        fn truncation_keeps_prefix_and_zeroes_the_rest(raw in proptest::prelude::any::<u32>()) {
            let net = truncate(IpAddr::V4(Ipv4Addr::from(raw)));
            let IpNet::V4(n) = net else { panic!("v4 in, v4 out") };
            proptest::prop_assert_eq!(u32::from(n.network()) >> 8, raw >> 8);
            proptest::prop_assert_eq!(u32::from(n.network()) & 0xff, 0);
        }

        #[test]
        fn v6_truncation_zeroes_host_bits(raw in proptest::prelude::any::<u128>()) {
            let v6 = Ipv6Addr::from(raw);
            prop_assume_not_mapped(v6)?;
            let IpNet::V6(n) = truncate(IpAddr::V6(v6)) else { panic!("v6 in, v6 out") };
            proptest::prop_assert_eq!(u128::from(n.network()) >> 80, raw >> 80);
            proptest::prop_assert_eq!(u128::from(n.network()) << 48, 0);
        }
    }

    fn prop_assume_not_mapped(v6: Ipv6Addr) -> Result<(), proptest::test_runner::TestCaseError> {
        if v6.to_ipv4_mapped().is_some() {
            return Err(proptest::test_runner::TestCaseError::reject("mapped"));
        }
        Ok(())
    }
}
