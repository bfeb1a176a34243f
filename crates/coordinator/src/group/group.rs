//! One classic group (Kafka's GroupMetadata) and its membership state machine.
//!
//! Every operation takes a [`Ctx`]: the current time, the config, the ticket counter and the
//! effect list. Nothing here reads a clock or does I/O.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::member::{select_protocol, Member};
use super::record::{GroupRecord, MemberRecord};
use super::types::*;
use super::GroupConfig;

pub(super) struct Ctx<'a> {
    pub now: i64,
    pub config: &'a GroupConfig,
    pub next_ticket: &'a mut u64,
    pub fx: &'a mut Vec<Effect>,
}

impl Ctx<'_> {
    fn ticket(&mut self) -> Ticket {
        *self.next_ticket += 1;
        Ticket(*self.next_ticket)
    }
    fn complete_join(&mut self, ticket: Ticket, response: JoinResponse) {
        self.fx.push(Effect::CompleteJoin { ticket, response });
    }
    fn complete_sync(&mut self, ticket: Ticket, response: SyncResponse) {
        self.fx.push(Effect::CompleteSync { ticket, response });
    }

    /// If this call already completed `ticket`, take that completion out of the effects and
    /// answer directly; otherwise the caller parks the request.
    fn finish_join(&mut self, ticket: Ticket) -> JoinOutcome {
        let pos = self.fx.iter().position(|e| matches!(e, Effect::CompleteJoin { ticket: t, .. } if *t == ticket));
        match pos.map(|p| self.fx.remove(p)) {
            Some(Effect::CompleteJoin { response, .. }) => JoinOutcome::Ready(response),
            _ => JoinOutcome::Pending(ticket),
        }
    }
    fn finish_sync(&mut self, ticket: Ticket) -> SyncOutcome {
        let pos = self.fx.iter().position(|e| matches!(e, Effect::CompleteSync { ticket: t, .. } if *t == ticket));
        match pos.map(|p| self.fx.remove(p)) {
            Some(Effect::CompleteSync { response, .. }) => SyncOutcome::Ready(response),
            _ => SyncOutcome::Pending(ticket),
        }
    }
}

/// Kafka's member id: `<client id or instance id>-<uuid>`.
fn new_member_id(client_id: &str, instance_id: Option<&str>) -> String {
    format!("{}-{}", instance_id.unwrap_or(client_id), uuid::Uuid::new_v4())
}

#[derive(Debug, Clone)]
pub(super) struct StoredOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// The commit that wrote it (0: loaded from the log); a later commit wins over an earlier
    /// one whose replication completes after it.
    pub commit: u64,
}

/// The timer of a PreparingRebalance group (Kafka's DelayedJoin / InitialDelayedJoin).
#[derive(Debug, Clone)]
pub(super) struct RebalanceTimer {
    pub deadline_ms: i64,
    /// Set while the first rebalance of an Empty group waits `group.initial.rebalance.delay.ms`
    /// for more members; the join then cannot complete early.
    pub initial: Option<InitialDelay>,
}

#[derive(Debug, Clone)]
pub(super) struct InitialDelay {
    /// Rebalance timeout left for further extensions.
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// In join order: "the first member" (new leader) is Kafka's insertion order.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to come back by.
    pub pending: Vec<(String, i64)>,
    pub rebalance: Option<RebalanceTimer>,
    /// Committed offsets: what OffsetFetch shows. A commit enters only once its record is
    /// replicated (`offsets_appended`), as Kafka's cache does; until then it is pending.
    pub offsets: BTreeMap<(String, i32), StoredOffset>,
    /// Commits whose records are being appended and replicated, by commit id.
    pub pending_commits: BTreeMap<u64, Vec<((String, i32), StoredOffset)>>,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            pending: Vec::new(),
            rebalance: None,
            offsets: BTreeMap::new(),
            pending_commits: BTreeMap::new(),
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }
    pub fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }
    pub fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.members.iter().find(|m| m.instance_id.as_deref() == Some(instance_id)).map(|m| m.id.as_str())
    }
    /// Kafka's `isStaticMemberFenced`: the instance id is known under another member id.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id.and_then(|i| self.static_member_id(i)).is_some_and(|known| known != member_id)
    }
    fn is_leader(&self, id: &str) -> bool {
        self.leader_id.as_deref() == Some(id)
    }
    pub(super) fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp_ms = now;
    }

    /// The earliest time `tick` has something to do for this group.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self.members.iter().filter_map(Member::session_deadline);
        let pending = self.pending.iter().map(|(_, d)| *d);
        let rebalance = match (&self.rebalance, self.state) {
            (Some(r), GroupState::PreparingRebalance) => Some(r.deadline_ms),
            _ => None,
        };
        members.chain(pending).chain(rebalance).min()
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty protocol type and list;
    /// otherwise the type must match and one protocol must be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(n, _)| self.members.iter().all(|m| m.supports(n)))
        }
    }

    pub fn record(&self) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupRecord {
            group_id: self.id.clone(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn persist(&self, ctx: &mut Ctx) {
        ctx.fx.push(Effect::PersistGroup { group_id: self.id.clone(), record: self.record() });
    }

    fn join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .iter()
                    .map(|m| JoinMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    // ---------------------------------------------------------------- JoinGroup

    /// Group id, session timeout and group existence are checked by the coordinator.
    pub fn join(&mut self, req: JoinRequest, ctx: &mut Ctx) -> JoinOutcome {
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return JoinOutcome::Ready(JoinResponse::error(ResponseError::InconsistentGroupProtocol, &req.member_id));
        }
        let full = ctx.config.group_max_size.is_some_and(|max| self.members.len() + self.pending.len() >= max);
        if req.member_id.is_empty() {
            if let Some(instance) = req.group_instance_id.clone() {
                if let Some(old) = self.static_member_id(&instance).map(str::to_string) {
                    return self.replace_static_member(&old, req, ctx);
                }
                if full {
                    return JoinOutcome::Ready(JoinResponse::error(ResponseError::GroupMaxSizeReached, ""));
                }
                // Static members skip MEMBER_ID_REQUIRED: the instance id already identifies them.
                let id = new_member_id(&req.client_id, Some(&instance));
                return self.add_member_and_rebalance(id, req, ctx);
            }
            if full {
                return JoinOutcome::Ready(JoinResponse::error(ResponseError::GroupMaxSizeReached, ""));
            }
            let id = new_member_id(&req.client_id, None);
            if req.request_version >= 4 {
                // Remember the id, so the rejoin is recognised, and bound how long we wait for it.
                let deadline = ctx.now.saturating_add(i64::from(req.session_timeout_ms));
                self.pending.push((id.clone(), deadline));
                return JoinOutcome::Ready(JoinResponse::error(ResponseError::MemberIdRequired, &id));
            }
            return self.add_member_and_rebalance(id, req, ctx);
        }

        if let Some(pos) = self.pending.iter().position(|(id, _)| *id == req.member_id) {
            self.pending.remove(pos);
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, ctx);
        }
        if self.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return JoinOutcome::Ready(JoinResponse::error(ResponseError::FencedInstanceId, &req.member_id));
        }
        let Some(member) = self.member(&req.member_id) else {
            return JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id));
        };
        let unchanged = member.protocols_match(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, ctx),
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our JoinGroup response: send it again (the leader with members).
                let leader = self.is_leader(&req.member_id);
                self.touch(&req.member_id, ctx.now);
                JoinOutcome::Ready(self.join_response(&req.member_id, leader))
            }
            GroupState::Stable if unchanged && !self.is_leader(&req.member_id) => {
                // A follower rejoining with nothing new: no rebalance (Kafka does the same).
                self.touch(&req.member_id, ctx.now);
                JoinOutcome::Ready(self.join_response(&req.member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.update_member_and_rebalance(req, ctx),
            GroupState::Empty | GroupState::Dead => {
                JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id))
            }
        }
    }

    fn touch(&mut self, member_id: &str, now: i64) {
        if let Some(m) = self.member_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
    }

    fn add_member_and_rebalance(&mut self, id: String, req: JoinRequest, ctx: &mut Ctx) -> JoinOutcome {
        let ticket = ctx.ticket();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(id.clone());
        }
        self.members.push(Member {
            id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_ticket: Some(ticket),
            sync_ticket: None,
            last_heartbeat_ms: ctx.now,
        });
        if let Some(RebalanceTimer { initial: Some(init), .. }) = &mut self.rebalance {
            init.new_member_added = true;
        }
        self.maybe_prepare_rebalance(ctx);
        self.try_complete_join(ctx);
        ctx.finish_join(ticket)
    }

    fn update_member_and_rebalance(&mut self, req: JoinRequest, ctx: &mut Ctx) -> JoinOutcome {
        let ticket = ctx.ticket();
        let Some(m) = self.member_mut(&req.member_id) else {
            return JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id));
        };
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_heartbeat_ms = ctx.now;
        // A retried join supersedes the parked one; answer the old request so that every ticket
        // is completed exactly once (the client has usually given up on it already).
        if let Some(old) = m.join_ticket.replace(ticket) {
            ctx.complete_join(old, JoinResponse::error(ResponseError::RebalanceInProgress, &req.member_id));
        }
        self.maybe_prepare_rebalance(ctx);
        self.try_complete_join(ctx);
        ctx.finish_join(ticket)
    }

    /// A known static member rejoined with an empty member id (a restarted client): give it a new
    /// member id, fence the old one, and avoid a rebalance when possible (KIP-345).
    fn replace_static_member(&mut self, old_id: &str, req: JoinRequest, ctx: &mut Ctx) -> JoinOutcome {
        let new_id = new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let old_leader = self.leader_id.clone().unwrap_or_default();
        let ticket = ctx.ticket();
        let Some(m) = self.member_mut(old_id) else {
            return JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownMemberId, ""));
        };
        if let Some(t) = m.join_ticket.take() {
            ctx.complete_join(t, JoinResponse::error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(t) = m.sync_ticket.take() {
            ctx.complete_sync(t, SyncResponse::error(ResponseError::FencedInstanceId));
        }
        m.id = new_id.clone();
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_heartbeat_ms = ctx.now;
        m.join_ticket = Some(ticket);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if select_protocol(&self.members) == self.protocol_name => {
                if let Some(m) = self.member_mut(&new_id) {
                    m.join_ticket = None;
                }
                self.persist(ctx);
                // Kafka returns the *old* leader id, so a restarted leader does not believe it
                // leads and does not compute an assignment a Stable group would ignore.
                let mut resp = self.join_response(&new_id, false);
                resp.leader_id = old_leader;
                return JoinOutcome::Ready(resp);
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                // In CompletingRebalance the leader may be assigning to the old member id, so a
                // new rebalance is needed.
                self.prepare_rebalance(ctx);
            }
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {
                self.maybe_prepare_rebalance(ctx);
            }
        }
        self.try_complete_join(ctx);
        ctx.finish_join(ticket)
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, ctx: &mut Ctx) {
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty) {
            self.prepare_rebalance(ctx);
        }
    }

    fn prepare_rebalance(&mut self, ctx: &mut Ctx) {
        if self.state == GroupState::CompletingRebalance {
            // The leader's assignment for this generation will never be used: drop it and send
            // the parked followers back to rejoin.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_ticket.take() {
                    ctx.complete_sync(t, SyncResponse::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self.members.iter().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0);
        let delay = ctx.config.group_initial_rebalance_delay_ms;
        self.rebalance = Some(if self.state == GroupState::Empty && delay > 0 {
            RebalanceTimer {
                deadline_ms: ctx.now.saturating_add(delay),
                initial: Some(InitialDelay { remaining_ms: (timeout - delay).max(0), new_member_added: false }),
            }
        } else {
            RebalanceTimer { deadline_ms: ctx.now.saturating_add(timeout), initial: None }
        });
        self.transition(GroupState::PreparingRebalance, ctx.now);
    }

    /// Complete the join now if every member has rejoined and no MEMBER_ID_REQUIRED id is
    /// outstanding (Kafka's `hasAllMembersJoined`); never during the initial delay.
    pub fn try_complete_join(&mut self, ctx: &mut Ctx) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if matches!(&self.rebalance, Some(RebalanceTimer { initial: Some(_), .. })) {
            return;
        }
        if self.pending.is_empty() && self.members.iter().all(|m| m.join_ticket.is_some()) {
            self.complete_join(ctx);
        }
    }

    /// Kafka's `onCompleteJoin`: drop members that did not rejoin, start the next generation,
    /// answer every parked join.
    fn complete_join(&mut self, ctx: &mut Ctx) {
        let missing: Vec<String> =
            self.members.iter().filter(|m| m.join_ticket.is_none()).map(|m| m.id.clone()).collect();
        for id in missing {
            self.remove_member(&id, ResponseError::UnknownMemberId, ctx);
        }
        self.rebalance = None;
        self.generation_id = self.generation_id.saturating_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, ctx.now);
            self.persist(ctx);
            return;
        }
        self.protocol_name = select_protocol(&self.members);
        self.transition(GroupState::CompletingRebalance, ctx.now);
        let now = ctx.now;
        let answers: Vec<(Ticket, JoinResponse)> = self
            .members
            .iter()
            .filter_map(|m| m.join_ticket.map(|t| (t, self.join_response(&m.id, self.is_leader(&m.id)))))
            .collect();
        for m in &mut self.members {
            m.join_ticket = None;
            m.last_heartbeat_ms = now;
        }
        for (t, r) in answers {
            ctx.complete_join(t, r);
        }
    }

    /// Remove a member, answering its parked requests with `error`, and keep a leader.
    pub(super) fn remove_member(&mut self, id: &str, error: ResponseError, ctx: &mut Ctx) {
        let Some(pos) = self.members.iter().position(|m| m.id == id) else { return };
        let m = self.members.remove(pos);
        if let Some(t) = m.join_ticket {
            ctx.complete_join(t, JoinResponse::error(error, id));
        }
        if let Some(t) = m.sync_ticket {
            ctx.complete_sync(t, SyncResponse::error(error));
        }
        if self.is_leader(id) {
            self.leader_id = self.members.first().map(|m| m.id.clone());
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup` (leave, session expiry).
    fn remove_member_and_update(&mut self, id: &str, ctx: &mut Ctx) {
        self.remove_member(id, ResponseError::UnknownMemberId, ctx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(ctx);
                self.try_complete_join(ctx);
            }
            GroupState::PreparingRebalance => self.try_complete_join(ctx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---------------------------------------------------------------- SyncGroup

    pub fn sync(&mut self, req: SyncRequest, ctx: &mut Ctx) -> SyncOutcome {
        let fail = |e| SyncOutcome::Ready(SyncResponse::error(e));
        if self.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !self.has_member(&req.member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if req.generation_id != self.generation_id {
            return fail(ResponseError::IllegalGeneration);
        }
        let type_mismatch = req.protocol_type.is_some() && req.protocol_type != self.protocol_type;
        let name_mismatch = req.protocol_name.is_some() && req.protocol_name != self.protocol_name;
        if type_mismatch || name_mismatch {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                self.touch(&req.member_id, ctx.now);
                let assignment = self.member(&req.member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                SyncOutcome::Ready(self.sync_response(assignment))
            }
            GroupState::CompletingRebalance => {
                let ticket = ctx.ticket();
                if let Some(m) = self.member_mut(&req.member_id) {
                    m.last_heartbeat_ms = ctx.now;
                    if let Some(old) = m.sync_ticket.replace(ticket) {
                        ctx.complete_sync(old, SyncResponse::error(ResponseError::RebalanceInProgress));
                    }
                }
                if self.is_leader(&req.member_id) {
                    self.apply_assignment(&req.assignments, ctx);
                }
                ctx.finish_sync(ticket)
            }
        }
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The leader's SyncGroup: store every member's assignment (missing ones get empty, as
    /// Kafka), persist, become Stable, answer the parked syncs.
    fn apply_assignment(&mut self, assignments: &[(String, Bytes)], ctx: &mut Ctx) {
        for m in &mut self.members {
            m.assignment = assignments.iter().find(|(id, _)| *id == m.id).map(|(_, a)| a.clone()).unwrap_or_default();
        }
        self.transition(GroupState::Stable, ctx.now);
        self.persist(ctx);
        let now = ctx.now;
        let answers: Vec<(Ticket, SyncResponse)> = self
            .members
            .iter()
            .filter_map(|m| m.sync_ticket.map(|t| (t, self.sync_response(m.assignment.clone()))))
            .collect();
        for m in &mut self.members {
            if m.sync_ticket.take().is_some() {
                m.last_heartbeat_ms = now;
            }
        }
        for (t, r) in answers {
            ctx.complete_sync(t, r);
        }
    }

    /// The record of this generation's assignment could not be written. As Kafka
    /// (`resetAndPropagateAssignmentError`, then a rebalance): the assignment is forgotten and
    /// the group rebalances, so no member keeps working from an assignment a restart would not
    /// know. The syncs of that call were already answered with the append's error.
    pub fn assignment_not_stored(&mut self, generation: i32, ctx: &mut Ctx) {
        if self.generation_id != generation || self.state != GroupState::Stable {
            return;
        }
        for m in &mut self.members {
            m.assignment = Bytes::new();
        }
        self.maybe_prepare_rebalance(ctx);
    }

    // ---------------------------------------------------------------- Heartbeat / LeaveGroup

    pub fn heartbeat(&mut self, req: &HeartbeatRequest, ctx: &mut Ctx) -> ErrorCode {
        if self.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        if !self.has_member(&req.member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if req.generation_id != self.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.touch(&req.member_id, ctx.now);
                Some(ResponseError::RebalanceInProgress)
            }
            // Clients heartbeat between their JoinGroup and SyncGroup: accepted, as Kafka.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(&req.member_id, ctx.now);
                None
            }
        }
    }

    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, ctx: &mut Ctx) -> ErrorCode {
        if member_id.is_empty() {
            // LeaveGroup v3+: a static member leaving by instance id alone.
            let Some(id) = instance_id.and_then(|i| self.static_member_id(i)).map(str::to_string) else {
                return Some(ResponseError::UnknownMemberId);
            };
            self.remove_member_and_update(&id, ctx);
            return None;
        }
        if let Some(pos) = self.pending.iter().position(|(id, _)| id == member_id) {
            self.pending.remove(pos);
            self.try_complete_join(ctx);
            return None;
        }
        if self.is_fenced(instance_id, member_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        if !self.has_member(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        self.remove_member_and_update(member_id, ctx);
        None
    }

    // ---------------------------------------------------------------- timers

    /// Everything due at `ctx.now`: pending-id expiry, session expiry, the rebalance timer.
    pub fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let before = self.pending.len();
        self.pending.retain(|(_, d)| *d > now);
        if self.pending.len() != before {
            self.try_complete_join(ctx);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.session_deadline().is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::debug!(group = %self.id, member = %id, "session expired");
            self.remove_member_and_update(&id, ctx);
        }
        while self.state == GroupState::PreparingRebalance {
            let Some(timer) = &mut self.rebalance else { break };
            if timer.deadline_ms > now {
                break;
            }
            match &mut timer.initial {
                Some(init) if init.new_member_added && init.remaining_ms > 0 => {
                    // Kafka's InitialDelayedJoin: members are still arriving, wait another delay
                    // (bounded by the rebalance timeout).
                    let delay = ctx.config.group_initial_rebalance_delay_ms.min(init.remaining_ms).max(1);
                    init.remaining_ms -= delay;
                    init.new_member_added = false;
                    timer.deadline_ms = now.saturating_add(delay);
                }
                _ => self.complete_join(ctx),
            }
        }
    }

    // ---------------------------------------------------------------- reading

    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.id.clone(),
            state: self.state,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            members: self
                .members
                .iter()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    assignment: m.assignment.clone(),
                    awaiting_join: m.join_ticket.is_some(),
                    awaiting_sync: m.sync_ticket.is_some(),
                })
                .collect(),
            pending_members: self.pending.iter().map(|(id, _)| id.clone()).collect(),
        }
    }

    pub fn describe(&self) -> DescribedGroup {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            error: None,
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol.clone() } else { String::new() },
            members: self
                .members
                .iter()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// Rebuild membership from a metadata record (Kafka's group load): a group with members is
    /// Stable; sessions start at `now`, so members that do not come back expire and trigger a
    /// rebalance.
    pub fn load_record(&mut self, r: GroupRecord, now: i64) {
        let protocol = r.protocol_name.clone().unwrap_or_default();
        self.generation_id = r.generation_id;
        self.protocol_type = r.protocol_type;
        self.protocol_name = r.protocol_name;
        self.members = r
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_ticket: None,
                sync_ticket: None,
                last_heartbeat_ms: now,
            })
            .collect();
        self.leader_id = match r.leader_id {
            Some(l) if self.has_member(&l) => Some(l),
            _ => self.members.first().map(|m| m.id.clone()),
        };
        self.pending.clear();
        self.rebalance = None;
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        self.state_timestamp_ms = r.state_timestamp_ms;
    }
}
