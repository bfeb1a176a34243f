//! Compaction and transactions: aborted records go, committed ones are compacted by key, undecided
//! ones are out of reach, markers stay while their transaction has data and go one delete retention
//! after that. The property test checks that what a read_committed consumer sees (Kafka's consumer
//! algorithm over the aborted list) and the transaction state after a replay survive any compaction.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use crate::testutil::{build_keyed_batch, decode_all, encode_records, keyed_batch_from_payload, rec, Rec};
use crate::{LogConfig, PartitionLog, TxnMarker};

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 50, segment_ms: i64::MAX / 4, ..LogConfig::default() }
}

fn put(log: &mut PartitionLog, ts: i64, records: &[Rec]) -> i64 {
    let mut b = build_keyed_batch(ts, records);
    log.append(&mut b, 0, ts, None).unwrap().first_offset
}

/// A transactional batch of `pid` (epoch 0) at sequence `seq`.
fn put_txn(log: &mut PartitionLog, pid: i64, seq: i32, ts: i64, records: &[Rec]) -> i64 {
    let mut b = keyed_batch_from_payload(ts, records.len(), &encode_records(records), 0, (pid, 0, seq));
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&mut b, 0, ts, None).unwrap().first_offset
}

fn end(log: &mut PartitionLog, pid: i64, commit: bool, ts: i64) -> i64 {
    log.append_marker(&TxnMarker { producer_id: pid, producer_epoch: 0, commit, coordinator_epoch: 0 }, 0, ts).unwrap().first_offset
}

/// (offset, key, value) of every data record, and the offsets of the control batches (with their
/// record count).
type View = (Vec<(i64, String, Option<String>)>, Vec<(i64, i32)>);

fn contents(log: &PartitionLog) -> View {
    let data = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data;
    let (mut records, mut markers) = (Vec::new(), Vec::new());
    if data.is_empty() {
        return (records, markers);
    }
    for h in crate::validate_batches(&data, u32::MAX).unwrap() {
        if h.is_control() {
            markers.push((h.base_offset, h.records_count));
            continue;
        }
        for (o, r) in decode_all(&data[h.position..h.end_position()]).0 {
            let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
            records.push((o, s(r.key.unwrap()), r.value.map(s)));
        }
    }
    (records, markers)
}

fn kv(o: i64, k: &str, v: &str) -> (i64, String, Option<String>) {
    (o, k.to_string(), Some(v.to_string()))
}

#[test]
fn aborted_records_go_committed_ones_are_compacted_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put_txn(&mut log, 1, 0, 100, &[rec(Some("a"), Some("1")), rec(Some("b"), Some("1"))]); // 0, 1
    put_txn(&mut log, 2, 0, 100, &[rec(Some("a"), Some("2")), rec(Some("c"), Some("2"))]); // 2, 3
    end(&mut log, 2, false, 100); // 4
    end(&mut log, 1, true, 100); // 5
    put(&mut log, 100, &[rec(Some("b"), Some("3"))]); // 6
    put_txn(&mut log, 2, 2, 100, &[rec(Some("z"), Some("9"))]); // 7: pid 2's last data batch
    end(&mut log, 2, true, 100); // 8
    log.force_roll();
    put(&mut log, 100, &[rec(Some("x"), Some("0"))]); // 9
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap().len(), 1);
    let s = log.compact(1_000, 10_000, i64::MAX).unwrap();
    assert_eq!((s.aborted_records_removed, s.records_removed), (2, 3));
    // a=2 was aborted, so it neither survives nor supersedes a=1; b=1 is superseded by b=3.
    let (records, markers) = contents(&log);
    assert_eq!(records, vec![kv(0, "a", "1"), kv(6, "b", "3"), kv(7, "z", "9"), kv(9, "x", "0")]);
    // Both markers of the first transactions stay: their data were still there during this pass.
    assert_eq!(markers, vec![(4, 1), (5, 1), (8, 1)]);
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap().len(), 1);
    // The result survives a replay of the whole log.
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state")).unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(contents(&log).0, records);
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn markers_stay_while_their_data_remain_and_go_one_retention_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put_txn(&mut log, 1, 0, 100, &[rec(Some("k"), Some("1"))]); // 0
    end(&mut log, 1, false, 100); // 1
    put_txn(&mut log, 1, 1, 100, &[rec(Some("k"), Some("2"))]); // 2
    end(&mut log, 1, true, 100); // 3
    put(&mut log, 100, &[rec(Some("k"), Some("3"))]); // 4
    put_txn(&mut log, 1, 2, 100, &[rec(Some("z"), Some("1"))]); // 5
    end(&mut log, 1, true, 100); // 6
    put(&mut log, 100, &[rec(Some("y"), Some("1"))]); // 7: the segment's last batch
    log.force_roll();
    put(&mut log, 100, &[rec(Some("w"), Some("1"))]); // 8
    // Pass 1: the data go (aborted; superseded), the markers stay since their data were seen.
    log.compact(1_000, 100, i64::MAX).unwrap();
    assert_eq!(contents(&log).1, vec![(1, 1), (3, 1), (6, 1)]);
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap().len(), 1);
    // Pass 2: nothing of their transactions is left: stamped with a delete horizon (now + retention),
    // and the aborted entry goes (no data left to drop).
    assert!(!log.compaction_due(1_000, i64::MAX));
    let s = log.compact(1_000, 100, i64::MAX).unwrap();
    assert_eq!((s.segments_cleaned, s.markers_removed), (1, 0));
    assert_eq!(contents(&log).1, vec![(1, 1), (3, 1), (6, 1)]);
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), vec![]);
    let data = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let horizons: Vec<_> = crate::validate_batches(&data, u32::MAX)
        .unwrap()
        .iter()
        .filter(|h| h.is_control())
        .map(|h| (h.base_offset, h.delete_horizon_ms()))
        .collect();
    assert_eq!(horizons, [(1, Some(1_100)), (3, Some(1_100)), (6, None)], "the producer's last marker still has its data");
    // Not before the horizon...
    assert!(!log.compaction_due(1_099, i64::MAX));
    assert_eq!(log.compact(1_099, 100, i64::MAX).unwrap().markers_removed, 0);
    // ... then they go; the one of the producer's last transaction stays.
    assert!(log.compaction_due(1_100, i64::MAX));
    let s = log.compact(1_100, 100, i64::MAX).unwrap();
    assert_eq!(s.markers_removed, 2);
    let (records, markers) = contents(&log);
    assert_eq!(markers, vec![(6, 1)]);
    assert_eq!(records, vec![kv(4, "k", "3"), kv(5, "z", "1"), kv(7, "y", "1"), kv(8, "w", "1")]);
    // Stable from here on, and the same after a full replay.
    log.compact(5_000, 100, i64::MAX).unwrap();
    assert_eq!(contents(&log), (records.clone(), markers.clone()));
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state")).unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!((log.first_unstable_offset(), log.aborted_transactions(0, i64::MAX).unwrap()), (None, vec![]));
    // The producer's sequence survived (its last data batch is kept): a retry is a duplicate.
    let mut retry = keyed_batch_from_payload(100, 1, &encode_records(&[rec(Some("z"), Some("1"))]), 0, (1, 0, 2));
    retry[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    let crc = crc32c::crc32c(&retry[21..]);
    retry[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(log.append(&mut retry, 0, 0, None).unwrap().duplicate);
}

#[test]
fn undecided_transactions_are_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    put(&mut log, 100, &[rec(Some("a"), Some("0"))]); // 0
    put(&mut log, 100, &[rec(Some("a"), Some("1"))]); // 1
    log.force_roll();
    put_txn(&mut log, 1, 0, 100, &[rec(Some("b"), Some("1"))]); // 2: open
    put(&mut log, 100, &[rec(Some("a"), Some("2"))]); // 3
    put(&mut log, 100, &[rec(Some("b"), Some("2"))]); // 4
    log.force_roll();
    put(&mut log, 100, &[rec(Some("c"), Some("1"))]); // 5
    assert_eq!(log.first_unstable_offset(), Some(2));
    // Only the first segment is below the first unstable offset, and records at or past it supersede
    // nothing: a=1 stays although a=2 follows.
    let s = log.compact(1_000, 100, i64::MAX).unwrap();
    assert_eq!(s.segments_planned, 1);
    assert_eq!(contents(&log).0, vec![kv(1, "a", "1"), kv(2, "b", "1"), kv(3, "a", "2"), kv(4, "b", "2"), kv(5, "c", "1")]);
    // The transaction aborts: everything is cleanable and its record goes.
    end(&mut log, 1, false, 100); // 6
    log.force_roll();
    put(&mut log, 100, &[rec(Some("d"), Some("1"))]); // 7
    log.compact(1_000, 100, i64::MAX).unwrap();
    assert_eq!(contents(&log).0, vec![kv(3, "a", "2"), kv(4, "b", "2"), kv(5, "c", "1"), kv(7, "d", "1")]);
    // The aborted batch was pid 1's last data batch: kept empty, so its marker and entry stay.
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap().len(), 1);
}

#[derive(Clone, Debug)]
enum Op {
    Txn { pid: i64, key: u8, value: u8 },
    Plain { key: u8, value: u8 },
    Marker { pid: i64, commit: bool },
    Roll,
    Compact { advance: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1i64..4, 0u8..5, any::<u8>()).prop_map(|(pid, key, value)| Op::Txn { pid, key, value }),
        3 => (0u8..5, any::<u8>()).prop_map(|(key, value)| Op::Plain { key, value }),
        4 => (1i64..4, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        2 => Just(Op::Roll),
        2 => (0i64..150).prop_map(|advance| Op::Compact { advance }),
    ]
}

/// The key → value table a read_committed consumer builds from the log up to the last stable offset,
/// with Kafka's consumer algorithm: aborted transactions (from the log) become active at their first
/// offset; a producer's transactional batches are dropped while one of its aborts is active; its
/// ABORT marker ends that.
fn read_committed(log: &PartitionLog) -> BTreeMap<String, String> {
    let lso = log.first_unstable_offset().unwrap_or(i64::MAX).min(log.log_end_offset());
    let mut aborted = log.aborted_transactions(log.log_start_offset(), lso).unwrap();
    aborted.sort_by_key(|a| a.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborting: std::collections::HashSet<i64> = Default::default();
    let mut table = BTreeMap::new();
    let data = log.read(log.log_start_offset(), usize::MAX, lso).unwrap().data;
    if data.is_empty() {
        return table;
    }
    for h in crate::validate_batches(&data, u32::MAX).unwrap() {
        while aborted.peek().is_some_and(|a| a.first_offset <= h.last_offset()) {
            if let Some(a) = aborted.next() {
                aborting.insert(a.producer_id);
            }
        }
        let batch = &data[h.position..h.end_position()];
        if h.is_control() {
            if h.records_count > 0 && decode_all(batch).0[0].1.key.as_deref().is_some_and(|k| k[3] == 0) {
                aborting.remove(&h.producer_id);
            }
            continue;
        }
        if h.is_transactional() && aborting.contains(&h.producer_id) {
            continue;
        }
        for (_, r) in decode_all(batch).0 {
            let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
            table.insert(s(r.key.unwrap()), r.value.map(s).unwrap_or_default());
        }
    }
    table
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let mut now = 1_000i64;
    let mut seqs: HashMap<i64, i32> = HashMap::new();
    // The expected table: what read_committed shows before any compaction, maintained from the ops.
    for op in ops {
        match op {
            Op::Txn { pid, key, value } => {
                let seq = seqs.entry(pid).or_insert(0);
                put_txn(&mut log, pid, *seq, now, &[rec(Some(&format!("k{key}")), Some(&format!("v{value}")))]);
                *seq += 1;
            }
            Op::Plain { key, value } => {
                put(&mut log, now, &[rec(Some(&format!("k{key}")), Some(&format!("v{value}")))]);
            }
            Op::Marker { pid, commit } => {
                end(&mut log, pid, commit, now);
            }
            Op::Roll => log.force_roll(),
            Op::Compact { advance } => {
                now += advance;
                let before = (read_committed(&log), log.first_unstable_offset(), log.log_end_offset(), log.producers());
                log.compact(now, 100, i64::MAX).unwrap();
                let after = (read_committed(&log), log.first_unstable_offset(), log.log_end_offset(), log.producers());
                prop_assert_eq!(&after, &before);
                // A replay of the compacted log agrees with the state kept in memory.
                drop(log);
                std::fs::remove_file(dir.path().join("producer-state")).unwrap();
                log = PartitionLog::open(dir.path(), config()).unwrap();
                let replayed = (read_committed(&log), log.first_unstable_offset(), log.log_end_offset());
                prop_assert_eq!(replayed, (after.0, after.1, after.2));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_what_read_committed_consumers_see(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
