//! Scenario tests of the transaction coordinator, one Kafka behaviour each, and the record format.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError as E;

use super::record::tests::value;
use super::*;

const ID: &str = "tx";
const P: i32 = 0;
const EPOCH: i32 = 5;
const TIMEOUT: i32 = 60_000;

/// Producer ids 1000, 1001, ... in order.
struct Ids(i64);

impl Ids {
    fn alloc(&mut self) -> impl FnMut() -> Result<i64, E> + '_ {
        move || {
            self.0 += 1;
            Ok(self.0 - 1)
        }
    }
}

struct T {
    c: TransactionCoordinator,
    ids: Ids,
    now: i64,
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

impl T {
    fn new(tv: TransactionVersion) -> T {
        let mut c = TransactionCoordinator::new(TxnConfig { transaction_version: tv, ..TxnConfig::default() });
        assert!(c.load_partition(P, EPOCH, Vec::new(), 0).is_empty());
        T { c, ids: Ids(1000), now: 1_000 }
    }

    fn snap(&self) -> TxnSnapshot {
        self.c.snapshot(ID).expect("known id")
    }

    /// Report `append` as replicated; returns the outcome.
    fn ok(&mut self, append: &TxnAppend) -> AppendOutcome {
        self.c.append_completed(append, Ok(()), self.now)
    }

    fn init_with(&mut self, expected: Option<(i64, i16)>) -> TxnReply<InitProducerIdResponse> {
        let mut alloc = self.ids.alloc();
        self.c.init_producer_id(ID, TIMEOUT, expected, P, self.now, &mut alloc)
    }

    /// InitProducerId, persisted: the response.
    fn init(&mut self) -> InitProducerIdResponse {
        match self.init_with(None) {
            TxnReply::AfterAppend { append, then } => {
                let out = self.ok(&append);
                assert!(out.effects.is_empty());
                out.reply(then)
            }
            TxnReply::Now(r) => r,
        }
    }

    fn tick(&mut self, now: i64) -> Vec<TxnEffect> {
        let mut alloc = self.ids.alloc();
        self.c.tick(now, &mut alloc)
    }

    fn add(&mut self, pid: i64, epoch: i16, parts: &[TopicPartition]) -> TxnReply<ErrorCode> {
        self.c.add_partitions(ID, pid, epoch, parts.iter().cloned(), TransactionVersion::Tv0, self.now)
    }

    /// AddPartitionsToTxn, persisted.
    fn add_ok(&mut self, pid: i64, epoch: i16, parts: &[TopicPartition]) {
        match self.add(pid, epoch, parts) {
            TxnReply::AfterAppend { append, then } => {
                let out = self.ok(&append);
                assert_eq!(out.reply(then), None);
            }
            TxnReply::Now(e) => assert_eq!(e, None),
        }
    }

    fn end(&mut self, pid: i64, epoch: i16, commit: bool, tv: TransactionVersion) -> TxnReply<EndTxnResponse> {
        let mut alloc = self.ids.alloc();
        self.c.end_txn(ID, pid, epoch, commit, tv, self.now, &mut alloc)
    }

    /// EndTxn, its Prepare* persisted: the response and the follow-up effects.
    fn end_persisted(&mut self, pid: i64, epoch: i16, commit: bool, tv: TransactionVersion) -> (EndTxnResponse, Vec<TxnEffect>) {
        match self.end(pid, epoch, commit, tv) {
            TxnReply::AfterAppend { append, then } => {
                let out = self.ok(&append);
                (out.reply(then), out.effects)
            }
            TxnReply::Now(r) => (r, Vec::new()),
        }
    }

    /// Carry out follow-up effects to the end: markers written, Complete* appended.
    fn finish(&mut self, mut fx: Vec<TxnEffect>) {
        while let Some(e) = fx.pop() {
            match e {
                TxnEffect::WriteMarkers { transactional_id, producer_id, producer_epoch, coordinator_epoch, .. } => {
                    fx.extend(self.c.markers_written(&transactional_id, producer_id, producer_epoch, coordinator_epoch, self.now));
                }
                TxnEffect::Append(a) => {
                    let out = self.ok(&a);
                    assert_eq!(out.result, Ok(()));
                    fx.extend(out.effects);
                }
            }
        }
    }
}

fn markers(fx: &[TxnEffect]) -> Vec<(i64, i16, i32, bool, Vec<TopicPartition>)> {
    fx.iter()
        .filter_map(|e| match e {
            TxnEffect::WriteMarkers { producer_id, producer_epoch, coordinator_epoch, commit, partitions, .. } => {
                Some((*producer_id, *producer_epoch, *coordinator_epoch, *commit, partitions.clone()))
            }
            TxnEffect::Append(_) => None,
        })
        .collect()
}

fn now_err<R: std::fmt::Debug>(r: TxnReply<R>) -> R {
    match r {
        TxnReply::Now(r) => r,
        TxnReply::AfterAppend { append, .. } => panic!("unexpected append {append:?}"),
    }
}

fn append_of<R: std::fmt::Debug>(r: TxnReply<R>) -> (TxnAppend, R) {
    match r {
        TxnReply::AfterAppend { append, then } => (append, then),
        TxnReply::Now(r) => panic!("answered at once: {r:?}"),
    }
}

// ---------------------------------------------------------------- records

#[test]
fn batches_round_trip() {
    let mut t = T::new(TransactionVersion::Tv2);
    let (append, _) = append_of(t.init_with(None));
    let tombstone = TxnAppend { value: None, ..append.clone() };
    let buf = encode_batch(&[append.clone(), tombstone], 5).unwrap();
    let records = decode_batch(buf.freeze()).unwrap();
    assert_eq!(records.len(), 2);
    let (k, v) = decode_record(&records[0].0, records[0].1.as_deref()).unwrap();
    assert_eq!((k, v), (append.key.clone(), append.value.clone()));
    assert_eq!(decode_record(&records[1].0, records[1].1.as_deref()).unwrap().1, None);
}

// ---------------------------------------------------------------- InitProducerId

#[test]
fn init_producer_id_validates_the_request() {
    let mut t = T::new(TransactionVersion::Tv2);
    let mut alloc = t.ids.alloc();
    let err = |r: TxnReply<InitProducerIdResponse>| now_err(r).error;
    assert_eq!(err(t.c.init_producer_id("", TIMEOUT, None, P, 0, &mut alloc)), Some(E::InvalidRequest));
    assert_eq!(err(t.c.init_producer_id(ID, 900_001, None, P, 0, &mut alloc)), Some(E::InvalidTransactionTimeout));
    assert_eq!(err(t.c.init_producer_id(ID, 0, None, P, 0, &mut alloc)), Some(E::InvalidTransactionTimeout));
    assert_eq!(err(t.c.init_producer_id(ID, TIMEOUT, None, 3, 0, &mut alloc)), Some(E::NotCoordinator));
    let mut failing = || Err(E::CoordinatorLoadInProgress);
    assert_eq!(err(t.c.init_producer_id(ID, TIMEOUT, None, P, 0, &mut failing)), Some(E::CoordinatorLoadInProgress));
}

#[test]
fn a_new_id_gets_a_new_producer_id_at_epoch_0_once_persisted() {
    let mut t = T::new(TransactionVersion::Tv2);
    let (append, then) = append_of(t.init_with(None));
    assert_eq!(then, InitProducerIdResponse { error: None, producer_id: 1000, producer_epoch: 0 });
    assert_eq!((append.partition, append.coordinator_epoch, append.value_version, append.timeout_ms), (P, EPOCH, 1, TIMEOUT));
    let v = append.value.clone().unwrap();
    assert_eq!((v.producer_id, v.producer_epoch, v.state, v.start_ms), (1000, 0, TxnState::Empty, -1));
    // Pending until replicated: not applied, and other requests wait.
    assert_eq!((t.snap().producer_epoch, t.snap().pending), (-1, Some(TxnState::Empty)));
    assert_eq!(now_err(t.init_with(None)).error, Some(E::ConcurrentTransactions));
    assert_eq!(now_err(t.add(1000, -1, &[tp("a", 0)])), Some(E::ConcurrentTransactions));
    // The producer and epoch are checked first, as Kafka.
    assert_eq!(now_err(t.add(1000, 0, &[tp("a", 0)])), Some(E::ProducerFenced));
    assert_eq!(t.ok(&append).result, Ok(()));
    let s = t.snap();
    assert_eq!((s.producer_id, s.producer_epoch, s.state, s.pending), (1000, 0, TxnState::Empty, None));
}

#[test]
fn init_again_bumps_the_epoch() {
    let mut t = T::new(TransactionVersion::Tv2);
    assert_eq!(t.init(), InitProducerIdResponse { error: None, producer_id: 1000, producer_epoch: 0 });
    assert_eq!(t.init(), InitProducerIdResponse { error: None, producer_id: 1000, producer_epoch: 1 });
    t.add_ok(1000, 1, &[tp("a", 0)]);
    let (r, fx) = t.end_persisted(1000, 1, true, TransactionVersion::Tv0);
    assert_eq!(r, EndTxnResponse::ok(-1, -1));
    t.finish(fx);
    assert_eq!(t.snap().state, TxnState::CompleteCommit);
    assert_eq!(t.init(), InitProducerIdResponse { error: None, producer_id: 1000, producer_epoch: 2 });
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    let mut v = t.snap_value();
    v.producer_epoch = i16::MAX - 1;
    t.reload(vec![(TxnLogKey::new(ID), Some(v))]);
    let r = t.init();
    assert_eq!(r, InitProducerIdResponse { error: None, producer_id: 1001, producer_epoch: 0 });
    let s = t.snap();
    assert_eq!((s.producer_id, s.previous_producer_id, s.last_producer_epoch), (1001, 1000, -1));
}

#[test]
fn kip_360_expected_producer_id_and_epoch() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.init(); // epoch 1
    // Another producer id, or a stale epoch: fenced.
    assert_eq!(now_err(t.init_with(Some((999, 1)))).error, Some(E::ProducerFenced));
    assert_eq!(now_err(t.init_with(Some((1000, 0)))).error, Some(E::ProducerFenced));
    // The current epoch: bumped, remembering the previous one.
    let (a, then) = append_of(t.init_with(Some((1000, 1))));
    assert_eq!((then.producer_id, then.producer_epoch), (1000, 2));
    t.ok(&a);
    assert_eq!(t.snap().last_producer_epoch, 1);
    // A retry with the previous epoch (the response was lost) gets the current one again, without a bump.
    let (a, then) = append_of(t.init_with(Some((1000, 1))));
    assert_eq!((then.producer_id, then.producer_epoch), (1000, 2));
    t.ok(&a);
    assert_eq!(t.snap().producer_epoch, 2);
    // Old clients get INVALID_PRODUCER_EPOCH for PRODUCER_FENCED.
    assert_eq!(legacy_error(TxnApi::InitProducerId, 3, Some(E::ProducerFenced)), Some(E::InvalidProducerEpoch));
    assert_eq!(legacy_error(TxnApi::InitProducerId, 4, Some(E::ProducerFenced)), Some(E::ProducerFenced));
    assert_eq!(legacy_error(TxnApi::EndTxn, 1, Some(E::ProducerFenced)), Some(E::InvalidProducerEpoch));
    assert_eq!(legacy_error(TxnApi::EndTxn, 1, Some(E::ConcurrentTransactions)), Some(E::ConcurrentTransactions));
}

#[test]
fn init_on_an_ongoing_transaction_fences_and_aborts_it() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0), tp("b", 1)]);
    let (append, then) = append_of(t.init_with(None));
    // The old producer is fenced at once, before the abort is persisted.
    assert_eq!(t.snap().producer_epoch, 1);
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::ProducerFenced));
    assert_eq!(append.value.as_ref().map(|v| (v.state, v.producer_epoch)), Some((TxnState::PrepareAbort, 1)));
    let out = t.ok(&append);
    assert_eq!(out.reply(then).error, Some(E::ConcurrentTransactions));
    assert_eq!(markers(&out.effects), vec![(1000, 1, EPOCH, false, vec![tp("a", 0), tp("b", 1)])]);
    // Still aborting: the client's retry waits.
    assert_eq!(now_err(t.init_with(None)).error, Some(E::ConcurrentTransactions));
    t.finish(out.effects);
    assert_eq!(t.snap().state, TxnState::CompleteAbort);
    assert_eq!(t.init(), InitProducerIdResponse { error: None, producer_id: 1000, producer_epoch: 2 });
}

#[test]
fn a_failed_fence_does_not_bump_twice() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let (append, then) = append_of(t.init_with(None));
    let out = t.c.append_completed(&append, Err(E::CoordinatorNotAvailable), t.now);
    assert_eq!(out.reply(then).error, Some(E::CoordinatorNotAvailable));
    let s = t.snap();
    assert_eq!((s.state, s.producer_epoch, s.pending), (TxnState::Ongoing, 1, None));
    let (append, _) = append_of(t.init_with(None));
    assert_eq!(append.value.map(|v| v.producer_epoch), Some(1));
}

#[test]
fn init_during_prepare_is_concurrent_transactions() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let (_, fx) = t.end_persisted(1000, 0, true, TransactionVersion::Tv0);
    assert_eq!(t.snap().state, TxnState::PrepareCommit);
    assert_eq!(now_err(t.init_with(None)).error, Some(E::ConcurrentTransactions));
    t.finish(fx);
    assert_eq!(t.init().producer_epoch, 1);
}

// ---------------------------------------------------------------- AddPartitionsToTxn

#[test]
fn add_partitions_checks_the_producer_and_the_state() {
    let mut t = T::new(TransactionVersion::Tv0);
    assert_eq!(now_err(t.add(1000, 0, &[tp("a", 0)])), Some(E::InvalidProducerIdMapping));
    t.init();
    assert_eq!(now_err(t.add(999, 0, &[tp("a", 0)])), Some(E::InvalidProducerIdMapping));
    assert_eq!(now_err(t.add(1000, 1, &[tp("a", 0)])), Some(E::ProducerFenced));
    assert_eq!(legacy_error(TxnApi::AddPartitionsToTxn, 1, Some(E::ProducerFenced)), Some(E::InvalidProducerEpoch));
    assert_eq!(now_err(t.c.add_partitions("", 1000, 0, [tp("a", 0)], TransactionVersion::Tv0, 0)), Some(E::InvalidRequest));
    t.now = 5_000;
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let s = t.snap();
    assert_eq!((s.state, s.start_ms, s.partitions.clone()), (TxnState::Ongoing, 5_000, vec![tp("a", 0)]));
    // Already in the transaction: answered at once.
    assert_eq!(t.add(1000, 0, &[tp("a", 0)]), TxnReply::Now(None));
    // More partitions: appended, the start time kept.
    t.now = 6_000;
    let (append, _) = append_of(t.add(1000, 0, &[tp("a", 0), tp("b", 0)]));
    assert_eq!(append.value.as_ref().map(|v| v.partitions.len()), Some(2));
    assert_eq!(now_err(t.add(1000, 0, &[tp("c", 0)])), Some(E::ConcurrentTransactions));
    t.ok(&append);
    assert_eq!((t.snap().start_ms, t.snap().partitions.len()), (5_000, 2));
    let (_, _fx) = t.end_persisted(1000, 0, true, TransactionVersion::Tv0);
    assert_eq!(now_err(t.add(1000, 0, &[tp("c", 0)])), Some(E::ConcurrentTransactions));
}

#[test]
fn a_failed_append_leaves_the_state_and_the_client_retries() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    let (append, then) = append_of(t.add(1000, 0, &[tp("a", 0)]));
    let out = t.c.append_completed(&append, Err(E::NotCoordinator), t.now);
    assert_eq!(out.reply(then), Some(E::NotCoordinator));
    let s = t.snap();
    assert_eq!((s.state, s.pending, s.partitions.len()), (TxnState::Empty, None, 0));
    t.add_ok(1000, 0, &[tp("a", 0)]);
    assert_eq!(t.snap().state, TxnState::Ongoing);
}

#[test]
fn verify_partitions_is_read_only() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let r = t.c.verify_partitions(ID, 1000, 0, [tp("a", 0), tp("b", 0)]);
    assert_eq!(r, vec![(tp("a", 0), None), (tp("b", 0), Some(E::TransactionAbortable))]);
    assert_eq!(t.c.verify_partitions(ID, 1000, 1, [tp("a", 0)]), vec![(tp("a", 0), Some(E::ProducerFenced))]);
    assert_eq!(t.c.verify_partitions(ID, 7, 0, [tp("a", 0)]), vec![(tp("a", 0), Some(E::InvalidProducerIdMapping))]);
    assert_eq!(t.c.verify_partitions("other", 1000, 0, [tp("a", 0)]), vec![(tp("a", 0), Some(E::InvalidProducerIdMapping))]);
    let _ = t.end_persisted(1000, 0, false, TransactionVersion::Tv0);
    assert_eq!(t.c.verify_partitions(ID, 1000, 0, [tp("a", 0)]), vec![(tp("a", 0), Some(E::ConcurrentTransactions))]);
}

// ---------------------------------------------------------------- EndTxn

#[test]
fn end_txn_v1_commit_writes_markers_then_completes() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0), tp("__consumer_offsets", 7)]);
    let (append, then) = append_of(t.end(1000, 0, true, TransactionVersion::Tv0));
    assert_eq!(append.value.as_ref().map(|v| v.state), Some(TxnState::PrepareCommit));
    assert_eq!(append.value_version, 0, "a TV0 cluster writes value version 0");
    let out = t.ok(&append);
    assert_eq!(out.reply(then), EndTxnResponse::ok(-1, -1));
    assert_eq!(markers(&out.effects), vec![(1000, 0, EPOCH, true, vec![tp("__consumer_offsets", 7), tp("a", 0)])]);
    // Markers in flight: the retry waits, a mismatch is refused.
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::ConcurrentTransactions));
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv0)).error, Some(E::ConcurrentTransactions));
    // A stale markers report is ignored.
    assert!(t.c.markers_written(ID, 1000, 0, EPOCH + 1, t.now).is_empty());
    assert!(t.c.markers_written(ID, 1000, 1, EPOCH, t.now).is_empty());
    t.finish(out.effects);
    let s = t.snap();
    assert_eq!((s.state, s.partitions.len(), s.pending), (TxnState::CompleteCommit, 0, None));
    // A retry of the commit is OK, an abort now is INVALID_TXN_STATE.
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)), EndTxnResponse::ok(-1, -1));
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv0)).error, Some(E::InvalidTxnState));
}

#[test]
fn end_txn_v1_rules() {
    let mut t = T::new(TransactionVersion::Tv0);
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::InvalidProducerIdMapping));
    t.init();
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::InvalidTxnState), "Empty");
    assert_eq!(now_err(t.end(1001, 0, true, TransactionVersion::Tv0)).error, Some(E::InvalidProducerIdMapping));
    assert_eq!(now_err(t.end(1000, 1, true, TransactionVersion::Tv0)).error, Some(E::ProducerFenced));
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let (_, fx) = t.end_persisted(1000, 0, false, TransactionVersion::Tv0);
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::ConcurrentTransactions));
    t.finish(fx);
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv0)), EndTxnResponse::ok(-1, -1));
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv0)).error, Some(E::InvalidTxnState));
}

#[test]
fn end_txn_v2_bumps_the_epoch_every_time() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let (r, fx) = t.end_persisted(1000, 0, true, TransactionVersion::Tv2);
    assert_eq!(r, EndTxnResponse::ok(1000, 1));
    // The markers carry the bumped epoch: late writes of the ended transaction are fenced.
    assert_eq!(markers(&fx), vec![(1000, 1, EPOCH, true, vec![tp("a", 0)])]);
    // A retry (the epoch below the current) while the markers are written waits.
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv2)).error, Some(E::ConcurrentTransactions));
    t.finish(fx);
    // A retry after completion answers the epoch to continue with; an abort retry is refused.
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv2)), EndTxnResponse::ok(1000, 1));
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv2)).error, Some(E::InvalidTxnState));
    // A commit at the current epoch of a completed transaction: nothing to commit.
    assert_eq!(now_err(t.end(1000, 1, true, TransactionVersion::Tv2)).error, Some(E::InvalidTxnState));
    // Older epochs are fenced.
    t.add_ok(1000, 1, &[tp("a", 0)]);
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv2)).error, Some(E::ProducerFenced));
    let (r, fx) = t.end_persisted(1000, 1, false, TransactionVersion::Tv2);
    assert_eq!(r, EndTxnResponse::ok(1000, 2));
    t.finish(fx);
    assert_eq!(t.snap().state, TxnState::CompleteAbort);
}

#[test]
fn end_txn_v2_aborts_without_partitions() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.now = 9_000;
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv2)).error, Some(E::InvalidTxnState));
    let (append, then) = append_of(t.end(1000, 0, false, TransactionVersion::Tv2));
    assert_eq!(append.value.as_ref().map(|v| (v.state, v.start_ms, v.producer_epoch)), Some((TxnState::PrepareAbort, 9_000, 1)));
    let out = t.ok(&append);
    assert_eq!(out.reply(then), EndTxnResponse::ok(1000, 1));
    // No partition to mark: the Complete* record is asked for at once.
    assert!(markers(&out.effects).is_empty());
    assert!(matches!(&out.effects[..], [TxnEffect::Append(a)] if a.value.as_ref().map(|v| v.state) == Some(TxnState::CompleteAbort)));
    t.finish(out.effects);
    assert_eq!((t.snap().state, t.snap().producer_epoch), (TxnState::CompleteAbort, 1));
    // Aborting again at the current epoch bumps again; the retry with the old epoch is OK.
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv2)), EndTxnResponse::ok(1000, 1));
    let (r, fx) = t.end_persisted(1000, 1, false, TransactionVersion::Tv2);
    assert_eq!(r, EndTxnResponse::ok(1000, 2));
    t.finish(fx);
}

#[test]
fn end_txn_v2_rotates_an_exhausted_producer_id() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let mut v = t.snap_value();
    v.producer_epoch = i16::MAX - 1;
    t.reload(vec![(TxnLogKey::new(ID), Some(v))]);
    let (r, fx) = t.end_persisted(1000, i16::MAX - 1, true, TransactionVersion::Tv2);
    // The client sees MAX-1 followed by the new producer id at epoch 0.
    assert_eq!(r, EndTxnResponse::ok(1001, 0));
    let s = t.snap();
    assert_eq!((s.producer_id, s.producer_epoch, s.next_producer_id), (1000, i16::MAX, 1001));
    t.finish(fx);
    let s = t.snap();
    assert_eq!((s.producer_id, s.producer_epoch, s.previous_producer_id, s.next_producer_id), (1001, 0, 1000, -1));
    // A retry with the old producer id and epoch is recognised.
    assert_eq!(now_err(t.end(1000, i16::MAX - 1, true, TransactionVersion::Tv2)), EndTxnResponse::ok(1001, 0));
    t.add_ok(1001, 0, &[tp("a", 0)]);
}

// ---------------------------------------------------------------- timers

#[test]
fn a_transaction_past_its_timeout_is_fenced_and_aborted() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let start = t.snap().start_ms;
    assert_eq!(t.c.next_deadline(), start + i64::from(TIMEOUT) + 1);
    assert!(t.tick(start + i64::from(TIMEOUT)).is_empty());
    let fx = t.tick(start + i64::from(TIMEOUT) + 1);
    let [TxnEffect::Append(append)] = &fx[..] else { panic!("{fx:?}") };
    // Fenced (epoch 1 in memory at once), then the TV2 abort bumps again.
    assert_eq!(append.value.as_ref().map(|v| (v.state, v.producer_epoch)), Some((TxnState::PrepareAbort, 2)));
    assert_eq!(now_err(t.end(1000, 0, true, TransactionVersion::Tv2)).error, Some(E::ProducerFenced));
    let out = t.ok(append);
    assert_eq!(markers(&out.effects), vec![(1000, 2, EPOCH, false, vec![tp("a", 0)])]);
    t.finish(out.effects);
    assert_eq!(t.snap().state, TxnState::CompleteAbort);
    // The producer finds out when it next asks.
    assert_eq!(now_err(t.end(1000, 0, false, TransactionVersion::Tv2)).error, Some(E::ProducerFenced));
    assert_eq!(t.init().producer_epoch, 3);
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut t = T::new(TransactionVersion::Tv2);
    t.init();
    let expiry = t.snap().last_update_ms + 604_800_000;
    assert!(t.tick(expiry - 1).is_empty());
    let fx = t.tick(expiry);
    let [TxnEffect::Append(append)] = &fx[..] else { panic!("{fx:?}") };
    assert_eq!((append.value.clone(), append.key_bytes(), append.value_bytes()), (None, TxnLogKey::new(ID).encode(), None));
    // A failed tombstone leaves the id; the next tick tries again.
    t.c.append_completed(append, Err(E::CoordinatorNotAvailable), expiry);
    assert!(t.c.snapshot(ID).is_some());
    let fx = t.tick(expiry);
    let [TxnEffect::Append(append)] = &fx[..] else { panic!("{fx:?}") };
    assert_eq!(t.c.append_completed(append, Ok(()), expiry).result, Ok(()));
    assert!(t.c.snapshot(ID).is_none());
    assert_eq!(t.c.describe_transaction(ID).error, Some(E::TransactionalIdNotFound));
}

#[test]
fn a_failed_complete_record_is_asked_for_again_by_tick() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let (_, fx) = t.end_persisted(1000, 0, true, TransactionVersion::Tv0);
    let [TxnEffect::WriteMarkers { producer_id, producer_epoch, .. }] = &fx[..] else { panic!() };
    let fx = t.c.markers_written(ID, *producer_id, *producer_epoch, EPOCH, t.now);
    let [TxnEffect::Append(append)] = &fx[..] else { panic!("{fx:?}") };
    t.c.append_completed(append, Err(E::CoordinatorNotAvailable), t.now);
    assert_eq!(t.snap().state, TxnState::PrepareCommit);
    assert_eq!(t.c.next_deadline(), i64::MIN);
    let fx = t.tick(t.now);
    t.finish(fx);
    assert_eq!(t.snap().state, TxnState::CompleteCommit);
}

// ---------------------------------------------------------------- load / unload

impl T {
    /// The current metadata as its record would be persisted.
    fn snap_value(&self) -> TxnLogValue {
        let s = self.snap();
        TxnLogValue {
            producer_id: s.producer_id,
            previous_producer_id: s.previous_producer_id,
            next_producer_id: s.next_producer_id,
            producer_epoch: s.producer_epoch,
            timeout_ms: s.timeout_ms,
            state: s.state,
            partitions: s.partitions.into_iter().collect(),
            last_update_ms: s.last_update_ms,
            start_ms: s.start_ms,
            client_transaction_version: s.client_transaction_version,
        }
    }

    fn reload(&mut self, records: Vec<(TxnLogKey, Option<TxnLogValue>)>) -> Vec<TxnEffect> {
        self.c.load_partition(P, EPOCH, records, self.now)
    }
}

#[test]
fn load_replays_the_log_and_resends_markers_of_prepared_transactions() {
    let mut c = TransactionCoordinator::new(TxnConfig::default());
    let k = |id: &str| TxnLogKey::new(id);
    let records = vec![
        (k("a"), Some(value(TxnState::Ongoing, &[tp("x", 0)]))),
        (k("a"), Some(value(TxnState::PrepareCommit, &[tp("x", 0), tp("y", 1)]))),
        (k("b"), Some(value(TxnState::Ongoing, &[tp("x", 0)]))),
        (k("c"), Some(value(TxnState::Empty, &[]))),
        (k("c"), None),
        (k("d"), Some(value(TxnState::PrepareAbort, &[]))),
    ];
    let fx = c.load_partition(3, 11, records, 50);
    assert_eq!(markers(&fx), vec![(7, 3, 11, true, vec![tp("x", 0), tp("y", 1)])]);
    // A Prepare* without partitions goes straight to its Complete* record.
    assert!(fx.iter().any(|e| matches!(e, TxnEffect::Append(a) if a.transactional_id == "d" && a.coordinator_epoch == 11)));
    assert_eq!(c.transactional_ids().collect::<Vec<_>>(), vec!["a", "b", "d"]);
    let a = c.snapshot("a").unwrap();
    assert_eq!((a.state, a.partition, a.last_producer_epoch, a.pending), (TxnState::PrepareCommit, 3, -1, Some(TxnState::CompleteCommit)));
    // The Ongoing one is left to its timeout.
    assert_eq!(c.snapshot("b").unwrap().pending, None);
    c.unload_partition(3);
    assert_eq!(c.transactional_ids().count(), 0);
    assert_eq!(c.loaded_epoch(3), None);
}

#[test]
fn a_report_for_an_older_load_changes_nothing() {
    let mut t = T::new(TransactionVersion::Tv0);
    t.init();
    let (append, then) = append_of(t.add(1000, 0, &[tp("a", 0)]));
    // The partition moves away and comes back (a new leader epoch) while the append is in flight.
    let v = t.snap_value();
    t.c.unload_partition(P);
    assert_eq!(t.c.append_completed(&append, Ok(()), t.now).reply(then), Some(E::NotCoordinator));
    t.c.load_partition(P, EPOCH + 1, vec![(TxnLogKey::new(ID), Some(v))], t.now);
    assert_eq!(t.c.append_completed(&append, Ok(()), t.now).result, Err(E::NotCoordinator));
    let s = t.snap();
    assert_eq!((s.state, s.pending), (TxnState::Empty, None));
    // The new load's own appends carry its epoch.
    let (append, _) = append_of(t.add(1000, 0, &[tp("a", 0)]));
    assert_eq!(append.coordinator_epoch, EPOCH + 1);
    // A duplicate report of a completed append is ignored too.
    assert_eq!(t.ok(&append).result, Ok(()));
    assert_eq!(t.ok(&append).result, Err(E::NotCoordinator));
}

#[test]
fn replaying_the_appended_records_rebuilds_the_state() {
    let mut t = T::new(TransactionVersion::Tv2);
    let mut log: Vec<(TxnLogKey, Option<TxnLogValue>)> = Vec::new();
    let mut keep = |a: &TxnAppend| {
        let bytes = encode_batch(std::slice::from_ref(a), 0).unwrap();
        for (k, v, _) in decode_batch(bytes.freeze()).unwrap() {
            log.push(decode_record(&k, v.as_deref()).unwrap());
        }
    };
    let (a, _) = append_of(t.init_with(None));
    keep(&a);
    t.ok(&a);
    let (a, _) = append_of(t.add(1000, 0, &[tp("a", 0), tp("b", 2)]));
    keep(&a);
    t.ok(&a);
    let (a, _) = append_of(t.end(1000, 0, true, TransactionVersion::Tv2));
    keep(&a);
    let out = t.ok(&a);
    let before = t.snap();
    let mut c = TransactionCoordinator::new(TxnConfig::default());
    let fx = c.load_partition(P, EPOCH, log.clone(), t.now);
    assert_eq!(markers(&fx), markers(&out.effects));
    let after = c.snapshot(ID).unwrap();
    // Only what Kafka does not persist differs: the last epoch.
    assert_eq!(TxnSnapshot { last_producer_epoch: before.last_producer_epoch, ..after }, before);
    let _: BTreeSet<TopicPartition> = before.partitions.into_iter().collect();
}

// ---------------------------------------------------------------- views

#[test]
fn describe_and_list_transactions() {
    let mut t = T::new(TransactionVersion::Tv2);
    assert_eq!(t.c.describe_transaction("").error, Some(E::InvalidRequest));
    assert_eq!(t.c.describe_transaction(ID).error, Some(E::TransactionalIdNotFound));
    t.init();
    t.now = 10_000;
    t.add_ok(1000, 0, &[tp("a", 0)]);
    let d = t.c.describe_transaction(ID);
    assert_eq!(
        (d.error, d.state.as_str(), d.producer_id, d.producer_epoch, d.timeout_ms, d.start_ms, d.partitions),
        (None, "Ongoing", 1000, 0, TIMEOUT, 10_000, vec![tp("a", 0)])
    );
    let ids = |r: ListTransactionsResponse| r.transactions.into_iter().map(|l| l.transactional_id).collect::<Vec<_>>();
    assert_eq!(ids(t.c.list_transactions(&[], &[], -1, 20_000)), vec![ID]);
    assert_eq!(ids(t.c.list_transactions(&["Ongoing".into()], &[1000], -1, 20_000)), vec![ID]);
    assert!(ids(t.c.list_transactions(&["Empty".into()], &[], -1, 20_000)).is_empty());
    assert!(ids(t.c.list_transactions(&[], &[7], -1, 20_000)).is_empty());
    // KIP-994: running longer than the filter.
    assert_eq!(ids(t.c.list_transactions(&[], &[], 9_999, 20_000)), vec![ID]);
    assert!(ids(t.c.list_transactions(&[], &[], 10_000, 20_000)).is_empty());
    let r = t.c.list_transactions(&["Bogus".into()], &[], -1, 20_000);
    assert_eq!((r.unknown_state_filters, r.transactions.len()), (vec!["Bogus".to_string()], 0));
}
