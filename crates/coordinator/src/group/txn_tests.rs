//! Scenario tests of transactional offset commits (KIP-98, KIP-447): validation, pending until the marker, stable
//! fetches, and the replay of transactional batches and markers.

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;

use super::tests::{cfg, join_req, one_stable, range, ready, two_stable, G};
use super::*;

const PID: i64 = 4000;

fn offset(partition: i32, offset: i64) -> CommitOffset {
    CommitOffset { topic: "t".into(), partition, offset, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: None }
}

fn txn_req(generation_id: i32, member_id: &str, instance: Option<&str>, offsets: Vec<CommitOffset>) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest {
        group_id: G.into(),
        producer_id: PID,
        producer_epoch: 2,
        generation_id,
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_string),
        offsets,
    }
}

/// TxnOffsetCommit, appended and replicated: the per-partition errors.
fn txn_commit(c: &mut GroupCoordinator, req: TxnOffsetCommitRequest) -> Vec<ErrorCode> {
    let (res, fx) = c.commit_txn_offsets(req, 10);
    for e in &fx {
        if let Effect::PersistTxnOffsets { group_id, commit, .. } = e {
            c.offsets_appended(group_id, *commit, true);
        }
    }
    res.into_iter().map(|r| r.error).collect()
}

fn plain_commit(c: &mut GroupCoordinator, partition: i32, off: i64) {
    let req = OffsetCommitRequest { group_id: G.into(), generation_id: -1, member_id: String::new(), group_instance_id: None, offsets: vec![offset(partition, off)] };
    let (res, fx) = c.commit_offsets(req, 10);
    assert_eq!(res[0].error, None);
    for e in &fx {
        if let Effect::PersistOffsets { group_id, commit, .. } = e {
            c.offsets_appended(group_id, *commit, true);
        }
    }
}

fn fetch(c: &GroupCoordinator, partition: i32, stable: bool) -> (ErrorCode, i64) {
    let r = c.fetch_offsets_with(G, Some(&[("t".to_string(), partition)]), stable);
    (r.partitions[0].error, r.partitions[0].offset)
}

fn everyone(_: &str) -> bool {
    true
}

#[test]
fn txn_commit_validation_follows_kafka() {
    let mut c = GroupCoordinator::new(cfg());
    let mut req = txn_req(3, "m", None, vec![offset(0, 1)]);
    req.group_id = String::new();
    assert_eq!(txn_commit(&mut c, req), vec![Some(E::InvalidGroupId)]);
    // An unknown group: a member of a generation we never saw, or a producer outside group management.
    assert_eq!(txn_commit(&mut c, txn_req(3, "m", None, vec![offset(0, 1)])), vec![Some(E::IllegalGeneration)]);
    assert!(c.snapshot(G).is_none());
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 1)])), vec![None]);
    assert_eq!(c.snapshot(G).map(|s| s.state), Some(GroupState::Empty));

    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c);
    assert_eq!(txn_commit(&mut c, txn_req(1, &a, None, vec![offset(0, 1)])), vec![None]);
    assert_eq!(txn_commit(&mut c, txn_req(1, "ghost", None, vec![offset(0, 1)])), vec![Some(E::UnknownMemberId)]);
    assert_eq!(txn_commit(&mut c, txn_req(7, &a, None, vec![offset(0, 1)])), vec![Some(E::IllegalGeneration)]);
    assert_eq!(txn_commit(&mut c, txn_req(1, &a, Some("nobody"), vec![offset(0, 1)])), vec![Some(E::UnknownMemberId)]);
    // v0-2 carry no member information: accepted for any group.
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 1)])), vec![None]);
    let mut long = offset(1, 1);
    long.metadata = "x".repeat(5000);
    assert_eq!(txn_commit(&mut c, txn_req(1, &a, None, vec![offset(0, 2), long])), vec![None, Some(E::OffsetMetadataTooLarge)]);
}

#[test]
fn txn_commit_fences_a_replaced_static_member_and_ignores_rebalances() {
    let mut c = GroupCoordinator::new(cfg());
    // A static member joins (no MEMBER_ID_REQUIRED round) and completes the join alone.
    let r = ready(c.join_group(join_req("", Some("inst"), &range(&["t"])), 0).0);
    let a = r.member_id.clone();
    assert_eq!(txn_commit(&mut c, txn_req(r.generation_id, "other-id", Some("inst"), vec![offset(0, 1)])), vec![Some(E::FencedInstanceId)]);
    // CompletingRebalance: a plain commit is refused, a transactional one is not.
    assert_eq!(c.snapshot(G).map(|s| s.state), Some(GroupState::CompletingRebalance));
    assert_eq!(txn_commit(&mut c, txn_req(r.generation_id, &a, Some("inst"), vec![offset(0, 1)])), vec![None]);
}

#[test]
fn txn_offsets_stay_pending_until_the_commit_marker() {
    let mut c = GroupCoordinator::new(cfg());
    plain_commit(&mut c, 0, 5);
    let (res, fx) = c.commit_txn_offsets(txn_req(-1, "", None, vec![offset(0, 10), offset(1, 11)]), 10);
    assert_eq!(res.iter().map(|r| r.error).collect::<Vec<_>>(), vec![None, None]);
    let [Effect::PersistTxnOffsets { producer_id, producer_epoch, offsets, commit, .. }] = &fx[..] else { panic!("{fx:?}") };
    assert_eq!((*producer_id, *producer_epoch, offsets.len()), (PID, 2, 2));
    assert_eq!(fx[0].txn_producer(), Some((PID, 2)));
    c.offsets_appended(G, *commit, true);
    // Invisible to OffsetFetch; a stable fetch (KIP-447) is told to retry.
    assert_eq!(fetch(&c, 0, false), (None, 5));
    assert_eq!(fetch(&c, 0, true), (Some(E::UnstableOffsetCommit), -1));
    assert_eq!(fetch(&c, 1, true), (Some(E::UnstableOffsetCommit), -1));
    assert_eq!(fetch(&c, 2, true), (None, -1));
    assert!(c.has_pending_txn_offsets(G, "t", 1));
    assert_eq!(c.open_transactions(G), vec![PID]);
    // Another producer's marker, or one for another offsets partition's groups, changes nothing.
    c.complete_txn(PID + 1, true, everyone, 20);
    c.complete_txn(PID, true, |g| g != G, 20);
    assert_eq!(fetch(&c, 0, true), (Some(E::UnstableOffsetCommit), -1));
    c.complete_txn(PID, true, |g| g == G, 20);
    assert_eq!(fetch(&c, 0, true), (None, 10));
    assert_eq!(fetch(&c, 1, false), (None, 11));
    assert!(c.open_transactions(G).is_empty());
}

#[test]
fn an_abort_marker_drops_them() {
    let mut c = GroupCoordinator::new(cfg());
    plain_commit(&mut c, 0, 5);
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 10)])), vec![None]);
    c.complete_txn(PID, false, everyone, 20);
    assert_eq!(fetch(&c, 0, true), (None, 5));
}

#[test]
fn the_later_commit_wins_between_plain_and_transactional() {
    let mut c = GroupCoordinator::new(cfg());
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 10)])), vec![None]);
    // A plain commit written after the transactional one is more recent: the marker does not override it.
    plain_commit(&mut c, 0, 7);
    c.complete_txn(PID, true, everyone, 20);
    assert_eq!(fetch(&c, 0, true), (None, 7));
    // The other way round, the transactional commit wins.
    plain_commit(&mut c, 1, 7);
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(1, 12)])), vec![None]);
    c.complete_txn(PID, true, everyone, 20);
    assert_eq!(fetch(&c, 1, true), (None, 12));
}

#[test]
fn a_failed_append_drops_the_pending_commit() {
    let mut c = GroupCoordinator::new(cfg());
    let (_, fx) = c.commit_txn_offsets(txn_req(-1, "", None, vec![offset(0, 10)]), 10);
    let [Effect::PersistTxnOffsets { commit, .. }] = &fx[..] else { panic!() };
    assert_eq!(fetch(&c, 0, true).0, Some(E::UnstableOffsetCommit), "pending from the start");
    c.offsets_appended(G, *commit, false);
    assert_eq!(fetch(&c, 0, true), (None, -1));
    c.complete_txn(PID, true, everyone, 20);
    assert_eq!(fetch(&c, 0, true), (None, -1));
    // A failed commit leaves the producer's earlier pending commit of the partition in place.
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 20)])), vec![None]);
    let (_, fx) = c.commit_txn_offsets(txn_req(-1, "", None, vec![offset(0, 30)]), 10);
    let [Effect::PersistTxnOffsets { commit, .. }] = &fx[..] else { panic!() };
    c.offsets_appended("another-group", *commit, false);
    c.complete_txn(PID, true, everyone, 20);
    assert_eq!(fetch(&c, 0, true), (None, 20));
}

#[test]
fn deletion_and_retention_respect_pending_commits() {
    let mut c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: 100, ..cfg() });
    plain_commit(&mut c, 0, 5);
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 10), offset(1, 11)])), vec![None, None]);
    // Retention keeps an offset whose transaction is undecided, and the group with it.
    assert!(c.expire_offsets(1_000_000).is_empty());
    assert_eq!(fetch(&c, 0, false), (None, 5));
    // OffsetDelete tombstones a partition with only a pending commit too; its marker brings nothing back.
    let (resp, fx) = c.delete_offsets(G, &[("t".to_string(), 1)]);
    assert_eq!(resp.partitions[0].error, None);
    assert_eq!(fx, vec![Effect::DeleteOffsets { group_id: G.into(), partitions: vec![("t".into(), 1)] }]);
    // DeleteGroups tombstones committed and pending partitions alike.
    let (res, fx) = c.delete_groups(&[G.to_string()]);
    assert_eq!(res[0].1, None);
    assert_eq!(fx[0], Effect::DeleteOffsets { group_id: G.into(), partitions: vec![("t".into(), 0)] });
    c.complete_txn(PID, true, everyone, 20);
    assert_eq!(fetch(&c, 0, false), (None, -1));
    assert_eq!(fetch(&c, 1, false), (None, -1));
}

#[test]
fn unload_forgets_pending_commits() {
    let mut c = GroupCoordinator::new(cfg());
    let _ = two_stable(&mut c);
    assert_eq!(txn_commit(&mut c, txn_req(-1, "", None, vec![offset(0, 10)])), vec![None]);
    c.unload(|g| g == G);
    assert!(c.open_transactions(G).is_empty());
}

/// The log of a transaction: what the broker appends for the effects, and the marker.
fn txn_log(c: &mut GroupCoordinator, offsets: Vec<CommitOffset>, commit: bool) -> Vec<Bytes> {
    let (_, fx) = c.commit_txn_offsets(txn_req(-1, "", None, offsets), 10);
    let [e @ Effect::PersistTxnOffsets { producer_id, producer_epoch, .. }] = &fx[..] else { panic!("{fx:?}") };
    let data = encode_txn_batch(&e.log_records(), *producer_id, *producer_epoch, 10).unwrap().freeze();
    let marker = encode_marker_batch(*producer_id, *producer_epoch, commit, 7, 11).unwrap().freeze();
    vec![data, marker]
}

fn replay(batches: &[Bytes]) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(cfg());
    for b in batches {
        let batch = read_batch(b.clone()).unwrap();
        assert!(c.load_batch(&batch, everyone, 0).is_empty());
    }
    c
}

#[test]
fn replay_applies_markers_to_the_transactional_batches_before_them() {
    let mut live = GroupCoordinator::new(cfg());
    let plain = encode_batch(
        &[LogRecord::Offset(OffsetRecord { group_id: G.into(), topic: "t".into(), partition: 0, offset: 5, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1 })],
        1,
    )
    .unwrap()
    .freeze();
    let committed = txn_log(&mut live, vec![offset(0, 10), offset(1, 11)], true);
    let aborted = txn_log(&mut live, vec![offset(2, 12)], false);
    let batch = read_batch(committed[0].clone()).unwrap();
    assert_eq!((batch.transactional, batch.producer_id, batch.marker, batch.records.len()), (true, PID, None, 2));
    assert_eq!(read_batch(committed[1].clone()).unwrap().marker, Some(crate::batch::TxnMarker { commit: true, coordinator_epoch: 7 }));

    // Without its marker, a transactional batch replays pending.
    let c = replay(&[plain.clone(), committed[0].clone()]);
    assert_eq!(fetch(&c, 0, false), (None, 5));
    assert_eq!(fetch(&c, 0, true).0, Some(E::UnstableOffsetCommit));
    // With its commit marker, committed; an aborted one is not.
    let mut all = vec![plain.clone()];
    all.extend(committed.clone());
    all.extend(aborted);
    let c = replay(&all);
    assert_eq!((fetch(&c, 0, true), fetch(&c, 1, true), fetch(&c, 2, true)), ((None, 10), (None, 11), (None, -1)));
    // A plain commit after the transactional batch but before its marker is the later one.
    let later = encode_batch(
        &[LogRecord::Offset(OffsetRecord { group_id: G.into(), topic: "t".into(), partition: 0, offset: 8, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 2 })],
        2,
    )
    .unwrap()
    .freeze();
    let c = replay(&[plain, committed[0].clone(), later, committed[1].clone()]);
    assert_eq!(fetch(&c, 0, true), (None, 8));
    assert_eq!(fetch(&c, 1, true), (None, 11));
    // decode_batch, the view without transactions, skips the marker.
    assert!(decode_batch(committed[1].clone()).unwrap().is_empty());
}

#[test]
fn a_replayed_marker_applies_to_its_partition_s_groups_only() {
    // One transaction committed offsets for groups in two offsets partitions; only "g"'s partition has its marker.
    let mut live = GroupCoordinator::new(cfg());
    let mut batches = txn_log(&mut live, vec![offset(0, 10)], true);
    let mut other = txn_req(-1, "", None, vec![offset(0, 20)]);
    other.group_id = "h".into();
    let (_, fx) = live.commit_txn_offsets(other, 10);
    let other_batch = encode_txn_batch(&fx[0].log_records(), PID, 2, 10).unwrap().freeze();
    batches.insert(1, other_batch);
    let mut c = GroupCoordinator::new(cfg());
    for b in &batches {
        c.load_batch(&read_batch(b.clone()).unwrap(), |g| g == G, 0);
    }
    assert_eq!(fetch(&c, 0, true), (None, 10));
    assert!(c.has_pending_txn_offsets("h", "t", 0));
}
