//! Plain request, response and effect types of the group coordinator.
//!
//! These are deliberately not `kafka-protocol` message structs: the coordinator is a pure state
//! machine, and the handlers translate between the wire and these types (versions, defaults).
//! Errors are `Option<ResponseError>`: `None` is Kafka's error code 0.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::record::{GroupRecord, OffsetRecord};

/// Error code as carried by responses; `None` means NONE (0).
pub type ErrorCode = Option<ResponseError>;

/// The wire value of an [`ErrorCode`].
pub fn error_code(e: ErrorCode) -> i16 {
    e.map_or(0, |e| e.code())
}

/// Identifies a delayed JoinGroup/SyncGroup response. Completed exactly once by an
/// [`Effect::CompleteJoin`] / [`Effect::CompleteSync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Kafka's classic group states (`GroupState` in Kafka; names are what DescribeGroups and
/// ListGroups report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// Only reported for groups that do not exist (DescribeGroups); never stored.
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// "" for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none: the handler passes the session timeout (as Kafka does).
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// v4+ requires the two-step join (MEMBER_ID_REQUIRED first).
    pub request_version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: ErrorCode,
    /// -1 on error.
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// "" on error.
    pub leader_id: String,
    /// The member id the client must use from now on (also set with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Non-empty only in the leader's response.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Ready(JoinResponse),
    /// Answer later: an [`Effect::CompleteJoin`] with this ticket will carry the response.
    Pending(Ticket),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+; `None` skips the consistency check.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> Self {
        SyncResponse { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    Ready(SyncResponse),
    /// Answer later: an [`Effect::CompleteSync`] with this ticket will carry the response.
    Pending(Ticket),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    /// "" with an instance id: a static member leaving by instance id (LeaveGroup v3+).
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMemberResult {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    /// Top-level error (INVALID_GROUP_ID); per-member errors are in `members`. LeaveGroup v0-2
    /// has no member list: the handler reports the single member's error at top level.
    pub error: ErrorCode,
    pub members: Vec<LeaveMemberResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    /// The time the commit counts from for expiry, as OffsetCommit v1 lets a client set it
    /// (Kafka's `commitTimestamp`); `None`: the coordinator's time.
    pub commit_timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    /// -1 for standalone consumers (no group membership).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitOffset>,
}

/// TxnOffsetCommit (KIP-98; KIP-447 added the group's generation, member and instance id, v3+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 before v3, and for a producer that is not a group member.
    pub generation_id: i32,
    /// "" before v3, and for a producer that is not a group member.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// UNSTABLE_OFFSET_COMMIT when a stable fetch (KIP-447) finds a transactional commit pending for the partition
    /// (then offset and leader epoch are -1); else none.
    pub error: ErrorCode,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    pub error: ErrorCode,
    pub partitions: Vec<FetchedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, INVALID_GROUP_ID.
    pub error: ErrorCode,
    pub partitions: Vec<PartitionResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// "" when the group never had members (offsets only).
    pub protocol_type: String,
    pub state: GroupState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable (as Kafka).
    pub metadata: Bytes,
    /// Empty unless the group is Stable (as Kafka).
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error: ErrorCode,
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// "" unless Stable.
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

/// Introspection of one group (tests, debugging, admin tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: Vec<MemberSnapshot>,
    /// Ids handed out with MEMBER_ID_REQUIRED that have not joined yet.
    pub pending_members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub assignment: Bytes,
    pub awaiting_join: bool,
    pub awaiting_sync: bool,
}

/// Work the caller must carry out, in the order given: append the persistence effects to
/// `__consumer_offsets` *before* sending any response produced by the same call (Kafka answers a
/// SyncGroup/OffsetCommit only once its record is written), and deliver completions to the
/// connections that hold the tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    CompleteJoin {
        ticket: Ticket,
        response: JoinResponse,
    },
    CompleteSync {
        ticket: Ticket,
        response: SyncResponse,
    },
    /// Write the group's metadata record (key: the group id).
    PersistGroup {
        group_id: String,
        record: GroupRecord,
    },
    /// Write one offset-commit record per entry (key: group, topic, partition).
    /// The commit becomes visible once the caller reports the append's outcome with
    /// `offsets_appended(group_id, commit, ..)`.
    PersistOffsets {
        group_id: String,
        offsets: Vec<OffsetRecord>,
        commit: u64,
    },
    /// TxnOffsetCommit: write one offset-commit record per entry, all in *one transactional batch* of the producer
    /// ([`super::encode_txn_batch`]), not with the other effects' records: the marker the transaction coordinator
    /// later writes into this offsets partition commits or aborts them ([`super::GroupCoordinator::complete_txn`]).
    /// Until then they are pending, invisible to OffsetFetch. Report the append's outcome with
    /// `offsets_appended(group_id, commit, ..)` as for [`Effect::PersistOffsets`]: a failed one is dropped.
    PersistTxnOffsets {
        group_id: String,
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<OffsetRecord>,
        commit: u64,
    },
    /// Tombstone the group's metadata record.
    DeleteGroup {
        group_id: String,
    },
    /// Tombstone these partitions' offset-commit records.
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
}
