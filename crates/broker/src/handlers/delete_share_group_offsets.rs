//! DeleteShareGroupOffsets (API 92, KIP-932): drops a share group's state for whole topics
//! (`kafka-share-groups.sh --delete-offsets`); the next fetch starts where
//! `share.auto.offset.reset` says. Only while the group has no members: NON_EMPTY_GROUP.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as Topic;
use kafka_protocol::messages::{DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse};
use uuid::Uuid;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Needs DELETE on the group and READ on each topic, as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: DeleteShareGroupOffsetsRequest, session: &Session) -> DeleteShareGroupOffsetsResponse {
    let authz = broker.authz(session);
    let top = |code: ResponseError| DeleteShareGroupOffsetsResponse::default().with_error_code(code.code());
    if !authz.allows_group(Operation::Delete, &req.group_id) {
        return top(ResponseError::GroupAuthorizationFailed);
    }
    if let Err(code) = broker.groups.ready_for(req.group_id.as_str()) {
        return top(code);
    }
    if !broker.groups.is_share_group(req.group_id.as_str()) {
        return top(ResponseError::GroupIdNotFound);
    }
    let image = broker.metadata.image();
    let group_id = req.group_id.to_string();
    let (results, stored) = broker
        .groups
        .share_call(|share, _now| {
            req.topics
                .iter()
                .map(|t| {
                    let topic = image.topics.get(t.topic_name.as_str());
                    let result = if !authz.allows_topic(Operation::Read, &t.topic_name) {
                        Err(ResponseError::TopicAuthorizationFailed)
                    } else {
                        match topic {
                            Some(tp) => share.delete_state(&group_id, Some(tp.id)),
                            None => Err(ResponseError::UnknownTopicOrPartition),
                        }
                    };
                    (t.topic_name.clone(), topic.map_or(Uuid::nil(), |tp| tp.id), result)
                })
                .collect::<Vec<_>>()
        })
        .await;
    // A group with members refuses every topic: answered for the whole request, as Kafka.
    if results.iter().any(|(_, _, r)| *r == Err(ResponseError::NonEmptyGroup)) {
        return top(ResponseError::NonEmptyGroup);
    }
    let responses = results
        .into_iter()
        .map(|(name, id, r)| Topic::default().with_topic_name(name).with_topic_id(id).with_error_code(r.err().or(stored.err()).map_or(0, |e| e.code())))
        .collect();
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}
