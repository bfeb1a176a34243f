use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::consumer_group::{TopicMeta, Topics};

const T: Uuid = Uuid::from_u128(0x1111);

fn topics(partitions: i32) -> Topics {
    Topics::from([("t".to_string(), TopicMeta::new(T, partitions))])
}

fn join(c: &mut ShareGroupCoordinator, member: &str, topics: &Topics, now: i64) -> ShareHeartbeatResponse {
    c.heartbeat(
        ShareHeartbeat { group_id: "g".into(), member_id: member.into(), member_epoch: 0, subscribed_topic_names: Some(vec!["t".into()]), ..Default::default() },
        topics,
        now,
    )
}

fn beat(c: &mut ShareGroupCoordinator, member: &str, epoch: i32, topics: &Topics, now: i64) -> ShareHeartbeatResponse {
    c.heartbeat(ShareHeartbeat { group_id: "g".into(), member_id: member.into(), member_epoch: epoch, ..Default::default() }, topics, now)
}

#[test]
fn members_share_one_partition_and_are_fenced_as_kafka() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let ts = topics(1);
    let r = c.heartbeat(ShareHeartbeat { group_id: "g".into(), member_epoch: 0, ..Default::default() }, &ts, 0);
    assert_eq!(r.error, Some(ResponseError::InvalidRequest), "the first heartbeat must subscribe");
    let a = join(&mut c, "a", &ts, 0);
    assert_eq!((a.error, a.member_epoch), (None, 1));
    let b = join(&mut c, "b", &ts, 0);
    assert_eq!(b.member_epoch, 2);
    let one = Some(crate::consumer_group::Assignment::from([(T, [0].into())]));
    assert_eq!(a.assignment, one);
    assert_eq!(b.assignment, one, "several members hold the one partition");
    // a catches up to epoch 2; its old epoch 1 is accepted once more (a lost response).
    assert_eq!(beat(&mut c, "a", 1, &ts, 10).member_epoch, 2);
    assert_eq!(join(&mut c, "a", &ts, 10).error, Some(ResponseError::FencedMemberEpoch), "a member cannot join twice");
    assert_eq!(beat(&mut c, "a", 7, &ts, 10).error, Some(ResponseError::FencedMemberEpoch));
    assert_eq!(beat(&mut c, "zz", 2, &ts, 10).error, Some(ResponseError::UnknownMemberId));
    assert_eq!(beat(&mut c, "zz", -1, &ts, 10).error, Some(ResponseError::UnknownMemberId));
    assert_eq!(beat(&mut c, "a", -2, &ts, 10).error, Some(ResponseError::InvalidRequest));
    let left = beat(&mut c, "b", -1, &ts, 10);
    assert_eq!((left.error, left.member_epoch), (None, -1));
    assert_eq!(c.describe("g").map(|d| d.members.len()), Some(1));
}

#[test]
fn uniform_assignment_covers_every_partition_and_member() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let ts = topics(4);
    for m in ["a", "b"] {
        join(&mut c, m, &ts, 0);
    }
    let d = c.describe("g").expect("a share group");
    let got: Vec<usize> = d.members.iter().map(|m| m.assignment.get(&T).map_or(0, |p| p.len())).collect();
    assert_eq!(got, vec![2, 2]);
    for m in ["c", "d", "e", "f", "g"] {
        join(&mut c, m, &ts, 0);
    }
    let d = c.describe("g").expect("a share group");
    let mut covered = std::collections::BTreeSet::new();
    for m in &d.members {
        assert_eq!(m.assignment.get(&T).map(|p| p.len()), Some(1), "every member has work");
        covered.extend(m.assignment[&T].iter().copied());
    }
    assert_eq!(covered.len(), 4, "every partition is consumed");
}

#[test]
fn a_member_that_expires_or_closes_its_session_gives_its_records_back() {
    let config = ShareGroupConfig { session_timeout_ms: 1_000, ..Default::default() };
    let mut c = ShareGroupCoordinator::new(config);
    let ts = topics(1);
    join(&mut c, "a", &ts, 0);
    join(&mut c, "b", &ts, 0);
    let key = ("g".to_string(), T, 0);
    assert_eq!(c.prepare_fetch(&key, 0, 10, 0), 10, "latest: start at the log end");
    let batch = [LogBatch { first_offset: 10, last_offset: 14, control: false }];
    let got = c.acquire(&key, "a", &batch, 500, 0);
    assert_eq!(got, vec![Acquired { first_offset: 10, last_offset: 14, delivery_count: 1 }]);
    assert_eq!(c.acknowledge(&key, "b", 10, 10, &[1], 0), Err(ResponseError::InvalidRecordState), "b does not hold it");
    assert_eq!(c.acknowledge(&key, "a", 10, 10, &[9], 0), Err(ResponseError::InvalidRequest));
    c.acknowledge(&key, "a", 10, 11, &[1], 0).expect("a holds them");
    // b keeps heartbeating, a stops: a's records come back for b.
    assert_eq!(beat(&mut c, "b", 2, &ts, 900).error, None);
    assert!(c.tick(&ts, 1_100).iter().any(|e| e.member_id == "a"));
    assert_eq!(c.prepare_fetch(&key, 0, 15, 1_100), 12);
    let got = c.acquire(&key, "b", &batch, 500, 1_100);
    assert_eq!(got, vec![Acquired { first_offset: 12, last_offset: 14, delivery_count: 2 }]);
    // b leaves the group: it keeps its records until it closes its share session, which comes
    // with its last acknowledgements (librdkafka may send it after the leaving heartbeat).
    assert_eq!(beat(&mut c, "b", -1, &ts, 1_200).error, None);
    assert_eq!(c.partition(&key).and_then(|p| p.owner(12, 1_200)), Some("b"));
    c.acknowledge(&key, "b", 12, 12, &[1], 1_200).expect("still b's");
    c.close_session("g", "b");
    assert_eq!(c.partition(&key).and_then(|p| p.owner(13, 1_200)), None);
    assert_eq!(c.prepare_fetch(&key, 0, 15, 1_200), 13);
}

#[test]
fn share_sessions_follow_kafkas_epochs() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let p = [(T, 0)];
    assert_eq!(c.fetch_session("g", "m", 1, &p, &[], false, 0), Err(ResponseError::ShareSessionNotFound));
    assert_eq!(c.acknowledge_session("g", "m", 1, 0), Err(ResponseError::ShareSessionNotFound));
    assert_eq!(c.fetch_session("g", "m", 0, &p, &[], true, 0), Err(ResponseError::InvalidRequest));
    assert_eq!(c.fetch_session("g", "m", 0, &p, &[], false, 0), Ok(p.to_vec()));
    assert_eq!(c.fetch_session("g", "m", 2, &[], &[], false, 0), Err(ResponseError::InvalidShareSessionEpoch));
    assert_eq!(c.fetch_session("g", "m", 1, &[], &[], false, 0), Ok(p.to_vec()));
    assert_eq!(c.acknowledge_session("g", "m", 0, 0), Err(ResponseError::InvalidShareSessionEpoch));
    assert_eq!(c.acknowledge_session("g", "m", 2, 0), Ok(()));
    assert_eq!(c.fetch_session("g", "m", 3, &[], &p, false, 0), Ok(vec![]));
    assert_eq!(c.fetch_session("g", "m", -1, &[], &[], true, 0), Ok(vec![]));
}

#[test]
fn state_records_replay_to_the_same_partitions() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig { auto_offset_reset: AutoOffsetReset::Earliest, ..Default::default() });
    let ts = topics(1);
    join(&mut c, "a", &ts, 0);
    let key = ("g".to_string(), T, 0);
    assert_eq!(c.prepare_fetch(&key, 3, 10, 0), 3, "earliest: start at the log start");
    c.acquire(&key, "a", &[LogBatch { first_offset: 3, last_offset: 9, control: false }], 500, 0);
    c.acknowledge(&key, "a", 3, 5, &[1, 3, 2], 0).expect("held");
    let records: Vec<_> = c.take_records().into_iter().filter(|(_, (k, _))| is_share_state_key(k)).collect();
    assert_eq!(records.len(), 1, "one record per changed share partition");
    assert!(c.take_records().is_empty());
    let mut replayed = ShareGroupCoordinator::new(ShareGroupConfig::default());
    for (group, (k, v)) in &records {
        assert_eq!(group, "g");
        assert!(is_share_state_key(k));
        replayed.load_record(k, v.as_deref()).expect("decodes");
    }
    let (a, b) = (c.partition(&key).expect("exists"), replayed.partition(&key).expect("replayed"));
    assert_eq!(a.snapshot(), b.snapshot());
    // Offset 5 was released and 6..=9 were held: all available after the replay, 3 and 4 never.
    assert_eq!(b.start_offset(), 5);
    assert!(b.is_finished(3) && b.is_finished(4));
    assert_eq!(b.owner(6, 0), None);
    assert_eq!(b.delivery_count(6), Some(1));
}

#[test]
fn offsets_are_altered_and_deleted_only_while_the_group_is_empty() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let ts = topics(1);
    let key = ("g".to_string(), T, 0);
    join(&mut c, "a", &ts, 0);
    assert_eq!(c.alter_start_offset(&key, 5), Err(ResponseError::NonEmptyGroup));
    assert_eq!(c.delete_state("g", Some(T)), Err(ResponseError::NonEmptyGroup));
    beat(&mut c, "a", -1, &ts, 0);
    c.alter_start_offset(&key, 5).expect("empty now");
    assert_eq!(c.prepare_fetch(&key, 0, 100, 0), 5, "the altered start wins over the reset");
    assert_eq!(c.start_offsets("g"), vec![((T, 0), 5)]);
    c.take_records();
    c.delete_state("g", Some(T)).expect("empty");
    assert!(c.start_offsets("g").is_empty());
    let records = c.take_records();
    assert_eq!(records.len(), 1);
    assert!(records[0].1 .1.is_none(), "a tombstone");
    let mut replayed = ShareGroupCoordinator::new(ShareGroupConfig::default());
    replayed.alter_start_offset(&key, 9).expect("empty");
    replayed.load_record(&records[0].1 .0, None).expect("a tombstone replays");
    assert!(replayed.partition(&key).is_none());
}

#[test]
fn a_session_its_member_abandoned_is_closed_a_session_timeout_later() {
    let config = ShareGroupConfig { session_timeout_ms: 1_000, auto_offset_reset: AutoOffsetReset::Earliest, ..Default::default() };
    let mut c = ShareGroupCoordinator::new(config);
    let ts = topics(1);
    join(&mut c, "a", &ts, 0);
    let key = ("g".to_string(), T, 0);
    c.fetch_session("g", "a", 0, &[(T, 0)], &[], false, 0).expect("opens");
    c.prepare_fetch(&key, 0, 5, 0);
    assert_eq!(c.acquire(&key, "a", &[LogBatch { first_offset: 0, last_offset: 4, control: false }], 500, 0).len(), 1);
    // a leaves by heartbeat but never closes its session (it died right after).
    beat(&mut c, "a", -1, &ts, 100);
    c.tick(&ts, 900);
    assert_eq!(c.partition(&key).and_then(|p| p.owner(0, 900)), Some("a"), "within the session timeout it may still close it");
    c.tick(&ts, 1_000);
    assert_eq!(c.partition(&key).and_then(|p| p.owner(0, 1_000)), None, "released");
    assert_eq!(c.acknowledge_session("g", "a", 2, 1_000), Err(ResponseError::ShareSessionNotFound));
}

/// The owner's side of Read/WriteShareGroupState: stale leaders and states reset by an
/// administrator are fenced, and the epochs survive a replay of the records.
#[test]
fn the_state_owner_fences_stale_leaders_and_reset_states() {
    let mut owner = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let key: ShareKey = ("g".into(), T, 0);
    assert_eq!(owner.read_state(&key, 3), Ok((None, 0)), "nothing stored yet");
    let s = Snapshot { start_offset: 12, end_offset: 15, ranges: vec![(12, 14, 2)] };
    assert_eq!(owner.write_state(&key, 3, 0, &s), Ok(()));
    assert_eq!(owner.read_state(&key, 3), Ok((Some(s.clone()), 0)));
    // A new leader reads: the old one may no longer write or read.
    assert_eq!(owner.read_state(&key, 4), Ok((Some(s.clone()), 0)));
    let older = Snapshot { start_offset: 10, end_offset: 11, ranges: vec![(10, 10, 1)] };
    assert_eq!(owner.write_state(&key, 3, 0, &older), Err(ResponseError::FencedLeaderEpoch));
    assert_eq!(owner.read_state(&key, 3), Err(ResponseError::FencedLeaderEpoch));
    // The records carry the epochs: a new owner fences the same way.
    let mut replayed = ShareGroupCoordinator::new(ShareGroupConfig::default());
    for (_, (k, v)) in owner.take_records() {
        replayed.load_record(&k, v.as_deref()).expect("a valid record");
    }
    assert_eq!(replayed.write_state(&key, 3, 0, &older), Err(ResponseError::FencedLeaderEpoch));
    assert_eq!(replayed.read_state(&key, 4), Ok((Some(s.clone()), 0)));
    // An administrator's reset bumps the state epoch: a leader that read before must read again.
    assert_eq!(owner.alter_start_offset(&key, 0), Ok(()));
    assert_eq!(owner.write_state(&key, 4, 0, &s), Err(ResponseError::FencedStateEpoch));
    let (now, epoch) = owner.read_state(&key, 4).expect("readable");
    assert_eq!((now.map(|s| s.start_offset), epoch), (Some(0), 1));
    assert_eq!(owner.write_state(&key, 4, 1, &s), Ok(()));
    // So does a deletion, which tombstones the record.
    assert_eq!(owner.delete_state("g", None), Ok(()));
    assert_eq!(owner.write_state(&key, 4, 1, &s), Err(ResponseError::FencedStateEpoch));
    assert_eq!(owner.read_state(&key, 4), Ok((None, 2)));
    let records = owner.take_records();
    assert!(records.iter().any(|(_, (_, v))| v.is_none()), "a tombstone: {records:?}");
}

/// The leader's side: a state installed from the owner, taken back when it changed, and
/// acquisitions that could not be stored given back.
#[test]
fn a_leader_installs_the_owners_state_and_takes_its_changes() {
    let mut leader = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let key: ShareKey = ("g".into(), T, 0);
    let s = Snapshot { start_offset: 2, end_offset: 4, ranges: vec![(3, 3, 1)] };
    leader.install(&key, Some(&s));
    assert!(leader.dirty_of("g").is_empty(), "an installed state is the owner's already");
    assert_eq!(leader.prepare_fetch(&key, 0, 10, 0), 3, "the in-flight record first");
    let batches = [LogBatch { first_offset: 0, last_offset: 9, control: false }];
    let got = leader.acquire(&key, "m", &batches, 10, 0);
    assert_eq!(got.first().map(|a| (a.first_offset, a.delivery_count)), Some((3, 2)));
    assert!(got.iter().all(|a| a.first_offset >= 3), "finished records 2 and below are never delivered: {got:?}");
    assert_eq!(leader.dirty_of("g"), vec![key.clone()]);
    leader.release(&key, "m", &got);
    let taken = leader.take_dirty_of("g");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].1.ranges.first(), Some(&(3, 3, 2)), "released, its delivery count kept");
    assert!(leader.dirty_of("g").is_empty());
}

/// Membership survives a coordinator move: the records replay to the same members, epochs and
/// assignments, so a member's next heartbeat goes on (no UNKNOWN_MEMBER_ID); a member that left
/// is gone, and a replayed one that never comes back expires.
#[test]
fn membership_replays_from_its_records() {
    let ts = topics(2);
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let a = join(&mut c, "a", &ts, 0);
    let b = join(&mut c, "b", &ts, 0);
    let x = join(&mut c, "x", &ts, 0);
    assert_eq!(beat(&mut c, "x", x.member_epoch, &ts, 1).error, None);
    assert_eq!(beat(&mut c, "x", -1, &ts, 2).error, None, "x leaves");
    let a = beat(&mut c, "a", a.member_epoch, &ts, 3);
    let mut log: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = Vec::new();
    log.extend(c.take_records().into_iter().map(|(_, r)| r));
    let mut replayed = ShareGroupCoordinator::new(ShareGroupConfig::default());
    for (k, v) in &log {
        if is_share_group_key(k) {
            replayed.load_member_record(k, v.as_deref(), 100).expect("a valid record");
        }
    }
    let before = c.describe("g").expect("the group");
    let after = replayed.describe("g").expect("the group, replayed");
    assert_eq!((after.group_epoch, after.members.len()), (before.group_epoch, 2));
    for (m, n) in before.members.iter().zip(&after.members) {
        assert_eq!((&m.member_id, m.member_epoch, &m.assignment, &m.subscribed_topic_names), (&n.member_id, n.member_epoch, &n.assignment, &n.subscribed_topic_names));
    }
    // a goes on with its epoch; b, still at an older one, catches up with its assignment.
    let r = beat(&mut replayed, "a", a.member_epoch, &ts, 200);
    assert_eq!((r.error, r.member_epoch), (None, a.member_epoch));
    let r = beat(&mut replayed, "b", b.member_epoch, &ts, 200);
    assert_eq!(r.error, None);
    assert!(r.assignment.is_some(), "a new epoch comes with its assignment");
    assert_eq!(beat(&mut replayed, "x", x.member_epoch, &ts, 200).error, Some(ResponseError::UnknownMemberId), "x left for good");
    // Nobody heartbeats any more: both expire a session timeout after their last heartbeat.
    let expired = replayed.tick(&ts, 200 + 45_000);
    assert_eq!(expired.len(), 2);
}

/// A group's own settings (group configs) win over the broker's for that group only: where it
/// starts, how long its locks last, its members' heartbeat interval and session timeout.
#[test]
fn a_groups_own_config_applies_to_that_group_only() {
    let mut c = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let ts = topics(1);
    let own = ShareGroupConfig { auto_offset_reset: AutoOffsetReset::Earliest, record_lock_duration_ms: 2_000, heartbeat_interval_ms: 700, session_timeout_ms: 3_000, ..Default::default() };
    c.set_group_config("g", Some(own));
    let a = join(&mut c, "a", &ts, 0);
    assert_eq!(a.heartbeat_interval_ms, 700);
    let key = ("g".to_string(), T, 0);
    let other = ("h".to_string(), T, 0);
    assert_eq!(c.prepare_fetch(&key, 3, 10, 0), 3, "g starts at the log start");
    assert_eq!(c.prepare_fetch(&other, 3, 10, 0), 10, "h keeps the broker's latest");
    let batch = [LogBatch { first_offset: 3, last_offset: 9, control: false }];
    assert_eq!(c.acquire(&key, "a", &batch, 500, 0).len(), 1);
    assert_eq!(c.partition(&key).and_then(|p| p.owner(3, 1_999)), Some("a"));
    assert_eq!(c.partition(&key).and_then(|p| p.owner(3, 2_000)), None, "g's lock lasts 2 s");
    // The session timeout is g's 3 s, not the broker's 45 s.
    assert!(c.tick(&ts, 3_000).iter().any(|e| e.member_id == "a"));
    // Without its config the group is back on the broker's settings.
    c.set_group_config("g", None);
    assert_eq!(join(&mut c, "b", &ts, 4_000).heartbeat_interval_ms, 5_000);
}
