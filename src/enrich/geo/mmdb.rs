//! Lookups in MaxMind-format (`.mmdb`) files.
//!
//! Two record layouts exist in the wild and both are read:
//!
//! * **GeoIP2** (MaxMind GeoLite2/GeoIP2, DB-IP Lite): nested maps —
//!   `country.iso_code`, `subdivisions[0].names.en`, `city.names.en`;
//!   ASN files have `autonomous_system_number`/`…_organization`.
//! * **ip-location-db** (the npm packages `scripts/install-geo.sh` installs):
//!   flat — `country_code`, and in its city files `state1` and `city` as
//!   plain strings.
//!
//! Only the fields Headcount stores are decoded (borrowed `&str`, no
//! allocation until the final `String`); latitude, longitude and postcodes
//! are never read — they are finer than attendance statistics need.
//!
//! `maxminddb` ≥ 0.32 is required: 0.26 silently misread IPv6 addresses
//! against IPv4-only files; 0.32 reports an error, which [`MmdbDb::lookup`]
//! turns into "unknown".

use super::GeoError;
use crate::event::Location;
use maxminddb::Reader;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// An opened `.mmdb` file (read into memory, so replacing the file on disk
/// never disturbs lookups in progress).
pub struct MmdbDb {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for MmdbDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.reader.metadata();
        f.debug_struct("MmdbDb").field("database_type", &m.database_type).field("ip_version", &m.ip_version).finish()
    }
}

#[derive(Deserialize)]
struct Iso<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Names<'a>,
}

/// `city` is a map in GeoIP2 files and a string in ip-location-db files.
#[derive(Deserialize)]
#[serde(untagged)]
enum CityField<'a> {
    Plain(&'a str),
    Geoip2(#[serde(borrow)] Named<'a>),
}

/// The country-only record: the common, cheap case.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<Iso<'a>>,
}

/// A city-level record in either layout.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<Iso<'a>>,
    #[serde(borrow, default)]
    state1: Option<&'a str>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Named<'a>>>,
    #[serde(borrow, default)]
    city: Option<CityField<'a>>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// A country code worth storing: two ASCII letters, uppercased.
fn country_code(code: Option<&str>) -> String {
    match code {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
        _ => String::new(),
    }
}

fn name(s: Option<&str>) -> String {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).unwrap_or_default()
}

impl MmdbDb {
    pub fn open(path: &Path) -> Result<MmdbDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|e| GeoError::io(path, e))?;
        let reader = Reader::from_source(bytes).map_err(|e| GeoError::Format(format!("{}: {e}", path.display())))?;
        Ok(MmdbDb { reader })
    }

    /// Decode the record for `ip`; `None` when there is none or it does not
    /// fit (an IPv6 address against an IPv4-only file is an error in
    /// maxminddb 0.32, and simply "unknown" here).
    fn lookup<'a, T: Deserialize<'a>>(&'a self, ip: IpAddr) -> Option<T> {
        self.reader.lookup(ip).ok()?.decode::<T>().ok()?
    }

    /// Country code only.
    pub fn country(&self, ip: IpAddr) -> String {
        let Some(r) = self.lookup::<CountryRecord>(ip) else {
            return String::new();
        };
        country_code(r.country_code.or(r.country.and_then(|c| c.iso_code)))
    }

    /// Country, region and city; the ASN fields are left empty.
    pub fn city(&self, ip: IpAddr) -> Location {
        let Some(r) = self.lookup::<CityRecord>(ip) else {
            return Location::default();
        };
        let region = r.state1.or_else(|| r.subdivisions.as_ref().and_then(|s| s.first()).and_then(|s| s.names.en));
        let city = match &r.city {
            Some(CityField::Plain(c)) => Some(*c),
            Some(CityField::Geoip2(n)) => n.names.en,
            None => None,
        };
        Location {
            country: country_code(r.country_code.or(r.country.and_then(|c| c.iso_code))),
            region: name(region),
            city: name(city),
            ..Location::default()
        }
    }

    /// ASN and organisation (GeoLite2-ASN layout).
    pub fn asn(&self, ip: IpAddr) -> Option<(u32, String)> {
        let r = self.lookup::<AsnRecord>(ip)?;
        let asn = r.autonomous_system_number.filter(|n| *n != 0)?;
        Some((asn, name(r.autonomous_system_organization)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_checked() {
        assert_eq!(country_code(Some("ru")), "RU");
        assert_eq!(country_code(Some("US")), "US");
        assert_eq!(country_code(Some("EUR")), "");
        assert_eq!(country_code(Some("1A")), "");
        assert_eq!(country_code(None), "");
    }

    use crate::enrich::geo::test_mmdb::{Value::*, build};

    fn open(dir: &tempfile::TempDir, name: &str, bytes: Vec<u8>) -> MmdbDb {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        MmdbDb::open(&path).expect("a valid mmdb")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn geoip2_city_layout() {
        let dir = tempfile::tempdir().expect("tmp");
        let record = Map(vec![
            (
                "city",
                Map(vec![
                    ("geoname_id", U32(524901)),
                    ("names", Map(vec![("en", Str("Moscow")), ("ru", Str("Москва"))])),
                ]),
            ),
            ("country", Map(vec![("iso_code", Str("RU")), ("names", Map(vec![("en", Str("Russia"))]))])),
            ("location", Map(vec![("time_zone", Str("Europe/Moscow"))])),
            (
                "subdivisions",
                Array(vec![Map(vec![("iso_code", Str("MOW")), ("names", Map(vec![("en", Str("Moscow"))]))])]),
            ),
        ]);
        let db = open(&dir, "city.mmdb", build(6, vec![(ip("77.88.0.0"), 18, record)]));
        let want =
            Location { country: "RU".into(), region: "Moscow".into(), city: "Moscow".into(), ..Location::default() };
        assert_eq!(db.city(ip("77.88.8.8")), want);
        assert_eq!(db.country(ip("77.88.8.8")), "RU", "a city file answers country lookups too");
        assert_eq!(db.city(ip("8.8.8.8")), Location::default());
        assert_eq!(db.city(ip("2001:4860::1")), Location::default());
    }

    #[test]
    fn ip_location_db_flat_layouts() {
        let dir = tempfile::tempdir().expect("tmp");
        let city = Map(vec![
            ("city", Str("Novosibirsk")),
            ("country_code", Str("RU")),
            ("state1", Str("Novosibirsk Oblast")),
            ("latitude", Str("55.0")),
        ]);
        let db = open(&dir, "city.mmdb", build(6, vec![(ip("2a02:6b8::"), 32, city)]));
        let want = Location {
            country: "RU".into(),
            region: "Novosibirsk Oblast".into(),
            city: "Novosibirsk".into(),
            ..Location::default()
        };
        assert_eq!(db.city(ip("2a02:6b8::2:242")), want);
        let country =
            open(&dir, "country.mmdb", build(6, vec![(ip("8.8.8.0"), 24, Map(vec![("country_code", Str("US"))]))]));
        assert_eq!(country.country(ip("8.8.8.8")), "US");
        assert_eq!(country.country(ip("::ffff:8.8.8.8")), "");
    }

    #[test]
    fn geolite2_asn_layout() {
        let dir = tempfile::tempdir().expect("tmp");
        let record =
            Map(vec![("autonomous_system_number", U32(13238)), ("autonomous_system_organization", Str("YANDEX LLC"))]);
        let db = open(&dir, "asn.mmdb", build(6, vec![(ip("2a02:6b8::"), 32, record)]));
        assert_eq!(db.asn(ip("2a02:6b8::2:242")), Some((13238, "YANDEX LLC".to_string())));
        assert_eq!(db.asn(ip("2a03::1")), None);
    }

    /// maxminddb 0.26 silently misread IPv6 addresses against IPv4-only
    /// files; 0.32 reports an error, which must read as "unknown".
    #[test]
    fn ipv6_against_an_ipv4_only_file_is_unknown() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open(&dir, "v4.mmdb", build(4, vec![(ip("1.0.0.0"), 8, Map(vec![("country_code", Str("AU"))]))]));
        assert_eq!(db.country(ip("1.2.3.4")), "AU");
        assert_eq!(db.country(ip("100::1")), "");
        assert_eq!(db.country(ip("2001:4860:4860::8888")), "");
        assert_eq!(db.city(ip("2001:4860:4860::8888")), Location::default());
    }

    #[test]
    fn a_file_that_is_not_mmdb_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("broken.mmdb");
        std::fs::write(&p, b"this is not a database").expect("write");
        assert!(matches!(MmdbDb::open(&p), Err(GeoError::Format(_))));
        assert!(matches!(MmdbDb::open(&dir.path().join("absent.mmdb")), Err(GeoError::Io { .. })));
    }
}
