//! Reading an event body: bounded in size and time, optionally compressed.
//!
//! `Content-Encoding: gzip` and `deflate` (zlib, or raw deflate as some
//! clients send it) are accepted; anything else is refused before the body
//! is read. The limit `server.max_body_bytes` applies to the body as sent
//! **and** after decompression, and decompression is incremental, stopping
//! one byte past the limit: a zip bomb costs at most that much memory and
//! the CPU to produce it.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Body;
use hyper::header::{self, HeaderMap};
use std::io::Read;
use std::time::Duration;

/// Why a body could not be read. Messages never contain request data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body larger than {0} bytes when decompressed")]
    TooLargeDecompressed(usize),
    #[error("request body did not arrive within {0} ms")]
    Timeout(u128),
    #[error("unsupported Content-Encoding (gzip, deflate or none)")]
    UnsupportedEncoding,
    #[error("request body is not valid {0} data")]
    Corrupt(&'static str),
    #[error("request body could not be read")]
    Unreadable,
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) | BodyError::TooLargeDecompressed(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::Corrupt(_) | BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// The request's `Content-Encoding`; one coding at most (stacked codings
/// are refused: no tracker sends them).
fn encoding(headers: &HeaderMap) -> Result<Encoding, BodyError> {
    let mut found = Encoding::Identity;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = value.to_str().map_err(|_| BodyError::UnsupportedEncoding)?;
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let this = if coding.eq_ignore_ascii_case("identity") {
                continue;
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                Encoding::Gzip
            } else if coding.eq_ignore_ascii_case("deflate") {
                Encoding::Deflate
            } else {
                return Err(BodyError::UnsupportedEncoding);
            };
            if found != Encoding::Identity {
                return Err(BodyError::UnsupportedEncoding);
            }
            found = this;
        }
    }
    Ok(found)
}

/// Read the whole body within `timeout`, at most `max` bytes before and
/// after decompression.
pub async fn read<B>(body: B, headers: &HeaderMap, max: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let encoding = encoding(headers)?;
    let raw = match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_) => return Err(BodyError::Timeout(timeout.as_millis())),
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(BodyError::TooLarge(max)),
        Ok(Err(_)) => return Err(BodyError::Unreadable),
    };
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(&raw[..]), max, "gzip"),
        Encoding::Deflate if is_zlib(&raw) => inflate(flate2::read::ZlibDecoder::new(&raw[..]), max, "deflate"),
        Encoding::Deflate => inflate(flate2::read::DeflateDecoder::new(&raw[..]), max, "deflate"),
    }
}

/// A zlib stream header (RFC 1950): method 8, header checksum.
fn is_zlib(raw: &[u8]) -> bool {
    raw.len() >= 2 && raw[0] & 0x0f == 8 && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0
}

/// Decompress at most `max + 1` bytes: one more than allowed proves the
/// body too large without producing the rest.
fn inflate(decoder: impl Read, max: usize, name: &'static str) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    decoder.take(max as u64 + 1).read_to_end(&mut out).map_err(|_| BodyError::Corrupt(name))?;
    if out.len() > max {
        return Err(BodyError::TooLargeDecompressed(max));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use http_body_util::Full;
    use hyper::header::HeaderValue;
    use std::io::Write;

    const MAX: usize = 1024;
    const LONG: Duration = Duration::from_secs(5);

    fn with_encoding(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(v));
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    async fn read_all(body: Vec<u8>, headers: &HeaderMap) -> Result<Bytes, BodyError> {
        read(Full::new(Bytes::from(body)), headers, MAX, LONG).await
    }

    #[tokio::test]
    async fn plain_gzip_zlib_and_raw_deflate() {
        let json = br#"{"n":"pageview"}"#;
        assert_eq!(read_all(json.to_vec(), &HeaderMap::new()).await.as_deref(), Ok(&json[..]));
        assert_eq!(read_all(json.to_vec(), &with_encoding("identity")).await.as_deref(), Ok(&json[..]));
        assert_eq!(read_all(gzip(json), &with_encoding("gzip")).await.as_deref(), Ok(&json[..]));
        assert_eq!(read_all(gzip(json), &with_encoding("X-GZIP")).await.as_deref(), Ok(&json[..]));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(json).expect("zlib");
        assert_eq!(read_all(z.finish().expect("zlib"), &with_encoding("deflate")).await.as_deref(), Ok(&json[..]));
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(json).expect("deflate");
        assert_eq!(read_all(d.finish().expect("deflate"), &with_encoding("deflate")).await.as_deref(), Ok(&json[..]));
    }

    #[tokio::test]
    async fn bombs_and_oversize_bodies_stop_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < MAX * 16, "compresses well: {}", bomb.len());
        let small_bomb = gzip(&vec![b' '; MAX + 1]);
        assert_eq!(read_all(small_bomb, &with_encoding("gzip")).await, Err(BodyError::TooLargeDecompressed(MAX)));
        let exactly = gzip(&vec![b' '; MAX]);
        assert_eq!(read_all(exactly, &with_encoding("gzip")).await.map(|b| b.len()), Ok(MAX));
        // The compressed form is limited too.
        assert_eq!(read_all(bomb, &with_encoding("gzip")).await, Err(BodyError::TooLarge(MAX)));
        assert_eq!(read_all(vec![b'x'; MAX + 1], &HeaderMap::new()).await, Err(BodyError::TooLarge(MAX)));
    }

    #[tokio::test]
    async fn unknown_stacked_and_corrupt_encodings() {
        for v in ["br", "compress", "zstd", "gzip, gzip", "gzip, deflate"] {
            assert_eq!(read_all(b"{}".to_vec(), &with_encoding(v)).await, Err(BodyError::UnsupportedEncoding), "{v}");
        }
        assert_eq!(read_all(b"{}".to_vec(), &with_encoding("gzip")).await, Err(BodyError::Corrupt("gzip")));
        let mut truncated = gzip(b"{\"n\":\"pageview\"}");
        truncated.truncate(truncated.len() - 6);
        assert_eq!(read_all(truncated, &with_encoding("gzip")).await, Err(BodyError::Corrupt("gzip")));
        assert_eq!(BodyError::UnsupportedEncoding.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    /// A body whose bytes never arrive.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        let got = read(Stalled, &HeaderMap::new(), MAX, Duration::from_millis(50)).await;
        assert_eq!(got, Err(BodyError::Timeout(50)));
        assert_eq!(got.map_err(|e| e.status()), Err(StatusCode::REQUEST_TIMEOUT));
    }
}
