//! PartitionLog tests: targeted scenarios plus a model-based property test.

use std::path::Path;

use proptest::prelude::*;

use crate::testutil::{as_stored, build_batch, BatchSpec};
use crate::{LogConfig, PartitionLog, StorageError};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, index_interval_bytes: 100, ..LogConfig::default() }
}

fn batch(records: usize, base_ts: i64) -> Vec<u8> {
    build_batch(&BatchSpec { base_timestamp: base_ts, timestamps: (0..records as i64).collect(), value_len: 20, ..BatchSpec::default() })
}

fn idempotent(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    build_batch(&BatchSpec {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        base_timestamp: 1000,
        timestamps: vec![0; records],
        ..BatchSpec::default()
    })
}

fn append(log: &mut PartitionLog, bytes: Vec<u8>) -> Result<crate::AppendInfo, StorageError> {
    log.append(&bytes, 0, 0, None)
}

fn active_path(log: &PartitionLog, dir: &Path) -> std::path::PathBuf {
    let base = log.segment_info().last().unwrap().0;
    dir.join(format!("{base:020}.log"))
}

/// Base offsets of the batches in `data`, which must be whole valid batches.
fn batch_offsets(data: &[u8]) -> Vec<i64> {
    if data.is_empty() {
        return vec![];
    }
    crate::validate_batches(data, u32::MAX).unwrap().iter().map(|h| h.base_offset).collect()
}

#[test]
fn append_assigns_contiguous_offsets_and_reads_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    let mut two = batch(3, 100);
    two.extend(batch(2, 200));
    let info = log.append(&two, 5, 0, None).unwrap();
    assert_eq!((info.first_offset, info.last_offset, info.duplicate), (0, 4, false));
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (201, 4));
    assert_eq!(append(&mut log, batch(1, 300)).unwrap().first_offset, 5);
    assert_eq!(log.log_end_offset(), 6);

    let all = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&all.data), vec![0, 3, 5]);
    assert_eq!(&all.data[..two.len()], &as_stored(&two, 0, 5, None)[..], "stored bytes are the request's with offsets and epoch set");
    // Offset inside a batch: that batch is returned whole.
    assert_eq!(batch_offsets(&log.read(4, usize::MAX, i64::MAX).unwrap().data), vec![3, 5]);
    // min-one-message rule, then max_bytes.
    assert_eq!(batch_offsets(&log.read(0, 1, i64::MAX).unwrap().data), vec![0]);
    // Without it (a later partition of a Fetch response), a batch larger than the limit is not read.
    assert_eq!(log.read_slices_within(0, two.len() / 2, i64::MAX, false).unwrap().len, 0);
    assert_eq!(log.read_slices_within(0, 0, i64::MAX, false).unwrap().len, 0);
    let whole_first = log.read_slices_within(0, two.len() - 1, i64::MAX, false).unwrap();
    assert!(whole_first.len > 0 && whole_first.len < two.len(), "only the whole first batch fits");
    let first_two = log.read(0, two.len(), i64::MAX).unwrap();
    assert_eq!(batch_offsets(&first_two.data), vec![0, 3]);
    // High watermark.
    assert_eq!(batch_offsets(&log.read(0, usize::MAX, 5).unwrap().data), vec![0, 3]);
    assert!(log.read(0, usize::MAX, 4).unwrap().data.len() < two.len());
    assert!(log.read(0, usize::MAX, 2).unwrap().data.is_empty());
    // Range.
    assert!(log.read(6, 100, i64::MAX).unwrap().data.is_empty());
    assert!(matches!(log.read(7, 100, i64::MAX), Err(StorageError::OffsetOutOfRange { offset: 7, .. })));
    assert!(matches!(log.read(-1, 100, i64::MAX), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(log.latest_epoch(), Some(5));
}

#[test]
fn append_rejects_bad_input_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig { max_message_bytes: 200, ..config(1 << 20) }).unwrap();
    let big = build_batch(&BatchSpec { value_len: 300, ..BatchSpec::default() });
    assert!(matches!(append(&mut log, big), Err(StorageError::MessageTooLarge { .. })));
    let mut torn = batch(1, 0);
    torn.pop();
    assert!(matches!(append(&mut log, torn), Err(StorageError::CorruptMessage(_))));
    let mut bad_crc = batch(1, 0);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert!(matches!(append(&mut log, bad_crc), Err(StorageError::CorruptMessage(_))));
    // A good batch followed by a bad one: nothing is written.
    let mut mixed = batch(1, 0);
    mixed.extend_from_slice(&[0u8; 20]);
    assert!(append(&mut log, mixed).is_err());
    let burn = build_batch(&BatchSpec { last_offset_delta: Some(1000), ..BatchSpec::default() });
    assert!(matches!(append(&mut log, burn), Err(StorageError::CorruptMessage(_))));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn recovery_truncates_torn_tail_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    for i in 0..3 {
        append(&mut log, batch(2, i)).unwrap();
    }
    let path = active_path(&log, dir.path());
    let size = log.size_bytes();
    drop(log); // crash
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(size - 5).unwrap();
    drop(f);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(batch_offsets(&log.read(0, usize::MAX, i64::MAX).unwrap().data), vec![0, 2]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), log.size_bytes());
    // Appending continues at the recovered end.
    assert_eq!(append(&mut log, batch(1, 9)).unwrap().first_offset, 4);
    drop(log);

    // Garbage after the last batch, then a flipped bit inside the last batch.
    let mut bytes = std::fs::read(&path).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(&[0xab; 37]);
    std::fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes() as usize, valid);
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn clean_shutdown_is_trusted_and_marker_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(400)).unwrap();
    for i in 0..20 {
        append(&mut log, batch(1 + i % 3, i as i64)).unwrap();
    }
    let before = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let segments = log.segment_info();
    assert!(segments.len() > 3);
    log.close().unwrap();
    assert!(dir.path().join(".clean-shutdown").exists());
    let log = PartitionLog::open(dir.path(), config(400)).unwrap();
    assert!(!dir.path().join(".clean-shutdown").exists());
    assert_eq!(log.segment_info(), segments);
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, before);
}

#[test]
fn damaged_index_of_an_old_segment_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { index_interval_bytes: 0, ..config(600) };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..20 {
        append(&mut log, batch(2, i)).unwrap();
    }
    let before = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    drop(log);
    // An index entry pointing far past the end of the first segment.
    let index = dir.path().join(format!("{:020}.index", 0));
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.extend_from_slice(&100u32.to_be_bytes());
    bytes.extend_from_slice(&1_000_000u32.to_be_bytes());
    std::fs::write(&index, &bytes).unwrap();
    std::fs::remove_file(dir.path().join(format!("{:020}.timeindex", 0))).unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().data, before);
    for offset in 0..40 {
        let first = batch_offsets(&log.read(offset, 1, i64::MAX).unwrap().data)[0];
        assert_eq!(first, offset - offset % 2);
    }
}

#[test]
fn producer_state_dedups_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(500)).unwrap();
    let mut seq = 0;
    for _ in 0..6 {
        let info = append(&mut log, idempotent(9, 2, seq, 2)).unwrap();
        assert!(!info.duplicate);
        seq += 2;
    }
    // Retry of the latest batch and of the 5th latest: duplicates, nothing written.
    let leo = log.log_end_offset();
    let dup = append(&mut log, idempotent(9, 2, 10, 2)).unwrap();
    assert_eq!((dup.first_offset, dup.last_offset, dup.duplicate), (10, 11, true));
    assert!(append(&mut log, idempotent(9, 2, 2, 2)).unwrap().duplicate);
    assert!(matches!(append(&mut log, idempotent(9, 2, 0, 2)), Err(StorageError::OutOfOrderSequence { .. })));
    assert_eq!(log.log_end_offset(), leo);
    assert!(matches!(append(&mut log, idempotent(9, 2, 13, 1)), Err(StorageError::OutOfOrderSequence { expected: 12, .. })));
    assert!(matches!(append(&mut log, idempotent(9, 1, 12, 1)), Err(StorageError::InvalidProducerEpoch { .. })));
    assert!(matches!(append(&mut log, idempotent(4, 0, 1, 1)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));

    let check = |log: &mut PartitionLog, next_seq: i32| {
        let leo = log.log_end_offset();
        assert!(append(log, idempotent(9, 2, next_seq - 2, 2)).unwrap().duplicate);
        assert!(matches!(append(log, idempotent(9, 2, next_seq + 1, 1)), Err(StorageError::OutOfOrderSequence { .. })));
        let info = append(log, idempotent(9, 2, next_seq, 2)).unwrap();
        assert_eq!((info.first_offset, info.duplicate), (leo, false));
    };
    // Clean restart.
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(500)).unwrap();
    check(&mut log, 12);
    // Crash: the snapshot is older than the log; headers after it are replayed.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(500)).unwrap();
    check(&mut log, 14);
    // Crash with the snapshot gone: the whole log is replayed.
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state")).unwrap();
    let mut log = PartitionLog::open(dir.path(), config(500)).unwrap();
    check(&mut log, 16);
    // Truncation forgets the truncated batches.
    let leo = log.log_end_offset();
    log.truncate_to(leo - 2).unwrap();
    assert!(matches!(append(&mut log, idempotent(9, 2, 18, 2)), Err(StorageError::OutOfOrderSequence { expected: 16, .. })));
    assert!(!append(&mut log, idempotent(9, 2, 16, 2)).unwrap().duplicate);
    // Crash that chops the last batch: its sequence is accepted again.
    let path = active_path(&log, dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    drop(log);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(size - 1).unwrap();
    let mut log = PartitionLog::open(dir.path(), config(500)).unwrap();
    assert!(!append(&mut log, idempotent(9, 2, 16, 2)).unwrap().duplicate);
    // A new epoch restarts at 0.
    assert!(!append(&mut log, idempotent(9, 3, 0, 1)).unwrap().duplicate);
}

#[test]
fn timestamps_and_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    // Record timestamps: offsets 0..3 -> 100,105,103 ; 3..5 -> 90,200 ; compressed 5..7 (max 150)
    log.append(&build_batch(&BatchSpec { base_timestamp: 100, timestamps: vec![0, 5, 3], ..BatchSpec::default() }), 0, 0, None)
        .unwrap();
    log.append(&build_batch(&BatchSpec { base_timestamp: 90, timestamps: vec![0, 110], ..BatchSpec::default() }), 0, 0, None)
        .unwrap();
    let compressed = BatchSpec { base_timestamp: 140, timestamps: vec![0, 10], compression: 1, ..BatchSpec::default() };
    log.append(&build_batch(&compressed), 0, 0, None).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some((1, 105)));
    assert_eq!(log.offset_for_timestamp(106).unwrap(), Some((4, 200)));
    assert_eq!(log.offset_for_timestamp(201).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((200, 4)));
    let info = log.append(&batch(2, 5), 0, 0, Some(500)).unwrap();
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (500, 7));
    assert_eq!(log.max_timestamp().unwrap(), Some((500, 7)));
    assert_eq!(log.offset_for_timestamp(300).unwrap(), Some((7, 500)));
    let stored = log.read(7, usize::MAX, i64::MAX).unwrap().data;
    let h = crate::validate_batches(&stored, u32::MAX).unwrap()[0];
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 500);
    // Compressed batch: its base offset and max timestamp.
    log.append(&build_batch(&BatchSpec { base_timestamp: 1000, ..compressed }), 0, 0, None).unwrap();
    assert_eq!(log.offset_for_timestamp(1005).unwrap(), Some((9, 1010)));
    assert_eq!(log.max_timestamp().unwrap(), Some((1010, 10)));
    // Results survive a crash (indexes rebuilt) and respect the log start offset.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some((1, 105)));
    log.advance_log_start_offset(2).unwrap();
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some((4, 200)));
}

/// Kafka's message.timestamp.before/after.max.ms: a CreateTime record whose timestamp lies
/// outside [now - before, now + after] is refused and named (its index, its timestamp and the
/// producer's offset for it), nothing is written; a record without a timestamp (-1) and a
/// LogAppendTime topic's records are not checked.
#[test]
fn timestamps_out_of_bounds_are_named_record_by_record() {
    use crate::{RecordError, RecordRule};
    let dir = tempfile::tempdir().unwrap();
    let bounded = LogConfig { message_timestamp_before_max_ms: 1000, message_timestamp_after_max_ms: 500, ..config(1 << 20) };
    let mut log = PartitionLog::open(dir.path(), bounded).unwrap();
    let now = 10_000;
    let spec = |base_timestamp, timestamps: Vec<i64>| build_batch(&BatchSpec { base_timestamp, timestamps, ..BatchSpec::default() });
    let out = |batch_index, timestamp, offset| RecordError { batch_index, rule: RecordRule::TimestampOutOfRange { timestamp, offset, earliest: 9000, latest: 10_500 } };
    // 8999 is too old, 10501 too new; 9000 and 10500 are the bounds themselves.
    let mut two = spec(now, vec![0, -1001, 501, -1000, 500]);
    two.extend(spec(now, vec![-5000, 0]));
    match log.append(&two, 0, now, None) {
        Err(StorageError::InvalidRecords { records }) => assert_eq!(records, vec![out(1, 8999, 1), out(2, 10_501, 2), out(5, 5000, 0)]),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0, "a refused request writes nothing");
    // No timestamp at all: not checked.
    assert!(log.append(&spec(-1, vec![0]), 0, now, None).is_ok());
    // Under LogAppendTime the broker's clock replaces them.
    assert!(log.append(&spec(0, vec![0]), 0, now, Some(now)).is_ok());
    // The defaults bound nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut unbounded = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert!(unbounded.append(&spec(0, vec![0, i64::MAX / 2]), 0, now, None).is_ok());
}

/// Kafka's LogValidator: a producer may not mark its batch LogAppendTime. Every record is
/// refused (INVALID_TIMESTAMP) on a LogAppendTime topic, and on a CreateTime topic those without
/// a timestamp; a CreateTime record that carries one passes (Kafka checks only its range).
#[test]
fn a_producer_set_log_append_time_is_refused_record_by_record() {
    use crate::{RecordError, RecordRule};
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    let lat = |base_timestamp, timestamps: Vec<i64>| build_batch(&BatchSpec { base_timestamp, timestamps, compression: 0x08, ..BatchSpec::default() });
    let refused = |batch_index, offset| RecordError { batch_index, rule: RecordRule::LogAppendTimeFromProducer { offset } };
    match log.append(&lat(100, vec![0, 1]), 0, 1000, Some(1000)) {
        Err(StorageError::InvalidRecords { records }) => assert_eq!(records, vec![refused(0, 0), refused(1, 1)]),
        other => panic!("{other:?}"),
    }
    match log.append(&lat(-1, vec![0]), 0, 1000, None) {
        Err(StorageError::InvalidRecords { records }) => assert_eq!(records, vec![refused(0, 0)]),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.append(&lat(100, vec![0, 1]), 0, 1000, None).is_ok());
    assert!(RecordRule::LogAppendTimeFromProducer { offset: 0 }.is_timestamp());
}

#[test]
fn retention_start_offset_truncation_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig { retention_ms: 1000, ..config(250) }).unwrap();
    for i in 0..10i64 {
        log.append(&batch(2, i * 100), (i / 4) as i32, i * 100, None).unwrap();
    }
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 8)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 16)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 20)));
    assert_eq!(log.end_offset_for_epoch(3), None);
    let segments = log.segment_info();
    assert!(segments.len() >= 4, "{segments:?}");
    // Time: segments whose newest record is older than now - 1000.
    let deleted = log.enforce_retention(1450).unwrap();
    let remaining = log.segment_info();
    assert_eq!(deleted, segments.len() - remaining.len());
    assert!(deleted >= 1);
    assert_eq!(log.log_start_offset(), remaining[0].0);
    assert!(matches!(log.read(0, 100, i64::MAX), Err(StorageError::OffsetOutOfRange { .. })));
    // Size: 3 segments of 230 bytes against a limit of 400: only the oldest goes (Kafka deletes a
    // segment only while the excess is at least its size).
    assert_eq!(remaining.iter().map(|s| s.2).collect::<Vec<_>>(), vec![230, 230, 230]);
    log.set_config(LogConfig { retention_bytes: 400, ..config(250) });
    assert_eq!(log.enforce_retention(0).unwrap(), 1);
    assert_eq!(log.size_bytes(), 460);
    assert_eq!(log.enforce_retention(0).unwrap(), 0);
    log.set_config(LogConfig { retention_bytes: 200, ..config(250) });
    assert_eq!(log.enforce_retention(0).unwrap(), 1);
    assert_eq!(log.size_bytes(), 230);
    let lso = log.log_start_offset();
    // DeleteRecords.
    assert!(log.advance_log_start_offset(lso - 1).is_ok());
    assert_eq!(log.log_start_offset(), lso);
    assert!(matches!(log.advance_log_start_offset(21), Err(StorageError::OffsetOutOfRange { .. })));
    log.advance_log_start_offset(19).unwrap();
    assert_eq!(batch_offsets(&log.read(19, usize::MAX, i64::MAX).unwrap().data), vec![18]);
    // Everything expires: an empty active segment keeps the end offset.
    log.set_config(LogConfig { retention_ms: 0, ..config(250) });
    log.enforce_retention(10_000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (20, 20, 0));
    log.append(&batch(1, 0), 3, 0, None).unwrap();
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 20)));
    // Truncation trims the epoch cache; a restart keeps it.
    log.append(&batch(1, 0), 4, 0, None).unwrap();
    log.truncate_to(21).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.log_end_offset(), 21);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config(250)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.latest_epoch()), (20, 21, Some(3)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 21)));
}

#[test]
fn segment_ms_rolls_and_delete_removes_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = PartitionLog::open(&path, LogConfig { segment_ms: 100, ..config(1 << 20) }).unwrap();
    log.append(&batch(1, 0), 0, 1000, None).unwrap();
    log.append(&batch(1, 0), 0, 1050, None).unwrap();
    assert_eq!(log.segment_info().len(), 1);
    log.append(&batch(1, 0), 0, 1101, None).unwrap();
    assert_eq!(log.segment_info().len(), 2);
    log.enforce_retention(1300).unwrap();
    assert_eq!(log.segment_info().len(), 3);
    log.flush().unwrap();
    log.delete().unwrap();
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// Model-based property test.

#[derive(Clone, Debug)]
enum Op {
    /// (records, value length, timestamp jitter) per batch; use LogAppendTime.
    Append(Vec<(usize, usize, i64)>, bool),
    /// `min_one`: a first batch larger than `max_bytes` is still returned (see `read_slices_within`).
    Read { offset: u16, max_bytes: usize, below_hw: Option<u16>, min_one: bool },
    Retention { advance_ms: i64, retention_ms: i64, retention_bytes: i64 },
    AdvanceStart(u16),
    Truncate(u16),
    Reopen,
    Crash { chop: u64, garbage: Vec<u8> },
    OffsetForTimestamp(u16),
    MaxTimestamp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((1usize..5, 0usize..60, -5i64..20), 1..4), prop::bool::weighted(0.2))
            .prop_map(|(b, lat)| Op::Append(b, lat)),
        4 => (any::<u16>(), 0usize..1500, prop::option::of(any::<u16>()), prop::bool::weighted(0.7))
            .prop_map(|(offset, max_bytes, below_hw, min_one)| Op::Read { offset, max_bytes, below_hw, min_one }),
        1 => (0i64..300, prop_oneof![Just(-1i64), 0i64..400], prop_oneof![Just(-1i64), 0i64..2500])
            .prop_map(|(advance_ms, retention_ms, retention_bytes)| Op::Retention { advance_ms, retention_ms, retention_bytes }),
        1 => any::<u16>().prop_map(Op::AdvanceStart),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        2 => (prop_oneof![Just(0u64), 1u64..300], prop::collection::vec(any::<u8>(), 0..3).prop_flat_map(|v| {
                if v.is_empty() { Just(vec![]).boxed() } else { prop::collection::vec(any::<u8>(), 1..120).boxed() }
            }))
            .prop_map(|(chop, garbage)| Op::Crash { chop, garbage }),
        1 => any::<u16>().prop_map(Op::OffsetForTimestamp),
        1 => Just(Op::MaxTimestamp),
    ]
}

#[derive(Clone, Debug)]
struct ModelBatch {
    base: i64,
    bytes: Vec<u8>,
    /// Timestamp of each record, in offset order.
    timestamps: Vec<i64>,
}

impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.timestamps.len() as i64 - 1
    }
    fn max_ts(&self) -> i64 {
        self.timestamps.iter().copied().max().unwrap_or(-1)
    }
}

#[derive(Default, Debug)]
struct Model {
    batches: Vec<ModelBatch>,
    start: i64,
    end: i64,
}

impl Model {
    /// Picks an offset in [start - 1, end + 1].
    fn pick(&self, sel: u16) -> i64 {
        self.start - 1 + i64::from(sel) % (self.end - self.start + 3)
    }

    fn visible(&self) -> impl Iterator<Item = &ModelBatch> {
        self.batches.iter().filter(move |b| b.last() >= self.start)
    }

    fn expected_read(&self, offset: i64, max_bytes: usize, max_offset: i64, min_one: bool) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for b in self.batches.iter().filter(|b| b.last() >= offset) {
            let exempt = min_one && out.is_empty();
            if b.last() >= max_offset || (!exempt && out.len() + b.bytes.len() > max_bytes) {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out
    }

    /// Drops everything at and above `end`; an end below the start empties the log there.
    fn cut(&mut self, end: i64, reset_at: i64) {
        self.batches.retain(|b| b.last() < end);
        self.end = end;
        if end < self.start {
            self.batches.clear();
            self.start = reset_at;
            self.end = reset_at;
        }
    }
}

fn check_invariants(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), model.start);
    prop_assert_eq!(log.log_end_offset(), model.end);
    let segments = log.segment_info();
    prop_assert!(segments[0].0 <= model.start);
    prop_assert_eq!(segments.last().unwrap().1, model.end);
    for w in segments.windows(2) {
        prop_assert_eq!(w[0].1, w[1].0, "segments not contiguous: {:?}", segments);
    }
    for &(base, next, size) in &segments {
        let in_segment: Vec<_> = model.batches.iter().filter(|b| b.base >= base && b.base < next).collect();
        let bytes: u64 = in_segment.iter().map(|b| b.bytes.len() as u64).sum();
        prop_assert_eq!(bytes, size, "segment {} size", base);
        if let Some(first) = in_segment.first() {
            prop_assert_eq!(first.base, base);
        }
    }
    let all = log.read(model.start, usize::MAX, i64::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected: Vec<u8> = model.visible().flat_map(|b| b.bytes.iter().copied()).collect();
    prop_assert!(all.data[..] == expected[..], "full read differs from the model");
    Ok(())
}

fn run(ops: Vec<Op>, segment_bytes: u64, index_interval_bytes: u32) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig { segment_bytes, index_interval_bytes, segment_ms: i64::MAX / 4, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut model = Model::default();
    let mut now = 1_000_000i64;
    let fail = |e: StorageError| TestCaseError::fail(e.to_string());
    for op in ops {
        match op {
            Op::Append(specs, lat) => {
                now += 10;
                let mut buf = Vec::new();
                let mut stamps = Vec::new();
                for (records, value_len, jitter) in specs {
                    let base_timestamp = now + jitter;
                    let timestamps: Vec<i64> = (0..records as i64).map(|i| (i * 7 + jitter) % 11 - 3).collect();
                    stamps.push(timestamps.iter().map(|d| base_timestamp + d).collect::<Vec<_>>());
                    buf.extend(build_batch(&BatchSpec { base_timestamp, timestamps, value_len, ..BatchSpec::default() }));
                }
                let info = log.append(&buf, 1, now, lat.then_some(now)).map_err(fail)?;
                prop_assert_eq!(info.first_offset, model.end);
                let stored = as_stored(&buf, model.end, 1, lat.then_some(now));
                let headers = crate::validate_batches(&stored, u32::MAX).unwrap();
                for (h, ts) in headers.iter().zip(stamps) {
                    prop_assert_eq!(h.base_offset, model.end);
                    let ts = if lat { vec![now; ts.len()] } else { ts };
                    model.batches.push(ModelBatch { base: h.base_offset, bytes: stored[h.position..h.end_position()].to_vec(), timestamps: ts });
                    model.end = h.last_offset() + 1;
                }
                prop_assert_eq!(info.last_offset, model.end - 1);
            }
            Op::Read { offset, max_bytes, below_hw, min_one } => {
                let offset = model.pick(offset);
                let max_offset = below_hw.map_or(i64::MAX, |s| model.pick(s));
                let got = log.read_slices_within(offset, max_bytes, max_offset, min_one);
                if offset < model.start || offset > model.end {
                    prop_assert!(matches!(got, Err(StorageError::OffsetOutOfRange { .. })), "{:?}", got);
                } else {
                    let got = got.map_err(fail)?;
                    let mut data = Vec::new();
                    for s in &got.slices {
                        s.read_into(&mut data).map_err(fail)?;
                    }
                    prop_assert_eq!(data.len(), got.len);
                    let expected = model.expected_read(offset, max_bytes, max_offset, min_one);
                    prop_assert!(data == expected, "read({}, {}, {}, min_one {})", offset, max_bytes, max_offset, min_one);
                    prop_assert_eq!((got.log_start_offset, got.log_end_offset), (model.start, model.end));
                }
            }
            Op::Retention { advance_ms, retention_ms, retention_bytes } => {
                now += advance_ms;
                cfg = LogConfig { retention_ms, retention_bytes, ..cfg };
                log.set_config(cfg.clone());
                // Predict with Kafka's rules from the model's view of each segment.
                let segments = log.segment_info();
                let n = segments.len();
                let max_ts = |base: i64, next: i64| {
                    model.batches.iter().filter(|b| b.base >= base && b.base < next).map(ModelBatch::max_ts).max().unwrap_or(-1)
                };
                let mut count = 0;
                if retention_ms >= 0 {
                    while count < n {
                        let (base, next, size) = segments[count];
                        let ts = max_ts(base, next);
                        if (count + 1 == n && size == 0) || !(ts >= 0 && now - ts > retention_ms) {
                            break;
                        }
                        count += 1;
                    }
                }
                if retention_bytes >= 0 {
                    let mut excess = segments[count..].iter().map(|s| s.2 as i64).sum::<i64>() - retention_bytes;
                    while count < n && excess > 0 {
                        let size = segments[count].2 as i64;
                        if (count + 1 == n && size == 0) || excess < size {
                            break;
                        }
                        excess -= size;
                        count += 1;
                    }
                }
                let deleted = log.enforce_retention(now).map_err(fail)?;
                prop_assert_eq!(deleted, count);
                if count > 0 {
                    let new_start = if count == n { model.end } else { segments[count].0 };
                    model.start = model.start.max(new_start);
                }
            }
            Op::AdvanceStart(sel) => {
                let offset = model.pick(sel);
                let r = log.advance_log_start_offset(offset);
                if offset > model.end {
                    prop_assert!(matches!(r, Err(StorageError::OffsetOutOfRange { .. })), "{:?}", r);
                } else {
                    r.map_err(fail)?;
                    model.start = model.start.max(offset);
                }
            }
            Op::Truncate(sel) => {
                let offset = model.start + i64::from(sel) % (model.end - model.start + 1);
                log.truncate_to(offset).map_err(fail)?;
                if offset < model.end {
                    let end = model.batches.iter().find(|b| b.last() >= offset).map(|b| b.base).unwrap();
                    model.cut(end, offset);
                }
            }
            Op::Reopen => {
                log.close().map_err(fail)?;
                log = PartitionLog::open(dir.path(), cfg.clone()).map_err(fail)?;
            }
            Op::Crash { chop, garbage } => {
                let &(base, _, size) = log.segment_info().last().unwrap();
                drop(log);
                let path = dir.path().join(format!("{base:020}.log"));
                let kept = size.saturating_sub(chop);
                {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(kept).unwrap();
                    if !garbage.is_empty() {
                        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap();
                        f.write_all(&garbage).unwrap();
                    }
                }
                log = PartitionLog::open(dir.path(), cfg.clone()).map_err(fail)?;
                // The batches of the active segment that lie entirely within the kept bytes survive.
                let mut pos = 0u64;
                let mut end = model.end;
                for b in model.batches.iter().filter(|b| b.base >= base) {
                    pos += b.bytes.len() as u64;
                    if pos > kept {
                        end = b.base;
                        break;
                    }
                }
                let start = model.start;
                model.cut(end, start);
            }
            Op::OffsetForTimestamp(sel) => {
                let ts = now - 300 + i64::from(sel) % 400;
                let expected = model.visible().find_map(|b| {
                    b.timestamps
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (b.base + i as i64, *t))
                        .find(|&(o, t)| o >= model.start && t >= ts)
                });
                prop_assert_eq!(log.offset_for_timestamp(ts).map_err(fail)?, expected, "ts {}", ts);
            }
            Op::MaxTimestamp => {
                let first_base = log.segment_info()[0].0;
                let mut best: Option<(i64, i64)> = None;
                for b in model.batches.iter().filter(|b| b.base >= first_base) {
                    for (i, &t) in b.timestamps.iter().enumerate() {
                        if best.is_none_or(|(bt, _)| t > bt) {
                            best = Some((t, b.base + i as i64));
                        }
                    }
                }
                prop_assert_eq!(log.max_timestamp().map_err(fail)?, best);
            }
        }
        check_invariants(&log, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn partition_log_matches_model(
        ops in prop::collection::vec(op(), 1..60),
        segment_bytes in 150u64..2000,
        index_interval_bytes in 0u32..400,
    ) {
        run(ops, segment_bytes, index_interval_bytes)?;
    }
}

#[test]
fn truncating_below_the_start_offset_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(250)).unwrap();
    for i in 0..10 {
        append(&mut log, batch(2, i)).unwrap();
    }
    let second_base = log.segment_info()[1].0;
    log.advance_log_start_offset(second_base + 1).unwrap();
    // Below the start offset, onto an existing segment's base.
    log.truncate_to(second_base).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (second_base, second_base, 0));
    assert_eq!(log.segment_info(), vec![(second_base, second_base, 0)]);
    assert_eq!(append(&mut log, batch(1, 0)).unwrap().first_offset, second_base);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(250)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (second_base, second_base + 1));
    assert_eq!(batch_offsets(&log.read(second_base, usize::MAX, i64::MAX).unwrap().data), vec![second_base]);
}

/// Copies the leader's log into the follower the way a replica fetcher does: whole batches from
/// the follower's log end, `max_bytes` at a time.
fn replicate(leader: &PartitionLog, follower: &mut PartitionLog, max_bytes: usize) {
    loop {
        let r = leader.read(follower.log_end_offset(), max_bytes, leader.log_end_offset()).unwrap();
        if r.data.is_empty() {
            return;
        }
        follower.append_replicated(&r.data, 0).unwrap();
    }
}

fn whole_log(log: &PartitionLog) -> bytes::Bytes {
    log.read(log.log_start_offset(), usize::MAX, log.log_end_offset()).unwrap().data
}

proptest! {
    /// A follower that replicates a leader's log, in fetches of any size, ends with the same
    /// bytes, the same log end offset and the same leader-epoch history; after a leader change
    /// it truncates its divergent suffix to where the new leader's epoch history says, and
    /// converges again.
    #[test]
    fn a_replica_converges_on_its_leaders_log(
        appends in proptest::collection::vec((1usize..6, 0i32..3), 1..30),
        fetch in 60usize..2000,
        divergent in 0usize..4,
    ) {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = PartitionLog::open(ld.path(), config(700)).unwrap();
        let mut follower = PartitionLog::open(fd.path(), config(700)).unwrap();
        let mut epoch = 0;
        for (records, bump) in &appends {
            epoch += bump;
            leader.append(&batch(*records, 1000), epoch, 0, None).unwrap();
            if *bump > 0 {
                replicate(&leader, &mut follower, fetch);
            }
        }
        replicate(&leader, &mut follower, fetch);
        prop_assert_eq!(whole_log(&follower), whole_log(&leader));
        prop_assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        for e in 0..=epoch + 1 {
            prop_assert_eq!(follower.end_offset_for_epoch(e), leader.end_offset_for_epoch(e));
        }
        // The follower leads for a while (epoch + 1) and appends records no one else got; then
        // the old leader returns with epoch + 2 and more records. The follower asks the new
        // leader where its own last epoch ends, truncates there, and replicates.
        for _ in 0..divergent {
            follower.append(&batch(2, 2000), epoch + 1, 0, None).unwrap();
        }
        leader.append(&batch(3, 3000), epoch + 2, 0, None).unwrap();
        let (_, end) = leader.end_offset_for_epoch(follower.latest_epoch().unwrap()).unwrap();
        follower.truncate_to(end).unwrap();
        replicate(&leader, &mut follower, fetch);
        prop_assert_eq!(whole_log(&follower), whole_log(&leader));
        prop_assert_eq!(follower.end_offset_for_epoch(epoch + 2), leader.end_offset_for_epoch(epoch + 2));
        // Reopened (recovery) the replica is the same.
        drop(follower);
        let follower = PartitionLog::open(fd.path(), config(700)).unwrap();
        prop_assert_eq!(whole_log(&follower), whole_log(&leader));
        prop_assert_eq!(follower.latest_epoch(), leader.latest_epoch());
    }
}

#[test]
fn a_replicated_batch_that_overlaps_the_log_is_refused_and_changes_nothing() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = PartitionLog::open(ld.path(), config(1 << 20)).unwrap();
    let mut follower = PartitionLog::open(fd.path(), config(1 << 20)).unwrap();
    for _ in 0..3 {
        append(&mut leader, batch(2, 0)).unwrap();
    }
    replicate(&leader, &mut follower, 1 << 20);
    let again = leader.read(2, 1 << 20, leader.log_end_offset()).unwrap().data;
    assert!(matches!(follower.append_replicated(&again, 0), Err(StorageError::CorruptMessage(_))));
    assert_eq!(whole_log(&follower), whole_log(&leader));
    // Garbage is refused by validation, never written.
    assert!(follower.append_replicated(b"not a batch at all, just bytes that are long enough to parse..", 0).is_err());
    assert_eq!(follower.log_end_offset(), 6);
}

/// ListOffsets v0's list (Kafka's `legacyFetchOffsetsBefore`): segment bases not below the log
/// start, each at its file's mtime, plus the log end "now" when the active segment has data.
#[test]
fn legacy_offsets_before_follow_segment_boundaries_and_mtimes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    for _ in 0..4 {
        append(&mut log, batch(3, 1000)).unwrap();
        log.force_roll();
    }
    append(&mut log, batch(3, 1000)).unwrap();
    let segments = log.segment_info();
    assert!(segments.len() >= 3, "{segments:?}");
    // Segment i was last modified at (i + 1) * 1000 s.
    for (i, (base, _, _)) in segments.iter().enumerate() {
        let file = std::fs::OpenOptions::new().write(true).open(dir.path().join(format!("{base:020}.log"))).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 * (i as u64 + 1))).unwrap();
    }
    let now = 10_000_000;
    let leo = log.log_end_offset();
    let bases: Vec<i64> = segments.iter().rev().map(|s| s.0).collect();
    let all: Vec<i64> = std::iter::once(leo).chain(bases.iter().copied()).collect();
    assert_eq!(log.legacy_offsets_before(-1, 100, now).unwrap(), all);
    assert_eq!(log.legacy_offsets_before(-1, 2, now).unwrap(), all[..2].to_vec());
    assert_eq!(log.legacy_offsets_before(-2, 100, now).unwrap(), vec![0]);
    assert_eq!(log.legacy_offsets_before(-1, 0, now).unwrap(), Vec::<i64>::new());
    // By time: the last point modified at or before it, and the ones before that.
    assert_eq!(log.legacy_offsets_before(999_999, 100, now).unwrap(), Vec::<i64>::new());
    assert_eq!(log.legacy_offsets_before(2_000_000, 100, now).unwrap(), vec![segments[1].0, 0]);
    assert_eq!(log.legacy_offsets_before(now, 100, now).unwrap(), all);
    // The log start replaces the bases below it.
    log.advance_log_start_offset(1).unwrap();
    assert_eq!(log.legacy_offsets_before(-2, 1, now).unwrap(), vec![1]);
}

/// Only the active segment keeps its index files open (sealed segments answer lookups from
/// memory), so a node's open files grow with segments, not with four times them; a released
/// index reopens for recovery's and truncation's writes, and what it wrote survives a restart.
#[test]
fn sealed_segments_hold_no_index_files_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    for i in 0..40 {
        append(&mut log, batch(3, i * 10)).unwrap();
    }
    let n = log.segments.len();
    assert!(n >= 4, "{n} segments");
    assert!(log.segments[..n - 1].iter().all(|s| s.open_index_files() == 0));
    assert_eq!(log.segments[n - 1].open_index_files(), 2, "the active segment writes its offset and time indexes");
    log.close().unwrap();

    let mut log = PartitionLog::open(dir.path(), config(600)).unwrap();
    assert!(log.segments.iter().all(|s| s.open_index_files() == 0), "nothing is written at open after a clean close");
    // Lookups in sealed segments come from the in-memory entries.
    let from_middle = log.read(50, 1, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&from_middle.data), vec![48]);
    // Truncating into a sealed segment makes it the active one again: its indexes reopen.
    log.truncate_to(50).unwrap();
    assert_eq!(log.log_end_offset(), 48);
    assert_eq!(append(&mut log, batch(2, 0)).unwrap().first_offset, 48);
    drop(log); // no clean close: the next open recovers the active segment from its files

    let log = PartitionLog::open(dir.path(), config(600)).unwrap();
    assert_eq!(log.log_end_offset(), 50);
    let n = log.segments.len();
    assert!(log.segments[..n - 1].iter().all(|s| s.open_index_files() == 0));
    let all = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&all.data).last(), Some(&48));
    assert_eq!(batch_offsets(&log.read(30, 1, i64::MAX).unwrap().data), vec![30]);
}
