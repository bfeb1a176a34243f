//! Property test: random interleavings of several clients against the coordinator, with the
//! protocol's invariants checked after every step.
//!
//! The clients behave like real (slightly erratic) consumers: they adopt the ids and generations
//! they are given, reset on UNKNOWN_MEMBER_ID, and the one that believes it leads sends an
//! assignment for every member it was told about. They may also send requests at any time,
//! including with stale ids and while a previous request is parked.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use proptest::prelude::*;

use super::*;

const G: &str = "g";
const CLIENTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// What a well-behaved client would do next (join, sync or heartbeat).
    Act(usize),
    Join(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    /// Client, partition, offset, and whether the append is replicated.
    Commit(usize, i32, i64, bool),
    /// A TxnOffsetCommit of a producer outside group management: producer, partition, offset, replicated.
    TxnCommit(i64, i32, i64, bool),
    /// The marker of a producer's transaction reaches the offsets partition: commit or abort.
    Marker(i64, bool),
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        12 => c.clone().prop_map(Op::Act),
        2 => c.clone().prop_map(Op::Join),
        1 => c.clone().prop_map(Op::Sync),
        1 => c.clone().prop_map(Op::Heartbeat),
        1 => c.clone().prop_map(Op::Leave),
        2 => (c, 0..3i32, 0..1000i64, prop::bool::weighted(0.8)).prop_map(|(c, p, o, r)| Op::Commit(c, p, o, r)),
        1 => (0..2i64, 0..3i32, 0..1000i64, prop::bool::weighted(0.8)).prop_map(|(pid, p, o, r)| Op::TxnCommit(pid, p, o, r)),
        1 => (0..2i64, prop::bool::weighted(0.7)).prop_map(|(pid, c)| Op::Marker(pid, c)),
        4 => (0..4_000i64).prop_map(Op::Tick),
        1 => (0..25_000i64).prop_map(Op::Tick),
    ]
}

#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    leader: bool,
    known_members: Vec<String>,
    next: Next,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Next {
    #[default]
    Join,
    Sync,
    Heartbeat,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Join,
    Sync,
}

struct Model {
    c: GroupCoordinator,
    now: i64,
    clients: Vec<Client>,
    /// Parked requests: ticket -> (client, kind, member id it was sent with).
    outstanding: HashMap<Ticket, (usize, Kind, String)>,
    seen_tickets: HashSet<Ticket>,
    /// Member ids the coordinator has dropped; ids are never reused.
    removed: HashSet<String>,
    members_before: Vec<String>,
    max_generation: i32,
    /// What the last applied leader sync gave each member.
    last_assignment: BTreeMap<String, Bytes>,
    /// What a client believed it sent in the current Sync op, if it was the leader.
    sent_assignment: Option<BTreeMap<String, Bytes>>,
    offsets: BTreeMap<i32, i64>,
    /// The order of commits, as their records' order in the log: the later of a plain and a transactional commit
    /// wins when the transaction commits.
    seq: u64,
    shown_seq: BTreeMap<i32, u64>,
    /// Replicated transactional commits per producer: partition -> (offset, seq).
    pending_txn: BTreeMap<i64, BTreeMap<i32, (i64, u64)>>,
}

impl Model {
    fn new(delay: i64) -> Model {
        let config = GroupConfig { group_initial_rebalance_delay_ms: delay, ..GroupConfig::default() };
        Model {
            c: GroupCoordinator::new(config),
            now: 0,
            clients: vec![Client::default(); CLIENTS],
            outstanding: HashMap::new(),
            seen_tickets: HashSet::new(),
            removed: HashSet::new(),
            members_before: Vec::new(),
            max_generation: 0,
            last_assignment: BTreeMap::new(),
            sent_assignment: None,
            offsets: BTreeMap::new(),
            seq: 0,
            shown_seq: BTreeMap::new(),
            pending_txn: BTreeMap::new(),
        }
    }

    fn park(&mut self, t: Ticket, client: usize, kind: Kind, member: String) -> Result<(), TestCaseError> {
        prop_assert!(self.seen_tickets.insert(t), "ticket {t:?} handed out twice");
        self.outstanding.insert(t, (client, kind, member));
        Ok(())
    }

    fn assert_alive(&self, member: &str, what: &str) -> Result<(), TestCaseError> {
        prop_assert!(!self.removed.contains(member), "{what} succeeded for removed member {member}");
        Ok(())
    }

    fn on_join(&mut self, i: usize, sent_id: &str, r: JoinResponse) -> Result<(), TestCaseError> {
        let cl = &mut self.clients[i];
        match r.error {
            None => {
                if !sent_id.is_empty() {
                    prop_assert!(!self.removed.contains(sent_id), "join succeeded for removed {sent_id}");
                }
                prop_assert!(!self.removed.contains(&r.member_id), "join succeeded for removed {}", r.member_id);
                prop_assert!(!r.leader_id.is_empty());
                prop_assert!(r.generation_id >= 1);
                let ids: Vec<String> = r.members.iter().map(|m| m.member_id.clone()).collect();
                if !ids.is_empty() {
                    prop_assert_eq!(&r.leader_id, &r.member_id, "only the leader gets the member list");
                    prop_assert!(ids.contains(&r.member_id));
                }
                cl.member_id = r.member_id.clone();
                cl.generation = r.generation_id;
                cl.leader = r.leader_id == r.member_id;
                cl.known_members = ids;
                cl.next = Next::Sync;
            }
            Some(E::MemberIdRequired) => cl.member_id = r.member_id,
            Some(E::UnknownMemberId) => *cl = Client::default(),
            Some(_) => cl.next = Next::Join,
        }
        Ok(())
    }

    fn on_sync(&mut self, i: usize, sent_id: &str, r: SyncResponse) -> Result<(), TestCaseError> {
        match r.error {
            None => {
                self.assert_alive(sent_id, "sync")?;
                let want = self.last_assignment.get(sent_id).cloned().unwrap_or_default();
                prop_assert_eq!(r.assignment, want, "sync answered {} with another assignment", sent_id);
                self.clients[i].next = Next::Heartbeat;
            }
            Some(E::UnknownMemberId) => self.clients[i] = Client::default(),
            Some(_) => self.clients[i].next = Next::Join,
        }
        Ok(())
    }

    /// Apply one step's effects, then check every invariant.
    fn settle(&mut self, fx: Vec<Effect>) -> Result<(), TestCaseError> {
        // Membership first, so responses are checked against this step's removals too.
        let snap = self.c.snapshot(G);
        let members: Vec<String> =
            snap.as_ref().map(|s| s.members.iter().map(|m| m.member_id.clone()).collect()).unwrap_or_default();
        for id in &self.members_before {
            if !members.contains(id) {
                self.removed.insert(id.clone());
            }
        }
        for id in &members {
            prop_assert!(!self.removed.contains(id), "removed member {id} is back");
        }
        self.members_before = members.clone();

        for e in fx {
            match e {
                Effect::CompleteJoin { ticket, response } => {
                    let entry = self.outstanding.remove(&ticket);
                    prop_assert!(matches!(entry, Some((_, Kind::Join, _))), "join ticket {ticket:?} not parked");
                    if let Some((i, _, sent)) = entry {
                        self.on_join(i, &sent, response)?;
                    }
                }
                Effect::CompleteSync { ticket, response } => {
                    let entry = self.outstanding.remove(&ticket);
                    prop_assert!(matches!(entry, Some((_, Kind::Sync, _))), "sync ticket {ticket:?} not parked");
                    if let Some((i, _, sent)) = entry {
                        self.on_sync(i, &sent, response)?;
                    }
                }
                Effect::PersistGroup { record, .. } => {
                    prop_assert_eq!(
                        { let r = LogRecord::Group(record.clone()); LogRecord::decode(&r.key(), r.value().as_deref()) },
                        Ok(LogRecord::Group(record))
                    );
                }
                Effect::PersistOffsets { .. } | Effect::PersistTxnOffsets { .. } => {}
                Effect::DeleteGroup { .. } | Effect::DeleteOffsets { .. } => {
                    prop_assert!(false, "nothing in this model deletes");
                }
            }
        }

        if let Some(s) = snap {
            match &s.leader_id {
                Some(l) => prop_assert!(members.contains(l), "leader {l} is not a member"),
                None => prop_assert!(members.is_empty(), "members without a leader"),
            }
            prop_assert!(s.generation_id >= self.max_generation, "generation went back");
            self.max_generation = s.generation_id;
            if s.state == GroupState::Stable {
                for m in &s.members {
                    prop_assert_eq!(
                        Some(&m.assignment),
                        self.last_assignment.get(&m.member_id),
                        "Stable member {} lacks the leader's assignment",
                        m.member_id
                    );
                }
            }
            for m in &s.members {
                let parked = |k: fn(&Kind) -> bool| {
                    self.outstanding.values().filter(|(_, kind, id)| k(kind) && *id == m.member_id).count()
                };
                prop_assert_eq!(parked(|k| matches!(k, Kind::Join)), usize::from(m.awaiting_join));
                prop_assert_eq!(parked(|k| matches!(k, Kind::Sync)), usize::from(m.awaiting_sync));
            }
        }
        for p in 0..3 {
            let unstable = self.pending_txn.values().any(|o| o.contains_key(&p));
            let got = self.c.fetch_offsets_with(G, Some(&[("t".to_string(), p)]), true);
            let want = if unstable { Some(E::UnstableOffsetCommit) } else { None };
            prop_assert_eq!(got.partitions[0].error, want, "stable fetch of partition {}", p);
        }
        for (p, off) in &self.offsets {
            let got = self.c.fetch_offsets(G, Some(&[("t".to_string(), *p)]));
            prop_assert_eq!(got.partitions[0].offset, *off, "committed offset of partition {} lost", p);
        }
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        self.sent_assignment = None;
        let fx = match op {
            Op::Act(i) => {
                // A real client waits for its parked request.
                if self.outstanding.values().any(|(c, _, _)| *c == i) {
                    return Ok(());
                }
                return self.step(match self.clients[i].next {
                    Next::Join => Op::Join(i),
                    Next::Sync => Op::Sync(i),
                    Next::Heartbeat => Op::Heartbeat(i),
                });
            }
            Op::Join(i) => {
                let sent = self.clients[i].member_id.clone();
                let req = JoinRequest {
                    group_id: G.into(),
                    member_id: sent.clone(),
                    group_instance_id: None,
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::from(format!("meta-{i}")))],
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 20_000,
                    client_id: format!("c{i}"),
                    client_host: "h".into(),
                    request_version: 7,
                };
                let (out, fx) = self.c.join_group(req, self.now);
                match out {
                    JoinOutcome::Pending(t) => self.park(t, i, Kind::Join, sent)?,
                    JoinOutcome::Ready(r) => {
                        // Answer after the step's membership update, like the effects.
                        self.settle(fx)?;
                        return self.on_join(i, &sent, r);
                    }
                }
                fx
            }
            Op::Sync(i) => {
                let cl = self.clients[i].clone();
                let assignments: Vec<(String, Bytes)> = if cl.leader {
                    cl.known_members
                        .iter()
                        .map(|m| (m.clone(), Bytes::from(format!("{}:{m}", cl.generation))))
                        .collect()
                } else {
                    Vec::new()
                };
                let req = SyncRequest {
                    group_id: G.into(),
                    generation_id: cl.generation,
                    member_id: cl.member_id.clone(),
                    group_instance_id: None,
                    protocol_type: Some("consumer".into()),
                    protocol_name: None,
                    assignments: assignments.clone(),
                };
                let (out, fx) = self.c.sync_group(req, self.now);
                // A PersistGroup here means the leader's assignment was applied.
                for e in &fx {
                    if let Effect::PersistGroup { record, .. } = e {
                        let sent: BTreeMap<String, Bytes> = assignments.iter().cloned().collect();
                        let mut applied = BTreeMap::new();
                        for m in &record.members {
                            let want = sent.get(&m.member_id).cloned().unwrap_or_default();
                            prop_assert_eq!(&m.assignment, &want);
                            applied.insert(m.member_id.clone(), want);
                        }
                        self.last_assignment = applied;
                    }
                }
                match out {
                    SyncOutcome::Pending(t) => self.park(t, i, Kind::Sync, cl.member_id.clone())?,
                    SyncOutcome::Ready(r) => {
                        self.settle(fx)?;
                        return self.on_sync(i, &cl.member_id, r);
                    }
                }
                fx
            }
            Op::Heartbeat(i) => {
                let cl = self.clients[i].clone();
                let req = HeartbeatRequest {
                    group_id: G.into(),
                    generation_id: cl.generation,
                    member_id: cl.member_id.clone(),
                    group_instance_id: None,
                };
                let r = self.c.heartbeat(req, self.now);
                self.settle(Vec::new())?;
                match r {
                    None => self.assert_alive(&cl.member_id, "heartbeat")?,
                    Some(E::UnknownMemberId) => self.clients[i] = Client::default(),
                    Some(_) => self.clients[i].next = Next::Join,
                }
                return Ok(());
            }
            Op::Leave(i) => {
                let id = self.clients[i].member_id.clone();
                if id.is_empty() {
                    return Ok(());
                }
                let (resp, fx) = self.c.leave_group(
                    G,
                    vec![LeaveMember { member_id: id.clone(), group_instance_id: None }],
                    self.now,
                );
                if resp.members[0].error.is_none() {
                    self.clients[i] = Client::default();
                }
                fx
            }
            Op::Commit(i, p, off, replicated) => {
                let cl = self.clients[i].clone();
                let standalone = cl.member_id.is_empty();
                let req = OffsetCommitRequest {
                    group_id: G.into(),
                    generation_id: if standalone { -1 } else { cl.generation },
                    member_id: cl.member_id.clone(),
                    group_instance_id: None,
                    offsets: vec![CommitOffset {
                        topic: "t".into(),
                        partition: p,
                        offset: off,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: None,
                    }],
                };
                let (res, fx) = self.c.commit_offsets(req, self.now);
                if res[0].error.is_none() {
                    if !standalone {
                        self.assert_alive(&cl.member_id, "commit")?;
                    }
                    // Shown only once replicated; a failed append leaves the previous commit.
                    self.seq += 1;
                    if replicated {
                        self.shown_seq.insert(p, self.seq);
                        self.offsets.insert(p, off);
                    }
                }
                for e in &fx {
                    if let Effect::PersistOffsets { group_id, commit, .. } = e {
                        self.c.offsets_appended(group_id, *commit, replicated);
                    }
                }
                fx
            }
            Op::TxnCommit(pid, p, off, replicated) => {
                let req = TxnOffsetCommitRequest {
                    group_id: G.into(),
                    producer_id: pid,
                    producer_epoch: 0,
                    generation_id: -1,
                    member_id: String::new(),
                    group_instance_id: None,
                    offsets: vec![CommitOffset { topic: "t".into(), partition: p, offset: off, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: None }],
                };
                let (res, fx) = self.c.commit_txn_offsets(req, self.now);
                prop_assert_eq!(res[0].error, None, "a TxnOffsetCommit without group information is always accepted");
                self.seq += 1;
                for e in &fx {
                    if let Effect::PersistTxnOffsets { group_id, commit, .. } = e {
                        self.c.offsets_appended(group_id, *commit, replicated);
                    }
                }
                if replicated {
                    self.pending_txn.entry(pid).or_default().insert(p, (off, self.seq));
                }
                fx
            }
            Op::Marker(pid, commit) => {
                self.c.complete_txn(pid, commit, |_| true, self.now);
                for (p, (off, seq)) in self.pending_txn.remove(&pid).unwrap_or_default() {
                    if commit && self.shown_seq.get(&p).is_none_or(|s| *s < seq) {
                        self.shown_seq.insert(p, seq);
                        self.offsets.insert(p, off);
                    }
                }
                Vec::new()
            }
            Op::Tick(dt) => {
                self.now += dt;
                self.c.tick(self.now)
            }
        };
        self.settle(fx)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn coordinator_invariants(delay in prop_oneof![Just(0i64), Just(3_000i64)], ops in proptest::collection::vec(op(), 1..80)) {
        let mut m = Model::new(delay);
        for op in ops {
            m.step(op)?;
        }
        // Far in the future every session and timer has run out: nothing may stay parked.
        for _ in 0..3 {
            m.now += 1_000_000_000;
            let fx = m.c.tick(m.now);
            m.settle(fx)?;
        }
        prop_assert!(m.outstanding.is_empty(), "never completed: {:?}", m.outstanding);
        if std::env::var_os("GROUP_MODEL_STATS").is_some() {
            eprintln!("STAT gen={} tickets={} removed={} offsets={} lastassign={}", m.max_generation, m.seen_tickets.len(), m.removed.len(), m.offsets.len(), m.last_assignment.len());
        }
    }
}
