//! Classic members inside a consumer group and the online upgrade/downgrade: Kafka's answers,
//! the revoke-before-assign rule across both kinds, timers, policies, and the records.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::group::{
    GroupConfig, GroupCoordinator, GroupState, HeartbeatRequest as Beat, JoinOutcome, JoinRequest, LeaveMember, MigratingGroup, MigratingMember, SyncOutcome, SyncRequest,
};

const T: Uuid = Uuid::from_u128(7);
const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn topics() -> Topics {
    Topics::from([("t".to_string(), TopicMeta::new(T, 6))])
}

fn set(ps: &[i32]) -> Assignment {
    Assignment::from([(T, ps.iter().copied().collect())])
}

/// A v1 consumer-protocol subscription to "t" naming the partitions owned.
fn subscription(owned: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(-1);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(owned.len() as i32);
    for p in owned {
        b.put_i32(*p);
    }
    b.freeze()
}

fn classic_member(id: &str, owned: &[i32]) -> MigratingMember {
    MigratingMember {
        member_id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocols: vec![("cooperative-sticky".into(), subscription(owned))],
        assignment: embedded::encode_assignment(1, &set(owned), &topics()),
    }
}

/// A classic group at generation 5: a owns 0 to 2, b owns 3 to 5.
fn classic_group() -> MigratingGroup {
    MigratingGroup {
        generation_id: 5,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("cooperative-sticky".into()),
        members: vec![classic_member("a", &[0, 1, 2]), classic_member("b", &[3, 4, 5])],
    }
}

fn rejoin(id: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![("cooperative-sticky".into(), subscription(owned))],
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        request_version: 7,
    }
}

fn sync(id: &str, generation: i32) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("cooperative-sticky".into()),
        assignments: Vec::new(),
    }
}

fn beat(id: &str, generation: i32) -> Beat {
    Beat { group_id: "g".into(), generation_id: generation, member_id: id.into(), group_instance_id: None }
}

fn consumer_join(id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn consumer_beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
    HeartbeatRequest { group_id: "g".into(), member_id: id.into(), member_epoch: epoch, rebalance_timeout_ms: -1, owned: Some(owned.clone()), ..Default::default() }
}

fn upgraded(config: ConsumerGroupConfig) -> ConsumerGroupCoordinator {
    let mut c = ConsumerGroupCoordinator::new(config);
    let g = classic_group();
    assert!(c.can_upgrade(&g));
    c.upgrade("g", &g, &topics(), 0).expect("well-formed classic group");
    c
}

/// Every partition is held (assigned or pending revocation) by at most one member.
fn assert_no_partition_twice(c: &ConsumerGroupCoordinator) {
    let g = c.groups.get("g").expect("group");
    for p in 0..6 {
        let holders: Vec<&str> = g.members.values().filter(|m| m.holds(&T, p)).map(|m| m.id.as_str()).collect();
        assert!(holders.len() <= 1, "partition {p} held by {holders:?}");
    }
}

fn assigned(c: &ConsumerGroupCoordinator, id: &str) -> BTreeSet<i32> {
    c.groups.get("g").and_then(|g| g.members.get(id)).and_then(|m| m.assigned.get(&T).cloned()).unwrap_or_default()
}

fn decoded(bytes: &Bytes) -> BTreeSet<i32> {
    embedded::decode_assignment(bytes).expect("assignment").into_iter().flat_map(|(_, ps)| ps).collect()
}

#[test]
fn the_upgrade_keeps_the_classic_members_and_their_assignments() {
    let c = upgraded(ConsumerGroupConfig::default());
    let d = c.describe("g").expect("a consumer group");
    assert_eq!(d.group_epoch, 5);
    assert_eq!(d.assignment_epoch, 5);
    assert_eq!(d.state, ConsumerGroupState::Stable);
    assert_eq!(assigned(&c, "a"), [0, 1, 2].into());
    assert_eq!(assigned(&c, "b"), [3, 4, 5].into());
    assert!(c.groups["g"].members.values().all(|m| m.classic.is_some() && m.epoch == 5));
    assert!(d.members.iter().all(|m| m.classic), "described as classic members");
}

#[test]
fn a_consumer_member_gets_partitions_only_once_the_classic_members_revoked_them() {
    let mut c = upgraded(ConsumerGroupConfig::default());
    let tp = topics();
    // The new member bumps the epoch; every partition is still held by a classic member.
    let x = c.heartbeat(consumer_join("x"), &tp, 10);
    assert_eq!(x.error, None);
    assert_eq!(x.member_epoch, 6);
    assert_eq!(x.assignment, Some(Assignment::new()));
    assert_no_partition_twice(&c);
    // The classic members hear they must rejoin.
    assert_eq!(c.classic_heartbeat(&beat("a", 5), 20), Some(Some(ResponseError::RebalanceInProgress)));
    assert_eq!(c.classic_heartbeat(&beat("b", 5), 20), Some(Some(ResponseError::RebalanceInProgress)));
    // a rejoins owning 0 to 2 (cooperative): it must give one up and stays at epoch 5.
    let j = c.classic_join(rejoin("a", &[0, 1, 2]), &tp, 30);
    assert_eq!(j.error, None);
    assert_eq!(j.generation_id, 5);
    assert_eq!(j.leader_id, "", "the coordinator assigns: no leader");
    let s = c.classic_sync(&sync("a", 5), &tp, 31).expect("consumer group");
    assert_eq!(s.error, None);
    let kept = decoded(&s.assignment);
    assert_eq!(kept.len(), 2);
    assert_no_partition_twice(&c);
    // Until it rejoins without the revoked one, x gets nothing of a's.
    let x = c.heartbeat(consumer_beat("x", 6, &Assignment::new()), &tp, 40);
    assert!(x.assignment.unwrap_or_default().get(&T).is_none_or(|ps| ps.is_empty()));
    assert_eq!(c.classic_heartbeat(&beat("a", 5), 41), Some(Some(ResponseError::RebalanceInProgress)));
    let kept: Vec<i32> = kept.into_iter().collect();
    let j = c.classic_join(rejoin("a", &kept), &tp, 50);
    assert_eq!(j.generation_id, 6);
    assert_eq!(c.classic_sync(&sync("a", 6), &tp, 51).map(|s| decoded(&s.assignment)), Some(kept.iter().copied().collect()));
    assert_eq!(c.classic_heartbeat(&beat("a", 6), 52), Some(None));
    // b does the same, eagerly (it owns nothing when it rejoins).
    let j = c.classic_join(rejoin("b", &[]), &tp, 60);
    assert_eq!(j.generation_id, 6);
    assert_no_partition_twice(&c);
    // Now x gets the two partitions given up.
    let x = c.heartbeat(consumer_beat("x", 6, &Assignment::new()), &tp, 70);
    assert_eq!(x.assignment.and_then(|a| a.get(&T).cloned()).map(|ps| ps.len()), Some(2));
    assert_no_partition_twice(&c);
    let held: usize = c.groups["g"].members.values().map(|m| m.assigned.get(&T).map_or(0, |ps| ps.len())).sum();
    assert_eq!(held, 6, "every partition owned");
    // A stale generation is refused, as Kafka.
    assert_eq!(c.classic_heartbeat(&beat("b", 5), 80), Some(Some(ResponseError::IllegalGeneration)));
}

#[test]
fn the_last_consumer_member_leaving_downgrades_the_group() {
    let mut c = upgraded(ConsumerGroupConfig::default());
    let tp = topics();
    let x = c.heartbeat(consumer_join("x"), &tp, 10);
    // What the broker does after every call: the group's records written.
    assert!(!c.take_records("g").is_empty());
    let leave = HeartbeatRequest { member_epoch: LEAVE_GROUP_MEMBER_EPOCH, ..consumer_beat("x", x.member_epoch, &Assignment::new()) };
    assert_eq!(c.heartbeat(leave, &tp, 20).error, None);
    assert!(!c.contains("g"), "no longer a consumer group");
    let mut downgrades = c.take_downgrades();
    assert_eq!(downgrades.len(), 1);
    let d = downgrades.remove(0);
    assert_eq!(d.group_id, "g");
    // Every record written is tombstoned, the group's metadata last.
    assert_eq!(d.tombstones.len(), 3 + 3 * 3);
    assert!(d.tombstones.iter().all(|(_, v)| v.is_none()));
    assert!(d.tombstones.last().is_some_and(|(k, _)| k[..2] == record::KEY_METADATA.to_be_bytes()));
    let ids: BTreeSet<&str> = d.group.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"].into());
    let a = d.group.members.iter().find(|m| m.member_id == "a").expect("a");
    assert_eq!(decoded(&a.assignment), [0, 1, 2].into());
    // The classic coordinator takes them and rebalances: their next heartbeat says rejoin.
    let mut classic = GroupCoordinator::new(GroupConfig { group_initial_rebalance_delay_ms: 0, ..Default::default() });
    let fx = classic.adopt_members("g", d.group.clone(), 30);
    assert!(fx.iter().any(|e| matches!(e, crate::group::Effect::PersistGroup { .. })));
    assert_eq!(classic.describe_group("g").state, GroupState::PreparingRebalance);
    assert_eq!(classic.heartbeat(beat("a", d.group.generation_id), 31), Some(ResponseError::RebalanceInProgress));
}

#[test]
fn policy_disabled_neither_upgrades_nor_downgrades() {
    let config = ConsumerGroupConfig { migration_policy: MigrationPolicy::Disabled, ..Default::default() };
    let c = ConsumerGroupCoordinator::new(config.clone());
    assert!(!c.can_upgrade(&classic_group()));
    // Upgrade only: a group made so keeps its classic members in the consumer group when the last
    // consumer member leaves.
    let mut c = upgraded(ConsumerGroupConfig { migration_policy: MigrationPolicy::Upgrade, ..Default::default() });
    let tp = topics();
    let x = c.heartbeat(consumer_join("x"), &tp, 10);
    let leave = HeartbeatRequest { member_epoch: LEAVE_GROUP_MEMBER_EPOCH, ..consumer_beat("x", x.member_epoch, &Assignment::new()) };
    c.heartbeat(leave, &tp, 20);
    assert!(c.take_downgrades().is_empty());
    assert_eq!(c.describe("g").map(|d| d.members.len()), Some(2));
    // Downgrade only: no upgrade.
    let c = ConsumerGroupCoordinator::new(ConsumerGroupConfig { migration_policy: MigrationPolicy::Downgrade, ..Default::default() });
    assert!(!c.can_upgrade(&classic_group()));
    assert_eq!(MigrationPolicy::parse("BIDIRECTIONAL"), MigrationPolicy::Bidirectional);
    assert_eq!(MigrationPolicy::parse("nonsense"), MigrationPolicy::Disabled);
}

#[test]
fn a_group_not_using_the_consumer_protocol_is_not_upgraded() {
    let c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let mut g = classic_group();
    g.protocol_type = Some("connect".into());
    assert!(!c.can_upgrade(&g));
    // Malformed embedded metadata: the upgrade fails and nothing changes.
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let mut g = classic_group();
    g.members[0].protocols[0].1 = Bytes::from_static(&[0, 1, 0]);
    assert!(c.upgrade("g", &g, &topics(), 0).is_err());
    assert!(!c.contains("g"));
}

#[test]
fn classic_members_time_out_on_their_own_session_timeout() {
    // Upgrade only: with downgrades, a group left with classic members alone becomes classic.
    let mut c = upgraded(ConsumerGroupConfig { migration_policy: MigrationPolicy::Upgrade, ..Default::default() });
    let tp = topics();
    // b heartbeats, a does not.
    assert_eq!(c.classic_heartbeat(&beat("b", 5), 9_000), Some(None));
    let expired = c.tick(&tp, i64::from(SESSION));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].member_id, "a");
    assert!(expired[0].session);
    assert!(c.describe("g").is_some_and(|d| d.members.len() == 1));
    // b must now rejoin (the epoch moved); if it never does, its rebalance timeout removes it
    // even while it keeps heartbeating.
    assert_eq!(c.classic_heartbeat(&beat("b", 5), 10_001), Some(Some(ResponseError::RebalanceInProgress)));
    assert_eq!(c.classic_heartbeat(&beat("b", 5), 10_002 + i64::from(REBALANCE) - 10), Some(Some(ResponseError::RebalanceInProgress)));
    let expired = c.tick(&tp, 10_001 + i64::from(REBALANCE));
    assert_eq!(expired.iter().map(|e| e.member_id.as_str()).collect::<Vec<_>>(), vec!["b"]);
}

#[test]
fn classic_requests_from_unknown_or_consumer_members_are_refused() {
    let mut c = upgraded(ConsumerGroupConfig::default());
    let tp = topics();
    let x = c.heartbeat(consumer_join("x"), &tp, 10);
    assert_eq!(c.classic_heartbeat(&beat("nobody", 5), 20), Some(Some(ResponseError::UnknownMemberId)));
    assert_eq!(c.classic_heartbeat(&beat("x", x.member_epoch), 20), Some(Some(ResponseError::UnknownMemberId)));
    assert_eq!(c.classic_sync(&sync("a", 4), &tp, 20).and_then(|s| s.error), Some(ResponseError::IllegalGeneration));
    assert_eq!(c.classic_heartbeat(&beat("a", 5), 21), Some(Some(ResponseError::RebalanceInProgress)));
    // Not a consumer group: the classic coordinator answers.
    assert_eq!(c.classic_heartbeat(&Beat { group_id: "other".into(), ..beat("a", 5) }, 20), None);
    // A join with another protocol type, or one no classic member supports.
    let mut r = rejoin("", &[]);
    r.protocol_type = "connect".into();
    assert_eq!(c.classic_join(r, &tp, 30).error, Some(ResponseError::InconsistentGroupProtocol));
    let mut r = rejoin("", &[]);
    r.protocols[0].0 = "range".into();
    assert_eq!(c.classic_join(r, &tp, 30).error, Some(ResponseError::InconsistentGroupProtocol));
    // JoinGroup v4+: the two-step join.
    let first = c.classic_join(rejoin("", &[]), &tp, 40);
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let second = c.classic_join(rejoin(&first.member_id, &[]), &tp, 41);
    assert_eq!(second.error, None);
    assert_eq!(second.protocol_name.as_deref(), Some("cooperative-sticky"));
    assert_no_partition_twice(&c);
    // LeaveGroup: a classic member leaves, a consumer member cannot leave that way.
    let r = c.classic_leave("g", &[LeaveMember { member_id: "b".into(), group_instance_id: None }, LeaveMember { member_id: "x".into(), group_instance_id: None }], &tp).expect("consumer group");
    assert_eq!(r.members.iter().map(|m| m.error).collect::<Vec<_>>(), vec![None, Some(ResponseError::UnknownMemberId)]);
    assert!(c.describe("g").is_some_and(|d| !d.members.iter().any(|m| m.member_id == "b")));
}

#[test]
fn classic_members_survive_a_replay_of_the_records() {
    let mut c = upgraded(ConsumerGroupConfig::default());
    let tp = topics();
    c.heartbeat(consumer_join("x"), &tp, 10);
    let records = c.take_records("g");
    let mut replayed = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    for (k, v) in &records {
        replayed.load_record(k, v.as_deref(), 100).expect("a record of ours");
    }
    let (a, b) = (&c.groups["g"].members["a"], &replayed.groups["g"].members["a"]);
    assert_eq!(a.classic, b.classic);
    assert!(b.classic.as_ref().is_some_and(|m| m.session_timeout_ms == SESSION && m.protocols.len() == 1));
    assert_eq!(a.assigned, b.assigned);
    assert_eq!(replayed.describe("g"), c.describe("g"));
    // The replayed classic member still speaks the classic protocol.
    assert_eq!(replayed.classic_heartbeat(&beat("a", 5), 110), Some(Some(ResponseError::RebalanceInProgress)));
    // Nothing left to write: the replayed state is what was written.
    assert!(replayed.take_records("g").is_empty());
}

#[test]
fn the_classic_side_hands_its_members_over_and_keeps_its_offsets() {
    let mut classic = GroupCoordinator::new(GroupConfig { group_initial_rebalance_delay_ms: 0, ..Default::default() });
    let join = JoinRequest { member_id: String::new(), request_version: 3, ..rejoin("", &[]) };
    let JoinOutcome::Ready(j) = classic.join_group(join, 0).0 else { panic!("a lone member's join completes at once") };
    assert_eq!(j.error, None);
    let assignment = embedded::encode_assignment(1, &set(&[0, 1, 2, 3, 4, 5]), &topics());
    let s = SyncRequest { assignments: vec![(j.member_id.clone(), assignment.clone())], ..sync(&j.member_id, j.generation_id) };
    let SyncOutcome::Ready(s) = classic.sync_group(s, 1).0 else { panic!("the leader's sync completes at once") };
    assert_eq!(s.error, None);
    let g = classic.migrating_members("g").expect("members");
    assert_eq!(g.generation_id, j.generation_id);
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].assignment, assignment);
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    assert!(c.can_upgrade(&g));
    c.upgrade("g", &g, &topics(), 2).expect("upgrade");
    assert_eq!(assigned(&c, &j.member_id), [0, 1, 2, 3, 4, 5].into());
    let fx = classic.release_members("g", 2);
    assert!(fx.iter().any(|e| matches!(e, crate::group::Effect::PersistGroup { record, .. } if record.members.is_empty())));
    assert_eq!(classic.describe_group("g").state, GroupState::Empty);
    assert!(classic.migrating_members("g").is_none());
}
