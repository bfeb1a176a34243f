//! DescribeProducers: the producers a partition leader knows (`kafka-transactions.sh
//! --describe-producers`, `--find-hanging`): id, epoch, last sequence and timestamp, and where
//! each one's open transaction starts.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Each topic needs READ, as Kafka (TOPIC_AUTHORIZATION_FAILED otherwise).
pub fn handle(broker: &Arc<Broker>, req: DescribeProducersRequest, session: &Session) -> DescribeProducersResponse {
    let authz = broker.authz(session);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let resp = PartitionResponse::default().with_partition_index(i);
                    if !authz.allows_topic(Operation::Read, &t.name) {
                        return resp.with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code());
                    }
                    let producers = broker.replicas.leader(t.name.as_str(), i).map_err(|c| c.code()).and_then(|p| p.producers().map_err(|e| e.code().code()));
                    match producers {
                        Ok(list) => resp.with_active_producers(
                            list.into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.current_txn_start_offset.unwrap_or(-1))
                                })
                                .collect(),
                        ),
                        Err(code) => resp.with_error_code(code),
                    }
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
