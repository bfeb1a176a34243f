//! What the controller quorum knows about itself, for DescribeQuorum
//! (`kafka-metadata-quorum.sh describe`, `strom metadata-quorum`): the active controller, its
//! term (Kafka's leader epoch), the committed end of the metadata log (its high watermark) and
//! each voter's log end, last answer and last time it had everything.
//!
//! Offsets are Kafka's: the count of entries, so a Raft log whose last entry has index `i` ends
//! at offset `i + 1`. Only the active controller knows the followers' progress (openraft's
//! replication state, and `FollowerAcks`, which the network records as each AppendEntries is
//! answered); any other node forwards the question to it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::network::{NotController, Request, Response};
use super::{Controller, ControllerError, RPC_TIMEOUT};

/// The quorum as the active controller sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuorumInfo {
    pub leader_id: i32,
    /// The Raft term the leader was elected in.
    pub leader_epoch: i32,
    /// The end of the committed (and applied) log.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaInfo>,
    /// Replicas that copy the log without voting (openraft's learners; a node joining).
    pub observers: Vec<ReplicaInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReplicaInfo {
    pub id: i32,
    /// -1 when the leader does not know it yet.
    pub log_end_offset: i64,
    /// Epoch ms of the replica's last answer to the leader (the leader's own: now); -1 never.
    pub last_fetch_ms: i64,
    /// Epoch ms when the replica last held every entry the leader had applied when it sent
    /// the request the replica answered (the leader's own: now); -1 never.
    pub last_caught_up_ms: i64,
}

/// Per follower, when it last answered an AppendEntries and when it was last caught up, as
/// the leader's side of the network saw it.
#[derive(Default)]
pub struct FollowerAcks(Mutex<BTreeMap<u64, (i64, i64)>>);

impl FollowerAcks {
    /// `peer` answered an AppendEntries at `now_ms`; `caught_up` when it then held everything
    /// the leader had applied when it sent it.
    pub fn answered(&self, peer: u64, now_ms: i64, caught_up: bool) {
        let mut m = crate::lock(&self.0);
        let e = m.entry(peer).or_insert((-1, -1));
        e.0 = now_ms;
        if caught_up {
            e.1 = now_ms;
        }
    }

    fn get(&self, peer: u64) -> (i64, i64) {
        crate::lock(&self.0).get(&peer).copied().unwrap_or((-1, -1))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Controller {
    /// The quorum's state, from the active controller (this node, or asked over the CONTROLLER
    /// listener). Unavailable while there is no active controller or it does not answer.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, ControllerError> {
        if let Ok(info) = self.describe_quorum_local() {
            return Ok(info);
        }
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(peer) = leader.and_then(|l| self.peers.get(&l)) else {
            return Err(ControllerError::Unavailable("no active controller".into()));
        };
        match peer.call(&self.ctx.envelope(Request::DescribeQuorum), RPC_TIMEOUT).await {
            Ok(Response::DescribeQuorum(Ok(info))) => Ok(info),
            Ok(Response::DescribeQuorum(Err(e))) => Err(ControllerError::Unavailable(e.to_string())),
            Ok(other) => Err(ControllerError::Unavailable(format!("unexpected answer {other:?}"))),
            Err(e) => Err(ControllerError::Unavailable(format!("active controller {}: {e}", peer.addr))),
        }
    }

    /// The active controller's side: its own Raft state.
    pub(crate) fn describe_quorum_local(&self) -> Result<QuorumInfo, NotController> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.ctx.node_id) {
            return Err(NotController { leader: m.current_leader, reason: "DescribeQuorum sent to a follower".into() });
        }
        let now = now_ms();
        let end = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
        let replication = m.replication.clone().unwrap_or_default();
        let replica = |id: u64| {
            if id == self.ctx.node_id {
                return ReplicaInfo { id: id as i32, log_end_offset: end(m.last_log_index), last_fetch_ms: now, last_caught_up_ms: now };
            }
            let (fetch, caught_up) = self.ctx.acks.get(id);
            let log_end_offset = match replication.get(&id) {
                Some(matched) => end(matched.map(|l| l.index)),
                None => -1,
            };
            ReplicaInfo { id: id as i32, log_end_offset, last_fetch_ms: fetch, last_caught_up_ms: caught_up }
        };
        let membership = m.membership_config.membership();
        Ok(QuorumInfo {
            leader_id: self.ctx.node_id as i32,
            leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
            high_watermark: end(m.last_applied.map(|l| l.index)),
            voters: membership.voter_ids().map(replica).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        })
    }
}
