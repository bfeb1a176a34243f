//! DeleteRecords: raise a partition's log start offset (offset -1 means the high watermark).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Each topic needs DELETE (TOPIC_AUTHORIZATION_FAILED otherwise), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest, session: &Session) -> DeleteRecordsResponse {
    let authz = broker.authz(session);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    if !authz.allows_topic(Operation::Delete, &t.name) {
                        return resp.with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code());
                    }
                    let partition = match broker.replicas.leader(t.name.as_str(), p.partition_index) {
                        Ok(p) => p,
                        Err(code) => return resp.with_error_code(code.code()),
                    };
                    match partition.delete_records_before(p.offset) {
                        Ok(low) => resp.with_low_watermark(low),
                        Err(e) => resp.with_error_code(e.code().code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
