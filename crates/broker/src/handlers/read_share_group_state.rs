//! ReadShareGroupState (API 84, KIP-932): a partition leader reads a share partition's state
//! from the group's coordinator, its owner (`group_service/share.rs`), as it starts serving the
//! share partition in a new leader epoch. A state never written has start offset -1, as Kafka
//! answers; the leader then starts where `share.auto.offset.reset` says.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::read_share_group_state_response::{PartitionResult, ReadStateResult, StateBatch};
use kafka_protocol::messages::{ReadShareGroupStateRequest, ReadShareGroupStateResponse};
use strom_coordinator::share_group::to_batches;
use strom_metadata::acl::Operation;

use crate::broker::Broker;
use crate::session::Session;

/// Sent by brokers: needs CLUSTER_ACTION (CLUSTER_AUTHORIZATION_FAILED per partition otherwise).
pub async fn handle(broker: &Arc<Broker>, req: ReadShareGroupStateRequest, session: &Session) -> ReadShareGroupStateResponse {
    let allowed = broker.authz(session).allows_cluster(Operation::ClusterAction);
    let group_id = req.group_id.to_string();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = PartitionResult::default().with_partition(p.partition);
            let read = if !allowed {
                Err(ResponseError::ClusterAuthorizationFailed)
            } else if group_id.is_empty() {
                Err(ResponseError::InvalidRequest)
            } else {
                broker.groups.share_read_state(&(group_id.clone(), t.topic_id, p.partition), p.leader_epoch).await
            };
            partitions.push(match read {
                Ok((None, state_epoch)) => answer.with_state_epoch(state_epoch).with_start_offset(-1),
                Ok((Some(s), state_epoch)) => answer.with_state_epoch(state_epoch).with_start_offset(s.start_offset).with_state_batches(
                    to_batches(&s)
                        .into_iter()
                        .map(|(first, last, state, count)| StateBatch::default().with_first_offset(first).with_last_offset(last).with_delivery_state(state).with_delivery_count(count))
                        .collect(),
                ),
                Err(code) => answer.with_error_code(code.code()).with_start_offset(-1),
            });
        }
        results.push(ReadStateResult::default().with_topic_id(t.topic_id).with_partitions(partitions));
    }
    ReadShareGroupStateResponse::default().with_results(results)
}
