use super::*;

fn config(dir: &std::path::Path, durability: Durability) -> SpoolConfig {
    SpoolConfig {
        durability,
        ack: AckOn::Fsync,
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        memory_bytes: 1 << 20,
        segment_bytes: 1 << 10,
        overflow: Overflow::Reject,
        sync_interval: DEFAULT_SYNC_INTERVAL,
    }
}

fn entry(payloads: &[&[u8]]) -> Entry {
    let mut e = Entry::default();
    for (i, p) in payloads.iter().enumerate() {
        e.record::<()>(1_700_000_000 + i as u32, |b| {
            b.extend_from_slice(p);
            Ok(())
        })
        .expect("record");
    }
    e
}

async fn append(spool: &Spool, payloads: &[&[u8]]) {
    spool.append(entry(payloads)).expect("append").wait().await.expect("durable");
}

/// A spool holding `n` records, one per append: record `i` is the byte `i`
/// then `len` bytes of `fill`.
async fn numbered(dir: &std::path::Path, durability: Durability, n: u8, fill: u8, len: usize) -> Spool {
    let spool = Spool::open(config(dir, durability)).expect("open");
    let body = vec![fill; len];
    for i in 0..n {
        append(&spool, &[&[&[i][..], &body[..]].concat()]).await;
    }
    spool
}

fn payloads(batch: &Batch) -> Vec<Vec<u8>> {
    batch.iter().map(|r| r.payload.to_vec()).collect()
}

/// The writer's `batch_bytes`: a batch stops at the record that reaches the
/// limit, and consecutive batches still return every record once, in order.
#[tokio::test]
async fn batches_stop_at_the_byte_limit() {
    for durability in [Durability::Spool, Durability::Memory] {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = numbered(dir.path(), durability, 30, 1, 100).await;
        let mut reader = spool.reader().max_bytes(350);
        let mut batches = Vec::new();
        loop {
            let batch = reader.read(1_000, None);
            if batch.is_empty() {
                break;
            }
            batches.push(batch);
        }
        // Frames are the 101-byte payload plus a fixed header: three fit
        // under 350 bytes, the fourth reaches it.
        let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
        assert!(sizes.len() >= 7 && sizes[..sizes.len() - 1].iter().all(|&n| n == 4), "{durability:?}: {sizes:?}");
        for b in &batches[..batches.len() - 1] {
            assert!(b.bytes() >= 350 && b.bytes() < 350 + 200, "{durability:?}: {} bytes", b.bytes());
        }
        let firsts: Vec<u8> = batches.iter().flat_map(payloads).map(|p| p[0]).collect();
        assert_eq!(firsts, (0..30).collect::<Vec<u8>>(), "{durability:?}");
        // Without a limit, one read takes everything that is left.
        let mut whole = spool.reader();
        assert_eq!(whole.read(1_000, None).len(), 30, "{durability:?}");
    }
}

/// The writer reads a batch again, piece by piece, each time it sends it:
/// a rereader returns the taken records from any position, across
/// segments, as often as asked, until the batch is committed, and does not
/// count them as read twice.
#[tokio::test]
async fn taken_records_can_be_read_again_until_committed() {
    for durability in [Durability::Spool, Durability::Memory] {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = numbered(dir.path(), durability, 12, 3, 200).await;
        let mut reader = spool.reader();
        let first = reader.read(4, None);
        let rest = reader.read(100, None);
        assert_eq!((first.len(), rest.len(), spool.unread()), (4, 8, 0), "{durability:?}");
        let mut span = first.span();
        span.extend(rest.span());
        assert_eq!(span.records(), 12);
        for _ in 0..2 {
            let mut again = spool.rereader(rest.from).max_bytes(500);
            let mut firsts = Vec::new();
            loop {
                let piece = again.read(usize::MAX, Some(span.to));
                if piece.is_empty() {
                    break;
                }
                assert!(piece.len() <= 3, "{durability:?}: pieces stop at the byte limit");
                firsts.extend(payloads(&piece).iter().map(|p| p[0]));
            }
            assert_eq!(firsts, (4..12).collect::<Vec<u8>>(), "{durability:?}");
            assert_eq!(spool.unread(), 0, "{durability:?}: rereading takes nothing");
        }
        // Still there for the reader's next read: nothing new.
        assert!(reader.read(100, None).is_empty());
        spool.commit(span).expect("commit");
        assert_eq!(spool.unstored_records(), 0, "{durability:?}");
    }
}

#[tokio::test]
async fn records_come_back_in_order_across_segments() {
    for durability in [Durability::Spool, Durability::Memory] {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = Spool::open(config(dir.path(), durability)).expect("open");
        let big = vec![7u8; 300];
        for i in 0..20u8 {
            append(&spool, &[&[i], &big]).await;
        }
        assert_eq!(spool.unread(), 40);
        let mut reader = spool.reader();
        let first = reader.read(25, None);
        let second = reader.read(100, None);
        assert_eq!(first.len() + second.len(), 40, "{durability:?}");
        let all: Vec<_> = payloads(&first).into_iter().chain(payloads(&second)).collect();
        for i in 0..20u8 {
            assert_eq!(all[2 * i as usize], vec![i]);
            assert_eq!(all[2 * i as usize + 1], big);
        }
        assert_eq!(first.get(0).map(|r| r.ts), Some(1_700_000_000));
        assert_eq!(spool.unstored_records(), 40);
        spool.commit(first.span()).expect("commit");
        spool.commit(second.span()).expect("commit");
        assert_eq!((spool.unstored_records(), spool.unstored_bytes()), (0, 0));
        if durability == Durability::Spool {
            // Segments of 1 KiB: many were written, all but the live one removed.
            let segs = std::fs::read_dir(dir.path())
                .expect("dir")
                .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg")));
            assert_eq!(segs.count(), 1);
        }
        spool.close();
    }
}

/// `ack = "write"`: answers come before the fsync; the writer sees only
/// fsynced records, which follow without another append; closing flushes
/// the rest, and a restart finds every acknowledged record, in order.
#[tokio::test]
async fn ack_on_write_syncs_behind_and_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let spool = Spool::open(SpoolConfig { ack: AckOn::Write, ..config(dir.path(), Durability::Spool) }).expect("open");
    let big = vec![9u8; 300];
    for i in 0..20u8 {
        append(&spool, &[&[i], &big]).await; // 1 KiB segments: several rolls
    }
    // The syncer makes them readable on its own (no further append comes).
    for _ in 0..500 {
        if spool.unread() == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(spool.unread(), 40, "the syncer made every acknowledged record readable");
    let mut reader = spool.reader();
    let batch = reader.read(100, None);
    let got = payloads(&batch);
    assert_eq!(got.len(), 40);
    for i in 0..20u8 {
        assert_eq!((got[2 * i as usize].as_slice(), got[2 * i as usize + 1].as_slice()), (&[i][..], &big[..]));
    }
    // More records, then close at once: closing waits for their fsync.
    for i in 20..30u8 {
        append(&spool, &[&[i]]).await;
    }
    spool.close();
    spool.release();
    drop((reader, spool));
    let spool =
        Spool::open(SpoolConfig { ack: AckOn::Write, ..config(dir.path(), Durability::Spool) }).expect("reopen");
    assert_eq!(spool.unread(), 50, "nothing committed: all 50 records come back");
    let back = payloads(&spool.reader().read(100, None));
    assert_eq!(back[..40], got[..]);
    assert_eq!(back[40..].iter().map(|p| p[0]).collect::<Vec<_>>(), (20..30u8).collect::<Vec<_>>());
}

/// `ack = "write"`: a write wakes the syncer only when it is parked (a
/// wake-up is a syscall, so writes made while it syncs or pauses skip it).
/// A record written to an idle spool must still become readable.
/// Waits up to 2.5 s for `n` records to be readable (fsynced).
async fn readable(spool: &Spool, n: u64) -> bool {
    for _ in 0..500 {
        if spool.unread() >= n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn ack_on_write_wakes_an_idle_syncer() {
    let dir = tempfile::tempdir().expect("tmp");
    let spool = Spool::open(SpoolConfig { ack: AckOn::Write, ..config(dir.path(), Durability::Spool) }).expect("open");
    for round in 1..=3u64 {
        // Long enough for the syncer to finish its pause and park.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        append(&spool, &[&[round as u8]]).await;
        assert!(readable(&spool, round).await, "round {round}: the record written to an idle spool became readable");
    }
    spool.close();
}

/// `spool.sync_interval_ms` spaces the syncer's fsyncs: a record written
/// right after one became durable waits for the interval (it is in the file
/// and acknowledged, not yet readable by the writer), then follows.
#[tokio::test]
async fn ack_on_write_fsyncs_at_most_once_per_sync_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let every = std::time::Duration::from_millis(400);
    let spool =
        Spool::open(SpoolConfig { ack: AckOn::Write, sync_interval: every, ..config(dir.path(), Durability::Spool) })
            .expect("open");
    append(&spool, &[b"a"]).await;
    assert!(readable(&spool, 1).await, "the first record is fsynced at once by the idle syncer");
    let second = std::time::Instant::now();
    append(&spool, &[b"b"]).await;
    tokio::time::sleep(every / 4).await;
    assert_eq!(spool.unread(), 1, "the second record waits for the interval");
    assert!(readable(&spool, 2).await, "then it is fsynced too");
    assert!(second.elapsed() >= every / 2, "no earlier than the interval after the first fsync");
    spool.close();
}

#[tokio::test]
async fn a_restart_replays_unstored_records_and_the_inflight_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("open");
        append(&spool, &[b"a", b"b"]).await;
        append(&spool, &[b"c"]).await;
        let mut reader = spool.reader();
        let stored = reader.read(1, None);
        spool.begin(1, stored.span()).expect("begin");
        spool.commit(stored.span()).expect("commit");
        let inflight = reader.read(1, None);
        spool.begin(42, inflight.span()).expect("begin");
        // "Crash": no commit. (A dead process also gives up its lock.)
        spool.release();
    }
    let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("reopen");
    let inflight = spool.recovered_inflight().expect("inflight remembered");
    assert_eq!(inflight.batch_id, 42);
    assert_eq!(spool.unstored_records(), 2);
    let mut reader = spool.reader();
    assert_eq!(reader.position(), inflight.from);
    let again = reader.read(100, Some(inflight.to));
    assert_eq!(payloads(&again), vec![b"b".to_vec()]);
    let rest = reader.read(100, None);
    assert_eq!(payloads(&rest), vec![b"c".to_vec()]);
    // New records go after the old ones.
    append(&spool, &[b"d"]).await;
    assert_eq!(payloads(&reader.read(100, None)), vec![b"d".to_vec()]);
    spool.close();
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("open");
        append(&spool, &[b"kept"]).await;
        spool.close();
    }
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg") && std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .expect("segment");
    // Half a frame, as a crash in the middle of a write leaves it.
    let mut torn = entry(&[b"never acknowledged"]).buf;
    torn.truncate(torn.len() - 5);
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).expect("open seg");
    std::io::Write::write_all(&mut f, &torn).expect("write");
    drop(f);
    let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("reopen");
    assert_eq!(spool.unstored_records(), 1);
    assert_eq!(payloads(&spool.reader().read(100, None)), vec![b"kept".to_vec()]);
    spool.close();
}

#[tokio::test]
async fn the_caps_refuse_at_once() {
    for durability in [Durability::Spool, Durability::Memory] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = config(dir.path(), durability);
        cfg.max_bytes = 1_000;
        cfg.memory_bytes = 1_000;
        let spool = Spool::open(cfg).expect("open");
        let payload = vec![1u8; 188]; // 200 bytes a frame
        for _ in 0..5 {
            append(&spool, &[&payload]).await;
        }
        assert!(matches!(spool.append(entry(&[&payload])), Err(AppendError::Full)), "{durability:?}");
        assert_eq!(spool.unstored_bytes(), 1_000);
        let batch = spool.reader().read(2, None);
        spool.commit(batch.span()).expect("commit");
        append(&spool, &[&payload]).await;
        spool.close();
        assert!(matches!(spool.append(entry(&[&payload])), Err(AppendError::Closed)));
    }
}

#[test]
fn a_flipped_bit_is_detected() {
    let mut e = entry(&[b"payload"]).buf;
    assert!(parse_frame(&e).expect("valid").is_some());
    let last = e.len() - 1;
    e[last] ^= 1;
    assert!(parse_frame(&e).is_err());
}

#[tokio::test]
async fn zero_filled_segments_recover_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let payload = vec![5u8; 100]; // 112-byte frames: 10 to a 1 KiB segment
    {
        let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("open");
        for _ in 0..25 {
            append(&spool, &[&payload]).await;
            // Let the next segment's zero fill finish, so rolls use it.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        spool.release(); // "crash"
    }
    let zero_filled = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|data| data.len() >= 1024 && data.ends_with(&[0; 64]));
    assert!(zero_filled, "the live segment was a zero-filled one");
    let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("reopen");
    assert_eq!(spool.unstored_records(), 25);
    let batch = spool.reader().read(100, None);
    assert_eq!(batch.len(), 25);
    assert!(batch.iter().all(|r| r.payload == payload.as_slice()));
    spool.close();
}

#[tokio::test]
async fn the_checkpoint_survives_a_torn_slot() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("open");
        append(&spool, &[b"a", b"b", b"c"]).await;
        let mut reader = spool.reader();
        let first = reader.read(1, None);
        spool.commit(first.span()).expect("commit");
        let second = reader.read(1, None);
        spool.commit(second.span()).expect("commit");
        spool.release();
    }
    // Tear the slot written last: the one before it must be used.
    let path = dir.path().join("checkpoint");
    let mut bytes = std::fs::read(&path).expect("checkpoint");
    assert_eq!(bytes.len(), 4096, "two fixed slots");
    let last = if bytes[2048 + 8] > bytes[8] { 2048 } else { 0 };
    bytes[last + 20] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let spool = Spool::open(config(dir.path(), Durability::Spool)).expect("reopen");
    assert_eq!(payloads(&spool.reader().read(10, None)), vec![b"b".to_vec(), b"c".to_vec()], "one commit back");
    spool.close();
}
