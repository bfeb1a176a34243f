//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), or the first
//! record at or after a timestamp (through the time index): `Partition::list_offset`.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::partition::Isolation;

pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // read_committed consumers see offsets below the last stable offset only (v2+).
    let isolation = Isolation::of_consumer(req.isolation_level);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let partition = match broker.replicas.leader(t.name.as_str(), p.partition_index) {
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
