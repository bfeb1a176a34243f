//! WriteShareGroupState (API 85, KIP-932): a partition leader stores a share partition's whole
//! state with the group's coordinator, its owner (`group_service/share.rs`), which appends it to
//! the group's `__consumer_offsets` partition and answers once it is replicated. A leader older
//! than the last to read or write the state is FENCED_LEADER_EPOCH, one that read it before an
//! administrator reset it FENCED_STATE_EPOCH; malformed state batches are INVALID_REQUEST.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_share_group_state_response::{PartitionResult, WriteStateResult};
use kafka_protocol::messages::{WriteShareGroupStateRequest, WriteShareGroupStateResponse};
use strom_coordinator::share_group::{from_batches, ShareKey, Snapshot};
use strom_metadata::acl::Operation;

use crate::broker::Broker;
use crate::session::Session;

/// Sent by brokers: needs CLUSTER_ACTION (CLUSTER_AUTHORIZATION_FAILED per partition otherwise).
pub async fn handle(broker: &Arc<Broker>, req: WriteShareGroupStateRequest, session: &Session) -> WriteShareGroupStateResponse {
    let allowed = broker.authz(session).allows_cluster(Operation::ClusterAction);
    let group_id = req.group_id.to_string();
    // Each partition's outcome, in request order; the well-formed ones are written together.
    let mut outcomes: Vec<(uuid::Uuid, i32, Option<Result<(), ResponseError>>)> = Vec::new();
    let mut items: Vec<(ShareKey, i32, i32, Snapshot)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let checked = if !allowed {
                Err(ResponseError::ClusterAuthorizationFailed)
            } else if group_id.is_empty() {
                Err(ResponseError::InvalidRequest)
            } else {
                let batches: Vec<_> = p.state_batches.iter().map(|b| (b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)).collect();
                from_batches(p.start_offset, &batches)
            };
            match checked {
                Ok(s) => {
                    items.push(((group_id.clone(), t.topic_id, p.partition), p.leader_epoch, p.state_epoch, s));
                    outcomes.push((t.topic_id, p.partition, None));
                }
                Err(code) => outcomes.push((t.topic_id, p.partition, Some(Err(code)))),
            }
        }
    }
    let mut written = if items.is_empty() { Vec::new() } else { broker.groups.share_write_state(&group_id, &items).await }.into_iter();
    let mut results: Vec<WriteStateResult> = Vec::new();
    for (topic_id, partition, outcome) in outcomes {
        let outcome = outcome.unwrap_or_else(|| written.next().unwrap_or(Err(ResponseError::UnknownServerError)));
        let answer = match outcome {
            Ok(()) => PartitionResult::default().with_partition(partition),
            Err(code) => PartitionResult::default().with_partition(partition).with_error_code(code.code()),
        };
        match results.last_mut() {
            Some(r) if r.topic_id == topic_id => r.partitions.push(answer),
            _ => results.push(WriteStateResult::default().with_topic_id(topic_id).with_partitions(vec![answer])),
        }
    }
    WriteShareGroupStateResponse::default().with_results(results)
}
