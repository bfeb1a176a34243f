//! DescribeShareGroupOffsets (API 90, KIP-932): each share partition's start offset (the first
//! record not yet finished), as `kafka-share-groups.sh --describe --offsets` shows it. A partition
//! the group never read has none (-1); a null topic list means every partition the group has
//! state for.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as Group, DescribeShareGroupOffsetsResponsePartition as Partition, DescribeShareGroupOffsetsResponseTopic as Topic,
};
use kafka_protocol::messages::{DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Each group needs DESCRIBE, each topic DESCRIBE (left out otherwise), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: DescribeShareGroupOffsetsRequest, session: &Session) -> DescribeShareGroupOffsetsResponse {
    let authz = broker.authz(session);
    let image = broker.metadata.image();
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let base = Group::default().with_group_id(g.group_id.clone());
            if !authz.allows_group(Operation::Describe, &g.group_id) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Err(code) = broker.groups.ready_for(g.group_id.as_str()) {
                return base.with_error_code(code.code());
            }
            let known: BTreeMap<(Uuid, i32), i64> = broker.groups.share_start_offsets(g.group_id.as_str()).into_iter().collect();
            // The partitions asked for: those named, or every one with state.
            let wanted: Vec<(String, Vec<i32>)> = match g.topics {
                Some(ts) => ts.into_iter().map(|t| (t.topic_name.to_string(), t.partitions)).collect(),
                None => {
                    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (id, p) in known.keys() {
                        if let Some(t) = image.topic_by_id(*id) {
                            by_topic.entry(t.name.clone()).or_default().push(*p);
                        }
                    }
                    by_topic.into_iter().collect()
                }
            };
            let topics = wanted
                .into_iter()
                .filter(|(name, _)| authz.allows_topic(Operation::Describe, name))
                .map(|(name, partitions)| {
                    let topic = image.topics.get(&name);
                    let id = topic.map_or(Uuid::nil(), |t| t.id);
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            let base = Partition::default().with_partition_index(p).with_leader_epoch(-1);
                            if topic.is_none_or(|t| p < 0 || p >= t.partition_count()) {
                                return base.with_start_offset(-1).with_error_code(ResponseError::UnknownTopicOrPartition.code());
                            }
                            base.with_start_offset(known.get(&(id, p)).copied().unwrap_or(-1))
                        })
                        .collect();
                    Topic::default().with_topic_name(TopicName(StrBytes::from_string(name))).with_topic_id(id).with_partitions(partitions)
                })
                .collect();
            base.with_topics(topics)
        })
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}
