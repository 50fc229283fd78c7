//! HTTP routes of the beacon server.
//!
//! One function, [`handle`], maps a request to a response. Every response is
//! built here, so status codes, CORS and the `X-Headcount-Event` header are
//! decided in one place. Client errors (4xx) are logged at debug level and
//! never include request data; nothing here can panic on request input.

use super::limits::Refusal;
use super::{Ingest, Outcome, RejectError, body, client_ip, opt_out, payload, tracker};
use crate::spool::Overflow;
use crate::telemetry::{DropReason, Route};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// A 43-byte transparent 1×1 GIF.
pub const PIXEL_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Header telling the client whether its event was stored, and if not, why.
pub const EVENT_HEADER: &str = "x-headcount-event";
/// [`EVENT_HEADER`] as a ready header name (a `&str` key is parsed per insert).
const EVENT_HEADER_NAME: header::HeaderName = header::HeaderName::from_static(EVENT_HEADER);

type Resp = Response<Full<Bytes>>;

/// Answer one request.
pub async fn handle(ingest: Arc<Ingest>, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let (route, resp) = route(&ingest, peer, req).await;
    ingest.metrics.request(route, resp.status().as_u16());
    resp
}

async fn route(ingest: &Ingest, peer: SocketAddr, req: Request<Incoming>) -> (Route, Resp) {
    match (req.method(), req.uri().path()) {
        // The permit of an admitted request is held until it is answered.
        (&Method::GET | &Method::HEAD, "/p.gif") => match admit(ingest, peer, &req) {
            Ok(_permit) => (Route::Pixel, pixel(ingest, peer, req).await),
            Err(refusal) => (Route::Pixel, pixel_reply(ingest, Outcome::Dropped(refusal.reason()))),
        },
        (&Method::POST, "/api/event") => match admit(ingest, peer, &req) {
            Ok(_permit) => (Route::Event, api_event(ingest, peer, req).await),
            Err(refusal) => (Route::Event, refused(ingest, refusal)),
        },
        (&Method::OPTIONS, "/api/event") => (Route::Preflight, preflight()),
        (&Method::GET | &Method::HEAD, "/js/script.js") => (Route::Script, script(&req)),
        (&Method::GET | &Method::HEAD, "/opt-out") => (Route::OptOut, opt_out_page(ingest, &req)),
        (&Method::GET, "/healthz") => (Route::Health, text(StatusCode::OK, "ok\n")),
        (&Method::GET, "/readyz") => (Route::Ready, ready(ingest)),
        (&Method::GET, "/metrics") => {
            ingest.metrics.visits_remembered.set(i64::try_from(ingest.sessions.len()).unwrap_or(i64::MAX));
            let mut r = text(StatusCode::OK, ingest.metrics.render());
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            (Route::Metrics, r)
        }
        (_, "/p.gif" | "/api/event" | "/healthz" | "/readyz" | "/metrics" | "/js/script.js" | "/opt-out") => {
            (Route::NotFound, text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"))
        }
        _ => (Route::NotFound, text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// In-flight and rate limits (see [`super::limits`]).
fn admit<B>(ingest: &Ingest, peer: SocketAddr, req: &Request<B>) -> Result<OwnedSemaphorePermit, Refusal> {
    ingest.limits.admit(peer, req.headers(), &ingest.config.privacy.trusted_proxies)
}

/// An API request that was not admitted: 503 or 429, with `Retry-After`.
fn refused(ingest: &Ingest, refusal: Refusal) -> Resp {
    let (status, message) = match refusal {
        Refusal::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again later"),
        Refusal::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "too many events from this client"),
    };
    let mut r = rejected(ingest, status, refusal.reason(), message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after_secs()));
    r
}

fn user_agent(req_headers: &hyper::HeaderMap) -> &str {
    req_headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// `GET /p.gif`: always the GIF, so a pixel never shows broken.
async fn pixel(ingest: &Ingest, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let (parts, _) = req.into_parts();
    let headers = &parts.headers;
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
    let outcome = match payload::from_pixel_query(parts.uri.query().unwrap_or_default(), referer) {
        _ if opt_out::declines_tracking(headers) => Outcome::Dropped(DropReason::DoNotTrack),
        Ok(beacon) => {
            let ip = client_ip::client_ip(peer, headers, &ingest.config.privacy.trusted_proxies);
            match ingest.record(beacon, ip, user_agent(headers)).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, "pixel rejected");
                    Outcome::Dropped(DropReason::Invalid)
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "pixel rejected");
            Outcome::Dropped(DropReason::Invalid)
        }
    };
    pixel_reply(ingest, outcome)
}

/// The GIF, whatever happened to the event (counted here).
fn pixel_reply(ingest: &Ingest, outcome: Outcome) -> Resp {
    ingest.count(outcome);
    let mut r = Response::new(Full::new(Bytes::from_static(&PIXEL_GIF)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, max-age=0"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(EVENT_HEADER_NAME, outcome_header(outcome));
    r
}

/// `POST /api/event`: the Plausible Events API.
async fn api_event(ingest: &Ingest, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let max = ingest.config.server.max_body_bytes;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return invalid(ingest, StatusCode::PAYLOAD_TOO_LARGE, &format!("request body larger than {max} bytes"));
    }
    let (parts, body) = req.into_parts();
    // At most `max` bytes as sent and decompressed, within the body timeout.
    let body = match body::read(body, &parts.headers, max, ingest.config.limits.body_read_timeout).await {
        Ok(b) => b,
        Err(e @ body::BodyError::Timeout(_)) => {
            // The rest of the body may still come: the connection cannot be reused.
            let mut r = invalid(ingest, e.status(), &e.to_string());
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        Err(e) => return invalid(ingest, e.status(), &e.to_string()),
    };
    // A browser that declines tracking is not read any further.
    let recorded = if opt_out::declines_tracking(&parts.headers) {
        Ok(Outcome::Dropped(DropReason::DoNotTrack))
    } else {
        let beacon = match payload::from_json(&body) {
            Ok(b) => b,
            Err(e) => return invalid(ingest, StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let ip = client_ip::client_ip(peer, &parts.headers, &ingest.config.privacy.trusted_proxies);
        ingest.record(beacon, ip, user_agent(&parts.headers)).await
    };
    match recorded {
        // The spool is full (or failing) and the operator chose to refuse:
        // tell the client to come back rather than pretend.
        Ok(Outcome::Dropped(reason @ (DropReason::QueueFull | DropReason::SpoolError)))
            if ingest.config.spool.overflow == Overflow::Reject =>
        {
            let mut r = rejected(
                ingest,
                StatusCode::SERVICE_UNAVAILABLE,
                reason,
                "cannot take events right now, try again later",
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Ok(outcome) => {
            ingest.count(outcome);
            let mut r = cors(text(StatusCode::ACCEPTED, "ok"));
            r.headers_mut().insert(EVENT_HEADER_NAME, outcome_header(outcome));
            r
        }
        Err(e @ (RejectError::Url(_) | RejectError::Referrer(_) | RejectError::Payload(_))) => {
            invalid(ingest, StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// A rejected API request: counted as `invalid`, answered with a JSON error.
fn invalid(ingest: &Ingest, status: StatusCode, message: &str) -> Resp {
    rejected(ingest, status, DropReason::Invalid, message)
}

/// An API request whose event is dropped for `reason`: counted, answered
/// with a JSON error.
fn rejected(ingest: &Ingest, status: StatusCode, reason: DropReason, message: &str) -> Resp {
    tracing::debug!(status = status.as_u16(), error = message, "event rejected");
    ingest.metrics.dropped(reason);
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = cors(Response::new(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(EVENT_HEADER_NAME, HeaderValue::from_static(dropped_header(reason)));
    r
}

/// Static values: no formatting or allocation on the per-request path.
fn outcome_header(outcome: Outcome) -> HeaderValue {
    HeaderValue::from_static(match outcome {
        Outcome::Accepted(_) => "accepted",
        Outcome::Dropped(reason) => dropped_header(reason),
    })
}

/// `dropped; reason=<DropReason::as_str>` (a test keeps the two in step).
fn dropped_header(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Bot => "dropped; reason=bot",
        DropReason::Invalid => "dropped; reason=invalid",
        DropReason::UnknownSite => "dropped; reason=unknown_site",
        DropReason::QueueFull => "dropped; reason=queue_full",
        DropReason::SpoolError => "dropped; reason=spool_error",
        DropReason::NoSalt => "dropped; reason=no_salt",
        DropReason::ShuttingDown => "dropped; reason=shutting_down",
        DropReason::StoreFailed => "dropped; reason=store_failed",
        DropReason::Spam => "dropped; reason=referrer_spam",
        DropReason::DoNotTrack => "dropped; reason=dnt",
        DropReason::Overloaded => "dropped; reason=overloaded",
        DropReason::RateLimited => "dropped; reason=rate_limited",
    }
}

fn preflight() -> Resp {
    let mut r = cors(Response::new(Full::new(Bytes::new())));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

/// `GET /js/script.js`: the tracker, gzipped when the client accepts gzip,
/// `304` when the client's copy is current (see [`tracker`]).
fn script<B>(req: &Request<B>) -> Resp {
    let header_str = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let reply =
        tracker::Script::embedded().reply(header_str(header::ACCEPT_ENCODING), header_str(header::IF_NONE_MATCH));
    let (mut r, etag) = match reply {
        tracker::Reply::NotModified { etag } => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            (r, etag)
        }
        tracker::Reply::Body { body, gzipped, etag } => {
            let mut r = Response::new(Full::new(body));
            if gzipped {
                r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            (r, etag)
        }
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(tracker::CACHE_CONTROL));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Loadable from any site, including ones that isolate themselves (COEP).
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// `GET /opt-out[?lang=ru|en][&return=<page of a configured site>]`.
fn opt_out_page<B>(ingest: &Ingest, req: &Request<B>) -> Resp {
    let (mut lang, mut back) = (None, None);
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match &*k {
            "lang" => lang = Some(v.into_owned()),
            "return" => back = Some(v.into_owned()),
            _ => {}
        }
    }
    let headers = req.headers();
    let accept_language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let return_to = back.as_deref().and_then(|u| opt_out::return_url(u, &ingest.config));
    let html = opt_out::page(&opt_out::PageRequest {
        lang: opt_out::language(lang.as_deref(), accept_language),
        return_to: return_to.as_ref(),
        browser_declines: opt_out::declines_tracking(headers),
    });
    let mut r = Response::new(Full::new(Bytes::from(html)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // The page depends on Accept-Language, DNT and Sec-GPC: keep it out of caches.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// Any origin may send events; no credentials are ever involved.
fn cors(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EVENT_HEADER));
    r
}

fn ready(ingest: &Ingest) -> Resp {
    let store = ingest.health.store_reachable();
    let salt = ingest.salts.get(ingest.clock.now().date()).is_some();
    ingest.metrics.salt_ready.set(i64::from(salt));
    let body = serde_json::json!({ "store_reachable": store, "salt_loaded": salt }).to_string();
    let status = if store && salt { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn dropped_headers_name_the_reason() {
        for reason in crate::telemetry::DropReason::ALL {
            assert_eq!(super::dropped_header(reason), format!("dropped; reason={}", reason.as_str()));
        }
    }

    #[test]
    fn pixel_is_43_bytes_and_a_gif() {
        assert_eq!(super::PIXEL_GIF.len(), 43);
        assert_eq!(&super::PIXEL_GIF[..6], b"GIF89a");
        assert_eq!(super::PIXEL_GIF[42], 0x3b);
    }
}
