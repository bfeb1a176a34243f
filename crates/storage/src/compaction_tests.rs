//! Compaction tests: targeted scenarios, crash at every step of the swap, and a model-based
//! property test.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

use crate::testutil::{build_keyed_batch, decode_all, BatchShape, encode_records, keyed_batch_from_payload, rec, Decoded, Rec};
use crate::{LogConfig, PartitionLog, StorageError};

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 50, segment_ms: i64::MAX / 4, ..LogConfig::default() }
}

fn put(log: &mut PartitionLog, ts: i64, records: &[Rec]) -> i64 {
    let b = build_keyed_batch(ts, records);
    log.append(&b, 0, ts, None).unwrap().first_offset
}

fn read_all(log: &PartitionLog) -> (Vec<Decoded>, Vec<BatchShape>) {
    let r = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap();
    decode_all(&r.data)
}

fn offsets_and_values(records: &[Decoded]) -> Vec<(i64, Option<&str>, Option<&str>)> {
    records
        .iter()
        .map(|(o, r)| {
            (*o, r.key.as_deref().map(|k| std::str::from_utf8(k).unwrap()), r.value.as_deref().map(|v| std::str::from_utf8(v).unwrap()))
        })
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

#[test]
fn latest_value_per_key_survives_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put(&mut log, 100, &[rec(Some("k1"), Some("a")), rec(Some("k2"), Some("b")), rec(Some("k3"), Some("c"))]);
    log.force_roll();
    put(&mut log, 200, &[rec(Some("k1"), Some("d")), rec(None, Some("x")), rec(Some("k2"), Some("e"))]);
    log.force_roll();
    // The active segment: k3 rewritten there, and a duplicate key that must stay untouched.
    put(&mut log, 300, &[rec(Some("k3"), Some("f")), rec(Some("k3"), Some("g"))]);
    let segments = log.segment_info();
    let active_path = dir.path().join(format!("{:020}.log", segments[2].0));
    let active_before = std::fs::read(&active_path).unwrap();

    let stats = log.compact(1000, 86_400_000, i64::MAX).unwrap();
    assert_eq!((stats.segments_planned, stats.segments_cleaned, stats.records_removed, stats.discarded), (2, 1, 3, false));
    let (records, batches) = read_all(&log);
    assert_eq!(
        offsets_and_values(&records),
        vec![
            (3, Some("k1"), Some("d")),
            (4, None, Some("x")),
            (5, Some("k2"), Some("e")),
            (6, Some("k3"), Some("f")),
            (7, Some("k3"), Some("g")),
        ]
    );
    // The emptied first batch stays as an empty batch: it ends its segment.
    assert_eq!(batches, vec![(0, 2, 0, 0), (3, 2, 3, 0), (6, 1, 2, 0)]);
    assert_eq!(log.segment_info().iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), segments.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&active_path).unwrap(), active_before, "the active segment is never touched");
    assert_eq!(log.log_end_offset(), 8);
    assert!(leftovers(dir.path()).is_empty());

    // Idempotent: nothing more to do, nothing rewritten.
    let again = log.compact(1000, 86_400_000, i64::MAX).unwrap();
    assert_eq!((again.segments_cleaned, again.records_removed), (0, 0));
    // Survives a clean restart and a crash (recovery scans with gaps allowed).
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(read_all(&log).0, records);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(read_all(&log).0, records);
    assert_eq!(put(&mut log, 400, &[rec(Some("k4"), Some("h"))]), 8);
}

#[test]
fn partially_cleaned_batch_keeps_base_offset_and_last_offset_delta() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put(&mut log, 100, &[rec(Some("k1"), Some("a")), rec(Some("k2"), Some("b")), rec(Some("k1"), Some("c")), rec(Some("k3"), Some("d"))]);
    put(&mut log, 110, &[rec(Some("k4"), Some("e")), rec(Some("k4"), Some("f"))]);
    log.force_roll();
    put(&mut log, 200, &[rec(Some("k3"), Some("z"))]);
    let stats = log.compact(1000, 86_400_000, i64::MAX).unwrap();
    assert_eq!(stats.records_removed, 3);
    let (records, batches) = read_all(&log);
    assert_eq!(
        offsets_and_values(&records),
        vec![(1, Some("k2"), Some("b")), (2, Some("k1"), Some("c")), (5, Some("k4"), Some("f")), (6, Some("k3"), Some("z"))]
    );
    assert_eq!(batches, vec![(0, 3, 2, 0), (4, 1, 1, 0), (6, 0, 1, 0)]);
    // Header fields other than length, count and CRC are those of the original batch.
    let data = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let h = crate::validate_batches(&data, u32::MAX).unwrap()[0];
    assert_eq!((h.base_timestamp, h.max_timestamp, h.producer_id, h.partition_leader_epoch), (100, 103, -1, 0));
    // Reading from inside the rewritten batch returns it whole; from offset 3 (removed) too.
    assert_eq!(decode_all(&log.read(3, 1, i64::MAX).unwrap().data).1[0].0, 0);
    assert_eq!(decode_all(&log.read(4, 1, i64::MAX).unwrap().data).1[0].0, 4);
}

#[test]
fn fetch_from_a_removed_offset_returns_the_next_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { index_interval_bytes: 0, ..config() };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    put(&mut log, 100, &[rec(Some("k1"), Some("a"))]);
    put(&mut log, 110, &[rec(Some("k1"), Some("b"))]);
    put(&mut log, 120, &[rec(Some("k2"), Some("c"))]);
    put(&mut log, 130, &[rec(Some("k1"), Some("d")), rec(Some("k2"), Some("e"))]);
    put(&mut log, 140, &[rec(Some("k3"), Some("f"))]);
    log.force_roll();
    put(&mut log, 150, &[rec(Some("k9"), Some("g"))]);
    log.compact(1000, 86_400_000, i64::MAX).unwrap();
    let (records, batches) = read_all(&log);
    assert_eq!(offsets_and_values(&records)[..3], [(3, Some("k1"), Some("d")), (4, Some("k2"), Some("e")), (5, Some("k3"), Some("f"))]);
    assert_eq!(batches.iter().map(|b| b.0).collect::<Vec<_>>(), vec![3, 5, 6]);
    for offset in 0..=3 {
        let r = log.read(offset, 1, i64::MAX).unwrap();
        assert_eq!(decode_all(&r.data).1[0].0, 3, "fetch at {offset}");
        let slices = log.read_slices(offset, 1, i64::MAX).unwrap();
        assert_eq!(slices.slices[0].position, 0);
    }
    // High watermark inside a gap.
    assert!(log.read(0, usize::MAX, 2).unwrap().data.is_empty());
    assert_eq!(decode_all(&log.read(0, usize::MAX, 5).unwrap().data).1.len(), 1);
    // Timestamp lookups skip the removed records.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((3, 130)));
    assert_eq!(log.offset_for_timestamp(131).unwrap(), Some((4, 131)));
    assert_eq!(log.offset_for_timestamp(141).unwrap(), Some((6, 150)));
    // Truncating into the gap ends the log at the last batch kept below it.
    log.truncate_to(2).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn truncation_in_a_gap_of_a_compacted_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put(&mut log, 100, &[rec(Some("k1"), Some("a"))]);
    put(&mut log, 110, &[rec(Some("k2"), Some("b"))]);
    put(&mut log, 120, &[rec(Some("k2"), Some("c"))]);
    put(&mut log, 130, &[rec(Some("k3"), Some("d"))]);
    log.force_roll();
    put(&mut log, 150, &[rec(Some("k9"), Some("g"))]);
    log.compact(1000, 86_400_000, i64::MAX).unwrap();
    // Batches 0, 2, 3 remain in the first segment; truncating at 1 (removed) leaves only 0.
    log.truncate_to(1).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(put(&mut log, 200, &[rec(Some("k5"), Some("x"))]), 1);
    assert_eq!(offsets_and_values(&read_all(&log).0), vec![(0, Some("k1"), Some("a")), (1, Some("k5"), Some("x"))]);
}

#[test]
fn tombstones_are_removed_only_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put(&mut log, 1000, &[rec(Some("k1"), Some("a")), rec(Some("k2"), Some("b"))]);
    put(&mut log, 2000, &[rec(Some("k1"), None)]);
    put(&mut log, 2500, &[rec(Some("k2"), Some("c"))]);
    log.force_roll();
    put(&mut log, 3000, &[rec(Some("k3"), Some("d"))]);
    // Within delete retention: the tombstone stays, the value it deletes goes.
    let s = log.compact(2100, 1000, i64::MAX).unwrap();
    assert_eq!((s.records_removed, s.tombstones_removed), (2, 0));
    assert_eq!(
        offsets_and_values(&read_all(&log).0),
        vec![(2, Some("k1"), None), (3, Some("k2"), Some("c")), (4, Some("k3"), Some("d"))]
    );
    // Negative delete retention: kept forever.
    assert_eq!(log.compact(i64::MAX, -1, i64::MAX).unwrap().tombstones_removed, 0);
    // Batch maxTimestamp 2000 is not older than 3000 - 1000.
    assert_eq!(log.compact(3000, 1000, i64::MAX).unwrap().tombstones_removed, 0);
    let s = log.compact(3001, 1000, i64::MAX).unwrap();
    assert_eq!((s.records_removed, s.tombstones_removed), (1, 1));
    assert_eq!(offsets_and_values(&read_all(&log).0), vec![(3, Some("k2"), Some("c")), (4, Some("k3"), Some("d"))]);
    // A tombstone in the active segment is never removed.
    put(&mut log, 3100, &[rec(Some("k3"), None)]);
    log.compact(i64::MAX, 0, i64::MAX).unwrap();
    assert_eq!(offsets_and_values(&read_all(&log).0).last().unwrap(), &(5, Some("k3"), None));
}

#[test]
fn producer_last_batch_is_kept_empty_so_its_sequence_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let b = keyed_batch_from_payload(100, 1, &encode_records(&[rec(Some("k1"), Some("a"))]), 0, (7, 0, 0));
    log.append(&b, 0, 100, None).unwrap();
    put(&mut log, 110, &[rec(Some("k2"), Some("x"))]);
    log.force_roll();
    put(&mut log, 120, &[rec(Some("k1"), Some("b"))]);
    log.compact(1000, 0, i64::MAX).unwrap();
    let (records, batches) = read_all(&log);
    assert_eq!(batches[0], (0, 0, 0, 0), "the producer's last batch stays, empty");
    assert_eq!(records.len(), 2);
    // Crash with the producer snapshot gone: the state is rebuilt from the empty batch.
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state")).unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let retry = keyed_batch_from_payload(100, 1, &encode_records(&[rec(Some("k1"), Some("a"))]), 0, (7, 0, 0));
    assert!(log.append(&retry, 0, 200, None).unwrap().duplicate);
    let next = keyed_batch_from_payload(100, 1, &encode_records(&[rec(Some("k1"), Some("c"))]), 0, (7, 0, 1));
    assert!(!log.append(&next, 0, 200, None).unwrap().duplicate);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn lz4(data: &[u8]) -> Vec<u8> {
    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn compressed(codec: i16, ts: i64, records: &[Rec]) -> Vec<u8> {
    let raw = encode_records(records);
    let payload = match codec {
        1 => gzip(&raw),
        2 => snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
        3 => lz4(&raw),
        4 => zstd::bulk::compress(&raw, 3).unwrap(),
        _ => raw,
    };
    keyed_batch_from_payload(ts, records.len(), &payload, codec, (-1, -1, -1))
}

#[test]
fn compressed_batches_are_cleaned_and_recompressed() {
    for codec in [1i16, 2, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        let b = compressed(codec, 100, &[rec(Some("k1"), Some("a")), rec(Some("k2"), Some("b")), rec(Some("k1"), Some("c"))]);
        log.append(&b, 0, 100, None).unwrap();
        let b = compressed(codec, 200, &[rec(Some("k2"), Some("d")), rec(Some("k3"), Some("e"))]);
        log.append(&b, 0, 200, None).unwrap();
        // A zstd batch whose payload is not zstd: it does not decompress, so it is kept whole.
        let z = keyed_batch_from_payload(250, 1, &encode_records(&[rec(Some("k1"), Some("zz"))]), 4, (-1, -1, -1));
        log.append(&z, 0, 250, None).unwrap();
        log.force_roll();
        let b = compressed(codec, 300, &[rec(Some("k3"), Some("f"))]);
        log.append(&b, 0, 300, None).unwrap();
        let s = log.compact(1000, 0, i64::MAX).unwrap();
        assert_eq!((s.records_removed, s.batches_kept_whole), (3, 1), "codec {codec}");
        let data = log.read(0, usize::MAX, i64::MAX).unwrap().data;
        let headers = crate::validate_batches(&data, u32::MAX).unwrap();
        assert_eq!(headers.iter().map(|h| (h.base_offset, h.last_offset_delta, h.records_count, h.compression())).collect::<Vec<_>>(),
            vec![(0, 2, 1, codec), (3, 1, 1, codec), (5, 0, 1, 4), (6, 0, 1, codec)]);
        // Decode everything but the batch that does not decompress.
        let mut readable = Vec::new();
        for h in headers.iter().filter(|h| h.base_offset != 5) {
            readable.extend_from_slice(&data[h.position..h.end_position()]);
        }
        assert_eq!(
            offsets_and_values(&decode_all(&readable).0),
            vec![(2, Some("k1"), Some("c")), (3, Some("k2"), Some("d")), (6, Some("k3"), Some("f"))],
            "codec {codec}"
        );
    }
}

#[test]
fn decompression_bombs_are_refused_and_kept_whole() {
    // 32 MiB of zeros in a ~32 KiB gzip batch, against a 1 MiB cap.
    let bomb = gzip(&vec![0u8; 32 << 20]);
    assert!(bomb.len() < 200_000);
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let b = keyed_batch_from_payload(100, 3, &bomb, 1, (-1, -1, -1));
    log.append(&b, 0, 100, None).unwrap();
    put(&mut log, 110, &[rec(Some("k1"), Some("a"))]);
    put(&mut log, 120, &[rec(Some("k1"), Some("b"))]);
    log.force_roll();
    put(&mut log, 130, &[rec(Some("k2"), Some("c"))]);
    let before = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let mut plan = log.compaction_plan(1000, 0, i64::MAX).unwrap();
    plan.set_max_decompressed_bytes(1 << 20);
    let result = plan.execute().unwrap();
    let s = log.install_compaction(result).unwrap();
    assert_eq!((s.batches_kept_whole, s.records_removed), (1, 1));
    let after = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    assert_eq!(&after[..b.len()], &before[..b.len()], "the bomb batch is kept byte for byte");
    // Codec-level caps, including a snappy block claiming 4 GiB and a garbage lz4 frame.
    assert!(crate::codec::decompress(1, &bomb, 1 << 20).is_err());
    assert_eq!(crate::codec::decompress(1, &gzip(b"hello"), 5).unwrap(), b"hello");
    assert!(crate::codec::decompress(1, &gzip(b"hello!"), 5).is_err());
    assert!(crate::codec::decompress(2, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0], 1 << 20).is_err());
    let mut xerial = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
    let block = snap::raw::Encoder::new().compress_vec(&vec![0u8; 1 << 20]).unwrap();
    for _ in 0..4 {
        xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&block);
    }
    assert_eq!(crate::codec::decompress(2, &xerial, 4 << 20).unwrap().len(), 4 << 20);
    assert!(crate::codec::decompress(2, &xerial, (4 << 20) - 1).is_err());
    assert!(crate::codec::decompress(3, &lz4(&vec![7u8; 3 << 20]), 1 << 20).is_err());
    assert!(crate::codec::decompress(3, b"garbage", 1 << 20).is_err());
    assert!(crate::codec::decompress(4, b"zstd", 1 << 20).is_err());
}

/// A log of 4 segments (3 cleanable, of which 2 change) plus the active one.
fn crash_fixture(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config()).unwrap();
    put(&mut log, 100, &[rec(Some("a"), Some("1")), rec(Some("b"), Some("1"))]);
    put(&mut log, 110, &[rec(Some("c"), Some("1"))]);
    log.force_roll();
    put(&mut log, 200, &[rec(Some("x"), Some("1"))]);
    log.force_roll();
    put(&mut log, 300, &[rec(Some("a"), Some("2")), rec(Some("c"), None)]);
    put(&mut log, 310, &[rec(Some("d"), Some("1")), rec(Some("d"), Some("2"))]);
    log.force_roll();
    put(&mut log, 400, &[rec(Some("b"), Some("2"))]);
    log
}

/// What must hold after any interruption: same offsets, every key's latest record present, and
/// the log a subsequence of what was written.
fn check_against_original(log: &PartitionLog, original: &[Decoded], segments: &[(i64, i64)]) {
    let (records, _) = read_all(log);
    assert_eq!(log.segment_info().iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), segments);
    let mut it = original.iter();
    for r in &records {
        assert!(it.any(|o| o == r), "{r:?} is not in the original log, in order");
    }
    let mut latest: HashMap<&[u8], &Decoded> = HashMap::new();
    for o in original {
        latest.insert(o.1.key.as_deref().unwrap(), o);
    }
    for l in latest.values() {
        assert!(records.contains(l), "latest {l:?} lost");
    }
}

#[test]
fn crash_at_every_step_of_the_swap_leaves_a_consistent_log() {
    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference = crash_fixture(reference_dir.path());
    let (original, _) = read_all(&reference);
    let segments: Vec<(i64, i64)> = reference.segment_info().iter().map(|s| (s.0, s.1)).collect();
    let full = reference.compact(10_000, 1_000_000, i64::MAX).unwrap();
    assert_eq!(full.segments_cleaned, 2);
    let compacted = reference.read(0, usize::MAX, i64::MAX).unwrap().data;

    // Steps: 4 renames per cleaned segment; 0 = crash before the first one.
    for steps in 0..=8 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = crash_fixture(dir.path());
        let result = log.compaction_plan(10_000, 1_000_000, i64::MAX).unwrap().execute().unwrap();
        log.install_compaction_until(result, Some(steps)).unwrap();
        drop(log); // crash
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        assert!(leftovers(dir.path()).is_empty(), "step {steps}: {:?}", leftovers(dir.path()));
        check_against_original(&log, &original, &segments);
        let (records, _) = read_all(&log);
        let first_done = steps >= 2; // committed once its log swap exists
        let second_done = steps >= 6;
        assert_eq!(records.iter().any(|r| r.0 == 0), !first_done, "step {steps}");
        assert!(records.iter().any(|r| r.0 == 5 && r.1.value.is_none()), "step {steps}");
        assert_eq!(records.iter().any(|r| r.0 == 6), !second_done, "step {steps}");
        // Finishing the job gives exactly the uninterrupted result.
        log.compact(10_000, 1_000_000, i64::MAX).unwrap();
        assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, compacted, "step {steps}");
        // And a clean restart trusts the swapped-in indexes.
        log.close().unwrap();
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, compacted);
        for offset in 0..log.log_end_offset() {
            assert_eq!(log.read(offset, 1, i64::MAX).unwrap().data, reference.read(offset, 1, i64::MAX).unwrap().data);
        }
    }

    // A crash during execute: only .cleaned files exist, open deletes them.
    let dir = tempfile::tempdir().unwrap();
    let log = crash_fixture(dir.path());
    let before = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let result = log.compaction_plan(10_000, 1_000_000, i64::MAX).unwrap().execute().unwrap();
    std::mem::forget(result);
    assert_eq!(leftovers(dir.path()).len(), 8);
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, before);
}

#[test]
fn install_is_discarded_when_the_log_changed() {
    // Truncation during execute.
    let dir = tempfile::tempdir().unwrap();
    let mut log = crash_fixture(dir.path());
    let result = log.compaction_plan(10_000, 0, i64::MAX).unwrap().execute().unwrap();
    log.truncate_to(6).unwrap();
    let before = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let s = log.install_compaction(result).unwrap();
    assert!(s.discarded);
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, before);
    assert!(leftovers(dir.path()).is_empty(), "a discarded result removes its files");

    // Another compaction installed first.
    let dir = tempfile::tempdir().unwrap();
    let mut log = crash_fixture(dir.path());
    let first = log.compaction_plan(10_000, 0, i64::MAX).unwrap().execute().unwrap();
    log.compact(10_000, 0, i64::MAX).unwrap();
    assert!(log.install_compaction(first).unwrap().discarded);

    // Appends and retention meanwhile: what is still there gets installed.
    let dir = tempfile::tempdir().unwrap();
    let mut log = crash_fixture(dir.path());
    let result = log.compaction_plan(10_000, 1_000_000, i64::MAX).unwrap().execute().unwrap();
    assert_eq!(result.stats().segments_cleaned, 2);
    put(&mut log, 500, &[rec(Some("a"), Some("3"))]);
    log.advance_log_start_offset(3).unwrap();
    let s = log.install_compaction(result).unwrap();
    assert!(!s.discarded);
    assert_eq!(s.segments_cleaned, 1);
    let (records, _) = read_all(&log);
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5, 7, 8, 9]);
    assert!(leftovers(dir.path()).is_empty());
    // Reads through slices taken before an install still see the old bytes.
    let slices = log.read_slices(3, usize::MAX, i64::MAX).unwrap();
    log.compact(10_000, 1_000_000, i64::MAX).unwrap();
    let mut old = Vec::new();
    for s in &slices.slices {
        s.read_into(&mut old).unwrap();
    }
    assert_eq!(decode_all(&old).0.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5, 7, 8, 9]);
}

// ---------------------------------------------------------------------------------------------
// Model-based property test.

/// (key index or None, value byte or tombstone) per record, and the batch's codec.
type BatchOp = (Vec<(Option<u8>, Option<u8>)>, i16);

#[derive(Clone, Debug)]
enum Op {
    /// Batches of (key index or None, value or tombstone) with a codec (0, 1 gzip, 3 lz4).
    Append(Vec<BatchOp>),
    Roll,
    /// Advance the clock, clean with this delete retention; append between plan and install.
    /// `hw`: picks the high watermark among the batch ends at or above the previous one.
    Compact { advance_ms: i64, delete_retention_ms: i64, append_during: bool, hw: u16 },
    Reopen,
    /// Drop without closing, optionally in the middle of an install after `steps` renames.
    Crash { during_install: Option<usize> },
    Truncate(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let record = (prop::option::weighted(0.95, 0u8..6), prop::option::weighted(0.85, any::<u8>()));
    prop_oneof![
        8 => prop::collection::vec((prop::collection::vec(record, 1..4), prop_oneof![4 => Just(0i16), 1 => Just(1i16), 1 => Just(3i16)]), 1..3)
            .prop_map(Op::Append),
        2 => Just(Op::Roll),
        3 => (0i64..200, prop_oneof![Just(-1i64), 0i64..300], any::<bool>(), any::<u16>())
            .prop_map(|(advance_ms, delete_retention_ms, append_during, hw)| Op::Compact { advance_ms, delete_retention_ms, append_during, hw }),
        1 => Just(Op::Reopen),
        1 => prop::option::of(0usize..12).prop_map(|during_install| Op::Crash { during_install }),
        1 => any::<u16>().prop_map(Op::Truncate),
    ]
}

#[derive(Clone, Debug)]
struct ModelRecord {
    offset: i64,
    rec: Rec,
    batch_max_ts: i64,
    /// A compaction may have removed this tombstone.
    removable: bool,
    /// It was in a segment some compaction planned to clean.
    cleanable: bool,
}

#[derive(Default)]
struct Model {
    records: Vec<ModelRecord>,
    end: i64,
    /// Ends of the batches appended, ascending.
    batch_ends: Vec<i64>,
    /// Highest high watermark given to a compaction: truncation never goes below it.
    hw: i64,
}

impl Model {
    fn latest(&self, below: i64) -> HashMap<Vec<u8>, usize> {
        let mut latest = HashMap::new();
        for (i, r) in self.records.iter().enumerate().filter(|(_, r)| r.offset < below) {
            if let Some(k) = &r.rec.key {
                latest.insert(k.clone(), i);
            }
        }
        latest
    }
}

fn do_append(log: &mut PartitionLog, model: &mut Model, batches: &[BatchOp], now: i64) -> Result<(), TestCaseError> {
    let mut buf = Vec::new();
    let mut recs = Vec::new();
    for (records, codec) in batches {
        let rs: Vec<Rec> = records
            .iter()
            .map(|(k, v)| Rec { key: k.map(|k| vec![b'k', k]), value: v.map(|v| vec![v; (v % 7) as usize]) })
            .collect();
        buf.extend(compressed(*codec, now, &rs));
        recs.push(rs);
    }
    let info = log.append(&buf, 0, now, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(info.first_offset, model.end);
    for rs in recs {
        let max_ts = now + rs.len() as i64 - 1;
        for rec in rs {
            model.records.push(ModelRecord { offset: model.end, rec, batch_max_ts: max_ts, removable: false, cleanable: false });
            model.end += 1;
        }
        model.batch_ends.push(model.end);
    }
    Ok(())
}

fn check(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), model.end);
    let segments = log.segment_info();
    for w in segments.windows(2) {
        prop_assert_eq!(w[0].1, w[1].0, "segments not contiguous: {:?}", segments);
    }
    let (records, _) = read_all(log);
    // A subsequence of the model, in order, at the original offsets.
    let mut it = model.records.iter();
    for (offset, rec) in &records {
        prop_assert!(it.any(|m| m.offset == *offset && m.rec == *rec), "({}, {:?}) not in the model in order", offset, rec);
    }
    let present: std::collections::HashSet<i64> = records.iter().map(|r| r.0).collect();
    // Every key's latest record survives unless it is a tombstone a compaction could drop.
    for &i in model.latest(model.end).values() {
        let m = &model.records[i];
        if !(m.rec.value.is_none() && m.removable) {
            prop_assert!(present.contains(&m.offset), "latest record {:?} lost", m);
        }
    }
    // Null keys, the active segment and anything above the high watermark are never cleaned.
    for m in &model.records {
        if m.rec.key.is_none() || !m.cleanable {
            prop_assert!(present.contains(&m.offset), "{:?} lost", m);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>, segment_bytes: u64, index_interval_bytes: u32) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes, index_interval_bytes, segment_ms: i64::MAX / 4, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut model = Model::default();
    let mut now = 1_000_000i64;
    let fail = |e: StorageError| TestCaseError::fail(e.to_string());
    for op in ops {
        match op {
            Op::Append(batches) => {
                now += 10;
                do_append(&mut log, &mut model, &batches, now)?;
            }
            Op::Roll => {
                if log.segment_info().last().unwrap().2 > 0 {
                    log.force_roll();
                }
            }
            Op::Compact { advance_ms, delete_retention_ms, append_during, hw } => {
                now += advance_ms;
                let ends: Vec<i64> = model.batch_ends.iter().copied().filter(|&e| e >= model.hw).collect();
                let hw = if ends.is_empty() { model.end } else { ends[usize::from(hw) % ends.len()] };
                model.hw = hw;
                let plan = log.compaction_plan(now, delete_retention_ms, hw).map_err(fail)?;
                let segments = log.segment_info();
                let active_base = segments.iter().find(|s| s.1 > hw).map_or(segments.last().unwrap().0, |s| s.0).min(segments.last().unwrap().0);
                let plan_end = hw;
                let result = plan.execute().map_err(fail)?;
                if append_during {
                    now += 1;
                    do_append(&mut log, &mut model, &[(vec![(Some(0), Some(1)), (Some(1), None)], 0)], now)?;
                }
                let horizon = if delete_retention_ms < 0 { i64::MIN } else { now - delete_retention_ms };
                for m in model.records.iter_mut().filter(|m| m.offset < active_base) {
                    m.cleanable = true;
                    m.removable |= m.batch_max_ts < horizon;
                }
                let stats = log.install_compaction(result).map_err(fail)?;
                prop_assert!(!stats.discarded);
                // Strong check: below the active segment of the plan only each key's latest
                // record (as of the plan) remains.
                let latest = model.latest(plan_end);
                let (records, _) = read_all(&log);
                for (offset, rec) in records.iter().filter(|r| r.0 < active_base) {
                    if let Some(k) = &rec.key {
                        prop_assert_eq!(model.records[latest[k]].offset, *offset, "superseded record of {:?} kept", k);
                    }
                }
            }
            Op::Reopen => {
                log.close().map_err(fail)?;
                log = PartitionLog::open(dir.path(), cfg.clone()).map_err(fail)?;
            }
            Op::Crash { during_install } => {
                if let Some(steps) = during_install {
                    model.hw = model.end;
                    let segments = log.segment_info();
                    let active_base = segments.last().unwrap().0;
                    for m in model.records.iter_mut().filter(|m| m.offset < active_base) {
                        m.cleanable = true;
                    }
                    let result = log.compaction_plan(now, -1, model.end).map_err(fail)?.execute().map_err(fail)?;
                    log.install_compaction_until(result, Some(steps)).map_err(fail)?;
                }
                drop(log);
                log = PartitionLog::open(dir.path(), cfg.clone()).map_err(fail)?;
                prop_assert!(leftovers(dir.path()).is_empty());
            }
            Op::Truncate(sel) => {
                let offset = model.hw + i64::from(sel) % (model.end - model.hw + 1);
                // Expected end: the end of the last batch entirely below the one holding or
                // following `offset`, but not below that batch's segment.
                let data = log.read(0, usize::MAX, i64::MAX).map_err(fail)?.data;
                let headers = if data.is_empty() { vec![] } else { crate::validate_batches(&data, u32::MAX).unwrap() };
                let expected = match headers.iter().position(|h| h.last_offset() >= offset) {
                    None => model.end,
                    Some(i) => {
                        let b = headers[i].base_offset;
                        let seg_base = log.segment_info().iter().filter(|s| s.0 <= b).map(|s| s.0).max().unwrap();
                        let prev_end = if i == 0 { 0 } else { headers[i - 1].last_offset() + 1 };
                        seg_base.max(prev_end)
                    }
                };
                log.truncate_to(offset).map_err(fail)?;
                prop_assert_eq!(log.log_end_offset(), expected);
                prop_assert!(expected >= model.hw);
                model.records.retain(|m| m.offset < expected);
                model.batch_ends.retain(|&e| e <= expected);
                model.end = expected;
            }
        }
        check(&log, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_model(
        ops in prop::collection::vec(op(), 1..50),
        segment_bytes in 150u64..800,
        index_interval_bytes in 0u32..200,
    ) {
        run(ops, segment_bytes, index_interval_bytes)?;
    }
}

#[test]
fn retention_deletes_only_when_the_policy_includes_delete() {
    use crate::CleanupPolicy;
    assert_eq!(LogConfig::default().cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(LogConfig::default().delete_retention_ms, 86_400_000);
    for (policy, deletes) in [(CleanupPolicy::Compact, false), (CleanupPolicy::CompactDelete, true), (CleanupPolicy::Delete, true)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { retention_ms: 100, cleanup_policy: policy, ..config() };
        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        put(&mut log, 100, &[rec(Some("a"), Some("1"))]);
        log.force_roll();
        put(&mut log, 200, &[rec(Some("a"), Some("2"))]);
        log.force_roll();
        let deleted = log.enforce_retention(10_000).unwrap();
        assert_eq!(deleted > 0, deletes, "{policy:?}");
        assert_eq!(log.log_start_offset() > 0, deletes, "{policy:?}");
    }
}

#[test]
fn cleanup_policy_parses_kafka_lists() {
    use crate::CleanupPolicy;
    assert_eq!(CleanupPolicy::parse("delete"), Some(CleanupPolicy::Delete));
    assert_eq!(CleanupPolicy::parse("compact"), Some(CleanupPolicy::Compact));
    assert_eq!(CleanupPolicy::parse("compact,delete"), Some(CleanupPolicy::CompactDelete));
    assert_eq!(CleanupPolicy::parse(" delete , compact "), Some(CleanupPolicy::CompactDelete));
    assert_eq!(CleanupPolicy::parse(""), None);
    assert_eq!(CleanupPolicy::parse("compacted"), None);
    assert!(CleanupPolicy::CompactDelete.includes_delete() && CleanupPolicy::CompactDelete.includes_compact());
    assert!(!CleanupPolicy::Compact.includes_delete());
}

/// Kafka's rule for compacted topics: a record without a key is refused with INVALID_RECORD
/// (whether or not its batch is compressed), each keyless record is named by its index among
/// the request's records (Kafka's record_errors), nothing of the request is written, and keyed
/// records still go in. A delete-policy log takes keyless records as before.
#[test]
fn a_compacted_log_refuses_keyless_records() {
    use crate::{RecordError, RecordRule};
    let dir = tempfile::tempdir().unwrap();
    let compacted = LogConfig { cleanup_policy: crate::CleanupPolicy::Compact, ..config() };
    let mut log = PartitionLog::open(dir.path(), compacted).unwrap();
    put(&mut log, 100, &[rec(Some("k"), Some("v"))]);
    let keyless = [rec(Some("k1"), Some("a")), rec(None, Some("x")), rec(Some("k3"), None), rec(None, None)];
    let plain = build_keyed_batch(200, &keyless);
    let zipped = keyed_batch_from_payload(200, 4, &gzip(&encode_records(&keyless)), 1, (-1, -1, -1));
    let named = |indexes: &[i32]| indexes.iter().map(|&batch_index| RecordError { batch_index, rule: RecordRule::KeyRequired }).collect::<Vec<_>>();
    for batch in [plain.clone(), zipped] {
        match log.append(&batch, 0, 200, None) {
            Err(StorageError::InvalidRecords { records }) => assert_eq!(records, named(&[1, 3])),
            other => panic!("{other:?}"),
        }
    }
    // Two batches in one request: indexes count on through the second.
    let mut two = plain.clone();
    two.extend_from_slice(&plain);
    match log.append(&two, 0, 200, None) {
        Err(StorageError::InvalidRecords { records }) => assert_eq!(records, named(&[1, 3, 5, 7])),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.log_end_offset(), 1, "a refused batch writes nothing");
    let keyed = keyed_batch_from_payload(300, 1, &gzip(&encode_records(&[rec(Some("k2"), None)])), 1, (-1, -1, -1));
    assert_eq!(log.append(&keyed, 0, 300, None).unwrap().first_offset, 1, "keyed records (tombstones too) go in");

    let dir = tempfile::tempdir().unwrap();
    let mut plain_log = PartitionLog::open(dir.path(), config()).unwrap();
    let batch = build_keyed_batch(200, &keyless);
    assert!(plain_log.append(&batch, 0, 200, None).is_ok());
}

/// The cleaner's gate (Kafka's min.cleanable.dirty.ratio): a log is due only when enough of it
/// was written since its last compaction, or when a tombstone the last pass kept has become
/// removable; the active segment and data above the high watermark never count.
#[test]
fn compaction_is_due_by_dirty_ratio_and_tombstone_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig { min_cleanable_dirty_ratio: 0.5, ..config() }).unwrap();
    put(&mut log, 100, &[rec(Some("a"), Some("1")), rec(Some("b"), Some("1"))]);
    assert!(!log.compaction_due(1000, i64::MAX), "only the active segment: nothing cleanable");
    log.force_roll();
    assert!(log.compaction_due(1000, i64::MAX), "never compacted: all dirty");
    assert!(!log.compaction_due(1000, 1), "a segment not entirely below the high watermark is not cleanable");
    log.compact(1000, 10_000, i64::MAX).unwrap();
    assert!(!log.compaction_due(1000, i64::MAX), "just compacted, nothing new");
    // A small new segment: dirty share below one half.
    put(&mut log, 200, &[rec(Some("a"), Some("2"))]);
    log.force_roll();
    assert!(!log.compaction_due(1000, i64::MAX), "dirty share under min.cleanable.dirty.ratio");
    // More new data than old: due.
    put(&mut log, 300, &[rec(Some("c"), Some("3")), rec(Some("d"), Some("3")), rec(Some("e"), Some("3"))]);
    log.force_roll();
    assert!(log.compaction_due(1000, i64::MAX));
    // A tombstone (written at 400) that must be kept for delete.retention.ms = 10 s.
    put(&mut log, 400, &[rec(Some("b"), None)]);
    log.force_roll();
    let stats = log.compact(1000, 10_000, i64::MAX).unwrap();
    assert_eq!(stats.tombstones_removed, 0);
    assert!(!log.compaction_due(5_000, i64::MAX), "clean, and the tombstone is not due yet");
    assert!(log.compaction_due(10_401, i64::MAX), "the kept tombstone became removable");
    let stats = log.compact(10_401, 10_000, i64::MAX).unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    assert!(!log.compaction_due(i64::MAX / 2, i64::MAX), "nothing left to do, ever, without new data");
}
