//! ShareAcknowledge (API 79, KIP-932): a share consumer acknowledges records without fetching
//! (ACCEPT, RELEASE, REJECT; GAP for offsets without a record), sent to each partition's leader,
//! which holds the share partitions (`share_leader.rs`); a partition not led here is
//! NOT_LEADER_OR_FOLLOWER. The share session's epoch must be
//! the next one (0 is INVALID_SHARE_SESSION_EPOCH; -1 closes the session after the
//! acknowledgements, releasing what the member still holds). A record the member does not hold
//! under an unexpired lock is INVALID_RECORD_STATE for its partition. Answered once the new state
//! is stored by the group's coordinator and replicated in `__consumer_offsets`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{PartitionData, ShareAcknowledgeTopicResponse};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use uuid::Uuid;

use crate::broker::Broker;
use crate::session::Session;
use strom_coordinator::share_group::FINAL_EPOCH;
use strom_metadata::acl::Operation;

/// Each acknowledged partition's outcome.
type Outcomes = BTreeMap<(Uuid, i32), Result<(), ResponseError>>;

/// Needs READ on the group and on each topic, as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: ShareAcknowledgeRequest, session: &Session) -> ShareAcknowledgeResponse {
    let group_id = req.group_id.as_ref().map(|g| g.to_string()).unwrap_or_default();
    let member_id = req.member_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
    let top = |code: ResponseError| ShareAcknowledgeResponse::default().with_error_code(code.code());
    let authz = broker.authz(session);
    if !authz.allows_group(Operation::Read, &group_id) {
        return top(ResponseError::GroupAuthorizationFailed);
    }
    if group_id.is_empty() || member_id.is_empty() {
        return top(ResponseError::InvalidRequest);
    }
    let image = broker.metadata.image();
    let topic_of = |id: Uuid| -> Result<String, ResponseError> {
        let t = image.topic_by_id(id).ok_or(ResponseError::UnknownTopicId)?;
        if !authz.allows_topic(Operation::Read, &t.name) {
            return Err(ResponseError::TopicAuthorizationFailed);
        }
        Ok(t.name.clone())
    };
    // Each partition's share state, loaded for the leader epoch it is led in here.
    let mut loaded: Outcomes = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            if !loaded.contains_key(&(t.topic_id, p.partition_index)) {
                let r = super::share_fetch::load(broker, &group_id, &topic_of, t.topic_id, p.partition_index, false).await.map(|_| ());
                loaded.insert((t.topic_id, p.partition_index), r);
            }
        }
    }
    let epoch = req.share_session_epoch;
    let (results, stored) = broker
        .shares
        .call(&group_id, |share, now| -> Result<Outcomes, ResponseError> {
            share.acknowledge_session(&group_id, &member_id, epoch, now)?;
            let mut results = BTreeMap::new();
            for t in &req.topics {
                for p in &t.partitions {
                    let mut result = loaded.get(&(t.topic_id, p.partition_index)).copied().unwrap_or(Err(ResponseError::NotLeaderOrFollower));
                    for b in &p.acknowledgement_batches {
                        if result.is_err() {
                            break;
                        }
                        result = share.acknowledge(&(group_id.clone(), t.topic_id, p.partition_index), &member_id, b.first_offset, b.last_offset, &b.acknowledge_types, now);
                    }
                    results.insert((t.topic_id, p.partition_index), result);
                }
            }
            if epoch == FINAL_EPOCH {
                share.close_session(&group_id, &member_id);
            }
            Ok(results)
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(code) => return top(code),
    };
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, index), result) in results {
        let code = result.err().or(stored.err()).map_or(0, |e| e.code());
        topics.entry(topic_id).or_default().push(PartitionData::default().with_partition_index(index).with_error_code(code));
    }
    ShareAcknowledgeResponse::default()
        .with_responses(topics.into_iter().map(|(topic_id, partitions)| ShareAcknowledgeTopicResponse::default().with_topic_id(topic_id).with_partitions(partitions)).collect())
}
