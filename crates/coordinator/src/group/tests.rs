//! Scenario tests of the group coordinator, one Kafka behaviour each.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError as E;

use super::*;

pub(super) const G: &str = "g";
const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

pub(super) fn cfg() -> GroupConfig {
    GroupConfig { group_initial_rebalance_delay_ms: 0, ..GroupConfig::default() }
}

/// A ConsumerProtocolSubscription v0 for `topics`.
fn sub(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // user data: null
    b.freeze()
}

pub(super) fn join_req(member_id: &str, instance: Option<&str>, protocols: &[(&str, Bytes)]) -> JoinRequest {
    JoinRequest {
        group_id: G.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        protocol_type: "consumer".to_string(),
        protocols: protocols.iter().map(|(n, m)| (n.to_string(), m.clone())).collect(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        request_version: 7,
    }
}

pub(super) fn range(topics: &[&str]) -> Vec<(&'static str, Bytes)> {
    vec![("range", sub(topics))]
}

pub(super) fn ready(out: JoinOutcome) -> JoinResponse {
    match out {
        JoinOutcome::Ready(r) => r,
        JoinOutcome::Pending(t) => panic!("join pending with {t:?}"),
    }
}

fn pending(out: JoinOutcome) -> Ticket {
    match out {
        JoinOutcome::Pending(t) => t,
        JoinOutcome::Ready(r) => panic!("join answered: {r:?}"),
    }
}

fn sync_ready(out: SyncOutcome) -> SyncResponse {
    match out {
        SyncOutcome::Ready(r) => r,
        SyncOutcome::Pending(t) => panic!("sync pending with {t:?}"),
    }
}

/// The two-step join of a new dynamic member: returns its id and the outcome of the rejoin.
pub(super) fn join_new(c: &mut GroupCoordinator, topics: &[&str], now: i64) -> (String, JoinOutcome, Vec<Effect>) {
    let (out, fx) = c.join_group(join_req("", None, &range(topics)), now);
    assert!(fx.is_empty());
    let first = ready(out);
    assert_eq!(first.error, Some(E::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"), "{}", first.member_id);
    let id = first.member_id;
    let (out, fx) = c.join_group(join_req(&id, None, &range(topics)), now);
    (id, out, fx)
}

fn sync_req(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: G.to_string(),
        generation_id: generation,
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes()))).collect(),
    }
}

fn hb(c: &mut GroupCoordinator, member_id: &str, generation: i32, now: i64) -> ErrorCode {
    c.heartbeat(
        HeartbeatRequest {
            group_id: G.to_string(),
            generation_id: generation,
            member_id: member_id.to_string(),
            group_instance_id: None,
        },
        now,
    )
}

fn completed_joins(fx: &[Effect]) -> Vec<(Ticket, JoinResponse)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::CompleteJoin { ticket, response } => Some((*ticket, response.clone())),
            _ => None,
        })
        .collect()
}

fn completed_syncs(fx: &[Effect]) -> Vec<(Ticket, SyncResponse)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::CompleteSync { ticket, response } => Some((*ticket, response.clone())),
            _ => None,
        })
        .collect()
}

fn state(c: &GroupCoordinator) -> GroupState {
    c.snapshot(G).map(|s| s.state).unwrap_or(GroupState::Dead)
}

/// One member, Stable at generation 1 with assignment "a".
pub(super) fn one_stable(c: &mut GroupCoordinator) -> String {
    let (a, out, _) = join_new(c, &["t"], 0);
    let r = ready(out);
    assert_eq!(r.generation_id, 1);
    let s = sync_ready(c.sync_group(sync_req(&a, 1, &[(&a, "a")]), 0).0);
    assert_eq!(s.error, None);
    a
}

/// Two members A (leader) and B, Stable at generation 2.
pub(super) fn two_stable(c: &mut GroupCoordinator) -> (String, String) {
    let a = one_stable(c);
    let (b, out_b, _) = join_new(c, &["t"], 0);
    let tb = pending(out_b);
    let (out_a, fx) = c.join_group(join_req(&a, None, &range(&["t"])), 0);
    let ra = ready(out_a);
    let done = completed_joins(&fx);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, tb);
    assert_eq!(ra.generation_id, 2);
    let tsb = match c.sync_group(sync_req(&b, 2, &[]), 0).0 {
        SyncOutcome::Pending(t) => t,
        other => panic!("{other:?}"),
    };
    let (out, fx) = c.sync_group(sync_req(&a, 2, &[(&a, "A"), (&b, "B")]), 0);
    assert_eq!(sync_ready(out).assignment, Bytes::from_static(b"A"));
    let syncs = completed_syncs(&fx);
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0].0, tsb);
    assert_eq!(syncs[0].1.assignment, Bytes::from_static(b"B"));
    (a, b)
}

#[test]
fn single_member_join_sync_heartbeat() {
    let mut c = GroupCoordinator::new(cfg());
    let (out, _) = c.join_group(join_req("", None, &range(&["t"])), 0);
    let first = ready(out);
    assert_eq!(first.error, Some(E::MemberIdRequired));
    assert_eq!(first.generation_id, -1);
    // The id is remembered as pending; the group does not rebalance for it yet.
    let snap = c.snapshot(G).unwrap();
    assert_eq!(snap.pending_members, vec![first.member_id.clone()]);
    assert_eq!(snap.state, GroupState::Empty);

    let id = first.member_id;
    let (out, fx) = c.join_group(join_req(&id, None, &range(&["t"])), 5);
    assert!(fx.is_empty(), "{fx:?}");
    let r = ready(out);
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader_id, id);
    assert_eq!(r.member_id, id);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, sub(&["t"]));
    assert_eq!(state(&c), GroupState::CompletingRebalance);
    // Heartbeats between join and sync are fine.
    assert_eq!(hb(&mut c, &id, 1, 6), None);

    let (out, fx) = c.sync_group(sync_req(&id, 1, &[(&id, "assigned")]), 7);
    let s = sync_ready(out);
    assert_eq!(s.error, None);
    assert_eq!(s.assignment, Bytes::from_static(b"assigned"));
    assert!(matches!(&fx[..], [Effect::PersistGroup { record, .. }]
        if record.generation_id == 1 && record.members.len() == 1
            && record.members[0].assignment == Bytes::from_static(b"assigned")));
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(hb(&mut c, &id, 1, 8), None);
    // SyncGroup in Stable answers with the current assignment.
    assert_eq!(sync_ready(c.sync_group(sync_req(&id, 1, &[]), 9).0).assignment, Bytes::from_static(b"assigned"));
}

#[test]
fn two_members_share_generation_and_leader_sees_both() {
    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c);
    let (b, out_b, fx) = join_new(&mut c, &["t", "u"], 0);
    assert!(fx.is_empty());
    let tb = pending(out_b);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(hb(&mut c, &a, 1, 1), Some(E::RebalanceInProgress));

    let (out_a, fx) = c.join_group(join_req(&a, None, &range(&["t"])), 2);
    let ra = ready(out_a);
    let done = completed_joins(&fx);
    assert_eq!(done.len(), 1);
    let (t, rb) = &done[0];
    assert_eq!(*t, tb);
    assert_eq!(ra.generation_id, 2);
    assert_eq!(rb.generation_id, 2);
    assert_eq!(ra.leader_id, a);
    assert_eq!(rb.leader_id, a);
    assert_eq!(rb.member_id, b);
    assert!(rb.members.is_empty(), "followers get no member list");
    let mut metas: Vec<_> = ra.members.iter().map(|m| (m.member_id.clone(), m.metadata.clone())).collect();
    metas.sort();
    let mut want = vec![(a.clone(), sub(&["t"])), (b.clone(), sub(&["t", "u"]))];
    want.sort();
    assert_eq!(metas, want);
}

#[test]
fn leave_triggers_rebalance_and_survivor_gets_new_generation() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, b) = two_stable(&mut c);
    let (resp, fx) = c.leave_group(
        G,
        vec![
            LeaveMember { member_id: b.clone(), group_instance_id: None },
            LeaveMember { member_id: "nobody".into(), group_instance_id: None },
        ],
        10,
    );
    assert!(fx.is_empty());
    assert_eq!(resp.error, None);
    assert_eq!(resp.members[0].error, None);
    assert_eq!(resp.members[1].error, Some(E::UnknownMemberId));
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(hb(&mut c, &a, 2, 11), Some(E::RebalanceInProgress));
    let r = ready(c.join_group(join_req(&a, None, &range(&["t"])), 12).0);
    assert_eq!(r.generation_id, 3);
    assert_eq!(r.leader_id, a);
    assert_eq!(r.members.len(), 1);
    // The member that left is gone for good.
    assert_eq!(hb(&mut c, &b, 3, 13), Some(E::UnknownMemberId));
    assert_eq!(ready(c.join_group(join_req(&b, None, &range(&["t"])), 13).0).error, Some(E::UnknownMemberId));
    // The last member leaving empties the group and bumps the generation (Kafka).
    c.sync_group(sync_req(&a, 3, &[(&a, "x")]), 14);
    let (_, fx) = c.leave_group(G, vec![LeaveMember { member_id: a.clone(), group_instance_id: None }], 15);
    assert_eq!(state(&c), GroupState::Empty);
    assert_eq!(c.snapshot(G).unwrap().generation_id, 4);
    assert!(matches!(&fx[..], [Effect::PersistGroup { record, .. }] if record.members.is_empty()));
}

#[test]
fn leader_leaving_hands_leadership_to_a_member() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, b) = two_stable(&mut c);
    c.leave_group(G, vec![LeaveMember { member_id: a.clone(), group_instance_id: None }], 1);
    assert_eq!(c.snapshot(G).unwrap().leader_id, Some(b.clone()));
    let r = ready(c.join_group(join_req(&b, None, &range(&["t"])), 2).0);
    assert_eq!(r.leader_id, b);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn session_expiry_removes_silent_member() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, b) = two_stable(&mut c);
    assert_eq!(c.next_deadline(), i64::from(SESSION));
    // A heartbeats, B is silent.
    for t in (2_000..=8_000).step_by(2_000) {
        assert_eq!(hb(&mut c, &a, 2, t), None);
        assert!(c.tick(t).is_empty());
    }
    assert!(c.tick(i64::from(SESSION) - 1).is_empty());
    let fx = c.tick(i64::from(SESSION));
    assert!(fx.is_empty(), "nobody was waiting: {fx:?}");
    let snap = c.snapshot(G).unwrap();
    assert_eq!(snap.state, GroupState::PreparingRebalance);
    assert_eq!(snap.members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>(), vec![a.clone()]);
    assert_eq!(hb(&mut c, &b, 2, 10_001), Some(E::UnknownMemberId));
    let r = ready(c.join_group(join_req(&a, None, &range(&["t"])), 10_002).0);
    assert_eq!(r.generation_id, 3);
}

#[test]
fn rebalance_timeout_completes_join_without_laggards() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, b) = two_stable(&mut c);
    // The leader rejoins (Kafka rebalances on a leader rejoin); B keeps heartbeating but never
    // rejoins, so it is dropped when the rebalance timeout expires.
    let ta = pending(c.join_group(join_req(&a, None, &range(&["t"])), 100).0);
    for t in (1_000..30_000).step_by(3_000) {
        assert_eq!(hb(&mut c, &b, 2, t), Some(E::RebalanceInProgress));
        assert!(c.tick(t).is_empty());
    }
    let fx = c.tick(100 + i64::from(REBALANCE));
    let done = completed_joins(&fx);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, ta);
    assert_eq!(done[0].1.generation_id, 3);
    assert_eq!(done[0].1.members.len(), 1);
    assert!(!c.snapshot(G).unwrap().members.iter().any(|m| m.member_id == b));
}

#[test]
fn stale_generation_is_illegal() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, _b) = two_stable(&mut c);
    assert_eq!(hb(&mut c, &a, 1, 1), Some(E::IllegalGeneration));
    assert_eq!(sync_ready(c.sync_group(sync_req(&a, 1, &[]), 1).0).error, Some(E::IllegalGeneration));
    assert_eq!(hb(&mut c, &a, 2, 1), None);
    // Unknown group / member.
    assert_eq!(hb(&mut c, "x", 2, 1), Some(E::UnknownMemberId));
    let mut other = sync_req(&a, 2, &[]);
    other.group_id = "other".into();
    assert_eq!(sync_ready(c.sync_group(other, 1).0).error, Some(E::UnknownMemberId));
}

#[test]
fn follower_sync_waits_and_rebalance_answers_it() {
    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c);
    let (b, out, _) = join_new(&mut c, &["t"], 0);
    let _ = pending(out);
    let (_, _) = c.join_group(join_req(&a, None, &range(&["t"])), 0);
    let tsb = match c.sync_group(sync_req(&b, 2, &[]), 1).0 {
        SyncOutcome::Pending(t) => t,
        other => panic!("{other:?}"),
    };
    // A third member joins before the leader syncs: the parked sync must be answered.
    let (_, _, fx) = join_new(&mut c, &["t"], 2);
    let syncs = completed_syncs(&fx);
    assert_eq!(syncs, vec![(tsb, SyncResponse::error(E::RebalanceInProgress))]);
    assert_eq!(sync_ready(c.sync_group(sync_req(&b, 2, &[]), 3).0).error, Some(E::RebalanceInProgress));
}

#[test]
fn static_member_restart_keeps_assignment_and_fences_old_id() {
    let mut c = GroupCoordinator::new(cfg());
    // Static members join without MEMBER_ID_REQUIRED.
    let r1 = ready(c.join_group(join_req("", Some("i1"), &range(&["t"])), 0).0);
    assert_eq!(r1.error, None);
    assert!(r1.member_id.starts_with("i1-"));
    let s1 = r1.member_id.clone();
    c.sync_group(sync_req(&s1, 1, &[(&s1, "one")]), 0);
    let t2 = pending(c.join_group(join_req("", Some("i2"), &range(&["t"])), 0).0);
    let (out, fx) = c.join_group(join_req(&s1, Some("i1"), &range(&["t"])), 0);
    let r = ready(out);
    let done = completed_joins(&fx);
    assert_eq!(done[0].0, t2);
    let s2 = done[0].1.member_id.clone();
    assert_eq!(r.generation_id, 2);
    let mut sync = sync_req(&s1, 2, &[(&s1, "one"), (&s2, "two")]);
    sync.group_instance_id = Some("i1".into());
    c.sync_group(sync, 0);
    assert_eq!(state(&c), GroupState::Stable);

    // i2 restarts: new member id, same generation, no rebalance, the old leader id.
    let (out, fx) = c.join_group(join_req("", Some("i2"), &range(&["t"])), 100);
    let r = ready(out);
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, s2);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.leader_id, s1);
    assert!(r.members.is_empty());
    assert_eq!(state(&c), GroupState::Stable);
    assert!(matches!(&fx[..], [Effect::PersistGroup { record, .. }]
        if record.members.iter().any(|m| m.member_id == r.member_id)));
    let new2 = r.member_id;
    let mut sync = sync_req(&new2, 2, &[]);
    sync.group_instance_id = Some("i2".into());
    assert_eq!(sync_ready(c.sync_group(sync, 101).0).assignment, Bytes::from_static(b"two"));

    // The old member id is fenced.
    let fenced = HeartbeatRequest {
        group_id: G.into(),
        generation_id: 2,
        member_id: s2.clone(),
        group_instance_id: Some("i2".into()),
    };
    assert_eq!(c.heartbeat(fenced, 102), Some(E::FencedInstanceId));
    let mut old_sync = sync_req(&s2, 2, &[]);
    old_sync.group_instance_id = Some("i2".into());
    assert_eq!(sync_ready(c.sync_group(old_sync, 102).0).error, Some(E::FencedInstanceId));
    let old_join = ready(c.join_group(join_req(&s2, Some("i2"), &range(&["t"])), 102).0);
    assert_eq!(old_join.error, Some(E::FencedInstanceId));
    // Leaving by instance id alone (v3+).
    let (resp, _) =
        c.leave_group(G, vec![LeaveMember { member_id: String::new(), group_instance_id: Some("i2".into()) }], 103);
    assert_eq!(resp.members[0].error, None);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
}

#[test]
fn static_member_restart_with_new_protocol_rebalances() {
    let mut c = GroupCoordinator::new(cfg());
    let r1 = ready(c.join_group(join_req("", Some("i1"), &range(&["t"])), 0).0);
    c.sync_group(sync_req(&r1.member_id, 1, &[]), 0);
    // "roundrobin" alone would be inconsistent with the existing member (Kafka checks against
    // the member's old protocols too); offering both makes roundrobin the vote.
    let out = c.join_group(join_req("", Some("i1"), &[("roundrobin", sub(&["t"])), ("range", sub(&["t"]))]), 1).0;
    // Sole member: it rejoined, so the rebalance completes at once, with the new protocol.
    let r = ready(out);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(r.leader_id, r.member_id);
}

#[test]
fn join_validation_errors() {
    let mut c = GroupCoordinator::new(GroupConfig { group_max_size: Some(1), ..cfg() });
    let mut r = join_req("", None, &range(&["t"]));
    r.group_id = String::new();
    assert_eq!(ready(c.join_group(r, 0).0).error, Some(E::InvalidGroupId));
    let mut r = join_req("", None, &range(&["t"]));
    r.session_timeout_ms = 5_999;
    assert_eq!(ready(c.join_group(r, 0).0).error, Some(E::InvalidSessionTimeout));
    let mut r = join_req("", None, &range(&["t"]));
    r.session_timeout_ms = 1_800_001;
    assert_eq!(ready(c.join_group(r, 0).0).error, Some(E::InvalidSessionTimeout));
    assert_eq!(ready(c.join_group(join_req("ghost", None, &range(&["t"])), 0).0).error, Some(E::UnknownMemberId));
    assert_eq!(ready(c.join_group(join_req("", None, &[]), 0).0).error, Some(E::InconsistentGroupProtocol));

    let (a, out, _) = join_new(&mut c, &["t"], 0);
    ready(out);
    // A different protocol type, or no protocol in common, is inconsistent.
    let mut r = join_req("", None, &range(&["t"]));
    r.protocol_type = "connect".into();
    assert_eq!(ready(c.join_group(r, 0).0).error, Some(E::InconsistentGroupProtocol));
    assert_eq!(
        ready(c.join_group(join_req("", None, &[("sticky", sub(&["t"]))]), 0).0).error,
        Some(E::InconsistentGroupProtocol)
    );
    // group.max.size = 1.
    assert_eq!(ready(c.join_group(join_req("", None, &range(&["t"])), 0).0).error, Some(E::GroupMaxSizeReached));
    assert_eq!(c.snapshot(G).unwrap().members.len(), 1);
    assert_eq!(c.snapshot(G).unwrap().leader_id, Some(a));
}

#[test]
fn old_join_versions_skip_member_id_required() {
    let mut c = GroupCoordinator::new(cfg());
    let mut r = join_req("", None, &range(&["t"]));
    r.request_version = 3;
    let resp = ready(c.join_group(r, 0).0);
    assert_eq!(resp.error, None);
    assert_eq!(resp.generation_id, 1);
    assert_eq!(resp.leader_id, resp.member_id);
}

#[test]
fn pending_member_id_expires() {
    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c);
    let (out, _) = c.join_group(join_req("", None, &range(&["t"])), 0);
    let b = ready(out).member_id;
    hb(&mut c, &a, 1, 9_000);
    c.tick(i64::from(SESSION));
    assert!(c.snapshot(G).unwrap().pending_members.is_empty());
    assert_eq!(ready(c.join_group(join_req(&b, None, &range(&["t"])), 10_001).0).error, Some(E::UnknownMemberId));
    assert_eq!(state(&c), GroupState::Stable);
}

#[test]
fn initial_rebalance_delay_waits_for_more_members() {
    let mut c = GroupCoordinator::new(GroupConfig { group_initial_rebalance_delay_ms: 3_000, ..cfg() });
    let (_a, out_a, _) = join_new(&mut c, &["t"], 0);
    let ta = pending(out_a);
    let (_b, out_b, _) = join_new(&mut c, &["t"], 1_000);
    let tb = pending(out_b);
    assert!(c.tick(2_999).is_empty());
    // A member arrived during the delay: wait one more delay.
    assert!(c.tick(3_000).is_empty());
    assert!(c.tick(5_999).is_empty());
    let fx = c.tick(6_000);
    let done = completed_joins(&fx);
    let mut tickets: Vec<Ticket> = done.iter().map(|(t, _)| *t).collect();
    tickets.sort();
    assert_eq!(tickets, vec![ta, tb]);
    assert!(done.iter().all(|(_, r)| r.generation_id == 1 && r.error.is_none()));
    assert_eq!(done.iter().filter(|(_, r)| !r.members.is_empty()).count(), 1, "one leader");
}

#[test]
fn commit_and_fetch_offsets() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, _b) = two_stable(&mut c);
    let commit = |gen: i32, member: &str| OffsetCommitRequest {
        group_id: G.into(),
        generation_id: gen,
        member_id: member.into(),
        group_instance_id: None,
        offsets: vec![
            CommitOffset { topic: "t".into(), partition: 0, offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: None },
            CommitOffset { topic: "t".into(), partition: 1, offset: 7, leader_epoch: -1, metadata: "x".repeat(5000), commit_timestamp_ms: None },
        ],
    };
    let (res, fx) = commit_replicated(&mut c, commit(2, &a), 50);
    assert_eq!(res[0].error, None);
    assert_eq!(res[1].error, Some(E::OffsetMetadataTooLarge));
    assert!(matches!(&fx[..], [Effect::PersistOffsets { offsets, .. }]
        if offsets.len() == 1 && offsets[0].offset == 42 && offsets[0].commit_timestamp_ms == 50));
    let (res, fx) = commit_replicated(&mut c, commit(1, &a), 51);
    assert!(fx.is_empty());
    assert_eq!(res[0].error, Some(E::IllegalGeneration));
    assert_eq!(commit_replicated(&mut c, commit(2, "ghost"), 51).0[0].error, Some(E::UnknownMemberId));
    // A simple consumer cannot commit into a group with members.
    assert_eq!(commit_replicated(&mut c, commit(-1, ""), 51).0[0].error, Some(E::UnknownMemberId));

    let wanted = [("t".to_string(), 0), ("t".to_string(), 1)];
    let f = c.fetch_offsets(G, Some(&wanted));
    assert_eq!(f.error, None);
    assert_eq!((f.partitions[0].offset, f.partitions[0].leader_epoch, f.partitions[0].metadata.as_str()), (42, 3, "m"));
    assert_eq!(f.partitions[1].offset, -1);
    assert_eq!(c.fetch_offsets(G, None).partitions.len(), 1);
    assert_eq!(c.fetch_offsets("nope", Some(&wanted)).partitions[0].offset, -1);

    // Commits are refused while the leader is assigning, allowed while preparing.
    let (b2, out, _) = join_new(&mut c, &["t"], 60);
    pending(out);
    assert_eq!(commit_replicated(&mut c, commit(2, &a), 61).0[0].error, None);
    c.join_group(join_req(&a, None, &range(&["t"])), 62);
    let _ = b2;
    assert_eq!(state(&c), GroupState::PreparingRebalance, "B from two_stable has not rejoined");
}

#[test]
fn commit_during_completing_rebalance_is_refused() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, out, _) = join_new(&mut c, &["t"], 0);
    ready(out);
    let req = OffsetCommitRequest {
        group_id: G.into(),
        generation_id: 1,
        member_id: a,
        group_instance_id: None,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: None,
        }],
    };
    assert_eq!(commit_replicated(&mut c, req, 1).0[0].error, Some(E::RebalanceInProgress));
}

#[test]
fn standalone_commit_with_generation_minus_one() {
    let mut c = GroupCoordinator::new(cfg());
    let req = |gen| OffsetCommitRequest {
        group_id: "simple".into(),
        generation_id: gen,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: None,
        }],
    };
    // An unknown group with a real generation is refused and not created.
    assert_eq!(commit_replicated(&mut c, req(5), 0).0[0].error, Some(E::IllegalGeneration));
    assert!(c.snapshot("simple").is_none());
    let (res, fx) = commit_replicated(&mut c, req(-1), 0);
    assert_eq!(res[0].error, None);
    assert_eq!(fx.len(), 1);
    assert_eq!(c.fetch_offsets("simple", None).partitions[0].offset, 9);
    let listed = c.list_groups(&[]);
    assert_eq!(
        listed,
        vec![ListedGroup { group_id: "simple".into(), protocol_type: String::new(), state: GroupState::Empty }]
    );
    assert!(c.list_groups(&[GroupState::Stable]).is_empty());
}

#[test]
fn delete_groups_only_when_empty() {
    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c);
    commit_replicated(
        &mut c,
        OffsetCommitRequest {
            group_id: G.into(),
            generation_id: 1,
            member_id: a.clone(),
            group_instance_id: None,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: None,
            }],
        },
        0,
    );
    let (res, fx) = c.delete_groups(&[G.to_string(), "missing".to_string(), String::new()]);
    assert!(fx.is_empty());
    assert_eq!(res[0].1, Some(E::NonEmptyGroup));
    assert_eq!(res[1].1, Some(E::GroupIdNotFound));
    assert_eq!(res[2].1, Some(E::InvalidGroupId));
    c.leave_group(G, vec![LeaveMember { member_id: a, group_instance_id: None }], 1);
    assert_eq!(state(&c), GroupState::Empty);
    let (res, fx) = c.delete_groups(&[G.to_string()]);
    assert_eq!(res[0].1, None);
    assert_eq!(
        fx,
        vec![
            Effect::DeleteOffsets { group_id: G.into(), partitions: vec![("t".into(), 0)] },
            Effect::DeleteGroup { group_id: G.into() },
        ]
    );
    assert!(c.snapshot(G).is_none());
    assert_eq!(c.describe_group(G).state, GroupState::Dead);
}

#[test]
fn offsets_expire_only_when_empty_and_past_retention() {
    let retention = 1_000_000;
    let mut c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: retention, ..cfg() });
    let a = one_stable(&mut c);
    commit_replicated(
        &mut c,
        OffsetCommitRequest {
            group_id: G.into(),
            generation_id: 1,
            member_id: a.clone(),
            group_instance_id: None,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: None,
            }],
        },
        0,
    );
    // Stable: never expired, however old. (The member keeps its session alive.)
    for t in (5_000..=3 * retention).step_by(5_000) {
        hb(&mut c, &a, 1, t);
    }
    assert!(c.expire_offsets(3 * retention).is_empty());
    let left_at = 3 * retention + 1;
    c.leave_group(G, vec![LeaveMember { member_id: a, group_instance_id: None }], left_at);
    assert_eq!(state(&c), GroupState::Empty);
    assert!(c.expire_offsets(left_at + retention - 1).is_empty());
    assert_eq!(c.fetch_offsets(G, None).partitions.len(), 1);
    let fx = c.expire_offsets(left_at + retention);
    assert_eq!(
        fx,
        vec![
            Effect::DeleteOffsets { group_id: G.into(), partitions: vec![("t".into(), 0)] },
            Effect::DeleteGroup { group_id: G.into() },
        ]
    );
    assert!(c.snapshot(G).is_none());

    // Standalone: measured from each commit.
    let commit = |p: i32| OffsetCommitRequest {
        group_id: "s".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: p,
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: None,
        }],
    };
    commit_replicated(&mut c, commit(0), 0);
    commit_replicated(&mut c, commit(1), 500);
    let fx = c.expire_offsets(retention);
    assert_eq!(fx, vec![Effect::DeleteOffsets { group_id: "s".into(), partitions: vec![("t".into(), 0)] }]);
    assert_eq!(c.fetch_offsets("s", None).partitions.len(), 1);
}

#[test]
fn offset_delete_respects_subscriptions() {
    let mut c = GroupCoordinator::new(cfg());
    let a = one_stable(&mut c); // subscribed to "t"
    commit_replicated(
        &mut c,
        OffsetCommitRequest {
            group_id: G.into(),
            generation_id: 1,
            member_id: a,
            group_instance_id: None,
            offsets: vec![
                CommitOffset { topic: "t".into(), partition: 0, offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: None },
                CommitOffset {
                    topic: "old".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: None,
                },
            ],
        },
        0,
    );
    let (resp, fx) = c.delete_offsets(G, &[("t".into(), 0), ("old".into(), 0)]);
    assert_eq!(resp.error, None);
    assert_eq!(resp.partitions[0].error, Some(E::GroupSubscribedToTopic));
    assert_eq!(resp.partitions[1].error, None);
    assert_eq!(fx, vec![Effect::DeleteOffsets { group_id: G.into(), partitions: vec![("old".into(), 0)] }]);
    assert_eq!(c.fetch_offsets(G, None).partitions.len(), 1);
    assert_eq!(c.delete_offsets("missing", &[]).0.error, Some(E::GroupIdNotFound));
    assert_eq!(super::offsets::parse_subscription_topics(&sub(&["a", "bb"])), Some(vec!["a".into(), "bb".into()]));
    assert_eq!(super::offsets::parse_subscription_topics(&[0, 0, 0x7f, 0, 0, 0]), None);
}

#[test]
fn describe_reports_members_and_assignment_when_stable() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, b) = two_stable(&mut c);
    let d = c.describe_group(G);
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.protocol, "range");
    let mut got: Vec<_> = d.members.iter().map(|m| (m.member_id.clone(), m.assignment.clone())).collect();
    got.sort();
    let mut want = vec![(a, Bytes::from_static(b"A")), (b, Bytes::from_static(b"B"))];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(d.members[0].client_host, "/127.0.0.1");
}

fn sample_records() -> Vec<LogRecord> {
    vec![
        LogRecord::Group(GroupRecord {
            group_id: "g".into(),
            generation_id: 7,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            leader_id: Some("m1".into()),
            state_timestamp_ms: -5,
            members: vec![MemberRecord {
                member_id: "m1".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::new(),
            }],
        }),
        LogRecord::GroupTombstone { group_id: "gé".into() },
        LogRecord::Offset(OffsetRecord {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 3,
            offset: i64::MAX,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 123,
        }),
        LogRecord::OffsetTombstone { group_id: "g".into(), topic: "t".into(), partition: -1 },
    ]
}

/// Decode what `key`/`value` encode.
fn round_trip(r: &LogRecord) -> Result<LogRecord, RecordError> {
    LogRecord::decode(&r.key(), r.value().as_deref())
}

#[test]
fn records_round_trip_and_garbage_is_an_error() {
    for r in sample_records() {
        assert_eq!(round_trip(&r), Ok(r.clone()));
        let (key, value) = (r.key(), r.value());
        for cut in 0..key.len() {
            assert!(LogRecord::decode(&key[..cut], value.as_deref()).is_err(), "key prefix {cut} of {r:?}");
        }
        let mut longer = key.to_vec();
        longer.push(0);
        assert_eq!(LogRecord::decode(&longer, value.as_deref()), Err(RecordError::TrailingBytes(1)));
        if let Some(value) = value {
            assert!(matches!(value[..2], [0, 3]), "written as value version 3");
            for cut in 0..value.len() {
                assert!(LogRecord::decode(&key, Some(&value[..cut])).is_err(), "value prefix {cut} of {r:?}");
            }
            let mut longer = value.to_vec();
            longer.push(0);
            assert_eq!(LogRecord::decode(&key, Some(&longer)), Err(RecordError::TrailingBytes(1)));
            let mut v9 = value.to_vec();
            v9[1] = 9;
            assert_eq!(LogRecord::decode(&key, Some(&v9)), Err(RecordError::UnsupportedVersion(9)));
        }
    }
    assert_eq!(LogRecord::decode(&[0, 9], None), Err(RecordError::UnknownKeyType(9)));
    // A member count far beyond the input is rejected before allocating.
    let key = LogRecord::GroupTombstone { group_id: "g".into() }.key();
    let mut huge = vec![0u8, 3, 0, 0];
    huge.extend(0i32.to_be_bytes());
    huge.extend([0xff, 0xff, 0xff, 0xff]);
    huge.extend(0i64.to_be_bytes());
    huge.extend(i32::MAX.to_be_bytes());
    assert_eq!(LogRecord::decode(&key, Some(&huge)), Err(RecordError::Truncated));
    assert_eq!(LogRecord::decode(&[0, 2, 0, 1, 0xff], None), Err(RecordError::InvalidUtf8));
    // Keys: a record and its tombstone share one, different partitions do not.
    let recs = sample_records();
    assert_eq!(
        recs[2].key(),
        LogRecord::OffsetTombstone { group_id: "g".into(), topic: "t".into(), partition: 3 }.key()
    );
    assert_ne!(recs[2].key(), recs[3].key());
    assert_eq!(recs[0].key(), LogRecord::GroupTombstone { group_id: "g".into() }.key());
}

/// Bytes of Apache Kafka's own formats, written out by hand from its message schemas: an
/// OffsetCommitValue v1 (with the expire timestamp) and a GroupMetadataValue v0 (no rebalance
/// timeout, no state timestamp) both load.
#[test]
fn kafka_written_older_versions_load() {
    let key = [&[0u8, 1, 0, 1, b'g', 0, 1, b't'][..], &7i32.to_be_bytes()].concat();
    let mut v1 = vec![0u8, 1];
    v1.extend(42i64.to_be_bytes());
    v1.extend([0, 2, b'm', b'd']);
    v1.extend(5i64.to_be_bytes());
    v1.extend(9i64.to_be_bytes());
    assert_eq!(
        LogRecord::decode(&key, Some(&v1)),
        Ok(LogRecord::Offset(OffsetRecord {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 7,
            offset: 42,
            leader_epoch: -1,
            metadata: "md".into(),
            commit_timestamp_ms: 5,
        }))
    );
    let mut g0 = vec![0u8, 0, 0, 8];
    g0.extend(b"consumer");
    g0.extend(3i32.to_be_bytes());
    g0.extend([0, 5]);
    g0.extend(b"range");
    g0.extend([0, 1, b'm']);
    g0.extend(1i32.to_be_bytes());
    g0.extend([0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
    g0.extend(10_000i32.to_be_bytes());
    g0.extend(1i32.to_be_bytes());
    g0.push(b'S');
    g0.extend(1i32.to_be_bytes());
    g0.push(b'A');
    let LogRecord::Group(g) = LogRecord::decode(&[0, 2, 0, 1, b'g'], Some(&g0)).unwrap() else { panic!("not a group") };
    assert_eq!((g.generation_id, g.protocol_name.as_deref(), g.leader_id.as_deref()), (3, Some("range"), Some("m")));
    assert_eq!(g.members[0].rebalance_timeout_ms, 10_000, "v0 has no rebalance timeout: the session timeout stands in");
    assert_eq!((&g.members[0].subscription[..], &g.members[0].assignment[..]), (&b"S"[..], &b"A"[..]));
}

#[test]
fn replay_rebuilds_offsets_and_group_metadata() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let mut keep = |fx: &[Effect]| {
        for e in fx {
            for r in e.log_records() {
                log.push((r.key(), r.value()));
            }
        }
    };
    // Build the group through the API, logging every persistence effect.
    let (out, fx) = c.join_group(join_req("", None, &range(&["t"])), 0);
    keep(&fx);
    let a = ready(out).member_id;
    let (_, fx) = c.join_group(join_req(&a, None, &range(&["t"])), 0);
    keep(&fx);
    let (_, fx) = c.sync_group(sync_req(&a, 1, &[(&a, "A")]), 0);
    keep(&fx);
    for (p, off) in [(0, 10), (1, 11), (0, 12)] {
        let (_, fx) = commit_replicated(
            &mut c,
            OffsetCommitRequest {
                group_id: G.into(),
                generation_id: 1,
                member_id: a.clone(),
                group_instance_id: None,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: p,
                    offset: off,
                    leader_epoch: 1,
                    metadata: "md".into(),
                    commit_timestamp_ms: None,
                }],
            },
            1,
        );
        keep(&fx);
    }
    let (_, fx) = c.delete_offsets(G, &[("gone".into(), 0)]);
    keep(&fx);
    let (_, fx) = commit_replicated(
        &mut c,
        OffsetCommitRequest {
            group_id: "other".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![CommitOffset {
                topic: "x".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: None,
            }],
        },
        2,
    );
    keep(&fx);
    let (_, fx) = c.delete_groups(&["other".to_string()]);
    keep(&fx);
    assert!(!log.is_empty());

    let decoded: Vec<LogRecord> = log.iter().map(|(k, v)| LogRecord::decode(k, v.as_deref()).unwrap()).collect();
    let mut r = GroupCoordinator::replay(cfg(), decoded, 1_000);
    assert_eq!(r.group_ids().collect::<Vec<_>>(), vec![G]);
    assert_eq!(r.group_record(G), c.group_record(G));
    assert_eq!(r.fetch_offsets(G, None), c.fetch_offsets(G, None));
    assert_eq!(r.fetch_offsets(G, None).partitions[0].offset, 12);
    assert_eq!(r.snapshot(G).unwrap().state, GroupState::Stable);
    // The loaded member may carry on: same generation, same assignment.
    assert_eq!(hb(&mut r, &a, 1, 1_001), None);
    assert_eq!(sync_ready(r.sync_group(sync_req(&a, 1, &[]), 1_002).0).assignment, Bytes::from_static(b"A"));
    // If it does not come back, its session expires and the group rebalances to Empty.
    r.tick(1_002 + i64::from(SESSION));
    let snap = r.snapshot(G).unwrap();
    assert_eq!(snap.state, GroupState::Empty);
    assert_eq!(snap.generation_id, 2);
}

#[test]
fn tick_is_cheap_and_idle_when_nothing_is_due() {
    let mut c = GroupCoordinator::new(cfg());
    assert_eq!(c.next_deadline(), i64::MAX);
    assert!(c.tick(i64::MAX - 1).is_empty());
    let (a, _b) = two_stable(&mut c);
    let d = c.next_deadline();
    assert!(c.tick(d - 1).is_empty());
    assert_eq!(c.next_deadline(), d, "an early tick leaves the deadline alone");
    assert_eq!(hb(&mut c, &a, 2, 5), None);
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(
        key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        value in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)),
        kind in 0u8..3,
    ) {
        let _ = LogRecord::decode(&key, value.as_deref());
        // Also with a valid record type in front, so the decoder gets past the first field.
        let mut k = vec![0, kind];
        k.extend_from_slice(&key);
        if let Ok(r) = LogRecord::decode(&k, value.as_deref()) {
            proptest::prop_assert_eq!(round_trip(&r), Ok(r));
        }
    }
}

/// When the assignment's record cannot be written, the group must not stay Stable on it (as
/// Kafka's resetAndPropagateAssignmentError): it is dropped and the group rebalances; members
/// learn it from their next heartbeat. A stale generation changes nothing.
#[test]
fn an_assignment_that_was_not_stored_is_dropped_and_the_group_rebalances() {
    let mut c = GroupCoordinator::new(cfg());
    let (a, _b) = two_stable(&mut c);
    assert!(c.assignment_not_stored(G, 1, 5).is_empty(), "an older generation is ignored");
    assert_eq!(c.snapshot(G).unwrap().state, GroupState::Stable);
    c.assignment_not_stored(G, 2, 5);
    let snap = c.snapshot(G).unwrap();
    assert_eq!(snap.state, GroupState::PreparingRebalance);
    assert!(snap.members.iter().all(|m| m.assignment.is_empty()), "{snap:?}");
    assert_eq!(hb(&mut c, &a, 2, 6), Some(E::RebalanceInProgress));
}

/// OffsetCommit as the broker runs it when the append is replicated at once.
fn commit_replicated(c: &mut GroupCoordinator, req: OffsetCommitRequest, now: i64) -> (Vec<PartitionResult>, Vec<Effect>) {
    let (res, fx) = c.commit_offsets(req, now);
    for e in &fx {
        if let Effect::PersistOffsets { group_id, commit, .. } = e {
            c.offsets_appended(group_id, *commit, true);
        }
    }
    (res, fx)
}

#[test]
fn a_commit_is_shown_only_once_replicated_and_the_latest_wins() {
    let mut c = GroupCoordinator::new(cfg());
    let commit = |offset: i64| OffsetCommitRequest {
        group_id: "s".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![CommitOffset { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: None }],
    };
    let id = |fx: &[Effect]| match fx {
        [Effect::PersistOffsets { commit, .. }] => *commit,
        other => panic!("expected one PersistOffsets, got {other:?}"),
    };
    let shown = |c: &GroupCoordinator| c.fetch_offsets("s", Some(&[("t".to_string(), 0)])).partitions[0].offset;
    let first = id(&c.commit_offsets(commit(10), 0).1);
    assert_eq!(shown(&c), -1, "pending: not shown");
    c.offsets_appended("s", first, true);
    assert_eq!(shown(&c), 10);
    // A failed append is dropped; the previous commit stays.
    let failed = id(&c.commit_offsets(commit(20), 1).1);
    c.offsets_appended("s", failed, false);
    assert_eq!(shown(&c), 10);
    // Two in flight, completed out of order: the later commit wins.
    let earlier = id(&c.commit_offsets(commit(30), 2).1);
    let later = id(&c.commit_offsets(commit(40), 3).1);
    c.offsets_appended("s", later, true);
    c.offsets_appended("s", earlier, true);
    assert_eq!(shown(&c), 40);
    // An outcome reported twice, or for an unknown group, changes nothing.
    c.offsets_appended("s", earlier, true);
    c.offsets_appended("nope", later, true);
    assert_eq!(shown(&c), 40);
    // A group whose only commit is pending is not expired away.
    let mut c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: 1, ..cfg() });
    let pending = id(&c.commit_offsets(commit(5), 0).1);
    assert!(c.expire_offsets(1_000).is_empty());
    c.offsets_appended("s", pending, true);
    assert_eq!(shown(&c), 5);
}

/// OffsetCommit v1 names its own commit time (Kafka's `commitTimestamp`): it is what the record
/// carries and what expiry counts from.
#[test]
fn a_client_commit_timestamp_is_kept_and_expiry_counts_from_it() {
    let mut c = GroupCoordinator::new(cfg());
    let commit = |ts: Option<i64>| OffsetCommitRequest {
        group_id: "standalone".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![CommitOffset { topic: "t".into(), partition: 0, offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: ts }],
    };
    let (_, fx) = commit_replicated(&mut c, commit(Some(1_000)), 5_000_000);
    assert!(matches!(&fx[..], [Effect::PersistOffsets { offsets, .. }] if offsets[0].commit_timestamp_ms == 1_000));
    let retention = cfg().offsets_retention_ms;
    // Expired by the client's time, though the coordinator received it only now.
    assert!(!c.expire_offsets(1_000 + retention).is_empty());
    assert_eq!(c.fetch_offsets("standalone", None).partitions.len(), 0);
    let (_, fx) = commit_replicated(&mut c, commit(None), 5_000_000);
    assert!(matches!(&fx[..], [Effect::PersistOffsets { offsets, .. }] if offsets[0].commit_timestamp_ms == 5_000_000));
}

#[test]
fn offsets_of_a_group_in_use_elsewhere_do_not_expire() {
    let mut c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: 1_000, ..GroupConfig::default() });
    for g in ["kept", "expired"] {
        let req = OffsetCommitRequest {
            group_id: g.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![CommitOffset { topic: "t".into(), partition: 0, offset: 5, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: None }],
        };
        let (results, fx) = c.commit_offsets(req, 0);
        assert_eq!(results[0].error, None);
        if let Some(commit) = fx.iter().find_map(|e| match e { Effect::PersistOffsets { commit, .. } => Some(*commit), _ => None }) {
            c.offsets_appended(g, commit, true);
        }
    }
    let fx = c.expire_offsets_except(10_000, |id| id == "kept");
    let deleted: Vec<&str> = fx.iter().filter_map(|e| match e { Effect::DeleteOffsets { group_id, .. } => Some(group_id.as_str()), _ => None }).collect();
    assert_eq!(deleted, vec!["expired"]);
}
