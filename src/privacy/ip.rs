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
