//! The durable spool: an append-only log between ingest and the writer.
//!
//! Why: an event is *acknowledged* (the API answers 202 `accepted`) only
//! once it is in the spool, fsynced. From then on a ClickHouse outage, a
//! restart, a SIGKILL or a power cut cannot lose it: the writer drains the
//! spool into ClickHouse and replays whatever it had not confirmed.
//!
//! What is in it: opaque records, each one depersonalized event already
//! encoded for the store (this module does not know the format). Never an
//! IP, a raw User-Agent or a salt — the spool sits *after*
//! depersonalization, so the privacy contract covers it like ClickHouse.
//!
//! Layout of `dir`:
//! * `NNNNNNNNNNNNNNNNNNNN.seg` — segments, appended to in order and
//!   deleted once every record in them is stored. A record is a frame
//!   `[len u32][crc32 u32][ts u32][payload]` (little-endian; the CRC covers
//!   `ts` and the payload), so a torn write at the tail after a crash is
//!   detected and cut off on the next start.
//! * `checkpoint` — how far the writer has stored (`committed`) and, while
//!   a batch is being written, which records it holds (`inflight`), written
//!   in place into one of two checksummed slots in turn (needs no new disk
//!   space, survives a torn write). After a crash the writer
//!   resumes from `committed` and first settles `inflight` by asking the
//!   store which of its rows already arrived (see `store::writer`).
//!
//! Group commit: request handlers hand their records to one appender
//! thread; it writes everything that queued up while the previous fsync
//! ran, calls `fdatasync` once, and then acknowledges all of them. One fsync
//! (~0.2 ms here) covers thousands of events under load, and an idle
//! server still answers within one fsync.
//!
//! With `ack = "write"` ([`AckOn::Write`]) request handlers write their
//! records to the segment themselves (one `pwrite` under a lock, no thread
//! hand-off) and are answered at once; a syncer thread fsyncs behind them,
//! at most every 2 ms: answers
//! never wait for a slow disk (p99 79 → 2.9 ms at 12k events/s here, when
//! ClickHouse shares the disk), a crash of the process loses nothing
//! acknowledged, a power cut loses at most what was not yet fsynced. The
//! writer still reads only fsynced records.
//!
//! Bounds: `max_bytes` of unstored records on disk, `memory_bytes` of
//! records waiting for the appender. Past either, [`Spool::append`]
//! refuses at once with [`AppendError::Full`] — the caller applies the
//! overflow policy — so neither disk nor memory grows without limit.
//!
//! With `durability = "memory"` the same interface keeps records in a
//! bounded in-memory queue instead: faster, but a crash loses what is
//! queued. Either way records reach the writer in order.

mod disk;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, oneshot};

/// Where records live until the writer has stored them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Segment files, fsynced before an event is acknowledged.
    Spool,
    /// A bounded in-memory queue: lost on crash.
    Memory,
}

/// When an appended record counts as stored (spool mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOn {
    /// Written and `fdatasync`ed: survives power loss.
    Fsync,
    /// Written to the segment file (the page cache); a syncer thread
    /// fsyncs right behind. Survives a crash of the process, not of the
    /// machine; answers never wait for the disk.
    Write,
}

/// What happens to an event when the spool is at its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse it: the Events API answers 503 with `Retry-After`.
    Reject,
    /// Drop it and count it; the API answers 202 `dropped`.
    DropNewest,
}

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub durability: Durability,
    pub ack: AckOn,
    pub dir: PathBuf,
    /// Cap on unstored records on disk (spool mode).
    pub max_bytes: u64,
    /// Cap on records held in memory: waiting for the appender (spool
    /// mode) or for the writer (memory mode).
    pub memory_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    pub overflow: Overflow,
    /// With `ack = "write"`, the syncer's fsyncs start at most this often:
    /// a power cut loses at most about this much plus one fsync.
    pub sync_interval: std::time::Duration,
}

impl SpoolConfig {
    /// `durability = "memory"` with one cap of `bytes`: for benchmarks and
    /// tests that need a sink but no disk.
    pub fn memory(dir: PathBuf, bytes: u64) -> SpoolConfig {
        SpoolConfig {
            durability: Durability::Memory,
            ack: AckOn::Fsync,
            dir,
            max_bytes: bytes,
            memory_bytes: bytes,
            segment_bytes: bytes,
            overflow: Overflow::Reject,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// Why records were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("spool is full")]
    Full,
    #[error("spool is closed")]
    Closed,
    #[error("spool write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why the spool could not be opened or advanced.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool directory {path} is in use by another process (each instance needs its own spool.dir)")]
    Locked { path: PathBuf },
    #[error("spool checkpoint {path} is unreadable: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
}

/// A position in the log: segment number and byte offset. In memory mode
/// the segment is 0 and the offset counts records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    pub seg: u64,
    pub off: u64,
}

/// A batch the writer has read but not yet confirmed stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InFlight {
    pub batch_id: u64,
    pub from: Pos,
    pub to: Pos,
}

const FRAME_HEADER: usize = 12;

/// `spool.sync_interval_ms` unless configured. Against 2 ms, 10 ms cut
/// Headcount's CPU per recorded `/p.gif` by 7 % (BENCHMARKS.md, seventh
/// session); PostgreSQL's `synchronous_commit = off` waits up to 3 ×
/// `wal_writer_delay` (200 ms).
pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Records for one append, framed as they will be on disk.
#[derive(Debug, Default)]
pub struct Entry {
    buf: Vec<u8>,
    records: u64,
}

impl Entry {
    pub fn with_capacity(bytes: usize) -> Entry {
        Entry { buf: Vec::with_capacity(bytes), records: 0 }
    }

    /// Add one record: `write` appends its payload to the buffer it gets.
    pub fn record<E>(&mut self, ts: u32, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        self.buf.extend_from_slice(&ts.to_le_bytes());
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = (self.buf.len() - start - FRAME_HEADER) as u32;
        // The checksum covers the timestamp and the payload.
        let crc = crc32fast::hash(&self.buf[start + 8..]);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.records += 1;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn len(&self) -> u64 {
        self.records
    }

    fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }
}

/// One record read back: its timestamp and payload.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ts: u32,
    pub payload: &'a [u8],
}

/// Parse the frame at the start of `buf`: `Ok(Some((record, frame length)))`,
/// `Ok(None)` when `buf` holds only part of a frame, `Err` when the frame is
/// corrupt.
fn parse_frame(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, &'static str> {
    let Some((record, n)) = split_frame(buf) else {
        return Ok(None);
    };
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[8..n]);
    if hasher.finalize() != crc {
        return Err("checksum mismatch");
    }
    Ok(Some((record, n)))
}

/// The frame at the start of `buf` without checking its checksum: for
/// frames this process framed itself, or already checked on reading.
fn split_frame(buf: &[u8]) -> Option<(Record<'_>, usize)> {
    let header = buf.get(..FRAME_HEADER)?;
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, ts) = (word(0) as usize, word(8));
    let payload = buf.get(FRAME_HEADER..FRAME_HEADER + len)?;
    Some((Record { ts, payload }, FRAME_HEADER + len))
}

/// A batch's place in the log: what [`Spool::begin`] and [`Spool::commit`]
/// need, small enough to hand to a blocking thread.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: Pos,
    pub to: Pos,
    bytes: u64,
    records: u64,
}

impl Span {
    /// No records, at `at`.
    pub fn empty(at: Pos) -> Span {
        Span { from: at, to: at, bytes: 0, records: 0 }
    }

    /// Grow to the end of `next`, which starts where this one ends.
    pub fn extend(&mut self, next: Span) {
        debug_assert_eq!(self.to, next.from, "spans must be consecutive");
        self.to = next.to;
        self.bytes += next.bytes;
        self.records += next.records;
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes of frames.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Records the writer took from the spool, in order.
#[derive(Debug, Default)]
pub struct Batch {
    /// The frames, back to back.
    data: Vec<u8>,
    /// Start of each frame in `data`.
    starts: Vec<usize>,
    pub from: Pos,
    pub to: Pos,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Record<'_>> {
        let start = *self.starts.get(i)?;
        // Checked when read from disk (or framed in memory by this process).
        split_frame(&self.data[start..]).map(|(r, _)| r)
    }

    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Where the batch lies in the log and what it holds, for
    /// [`Spool::begin`] and [`Spool::commit`].
    pub fn span(&self) -> Span {
        Span { from: self.from, to: self.to, bytes: self.data.len() as u64, records: self.len() as u64 }
    }

    /// Bytes of frames held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether another record may be added under the limits.
    fn has_room(&self, max_records: usize, max_bytes: usize) -> bool {
        self.starts.len() < max_records && self.data.len() < max_bytes
    }

    /// Append frames from `buf` while they are whole and fit the limits;
    /// returns the bytes consumed.
    fn take_frames(&mut self, buf: &[u8], max_records: usize, max_bytes: usize) -> Result<usize, &'static str> {
        let mut used = 0;
        while self.has_room(max_records, max_bytes) {
            match parse_frame(&buf[used..])? {
                Some((_, n)) => {
                    self.starts.push(self.data.len());
                    self.data.extend_from_slice(&buf[used..used + n]);
                    used += n;
                }
                None => break,
            }
        }
        Ok(used)
    }
}

struct Pending {
    entry: Entry,
    ack: oneshot::Sender<Result<(), AppendError>>,
}

/// What the writer needs to know about stored-but-unconfirmed state.
struct Shared {
    config: SpoolConfig,
    /// Bytes appended (or queued to be) and not yet committed.
    unstored_bytes: AtomicU64,
    /// Bytes handed to the appender and not yet written (spool mode), or
    /// queued for the writer (memory mode).
    queued_bytes: AtomicU64,
    /// Records durable (readable) and not yet committed.
    unstored_records: AtomicU64,
    /// Records durable and not yet read by the writer.
    unread_records: AtomicU64,
    /// End of the durable log.
    durable: Mutex<Pos>,
    closed: AtomicBool,
    /// Woken when records become readable or the spool closes.
    readable: Notify,
    memory: Mutex<MemoryLog>,
    appender: Mutex<Option<std::sync::mpsc::SyncSender<Pending>>>,
    /// `ack = "write"`: the segment writer, used by request handlers directly.
    direct: Mutex<Option<Direct>>,
    /// The appender thread (`ack = "fsync"`) or the syncer (`"write"`).
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    inflight: Mutex<Option<InFlight>>,
    committed: Mutex<Pos>,
    fsync_seconds: Mutex<Option<prometheus::Histogram>>,
    /// The directory lock, held as long as the spool is open.
    lock: Mutex<Option<std::fs::File>>,
    checkpoint: Mutex<Option<disk::CheckpointFile>>,
}

/// `ack = "write"`: the appender, and the syncer that follows it.
struct Direct {
    appender: disk::Appender,
    syncer: Arc<disk::Syncer>,
}

/// Memory mode's log: frames with their positions.
#[derive(Default)]
struct MemoryLog {
    frames: VecDeque<Vec<u8>>,
    /// Position (record count) of `frames[0]`.
    base: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // carry on with it rather than poisoning every later request.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The spool: cheap to clone, shared by every request handler and the writer.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

impl Spool {
    /// Open (or create) the spool, recovering what a previous run left.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let durability = config.durability;
        let shared = Arc::new(Shared {
            config,
            unstored_bytes: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            unstored_records: AtomicU64::new(0),
            unread_records: AtomicU64::new(0),
            durable: Mutex::new(Pos::default()),
            closed: AtomicBool::new(false),
            readable: Notify::new(),
            memory: Mutex::new(MemoryLog::default()),
            appender: Mutex::new(None),
            direct: Mutex::new(None),
            thread: Mutex::new(None),
            inflight: Mutex::new(None),
            committed: Mutex::new(Pos::default()),
            fsync_seconds: Mutex::new(None),
            lock: Mutex::new(None),
            checkpoint: Mutex::new(None),
        });
        if durability == Durability::Spool {
            let recovered = disk::recover(&shared.config)?;
            shared.unstored_bytes.store(recovered.bytes, Ordering::Relaxed);
            shared.unstored_records.store(recovered.records, Ordering::Relaxed);
            shared.unread_records.store(recovered.records, Ordering::Relaxed);
            *lock(&shared.durable) = recovered.end;
            *lock(&shared.committed) = recovered.committed;
            *lock(&shared.inflight) = recovered.inflight;
            *lock(&shared.lock) = Some(recovered.lock);
            *lock(&shared.checkpoint) = Some(recovered.checkpoint);
            let appender = disk::Appender::create(&shared.config, recovered.end.seg)?;
            let thread_error = |source| SpoolError::Io { path: shared.config.dir.clone(), source };
            let handle = match shared.config.ack {
                AckOn::Fsync => {
                    let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
                    let for_thread = shared.clone();
                    let handle = std::thread::Builder::new()
                        .name("spool-appender".into())
                        .spawn(move || appender.run(rx, &for_thread))
                        .map_err(thread_error)?;
                    *lock(&shared.appender) = Some(tx);
                    handle
                }
                AckOn::Write => {
                    let (syncer, handle) = disk::Syncer::start(&appender, &shared).map_err(thread_error)?;
                    *lock(&shared.direct) = Some(Direct { appender, syncer });
                    handle
                }
            };
            *lock(&shared.thread) = Some(handle);
            if recovered.records > 0 {
                tracing::info!(
                    records = recovered.records,
                    bytes = recovered.bytes,
                    "spool: replaying events a previous run had not stored"
                );
            }
        }
        Ok(Spool { shared })
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.shared.config
    }

    /// Observe fsync durations in this histogram.
    pub fn observe_fsync(&self, histogram: prometheus::Histogram) {
        *lock(&self.shared.fsync_seconds) = Some(histogram);
    }

    /// Hand records to the spool. Refuses at once when full or closed;
    /// otherwise the returned [`Ack`] resolves when they are durable.
    pub fn append(&self, entry: Entry) -> Result<Ack, AppendError> {
        let s = &self.shared;
        if entry.is_empty() {
            return Ok(Ack(AckInner::Ready));
        }
        if s.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        let bytes = entry.bytes();
        let cap = match s.config.durability {
            Durability::Spool => s.config.max_bytes,
            Durability::Memory => s.config.memory_bytes,
        };
        if !reserve(&s.unstored_bytes, bytes, cap) {
            return Err(AppendError::Full);
        }
        if s.config.durability == Durability::Memory {
            let records = entry.records;
            {
                let mut log = lock(&s.memory);
                let mut rest = &entry.buf[..];
                while let Some((_, n)) = split_frame(rest) {
                    log.frames.push_back(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                let end = log.base + log.frames.len() as u64;
                *lock(&s.durable) = Pos { seg: 0, off: end };
            }
            s.unstored_records.fetch_add(records, Ordering::AcqRel);
            s.unread_records.fetch_add(records, Ordering::AcqRel);
            s.readable.notify_one();
            return Ok(Ack(AckInner::Ready));
        }
        if s.config.ack == AckOn::Write {
            let written = match lock(&s.direct).as_mut() {
                Some(d) => d.appender.write_direct(&entry.buf, entry.records, &d.syncer),
                None => Err(AppendError::Closed),
            };
            if written.is_err() {
                s.unstored_bytes.fetch_sub(bytes, Ordering::AcqRel);
            }
            return written.map(|()| Ack(AckInner::Ready));
        }
        if !reserve(&s.queued_bytes, bytes, s.config.memory_bytes) {
            s.unstored_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(AppendError::Full);
        }
        let (ack, rx) = oneshot::channel();
        let sent = match lock(&s.appender).as_ref() {
            Some(tx) => tx.try_send(Pending { entry, ack }).map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(_) => AppendError::Full,
                std::sync::mpsc::TrySendError::Disconnected(_) => AppendError::Closed,
            }),
            None => Err(AppendError::Closed),
        };
        if let Err(e) = sent {
            s.unstored_bytes.fetch_sub(bytes, Ordering::AcqRel);
            s.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(e);
        }
        Ok(Ack(AckInner::Pending(rx)))
    }

    /// Stop taking records and wait until everything handed over is
    /// durable. The writer keeps draining afterwards.
    pub fn close(&self) {
        let s = &self.shared;
        s.closed.store(true, Ordering::Release);
        drop(lock(&s.appender).take());
        if let Some(direct) = lock(&s.direct).take() {
            direct.syncer.stop();
        }
        if let Some(handle) = lock(&s.thread).take() {
            let _ = handle.join();
        }
        s.readable.notify_one();
    }

    /// Give up the directory: after [`Spool::close`] and the writer are
    /// done, so another process (or a restarted app) may open it.
    pub fn release(&self) {
        drop(lock(&self.shared.lock).take());
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Records durable and not yet read by the writer.
    pub fn unread(&self) -> u64 {
        self.shared.unread_records.load(Ordering::Acquire)
    }

    /// Records accepted and not yet confirmed stored (the queue depth).
    pub fn unstored_records(&self) -> u64 {
        self.shared.unstored_records.load(Ordering::Acquire)
    }

    /// Bytes accepted and not yet confirmed stored.
    pub fn unstored_bytes(&self) -> u64 {
        self.shared.unstored_bytes.load(Ordering::Acquire)
    }

    /// Wait until records may be readable or the spool closed.
    pub async fn readable(&self) {
        self.shared.readable.notified().await
    }

    /// The batch a previous run was writing when it stopped, if any.
    pub fn recovered_inflight(&self) -> Option<InFlight> {
        *lock(&self.shared.inflight)
    }

    /// A reader positioned at the first record not yet stored.
    pub fn reader(&self) -> Reader {
        let at = *lock(&self.shared.committed);
        Reader { spool: self.clone(), at, file: None, carry: Vec::new(), max_bytes: usize::MAX, rereading: false }
    }

    /// A reader of records the reader has already taken and that are not
    /// committed yet, from `from`: the writer reads a batch again, piece by
    /// piece, each time it sends it, instead of holding it whole.
    pub fn rereader(&self, from: Pos) -> Reader {
        Reader { rereading: true, ..self.reader() }.at(from)
    }

    /// Note that the batch at `span` is about to be written (crash
    /// recovery settles it). Blocks on an fsync in spool mode: call it off
    /// the async runtime.
    pub fn begin(&self, batch_id: u64, span: Span) -> Result<(), SpoolError> {
        let inflight = InFlight { batch_id, from: span.from, to: span.to };
        *lock(&self.shared.inflight) = Some(inflight);
        match lock(&self.shared.checkpoint).as_mut() {
            Some(checkpoint) => checkpoint.write(span.from, Some(inflight)),
            None => Ok(()), // memory mode
        }
    }

    /// Every record of the batch at `span` is stored (or dead-lettered):
    /// forget it. Blocks like [`Spool::begin`].
    pub fn commit(&self, span: Span) -> Result<(), SpoolError> {
        let s = &self.shared;
        *lock(&s.inflight) = None;
        *lock(&s.committed) = span.to;
        let result = match s.config.durability {
            Durability::Spool => match lock(&s.checkpoint).as_mut() {
                Some(checkpoint) => checkpoint.write(span.to, None),
                None => Ok(()),
            }
            .and_then(|()| disk::remove_segments_before(&s.config.dir, span.to.seg)),
            Durability::Memory => {
                let mut log = lock(&s.memory);
                while log.base < span.to.off && log.frames.pop_front().is_some() {
                    log.base += 1;
                }
                Ok(())
            }
        };
        s.unstored_bytes.fetch_sub(span.bytes, Ordering::AcqRel);
        s.unstored_records.fetch_sub(span.records, Ordering::AcqRel);
        result
    }
}

/// Add `n` to `counter` unless that passes `cap`.
fn reserve(counter: &AtomicU64, n: u64, cap: u64) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v + n <= cap).then_some(v + n)).is_ok()
}

/// Resolves when appended records are durable.
#[must_use]
pub struct Ack(AckInner);

enum AckInner {
    Ready,
    Pending(oneshot::Receiver<Result<(), AppendError>>),
}

impl Ack {
    pub async fn wait(mut self) -> Result<(), AppendError> {
        self.wait_mut().await
    }

    /// Like [`Ack::wait`], leaving the `Ack` in place: a caller that may be
    /// cancelled keeps it to hand on (see `ingest::Ingest::record`).
    pub async fn wait_mut(&mut self) -> Result<(), AppendError> {
        match &mut self.0 {
            AckInner::Ready => Ok(()),
            AckInner::Pending(rx) => rx.await.unwrap_or(Err(AppendError::Closed)),
        }
    }
}

/// Reads durable records in order. One reader (the writer) per spool takes
/// records; [`Spool::rereader`]s read taken ones again.
pub struct Reader {
    spool: Spool,
    at: Pos,
    file: Option<(u64, std::fs::File)>,
    /// Bytes read from the file that did not form a whole frame yet.
    carry: Vec<u8>,
    /// A batch stops growing once it holds this many bytes of frames.
    max_bytes: usize,
    /// Reading records again ([`Spool::rereader`]): they are not new.
    rereading: bool,
}

impl Reader {
    /// Position of the next record.
    pub fn position(&self) -> Pos {
        self.at
    }

    /// Move to `at` (crash recovery re-reads the in-flight batch).
    pub fn seek(&mut self, at: Pos) {
        self.at = at;
        self.file = None;
        self.carry.clear();
    }

    fn at(mut self, at: Pos) -> Reader {
        self.seek(at);
        self
    }

    /// Batches stop at the record that reaches `max_bytes` bytes of frames
    /// (at least one record is always read).
    pub fn max_bytes(mut self, max_bytes: usize) -> Reader {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// Read up to `max_records` durable records, stopping early at `until`
    /// or at the reader's byte limit.
    /// Reads only what is already in the page cache or memory, so it is
    /// called from async code directly.
    pub fn read(&mut self, max_records: usize, until: Option<Pos>) -> Batch {
        let s = self.spool.shared.clone();
        let durable = *lock(&s.durable);
        let end = until.map_or(durable, |u| u.min(durable));
        let mut batch = Batch { from: self.at, to: self.at, ..Batch::default() };
        // Room for the whole read at once (grown by doubling, a buffer ends
        // up to twice the size). Frames not yet committed bound what can
        // be read; the last frame may cross the limit by its size (events
        // are a few KiB at most; beyond the slack the Vec just grows).
        let slack = 64 << 10;
        let expect = self.spool.unstored_bytes().min(self.max_bytes.saturating_add(slack) as u64);
        batch.data.reserve_exact(usize::try_from(expect).unwrap_or(0));
        match s.config.durability {
            Durability::Memory => {
                let log = lock(&s.memory);
                while batch.has_room(max_records, self.max_bytes) && self.at < end {
                    let Some(frame) = self.at.off.checked_sub(log.base).and_then(|i| log.frames.get(i as usize)) else {
                        break;
                    };
                    batch.starts.push(batch.data.len());
                    batch.data.extend_from_slice(frame);
                    self.at.off += 1;
                }
            }
            Durability::Spool => {
                if let Err(e) = self.read_disk(&mut batch, max_records, end) {
                    tracing::error!(error = %e, segment = self.at.seg, "spool: cannot read a segment; skipping the rest of it");
                    self.seek(Pos { seg: self.at.seg + 1, off: 0 });
                }
            }
        }
        batch.to = self.at;
        if !self.rereading {
            s.unread_records.fetch_sub(batch.len() as u64, Ordering::AcqRel);
        }
        batch
    }

    fn read_disk(&mut self, batch: &mut Batch, max_records: usize, end: Pos) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let dir = self.spool.shared.config.dir.clone();
        // Reads of 256 KiB: a piece of a batch is 512 KiB (the writer's).
        let mut chunk = vec![0u8; 256 << 10];
        let max_bytes = self.max_bytes;
        while batch.has_room(max_records, max_bytes) && self.at < end {
            // Whole frames left over from the previous read come first.
            if !self.carry.is_empty() {
                let used = batch.take_frames(&self.carry, max_records, max_bytes).map_err(std::io::Error::other)?;
                self.at.off += used as u64;
                self.carry.drain(..used);
                if !batch.has_room(max_records, max_bytes) {
                    break;
                }
            }
            let file = match &self.file {
                Some((seg, f)) if *seg == self.at.seg => f,
                _ => {
                    let f = std::fs::File::open(disk::segment_path(&dir, self.at.seg))?;
                    &self.file.insert((self.at.seg, f)).1
                }
            };
            let read_from = self.at.off + self.carry.len() as u64;
            let want = if self.at.seg == end.seg {
                (end.off.saturating_sub(read_from) as usize).min(chunk.len())
            } else {
                chunk.len()
            };
            let n = if want == 0 { 0 } else { file.read_at(&mut chunk[..want], read_from)? };
            if n == 0 {
                if self.at.seg < end.seg && self.carry.is_empty() {
                    // The end of a finished segment: go on with the next.
                    self.at = Pos { seg: self.at.seg + 1, off: 0 };
                    self.file = None;
                    continue;
                }
                break;
            }
            self.carry.extend_from_slice(&chunk[..n]);
            let used = batch.take_frames(&self.carry, max_records, max_bytes).map_err(std::io::Error::other)?;
            self.at.off += used as u64;
            self.carry.drain(..used);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
