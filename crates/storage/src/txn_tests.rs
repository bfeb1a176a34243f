//! Transactions in the partition log: markers, the first unstable offset, aborted transactions, producer
//! listing and expiry; across restarts, crashes, truncation, retention and replication. The expected
//! values come from a simple model that replays the log's batches (decoded by the test-side decoder).

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use crate::batch::BatchHeader;
use crate::testutil::{build_batch, decode_all, BatchSpec};
use crate::{AbortedTxn, LogConfig, PartitionLog, StorageError, TxnMarker};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, index_interval_bytes: 100, ..LogConfig::default() }
}

fn with_attributes(mut b: Vec<u8>, attributes: i16) -> Vec<u8> {
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transactional (idempotent) batch.
fn txn(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let spec = BatchSpec { producer_id: pid, producer_epoch: epoch, base_sequence: seq, base_timestamp: 1000, timestamps: vec![0; records], ..BatchSpec::default() };
    with_attributes(build_batch(&spec), 0x10)
}

/// An idempotent, non-transactional batch.
fn idem(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    build_batch(&BatchSpec { producer_id: pid, producer_epoch: epoch, base_sequence: seq, base_timestamp: 1000, timestamps: vec![0; records], ..BatchSpec::default() })
}

fn plain(records: usize) -> Vec<u8> {
    build_batch(&BatchSpec { base_timestamp: 1000, timestamps: vec![0; records], value_len: 30, ..BatchSpec::default() })
}

fn put(log: &mut PartitionLog, bytes: Vec<u8>) -> Result<crate::AppendInfo, StorageError> {
    log.append(&bytes, 0, 0, None)
}

fn marker(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> TxnMarker {
    TxnMarker { producer_id: pid, producer_epoch: epoch, commit, coordinator_epoch }
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
}

/// Headers of the whole visible log, with COMMIT (true) / ABORT (false) for markers (None for data and
/// empty control batches), decoded independently of the code under test.
fn log_batches(log: &PartitionLog) -> Vec<(BatchHeader, Option<bool>)> {
    let data = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data;
    if data.is_empty() {
        return Vec::new();
    }
    crate::validate_batches(&data, u32::MAX)
        .unwrap()
        .into_iter()
        .map(|h| {
            let kind = if h.is_control() && h.records_count > 0 {
                let (records, _) = decode_all(&data[h.position..h.end_position()]);
                let key = records[0].1.key.clone().unwrap();
                Some(key[3] == 1)
            } else {
                None
            };
            (h, kind)
        })
        .collect()
}

/// The model: replays batches, tracking each producer's ongoing transaction, and lists the aborted
/// transactions with the last stable offset at their marker.
fn model(batches: &[(BatchHeader, Option<bool>)], log_start: i64) -> (Option<i64>, Vec<AbortedTxn>, BTreeMap<i64, i64>) {
    let mut ongoing: BTreeMap<i64, i64> = BTreeMap::new(); // pid -> first offset
    let mut out = Vec::new();
    for (h, kind) in batches {
        if h.producer_id < 0 {
            continue;
        }
        if h.is_control() {
            if let Some(first) = ongoing.remove(&h.producer_id) {
                if *kind == Some(false) {
                    let lso = ongoing.values().min().copied().unwrap_or(h.base_offset + 1);
                    out.push(aborted(h.producer_id, first, h.base_offset, lso));
                }
            }
        } else if h.is_transactional() {
            ongoing.entry(h.producer_id).or_insert(h.base_offset);
        }
    }
    (ongoing.values().min().map(|&f| f.max(log_start)), out, ongoing)
}

/// The log's transaction view equals the model's of its own batches.
fn check_against_model(log: &PartitionLog) {
    let (fuo, all, ongoing) = model(&log_batches(log), log.log_start_offset());
    assert_eq!(log.first_unstable_offset(), fuo, "first unstable offset");
    let from = log.log_start_offset();
    let got = log.aborted_transactions(from, i64::MAX).unwrap();
    let want: Vec<_> = all.iter().copied().filter(|a| a.last_offset >= from).collect();
    assert_eq!(got, want, "aborted transactions");
    let listed: BTreeMap<i64, i64> =
        log.producers().iter().filter_map(|p| p.current_txn_start_offset.map(|o| (p.producer_id, o))).collect();
    assert_eq!(listed, ongoing, "ongoing transactions per producer");
    for p in log.producers() {
        assert_eq!(log.open_transaction(p.producer_id, p.producer_epoch), ongoing.get(&p.producer_id).copied(), "open_transaction of {}", p.producer_id);
        assert_eq!(log.open_transaction(p.producer_id, p.producer_epoch.wrapping_add(1)), None, "open_transaction of {} under another epoch", p.producer_id);
    }
    assert_eq!(log.open_transaction(i64::MAX, 0), None);
}

#[test]
fn markers_drive_the_first_unstable_offset_and_the_aborted_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(put(&mut log, txn(1, 0, 0, 3)).unwrap().first_offset, 0); // 0..=2
    put(&mut log, plain(1)).unwrap(); // 3
    put(&mut log, txn(2, 0, 0, 1)).unwrap(); // 4
    put(&mut log, txn(1, 0, 3, 1)).unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), Some(0));
    let info = log.append_marker(&marker(1, 0, false, 4), 0, 50).unwrap(); // 6
    assert_eq!((info.first_offset, info.last_offset, info.max_timestamp), (6, 6, 50));
    assert_eq!(log.first_unstable_offset(), Some(4));
    // pid 2's transaction (from 4) was still open: the aborted one's last stable offset is 4.
    assert_eq!(log.aborted_transactions(0, 100).unwrap(), vec![aborted(1, 0, 6, 4)]);
    log.append_marker(&marker(2, 0, true, 4), 0, 60).unwrap(); // 7
    assert_eq!(log.first_unstable_offset(), None);
    put(&mut log, txn(1, 0, 4, 2)).unwrap(); // 8..=9
    log.append_marker(&marker(1, 0, false, 4), 0, 70).unwrap(); // 10
    let all = vec![aborted(1, 0, 6, 4), aborted(1, 8, 10, 11)];
    assert_eq!(log.aborted_transactions(0, 100).unwrap(), all);
    assert_eq!(log.aborted_transactions(7, 100).unwrap(), all[1..]);
    assert_eq!(log.aborted_transactions(0, 3).unwrap(), all[..1]);
    assert_eq!(log.aborted_transactions(11, 100).unwrap(), vec![]);
    check_against_model(&log);
    let producers = log.producers();
    assert_eq!(producers.len(), 2);
    assert_eq!((producers[0].producer_id, producers[0].last_sequence, producers[0].coordinator_epoch), (1, 5, 4));
    assert_eq!((producers[0].last_timestamp, producers[0].current_txn_start_offset), (70, None));
    assert_eq!(producers[1].last_sequence, 0);
    // The index file holds Kafka's 34-byte entries.
    assert_eq!(std::fs::metadata(dir.path().join(format!("{:020}.txnindex", 0))).unwrap().len(), 2 * 34);
    // Reads return the marker batches like any other.
    let batches = log_batches(&log);
    assert_eq!(batches.iter().filter(|(h, _)| h.is_control()).count(), 3);
    assert_eq!(batches.iter().filter_map(|(_, k)| *k).collect::<Vec<_>>(), vec![false, true, false]);
}

#[test]
fn the_leader_enforces_kafkas_transaction_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    // Clients never write control batches, and transactional batches need a producer id.
    let control = crate::control::build_marker_batch(&marker(1, 0, true, 0), 0, 0, 0);
    assert!(matches!(put(&mut log, control), Err(StorageError::InvalidRecord(_))));
    assert!(matches!(put(&mut log, with_attributes(plain(1), 0x10)), Err(StorageError::InvalidRecord(_))));
    assert!(matches!(log.append_marker(&marker(-1, 0, true, 0), 0, 0), Err(StorageError::InvalidRecord(_))));
    assert_eq!(log.log_end_offset(), 0);
    // A non-transactional batch while a transaction is ongoing.
    put(&mut log, txn(1, 0, 0, 2)).unwrap();
    assert!(matches!(put(&mut log, idem(1, 0, 2, 1)), Err(StorageError::InvalidTxnState { producer_id: 1, .. })));
    // ... also within one append.
    let mut two = txn(5, 0, 0, 1);
    two.extend(idem(5, 0, 1, 1));
    assert!(matches!(log.append(&two, 0, 0, None), Err(StorageError::InvalidTxnState { producer_id: 5, .. })));
    let mut two = txn(5, 0, 0, 1);
    two.extend(txn(5, 0, 1, 1));
    assert_eq!(log.append(&two, 0, 0, None).unwrap().first_offset, 2);
    assert_eq!(log.first_unstable_offset(), Some(0));
    // A retried transactional batch is a duplicate, as for idempotence.
    assert!(put(&mut log, txn(1, 0, 0, 2)).unwrap().duplicate);
    // Markers: an older producer epoch, then an older coordinator epoch, are fenced.
    log.append_marker(&marker(1, 0, true, 3), 0, 0).unwrap();
    assert!(matches!(log.append_marker(&marker(1, -1, true, 3), 0, 0), Err(StorageError::InvalidProducerEpoch { .. })));
    assert!(matches!(
        log.append_marker(&marker(1, 0, true, 2), 0, 0),
        Err(StorageError::TransactionCoordinatorFenced { producer_id: 1, coordinator_epoch: 2, current_coordinator_epoch: 3 })
    ));
    // A retried marker, and one for a producer never seen, are written and change nothing.
    let leo = log.log_end_offset();
    log.append_marker(&marker(1, 0, true, 3), 0, 0).unwrap();
    log.append_marker(&marker(77, 0, false, 0), 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), leo + 2);
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), vec![]);
    // After its commit, the producer writes non-transactional batches again, continuing its sequence.
    put(&mut log, idem(1, 0, 2, 1)).unwrap();
    // Fenced data epochs.
    assert!(matches!(put(&mut log, txn(5, -1, 2, 1)), Err(StorageError::InvalidProducerEpoch { .. })));
    check_against_model(&log);
}

#[test]
fn a_marker_with_a_bumped_epoch_restarts_the_sequence() {
    // KIP-890 (transactions v2): the coordinator bumps the epoch at every EndTxn and writes the marker
    // with the new epoch; the producer's next transaction starts at sequence 0 in that epoch.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    put(&mut log, txn(9, 0, 0, 3)).unwrap();
    log.append_marker(&marker(9, 1, true, 0), 0, 0).unwrap();
    let p = log.producers()[0];
    assert_eq!((p.producer_epoch, p.last_sequence, p.current_txn_start_offset), (1, -1, None));
    assert!(matches!(put(&mut log, txn(9, 1, 3, 1)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
    assert!(matches!(put(&mut log, txn(9, 0, 3, 1)), Err(StorageError::InvalidProducerEpoch { .. })));
    put(&mut log, txn(9, 1, 0, 1)).unwrap();
    // Without a bump (transactions v1) the sequence goes on.
    log.append_marker(&marker(9, 1, false, 0), 0, 0).unwrap();
    put(&mut log, txn(9, 1, 1, 1)).unwrap();
    // The same holds after a restart (snapshot) and after a replay of the whole log.
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert!(matches!(put(&mut log, txn(9, 1, 5, 1)), Err(StorageError::OutOfOrderSequence { expected: 2, .. })));
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state")).unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(log.producers()[0].last_sequence, 1);
    put(&mut log, txn(9, 1, 2, 1)).unwrap();
    check_against_model(&log);
}

/// Two producers, several segments: transactions spanning segments, aborts and commits, one left open.
fn fixture(dir: &Path, segment_bytes: u64) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config(segment_bytes)).unwrap();
    let mut seq = [0i32; 3];
    for round in 0..12 {
        let pid = 1 + (round % 2) as i64;
        let s = &mut seq[pid as usize];
        put(&mut log, txn(pid, 0, *s, 2)).unwrap();
        *s += 2;
        put(&mut log, plain(1)).unwrap();
        put(&mut log, txn(pid, 0, *s, 1)).unwrap();
        *s += 1;
        if round % 3 != 2 {
            log.append_marker(&marker(pid, 0, round % 3 == 1, 0), 0, 0).unwrap();
        }
    }
    put(&mut log, txn(1, 0, seq[1], 1)).unwrap();
    log
}

#[test]
fn state_survives_restarts_crashes_truncation_and_replication() {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture(dir.path(), 300);
    assert!(log.segment_info().len() > 4);
    let before = log.aborted_transactions(0, i64::MAX).unwrap();
    assert!(before.len() >= 4);
    check_against_model(&log);
    let fuo = log.first_unstable_offset();
    // Clean restart.
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!((log.first_unstable_offset(), log.aborted_transactions(0, i64::MAX).unwrap()), (fuo, before.clone()));
    // Crash.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!((log.first_unstable_offset(), log.aborted_transactions(0, i64::MAX).unwrap()), (fuo, before.clone()));
    // A follower gets the same state from the leader's bytes.
    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = PartitionLog::open(follower_dir.path(), config(300)).unwrap();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 200, i64::MAX).unwrap().data;
        follower.append_replicated(&chunk, 0).unwrap();
        offset = follower.log_end_offset();
    }
    assert_eq!((follower.first_unstable_offset(), follower.aborted_transactions(0, i64::MAX).unwrap()), (fuo, before.clone()));
    assert_eq!(follower.producers(), log.producers());
    // Truncation at every offset, from the end down: the state is the recovered prefix's.
    for cut in (0..log.log_end_offset()).rev() {
        log.truncate_to(cut).unwrap();
        check_against_model(&log);
        let (_, all, _) = model(&log_batches(&log), 0);
        assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), all);
        if cut % 7 == 0 {
            drop(log);
            log = PartitionLog::open(dir.path(), config(300)).unwrap();
            check_against_model(&log);
        }
    }
    // A follower truncated below a marker and fed again regains it.
    let leo = follower.log_end_offset();
    let last_abort = before.last().unwrap().last_offset;
    follower.truncate_to(last_abort).unwrap();
    check_against_model(&follower);
    assert!(follower.aborted_transactions(0, i64::MAX).unwrap().len() < before.len());
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = fixture(leader_dir.path(), 300);
    while follower.log_end_offset() < leo {
        let chunk = leader.read(follower.log_end_offset(), 100, i64::MAX).unwrap().data;
        follower.append_replicated(&chunk, 0).unwrap();
    }
    assert_eq!(follower.aborted_transactions(0, i64::MAX).unwrap(), before);
    check_against_model(&follower);
    // reset_empty_at forgets everything.
    follower.reset_empty_at(1000).unwrap();
    assert_eq!((follower.first_unstable_offset(), follower.aborted_transactions(0, i64::MAX).unwrap()), (None, vec![]));
    assert!(follower.producers().is_empty());
}

#[test]
fn retention_and_delete_records_drop_old_entries_and_clamp_the_first_unstable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = fixture(dir.path(), 300);
    let all = log.aborted_transactions(0, i64::MAX).unwrap();
    let fuo = log.first_unstable_offset().unwrap();
    // Retention-style removal of the first two segments.
    let segments = log.segment_info();
    let cut = segments[2].0;
    log.advance_log_start_offset(cut).unwrap();
    assert_eq!(log.segment_info()[0].0, cut);
    assert!(!dir.path().join(format!("{:020}.txnindex", 0)).exists(), "the index goes with its segment");
    let remaining: Vec<_> = all.iter().copied().filter(|a| a.last_offset >= cut).collect();
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), remaining);
    assert_eq!(log.aborted_transactions(cut, i64::MAX).unwrap(), remaining);
    assert_eq!(log.first_unstable_offset(), Some(fuo.max(cut)));
    // DeleteRecords past the open transaction's start: the first unstable offset is the log start.
    let past = fuo.max(cut) + 1;
    log.advance_log_start_offset(past).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(past));
    drop(log);
    let log = PartitionLog::open(dir.path(), config(300)).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(past));
}

#[test]
fn producers_expire_unless_their_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    put(&mut log, idem(1, 0, 0, 1)).unwrap(); // timestamp 1000
    put(&mut log, txn(2, 0, 0, 1)).unwrap(); // open
    put(&mut log, txn(3, 0, 0, 1)).unwrap();
    log.append_marker(&marker(3, 0, true, 0), 0, 5000).unwrap(); // last timestamp 5000
    assert_eq!(log.expire_producers(5999, 5000), 0);
    assert_eq!(log.expire_producers(6000, 5000), 1, "Kafka expires at exactly producer.id.expiration.ms");
    assert_eq!(log.producers().iter().map(|p| p.producer_id).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(log.expire_producers(100_000, 5000), 1);
    assert_eq!(log.producers().iter().map(|p| p.producer_id).collect::<Vec<_>>(), vec![2]);
    // An expired producer starts over.
    put(&mut log, idem(1, 0, 0, 1)).unwrap();
}

/// Copies every regular file of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn crash_recovery_rebuilds_the_transaction_state_of_the_recovered_prefix() {
    let original = tempfile::tempdir().unwrap();
    let log = fixture(original.path(), 600);
    let segments = log.segment_info();
    let (active_base, _, active_size) = *segments.last().unwrap();
    assert!(active_size > 0 && segments.len() >= 3);
    let reference = log_batches(&log);
    drop(log); // crash: no clean-shutdown marker
    let active = format!("{active_base:020}");
    // An older segment whose index holds entries.
    let old = segments[..segments.len() - 1]
        .iter()
        .map(|s| format!("{:020}", s.0))
        .find(|name| std::fs::metadata(original.path().join(format!("{name}.txnindex"))).unwrap().len() > 0)
        .unwrap();
    // Damage done on top of the cut: 0 none, 1 active txnindex deleted, 2 active txnindex garbage,
    // 3 an old segment's txnindex deleted, 4 an old one's corrupted, 5 snapshot deleted, 6 snapshot
    // corrupted, 7 old txnindex cut in the middle of an entry.
    for cut in (0..=active_size).step_by(7).chain([active_size]) {
        for damage in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            let p = |name: String| dir.path().join(name);
            std::fs::OpenOptions::new().write(true).open(p(format!("{active}.log"))).unwrap().set_len(cut).unwrap();
            match damage {
                1 => std::fs::remove_file(p(format!("{active}.txnindex"))).unwrap(),
                2 => std::fs::write(p(format!("{active}.txnindex")), [0x5a; 50]).unwrap(),
                3 => std::fs::remove_file(p(format!("{old}.txnindex"))).unwrap(),
                4 => {
                    let mut b = std::fs::read(p(format!("{old}.txnindex"))).unwrap();
                    if let Some(x) = b.get_mut(20) {
                        *x ^= 0xff;
                    } else {
                        b = vec![1; 34];
                    }
                    std::fs::write(p(format!("{old}.txnindex")), b).unwrap();
                }
                5 => std::fs::remove_file(p("producer-state".into())).unwrap(),
                6 => {
                    let mut b = std::fs::read(p("producer-state".into())).unwrap();
                    b[9] ^= 1;
                    std::fs::write(p("producer-state".into()), b).unwrap();
                }
                7 => {
                    let mut b = std::fs::read(p(format!("{old}.txnindex"))).unwrap();
                    b.extend_from_slice(&[0; 17]);
                    std::fs::write(p(format!("{old}.txnindex")), b).unwrap();
                }
                _ => {}
            }
            let log = PartitionLog::open(dir.path(), config(600)).unwrap();
            let recovered = log_batches(&log);
            assert_eq!(recovered[..], reference[..recovered.len()], "cut {cut}: a prefix");
            let (fuo, all, _) = model(&recovered, 0);
            assert_eq!(log.first_unstable_offset(), fuo, "cut {cut} damage {damage}");
            assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), all, "cut {cut} damage {damage}");
            // And the repaired files are trusted by the next clean open.
            log.close().unwrap();
            let log = PartitionLog::open(dir.path(), config(600)).unwrap();
            assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), all, "cut {cut} damage {damage}, reopened");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A transactional batch from producer 1..=3.
    Txn { pid: i64, records: usize },
    /// A non-transactional batch without a producer id.
    Plain { records: usize },
    /// An idempotent non-transactional batch: refused while the producer's transaction is open.
    Idempotent { pid: i64 },
    Marker { pid: i64, commit: bool },
    Truncate { sel: u16 },
    Roll,
    Reopen { clean: bool },
    Query { from: u16, upper: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1i64..4, 1usize..4).prop_map(|(pid, records)| Op::Txn { pid, records }),
        2 => (1usize..3).prop_map(|records| Op::Plain { records }),
        1 => (1i64..4).prop_map(|pid| Op::Idempotent { pid }),
        4 => (1i64..4, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        1 => any::<u16>().prop_map(|sel| Op::Truncate { sel }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(from, upper)| Op::Query { from, upper }),
    ]
}

/// Next sequence of `pid`: after the last data batch it wrote that is still in the log.
fn next_sequence(batches: &[(BatchHeader, Option<bool>)], pid: i64) -> i32 {
    batches.iter().rev().find(|(h, _)| h.producer_id == pid && !h.is_control()).map_or(0, |(h, _)| h.last_sequence() + 1)
}

fn run(ops: Vec<Op>, segment_bytes: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(segment_bytes);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    // The model's batches: what was appended, minus what truncation removed.
    let mut batches: Vec<(BatchHeader, Option<bool>)> = Vec::new();
    for op in ops {
        match op {
            Op::Txn { pid, records } => {
                let info = put(&mut log, txn(pid, 0, next_sequence(&batches, pid), records)).unwrap();
                prop_assert!(!info.duplicate);
            }
            Op::Plain { records } => {
                put(&mut log, plain(records)).unwrap();
            }
            Op::Idempotent { pid } => {
                let open = model(&batches, 0).2.contains_key(&pid);
                let r = put(&mut log, idem(pid, 0, next_sequence(&batches, pid), 1));
                if open {
                    prop_assert!(matches!(r, Err(StorageError::InvalidTxnState { .. })), "{:?}", r);
                } else {
                    prop_assert!(r.is_ok(), "{:?}", r);
                }
            }
            Op::Marker { pid, commit } => {
                log.append_marker(&marker(pid, 0, commit, 0), 0, 0).unwrap();
            }
            Op::Truncate { sel } => {
                let leo = log.log_end_offset();
                let offset = i64::from(sel) % (leo + 1);
                log.truncate_to(offset).unwrap();
                batches.retain(|(h, _)| h.last_offset() < offset);
            }
            Op::Roll => log.force_roll(),
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
            }
            Op::Query { from, upper } => {
                let leo = log.log_end_offset() + 1;
                let (from, upper) = (i64::from(from) % leo, i64::from(upper) % (leo + 1));
                let (_, all, _) = model(&batches, 0);
                let want: Vec<_> = all.into_iter().filter(|a| a.last_offset >= from && a.first_offset < upper).collect();
                prop_assert_eq!(log.aborted_transactions(from, upper).unwrap(), want, "from {} upper {}", from, upper);
            }
        }
        if !matches!(op, Op::Truncate { .. } | Op::Roll | Op::Reopen { .. } | Op::Query { .. }) {
            batches = log_batches(&log);
        }
        prop_assert_eq!(log_batches(&log), batches.clone());
        let (fuo, all, ongoing) = model(&batches, 0);
        prop_assert_eq!(log.first_unstable_offset(), fuo);
        prop_assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), all);
        let listed: BTreeMap<i64, i64> =
            log.producers().iter().filter_map(|p| p.current_txn_start_offset.map(|o| (p.producer_id, o))).collect();
        prop_assert_eq!(listed, ongoing);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn transactions_match_the_model(ops in proptest::collection::vec(op(), 1..70), segment_bytes in prop_oneof![Just(250u64), Just(700), Just(1 << 20)]) {
        run(ops, segment_bytes)?;
    }
}

