//! The visitor id: keyed BLAKE3 over length-prefixed fields.
//!
//! `visitor_id = BLAKE3_keyed(salt_of_day, "headcount.visitor.v1" ‖ len‖site ‖ len‖ip ‖ len‖ua)[..16]`
//!
//! * **Keyed** by the day's salt: without the salt nobody — including whoever
//!   reads ClickHouse — can test a guessed IP against an id.
//! * **Length-prefixed** fields (u64 little-endian): `("ab","c")` and
//!   `("a","bc")` hash differently. Plain concatenation (as some peers do)
//!   lets one field's bytes slide into the next.
//! * **Site in the input**: the same person on two sites gets unrelated ids,
//!   so sites cannot be joined on visitor_id.
//! * **16 bytes**: 128 bits, collision-free at any realistic daily volume and
//!   the width of ClickHouse's `FixedString(16)`.

use super::salt::Salt;
use std::fmt;

const CONTEXT: &[u8] = b"headcount.visitor.v1";

/// A 128-bit pseudonymous visitor id, valid for one site and one day.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorId(pub [u8; 16]);

impl fmt::Debug for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VisitorId({})", hex::encode(self.0))
    }
}

/// A cheap 64-bit key for a site name (FNV-1a), for in-memory maps keyed by
/// (site, visitor id). The visitor id already depends on the site, so this
/// only has to keep equal ids of different sites apart; it lets such maps
/// look up without allocating a copy of the site name per event.
pub fn site_key(site: &str) -> u64 {
    site.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Hash (site, ip material, user-agent) under `salt`.
pub fn visitor_id(salt: &Salt, site: &str, ip_material: &[u8], user_agent: &str) -> VisitorId {
    let mut h = blake3::Hasher::new_keyed(salt.expose_secret());
    h.update(CONTEXT);
    for field in [site.as_bytes(), ip_material, user_agent.as_bytes()] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field);
    }
    let mut out = [0u8; 16];
    h.finalize_xof().fill(&mut out);
    VisitorId(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::salt::SALT_LEN;

    fn salt(b: u8) -> Salt {
        Salt::from_bytes([b; SALT_LEN])
    }

    #[test]
    fn same_inputs_same_id() {
        let s = salt(7);
        assert_eq!(
            visitor_id(&s, "a.com", b"\x04\x01\x02\x03\x04", "UA"),
            visitor_id(&s, "a.com", b"\x04\x01\x02\x03\x04", "UA")
        );
    }

    #[test]
    fn every_input_matters() {
        let base = visitor_id(&salt(7), "a.com", b"ip", "UA");
        assert_ne!(base, visitor_id(&salt(8), "a.com", b"ip", "UA"), "salt");
        assert_ne!(base, visitor_id(&salt(7), "b.com", b"ip", "UA"), "site");
        assert_ne!(base, visitor_id(&salt(7), "a.com", b"iq", "UA"), "ip");
        assert_ne!(base, visitor_id(&salt(7), "a.com", b"ip", "UB"), "ua");
    }

    #[test]
    fn length_prefix_separates_fields() {
        let s = salt(7);
        // Plain concatenation would make all of these "a.comipUA".
        let ids = [
            visitor_id(&s, "a.com", b"ip", "UA"),
            visitor_id(&s, "a.comi", b"p", "UA"),
            visitor_id(&s, "a.com", b"i", "pUA"),
            visitor_id(&s, "a.comip", b"", "UA"),
            visitor_id(&s, "", b"a.comip", "UA"),
        ];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn known_answer() {
        // Pins the construction: changing it silently would split every
        // visitor of the current day in two.
        let id = visitor_id(&salt(0), "example.com", &[4, 198, 51, 100, 77], "Mozilla/5.0");
        let mut h = blake3::Hasher::new_keyed(&[0; 32]);
        h.update(b"headcount.visitor.v1");
        h.update(&11u64.to_le_bytes());
        h.update(b"example.com");
        h.update(&5u64.to_le_bytes());
        h.update(&[4, 198, 51, 100, 77]);
        h.update(&11u64.to_le_bytes());
        h.update(b"Mozilla/5.0");
        assert_eq!(&id.0[..], &h.finalize().as_bytes()[..16]);
    }

    proptest::proptest! {
        /// Moving a field boundary always changes the id:
        /// ("ab","c") and ("a","bc") never collide, for any bytes.
        #[test]
        fn field_boundaries_never_collide(
            joined in "[a-z0-9.]{2,40}",
            split in proptest::prelude::any::<proptest::sample::Index>(),
            other in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let s = salt(9);
            let (i, j) = (split.index(joined.len() + 1), other.index(joined.len() + 1));
            proptest::prop_assume!(i != j);
            let a = visitor_id(&s, &joined[..i], &joined.as_bytes()[i..], "UA");
            let b = visitor_id(&s, &joined[..j], &joined.as_bytes()[j..], "UA");
            proptest::prop_assert_ne!(a, b);
            let c = visitor_id(&s, "site", &joined.as_bytes()[..i], &joined[i..]);
            let d = visitor_id(&s, "site", &joined.as_bytes()[..j], &joined[j..]);
            proptest::prop_assert_ne!(c, d);
        }

        /// The same person on two sites has unrelated ids.
        #[test]
        fn ids_are_scoped_per_site(
            site_a in "[a-z]{1,20}\\.[a-z]{2,5}",
            site_b in "[a-z]{1,20}\\.[a-z]{2,5}",
            ip in proptest::prelude::any::<[u8; 4]>(),
            ua in ".{0,80}",
        ) {
            proptest::prop_assume!(site_a != site_b);
            let s = salt(5);
            proptest::prop_assert_ne!(visitor_id(&s, &site_a, &ip, &ua), visitor_id(&s, &site_b, &ip, &ua));
        }
    }

    #[test]
    fn ids_look_uniform() {
        // 32,768 ids over consecutive IPv4 addresses (the worst case: inputs
        // differing in one byte). Every output bit should be set about half
        // the time, and the first byte should spread evenly over 256 values.
        let s = salt(1);
        let n = 32_768u32;
        let mut bit_ones = [0u32; 128];
        let mut first_byte = [0u32; 256];
        for i in 0..n {
            let ip = (0xC633_6400u32 + i).to_be_bytes();
            let id = visitor_id(&s, "example.com", &ip, "Mozilla/5.0");
            first_byte[id.0[0] as usize] += 1;
            for (bit, ones) in bit_ones.iter_mut().enumerate() {
                *ones += u32::from((id.0[bit / 8] >> (bit % 8)) & 1);
            }
        }
        // Each bit: binomial(n, 1/2), sd = 90.5; 5 sd = 453.
        for (bit, ones) in bit_ones.iter().enumerate() {
            let dev = (*ones as i64 - (n / 2) as i64).abs();
            assert!(dev < 453, "bit {bit} set {ones} of {n} times");
        }
        // Chi-square over 255 degrees of freedom; p = 0.0001 critical value ~ 360.
        let expected = n as f64 / 256.0;
        let chi2: f64 = first_byte.iter().map(|&o| (o as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 360.0, "first byte not uniform: chi2 = {chi2:.1}");
    }
}
