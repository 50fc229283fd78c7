//! The batching writer: drains the event queue into ClickHouse.
//!
//! ClickHouse wants few large inserts, not many small ones, so events are
//! collected and written when `batch_rows` are buffered or `batch_interval`
//! has passed since the first buffered event, whichever comes first.
//!
//! A failed write is retried with exponential backoff (capped at 5 s) while
//! the batch is held; meanwhile the bounded queue in front fills up and new
//! events are dropped and counted as `queue_full`, so memory stays bounded
//! whatever ClickHouse does. Two exceptions:
//! * rows ClickHouse rejects as bad data can never succeed and are dropped
//!   at once (counted as `store_failed`);
//! * once the queue is closed (shutdown), retries stop after
//!   `shutdown_retry`, so a dead ClickHouse cannot hold the process hostage.
//!   (A durable spool that survives this is a separate, later layer.)

use super::StoreError;
use super::row::EventRow;
use crate::event::Event;
use crate::telemetry::{DropReason, Health, Metrics};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

// Lives on the stack for one loop turn; boxing would add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Event(Event),
    Interval,
    Closed,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Where and how to write.
#[derive(Clone)]
pub struct Writer {
    pub client: clickhouse::Client,
    pub table: String,
    pub batch_rows: usize,
    pub batch_interval: Duration,
    pub shutdown_retry: Duration,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

impl Writer {
    /// Drain `rx` until `shutdown` fires (or every sender is gone), then
    /// write whatever is still queued and return.
    pub async fn run(self, mut rx: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) {
        let mut batch: Vec<Event> = Vec::with_capacity(self.batch_rows.min(65_536));
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut closing = false;
        loop {
            let wake = tokio::select! {
                got = rx.recv() => match got {
                    Some(event) => Wake::Event(event),
                    None => Wake::Closed,
                },
                _ = sleep_until(deadline) => Wake::Interval,
                changed = shutdown.changed(), if !closing => {
                    // Stop taking new events; drain what is queued.
                    let _ = changed;
                    closing = true;
                    rx.close();
                    continue;
                }
            };
            let closed = matches!(wake, Wake::Closed);
            let flush = match wake {
                Wake::Event(event) => {
                    batch.push(event);
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.batch_interval);
                    }
                    // Take whatever else is already queued without waiting.
                    while batch.len() < self.batch_rows {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    batch.len() >= self.batch_rows
                }
                Wake::Interval => true,
                Wake::Closed => {
                    closing = true;
                    true
                }
            };
            self.metrics.queue_depth.set(rx.len() as i64);
            if flush {
                if !batch.is_empty() {
                    self.flush_with_retry(&batch, closing).await;
                    batch.clear();
                }
                deadline = None;
            }
            if closed {
                break;
            }
        }
        self.metrics.queue_depth.set(0);
    }

    async fn flush_with_retry(&self, batch: &[Event], closing: bool) {
        let mut backoff = Duration::from_millis(100);
        let started = Instant::now();
        loop {
            let t = Instant::now();
            match self.flush(batch).await {
                Ok(()) => {
                    self.metrics.flush_duration.observe(t.elapsed().as_secs_f64());
                    self.metrics.rows_written.inc_by(batch.len() as u64);
                    self.health.set_store_reachable(true);
                    return;
                }
                Err(e) if e.is_bad_data() => {
                    self.metrics.flush_errors.inc();
                    tracing::error!(error = %e, rows = batch.len(), "ClickHouse rejected a batch as bad data; dropping it");
                    self.metrics.dropped_many(DropReason::StoreFailed, batch.len());
                    return;
                }
                Err(e) => {
                    self.metrics.flush_errors.inc();
                    self.health.set_store_reachable(false);
                    if closing && started.elapsed() >= self.shutdown_retry {
                        tracing::error!(error = %e, rows = batch.len(), "ClickHouse unreachable at shutdown; events lost");
                        self.metrics.dropped_many(DropReason::StoreFailed, batch.len());
                        return;
                    }
                    tracing::warn!(error = %e, rows = batch.len(), retry_in_ms = backoff.as_millis() as u64, "batch write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn flush(&self, batch: &[Event]) -> Result<(), StoreError> {
        let mut insert = self.client.insert::<EventRow<'static>>(&self.table).await?;
        for e in batch {
            insert.write(&EventRow::from(e)).await?;
        }
        insert.end().await?;
        Ok(())
    }
}
