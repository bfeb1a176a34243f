//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), or the first
//! record at or after a timestamp (through the time index).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::storage_error_code;
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
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
                    let hw = partition.high_watermark();
                    let found = partition.with_log(|log| {
                        Ok(match p.timestamp {
                            LATEST => Some((-1, hw)),
                            EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
                            // No tiered storage: nothing is tiered.
                            LATEST_TIERED => Some((-1, -1)),
                            MAX_TIMESTAMP => log.max_timestamp()?.filter(|(_, off)| *off < hw),
                            ts => log.offset_for_timestamp(ts)?.map(|(off, ts)| (ts, off)).filter(|(_, off)| *off < hw),
                        })
                    });
                    match found {
                        // The leader epoch field exists from v4; the codec refuses it set below.
                        Ok(Some((ts, offset))) if version >= 4 => {
                            resp.with_timestamp(ts).with_offset(offset).with_leader_epoch(partition.leader_epoch())
                        }
                        Ok(Some((ts, offset))) => resp.with_timestamp(ts).with_offset(offset),
                        Ok(None) => resp.with_timestamp(-1).with_offset(-1),
                        Err(e) => resp.with_error_code(storage_error_code(&e).code()).with_timestamp(-1).with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
