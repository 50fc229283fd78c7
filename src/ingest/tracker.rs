//! The tracking script, served at `GET /js/script.js`.
//!
//! Sites embed one line,
//! `<script defer data-domain="example.com" src="https://stats.example.com/js/script.js"></script>`,
//! so the script is fetched on every first visit to every page of every
//! site: it has to be small and cacheable, and it must come from Headcount
//! itself (the policies promise no third-party calls).
//!
//! * **Source of truth:** `tracker/script.js` is the readable source;
//!   `scripts/build-tracker.sh` minifies it into `tracker/script.min.js`,
//!   which is embedded here with `include_str!`, so the binary needs no
//!   files at run time. The browser tests fail when the minified file is
//!   stale.
//! * **Size:** most browsers accept gzip, so the gzipped size is what a
//!   visitor downloads. It is compressed once, on first use, and must stay
//!   at or under [`GZIP_BUDGET`] bytes (a test checks).
//! * **Caching:** `Cache-Control: public, max-age=86400` with an `ETag`.
//!   The URL carries no version, so a day bounds how long a fixed script
//!   takes to reach everyone; after that a revalidation costs a 304.
//!   The gzipped and the plain body have different ETags (they are different
//!   bytes), and `Vary: Accept-Encoding` keeps shared caches apart.

use bytes::Bytes;
use std::io::Write;
use std::sync::LazyLock;

/// The minified tracker, exactly as served without compression.
pub const SCRIPT: &str = include_str!("../../tracker/script.min.js");

/// Most bytes the gzipped script may have. Plausible's base script is
/// 763 bytes gzipped; Headcount's does more (downloads, outbound links,
/// engagement, 404s, Do-Not-Track) and must still fit in one kilobyte.
pub const GZIP_BUDGET: usize = 1024;

/// `Cache-Control` of the script: shared caches may keep it for a day.
pub const CACHE_CONTROL: &str = "public, max-age=86400";

/// The two encodings of the script and their validators, computed once.
pub struct Script {
    pub plain: Bytes,
    /// `None` only if compression failed, which writing to memory does not.
    pub gzip: Option<Bytes>,
    pub etag: String,
    pub gzip_etag: String,
}

static EMBEDDED: LazyLock<Script> = LazyLock::new(|| Script::new(SCRIPT.as_bytes()));

/// What to answer to one request for the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The client's cached copy is current: 304 with this ETag.
    NotModified { etag: String },
    /// The script, gzipped or not, with its ETag.
    Body { body: Bytes, gzipped: bool, etag: String },
}

impl Script {
    /// The embedded tracker.
    pub fn embedded() -> &'static Script {
        &EMBEDDED
    }

    fn new(source: &[u8]) -> Script {
        let hash = blake3::hash(source);
        let tag = hex::encode(&hash.as_bytes()[..8]);
        Script {
            plain: Bytes::copy_from_slice(source),
            gzip: gzip(source).map(Bytes::from),
            etag: format!("\"{tag}\""),
            gzip_etag: format!("\"{tag}-gz\""),
        }
    }

    /// Choose the answer from the request's `Accept-Encoding` and
    /// `If-None-Match` headers (either may be absent).
    pub fn reply(&self, accept_encoding: Option<&str>, if_none_match: Option<&str>) -> Reply {
        let gzip = self.gzip.as_ref().filter(|_| accept_encoding.is_some_and(accepts_gzip));
        let (body, etag) = match gzip {
            Some(g) => (g.clone(), &self.gzip_etag),
            None => (self.plain.clone(), &self.etag),
        };
        // Either encoding's tag proves the client holds the current script.
        if if_none_match.is_some_and(|h| etag_listed(h, &[&self.etag, &self.gzip_etag])) {
            return Reply::NotModified { etag: etag.clone() };
        }
        Reply::Body { body, gzipped: gzip.is_some(), etag: etag.clone() }
    }
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len()), flate2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Whether an `Accept-Encoding` value allows gzip: `gzip` (or `x-gzip`, or
/// `*`) listed without `q=0`.
pub fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let wanted = ["gzip", "x-gzip", "*"].iter().any(|c| coding.eq_ignore_ascii_case(c));
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        wanted && !refused
    })
}

/// Whether an `If-None-Match` value lists one of `tags` (weak comparison,
/// as RFC 9110 requires for `If-None-Match`), or is `*`.
pub fn etag_listed(header: &str, tags: &[&str]) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || tags.contains(&t.strip_prefix("W/").unwrap_or(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzipped_script_fits_the_budget_and_round_trips() {
        let s = Script::embedded();
        let gz = s.gzip.as_ref().expect("gzip");
        assert!(gz.len() <= GZIP_BUDGET, "gzipped tracker is {} bytes, budget {GZIP_BUDGET}", gz.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut out).expect("gunzip");
        assert_eq!(out, SCRIPT);
    }

    #[test]
    fn accept_encoding() {
        for yes in ["gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8", "*", "GZIP", "x-gzip"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "identity", "br", "gzip;q=0", "gzip; q=0.0, br", "deflate"] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }

    #[test]
    fn conditional_requests() {
        let s = Script::embedded();
        let Reply::Body { gzipped: true, etag, .. } = s.reply(Some("gzip"), None) else { panic!("gzip body") };
        assert_eq!(etag, s.gzip_etag);
        let Reply::Body { gzipped: false, etag, body } = s.reply(None, None) else { panic!("plain body") };
        assert_eq!(etag, s.etag);
        assert_eq!(body, SCRIPT.as_bytes());
        assert_ne!(s.etag, s.gzip_etag);

        for inm in [
            s.etag.clone(),
            s.gzip_etag.clone(),
            format!("W/{}", s.etag),
            format!("\"old\", {}", s.gzip_etag),
            "*".into(),
        ] {
            assert_eq!(s.reply(Some("gzip"), Some(&inm)), Reply::NotModified { etag: s.gzip_etag.clone() }, "{inm}");
        }
        assert!(matches!(s.reply(Some("gzip"), Some("\"old\"")), Reply::Body { .. }));
    }
}
