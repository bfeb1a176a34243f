//! A model test of a consumer group with members of both protocols: it starts as the upgrade of
//! a classic group, then random clients join (classic ones eager or cooperative, consumer ones),
//! heartbeat, rejoin, leave and fall silent. After every step no partition is held by two
//! members (the server's view, counting those pending revocation) and no two clients own the
//! same partition (the clients' views); the records taken after each step replay into the same
//! group; a downgrade happens exactly when the last consumer-protocol member goes and only
//! classic members remain.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::group::{HeartbeatRequest as Beat, JoinRequest, LeaveMember, MigratingGroup, MigratingMember, SyncRequest};

const T: Uuid = Uuid::from_u128(3);
const PARTITIONS: i32 = 6;
const CLIENTS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    /// A client not in the group joins (classic clients 0-2, consumer clients 3-4).
    Join { client: usize },
    /// A classic client rejoins (with what it owns, or eagerly with nothing) and syncs.
    Rejoin { client: usize },
    Beat { client: usize },
    Leave { client: usize },
    Advance { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..CLIENTS).prop_map(|client| Op::Join { client }),
        3 => (0..3usize).prop_map(|client| Op::Rejoin { client }),
        6 => (0..CLIENTS).prop_map(|client| Op::Beat { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::Leave { client }),
        1 => prop_oneof![Just(1_000i64), Just(12_000), Just(50_000)].prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone, Default)]
struct Client {
    member_id: Option<String>,
    /// The generation (classic) or member epoch (consumer) it last heard.
    epoch: i32,
    owned: BTreeSet<i32>,
    /// Classic clients: eager ones give everything up before rejoining.
    eager: bool,
}

fn subscription(owned: &BTreeSet<i32>) -> Bytes {
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

fn owned_set(a: &Assignment) -> BTreeSet<i32> {
    a.get(&T).cloned().unwrap_or_default()
}

struct World {
    c: ConsumerGroupCoordinator,
    topics: Topics,
    clients: Vec<Client>,
    now: i64,
    log: Vec<RawRecord>,
    downgraded: bool,
}

impl World {
    fn new(eager: [bool; 3]) -> World {
        let topics = Topics::from([("t".to_string(), TopicMeta::new(T, PARTITIONS))]);
        let mut clients = vec![Client::default(); CLIENTS];
        for (i, e) in eager.iter().enumerate() {
            clients[i].eager = *e;
        }
        // Clients 0 and 1 are the classic group's members at generation 3, owning 0-2 and 3-5.
        let mut members = Vec::new();
        for (i, ps) in [[0, 1, 2], [3, 4, 5]].iter().enumerate() {
            let owned: BTreeSet<i32> = ps.iter().copied().collect();
            members.push(MigratingMember {
                member_id: format!("m{i}"),
                instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 20_000,
                protocols: vec![("p".into(), subscription(&owned))],
                assignment: embedded::encode_assignment(1, &Assignment::from([(T, owned.clone())]), &topics),
            });
            clients[i] = Client { member_id: Some(format!("m{i}")), epoch: 3, owned, eager: clients[i].eager };
        }
        let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
        c.upgrade("g", &MigratingGroup { generation_id: 3, protocol_type: Some("consumer".into()), protocol_name: Some("p".into()), members }, &topics, 0)
            .expect("upgrade");
        let log = c.take_records("g");
        World { c, topics, clients, now: 0, log, downgraded: false }
    }

    fn reset(&mut self, client: usize) {
        let eager = self.clients[client].eager;
        self.clients[client] = Client { eager, ..Default::default() };
    }

    fn classic(client: usize) -> bool {
        client < 3
    }

    fn join_request(&self, client: usize, owned: &BTreeSet<i32>) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: self.clients[client].member_id.clone().unwrap_or_default(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("p".into(), subscription(owned))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            client_id: "c".into(),
            client_host: "h".into(),
            request_version: 3,
        }
    }

    fn classic_join_and_sync(&mut self, client: usize) {
        if self.clients[client].eager {
            self.clients[client].owned.clear();
        }
        let owned = self.clients[client].owned.clone();
        let j = self.c.classic_join(self.join_request(client, &owned), &self.topics, self.now);
        if j.error.is_some() {
            self.reset(client);
            return;
        }
        let sync = SyncRequest {
            group_id: "g".into(),
            generation_id: j.generation_id,
            member_id: j.member_id.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: j.protocol_name.clone(),
            assignments: Vec::new(),
        };
        match self.c.classic_sync(&sync, &self.topics, self.now) {
            Some(s) if s.error.is_none() => {
                let got: BTreeSet<i32> = embedded::decode_assignment(&s.assignment).expect("ours").into_iter().flat_map(|(_, ps)| ps).collect();
                self.clients[client] = Client { member_id: Some(j.member_id), epoch: j.generation_id, owned: got, eager: self.clients[client].eager };
            }
            // REBALANCE_IN_PROGRESS: it rejoins later, keeping what it had.
            Some(s) if s.error == Some(ResponseError::RebalanceInProgress) => {
                self.clients[client].member_id = Some(j.member_id);
                self.clients[client].epoch = j.generation_id;
            }
            _ => self.reset(client),
        }
    }

    fn consumer_beat(&mut self, client: usize) {
        let cl = self.clients[client].clone();
        let owned = Assignment::from([(T, cl.owned.clone())]);
        let req = match &cl.member_id {
            None => HeartbeatRequest {
                group_id: "g".into(),
                member_id: format!("k{client}-{}", self.now),
                member_epoch: 0,
                rebalance_timeout_ms: 20_000,
                subscribed_topic_names: Some(vec!["t".into()]),
                owned: Some(Assignment::new()),
                ..Default::default()
            },
            Some(id) => HeartbeatRequest { group_id: "g".into(), member_id: id.clone(), member_epoch: cl.epoch, rebalance_timeout_ms: -1, owned: Some(owned), ..Default::default() },
        };
        let r = self.c.heartbeat(req, &self.topics, self.now);
        if r.error.is_some() {
            self.reset(client);
            return;
        }
        self.clients[client].member_id = r.member_id;
        self.clients[client].epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            self.clients[client].owned = owned_set(&a);
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Join { client } if self.clients[client].member_id.is_none() => {
                if Self::classic(client) {
                    self.classic_join_and_sync(client);
                } else {
                    self.consumer_beat(client);
                }
            }
            Op::Join { .. } => {}
            Op::Rejoin { client } if self.clients[client].member_id.is_some() => self.classic_join_and_sync(client),
            Op::Rejoin { .. } => {}
            Op::Beat { client } => match self.clients[client].member_id.clone() {
                None => {}
                Some(_) if !Self::classic(client) => self.consumer_beat(client),
                Some(id) => {
                    let beat = Beat { group_id: "g".into(), generation_id: self.clients[client].epoch, member_id: id, group_instance_id: None };
                    match self.c.classic_heartbeat(&beat, self.now) {
                        Some(None) => {}
                        Some(Some(ResponseError::RebalanceInProgress)) => self.classic_join_and_sync(client),
                        _ => self.reset(client),
                    }
                }
            },
            Op::Leave { client } => {
                if let Some(id) = self.clients[client].member_id.clone() {
                    if Self::classic(client) {
                        self.c.classic_leave("g", &[LeaveMember { member_id: id, group_instance_id: None }], &self.topics);
                    } else {
                        let req = HeartbeatRequest { group_id: "g".into(), member_id: id, member_epoch: LEAVE_GROUP_MEMBER_EPOCH, ..Default::default() };
                        self.c.heartbeat(req, &self.topics, self.now);
                    }
                    self.reset(client);
                }
            }
            Op::Advance { ms } => {
                self.now += ms;
                for e in self.c.tick(&self.topics, self.now) {
                    if let Some(i) = self.clients.iter().position(|c| c.member_id.as_deref() == Some(e.member_id.as_str())) {
                        self.reset(i);
                    }
                }
            }
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        // The clients' views: disjoint.
        let mut seen = BTreeSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            for p in &c.owned {
                prop_assert!(seen.insert(*p), "partition {} owned by client {} and another: {:?}", p, i, self.clients);
            }
        }
        let Some(g) = self.c.groups.get("g") else { return Ok(()) };
        // The server's view: disjoint, and each client owns only what its member holds.
        for p in 0..PARTITIONS {
            let holders = g.members.values().filter(|m| m.holds(&T, p)).count();
            prop_assert!(holders <= 1, "partition {} held by {} members", p, holders);
        }
        for c in &self.clients {
            if let Some(m) = c.member_id.as_ref().and_then(|id| g.members.get(id)) {
                let held: BTreeSet<i32> = owned_set(&m.assigned).union(&owned_set(&m.pending_revocation)).copied().collect();
                prop_assert!(c.owned.is_subset(&held), "client owns {:?}, its member holds {:?}", c.owned, held);
            }
        }
        // The log replays to the same group.
        self.log.extend(self.c.take_records("g"));
        let mut replayed = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
        for (k, v) in &self.log {
            replayed.load_record(k, v.as_deref(), self.now).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(replayed.describe("g"), self.c.describe("g"));
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn classic_and_consumer_members_never_hold_a_partition_twice(eager in any::<[bool; 3]>(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new(eager);
        for op in &ops {
            if w.downgraded {
                break;
            }
            let before: Option<Vec<(String, bool)>> = w.c.groups.get("g").map(|g| g.members.values().map(|m| (m.id.clone(), m.classic.is_some())).collect());
            w.step(op);
            let downgrades = w.c.take_downgrades();
            if let Some(d) = downgrades.first() {
                // Only when the member that went was the last consumer-protocol one, and classic
                // members remain.
                let before = before.unwrap_or_default();
                prop_assert!(before.iter().filter(|(_, classic)| !classic).count() <= 1, "members before: {:?}", before);
                prop_assert!(!d.group.members.is_empty());
                prop_assert!(!w.c.contains("g"));
                let mut seen = BTreeSet::new();
                for m in &d.group.members {
                    for (_, ps) in embedded::decode_assignment(&m.assignment).expect("ours") {
                        for p in ps {
                            prop_assert!(seen.insert(p), "partition {} handed to two classic members", p);
                        }
                    }
                }
                w.downgraded = true;
                continue;
            }
            w.check()?;
        }
    }
}
