//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), or the first
//! record at or after a timestamp (through the time index): `Partition::list_offset`.
//!
//! v0 (Burrow, sarama's defaults, kafka-python for brokers before 0.10.1) asks for up to
//! `max_num_offsets` offsets before a time and gets Kafka's segment-boundary list
//! (`Partition::legacy_offsets_before`), as Kafka 3.9's `handleListOffsetRequestV0` answers.
//!
//! As in Kafka, a consumer (replica id -1) is answered by the leader only, within its isolation
//! (high watermark, or last stable offset); any other replica id sees the log end, and the
//! debugging id (-2, the tools') is answered by any replica hosted here, follower or leader.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::clock;
use crate::old_versions::{ListOffsetsV0PartitionResponse, ListOffsetsV0Request, ListOffsetsV0Response};
use crate::partition::Isolation;

/// Kafka's ListOffsetsRequest.CONSUMER_REPLICA_ID and DEBUGGING_REPLICA_ID.
const CONSUMER: i32 = -1;
const DEBUGGING: i32 = -2;

/// Each topic needs DESCRIBE, as Kafka (TOPIC_AUTHORIZATION_FAILED otherwise).
pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16, session: &Session) -> ListOffsetsResponse {
    let authz = broker.authz(session);
    // read_committed consumers see offsets below the last stable offset only (v2+).
    let isolation = if req.replica_id.0 == CONSUMER { Isolation::of_consumer(req.isolation_level) } else { Isolation::Follower };
    let any_replica = req.replica_id.0 == DEBUGGING;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    if !authz.allows_topic(Operation::Describe, &t.name) {
                        return resp.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_offset(-1).with_timestamp(-1);
                    }
                    let partition = match broker.replicas.for_consumer(t.name.as_str(), p.partition_index, any_replica) {
                        Ok(p) => p,
                        Err(code) => return resp.with_error_code(code.code()).with_offset(-1).with_timestamp(-1),
                    };
                    let found = partition.list_offset(p.timestamp, isolation);
                    match found {
                        // The leader epoch field exists from v4; the codec refuses it set below.
                        Ok(Some((ts, offset))) if version >= 4 => {
                            resp.with_timestamp(ts).with_offset(offset).with_leader_epoch(partition.leader_epoch())
                        }
                        Ok(Some((ts, offset))) => resp.with_timestamp(ts).with_offset(offset),
                        Ok(None) => resp.with_timestamp(-1).with_offset(-1),
                        Err(e) => resp.with_error_code(e.code().code()).with_timestamp(-1).with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn handle_v0(broker: &Arc<Broker>, req: ListOffsetsV0Request, session: &Session) -> ListOffsetsV0Response {
    let authz = broker.authz(session);
    // Only a consumer (-1) is held below the high watermark; replicas and the debugging id see
    // the log end.
    let from_consumer = req.replica_id == CONSUMER;
    let any_replica = req.replica_id == DEBUGGING;
    let topics = req
        .topics
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|p| {
                    let mut resp = ListOffsetsV0PartitionResponse { partition: p.partition, ..Default::default() };
                    // v0 knows only latest (-1) and earliest (-2) among the negative timestamps.
                    if p.timestamp < -2 {
                        resp.error_code = ResponseError::UnsupportedVersion.code();
                        return resp;
                    }
                    if !authz.allows_topic(Operation::Describe, &name) {
                        resp.error_code = ResponseError::TopicAuthorizationFailed.code();
                        return resp;
                    }
                    let partition = match broker.replicas.for_consumer(name.as_str(), p.partition, any_replica) {
                        Ok(partition) => partition,
                        Err(code) => {
                            resp.error_code = code.code();
                            return resp;
                        }
                    };
                    // Kafka sizes an array by the count, so a negative one fails as an
                    // unexpected exception: UNKNOWN_SERVER_ERROR.
                    let Ok(max) = usize::try_from(p.max_num_offsets) else {
                        resp.error_code = ResponseError::UnknownServerError.code();
                        return resp;
                    };
                    match partition.legacy_offsets_before(p.timestamp, max, from_consumer, clock::now_ms()) {
                        Ok(offsets) => resp.old_style_offsets = offsets,
                        Err(e) => resp.error_code = e.code().code(),
                    }
                    resp
                })
                .collect();
            (name, partitions)
        })
        .collect();
    ListOffsetsV0Response { topics }
}
