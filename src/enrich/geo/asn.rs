//! IP → ASN and organisation from CSV ranges, in a compact sorted table.
//!
//! There is no ASN `.mmdb` among the registry packages Headcount installs
//! from: `@ip-location-db/asn` ships CSV ranges
//! (`start,end,asn,organisation`, addresses as text, inclusive, one file per
//! family). DB-IP's "IP to ASN Lite" CSV has the same shape. Loading such a
//! file builds two struct-of-arrays tables (IPv4 as `u32`, IPv6 as `u128`)
//! sorted by range start, and a lookup is one binary search over the starts,
//! no allocation, no hashing. For IPv4 an index by the address's top 16
//! bits narrows the search to the ranges starting in that /16 first: a few
//! probes in one or two cache lines instead of ~19 scattered over the table
//! (the binary search was 9.6 % of the CPU profile under realistic load;
//! `cargo bench --bench enrich -- geo/asn_table_v4`: 26.0 → 9.4 ns).
//!
//! Organisation names repeat (one AS announces many ranges), so each distinct
//! (ASN, organisation) pair is stored once and ranges point at it by index;
//! the names sit back to back in one string (91,000 separately allocated
//! names cost 2.8 MB more in allocator headers and pointers).
//! Adjacent ranges of the same AS are merged. Overlapping ranges (rare — one
//! in the 2026 data) are resolved in favour of the later, more specific one.

use super::GeoError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// One autonomous system, as found in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsInfo<'a> {
    pub asn: u32,
    pub org: &'a str,
}

/// Sorted, non-overlapping inclusive ranges of one address family.
#[derive(Debug, Default)]
struct Ranges<T> {
    starts: Vec<T>,
    ends: Vec<T>,
    info: Vec<u32>,
    /// `index[k]`: the first range whose start has top 16 bits ≥ `k`
    /// (65,537 entries; the last is `starts.len()`).
    index: Vec<u32>,
}

impl<T: Copy + Ord + Bump> Ranges<T> {
    /// Sort, resolve overlaps (later wins), merge neighbours of the same AS.
    fn build(mut raw: Vec<(T, T, u32)>) -> (Ranges<T>, usize) {
        // Stable sort: among equal starts the later line stays later and wins.
        raw.sort_by_key(|r| r.0);
        let mut out = Ranges {
            starts: Vec::with_capacity(raw.len()),
            ends: Vec::with_capacity(raw.len()),
            info: Vec::with_capacity(raw.len()),
            index: Vec::new(),
        };
        let mut clipped = 0;
        for (start, end, info) in raw {
            if let (Some(last_start), Some(last_end)) = (out.starts.last().copied(), out.ends.last_mut()) {
                if start <= *last_end {
                    clipped += 1;
                    if start == last_start {
                        out.starts.pop();
                        out.ends.pop();
                        out.info.pop();
                    } else {
                        *last_end = start.dec();
                    }
                } else if last_end.inc() == start && out.info.last() == Some(&info) {
                    *last_end = end;
                    continue;
                }
            }
            out.starts.push(start);
            out.ends.push(end);
            out.info.push(info);
        }
        out.starts.shrink_to_fit();
        out.ends.shrink_to_fit();
        out.info.shrink_to_fit();
        if T::INDEXED {
            out.index = (0..=1usize << 16).map(|k| out.starts.partition_point(|s| s.top16() < k) as u32).collect();
        }
        (out, clipped)
    }

    fn find(&self, ip: T) -> Option<u32> {
        let k = ip.top16();
        let (lo, hi) = match (self.index.get(k), self.index.get(k + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, self.starts.len()),
        };
        // Every start before `lo` is below this bucket, so below `ip`: the
        // range holding `ip` starts in the bucket or is the one just before.
        let i = (lo + self.starts[lo..hi].partition_point(|s| *s <= ip)).checked_sub(1)?;
        (ip <= self.ends[i]).then(|| self.info[i])
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

/// +1 / −1 on address integers (saturating: the bounds never wrap), and
/// the top 16 bits for the index.
trait Bump: Sized {
    /// Whether an index by the top 16 bits pays off. IPv6 ranges crowd into
    /// a few prefixes (`2001:`, `2a0x:`…), where the index only adds a load:
    /// measured 20 → 26 ns with it, so IPv6 keeps the plain search.
    const INDEXED: bool;
    fn inc(self) -> Self;
    fn dec(self) -> Self;
    fn top16(self) -> usize;
}

impl Bump for u32 {
    const INDEXED: bool = true;
    fn inc(self) -> Self {
        self.saturating_add(1)
    }
    fn dec(self) -> Self {
        self.saturating_sub(1)
    }
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
}

impl Bump for u128 {
    const INDEXED: bool = false;
    fn inc(self) -> Self {
        self.saturating_add(1)
    }
    fn dec(self) -> Self {
        self.saturating_sub(1)
    }
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
}

/// The loaded ASN table.
#[derive(Debug, Default)]
pub struct AsnTable {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    /// Per system: its ASN and where its name ends in `names`.
    systems: Vec<(u32, u32)>,
    names: String,
}

impl AsnTable {
    /// Read a CSV file of `start,end,asn,organisation` lines.
    pub fn open(path: &Path) -> Result<AsnTable, GeoError> {
        let file = std::fs::File::open(path).map_err(|e| GeoError::io(path, e))?;
        Self::from_reader(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| e.at(path))
    }

    /// Parse CSV from any reader (lines of both families may be mixed).
    pub fn from_reader(reader: impl std::io::Read) -> Result<AsnTable, GeoError> {
        let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut systems: Vec<(u32, u32)> = Vec::new();
        let mut names = String::new();
        let mut index: HashMap<(u32, Box<str>), u32> = HashMap::new();
        let mut record = csv::StringRecord::new();
        let mut line = 0usize;
        while csv.read_record(&mut record).map_err(|e| GeoError::Format(format!("line {}: {e}", line + 1)))? {
            line += 1;
            let bad = |what: &str| GeoError::Format(format!("line {line}: {what}"));
            let (Some(start), Some(end), Some(asn)) = (record.get(0), record.get(1), record.get(2)) else {
                return Err(bad("expected start,end,asn[,organisation]"));
            };
            if line == 1 && start.parse::<IpAddr>().is_err() {
                continue; // a header line
            }
            let start: IpAddr = start.trim().parse().map_err(|_| bad("start is not an IP address"))?;
            let end: IpAddr = end.trim().parse().map_err(|_| bad("end is not an IP address"))?;
            let asn: u32 = asn.trim().trim_start_matches("AS").parse().map_err(|_| bad("ASN is not a number"))?;
            if asn == 0 {
                continue; // "not routed"
            }
            let org = record.get(3).unwrap_or_default().trim();
            let key = (asn, Box::<str>::from(org));
            let info = match index.get(&key) {
                Some(i) => *i,
                None => {
                    let i = u32::try_from(systems.len()).map_err(|_| bad("too many autonomous systems"))?;
                    names.push_str(&key.1);
                    let end = u32::try_from(names.len()).map_err(|_| bad("organisation names too long"))?;
                    systems.push((asn, end));
                    index.insert(key, i);
                    i
                }
            };
            match (start, end) {
                (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => v4.push((u32::from(s), u32::from(e), info)),
                (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => v6.push((u128::from(s), u128::from(e), info)),
                _ => return Err(bad("start and end must be one family, start <= end")),
            }
        }
        if v4.is_empty() && v6.is_empty() {
            return Err(GeoError::Format("no ranges".into()));
        }
        let (v4, c4) = Ranges::build(v4);
        let (v6, c6) = Ranges::build(v6);
        if c4 + c6 > 0 {
            tracing::debug!(overlaps = c4 + c6, "ASN ranges overlapped; the later range won");
        }
        systems.shrink_to_fit();
        names.shrink_to_fit();
        Ok(AsnTable { v4, v6, systems, names })
    }

    /// The autonomous system announcing `ip`, if any.
    pub fn lookup(&self, ip: IpAddr) -> Option<AsInfo<'_>> {
        let i = match ip {
            IpAddr::V4(v4) => self.v4.find(u32::from(v4))?,
            IpAddr::V6(v6) => self.v6.find(u128::from(v6))?,
        } as usize;
        let (asn, end) = *self.systems.get(i)?;
        let start = match i.checked_sub(1) {
            Some(prev) => self.systems.get(prev)?.1,
            None => 0,
        };
        Some(AsInfo { asn, org: self.names.get(start as usize..end as usize)? })
    }

    /// Number of (IPv4, IPv6) ranges after merging.
    pub fn ranges(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> AsnTable {
        AsnTable::from_reader(csv.as_bytes()).expect("valid csv")
    }

    fn asn(t: &AsnTable, ip: &str) -> Option<(u32, String)> {
        t.lookup(ip.parse().expect("ip")).map(|i| (i.asn, i.org.to_string()))
    }

    #[test]
    fn the_index_finds_ranges_that_start_in_an_earlier_bucket() {
        let t = table(
            "1.0.0.0,1.2.255.255,100,Wide\n1.3.0.10,1.3.0.20,200,Narrow\n9.0.0.0,9.0.0.0,300,One\n\
             2001:db8::,2001:dbf:ffff:ffff:ffff:ffff:ffff:ffff,400,Six\n",
        );
        assert_eq!(asn(&t, "1.1.5.5"), Some((100, "Wide".into())), "starts two /16s earlier");
        assert_eq!(asn(&t, "1.2.255.255"), Some((100, "Wide".into())));
        assert_eq!(asn(&t, "1.3.0.9"), None, "a gap in the bucket of the next range");
        assert_eq!(asn(&t, "1.3.0.15"), Some((200, "Narrow".into())));
        assert_eq!(asn(&t, "1.3.0.21"), None);
        assert_eq!(asn(&t, "9.0.0.0"), Some((300, "One".into())));
        assert_eq!(asn(&t, "0.0.0.1"), None, "before every range");
        assert_eq!(asn(&t, "255.255.255.255"), None, "after every range");
        assert_eq!(asn(&t, "2001:dbe::1"), Some((400, "Six".into())));
        assert_eq!(asn(&t, "2001:dc0::"), None);
    }

    #[test]
    fn finds_ranges_of_both_families() {
        let t = table(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             2.26.200.0,2.26.215.255,201907,\"LLC \"\"SPUTNIK\"\"\"\n\
             8.8.8.0,8.8.8.255,15169,Google LLC\n\
             2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n",
        );
        assert_eq!(asn(&t, "1.0.0.1"), Some((13335, "Cloudflare, Inc.".into())));
        assert_eq!(asn(&t, "1.0.0.255"), Some((13335, "Cloudflare, Inc.".into())));
        assert_eq!(asn(&t, "2.26.210.1"), Some((201907, "LLC \"SPUTNIK\"".into())));
        assert_eq!(asn(&t, "8.8.8.8"), Some((15169, "Google LLC".into())));
        assert_eq!(asn(&t, "2001:4860:4860::8888"), Some((15169, "Google LLC".into())));
        for miss in ["0.255.255.255", "1.0.1.0", "8.8.9.0", "255.255.255.255", "2001:4861::1", "::1"] {
            assert_eq!(asn(&t, miss), None, "{miss}");
        }
        assert_eq!(t.systems.len(), 3, "one entry per (asn, org)");
    }

    #[test]
    fn neighbours_merge_and_overlaps_resolve_to_the_later_range() {
        let t = table(
            "10.0.0.0,10.0.0.255,1,A\n10.0.1.0,10.0.1.255,1,A\n\
             214.95.0.0,215.0.255.255,749,DoD\n215.0.0.0,215.1.3.255,721,NIC\n",
        );
        assert_eq!(t.ranges(), (3, 0), "the two AS1 ranges merged");
        assert_eq!(asn(&t, "10.0.1.7").map(|x| x.0), Some(1));
        assert_eq!(asn(&t, "214.255.0.1").map(|x| x.0), Some(749));
        assert_eq!(asn(&t, "215.0.0.1").map(|x| x.0), Some(721));
        assert_eq!(asn(&t, "215.1.3.255").map(|x| x.0), Some(721));
    }

    #[test]
    fn bad_files_are_refused_with_a_line_number() {
        for (csv, needle) in [
            ("1.0.0.0,1.0.0.255,x,Org\n", "line 1"),
            ("1.0.0.0,1.0.0.255,1,Org\n1.0.0.0,::1,1,Org\n", "line 2"),
            ("1.0.0.9,1.0.0.1,1,Org\n", "start <= end"),
            ("", "no ranges"),
        ] {
            let err = AsnTable::from_reader(csv.as_bytes()).expect_err(csv).to_string();
            assert!(err.contains(needle), "{csv:?}: {err}");
        }
        let with_header = table("start,end,asn,org\n1.0.0.0,1.0.0.255,7,Seven\n");
        assert_eq!(asn(&with_header, "1.0.0.3").map(|x| x.0), Some(7));
    }
}
