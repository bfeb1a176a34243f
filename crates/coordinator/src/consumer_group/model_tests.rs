//! A model test of the consumer-group coordinator: random clients join, heartbeat, apply what
//! they were told (late or at once), leave, fall silent past their session timeout, while topics
//! appear and grow. After every step: no partition is held by two members (counting those
//! pending revocation), no two clients still in the group own the same partition, what a client
//! owns is what its member holds, the target gives every subscribed partition to exactly one
//! member subscribed to it, and epochs never go back; and the records taken after each step,
//! replayed into a new coordinator, give back the same group (what a restart or failover sees).
//! At the end, members that keep heartbeating all converge to the target at the group's epoch.
//!
//! Some clients are static (an instance id): they may leave for now (epoch -2), which keeps
//! their partitions out of everyone else's reach, and come back under a new member id, which
//! takes the old member's place and assignment.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const CLIENTS: usize = 4;
const GROUP: &str = "g";

#[derive(Debug, Clone)]
enum Op {
    Join { client: usize, topics: u8, range: bool, regex: bool, instance: bool },
    /// A static client leaves for now (epoch -2); its next Join comes back with its instance id.
    StaticLeave { client: usize },
    Beat { client: usize, apply: bool },
    Apply { client: usize },
    Leave { client: usize },
    Advance { ms: i64 },
    Grow { topic: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..CLIENTS, 1u8..8, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(client, topics, range, regex, instance)| Op::Join { client, topics, range, regex, instance }),
        1 => (0..CLIENTS).prop_map(|client| Op::StaticLeave { client }),
        8 => (0..CLIENTS, any::<bool>()).prop_map(|(client, apply)| Op::Beat { client, apply }),
        3 => (0..CLIENTS).prop_map(|client| Op::Apply { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::Leave { client }),
        1 => prop_oneof![Just(1_000i64), Just(20_000), Just(50_000)].prop_map(|ms| Op::Advance { ms }),
        1 => (0..3usize).prop_map(|topic| Op::Grow { topic }),
    ]
}

/// A client as librdkafka runs one: its member id and epoch, the partitions it owns, and the
/// assignment it was last sent but may not have applied yet.
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: Option<String>,
    epoch: i32,
    owned: Assignment,
    received: Option<Assignment>,
    subscription: Vec<String>,
    regex: Option<String>,
    assignor: Option<String>,
    instance_id: Option<String>,
    /// Left with epoch -2: out of the group for now, it joins again as the same instance.
    away: bool,
}

struct World {
    c: ConsumerGroupCoordinator,
    topics: Topics,
    clients: Vec<Client>,
    now: i64,
    group_epoch: i32,
    member_epochs: BTreeMap<String, i32>,
    /// Every record the coordinator asked to append, in order: the group's log.
    log: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
}

/// What of a group is stored: everything but timers and compiled regexes.
fn stored(g: &super::coordinator::Group) -> impl PartialEq + std::fmt::Debug {
    let clean = |a: &Assignment| -> Assignment { a.iter().filter(|(_, ps)| !ps.is_empty()).map(|(t, ps)| (*t, ps.clone())).collect() };
    let members: Vec<_> = g
        .members
        .values()
        .map(|m| {
            (
                m.id.clone(),
                m.epoch,
                m.previous_epoch,
                m.state,
                clean(&m.assigned),
                clean(&m.pending_revocation),
                m.subscribed_topic_names.clone(),
                m.subscribed_topic_regex.clone(),
                m.rebalance_timeout_ms,
                m.server_assignor.clone(),
                m.instance_id.clone(),
            )
        })
        .collect();
    let target: BTreeMap<String, Assignment> = g.target.iter().map(|(m, a)| (m.clone(), clean(a))).collect();
    (g.epoch, g.assignment_epoch, g.subscribed_topics.clone(), target, members)
}

/// Partition p's replicas are in racks r{p%2} and r{p%3}: the rack-aware assignors are at work
/// for clients with a rack (even clients), and the racks go through the records.
fn with_racks(meta: TopicMeta) -> TopicMeta {
    let racks: Vec<BTreeSet<String>> = (0..meta.partitions).map(|p| BTreeSet::from([format!("r{}", p % 2), format!("r{}", p % 3)])).collect();
    TopicMeta { racks: racks.into(), ..meta }
}

fn topic_id(i: usize) -> Uuid {
    Uuid::from_u128(i as u128 + 1)
}

impl World {
    fn new() -> World {
        let mut topics = Topics::new();
        topics.insert("t0".into(), with_racks(TopicMeta::new(topic_id(0), 3)));
        topics.insert("t1".into(), with_racks(TopicMeta::new(topic_id(1), 5)));
        World {
            c: ConsumerGroupCoordinator::new(ConsumerGroupConfig::default()),
            topics,
            clients: vec![Client::default(); CLIENTS],
            now: 0,
            group_epoch: 0,
            member_epochs: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn beat(&mut self, i: usize, joining: bool, apply: bool) {
        let cl = self.clients[i].clone();
        let req = HeartbeatRequest {
            group_id: GROUP.into(),
            member_id: cl.member_id.clone().unwrap_or_else(|| format!("m{i}-{}", self.now)),
            member_epoch: if joining { 0 } else { cl.epoch },
            rebalance_timeout_ms: if joining { 300_000 } else { -1 },
            subscribed_topic_names: if joining { Some(cl.subscription.clone()) } else { None },
            subscribed_topic_regex: if joining { cl.regex.clone() } else { None },
            server_assignor: cl.assignor.clone(),
            // librdkafka sends its instance id when joining (null afterwards: unchanged).
            instance_id: if joining { cl.instance_id.clone() } else { None },
            rack_id: (joining && i.is_multiple_of(2)).then(|| format!("r{}", i % 3)),
            owned: Some(if joining { Assignment::new() } else { cl.owned.clone() }),
            ..Default::default()
        };
        let resp = self.c.heartbeat(req, &self.topics, self.now);
        let cl = &mut self.clients[i];
        match resp.error {
            None => {
                cl.member_id = resp.member_id;
                cl.epoch = resp.member_epoch;
                if let Some(a) = resp.assignment {
                    cl.received = Some(a);
                }
                if apply {
                    if let Some(a) = cl.received.take() {
                        cl.owned = a;
                    }
                }
            }
            // Fenced or forgotten: the client gives up everything and is out until it joins.
            Some(_) => *cl = Client::default(),
        }
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Join { client, .. } if self.clients[client].away => {
                // The same instance, same subscription, a new member id.
                let cl = &mut self.clients[client];
                cl.away = false;
                cl.owned = Assignment::new();
                cl.received = None;
                self.beat(client, true, false);
            }
            Op::Join { client, topics, range, regex, instance } => {
                if self.clients[client].member_id.is_none() {
                    let names = ["t0", "t1", "t2"];
                    let subscription = (0..3).filter(|b| topics & (1 << b) != 0).map(|b| names[b].to_string()).collect();
                    // A regex subscription picks up t2 once Grow creates it.
                    let regex = regex.then(|| "t[12]".to_string());
                    let instance_id = instance.then(|| format!("instance-{client}"));
                    self.clients[client] = Client { subscription, regex, assignor: range.then(|| "range".into()), instance_id, ..Default::default() };
                    self.beat(client, true, false);
                }
            }
            Op::Beat { client, apply } => {
                if self.clients[client].member_id.is_some() {
                    self.beat(client, false, apply);
                }
            }
            Op::Apply { client } => {
                let cl = &mut self.clients[client];
                if let Some(a) = cl.received.take() {
                    cl.owned = a;
                }
            }
            Op::Leave { client } => {
                let cl = self.clients[client].clone();
                if let Some(member_id) = cl.member_id {
                    let req = HeartbeatRequest { group_id: GROUP.into(), member_id, member_epoch: -1, rebalance_timeout_ms: -1, ..Default::default() };
                    let known = self.c.groups.get(GROUP).is_some_and(|g| g.members.contains_key(req.member_id.as_str()));
                    let resp = self.c.heartbeat(req, &self.topics, self.now);
                    if known {
                        assert_eq!(resp.error, None);
                        assert_eq!(resp.member_epoch, -1);
                    } else {
                        // Expired meanwhile: the coordinator no longer knows it.
                        assert_eq!(resp.error, Some(kafka_protocol::error::ResponseError::UnknownMemberId));
                    }
                    self.clients[client] = Client::default();
                }
            }
            Op::StaticLeave { client } => {
                let cl = self.clients[client].clone();
                if let (Some(member_id), Some(instance_id)) = (cl.member_id, cl.instance_id.clone()) {
                    let req = HeartbeatRequest {
                        group_id: GROUP.into(),
                        member_id: member_id.clone(),
                        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                        instance_id: Some(instance_id),
                        rebalance_timeout_ms: -1,
                        ..Default::default()
                    };
                    let known = self.c.groups.get(GROUP).is_some_and(|g| g.members.contains_key(member_id.as_str()));
                    let resp = self.c.heartbeat(req, &self.topics, self.now);
                    if known {
                        assert_eq!(resp.error, None);
                        assert_eq!(resp.member_epoch, LEAVE_GROUP_STATIC_MEMBER_EPOCH);
                        let g = &self.c.groups[GROUP];
                        let m = &g.members[member_id.as_str()];
                        assert_eq!(m.epoch, LEAVE_GROUP_STATIC_MEMBER_EPOCH, "the member stays, at epoch -2");
                        assert!(m.pending_revocation.is_empty());
                    }
                    // The client drops what it owned (librdkafka revokes on close).
                    self.clients[client] = Client { away: known, ..Client { member_id: None, epoch: 0, owned: Assignment::new(), received: None, ..cl } };
                }
            }
            Op::Advance { ms } => {
                self.now += ms;
                self.c.tick(&self.topics, self.now);
            }
            Op::Grow { topic } => {
                let name = format!("t{topic}");
                let meta = self.topics.entry(name).or_insert(TopicMeta::new(topic_id(topic), 0));
                meta.partitions += 2;
                *meta = with_racks(meta.clone());
            }
        }
    }

    fn check(&mut self) {
        self.log.extend(self.c.take_records(GROUP));
        let mut replayed = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
        for (k, v) in &self.log {
            replayed.load_record(k, v.as_deref(), self.now).expect("a record the coordinator wrote decodes");
        }
        match (self.c.groups.get(GROUP), replayed.groups.get(GROUP)) {
            (Some(g), Some(r)) => assert_eq!(stored(g), stored(r), "the replayed group differs"),
            (None, None) => {}
            (g, r) => panic!("group present {} in memory, {} after replay", g.is_some(), r.is_some()),
        }
        // Clients whose member the coordinator forgot (session expired) are zombies: they find
        // out on their next heartbeat. Only the others count for ownership.
        let members: BTreeMap<String, super::member::Member> =
            self.c.groups.get(GROUP).map(|g| g.members.clone()).unwrap_or_default();
        let mut held: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for m in members.values() {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in ps {
                    assert!(held.insert((*t, *p)), "partition {t}/{p} held by two members");
                }
            }
        }
        let mut owned: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for cl in &self.clients {
            let Some(m) = cl.member_id.as_ref().and_then(|id| members.get(id)) else { continue };
            for (t, ps) in &cl.owned {
                for p in ps {
                    assert!(owned.insert((*t, *p)), "partition {t}/{p} owned by two clients");
                    assert!(m.holds(t, *p), "a client owns {t}/{p}, which its member does not hold");
                }
            }
        }
        if let Some(g) = self.c.groups.get(GROUP) {
            assert!(g.epoch >= self.group_epoch, "group epoch went back");
            self.group_epoch = g.epoch;
            for m in g.members.values() {
                if let Some(prev) = self.member_epochs.get(&m.id) {
                    // -2: a static member that left for now (the one way down).
                    assert!(m.epoch >= *prev || m.epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH, "member epoch went back");
                }
                assert!(m.epoch <= g.epoch);
            }
            self.member_epochs = g.members.values().map(|m| (m.id.clone(), m.epoch)).collect();
            // The target: every partition of a subscribed topic (as of its epoch) exactly once,
            // to a member subscribed to it.
            let mut targeted: BTreeSet<(Uuid, i32)> = BTreeSet::new();
            for (member_id, a) in &g.target {
                let m = &g.members[member_id];
                for (t, ps) in a {
                    let name = g.subscribed_topics.iter().find(|(_, meta)| meta.id == *t).map(|(n, _)| n.clone());
                    assert!(name.is_some_and(|n| g.subscription_of(m, &self.topics).contains(&n)), "target gives a member a topic it does not subscribe to");
                    for p in ps {
                        assert!(targeted.insert((*t, *p)), "target gives {t}/{p} twice");
                    }
                }
            }
            let expected: BTreeSet<(Uuid, i32)> = g.subscribed_topics.values().flat_map(|meta| (0..meta.partitions).map(move |p| (meta.id, p))).collect();
            if !g.members.is_empty() {
                assert_eq!(targeted, expected, "the target does not cover the subscribed partitions");
            }
        }
    }

    /// Every client still in the group heartbeats and applies at once, round after round.
    fn settle(&mut self) {
        // Static clients that left for now come back first (else they hold partitions until
        // their session times out).
        for i in 0..CLIENTS {
            if self.clients[i].away {
                self.step(&Op::Join { client: i, topics: 0, range: false, regex: false, instance: true });
                self.check();
            }
        }
        for _ in 0..20 {
            for i in 0..CLIENTS {
                if self.clients[i].member_id.is_some() {
                    self.now += 100;
                    self.beat(i, false, true);
                    self.check();
                }
            }
        }
        let Some(g) = self.c.groups.get(GROUP) else { return };
        for m in g.members.values() {
            assert_eq!(m.epoch, g.epoch, "member {} did not reach the group epoch", m.id);
            assert_eq!(m.state, MemberState::Stable);
            assert!(m.pending_revocation.is_empty());
            let target = g.target.get(&m.id).cloned().unwrap_or_default();
            let assigned: Assignment = m.assigned.iter().filter(|(_, ps)| !ps.is_empty()).map(|(t, ps)| (*t, ps.clone())).collect();
            let target: Assignment = target.into_iter().filter(|(_, ps)| !ps.is_empty()).collect();
            assert_eq!(assigned, target, "member {} did not converge to its target", m.id);
            let cl = self.clients.iter().find(|c| c.member_id.as_deref() == Some(m.id.as_str()));
            let owned: Assignment = cl.map(|c| c.owned.clone()).unwrap_or_default().into_iter().filter(|(_, ps)| !ps.is_empty()).collect();
            assert_eq!(owned, target, "client of {} does not own its target", m.id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn reconciliation_never_double_assigns_and_converges(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op);
            w.check();
        }
        w.settle();
    }
}
