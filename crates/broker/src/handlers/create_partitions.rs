//! CreatePartitions: grow a topic's partition count (never shrink, as in Kafka), the new
//! partitions spread over the brokers or placed as the request's assignments say.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Each topic needs ALTER (TOPIC_AUTHORIZATION_FAILED otherwise), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest, session: &Session) -> CreatePartitionsResponse {
    let authz = broker.authz(session);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !authz.allows_topic(Operation::Alter, &t.name) {
            results.push(
                result
                    .with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(StrBytes::from_static_str("The topic authorization is failed."))),
            );
            continue;
        }
        results.push(match broker.topics.create_partitions(t.name.as_str(), t.count, assignments(&t), req.validate_only).await {
            Ok(()) => result,
            Err(e) => result.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// The new partitions' replicas, one list per new partition (`None`: the broker places them).
fn assignments(t: &CreatePartitionsTopic) -> Option<Vec<Vec<i32>>> {
    t.assignments.as_ref().map(|list| list.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect())
}
