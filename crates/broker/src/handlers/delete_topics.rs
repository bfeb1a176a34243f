//! DeleteTopics: by name (all versions) or by topic id (v6+). Under the client's
//! `controller_mutation_rate` (KIP-599, `quotas/mutation.rs`), each topic counting its
//! partitions: strict from v5, as Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// As Kafka: DELETE on the topic (else TOPIC_AUTHORIZATION_FAILED); a topic named by id that
/// the principal may not DESCRIBE is answered as if unknown.
pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest, version: i16, session: &Session, client_id: &str) -> DeleteTopicsResponse {
    let authz = broker.authz(session);
    let mut quota = broker.quotas.mutations(&broker.metadata.image().quotas, &session.principal, client_id, version >= 5);
    // Before v6 topics came as a list of names; from v6 as (name or id) states.
    let mut wanted: Vec<(Option<TopicName>, Uuid)> = req.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect();
    wanted.extend(req.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        responses.push({
            let image = broker.metadata.image();
            let name = name
                .map(|n| n.to_string())
                .or_else(|| image.topic_by_id(id).map(|t| t.name.clone()).filter(|n| authz.allows_topic(Operation::Describe, n)));
            let result = DeletableTopicResult::default().with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))));
            match name {
                None => result.with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code()),
                Some(name) if !authz.allows_topic(Operation::Delete, &name) => {
                    result.with_topic_id(id).with_error_code(ResponseError::TopicAuthorizationFailed.code())
                }
                Some(_) if quota.check(now_ms()).is_err() => {
                    let e = ResponseError::ThrottlingQuotaExceeded;
                    result.with_topic_id(id).with_error_code(e.code()).with_error_message(Some(StrBytes::from_static_str(crate::quotas::mutation::EXCEEDED)))
                }
                Some(name) => {
                    let partitions = image.topic(&name).map_or(0, |t| t.partition_count());
                    match broker.topics.delete_topic(&name).await {
                        Ok(deleted_id) => {
                            quota.record(partitions.max(0) as usize, now_ms());
                            result.with_topic_id(deleted_id)
                        }
                        Err(e) => result.with_topic_id(id).with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
                    }
                }
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses).with_throttle_time_ms(quota.throttle_ms())
}
