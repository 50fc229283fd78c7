//! The writer: drains the spool into ClickHouse, every row exactly once.
//!
//! ClickHouse wants few large inserts, not many small ones, so the writer
//! waits until `batch_rows` records are in the spool or `batch_interval` has
//! passed since the first one arrived (5 s by default: at 20,000 events/s,
//! ClickHouse spent a third less CPU per event on 5-second batches than on
//! 1-second ones, mostly fewer parts to write and merge), then sends them
//! as one insert of `Native` blocks ([`super::native`]: ClickHouse reads
//! columns four times faster than the spool's `RowBinary` rows). A batch
//! also stops at `batch_bytes`; one cut by bytes means a backlog, so the
//! next is read at once instead of waiting for `batch_rows` again.
//!
//! A batch is never held whole: the writer notes where its records are in
//! the spool ([`Extent`]) and reads them again, a piece of about 512 KiB at a
//! time, whenever it sends them — once normally, again for a retry. The
//! spool keeps records until their batch is committed, in the page cache
//! (`durability = "spool"`) or its own memory. Holding batches whole, a
//! 10 MiB batch had been the largest transient heap under load. Rows were
//! encoded when they were accepted ([`super::sink`]); here each gets two
//! more columns, the batch's random `batch_id` and its place in the batch,
//! `batch_row`, and rows become columns.
//!
//! The writer runs on a thread and runtime of its own (`app::spawn_writer`):
//! on the request workers, the requests that queued behind each piece it
//! built waited for it, and that was the latency tail under load.
//!
//! Exactly once (ClickHouse 18.16 has no insert deduplication for plain
//! MergeTree, so Headcount does it):
//! 1. before sending, the batch's id and its span of the spool go into the
//!    spool's checkpoint ([`Spool::begin`]);
//! 2. once ClickHouse confirms the insert, the checkpoint moves past the
//!    batch ([`Spool::commit`]) and its segments are deleted;
//! 3. whenever the outcome is unknown — an error after the data went out, a
//!    crash or SIGKILL between 1 and 2 — the writer first asks ClickHouse
//!    which `batch_row`s of that `batch_id` it has and sends only the others.
//!
//! A failed write is retried with exponential backoff (capped at 5 s) for as
//! long as it takes; meanwhile ingest keeps appending to the spool until its
//! cap. Rows ClickHouse rejects as bad data can never succeed: the batch is
//! split in halves until the bad rows are alone, the good rows are stored
//! and each bad row goes to the dead-letter file (a spooled row that does
//! not decode, which only a damaged disk could cause, is bad data too) (`dead-letter.rowbinary`
//! in the spool directory, with a line per row in `dead-letter.log` and the
//! statement that loads the file in `dead-letter.sql`),
//! counted in `headcount_events_dead_lettered_total`.
//!
//! At shutdown the writer drains the spool; if ClickHouse stays unreachable
//! for `shutdown_retry` it stops. With the durable spool the rest is
//! written on the next start; in memory mode it is lost and counted.

use super::StoreError;
use super::native::Block;
use super::row::INSERT_COLUMNS;
use crate::spool::{Batch, Durability, Pos, Reader, Span, Spool, SpoolError};
use crate::telemetry::{DropReason, Health, Metrics};
use bytes::Bytes;
use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to write.
#[derive(Clone)]
pub struct Writer {
    pub client: clickhouse::Client,
    pub table: String,
    pub batch_rows: usize,
    /// A batch stops at the row that reaches this many bytes of frames.
    pub batch_bytes: usize,
    pub batch_interval: Duration,
    pub shutdown_retry: Duration,
    /// Directory for the dead-letter files.
    pub dead_letter_dir: PathBuf,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Every row is stored or dead-lettered.
    Done,
    /// Shutting down and ClickHouse is unreachable: the batch stays spooled.
    Stopped,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Run spool work that fsyncs or reads files off the async runtime: an
/// fsync can take tens of milliseconds while ClickHouse writes parts, and
/// must not stall request handling.
async fn blocking(f: impl FnOnce() -> Result<(), SpoolError> + Send + 'static) -> Result<(), SpoolError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(SpoolError::Io { path: "spool".into(), source: std::io::Error::other(e.to_string()) }),
    }
}

/// The next piece of records, read off the runtime; the reader comes back
/// with it.
async fn read(mut reader: Reader, max: usize, until: Option<Pos>) -> (Reader, Batch) {
    match tokio::task::spawn_blocking(move || {
        let batch = reader.read(max, until);
        (reader, batch)
    })
    .await
    {
        Ok(got) => got,
        // Only if the blocking pool is gone (runtime shutting down).
        Err(_) => std::future::pending().await,
    }
}

/// A batch as the writer keeps it: where its records are in the spool, how
/// many there are and the range of their timestamps. The records are read
/// again, a piece at a time ([`Pieces`]), whenever they are sent, so a
/// batch costs one piece of memory (about [`SEND_CHUNK`]) however large it
/// is, and large batches — far cheaper for ClickHouse — cost no memory.
#[derive(Debug, Clone, Copy)]
struct Extent {
    span: Span,
    /// Lowest and highest timestamp.
    ts: (u32, u32),
}

impl Extent {
    /// Records in the batch, numbered from 0 (`batch_row`).
    fn rows(&self) -> u32 {
        self.span.records() as u32
    }
}

/// Take the next batch off `reader`: up to `max_rows` records, stopping at
/// the record that reaches `max_bytes` bytes and at `until`. The reader
/// reads pieces of at most [`SEND_CHUNK`].
async fn scan(reader: Reader, max_rows: usize, max_bytes: usize, until: Option<Pos>) -> (Reader, Extent) {
    let mut reader = reader;
    let mut extent = Extent { span: Span::empty(reader.position()), ts: (u32::MAX, 0) };
    while (extent.rows() as usize) < max_rows && extent.span.bytes() < max_bytes as u64 {
        let room = max_bytes - extent.span.bytes() as usize;
        let piece;
        (reader, piece) = read(reader.max_bytes(room.min(SEND_CHUNK)), max_rows - extent.rows() as usize, until).await;
        if piece.is_empty() {
            break;
        }
        extent.ts = piece.iter().fold(extent.ts, |(lo, hi), r| (lo.min(r.ts), hi.max(r.ts)));
        extent.span.extend(piece.span());
    }
    (reader, extent)
}

/// The records of a batch, read again from the spool a piece at a time.
struct Pieces {
    reader: Option<Reader>,
    to: Pos,
    /// Row number of the next piece's first record.
    next_row: u32,
}

impl Pieces {
    fn new(spool: &Spool, extent: &Extent) -> Pieces {
        Pieces { reader: Some(spool.rereader(extent.span.from).max_bytes(SEND_CHUNK)), to: extent.span.to, next_row: 0 }
    }

    /// The next piece and the row number of its first record.
    async fn next(&mut self) -> Option<(u32, Batch)> {
        let (reader, piece) = read(self.reader.take()?, usize::MAX, Some(self.to)).await;
        if piece.is_empty() {
            return None;
        }
        self.reader = Some(reader);
        let first = self.next_row;
        self.next_row += piece.len() as u32;
        Some((first, piece))
    }
}

/// Bytes of spooled rows per piece read and per `Native` block sent (see
/// `Writer::insert`). 512 KiB rather than 1 MiB: at 22,600 events/s the
/// peak RSS while a batch went out fell from 74–75 to 70 MB with the same
/// ClickHouse CPU (BENCHMARKS.md, fifth session).
const SEND_CHUNK: usize = 512 << 10;

fn new_batch_id() -> u64 {
    let mut b = [0u8; 8];
    // Never 0: that marks rows stored before batches existed.
    getrandom::fill(&mut b).map(|()| u64::from_le_bytes(b).max(1)).unwrap_or_else(|_| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (t.as_nanos() as u64).max(1)
    })
}

impl Writer {
    /// `format`: `Native` for the writer, `RowBinary` for the dead-letter
    /// file (spooled rows as they are).
    fn insert_sql(&self, format: &str) -> String {
        let names: Vec<&str> = INSERT_COLUMNS.iter().map(|&(name, _)| name).collect();
        format!("INSERT INTO {} ({}) FORMAT {format}", self.table, names.join(", "))
    }

    /// Drain `spool` until it is closed and empty (or ClickHouse stays
    /// unreachable through shutdown).
    pub async fn run(self, spool: Spool) {
        let mut reader = spool.reader();
        if let Some(inflight) = spool.recovered_inflight() {
            // A previous run stopped while writing this batch: some of it
            // may be stored. Settle it before anything else, whole: its
            // rows are known to ClickHouse by that batch id only, whatever
            // `batch_bytes` says now.
            reader.seek(inflight.from);
            let extent;
            (reader, extent) = scan(reader, usize::MAX, usize::MAX, Some(inflight.to)).await;
            tracing::info!(rows = extent.rows(), "settling the batch a previous run was writing");
            if self.deliver(&spool, inflight.batch_id, &extent, true).await == Delivery::Stopped {
                return self.stopped(&spool);
            }
        }
        let mut first_seen: Option<tokio::time::Instant> = None;
        // The last batch stopped at `batch_bytes`: a backlog, go on at once.
        let mut full = false;
        loop {
            self.metrics.queue_depth.set(spool.unstored_records() as i64);
            self.metrics.spool_bytes.set(spool.unstored_bytes() as i64);
            let closing = spool.is_closed();
            let unread = spool.unread();
            if unread == 0 {
                if closing {
                    break;
                }
                first_seen = None;
                tokio::select! {
                    _ = spool.readable() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let since = *first_seen.get_or_insert_with(tokio::time::Instant::now);
            if !closing && !full && (unread as usize) < self.batch_rows && since.elapsed() < self.batch_interval {
                tokio::select! {
                    _ = spool.readable() => {}
                    _ = tokio::time::sleep_until(since + self.batch_interval) => {}
                }
                continue;
            }
            first_seen = None;
            let extent;
            (reader, extent) = scan(reader, self.batch_rows, self.batch_bytes, None).await;
            full = extent.span.bytes() >= self.batch_bytes as u64;
            if extent.rows() == 0 {
                // Counted as readable but nothing came back (only after a
                // read error skipped a segment): do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if self.deliver(&spool, new_batch_id(), &extent, false).await == Delivery::Stopped {
                return self.stopped(&spool);
            }
        }
        self.metrics.queue_depth.set(0);
        self.metrics.spool_bytes.set(0);
    }

    fn stopped(&self, spool: &Spool) {
        let left = spool.unstored_records();
        match spool.config().durability {
            Durability::Spool => {
                tracing::warn!(
                    events = left,
                    "ClickHouse unreachable at shutdown; events stay in the spool for the next start"
                )
            }
            Durability::Memory => {
                tracing::error!(
                    events = left,
                    "ClickHouse unreachable at shutdown; queued events lost (durability = \"memory\")"
                );
                self.metrics.dropped_many(DropReason::StoreFailed, left as usize);
            }
        }
    }

    /// Store every row of `batch` once. `uncertain`: some rows may already
    /// be stored (a replay), so ask before sending.
    async fn deliver(&self, spool: &Spool, id: u64, batch: &Extent, mut uncertain: bool) -> Delivery {
        let (s, span) = (spool.clone(), batch.span);
        if let Err(e) = blocking(move || s.begin(id, span)).await {
            tracing::error!(error = %e, "cannot note the batch in the spool checkpoint; a crash now could duplicate it");
        }
        let sql = self.insert_sql("Native");
        let mut dead: HashSet<u32> = HashSet::new();
        let mut backoff = Duration::from_millis(100);
        let mut closing_since: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let result = match self.rows_to_send(id, batch, uncertain, &dead).await {
                Ok(todo) if todo.is_empty() => Ok(()),
                Ok(todo) => self.insert_bisect(spool, &sql, id, batch, &todo, &mut dead).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.metrics.flush_duration.observe(started.elapsed().as_secs_f64());
                    self.health.set_store_reachable(true);
                    let (s, span) = (spool.clone(), batch.span);
                    if let Err(e) = blocking(move || s.commit(span)).await {
                        tracing::error!(error = %e, "cannot advance the spool checkpoint; the batch will be checked again after a restart");
                    }
                    return Delivery::Done;
                }
                Err(e) => {
                    uncertain = true;
                    self.metrics.flush_errors.inc();
                    self.health.set_store_reachable(false);
                    if spool.is_closed()
                        && closing_since.get_or_insert_with(Instant::now).elapsed() >= self.shutdown_retry
                    {
                        tracing::error!(error = %e, rows = batch.rows(), "ClickHouse unreachable at shutdown");
                        return Delivery::Stopped;
                    }
                    tracing::warn!(error = %e, rows = batch.rows(), retry_in_ms = backoff.as_millis() as u64, "batch write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Rows of `batch` not yet stored and not dead-lettered.
    async fn rows_to_send(
        &self,
        id: u64,
        batch: &Extent,
        uncertain: bool,
        dead: &HashSet<u32>,
    ) -> Result<Vec<u32>, StoreError> {
        let all = (0..batch.rows()).filter(|i| !dead.contains(i));
        if !uncertain {
            return Ok(all.collect());
        }
        let (lo, hi) = batch.ts;
        // The ts range lets ClickHouse skip every other month's partition.
        let present: HashSet<u32> = self
            .client
            .query(&format!(
                "SELECT batch_row FROM {} WHERE batch_id = ? AND ts >= toDateTime(?) AND ts <= toDateTime(?)",
                self.table
            ))
            .bind(id)
            .bind(lo)
            .bind(hi)
            .fetch_all::<u32>()
            .await?
            .into_iter()
            .collect();
        if !present.is_empty() {
            tracing::info!(
                rows = present.len(),
                "rows of a replayed batch were already stored; not sending them again"
            );
            self.metrics.rows_deduplicated.inc_by(present.len() as u64);
        }
        Ok(all.filter(|i| !present.contains(i)).collect())
    }

    /// Insert `rows`; on bad data split until the bad rows are alone and
    /// dead-letter them. Errors returned are the ones worth retrying.
    fn insert_bisect<'a>(
        &'a self,
        spool: &'a Spool,
        sql: &'a str,
        id: u64,
        batch: &'a Extent,
        rows: &'a [u32],
        dead: &'a mut HashSet<u32>,
    ) -> Boxed<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let dead_before = dead.len();
            match self.insert(spool, sql, id, batch, rows, dead).await {
                Ok(()) => {
                    self.metrics.rows_written.inc_by((rows.len() - (dead.len() - dead_before)) as u64);
                    Ok(())
                }
                Err(e) if e.is_bad_data() => {
                    self.metrics.flush_errors.inc();
                    if let [row] = rows {
                        self.dead_letter(spool, id, batch, *row, &e).await;
                        dead.insert(*row);
                        return Ok(());
                    }
                    tracing::warn!(error = %e, rows = rows.len(), "ClickHouse rejected rows as bad data; splitting the batch to find them");
                    let (left, right) = rows.split_at(rows.len() / 2);
                    self.insert_bisect(spool, sql, id, batch, left, dead).await?;
                    self.insert_bisect(spool, sql, id, batch, right, dead).await
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Sends `rows` (ascending) of `batch` as one INSERT of `Native` blocks
    /// of about [`SEND_CHUNK`] each, streamed as the batch is read again
    /// from the spool: the crate compresses each block and holds at most one
    /// in flight, so sending costs a piece of the spool and about two
    /// blocks, however large the batch.
    ///
    /// A row that does not decode (only a damaged disk makes one) goes to
    /// the dead-letter file and into `dead` on the way: failing the insert
    /// instead would leave ClickHouse 18.16 the blocks already sent, which
    /// it stores when the aborted body ends between two of them.
    async fn insert(
        &self,
        spool: &Spool,
        sql: &str,
        id: u64,
        batch: &Extent,
        rows: &[u32],
        dead: &mut HashSet<u32>,
    ) -> Result<(), StoreError> {
        let mut insert = self.client.insert_formatted_with(sql.to_string());
        let mut block = Block::new(&INSERT_COLUMNS);
        let piece = |block: &mut Block| {
            let mut piece = Vec::with_capacity(block.bytes() + 4_096);
            block.write(&mut piece);
            Bytes::from(piece)
        };
        let mut wanted = rows.iter().copied().peekable();
        let mut pieces = Pieces::new(spool, batch);
        let mut sent = 0;
        while wanted.peek().is_some() {
            let Some((first, records)) = pieces.next().await else {
                // Read moments ago, gone now: only a failing disk does this.
                return Err(StoreError::Reread { rows: wanted.count() });
            };
            let end = first + records.len() as u32;
            while let Some(i) = wanted.next_if(|&i| i < end) {
                let Some(record) = records.get((i - first) as usize).filter(|_| !dead.contains(&i)) else { continue };
                let mut batch_columns = [0u8; 12];
                batch_columns[..8].copy_from_slice(&id.to_le_bytes());
                batch_columns[8..].copy_from_slice(&i.to_le_bytes());
                if let Err(source) = block.push(&[record.payload, &batch_columns]) {
                    self.dead_letter_record(id, i, record.payload, &StoreError::BadRow { row: i, source });
                    dead.insert(i);
                    continue;
                }
                if block.bytes() >= SEND_CHUNK - 1_024 {
                    insert.send(piece(&mut block)).await?;
                    sent += 1;
                }
            }
        }
        if block.rows() > 0 {
            insert.send(piece(&mut block)).await?;
        } else if sent == 0 {
            // Every row was dead: nothing to insert (dropping aborts).
            return Ok(());
        }
        insert.end().await?;
        Ok(())
    }

    /// Keep a row ClickHouse will never accept, exactly as it would be
    /// inserted, so an operator can fix the cause and load it by hand.
    async fn dead_letter(&self, spool: &Spool, id: u64, batch: &Extent, row: u32, error: &StoreError) {
        let mut pieces = Pieces::new(spool, batch);
        let piece = loop {
            match pieces.next().await {
                Some((first, piece)) if row < first + piece.len() as u32 => break Some((first, piece)),
                Some(_) => continue,
                None => break None,
            }
        };
        let Some(record) = piece.as_ref().and_then(|(first, piece)| piece.get((row - first) as usize)) else {
            tracing::error!(batch_id = id, row, "row rejected by ClickHouse is no longer in the spool; it is lost");
            return;
        };
        self.dead_letter_record(id, row, record.payload, error);
    }

    /// Write `payload`, row `row` of batch `id`, to the dead-letter file.
    fn dead_letter_record(&self, id: u64, row: u32, payload: &[u8], error: &StoreError) {
        self.metrics.dead_lettered.inc();
        let mut message = error.to_string();
        message.truncate(message.char_indices().nth(300).map_or(message.len(), |(i, _)| i));
        tracing::error!(error = %message, batch_id = id, row, "row rejected; moved to the dead-letter file");
        let written = std::fs::create_dir_all(&self.dead_letter_dir).and_then(|()| {
            let open = |name: &str| {
                std::fs::OpenOptions::new().create(true).append(true).open(self.dead_letter_dir.join(name))
            };
            let mut data = open("dead-letter.rowbinary")?;
            data.write_all(payload)?;
            data.write_all(&id.to_le_bytes())?;
            data.write_all(&row.to_le_bytes())?;
            data.sync_data()?;
            let mut log = open("dead-letter.log")?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            writeln!(
                log,
                "{now}\tbatch_id={id}\tbatch_row={row}\tbytes={}\t{}",
                payload.len() + 12,
                message.replace('\n', " ")
            )?;
            log.sync_data()?;
            // How to load the file once the cause is fixed.
            std::fs::write(self.dead_letter_dir.join("dead-letter.sql"), format!("{}\n", self.insert_sql("RowBinary")))
        });
        if let Err(e) = written {
            tracing::error!(error = %e, dir = %self.dead_letter_dir.display(), "cannot write the dead-letter file; the row is lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    /// `tests/data/events.native`: three events as the writer sends them
    /// (batch 42, rows 0–2). `scripts/check_sql_modern.py` loads it into a
    /// current ClickHouse; this test keeps it what the writer produces.
    /// `HEADCOUNT_BLESS=1` rewrites it after a deliberate change.
    #[test]
    fn the_native_sample_is_what_the_writer_sends() {
        let ts = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("ts");
        let mut with_props = Event::example(ts, "/pricing");
        with_props.name = "Signup".into();
        with_props.prop_keys = vec!["plan".into(), "seats".into()];
        with_props.prop_values = vec!["pro".into(), "3".into()];
        with_props.location.city = "Москва".into();
        let mut other_browser = Event::example(ts + time::Duration::seconds(1), "/");
        other_browser.browser = "Firefox".into();
        let events = [Event::example(ts, "/"), with_props, other_browser];

        let mut block = Block::new(&INSERT_COLUMNS);
        for (i, event) in (0u32..).zip(&events) {
            let mut row = vec![];
            crate::store::rowbinary::encode(&crate::store::row::EventRow::from(event), &mut row).expect("encode");
            let batch = [42u64.to_le_bytes().as_slice(), &i.to_le_bytes()].concat();
            block.push(&[&row, &batch]).expect("a row of the events table");
        }
        let mut got = vec![];
        block.write(&mut got);

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events.native");
        if std::env::var_os("HEADCOUNT_BLESS").is_some() {
            std::fs::write(&path, &got).expect("write the sample");
        }
        let want = std::fs::read(&path).expect("tests/data/events.native");
        assert!(
            got == want,
            "the writer's Native block changed; check it, then HEADCOUNT_BLESS=1 to rewrite the sample"
        );
    }
}
