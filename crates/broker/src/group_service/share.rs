//! Share groups (KIP-932) as the group coordinator runs them: the pure
//! `strom_coordinator::share_group` state machine in the same state as the other group kinds (a
//! group id is one kind or another), its share-partition state appended to the group's
//! `__consumer_offsets` partition and replicated before an answer that depends on it, its timers.
//!
//! The coordinator is also the owner of its groups' share-partition state, as Kafka's share
//! coordinator is: each topic partition's leader holds its share partitions in memory
//! (`share_leader.rs`) and reads and writes their state here (ReadShareGroupState,
//! WriteShareGroupState, or a direct call when it is this broker), fenced by leader and state
//! epochs; each accepted state is appended to the group's offsets partition and replicated
//! before the answer.

use kafka_protocol::error::ResponseError;
use strom_coordinator::consumer_group::RawRecord;
use strom_coordinator::share_group::{DescribedShareGroup, ShareGroupCoordinator, ShareHeartbeat, ShareHeartbeatResponse, ShareKey, Snapshot};
use uuid::Uuid;

use super::{classic_in_use, GroupService, Replication};
use crate::clock::now_ms;
use crate::coordinator_topic::partition_for;
use crate::sync::lock;

impl GroupService {
    /// ShareGroupHeartbeat. A group id a consumer group or a classic group with members uses is
    /// not a share group: GROUP_ID_NOT_FOUND, as Kafka answers. Records a leaving member held are
    /// released, and that state is replicated before the answer.
    pub async fn share_heartbeat(&self, req: ShareHeartbeat) -> ShareHeartbeatResponse {
        let topics = self.topics();
        let (response, persisted) = {
            let mut state = lock(&self.state);
            if state.consumer.contains(&req.group_id) || classic_in_use(&state.coordinator, &req.group_id) {
                return ShareHeartbeatResponse::error(ResponseError::GroupIdNotFound, format!("Group {} is not a share group.", req.group_id));
            }
            state.share.set_group_config(&req.group_id, self.share_group_config(&req.group_id));
            let response = state.share.heartbeat(req, &topics, now_ms());
            let records = state.share.take_records();
            (response, self.append_share_records(&records))
        };
        match self.replicated(persisted).await {
            Ok(()) => response,
            Err(code) => ShareHeartbeatResponse::error(code, "the group's share state could not be stored"),
        }
    }

    /// Runs `f` on the share coordinator (with the time), then appends the records of what it
    /// changed (share-partition states written by leaders, membership, administrators' resets)
    /// and waits for them to be replicated: a leader's write is acknowledged only once it would
    /// survive a crash or a failover.
    pub async fn share_call<R>(&self, f: impl FnOnce(&mut ShareGroupCoordinator, i64) -> R) -> (R, Result<(), ResponseError>) {
        let (r, persisted) = {
            let mut state = lock(&self.state);
            let r = f(&mut state.share, now_ms());
            let records = state.share.take_records();
            (r, self.append_share_records(&records))
        };
        (r, self.replicated(persisted).await)
    }

    async fn replicated(&self, persisted: Result<Replication, ResponseError>) -> Result<(), ResponseError> {
        match persisted {
            Ok(replication) => replication.wait(self.commit_timeout).await,
            Err(code) => Err(code),
        }
    }

    /// ReadShareGroupState for one share partition: its stored state and state epoch, once a
    /// new leader epoch it brought is replicated (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS
    /// when the group is not coordinated here now).
    pub async fn share_read_state(&self, key: &ShareKey, leader_epoch: i32) -> Result<(Option<Snapshot>, i32), ResponseError> {
        self.ready_for(&key.0)?;
        let (read, stored) = self.share_call(|share, _| share.read_state(key, leader_epoch)).await;
        let read = read?;
        stored?;
        Ok(read)
    }

    /// WriteShareGroupState for share partitions of one group: (key, leader epoch, state epoch,
    /// state) each. Each outcome is answered once the accepted states are replicated.
    pub async fn share_write_state(&self, group_id: &str, items: &[(ShareKey, i32, i32, Snapshot)]) -> Vec<Result<(), ResponseError>> {
        if let Err(code) = self.ready_for(group_id) {
            return items.iter().map(|_| Err(code)).collect();
        }
        let (results, stored): (Vec<Result<(), ResponseError>>, _) =
            self.share_call(|share, _| items.iter().map(|(key, leader_epoch, state_epoch, s)| share.write_state(key, *leader_epoch, *state_epoch, s)).collect()).await;
        results.into_iter().map(|r| r.and(stored)).collect()
    }

    /// ShareGroupDescribe: `None` when `group_id` is not a share group here.
    pub fn describe_share_group(&self, group_id: &str) -> Option<DescribedShareGroup> {
        lock(&self.state).share.describe(group_id)
    }

    /// Every share group with its state, for ListGroups.
    pub fn list_share_groups(&self) -> Vec<(String, &'static str)> {
        lock(&self.state).share.list()
    }

    pub fn is_share_group(&self, group_id: &str) -> bool {
        lock(&self.state).share.contains(group_id)
    }

    /// Whether a share group with members holds `group_id` (a classic join or a consumer-group
    /// heartbeat is refused then).
    pub(super) fn share_in_use(state: &super::State, group_id: &str) -> bool {
        state.share.has_members(group_id)
    }

    /// Start offsets of a share group's partitions (DescribeShareGroupOffsets' view).
    pub fn share_start_offsets(&self, group_id: &str) -> Vec<((Uuid, i32), i64)> {
        lock(&self.state).share.start_offsets(group_id)
    }

    /// Session timeouts and expired acquisition locks; the state they change is appended (nobody
    /// waits for it: replayed, an acquired record is available again anyway).
    pub(super) fn share_tick(&self, state: &mut super::State, now: i64) {
        if state.share.next_deadline() > now {
            return;
        }
        let topics = self.topics();
        for e in state.share.tick(&topics, now) {
            tracing::info!(group = %e.group_id, member = %e.member_id, "removed a share-group member: its session timed out");
        }
        let records = state.share.take_records();
        if let Err(code) = self.append_share_records(&records) {
            tracing::debug!(error = ?code, "cannot store share-partition state after expiry; the next change stores it again");
        }
    }

    /// Appends share-partition state records, one batch per offsets partition.
    pub(super) fn append_share_records(&self, records: &[(String, RawRecord)]) -> Result<Replication, ResponseError> {
        let n = self.offsets_partitions();
        let mut by_partition: std::collections::BTreeMap<i32, Vec<RawRecord>> = std::collections::BTreeMap::new();
        for (group, record) in records {
            by_partition.entry(partition_for(group, n)).or_default().push(record.clone());
        }
        let mut replication = Replication::default();
        for (index, records) in by_partition {
            replication.0.push(self.append(index, |now| strom_coordinator::batch::encode(&records, None, now))?);
        }
        Ok(replication)
    }
}
