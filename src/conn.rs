//! Connection limits: how many connections may be open, how big a request
//! head may be, and how long a connection may sit without a request.
//!
//! * **A bounded number of connections.** The accept loop takes a [`Slot`]
//!   before each `accept`; with `limits.max_connections` open it waits for
//!   one to close instead of accepting (new clients queue in the kernel's
//!   listen backlog). `headcount_connections_open` is the gauge,
//!   `headcount_connections_limited_total` counts the waits.
//! * **Request heads** larger than `limits.max_header_bytes` (hyper's
//!   `max_buf_size`, HTTP/2's header list size) or with more than
//!   `limits.max_headers` fields are answered `431` by hyper and the
//!   connection is closed.
//! * **Slow and idle clients.** [`Activity`] watches every connection: one
//!   with no request in progress that has been written nothing for
//!   `limits.header_read_timeout_ms` is closed. Reads do not count, so a
//!   client trickling a request head (slowloris) gains nothing: the head must
//!   arrive within the timeout of the connection opening or of the last
//!   answer, which is also how long an idle keep-alive connection lives. The
//!   same watchdog covers what hyper does not time: the first bytes of a
//!   connection (while it tells HTTP/1 from HTTP/2) and idle HTTP/2
//!   connections. hyper's own HTTP/1 `header_read_timeout` is off: it arms a
//!   timer for every request, which cost 3.4 % of `/p.gif` throughput
//!   (BENCHMARKS.md, third session), and adds nothing the watchdog does not
//!   do. Closures count in `headcount_connections_timed_out_total`.

use crate::config::LimitsConfig;
use crate::telemetry::Metrics;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// hyper's own default; setting any value makes hyper allocate the header
/// array per request, so this one is left unset.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The HTTP server configuration of every connection.
pub fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut h1 = builder.http1();
    // No hyper header timer: `Activity` closes slow heads (module docs).
    h1.header_read_timeout(None).keep_alive(true).max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        h1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Hands out one [`Slot`] per open connection, at most `max_connections`.
pub struct Slots {
    permits: Arc<Semaphore>,
    metrics: Metrics,
    last_warning: Option<Instant>,
}

impl Slots {
    pub fn new(max: usize, metrics: Metrics) -> Slots {
        Slots { permits: Arc::new(Semaphore::new(max)), metrics, last_warning: None }
    }

    /// A free slot, waiting for a connection to close when none is.
    pub async fn acquire(&mut self) -> FreeSlot {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.metrics.connections_limited.inc();
                if self.last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    self.last_warning = Some(Instant::now());
                    tracing::warn!("limits.max_connections reached: not accepting until a connection closes");
                }
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed; should it be, no slot is free again.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        FreeSlot { permit, metrics: self.metrics.clone() }
    }
}

/// A place for the next connection, before it is accepted.
pub struct FreeSlot {
    permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl FreeSlot {
    /// The accepted connection takes the place.
    pub fn occupy(self) -> Slot {
        self.metrics.connections_open.inc();
        Slot { _permit: self.permit, metrics: self.metrics }
    }
}

/// One open connection; closing it (dropping the slot) frees the place.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

/// What a connection has been doing, for the idle watchdog.
pub struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last write or finished request.
    last_ms: AtomicU64,
    /// Requests in progress.
    busy: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity { opened: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Mark a request in progress until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Resolves once the connection has had no request in progress and no
    /// write for `limit`.
    pub async fn idle(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let since = self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if self.busy.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(limit).await;
            } else if since >= limit_ms {
                return;
            } else {
                tokio::time::sleep(Duration::from_millis(limit_ms - since)).await;
            }
        }
    }
}

/// A request in progress (see [`Activity::request`]).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's stream, noting each write in its [`Activity`].
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { io, activity }
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Whether a connection ended because hyper timed it out.
pub fn is_timeout(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_requests_and_restarts_after_each() {
        let a = Activity::new();
        let limit = Duration::from_millis(100);
        let busy = a.request();
        let watch = tokio::spawn({
            let a = a.clone();
            async move { a.idle(limit).await }
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!watch.is_finished(), "a request in progress is never idle");
        let released = Instant::now();
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), watch).await.expect("idle after the request").expect("task");
        assert!(released.elapsed() >= limit, "{:?}", released.elapsed());
    }

    #[tokio::test]
    async fn slots_are_bounded_and_counted() {
        let metrics = Metrics::new().expect("metrics");
        let mut slots = Slots::new(2, metrics.clone());
        let a = slots.acquire().await.occupy();
        let _b = slots.acquire().await.occupy();
        assert_eq!(metrics.connections_open.get(), 2);
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(third.is_err(), "no third slot while two are open");
        assert_eq!(metrics.connections_limited.get(), 1);
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), slots.acquire()).await.expect("a freed slot");
        assert_eq!(metrics.connections_open.get(), 1, "a free slot is not an open connection");
        let _c = c.occupy();
        assert_eq!(metrics.connections_open.get(), 2);
    }
}
