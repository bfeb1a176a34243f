//! The consumer-group coordinator's requests, answers and views.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// One record for `__consumer_offsets`: key and value (`None`: a tombstone).
pub type RawRecord = (bytes::Bytes, Option<bytes::Bytes>);

/// Partitions by topic id, as the protocol carries them.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the coordinator may assign: every topic of the cluster by name (the caller builds it
/// from its metadata image).
pub type Topics = BTreeMap<String, TopicMeta>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: Uuid,
    pub partitions: i32,
    /// Per partition (index = partition id), the racks of its replicas' brokers (`broker.rack`);
    /// empty when no broker has a rack. The rack-aware assignors read it, and, as in Kafka's
    /// subscription metadata, a change re-assigns.
    pub racks: PartitionRacks,
}

/// The racks of each partition's replicas, shared between calls (cheap to clone).
pub type PartitionRacks = std::sync::Arc<Vec<BTreeSet<String>>>;

impl TopicMeta {
    /// A topic whose replicas' racks are unknown.
    pub fn new(id: Uuid, partitions: i32) -> TopicMeta {
        TopicMeta { id, partitions, racks: PartitionRacks::default() }
    }

    /// The racks of partition `p`'s replicas (none if unknown).
    pub fn racks_of(&self, p: i32) -> Option<&BTreeSet<String>> {
        usize::try_from(p).ok().and_then(|p| self.racks.get(p))
    }
}

/// Member epoch -1 in a heartbeat: the member leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch -2: a static member leaves for now (it may come back with its instance id).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// ConsumerGroupHeartbeat (API 68), decoded. `None` fields were sent as null: unchanged since the
/// member's previous heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The partitions the member is to own, sent when they changed (or on a full request).
    pub assignment: Option<Assignment>,
}

impl HeartbeatResponse {
    pub fn error(error: ResponseError, message: impl Into<String>) -> Self {
        HeartbeatResponse { error: Some(error), error_message: Some(message.into()), ..Default::default() }
    }
}

/// A consumer group's state as ConsumerGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
    /// It uses the classic protocol (JoinGroup/SyncGroup) inside the consumer group.
    pub classic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedMember>,
}

/// Commit and fetch checks of a consumer group's offsets (OffsetCommit v9+, OffsetFetch v9+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetAccess {
    /// Not a consumer group here: the classic rules apply.
    NotConsumerGroup,
    Allowed,
    Refused(ResponseError),
}

/// A member removed by a timer, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub group_id: String,
    pub member_id: String,
    /// Its session timed out (else it did not revoke partitions within its rebalance timeout).
    pub session: bool,
}
