//! One file per Kafka API, each a thin adapter from the request to the subsystem that owns the
//! work (topics, partitions, metadata). `SUPPORTED` is the single list of what Strom implements:
//! ApiVersions advertises exactly it, and the connection rejects anything outside it.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::old_versions::{OldRequest, OldResponse};
use crate::session::Session;

mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_share_group_offsets;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_share_group_offsets;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_share_group_offsets;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod read_share_group_state;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_share_group_state;
pub mod write_txn_markers;

/// (API, lowest version, highest version) handled. The lowest versions are Kafka 3.9's (Kafka 4.0
/// dropped those before Kafka 2.1, KIP-896, but deployed clients still send them; `old_versions`
/// codes the ones kafka-protocol does not). Produce v0-2 and Fetch v0-3 carry message formats
/// v0/v1, converted to and from the log's v2 batches. Produce v13 and Fetch v13+ address topics
/// by id only; they come with topic-id support.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 0, 12),
    (ApiKey::ListOffsets, 0, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // The classic group protocol. FindCoordinator v6 adds share-group keys (KIP-932), which
    // come with share groups.
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    // KIP-848 consumer groups (`group.protocol=consumer`). v1 lets the client name its member id.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // KIP-932 share groups (queues), at the versions Kafka 4.1 and librdkafka 2.16 speak.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    // Between brokers: a partition leader reads and writes share-partition state with the
    // group's coordinator, its owner.
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 0),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Transactions (KIP-98, KIP-447, KIP-890). Transactions v2 (KIP-890 part 2, the
    // `transaction.version` feature at 2) are Produce v12, EndTxn v5, TxnOffsetCommit v5 and
    // the brokers' AddPartitionsToTxn v5.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    // SASL: the exchange before authentication is the connection's (`sasl.rs`); these answer
    // the requests that come after it, or on a listener without SASL.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // ACLs: with `authorizer.class.name` set; SECURITY_DISABLED without, as Kafka.
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    // SCRAM credentials (KIP-554), kept in the metadata log.
    // Client quotas (KIP-546).
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Operators' APIs: log directories (v0 coded by `old_versions`), elections on demand
    // (KIP-460), Kafka 4's paged topic description (KIP-966) and the controller quorum.
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
];

/// Requests that may wait for other clients or for replication (long-poll fetches, parked
/// JoinGroup/SyncGroup, transaction-log appends and markers): the connection sends every earlier
/// response before handling one of them.
pub fn may_wait(key: ApiKey) -> bool {
    matches!(key, ApiKey::Fetch | ApiKey::ShareFetch | ApiKey::ReadShareGroupState | ApiKey::WriteShareGroupState | ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::WriteTxnMarkers | ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn | ApiKey::TxnOffsetCommit)
}

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, lo, hi)| (*lo, *hi))
}

/// A decoded request: kafka-protocol's, or one of the old versions whose fields it has no room
/// for (`old_versions`).
pub enum Request {
    Kafka(RequestKind),
    Old(OldRequest),
}

impl From<RequestKind> for Request {
    fn from(r: RequestKind) -> Request {
        Request::Kafka(r)
    }
}

/// A response body: kafka-protocol's (encoded by the crate, or by `old_versions` for an old
/// version), or an old one the crate has no struct for.
pub enum Body {
    Kafka(ResponseKind),
    Old(OldResponse),
}

/// A response, and the segment file ranges that its placeholder records fields stand for
/// (in encoding order; see `zero_copy`). Only Fetch has any.
pub struct Reply {
    pub body: Body,
    pub files: Vec<strom_storage::FileSlice>,
}

/// Routes a decoded request to its handler. `None` means no response is sent (Produce, acks=0).
/// `session` says who sent it: the principal, the client's address (group members report it as
/// their host) and the listener it connected to (brokers are listed at their endpoints of that
/// listener).
pub async fn handle(broker: &Arc<Broker>, header: &RequestHeader, request: Request, session: &Session) -> Option<Reply> {
    // Request metrics: one clock read before and after, one histogram sample and one counter per
    // request, through handles made once per API (`metrics`).
    let started = std::time::Instant::now();
    let api = ApiKey::try_from(header.request_api_key).ok();
    let reply = dispatch(broker, header, request, session).await;
    if let Some(api) = api {
        let error = match &reply {
            Some(Reply { body: Body::Kafka(r), .. }) => crate::metrics::first_error(r),
            _ => 0,
        };
        crate::metrics::request_done(api, error, started.elapsed().as_secs_f64());
    }
    reply
}

async fn dispatch(broker: &Arc<Broker>, header: &RequestHeader, request: Request, session: &Session) -> Option<Reply> {
    let client_id = header.client_id.as_deref().unwrap_or("");
    let v = header.request_api_version;
    let request = match request {
        Request::Kafka(r) => r,
        Request::Old(OldRequest::ListOffsetsV0(r)) => {
            return Some(Reply { body: Body::Old(OldResponse::ListOffsetsV0(list_offsets::handle_v0(broker, r, session))), files: Vec::new() });
        }
        Request::Old(OldRequest::OffsetCommitV1 { request, commit_timestamps }) => {
            let body = ResponseKind::OffsetCommit(offset_commit::handle_v1(broker, request, &commit_timestamps, session).await);
            return Some(Reply { body: Body::Kafka(body), files: Vec::new() });
        }
    };
    if let RequestKind::Fetch(r) = request {
        let (body, files) = fetch::handle(broker, r, v, session, client_id).await;
        return Some(Reply { body: Body::Kafka(ResponseKind::Fetch(body)), files });
    }
    let body = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, v, session).await),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(broker, r, v, session, client_id).await?),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, v, session)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(broker, r, v, session, client_id).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(broker, r, v, session, client_id).await),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(broker, r, session)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id::handle(broker, r, v, session).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, session)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(broker, r, session).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(broker, r, session).await)
        }
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(broker, r, v, session, client_id).await),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::handle(broker, r, session)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator::handle(broker, r, v, session).await),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group::handle(broker, r, v, client_id, session).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(broker, r, session).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(broker, r, session).await),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(broker, r, v, session).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit::handle(broker, r, v, session).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, v, session)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(broker, r, session)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups::handle(broker, r, session)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete_groups::handle(broker, r, session).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offset_delete::handle(broker, r, session).await),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group_heartbeat::handle(broker, r, client_id, session).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(broker, r, session)),
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(share_group_heartbeat::handle(broker, r, client_id, session).await),
        RequestKind::ShareGroupDescribe(r) => ResponseKind::ShareGroupDescribe(share_group_describe::handle(broker, r, session)),
        RequestKind::ShareFetch(r) => ResponseKind::ShareFetch(share_fetch::handle(broker, r, session).await),
        RequestKind::ShareAcknowledge(r) => ResponseKind::ShareAcknowledge(share_acknowledge::handle(broker, r, session).await),
        RequestKind::DescribeShareGroupOffsets(r) => ResponseKind::DescribeShareGroupOffsets(describe_share_group_offsets::handle(broker, r, session)),
        RequestKind::AlterShareGroupOffsets(r) => ResponseKind::AlterShareGroupOffsets(alter_share_group_offsets::handle(broker, r, session).await),
        RequestKind::DeleteShareGroupOffsets(r) => ResponseKind::DeleteShareGroupOffsets(delete_share_group_offsets::handle(broker, r, session).await),
        RequestKind::ReadShareGroupState(r) => ResponseKind::ReadShareGroupState(read_share_group_state::handle(broker, r, session).await),
        RequestKind::WriteShareGroupState(r) => ResponseKind::WriteShareGroupState(write_share_group_state::handle(broker, r, session).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(alter_partition_reassignments::handle(broker, r, session).await)
        }
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(list_partition_reassignments::handle(broker, r, session)),
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(broker, r, v, session).await),
        RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r, v, session).await),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(broker, r, v, session).await),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r, v, session).await),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(describe_transactions::handle(broker, r, session)),
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(list_transactions::handle(broker, r, session)),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(describe_producers::handle(broker, r, session)),
        RequestKind::WriteTxnMarkers(r) => ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r, session).await),
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, session)),
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(sasl_handshake::handle()),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(sasl_authenticate::handle()),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(describe_acls::handle(broker, r, session)),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(create_acls::handle(broker, r, session).await),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(delete_acls::handle(broker, r, session).await),
        RequestKind::DescribeClientQuotas(r) => ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(broker, r, session)),
        RequestKind::AlterClientQuotas(r) => ResponseKind::AlterClientQuotas(alter_client_quotas::handle(broker, r, session).await),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(describe_user_scram_credentials::handle(broker, r, session)),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(alter_user_scram_credentials::handle(broker, r, session).await),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r, session)),
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(elect_leaders::handle(broker, r, v, session).await),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(broker, r, session)),
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(describe_quorum::handle(broker, r, v, session).await),
        // The connection only decodes APIs listed in SUPPORTED, so this is unreachable in
        // practice; answering nothing would hang the client, so log loudly instead.
        other => {
            tracing::error!(request = ?std::mem::discriminant(&other), "request reached dispatch without a handler");
            return None;
        }
    };
    Some(Reply { body: Body::Kafka(body), files: Vec::new() })
}
