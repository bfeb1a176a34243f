//! The simulated cluster: nodes, the message queue, the ideal controller quorum, a producer
//! with acks=all, and the faults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use strom_broker::partition::{FetchPosition, Partition, PartitionError, ReadOutcome};
use strom_broker::replication::follow::{self, FetchAnswer};
use strom_config::{BrokerConfig, TopicSettings};
use strom_metadata::elect::{broker_down, broker_heartbeat, broker_registered, place_replicas, preferred_leaders};
use strom_metadata::liveness::Sessions;
use strom_metadata::{
    BrokerRegistration, Endpoint, IsrChange, MetadataCommand, MetadataImage, MetadataRecord, TopicImage, NO_LEADER,
};
use strom_storage::StorageError;
use uuid::Uuid;

use crate::check::{Checker, Violation};
use crate::groups::{Coordinating, GroupAnswer, GroupCall, Member, MEMBERS};
use crate::rng::Rng;

pub const TOPIC: &str = "t";
const STEP_MS: i64 = 10;
const SESSION_MS: i64 = 1_000;
const HEARTBEAT_MS: i64 = 200;
const LAG_MS: i64 = 600;
const ISR_CHECK_MS: i64 = 100;
const FETCH_TIMEOUT_MS: i64 = 500;
const ELECTION_MS: i64 = 300;
const PREFERRED_MS: i64 = 3_000;
const ACK_TIMEOUT_MS: i64 = 3_000;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: i32,
    pub partitions: i32,
    /// Steps of `STEP_MS` with faults and a producer.
    pub steps: usize,
    /// Steps after healing every fault, producer stopped, for the replicas to converge.
    pub quiet_steps: usize,
    pub faults: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params { nodes: 3, partitions: 2, steps: 3_000, quiet_steps: 1_000, faults: true }
    }
}

/// What a run did; `trace` hashes every event, so equal seeds give equal traces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub trace: u64,
    pub produced: u64,
    pub acked: u64,
    pub leader_changes: u64,
    pub truncations: u64,
    pub crashes: u64,
    pub pauses: u64,
    pub cuts: u64,
    pub clock_jumps: u64,
    pub messages: u64,
    pub commits: u64,
    /// Parked JoinGroup/SyncGroup requests answered, and coordinator loads (leadership moves
    /// of the offsets partition).
    pub parked_answered: u64,
    pub coordinator_loads: u64,
}

#[derive(Debug)]
pub(crate) enum Reply {
    Records(Vec<u8>, i64),
    Diverging,
    OutOfRange(i64),
    Refused,
}

#[derive(Debug)]
pub(crate) enum Msg {
    Fetch { key: i32, epoch: i32, pos: FetchPosition, req: u64 },
    FetchReply { key: i32, req: u64, reply: Reply },
    EpochQuery { key: i32, epoch: i32, latest: i32, req: u64 },
    EpochReply { key: i32, req: u64, answer: Option<(i32, i64)> },
    Heartbeat { incarnation: Uuid },
    Register { incarnation: Uuid },
    AlterIsr { changes: Vec<IsrChange> },
    /// The controller committed an AlterIsr: the proposals that did not apply, by partition and
    /// the epoch they were built on.
    AlterIsrDone { settled: Vec<(i32, i32)> },
    Entries { from: usize, entries: Vec<MetadataCommand> },
    /// A group member's request, from the clients (node 0), and its answer.
    GroupReq { member: i32, req: u64, call: GroupCall },
    GroupResp { member: i32, req: u64, answer: GroupAnswer },
}

/// Where group members' messages come from and go to: the clients, not a node.
pub(crate) const CLIENTS: i32 = 0;

struct Envelope {
    from: i32,
    to: i32,
    msg: Msg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    Paused { since: i64, until: i64 },
    Down { until: i64 },
}

/// A partition followed on its leader: the fetcher's state for it.
struct Follow {
    leader: i32,
    pub(crate) epoch: i32,
    pub(crate) partition: Arc<Partition>,
    truncate: bool,
    /// The request in flight (id, sent at, the epoch it was made in).
    in_flight: Option<(u64, i64, i32)>,
    next_at: i64,
}

pub(crate) struct Node {
    pub id: i32,
    dir: PathBuf,
    state: State,
    clock_offset: i64,
    pub incarnation: Uuid,
    /// The metadata log this node applied (the log is durable: it survives crashes).
    pub image: Arc<MetadataImage>,
    applied: usize,
    pub partitions: BTreeMap<i32, Arc<Partition>>,
    follows: BTreeMap<i32, Follow>,
    pub(crate) coordinating: Option<Coordinating>,
    sessions: Sessions,
    next_heartbeat: i64,
    next_isr: i64,
    next_register: i64,
}

impl Node {
    pub fn is_running(&self) -> bool {
        !matches!(self.state, State::Down { .. })
    }

    fn registered(&self) -> bool {
        self.image.brokers.get(&self.id).is_some_and(|b| b.incarnation == self.incarnation && !b.fenced)
    }
}

/// The ideal controller quorum: the committed log, the image it yields, the active controller.
struct Quorum {
    log: Vec<MetadataCommand>,
    image: MetadataImage,
    active: Option<i32>,
    vacant_since: i64,
    next_preferred: i64,
}

/// A produce (or a coordinator's append) waiting for acks=all.
pub(crate) struct Pending {
    pub(crate) node: i32,
    pub(crate) key: i32,
    pub(crate) partition: Arc<Partition>,
    pub(crate) epoch: i32,
    pub(crate) base: i64,
    pub(crate) last: i64,
    pub(crate) crc: u32,
    pub(crate) deadline: i64,
}

pub(crate) struct Sim {
    seed: u64,
    pub(crate) params: Params,
    rng: Rng,
    pub now: i64,
    step: usize,
    pub nodes: BTreeMap<i32, Node>,
    quorum: Quorum,
    queue: BTreeMap<(i64, u64), Envelope>,
    pub(crate) seq: u64,
    /// Cut links (lower id first) and when each heals.
    cuts: BTreeMap<(i32, i32), i64>,
    settings: TopicSettings,
    topic_id: Uuid,
    pub(crate) pending: Vec<Pending>,
    pub(crate) members: Vec<Member>,
    /// A broken group invariant, found while carrying out effects.
    pub(crate) group_violation: Option<String>,
    checker: Checker,
    next_value: u64,
    /// Messages are lost (2%) while faults are on.
    lossy: bool,
    pub(crate) outcome: Outcome,
    _dir: tempfile::TempDir,
}

impl Sim {
    pub fn new(seed: u64, params: &Params) -> Sim {
        let dir = tempfile::tempdir().expect("a temporary directory for the simulated nodes");
        let mut rng = Rng::new(seed);
        let props = [("min.insync.replicas", "2"), ("log.segment.bytes", "16384"), ("log.index.interval.bytes", "256")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = BrokerConfig::from_props(&props).expect("the simulation's broker config").topic_defaults;
        let topic_id = Uuid::from_u128(u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
        let start = 1_700_000_000_000;
        let mut nodes = BTreeMap::new();
        for id in 1..=params.nodes {
            let incarnation = Uuid::from_u128(u128::from(rng.next_u64()));
            let node_dir = dir.path().join(format!("node-{id}"));
            nodes.insert(
                id,
                Node {
                    id,
                    dir: node_dir,
                    state: State::Up,
                    clock_offset: 0,
                    incarnation,
                    image: Arc::default(),
                    applied: 0,
                    partitions: BTreeMap::new(),
                    follows: BTreeMap::new(),
                    coordinating: None,
                    sessions: Sessions::default(),
                    next_heartbeat: start,
                    next_isr: start,
                    next_register: start,
                },
            );
        }
        let mut sim = Sim {
            seed,
            params: params.clone(),
            rng,
            now: start,
            step: 0,
            nodes,
            quorum: Quorum { log: Vec::new(), image: MetadataImage::default(), active: Some(1), vacant_since: start, next_preferred: start + PREFERRED_MS },
            queue: BTreeMap::new(),
            seq: 0,
            cuts: BTreeMap::new(),
            settings,
            topic_id,
            pending: Vec::new(),
            members: (1..=MEMBERS).map(Member::new).collect(),
            group_violation: None,
            checker: Checker::default(),
            next_value: 0,
            lossy: false,
            outcome: Outcome::default(),
            _dir: dir,
        };
        sim.bootstrap();
        sim
    }

    /// The cluster as `strom cluster` leaves it: created, every broker registered, one topic.
    fn bootstrap(&mut self) {
        self.commit(vec![MetadataRecord::ClusterCreated { cluster_id: "sim".into() }]);
        let registrations: Vec<BrokerRegistration> = self
            .nodes
            .values()
            .map(|n| BrokerRegistration {
                id: n.id,
                incarnation: n.incarnation,
                endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: "sim".into(), port: n.id as u16 }],
                rack: None,
                fenced: false,
            })
            .collect();
        for r in registrations {
            let records = broker_registered(&self.quorum.image, &r, false);
            self.commit(records);
        }
        // The producer's partitions, and one more for the group coordinator's records.
        let placed = place_replicas(&self.quorum.image, 0, self.params.partitions + 1, self.params.nodes as i16).expect("enough brokers");
        let topic = TopicImage {
            name: TOPIC.into(),
            id: self.topic_id,
            replication_factor: self.params.nodes as i16,
            partitions: placed,
            configs: BTreeMap::new(),
        };
        self.commit(vec![MetadataRecord::TopicCreated(topic)]);
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.catch_up(id);
        }
    }

    pub fn run(mut self) -> Result<Outcome, Violation> {
        for _ in 0..self.params.steps {
            self.step(self.params.faults, true)?;
        }
        self.heal();
        for _ in 0..self.params.quiet_steps {
            self.step(false, false)?;
        }
        self.drain_pending();
        self.no_request_left_parked().map_err(|what| self.violation(what))?;
        self.checker.converged(&self.quorum.image, &self.nodes).map_err(|what| self.violation(format!("{what}\n{}", self.describe())))?;
        Ok(self.outcome.clone())
    }

    /// The nodes' state, for a failure message.
    fn describe(&self) -> String {
        let mut out = format!("active controller {:?}, cut links {:?}\n", self.quorum.active, self.cuts);
        for n in self.nodes.values() {
            out.push_str(&format!("node {} {:?} clock {:+} ms, applied {}/{}:", n.id, n.state, n.clock_offset, n.applied, self.quorum.log.len()));
            for (key, p) in &n.partitions {
                out.push_str(&format!(" [p{key} leader={} epoch={} hw={} leo={:?}", p.is_leader(), p.leader_epoch(), p.high_watermark(), p.log_end_offset()));
                if let Some(f) = n.follows.get(key) {
                    out.push_str(&format!(" following {} in {} truncate={} in_flight={:?} next_at={:+}", f.leader, f.epoch, f.truncate, f.in_flight.map(|(_, at, e)| (at - self.now, e)), f.next_at - self.now));
                }
                out.push(']');
            }
            out.push('\n');
        }
        out
    }

    fn violation(&self, what: String) -> Violation {
        Violation { seed: self.seed, step: self.step, now_ms: self.now, what }
    }

    pub(crate) fn trace(&mut self, event: &str) {
        if std::env::var_os("STROM_SIM_DEBUG").is_some() {
            eprintln!("{} t+{} {event}", self.step, self.now - 1_700_000_000_000);
        }
        // FNV-1a over the events, with the step.
        let mut h = self.outcome.trace ^ self.step as u64;
        for b in event.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.outcome.trace = h;
    }

    pub(crate) fn quorum_image(&self) -> &MetadataImage {
        &self.quorum.image
    }

    pub(crate) fn local_now(&self, id: i32) -> i64 {
        self.now + self.nodes.get(&id).map_or(0, |n| n.clock_offset)
    }

    fn step(&mut self, faults: bool, produce: bool) -> Result<(), Violation> {
        self.step += 1;
        self.lossy = faults;
        self.now += STEP_MS;
        if faults {
            self.inject_faults();
        }
        self.wake_nodes();
        self.deliver();
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in &ids {
            if self.nodes[id].state == State::Up {
                self.node_tick(*id);
            }
        }
        self.controller_tick();
        // Clients (the producer and the group members) stop when the quiet phase begins.
        if produce {
            self.tick_members();
        }
        if produce && self.rng.chance(0.3) {
            self.produce();
        }
        self.settle_pending();
        let leaders_before = self.checker.leader_changes;
        if let Some(what) = self.group_violation.take() {
            return Err(self.violation(what));
        }
        let result = self.checker.check(&self.quorum.image, &self.nodes);
        self.outcome.leader_changes += self.checker.leader_changes - leaders_before;
        result.map_err(|what| self.violation(what))
    }

    // ---- faults ----

    fn up_nodes(&self) -> Vec<i32> {
        self.nodes.values().filter(|n| n.state == State::Up).map(|n| n.id).collect()
    }

    fn inject_faults(&mut self) {
        let up = self.up_nodes();
        let impaired = self.nodes.len() - up.len();
        if self.rng.chance(0.002) && impaired < 2 {
            if let Some(id) = self.rng.pick(&up) {
                let until = self.now + self.rng.range(200, 3_000);
                self.crash(id, until);
            }
        }
        let (up, impaired) = (self.up_nodes(), self.nodes.len() - self.up_nodes().len());
        if self.rng.chance(0.002) && impaired < 2 {
            if let Some(id) = self.rng.pick(&up) {
                let until = self.now + self.rng.range(100, 3_000);
                self.nodes.get_mut(&id).expect("node").state = State::Paused { since: self.now, until };
                self.outcome.pauses += 1;
                self.trace(&format!("pause {id}"));
            }
        }
        if self.rng.chance(0.003) {
            let ids: Vec<i32> = self.nodes.keys().copied().collect();
            let a = self.rng.pick(&ids).unwrap_or(1);
            let b = self.rng.pick(&ids).unwrap_or(1);
            if a != b {
                let until = self.now + self.rng.range(100, 2_000);
                self.cuts.insert((a.min(b), a.max(b)), until);
                self.outcome.cuts += 1;
                self.trace(&format!("cut {a}-{b}"));
            }
        }
        if self.rng.chance(0.001) {
            let ids: Vec<i32> = self.nodes.keys().copied().collect();
            let id = self.rng.pick(&ids).unwrap_or(1);
            let jump = self.rng.range(-3_000, 5_000);
            self.nodes.get_mut(&id).expect("node").clock_offset += jump;
            self.outcome.clock_jumps += 1;
            self.trace(&format!("clock {id} {jump}"));
        }
        let now = self.now;
        self.cuts.retain(|_, until| *until > now);
    }

    /// A process crash: memory is gone, the page cache (the files) and the metadata log stay.
    fn crash(&mut self, id: i32, until: i64) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.state = State::Down { until };
        // Dropped without `close`: the next open recovers the logs as after a SIGKILL.
        node.partitions.clear();
        node.follows.clear();
        // Parked group requests go with the connections.
        node.coordinating = None;
        node.sessions = Sessions::default();
        self.pending.retain(|p| p.node != id);
        self.outcome.crashes += 1;
        self.trace(&format!("crash {id}"));
    }

    fn wake_nodes(&mut self) {
        let now = self.now;
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            match self.nodes[&id].state {
                State::Down { until } if until <= now => self.restart(id),
                State::Paused { since, until } if until <= now => {
                    let local = self.local_now(id);
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.state = State::Up;
                    if now - since > SESSION_MS / 2 {
                        // As the controller's duties notice a stall of their own.
                        node.sessions.restart_clocks(local);
                    }
                    self.trace(&format!("resume {id}"));
                }
                _ => {}
            }
        }
    }

    fn restart(&mut self, id: i32) {
        let incarnation = Uuid::from_u128(u128::from(self.rng.next_u64()));
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("node");
        node.state = State::Up;
        node.incarnation = incarnation;
        node.next_register = now;
        node.next_heartbeat = now;
        self.trace(&format!("restart {id}"));
        self.sync(id);
    }

    /// Every fault ends: links heal, stopped nodes start, paused ones resume.
    fn heal(&mut self) {
        self.cuts.clear();
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            match self.nodes[&id].state {
                State::Down { .. } => self.restart(id),
                State::Paused { since, .. } => self.nodes.get_mut(&id).expect("node").state = State::Paused { since, until: self.now },
                State::Up => {}
            }
        }
        self.wake_nodes();
    }

    // ---- the network ----

    fn linked(&self, a: i32, b: i32) -> bool {
        a == b || a == CLIENTS || b == CLIENTS || !self.cuts.contains_key(&(a.min(b), a.max(b)))
    }

    pub(crate) fn send(&mut self, from: i32, to: i32, msg: Msg) {
        self.outcome.messages += 1;
        if from != to && self.lossy && self.rng.chance(0.02) {
            return;
        }
        let delay = if from == to { 0 } else { self.rng.range(1, 40) };
        self.seq += 1;
        self.queue.insert((self.now + delay, self.seq), Envelope { from, to, msg });
    }

    fn deliver(&mut self) {
        loop {
            let paused = |to: i32| self.nodes.get(&to).is_some_and(|n| matches!(n.state, State::Paused { .. }));
            let due = self.queue.iter().find(|(&(at, _), e)| at <= self.now && !paused(e.to)).map(|(k, _)| *k);
            let Some(key) = due else { break };
            let Some(e) = self.queue.remove(&key) else { break };
            if e.to == CLIENTS {
                if let Msg::GroupResp { member, req, answer } = e.msg {
                    self.group_answer(member, req, answer);
                }
                continue;
            }
            let to = &self.nodes[&e.to];
            // A cut link or a stopped process loses what was in flight.
            if !to.is_running() || !self.linked(e.from, e.to) {
                continue;
            }
            self.receive(e.from, e.to, e.msg);
        }
    }

    fn receive(&mut self, from: i32, to: i32, msg: Msg) {
        if std::env::var_os("STROM_SIM_DEBUG_MSGS").is_some() {
            eprintln!("{} {from}->{to} {:?}", self.step, match &msg { Msg::Entries { from, entries } => format!("entries {from}+{}", entries.len()), Msg::FetchReply { key, req, reply: Reply::Records(b, hw) } => format!("reply {key} {req} {} bytes hw {hw}", b.len()), m => format!("{m:?}") });
        }
        match msg {
            Msg::Fetch { key, epoch, pos, req } => {
                let reply = self.serve_fetch(to, from, key, &pos);
                let _ = epoch;
                self.send(to, from, Msg::FetchReply { key, req, reply });
            }
            Msg::FetchReply { key, req, reply } => self.on_fetch_reply(to, key, req, reply),
            Msg::EpochQuery { key, epoch, latest, req } => {
                let answer = self.nodes[&to].partitions.get(&key).filter(|p| p.is_leader()).and_then(|p| p.epoch_end(epoch, latest).ok());
                self.send(to, from, Msg::EpochReply { key, req, answer });
            }
            Msg::EpochReply { key, req, answer } => self.on_epoch_reply(to, key, req, answer),
            Msg::Heartbeat { incarnation } => {
                let local = self.local_now(to);
                self.nodes.get_mut(&to).expect("node").sessions.heartbeat(from, incarnation, local);
                if self.quorum.active == Some(to) {
                    let records = broker_heartbeat(&self.quorum.image, from, incarnation, false);
                    self.commit(records);
                }
            }
            Msg::Register { incarnation } => {
                if self.quorum.active == Some(to) {
                    let registration = BrokerRegistration {
                        id: from,
                        incarnation,
                        endpoints: vec![Endpoint { listener: "PLAINTEXT".into(), host: "sim".into(), port: from as u16 }],
                        rack: None,
                        fenced: false,
                    };
                    let records = broker_registered(&self.quorum.image, &registration, false);
                    self.commit(records);
                }
            }
            Msg::AlterIsr { changes } => {
                if self.quorum.active == Some(to) && self.commit(changes.iter().map(|c| c.record(from)).collect()) {
                    let image = &self.quorum.image;
                    let settled = changes
                        .iter()
                        .filter(|c| image.topic(&c.topic).and_then(|t| t.partition(c.index)).is_some_and(|p| p.partition_epoch == c.partition_epoch))
                        .map(|c| (c.index, c.partition_epoch))
                        .collect();
                    self.send(to, from, Msg::AlterIsrDone { settled });
                }
            }
            Msg::AlterIsrDone { settled } => {
                for (key, epoch) in settled {
                    if let Some(p) = self.nodes[&to].partitions.get(&key) {
                        p.isr_proposal_settled(epoch);
                    }
                }
            }
            Msg::Entries { from: index, entries } => self.apply_entries(to, index, entries),
            Msg::GroupReq { member, req, call } => self.serve_group(to, member, req, call),
            Msg::GroupResp { .. } => {}
        }
    }

    // ---- replication: the leader's side ----

    /// A follower's Fetch, as `handlers/fetch.rs` serves it: the leader records the follower's
    /// position, then reads up to the log end after the divergence check.
    fn serve_fetch(&mut self, leader: i32, follower: i32, key: i32, pos: &FetchPosition) -> Reply {
        let local = self.local_now(leader);
        let Some(p) = self.nodes[&leader].partitions.get(&key).filter(|p| p.is_leader()).cloned() else {
            return Reply::Refused;
        };
        p.record_follower_position(follower, pos, local);
        match p.fetch(pos, 1 << 16, true, strom_broker::partition::Isolation::Follower) {
            Err(_) => Reply::Refused,
            Ok(read) => match read.outcome {
                ReadOutcome::Records(slices) => {
                    let mut bytes = Vec::with_capacity(slices.len);
                    for s in &slices.slices {
                        if s.read_into(&mut bytes).is_err() {
                            return Reply::Refused;
                        }
                    }
                    Reply::Records(bytes, read.high_watermark)
                }
                ReadOutcome::Diverging { .. } => Reply::Diverging,
                ReadOutcome::Failed(PartitionError::Storage(StorageError::OffsetOutOfRange { .. })) => Reply::OutOfRange(read.log_start_offset),
                ReadOutcome::Failed(_) => Reply::Refused,
            },
        }
    }

    // ---- replication: the follower's side (`replication::follow`, as the fetcher runs it) ----

    fn on_fetch_reply(&mut self, id: i32, key: i32, req: u64, reply: Reply) {
        let local = self.local_now(id);
        let Some((f, epoch)) = answered(self.nodes.get_mut(&id).expect("node"), key, req) else { return };
        let answer = match &reply {
            Reply::Records(bytes, hw) => FetchAnswer::Records { records: bytes, high_watermark: *hw },
            Reply::Diverging => FetchAnswer::Diverging,
            Reply::OutOfRange(start) => FetchAnswer::OffsetOutOfRange { log_start_offset: *start },
            Reply::Refused => FetchAnswer::Refused,
        };
        let next = follow::on_fetch_answer(&f.partition, epoch, answer, local);
        if next.truncate && f.epoch == epoch {
            f.truncate = true;
        }
        f.next_at = self.now + if next.progress { 0 } else { 50 };
    }

    fn on_epoch_reply(&mut self, id: i32, key: i32, req: u64, answer: Option<(i32, i64)>) {
        let Some((f, epoch)) = answered(self.nodes.get_mut(&id).expect("node"), key, req) else { return };
        f.next_at = self.now + 20;
        let Some((leader_epoch, end)) = answer else { return };
        let before = f.partition.log_end_offset().unwrap_or(0);
        if follow::on_epoch_end(&f.partition, epoch, leader_epoch, end) && f.epoch == epoch {
            f.truncate = false;
            f.next_at = self.now;
        }
        let after = f.partition.log_end_offset().unwrap_or(0);
        if after < before {
            self.outcome.truncations += 1;
            self.trace(&format!("truncate {id} {key} {before}->{after}"));
        }
    }

    // ---- a node's timers ----

    fn node_tick(&mut self, id: i32) {
        let local = self.local_now(id);
        let now = self.now;
        let active = self.quorum.active;
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        let (incarnation, registered, heartbeat_due, register_due, isr_due) = {
            let n = &self.nodes[&id];
            (n.incarnation, n.registered(), now >= n.next_heartbeat, now >= n.next_register, now >= n.next_isr)
        };
        if heartbeat_due {
            self.nodes.get_mut(&id).expect("node").next_heartbeat = now + HEARTBEAT_MS;
            for to in &ids {
                self.send(id, *to, Msg::Heartbeat { incarnation });
            }
        }
        if !registered && register_due {
            self.nodes.get_mut(&id).expect("node").next_register = now + HEARTBEAT_MS;
            if let Some(active) = active {
                self.send(id, active, Msg::Register { incarnation });
            }
        }
        if isr_due {
            self.nodes.get_mut(&id).expect("node").next_isr = now + ISR_CHECK_MS;
            let changes: Vec<IsrChange> = self.nodes[&id].partitions.values().filter_map(|p| p.propose_isr(local, LAG_MS)).collect();
            if let (false, Some(active)) = (changes.is_empty(), active) {
                self.send(id, active, Msg::AlterIsr { changes });
            }
        }
        self.tick_coordinator(id);
        // The fetcher: one request in flight per followed partition.
        let keys: Vec<i32> = self.nodes[&id].follows.keys().copied().collect();
        for key in keys {
            self.seq += 1;
            let req = self.seq;
            let node = self.nodes.get_mut(&id).expect("node");
            let Some(f) = node.follows.get_mut(&key) else { continue };
            if f.in_flight.is_some_and(|(_, sent, _)| now - sent > FETCH_TIMEOUT_MS) {
                f.in_flight = None;
            }
            if f.in_flight.is_some() || now < f.next_at {
                continue;
            }
            f.in_flight = Some((req, now, f.epoch));
            let (leader, epoch) = (f.leader, f.epoch);
            let msg = if f.truncate {
                Msg::EpochQuery { key, epoch, latest: f.partition.latest_epoch().unwrap_or(-1), req }
            } else {
                match follow::position(&f.partition, epoch) {
                    Some(pos) => Msg::Fetch { key, epoch, pos, req },
                    None => continue,
                }
            };
            self.send(id, leader, msg);
        }
    }

    // ---- metadata ----

    /// Applies committed entries from index `from`, in order, then takes the roles they assign.
    fn apply_entries(&mut self, id: i32, from: usize, entries: Vec<MetadataCommand>) {
        let node = self.nodes.get_mut(&id).expect("node");
        if from > node.applied {
            return;
        }
        let mut changed = false;
        let mut image = (*node.image).clone();
        for (i, cmd) in entries.iter().enumerate() {
            if from + i < node.applied {
                continue;
            }
            image.apply_command(cmd);
            node.applied += 1;
            changed = true;
        }
        if changed {
            node.image = Arc::new(image);
            self.sync(id);
        }
    }

    fn catch_up(&mut self, id: i32) {
        let from = self.nodes[&id].applied;
        let entries = self.quorum.log[from.min(self.quorum.log.len())..].to_vec();
        self.apply_entries(id, from, entries);
    }

    /// `ReplicaManager::sync_with` for the simulated node: open what the image assigns here,
    /// take each replica's role, point the fetcher at the leaders.
    fn sync(&mut self, id: i32) {
        let local = self.local_now(id);
        let node = self.nodes.get_mut(&id).expect("node");
        let image = node.image.clone();
        let registered = node.registered();
        let Some(topic) = image.topic(TOPIC) else { return };
        let mut events = Vec::new();
        for (index, a) in topic.partitions.iter().enumerate() {
            let key = index as i32;
            if !a.replicas.contains(&id) {
                continue;
            }
            let p = match node.partitions.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let p = Partition::open(&node.dir, TOPIC, topic.id, key, &self.settings).expect("opening a simulated partition");
                    let p = Arc::new(p);
                    node.partitions.insert(key, p.clone());
                    p
                }
            };
            let change = p.apply_assignment(id, registered, a, local).expect("taking a role");
            events.push(format!("role {id} {key} {change:?} {}", a.leader_epoch));
            if a.leader == NO_LEADER || a.leader == id {
                node.follows.remove(&key);
                continue;
            }
            let keep = node.follows.get(&key).is_some_and(|f| f.leader == a.leader && f.epoch == a.leader_epoch && Arc::ptr_eq(&f.partition, &p));
            if !keep {
                node.follows.insert(key, Follow { leader: a.leader, epoch: a.leader_epoch, partition: p, truncate: true, in_flight: None, next_at: self.now });
            }
        }
        for e in events {
            self.trace(&e);
        }
        // Group coordination follows the offsets partition's leadership (the group service's
        // `leadership_changed`): loaded when gained, unloaded when lost.
        let key = self.offsets_partition();
        let node = &self.nodes[&id];
        let led = node.partitions.get(&key).filter(|p| p.is_leader()).map(|p| p.leader_epoch());
        let coordinating = node.coordinating.as_ref().map(|c| c.epoch());
        if led != coordinating {
            self.coordination_moved(id, led.is_some(), led.unwrap_or(-1));
        }
    }

    // ---- the controller quorum ----

    /// Whether `id` runs and reaches a majority of running, unpaused voters (itself included).
    fn can_lead(&self, id: i32) -> bool {
        if self.nodes[&id].state != State::Up {
            return false;
        }
        let reach = self.nodes.values().filter(|n| n.state == State::Up && self.linked(id, n.id)).count();
        reach * 2 > self.nodes.len()
    }

    /// Appends to the committed log if the active controller can (a majority reaches it).
    fn commit(&mut self, records: Vec<MetadataRecord>) -> bool {
        if records.is_empty() {
            return true;
        }
        if let Some(active) = self.quorum.active {
            if !self.can_lead(active) && self.step > 0 {
                return false;
            }
        }
        let cmd = MetadataCommand { based_on: None, records };
        self.trace(&format!("commit {:?}", cmd.records));
        self.quorum.image.apply_command(&cmd);
        self.quorum.log.push(cmd);
        self.outcome.commits += 1;
        if let Some(active) = self.quorum.active {
            self.catch_up(active);
        }
        true
    }

    fn controller_tick(&mut self) {
        if let Some(active) = self.quorum.active {
            if !self.can_lead(active) {
                self.quorum.active = None;
                self.quorum.vacant_since = self.now;
                self.trace(&format!("deposed {active}"));
            }
        }
        if self.quorum.active.is_none() && self.now - self.quorum.vacant_since >= ELECTION_MS {
            let ids: Vec<i32> = self.nodes.keys().copied().collect();
            if let Some(id) = ids.into_iter().find(|id| self.can_lead(*id)) {
                // Raft elects only a voter with every committed entry.
                self.catch_up(id);
                let local = self.local_now(id);
                self.nodes.get_mut(&id).expect("node").sessions.became_active(local);
                self.quorum.active = Some(id);
                self.trace(&format!("active {id}"));
            }
        }
        let Some(active) = self.quorum.active else { return };
        // Replication of the metadata log to every voter it reaches (appendEntries).
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            let applied = self.nodes[&id].applied;
            if id != active && self.nodes[&id].is_running() && applied < self.quorum.log.len() {
                let entries = self.quorum.log[applied..].to_vec();
                self.send(active, id, Msg::Entries { from: applied, entries });
            }
        }
        // The active controller's duties: fence expired sessions, move leaders back.
        let local = self.local_now(active);
        let expired = self.nodes[&active].sessions.expired(&self.quorum.image, local, SESSION_MS);
        for id in expired {
            let records = if self.quorum.image.brokers.get(&id).is_some_and(|b| !b.fenced) { broker_down(&self.quorum.image, id, false) } else { vec![] };
            self.commit(records);
        }
        if self.now >= self.quorum.next_preferred {
            self.quorum.next_preferred = self.now + PREFERRED_MS;
            let records = preferred_leaders(&self.quorum.image);
            self.commit(records);
        }
    }

    // ---- the producer (acks=all) ----

    fn produce(&mut self) {
        let up = self.up_nodes();
        let Some(id) = self.rng.pick(&up) else { return };
        let key = self.rng.range(0, i64::from(self.params.partitions)) as i32;
        // As `handlers/produce.rs`: acks=all is refused up front without enough replicas in sync.
        let Some(p) = self.nodes[&id].partitions.get(&key).filter(|p| p.is_leader() && p.enough_replicas()).cloned() else { return };
        self.next_value += 1;
        let batch = encode_batch(self.next_value, self.now);
        let crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        let local = self.local_now(id);
        let epoch = p.leader_epoch();
        if let Ok(info) = p.append(&batch, local) {
            self.outcome.produced += 1;
            self.trace(&format!("append {id} {key} {} {}", info.first_offset, self.next_value));
            self.pending.push(Pending { node: id, key, partition: p, epoch, base: info.first_offset, last: info.last_offset, crc, deadline: self.now + ACK_TIMEOUT_MS });
        }
    }

    /// acks=all as `Partition::wait_replicated` answers it: acknowledged once the high watermark
    /// passes the batch while the same leadership lasts, with enough replicas in sync.
    fn settle_pending(&mut self) {
        let now = self.now;
        let mut acked = Vec::new();
        self.pending.retain(|w| {
            let same = w.partition.is_leader() && w.partition.leader_epoch() == w.epoch;
            if same && w.partition.high_watermark() > w.last && w.partition.enough_replicas() {
                acked.push((w.key, w.base, w.crc));
                return false;
            }
            same && now < w.deadline
        });
        for (key, base, crc) in acked {
            self.outcome.acked += 1;
            self.trace(&format!("ack {key} {base}"));
            self.checker.acked(key, base, crc);
        }
    }

    fn drain_pending(&mut self) {
        self.settle_pending();
        self.pending.clear();
    }
}

/// The followed partition that request `req` was for, if it is still the one in flight (it is
/// cleared), with the leader epoch the request was made in.
fn answered(node: &mut Node, key: i32, req: u64) -> Option<(&mut Follow, i32)> {
    let f = node.follows.get_mut(&key)?;
    let (want, _, epoch) = f.in_flight?;
    if want != req {
        return None;
    }
    f.in_flight = None;
    Some((f, epoch))
}

/// One record batch with a unique value, as a producer sends it.
fn encode_batch(value: u64, now: i64) -> BytesMut {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now,
        key: None,
        value: Some(bytes::Bytes::copy_from_slice(&value.to_be_bytes())),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &[record], &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encoding a one-record batch");
    buf
}
