//! Unit tests of the consumer-group coordinator: Kafka's answers to each kind of heartbeat.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;

const T: Uuid = Uuid::from_u128(7);

fn topics(partitions: i32) -> Topics {
    Topics::from([("t".to_string(), TopicMeta::new(T, partitions))])
}

fn join(member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(member_id: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
    HeartbeatRequest { group_id: "g".into(), member_id: member_id.into(), member_epoch: epoch, rebalance_timeout_ms: -1, owned: Some(owned.clone()), ..Default::default() }
}

fn partitions(a: &Option<Assignment>) -> BTreeSet<i32> {
    a.as_ref().and_then(|a| a.get(&T)).cloned().unwrap_or_default()
}

#[test]
fn first_member_gets_every_partition_at_epoch_one() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let r = c.heartbeat(join("a"), &topics(6), 0);
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(partitions(&r.assignment), (0..6).collect());
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(4);
    let a1 = c.heartbeat(join("a"), &tp, 0).assignment.unwrap_or_default();
    // b joins: the target gives it half, but a still owns everything, so b gets nothing yet.
    let b = c.heartbeat(join("b"), &tp, 10);
    assert_eq!(b.member_epoch, 2);
    assert!(partitions(&b.assignment).is_empty());
    // a hears of the new target: it keeps two, stays at epoch 1 until it has revoked the others.
    let a = c.heartbeat(beat("a", 1, &a1), &tp, 20);
    assert_eq!(a.member_epoch, 1);
    let kept = partitions(&a.assignment);
    assert_eq!(kept.len(), 2);
    let b_again = c.heartbeat(beat("b", 2, &Assignment::new()), &tp, 30);
    assert!(partitions(&b_again.assignment).is_empty() || b_again.assignment.is_none());
    // a acknowledges (owns only what it kept): it moves to epoch 2, and b then gets the rest.
    let owned = Assignment::from([(T, kept.clone())]);
    let a = c.heartbeat(beat("a", 1, &owned), &tp, 40);
    assert_eq!(a.member_epoch, 2);
    let b = c.heartbeat(beat("b", 2, &Assignment::new()), &tp, 50);
    let got = partitions(&b.assignment);
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&kept));
}

#[test]
fn stale_and_future_epochs_are_fenced_and_strangers_unknown() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(2);
    c.heartbeat(join("a"), &tp, 0);
    c.heartbeat(join("b"), &tp, 0);
    let r = c.heartbeat(beat("a", 5, &Assignment::new()), &tp, 1);
    assert_eq!(r.error, Some(ResponseError::FencedMemberEpoch));
    let r = c.heartbeat(beat("b", 1, &Assignment::from([(T, BTreeSet::from([0, 1]))])), &tp, 1);
    assert_eq!(r.error, Some(ResponseError::FencedMemberEpoch));
    let r = c.heartbeat(beat("nobody", 1, &Assignment::new()), &tp, 1);
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn the_previous_epoch_is_accepted_when_the_answer_was_lost() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(2);
    let a = c.heartbeat(join("a"), &tp, 0);
    assert_eq!(a.member_epoch, 1);
    // The epoch-1 answer lost: the member comes back at epoch 0 owning nothing (a subset).
    let r = c.heartbeat(HeartbeatRequest { member_epoch: 0, ..join("a") }, &tp, 1);
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, 1);
}

#[test]
fn bad_requests_are_invalid() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(1);
    let cases = [
        HeartbeatRequest { group_id: String::new(), ..join("a") },
        HeartbeatRequest { rebalance_timeout_ms: -1, ..join("a") },
        HeartbeatRequest { owned: None, ..join("a") },
        HeartbeatRequest { subscribed_topic_names: None, ..join("a") },
        HeartbeatRequest { member_epoch: -3, ..join("a") },
        HeartbeatRequest { member_id: String::new(), member_epoch: 3, ..join("a") },
        HeartbeatRequest { member_epoch: -2, ..join("a") },
    ];
    for req in cases {
        assert_eq!(c.heartbeat(req.clone(), &tp, 0).error, Some(ResponseError::InvalidRequest), "{req:?}");
    }
    let r = c.heartbeat(HeartbeatRequest { server_assignor: Some("sticky".into()), ..join("a") }, &tp, 0);
    assert_eq!(r.error, Some(ResponseError::UnsupportedAssignor));
}

#[test]
fn max_size_refuses_one_more_member() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig { max_size: Some(1), ..Default::default() });
    let tp = topics(1);
    assert_eq!(c.heartbeat(join("a"), &tp, 0).error, None);
    assert_eq!(c.heartbeat(join("b"), &tp, 0).error, Some(ResponseError::GroupMaxSizeReached));
}

#[test]
fn leaving_and_expiring_members_free_their_partitions() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(4);
    c.heartbeat(join("a"), &tp, 0);
    c.heartbeat(HeartbeatRequest { member_epoch: -1, ..beat("a", 1, &Assignment::new()) }, &tp, 1);
    let b = c.heartbeat(join("b"), &tp, 2);
    assert_eq!(partitions(&b.assignment).len(), 4, "a left: b gets everything at once");
    let c2 = c.heartbeat(join("c"), &tp, 3);
    assert!(partitions(&c2.assignment).is_empty());
    // b falls silent: after its session it is removed, and c gets all four.
    assert!(c.tick(&tp, 3 + 44_000).is_empty());
    c.heartbeat(beat("c", c2.member_epoch, &Assignment::new()), &tp, 44_000);
    let expired = c.tick(&tp, 2 + 45_000);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].member_id, "b");
    let r = c.heartbeat(beat("c", c2.member_epoch, &Assignment::new()), &tp, 45_100);
    assert_eq!(partitions(&r.assignment).len(), 4);
    assert_eq!(c.describe("g").map(|d| d.state), Some(ConsumerGroupState::Stable));
}

#[test]
fn offsets_are_fenced_by_member_epoch() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(1);
    let a = c.heartbeat(join("a"), &tp, 0);
    let v9 = Some(9);
    assert_eq!(c.offset_access("g", Some("a"), a.member_epoch, v9), OffsetAccess::Allowed);
    assert_eq!(c.offset_access("g", Some("a"), a.member_epoch + 1, v9), OffsetAccess::Refused(ResponseError::StaleMemberEpoch));
    assert_eq!(c.offset_access("g", Some("a"), a.member_epoch, Some(8)), OffsetAccess::Refused(ResponseError::UnsupportedVersion));
    assert_eq!(c.offset_access("g", Some("x"), 1, v9), OffsetAccess::Refused(ResponseError::UnknownMemberId));
    assert_eq!(c.offset_access("g", Some(""), -1, v9), OffsetAccess::Refused(ResponseError::UnknownMemberId));
    assert_eq!(c.offset_access("g", None, -1, None), OffsetAccess::Allowed);
    assert_eq!(c.offset_access("g", Some("a"), a.member_epoch - 1, None), OffsetAccess::Refused(ResponseError::StaleMemberEpoch));
    assert_eq!(c.offset_access("other", Some(""), -1, v9), OffsetAccess::NotConsumerGroup);
    // Once the member left, an admin (epoch -1) may commit.
    c.heartbeat(HeartbeatRequest { member_epoch: -1, ..beat("a", a.member_epoch, &Assignment::new()) }, &tp, 1);
    assert_eq!(c.offset_access("g", Some(""), -1, v9), OffsetAccess::Allowed);
}

#[test]
fn uniform_balances_and_range_splits_in_order() {
    let subs: BTreeSet<String> = BTreeSet::from(["t".to_string()]);
    let tp = topics(7);
    let mut spec = AssignorSpec::default();
    for m in ["a", "b", "c"] {
        spec.members.insert(m, (&subs, None));
    }
    let u = Assignor::Uniform.assign(&spec, &tp);
    let counts: Vec<usize> = u.values().map(|a| a.get(&T).map_or(0, |s| s.len())).collect();
    assert_eq!(counts.iter().sum::<usize>(), 7);
    assert!(counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1, "{counts:?}");
    let r = Assignor::Range.assign(&spec, &tp);
    assert_eq!(r["a"][&T], BTreeSet::from([0, 1, 2]));
    assert_eq!(r["b"][&T], BTreeSet::from([3, 4]));
    assert_eq!(r["c"][&T], BTreeSet::from([5, 6]));
}

#[test]
fn uniform_is_sticky_when_a_member_joins() {
    let subs: BTreeSet<String> = BTreeSet::from(["t".to_string()]);
    let tp = topics(6);
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&subs, None));
    spec.members.insert("b", (&subs, None));
    let before = Assignor::Uniform.assign(&spec, &tp);
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&subs, before.get("a")));
    spec.members.insert("b", (&subs, before.get("b")));
    spec.members.insert("c", (&subs, None));
    let after = Assignor::Uniform.assign(&spec, &tp);
    for m in ["a", "b"] {
        assert!(after[m][&T].is_subset(&before[m][&T]), "{m} lost partitions it could keep");
        assert_eq!(after[m][&T].len(), 2);
    }
}

#[test]
fn a_regex_subscription_picks_up_topics_created_later() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let mut tp = topics(2);
    tp.insert("__consumer_offsets".into(), TopicMeta::new(Uuid::from_u128(99), 50));
    let req = HeartbeatRequest { subscribed_topic_names: None, subscribed_topic_regex: Some("t|u.*|__.*".into()), ..join("a") };
    let r = c.heartbeat(req, &tp, 0);
    assert_eq!(r.error, None);
    let a = r.assignment.unwrap_or_default();
    assert_eq!(a.keys().copied().collect::<Vec<_>>(), vec![T], "internal topics never match");
    let u = Uuid::from_u128(8);
    tp.insert("u1".into(), TopicMeta::new(u, 3));
    let r = c.heartbeat(beat("a", r.member_epoch, &a), &tp, 10);
    assert_eq!(r.member_epoch, 2, "a new matching topic bumps the group epoch");
    assert_eq!(r.assignment.and_then(|a| a.get(&u).cloned()), Some(BTreeSet::from([0, 1, 2])));
    // Whole names only, as Java's Pattern.matches: "t" does not match "tt".
    tp.insert("tt".into(), TopicMeta::new(Uuid::from_u128(9), 1));
    let owned = c.describe("g").map(|d| d.members[0].assignment.clone()).unwrap_or_default();
    let r = c.heartbeat(beat("a", 2, &owned), &tp, 20);
    assert_eq!(r.member_epoch, 2);
}

#[test]
fn an_invalid_regex_is_refused() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let req = HeartbeatRequest { subscribed_topic_regex: Some("(unclosed".into()), ..join("a") };
    assert_eq!(c.heartbeat(req, &topics(1), 0).error, Some(ResponseError::InvalidRegularExpression));
}

#[test]
fn records_are_kafkas_bytes_and_garbage_is_an_error() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    c.heartbeat(join("a"), &topics(1), 0);
    let records = c.take_records("g");
    // ConsumerGroupMetadataKey (type 3, "g") and its value v0 (epoch 1, no tagged fields).
    let metadata = records.iter().find(|(k, _)| k.as_ref() == [0, 3, 0, 1, b'g']).and_then(|(_, v)| v.clone());
    assert_eq!(metadata.as_deref(), Some(&[0u8, 0, 0, 0, 0, 1, 0][..]));
    // ConsumerGroupCurrentMemberAssignment: epoch 1, previous 0, STABLE, partition 0 of T.
    let key = [&[0u8, 8, 0, 1, b'g', 0, 1, b'a'][..]].concat();
    let current = records.iter().find(|(k, _)| k.as_ref() == key.as_slice()).and_then(|(_, v)| v.clone()).unwrap_or_default();
    let mut want = vec![0u8, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
    want.extend_from_slice(T.as_bytes());
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(current.as_ref(), want.as_slice());
    assert!(c.take_records("g").is_empty(), "nothing changed since");
    assert!(is_consumer_group_key(&key));
    let mut fresh = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    for bad in [&[0u8, 8][..], &[0, 8, 0, 9, b'g'], &[0, 3, 0x7f, 0xff]] {
        assert!(fresh.load_record(bad, Some(&[0, 0]), 0).is_err());
    }
    // A value whose array claims 2^60 entries: an error, not an allocation.
    assert!(fresh.load_record(&key, Some(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]), 0).is_err());
}

// ---------------------------------------------------------------- static membership

fn join_static(member_id: &str, instance: &str) -> HeartbeatRequest {
    HeartbeatRequest { instance_id: Some(instance.into()), ..join(member_id) }
}

fn leave_static(member_id: &str, instance: &str, epoch: i32) -> HeartbeatRequest {
    HeartbeatRequest { group_id: "g".into(), member_id: member_id.into(), member_epoch: epoch, instance_id: Some(instance.into()), rebalance_timeout_ms: -1, ..Default::default() }
}

/// Two static members sharing four partitions, both stable: (a's partitions, b's, the epoch).
fn two_static_members(c: &mut ConsumerGroupCoordinator, tp: &Topics) -> (BTreeSet<i32>, BTreeSet<i32>, i32) {
    let a = c.heartbeat(join_static("a", "ia"), tp, 0);
    let all = Assignment::from([(T, partitions(&a.assignment))]);
    c.heartbeat(join_static("b", "ib"), tp, 0);
    let a = c.heartbeat(beat("a", 1, &all), tp, 1);
    let kept = Assignment::from([(T, partitions(&a.assignment))]);
    let a = c.heartbeat(beat("a", 1, &kept), tp, 2);
    let b = c.heartbeat(beat("b", 2, &Assignment::new()), tp, 3);
    assert_eq!((a.member_epoch, b.member_epoch), (2, 2));
    assert_eq!(c.describe("g").map(|d| d.state), Some(ConsumerGroupState::Stable));
    (partitions(&Some(kept)), partitions(&b.assignment), 2)
}

#[test]
fn a_static_member_leaving_for_now_keeps_its_partitions_and_its_successor_gets_them() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(4);
    let (a_parts, b_parts, epoch) = two_static_members(&mut c, &tp);
    c.take_records("g");
    let r = c.heartbeat(leave_static("a", "ia", LEAVE_GROUP_STATIC_MEMBER_EPOCH), &tp, 10);
    assert_eq!((r.error, r.member_id.as_deref(), r.member_epoch), (None, Some("a"), LEAVE_GROUP_STATIC_MEMBER_EPOCH));
    // Only a's current assignment is written (its epoch -2), as Kafka does; the group epoch stays.
    let records = c.take_records("g");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0.as_ref(), [&[0u8, 8, 0, 1, b'g', 0, 1, b'a'][..]].concat().as_slice());
    let d = c.describe("g").unwrap_or_else(|| panic!("the group is gone"));
    assert_eq!(d.group_epoch, epoch);
    let a = d.members.iter().find(|m| m.member_id == "a").unwrap_or_else(|| panic!("a was removed"));
    assert_eq!((a.member_epoch, a.assignment.get(&T).cloned().unwrap_or_default()), (LEAVE_GROUP_STATIC_MEMBER_EPOCH, a_parts.clone()));
    // b does not get a's partitions meanwhile.
    let b = c.heartbeat(beat("b", epoch, &Assignment::from([(T, b_parts.clone())])), &tp, 20);
    assert_eq!((b.error, b.member_epoch, b.assignment), (None, epoch, None));
    // The instance comes back under a new member id: it replaces a, at the same group epoch,
    // with a's partitions at once.
    let a2 = c.heartbeat(join_static("a2", "ia"), &tp, 30);
    assert_eq!((a2.error, a2.member_id.as_deref(), a2.member_epoch), (None, Some("a2"), epoch));
    assert_eq!(partitions(&a2.assignment), a_parts);
    let d = c.describe("g").unwrap_or_else(|| panic!("the group is gone"));
    let mut ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a2", "b"]);
    assert_eq!((d.group_epoch, d.state), (epoch, ConsumerGroupState::Stable));
    // The old member id is fenced as a stranger would be, its instance id now being a2's.
    assert_eq!(c.heartbeat(beat("a", epoch, &Assignment::new()), &tp, 40).error, Some(ResponseError::UnknownMemberId));
    // The log: a's records tombstoned, a2's written, and a replay gives the same group.
    let records = c.take_records("g");
    assert!(records.iter().any(|(k, v)| v.is_none() && k.as_ref() == [&[0u8, 5, 0, 1, b'g', 0, 1, b'a'][..]].concat().as_slice()));
    let mut all = Vec::new();
    let mut fresh = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let mut replay = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let (x, y, _) = two_static_members(&mut fresh, &tp);
    assert_eq!((x, y), (a_parts.clone(), b_parts.clone()));
    all.extend(fresh.take_records("g"));
    fresh.heartbeat(leave_static("a", "ia", LEAVE_GROUP_STATIC_MEMBER_EPOCH), &tp, 10);
    all.extend(fresh.take_records("g"));
    fresh.heartbeat(join_static("a2", "ia"), &tp, 30);
    all.extend(fresh.take_records("g"));
    for (k, v) in &all {
        assert!(replay.load_record(k, v.as_deref(), 50).is_ok());
    }
    assert_eq!(replay.describe("g"), fresh.describe("g"));
}

#[test]
fn a_static_member_that_does_not_come_back_is_removed_after_its_session() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(4);
    let (_, b_parts, epoch) = two_static_members(&mut c, &tp);
    c.heartbeat(leave_static("a", "ia", LEAVE_GROUP_STATIC_MEMBER_EPOCH), &tp, 10);
    // b keeps heartbeating; a's session runs from its last heartbeat (at 2).
    c.heartbeat(beat("b", epoch, &Assignment::from([(T, b_parts.clone())])), &tp, 40_000);
    assert!(c.tick(&tp, 2 + 44_999).is_empty());
    let expired = c.tick(&tp, 2 + 45_000);
    assert_eq!(expired.iter().map(|e| (e.member_id.as_str(), e.session)).collect::<Vec<_>>(), [("a", true)]);
    let b = c.heartbeat(beat("b", epoch, &Assignment::from([(T, b_parts)])), &tp, 45_100);
    assert_eq!((b.member_epoch, partitions(&b.assignment)), (epoch + 1, (0..4).collect()));
    // The instance id is free: a newcomer with it joins as a new member.
    let a3 = c.heartbeat(join_static("a3", "ia"), &tp, 45_200);
    assert_eq!((a3.error, a3.member_epoch), (None, epoch + 2));
}

#[test]
fn instance_ids_in_use_are_refused_as_kafka_does() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(4);
    let (_, _, epoch) = two_static_members(&mut c, &tp);
    // a is active: another member may not join with its instance id, nor heartbeat or leave as it.
    let r = c.heartbeat(join_static("x", "ia"), &tp, 10);
    assert_eq!(r.error, Some(ResponseError::UnreleasedInstanceId));
    // Kafka's rule holds for a's own member id too: a rejoin at epoch 0 needs a -2 leave first.
    assert_eq!(c.heartbeat(join_static("a", "ia"), &tp, 10).error, Some(ResponseError::UnreleasedInstanceId));
    let beat_as = HeartbeatRequest { instance_id: Some("ia".into()), ..beat("x", epoch, &Assignment::new()) };
    assert_eq!(c.heartbeat(beat_as, &tp, 11).error, Some(ResponseError::FencedInstanceId));
    for e in [LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH] {
        assert_eq!(c.heartbeat(leave_static("x", "ia", e), &tp, 12).error, Some(ResponseError::FencedInstanceId));
        assert_eq!(c.heartbeat(leave_static("a", "nobody", e), &tp, 12).error, Some(ResponseError::UnknownMemberId));
    }
    let unknown = HeartbeatRequest { instance_id: Some("nobody".into()), ..beat("a", epoch, &Assignment::new()) };
    assert_eq!(c.heartbeat(unknown, &tp, 13).error, Some(ResponseError::UnknownMemberId));
    // Nothing of that changed the group.
    let d = c.describe("g").unwrap_or_else(|| panic!("the group is gone"));
    assert_eq!((d.group_epoch, d.members.len(), d.state), (epoch, 2, ConsumerGroupState::Stable));
    // A static member leaving for good (-1 with its instance id) is removed and re-assigns.
    let r = c.heartbeat(leave_static("a", "ia", LEAVE_GROUP_MEMBER_EPOCH), &tp, 14);
    assert_eq!((r.error, r.member_epoch), (None, LEAVE_GROUP_MEMBER_EPOCH));
    let d = c.describe("g").unwrap_or_else(|| panic!("the group is gone"));
    assert_eq!((d.group_epoch, d.members.len()), (epoch + 1, 1));
}

#[test]
fn a_full_group_refuses_a_returning_instance_under_a_new_member_id() {
    // Kafka checks the group's size before it replaces a static member.
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig { max_size: Some(2), ..Default::default() });
    let tp = topics(4);
    let (a_parts, _, epoch) = two_static_members(&mut c, &tp);
    c.heartbeat(leave_static("a", "ia", LEAVE_GROUP_STATIC_MEMBER_EPOCH), &tp, 10);
    assert_eq!(c.heartbeat(join_static("a2", "ia"), &tp, 20).error, Some(ResponseError::GroupMaxSizeReached));
    // Under its old member id it is not a newcomer: it comes back.
    let a = c.heartbeat(join_static("a", "ia"), &tp, 30);
    assert_eq!((a.error, a.member_epoch, partitions(&a.assignment)), (None, epoch, a_parts));
}

/// A group's own session timeout and heartbeat interval (group configs) win over the broker's
/// for that group only, from its next heartbeat.
#[test]
fn a_groups_own_timeouts_apply_to_that_group_only() {
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let tp = topics(2);
    c.set_group_config("g", Some(ConsumerGroupConfig { session_timeout_ms: 3_000, heartbeat_interval_ms: 800, ..Default::default() }));
    let a = c.heartbeat(join("a"), &tp, 0);
    assert_eq!(a.heartbeat_interval_ms, 800);
    let other = c.heartbeat(HeartbeatRequest { group_id: "h".into(), ..join("x") }, &tp, 0);
    assert_eq!(other.heartbeat_interval_ms, 5_000);
    assert!(c.tick(&tp, 2_999).is_empty());
    let expired = c.tick(&tp, 3_000);
    assert_eq!(expired.iter().map(|e| (e.group_id.as_str(), e.member_id.as_str())).collect::<Vec<_>>(), vec![("g", "a")]);
    // Changed back to the broker's: the next heartbeat is told 5 s again.
    c.set_group_config("g", None);
    assert_eq!(c.heartbeat(join("b"), &tp, 3_100).heartbeat_interval_ms, 5_000);
}
