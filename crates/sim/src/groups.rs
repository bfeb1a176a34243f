//! Group coordination in the simulation: the node leading the offsets partition runs the real
//! `GroupCoordinator`, replays it from that partition's log when it takes leadership, appends its
//! records there (`encode_batch`, as the broker's group service), and unloads it when leadership
//! moves, answering every parked JoinGroup/SyncGroup with NOT_COORDINATOR. Three consumers join,
//! sync, heartbeat and commit against whichever node the committed image names.
//!
//! Invariant: every parked request is answered exactly once: a completion names a ticket that
//! is parked (else it was never issued, or is answered twice), and an unload returns exactly the
//! tickets still parked. A process crash drops its parked requests with its connections.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use strom_coordinator::group::{
    decode_batch, encode_batch, CommitOffset, Effect, GroupConfig, GroupCoordinator, HeartbeatRequest, JoinOutcome,
    JoinRequest, JoinResponse, OffsetCommitRequest, SyncOutcome, SyncRequest, SyncResponse, Ticket,
};
use strom_storage::BatchHeader;

use crate::cluster::{Msg, Pending, Sim, TOPIC};

const GROUP: &str = "g";
pub(crate) const MEMBERS: i32 = 3;
const REQUEST_TIMEOUT_MS: i64 = 3_000;
const SESSION_MS: i32 = 2_000;

/// A node's coordinator while it leads the offsets partition in `epoch`.
pub(crate) struct Coordinating {
    epoch: i32,
    state: GroupCoordinator,
    /// Parked JoinGroup/SyncGroup requests: ticket -> (member, request id, parked at).
    parked: BTreeMap<Ticket, (i32, u64, i64)>,
}

impl Coordinating {
    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }
}

#[derive(Debug)]
pub(crate) enum GroupCall {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat(HeartbeatRequest),
    Commit(OffsetCommitRequest),
}

#[derive(Debug)]
pub(crate) enum GroupAnswer {
    Join(JoinResponse),
    Sync(SyncResponse),
    /// Heartbeat and OffsetCommit results, and errors before the coordinator is reached.
    Code(Option<ResponseError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Join,
    Sync,
    Stable,
}

pub(crate) struct Member {
    id: i32,
    member_id: String,
    generation: i32,
    /// The other members' ids, when this one leads the group.
    assign_to: Vec<String>,
    phase: Phase,
    in_flight: Option<(u64, i64)>,
    next_at: i64,
    next_commit: i64,
    committed: i64,
}

impl Member {
    pub(crate) fn new(id: i32) -> Member {
        Member { id, member_id: String::new(), generation: -1, assign_to: vec![], phase: Phase::Join, in_flight: None, next_at: 0, next_commit: 0, committed: 0 }
    }
}

fn group_config() -> GroupConfig {
    GroupConfig { group_initial_rebalance_delay_ms: 100, group_min_session_timeout_ms: 500, ..GroupConfig::default() }
}

impl Sim {
    /// The offsets partition: the topic's last one (the producer never writes to it).
    pub(crate) fn offsets_partition(&self) -> i32 {
        self.params.partitions
    }

    /// The node leading the offsets partition gained or lost it (`sync`).
    pub(crate) fn coordination_moved(&mut self, id: i32, leading: bool, epoch: i32) {
        let local = self.local_now(id);
        let key = self.offsets_partition();
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut c) = node.coordinating.take() {
            let (joins, syncs) = c.state.unload(|_| true);
            let mut returned: Vec<Ticket> = joins.into_iter().chain(syncs).collect();
            returned.sort();
            let parked: Vec<Ticket> = c.parked.keys().copied().collect();
            if returned != parked {
                self.group_violation.get_or_insert(format!("node {id}: unloading returned tickets {returned:?}, parked were {parked:?}"));
            }
            self.outcome.parked_answered += c.parked.len() as u64;
            for (member, req, _) in c.parked.into_values() {
                self.send(id, 0, Msg::GroupResp { member, req, answer: GroupAnswer::Code(Some(ResponseError::NotCoordinator)) });
            }
        }
        if !leading {
            return;
        }
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(p) = node.partitions.get(&key).cloned() else { return };
        let mut state = GroupCoordinator::new(group_config());
        // The replay, batch by batch, as the group service loads a partition.
        if let Ok(slices) = p.read_to_end(0, usize::MAX) {
            let mut buf = Vec::with_capacity(slices.len);
            if slices.slices.iter().all(|s| s.read_into(&mut buf).is_ok()) {
                let buf = Bytes::from(buf);
                let mut pos = 0;
                while let Ok(h) = BatchHeader::parse(&buf, pos) {
                    if h.end_position() > buf.len() {
                        break;
                    }
                    if let Ok(records) = decode_batch(buf.slice(pos..h.end_position())) {
                        for (k, v, _) in records {
                            let _ = state.load_record(&k, v.as_deref(), local);
                        }
                    }
                    pos = h.end_position();
                }
            }
        }
        node.coordinating = Some(Coordinating { epoch, state, parked: BTreeMap::new() });
        self.outcome.coordinator_loads += 1;
        self.trace(&format!("coordinating {id} {epoch}"));
    }

    /// A member's request at node `id`.
    pub(crate) fn serve_group(&mut self, id: i32, member: i32, req: u64, call: GroupCall) {
        let local = self.local_now(id);
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("node");
        let leading = node.partitions.get(&self.params.partitions).is_some_and(|p| p.is_leader());
        let Some(c) = node.coordinating.as_mut().filter(|c| leading && node.partitions.get(&self.params.partitions).is_some_and(|p| p.leader_epoch() == c.epoch)) else {
            self.send(id, 0, Msg::GroupResp { member, req, answer: GroupAnswer::Code(Some(ResponseError::NotCoordinator)) });
            return;
        };
        let (answer, fx) = match call {
            GroupCall::Join(r) => match c.state.join_group(r, local) {
                (JoinOutcome::Ready(resp), fx) => (Some(GroupAnswer::Join(resp)), fx),
                (JoinOutcome::Pending(t), fx) => {
                    c.parked.insert(t, (member, req, now));
                    (None, fx)
                }
            },
            GroupCall::Sync(r) => match c.state.sync_group(r, local) {
                (SyncOutcome::Ready(resp), fx) => (Some(GroupAnswer::Sync(resp)), fx),
                (SyncOutcome::Pending(t), fx) => {
                    c.parked.insert(t, (member, req, now));
                    (None, fx)
                }
            },
            GroupCall::Heartbeat(r) => (Some(GroupAnswer::Code(c.state.heartbeat(r, local))), vec![]),
            GroupCall::Commit(r) => {
                let (results, fx) = c.state.commit_offsets(r, local);
                (Some(GroupAnswer::Code(results.first().and_then(|r| r.error))), fx)
            }
        };
        if let Some(answer) = answer {
            self.send(id, 0, Msg::GroupResp { member, req, answer });
        }
        self.carry_out(id, fx);
    }

    /// A coordinator's effects: completions go to their parked members, records to the log.
    pub(crate) fn carry_out(&mut self, id: i32, fx: Vec<Effect>) {
        let local = self.local_now(id);
        let key = self.offsets_partition();
        let mut records = Vec::new();
        let mut replies = Vec::new();
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(c) = node.coordinating.as_mut() else { return };
        for e in fx {
            records.extend(e.log_records());
            let (ticket, answer) = match e {
                Effect::CompleteJoin { ticket, response } => (ticket, GroupAnswer::Join(response)),
                Effect::CompleteSync { ticket, response } => (ticket, GroupAnswer::Sync(response)),
                Effect::PersistOffsets { group_id, commit, .. } => {
                    c.state.offsets_appended(&group_id, commit, true);
                    continue;
                }
                _ => continue,
            };
            match c.parked.remove(&ticket) {
                Some((member, req, _)) => {
                    self.outcome.parked_answered += 1;
                    replies.push((member, req, answer));
                }
                None => {
                    self.group_violation.get_or_insert(format!("node {id}: ticket {ticket:?} completed but not parked (never issued, or answered twice)"));
                }
            }
        }
        for (member, req, answer) in replies {
            self.send(id, 0, Msg::GroupResp { member, req, answer });
        }
        if records.is_empty() {
            return;
        }
        let Some(p) = self.nodes[&id].partitions.get(&key).cloned() else { return };
        let Ok(batch) = encode_batch(&records, local) else { return };
        let crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        let epoch = p.leader_epoch();
        if !p.enough_replicas() {
            return;
        }
        if let Ok(info) = p.append(&batch, local) {
            self.trace(&format!("group append {id} {}", info.first_offset));
            self.pending.push(Pending { node: id, key, partition: p, epoch, base: info.first_offset, last: info.last_offset, crc, deadline: self.now + 3_000 });
        }
    }

    /// Coordinators' timers (sessions, rebalance timeouts).
    pub(crate) fn tick_coordinator(&mut self, id: i32) {
        let local = self.local_now(id);
        let Some(c) = self.nodes.get_mut(&id).expect("node").coordinating.as_mut() else { return };
        let fx = c.state.tick(local);
        self.carry_out(id, fx);
    }

    /// The members' side: join, sync, heartbeat, commit, against the coordinator the committed
    /// image names (FindCoordinator).
    pub(crate) fn tick_members(&mut self) {
        let now = self.now;
        let key = self.offsets_partition();
        let coordinator = self.quorum_image().topic(TOPIC).and_then(|t| t.partition(key)).map(|p| p.leader).filter(|l| *l > 0);
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if m.in_flight.is_some_and(|(_, sent)| now - sent > REQUEST_TIMEOUT_MS) {
                m.in_flight = None;
                m.phase = Phase::Join;
            }
            let Some(to) = coordinator else { continue };
            if m.in_flight.is_some() || now < m.next_at {
                continue;
            }
            let call = match m.phase {
                Phase::Join => GroupCall::Join(JoinRequest {
                    group_id: GROUP.into(),
                    member_id: m.member_id.clone(),
                    group_instance_id: None,
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::new())],
                    session_timeout_ms: SESSION_MS,
                    rebalance_timeout_ms: SESSION_MS,
                    client_id: format!("m{}", m.id),
                    client_host: "sim".into(),
                    request_version: 5,
                }),
                Phase::Sync => GroupCall::Sync(SyncRequest {
                    group_id: GROUP.into(),
                    generation_id: m.generation,
                    member_id: m.member_id.clone(),
                    group_instance_id: None,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: m.assign_to.iter().map(|id| (id.clone(), Bytes::from_static(b"p"))).collect(),
                }),
                Phase::Stable if now >= m.next_commit => {
                    m.next_commit = now + 700;
                    m.committed += 1;
                    GroupCall::Commit(OffsetCommitRequest {
                        group_id: GROUP.into(),
                        generation_id: m.generation,
                        member_id: m.member_id.clone(),
                        group_instance_id: None,
                        offsets: vec![CommitOffset { topic: TOPIC.into(), partition: m.id, offset: m.committed, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: None }],
                    })
                }
                Phase::Stable => GroupCall::Heartbeat(HeartbeatRequest {
                    group_id: GROUP.into(),
                    generation_id: m.generation,
                    member_id: m.member_id.clone(),
                    group_instance_id: None,
                }),
            };
            self.seq += 1;
            let req = self.seq;
            let member = self.members[i].id;
            self.members[i].in_flight = Some((req, now));
            self.send(0, to, Msg::GroupReq { member, req, call });
        }
    }

    /// A member's answer from the coordinator.
    pub(crate) fn group_answer(&mut self, member: i32, req: u64, answer: GroupAnswer) {
        let now = self.now;
        let Some(m) = self.members.iter_mut().find(|m| m.id == member) else { return };
        if m.in_flight.map(|(r, _)| r) != Some(req) {
            return;
        }
        m.in_flight = None;
        m.next_at = now;
        match answer {
            GroupAnswer::Join(r) => match r.error {
                None => {
                    m.generation = r.generation_id;
                    m.member_id = r.member_id.clone();
                    m.assign_to = if r.leader_id == r.member_id { r.members.iter().map(|x| x.member_id.clone()).collect() } else { vec![] };
                    m.phase = Phase::Sync;
                }
                Some(ResponseError::MemberIdRequired) => m.member_id = r.member_id.clone(),
                Some(ResponseError::UnknownMemberId) => m.member_id.clear(),
                Some(_) => m.next_at = now + 100,
            },
            GroupAnswer::Sync(r) => match r.error {
                None => {
                    m.phase = Phase::Stable;
                    m.next_at = now + 300;
                }
                Some(_) => m.phase = Phase::Join,
            },
            GroupAnswer::Code(None) => {
                if m.phase == Phase::Stable {
                    m.next_at = now + 300;
                }
            }
            GroupAnswer::Code(Some(e)) => {
                if e == ResponseError::UnknownMemberId {
                    m.member_id.clear();
                }
                m.phase = Phase::Join;
                m.next_at = now + 100;
            }
        }
    }

    /// After the quiet phase no request stays parked longer than a rebalance can take.
    pub(crate) fn no_request_left_parked(&self) -> Result<(), String> {
        for n in self.nodes.values().filter(|n| n.is_running()) {
            if let Some((t, (m, _, since))) = n.coordinating.as_ref().and_then(|c| c.parked.iter().find(|(_, (_, _, since))| self.now - since > 3 * i64::from(SESSION_MS))) {
                return Err(format!("node {}: member {m}'s request {t:?} parked since t-{} ms", n.id, self.now - since));
            }
        }
        Ok(())
    }
}
