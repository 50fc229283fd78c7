//! Which address is the client?
//!
//! The socket peer, unless the peer is one of the operator's configured
//! proxies. Only then are `X-Forwarded-For`, `Forwarded` (RFC 7239) and
//! `X-Real-IP` believed, and from the right: each trusted proxy appends the
//! address it saw, so the rightmost hop that is *not* a trusted proxy is the
//! client. Everything left of it is client-controlled and could be forged.
//! Headers from untrusted peers are ignored entirely — otherwise anyone could
//! inflate visitor counts by sending random `X-Forwarded-For` values.

use crate::privacy::ClientIp;
use crate::privacy::ip::normalize;
use hyper::HeaderMap;
use hyper::header::{FORWARDED, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client address of a request that arrived from `peer`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientIp {
    let peer_ip = normalize(peer.ip());
    if !is_trusted(peer_ip, trusted) {
        return ClientIp::new(peer_ip);
    }
    let hops = forwarded_for(headers)
        .or_else(|| x_forwarded_for(headers))
        .or_else(|| x_real_ip(headers).map(|ip| vec![Some(ip)]));
    let Some(hops) = hops else {
        return ClientIp::new(peer_ip);
    };
    let mut last_trusted = peer_ip;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip, trusted) => last_trusted = *ip,
            Some(ip) => return ClientIp::new(*ip),
            // An unparsable hop ("unknown", garbage): nothing left of it can
            // be believed; the last trusted proxy is the best we know.
            None => return ClientIp::new(last_trusted),
        }
    }
    // Every hop is a trusted proxy: the leftmost is the origin.
    ClientIp::new(hops.iter().flatten().next().copied().unwrap_or(peer_ip))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

// Names as constants: a `&str` name is parsed on every lookup.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Every value of the header `name`. A value is never skipped: a trusted
/// proxy may have appended its hop to a client's header that is not ASCII,
/// and skipping it would let an earlier value or a lower-priority header,
/// both client-controlled, name the client. UTF-8 is read as it is (its
/// non-address hops do not parse); anything else is one unknown hop.
fn header_values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).into_iter().map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or("for=unknown"))
}

/// `X-Forwarded-For: client, proxy1, proxy2` (possibly over several headers).
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let hops: Vec<Option<IpAddr>> =
        header_values(headers, &X_FORWARDED_FOR).flat_map(|v| v.split(',')).map(|h| parse_hop(h.trim())).collect();
    (!hops.is_empty()).then_some(hops)
}

/// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"`.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for element in header_values(headers, &FORWARDED).flat_map(|v| v.split(',')) {
        for pair in element.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("for") {
                hops.push(parse_hop(v.trim().trim_matches('"')));
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

fn x_real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    header_values(headers, &X_REAL_IP).next().and_then(|v| parse_hop(v.trim()))
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80` → address.
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(normalize(ip));
    }
    if let Ok(sa) = h.parse::<SocketAddr>() {
        return Some(normalize(sa.ip()));
    }
    let inner = h.strip_prefix('[').and_then(|r| r.split(']').next())?;
    inner.parse::<IpAddr>().ok().map(normalize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn resolve(peer: &str, pairs: &[(&'static str, &'static str)], trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().expect("cidr")).collect();
        let ip = client_ip(peer.parse().expect("peer"), &headers(pairs), &trusted);
        ip.reveal_for_lookup().to_string()
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn table() {
        let xff = "x-forwarded-for";
        let cases: &[(&str, &[(&'static str, &'static str)], &[&str], &str)] = &[
            // untrusted peer: headers ignored
            ("203.0.113.9:5000", &[(xff, "198.51.100.77")], &[], "203.0.113.9"),
            ("203.0.113.9:5000", &[(xff, "198.51.100.77")], &["10.0.0.0/8"], "203.0.113.9"),
            // trusted peer: rightmost untrusted hop
            ("10.0.0.1:5000", &[(xff, "198.51.100.77")], &["10.0.0.0/8"], "198.51.100.77"),
            ("10.0.0.1:5000", &[(xff, "6.6.6.6, 198.51.100.77, 10.0.0.2")], &["10.0.0.0/8"], "198.51.100.77"),
            ("10.0.0.1:5000", &[(xff, "6.6.6.6"), (xff, "198.51.100.77")], &["10.0.0.0/8"], "198.51.100.77"),
            ("10.0.0.1:5000", &[(xff, "198.51.100.77:4321")], &["10.0.0.0/8"], "198.51.100.77"),
            ("10.0.0.1:5000", &[(xff, "[2001:db8::7]:443")], &["10.0.0.0/8"], "2001:db8::7"),
            ("10.0.0.1:5000", &[(xff, "garbage, 198.51.100.77")], &["10.0.0.0/8"], "198.51.100.77"),
            ("10.0.0.1:5000", &[(xff, "198.51.100.77, garbage")], &["10.0.0.0/8"], "10.0.0.1"),
            ("10.0.0.1:5000", &[(xff, "10.0.0.3, 10.0.0.2")], &["10.0.0.0/8"], "10.0.0.3"),
            // Forwarded wins over X-Forwarded-For
            (
                "[::1]:5000",
                &[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""), (xff, "1.1.1.1")],
                &["::1/128"],
                "2001:db8:cafe::17",
            ),
            ("[::1]:5000", &[("forwarded", "For=\"198.51.100.77:80\"")], &["::1/128"], "198.51.100.77"),
            // X-Real-IP last
            ("10.0.0.1:5000", &[("x-real-ip", "198.51.100.77")], &["10.0.0.0/8"], "198.51.100.77"),
            // no header from a trusted peer: the peer
            ("10.0.0.1:5000", &[], &["10.0.0.0/8"], "10.0.0.1"),
            // IPv4-mapped peer
            ("[::ffff:203.0.113.9]:5000", &[(xff, "198.51.100.77")], &["203.0.113.0/24"], "198.51.100.77"),
        ];
        for (peer, hdrs, trusted, want) in cases {
            assert_eq!(resolve(peer, hdrs, trusted), *want, "peer {peer} headers {hdrs:?} trusted {trusted:?}");
        }
    }

    /// Found by `tests/fuzz.rs`: a header value that was not visible ASCII
    /// was skipped whole, hiding the hop the proxy appended to it, so an
    /// earlier `X-Forwarded-For` line or `X-Real-IP` (the client's own) won.
    #[test]
    fn values_that_are_not_ascii_are_not_skipped() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let resolve = |name: &'static str, appended_to: &[u8]| {
            let mut h = HeaderMap::new();
            h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
            h.append("x-real-ip", HeaderValue::from_static("6.6.6.6"));
            h.append(name, HeaderValue::from_bytes(appended_to).expect("header value"));
            client_ip("10.0.0.1:5000".parse().expect("peer"), &h, &trusted).reveal_for_lookup().to_string()
        };
        assert_eq!(resolve("x-forwarded-for", "é, 198.51.100.77".as_bytes()), "198.51.100.77");
        assert_eq!(resolve("forwarded", "for=é, for=198.51.100.77".as_bytes()), "198.51.100.77");
        // Not UTF-8: one unknown hop, so the proxy is the best we know.
        assert_eq!(resolve("x-forwarded-for", b"\xff, 198.51.100.77"), "10.0.0.1");
        assert_eq!(resolve("forwarded", b"for=\xff, for=198.51.100.77"), "10.0.0.1");
    }
}
