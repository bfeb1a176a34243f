//! CreatePartitions: grow a topic's partition count (never shrink, as in Kafka), the new
//! partitions spread over the brokers or placed as the request's assignments say. Under the
//! client's `controller_mutation_rate` (KIP-599, `quotas/mutation.rs`): strict from v3, as Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Each topic needs ALTER (TOPIC_AUTHORIZATION_FAILED otherwise), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest, version: i16, session: &Session, client_id: &str) -> CreatePartitionsResponse {
    let authz = broker.authz(session);
    let mut quota = broker.quotas.mutations(&broker.metadata.image().quotas, &session.principal, client_id, version >= 3);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !authz.allows_topic(Operation::Alter, &t.name) {
            results.push(
                result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(StrBytes::from_static_str("The topic authorization is failed."))),
            );
            continue;
        }
        if quota.check(now_ms()).is_err() {
            let e = ResponseError::ThrottlingQuotaExceeded;
            results.push(result.with_error_code(e.code()).with_error_message(Some(StrBytes::from_static_str(crate::quotas::mutation::EXCEEDED))));
            continue;
        }
        let before = broker.metadata.image().topic(t.name.as_str()).map_or(0, |topic| topic.partition_count());
        results.push(match broker.topics.create_partitions(t.name.as_str(), t.count, assignments(&t), req.validate_only).await {
            Ok(()) => {
                if !req.validate_only {
                    quota.record((t.count - before).max(0) as usize, now_ms());
                }
                result
            }
            Err(e) => result.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results).with_throttle_time_ms(quota.throttle_ms())
}

/// The new partitions' replicas, one list per new partition (`None`: the broker places them).
fn assignments(t: &CreatePartitionsTopic) -> Option<Vec<Vec<i32>>> {
    t.assignments.as_ref().map(|list| list.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect())
}
