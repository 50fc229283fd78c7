//! A minimal MaxMind DB writer, for tests only.
//!
//! The shipped ip-location-db files cover the country and ASN paths; the
//! city layouts (GeoIP2 and ip-location-db), the GeoLite2-ASN layout and an
//! IPv6 lookup against an IPv4-only file need databases nobody ships in a
//! registry package. This writes real `.mmdb` files (format 2.0, 24-bit
//! records) for a few networks so those paths run against the real
//! `maxminddb` reader.

use std::net::IpAddr;

/// A value in the MMDB data section.
pub enum Value {
    Str(&'static str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, ext) = if kind <= 7 { (kind << 5, None) } else { (0, Some(kind - 7)) };
    assert!(size < 29 + 256, "test values stay small");
    out.push(first | size.min(29) as u8);
    out.extend(ext);
    if size >= 29 {
        out.push((size - 29) as u8);
    }
}

fn uint(out: &mut Vec<u8>, kind: u8, be: &[u8]) {
    let bytes: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    control(out, kind, bytes.len());
    out.extend(bytes);
}

fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(out, 5, &n.to_be_bytes()),
        Value::U32(n) => uint(out, 6, &n.to_be_bytes()),
        Value::U64(n) => uint(out, 9, &n.to_be_bytes()),
        Value::Map(entries) => {
            control(out, 7, entries.len());
            for (k, v) in entries {
                encode(out, &Value::Str(k));
                encode(out, v);
            }
        }
        Value::Array(items) => {
            control(out, 11, items.len());
            items.iter().for_each(|i| encode(out, i));
        }
    }
}

/// Build a database of `ip_version` 4 or 6 holding `networks`
/// (address, prefix length, record).
pub fn build(ip_version: u16, networks: Vec<(IpAddr, u8, Value)>) -> Vec<u8> {
    const EMPTY: u32 = u32::MAX;
    const DATA: u32 = 0x8000_0000;
    // Tree nodes; a record is a node index, EMPTY, or DATA | network number.
    let mut nodes: Vec<[u32; 2]> = vec![[EMPTY; 2]];
    let mut data_index = Vec::new();
    for (n, (ip, prefix, _)) in networks.iter().enumerate() {
        let bits: u128 = match (ip, ip_version) {
            (IpAddr::V4(v4), 4) => u128::from(u32::from(*v4)) << 96,
            (IpAddr::V4(v4), _) => u128::from(u32::from(*v4)), // ::a.b.c.d, where readers look
            (IpAddr::V6(v6), _) => u128::from(*v6),
        };
        let prefix = if ip_version == 6 && ip.is_ipv4() { *prefix as usize + 96 } else { *prefix as usize };
        let mut node = 0usize;
        for i in 0..prefix {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == prefix {
                nodes[node][bit] = DATA | n as u32;
            } else {
                if nodes[node][bit] == EMPTY {
                    nodes.push([EMPTY; 2]);
                    nodes[node][bit] = (nodes.len() - 1) as u32;
                }
                node = nodes[node][bit] as usize;
            }
        }
    }
    let mut data = Vec::new();
    for (_, _, v) in &networks {
        data_index.push(data.len() as u32);
        encode(&mut data, v);
    }
    let count = nodes.len() as u32;
    let mut out = Vec::new();
    for node in &nodes {
        for rec in node {
            let v = match *rec {
                EMPTY => count,
                r if r & DATA != 0 => count + 16 + data_index[(r & !DATA) as usize],
                r => r,
            };
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend(data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let mut meta = Vec::new();
    encode(
        &mut meta,
        &Value::Map(vec![
            ("node_count", Value::U32(count)),
            ("record_size", Value::U16(24)),
            ("ip_version", Value::U16(ip_version)),
            ("database_type", Value::Str("Headcount-Test")),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            ("description", Value::Map(vec![("en", Value::Str("test"))])),
        ]),
    );
    out.extend(meta);
    out
}
