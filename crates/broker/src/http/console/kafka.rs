//! The console's Kafka requests, answered in process by the same handlers a Kafka client
//! reaches, with the viewer's session: every authorization check, validation rule and error code
//! is the one `kafka-topics.sh` or `kafka-consumer-groups.sh` would meet, and the console cannot
//! show or do more than its user could with those tools.

use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::handlers;
use crate::session::Session;

/// Who asks, through which broker.
#[derive(Clone)]
pub struct Viewer {
    pub broker: Arc<Broker>,
    pub session: Session,
}

/// A refused request: Kafka's error name and message.
pub fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = crate::metrics::error_name(code);
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => format!("{name}: {m}"),
        None => name,
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn group(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

impl Viewer {
    /// Every topic the viewer may describe (Metadata v12 leaves the others out).
    pub async fn metadata(&self) -> MetadataResponse {
        let req = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
        handlers::metadata::handle(&self.broker, req, 12, &self.session).await
    }

    pub fn describe_cluster(&self) -> DescribeClusterResponse {
        handlers::describe_cluster::handle(&self.broker, DescribeClusterRequest::default(), &self.session)
    }

    /// A topic's configs (resource type 2), or the error.
    pub fn topic_configs(&self, topic: &str) -> Result<Vec<describe_configs_response::DescribeConfigsResourceResult>, String> {
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_string(topic.to_string())).with_configuration_keys(None)]);
        let r = handlers::describe_configs::handle(&self.broker, req, &self.session);
        let res = r.results.into_iter().next().ok_or("no result")?;
        if res.error_code != 0 {
            return Err(error_text(res.error_code, res.error_message.as_ref()));
        }
        Ok(res.configs)
    }

    /// Groups of every type (ListGroups v5).
    pub fn list_groups(&self) -> Result<Vec<list_groups_response::ListedGroup>, String> {
        let r = handlers::list_groups::handle(&self.broker, ListGroupsRequest::default(), &self.session);
        if r.error_code != 0 {
            return Err(error_text(r.error_code, None));
        }
        Ok(r.groups)
    }

    pub fn describe_classic(&self, id: &str) -> describe_groups_response::DescribedGroup {
        let r = handlers::describe_groups::handle(&self.broker, DescribeGroupsRequest::default().with_groups(vec![group(id)]), &self.session);
        r.groups.into_iter().next().unwrap_or_default()
    }

    pub fn describe_consumer(&self, id: &str) -> consumer_group_describe_response::DescribedGroup {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group(id)]);
        let r = handlers::consumer_group_describe::handle(&self.broker, req, &self.session);
        r.groups.into_iter().next().unwrap_or_default()
    }

    /// A share group (ShareGroupDescribe); GROUP_ID_NOT_FOUND for any other group.
    pub fn describe_share(&self, id: &str) -> share_group_describe_response::DescribedGroup {
        let req = ShareGroupDescribeRequest::default().with_group_ids(vec![group(id)]);
        let r = handlers::share_group_describe::handle(&self.broker, req, &self.session);
        r.groups.into_iter().next().unwrap_or_default()
    }

    /// A share group's start offset in every partition it has state for (DescribeShareGroupOffsets
    /// with no topic list): (topic, partition, start offset), or the error. A partition the
    /// group never read has none and is left out.
    pub fn share_start_offsets(&self, id: &str) -> Result<Vec<(String, i32, i64)>, String> {
        let req = DescribeShareGroupOffsetsRequest::default()
            .with_groups(vec![describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default().with_group_id(group(id)).with_topics(None)]);
        let r = handlers::describe_share_group_offsets::handle(&self.broker, req, &self.session);
        let g = r.groups.into_iter().next().ok_or("no group in the response")?;
        if g.error_code != 0 {
            return Err(error_text(g.error_code, g.error_message.as_ref()));
        }
        let mut out = Vec::new();
        for t in g.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.start_offset >= 0 {
                    out.push((t.topic_name.to_string(), p.partition_index, p.start_offset));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The group's committed offsets: (topic, partition, offset), or the error.
    pub fn committed(&self, id: &str) -> Result<Vec<(String, i32, i64)>, String> {
        let r = handlers::offset_fetch::handle(&self.broker, OffsetFetchRequest::default().with_group_id(group(id)).with_topics(None), 7, &self.session);
        if r.error_code != 0 {
            return Err(error_text(r.error_code, None));
        }
        let mut out = Vec::new();
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.push((t.name.to_string(), p.partition_index, p.committed_offset));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// ListOffsets for `partitions` of `topic` at `timestamp` (`LATEST`, `EARLIEST` or a time):
    /// per partition the offset, or the error (a partition led by another node answers
    /// NOT_LEADER_OR_FOLLOWER here).
    pub fn list_offsets(&self, topic: &str, partitions: &[i32], timestamp: i64) -> Vec<(i32, Result<i64, String>)> {
        let parts = partitions.iter().map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp)).collect();
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default().with_name(name(topic)).with_partitions(parts)]);
        let r = handlers::list_offsets::handle(&self.broker, req, 7, &self.session);
        r.topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| (p.partition_index, if p.error_code == 0 { Ok(p.offset) } else { Err(error_text(p.error_code, None)) }))
            .collect()
    }

    /// Up to `max_bytes` of whole batches of one partition from `offset` (Fetch v12, read
    /// uncommitted, no wait): the batches' bytes and the high watermark, or the error.
    pub async fn fetch(&self, topic: &str, partition: i32, offset: i64, max_bytes: i32) -> Result<(Vec<u8>, i64), String> {
        let part = FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(max_bytes).with_current_leader_epoch(-1);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![part])]);
        let (r, files) = handlers::fetch::handle(&self.broker, req, 12, &self.session, "strom-console").await;
        if r.error_code != 0 {
            return Err(error_text(r.error_code, None));
        }
        let p = r.responses.into_iter().flat_map(|t| t.partitions).next().ok_or("no partition in the response")?;
        if p.error_code != 0 {
            return Err(error_text(p.error_code, None));
        }
        // v4+ answers with placeholders for file ranges (`zero_copy`); one partition was asked
        // for, so every range is its, in order.
        let mut bytes = Vec::new();
        for f in &files {
            f.read_into(&mut bytes).map_err(|e| e.to_string())?;
        }
        if files.is_empty() {
            if let Some(b) = &p.records {
                bytes.extend_from_slice(b);
            }
        }
        Ok((bytes, p.high_watermark))
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32, replication_factor: i16, configs: &[(String, String)]) -> Result<(), String> {
        let configs = configs
            .iter()
            .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_string(k.clone())).with_value(Some(StrBytes::from_string(v.clone()))))
            .collect();
        let t = CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(replication_factor).with_configs(configs);
        let r = handlers::create_topics::handle(&self.broker, CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(30_000), 7, &self.session).await;
        match r.topics.into_iter().next() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) => Err(error_text(t.error_code, t.error_message.as_ref())),
            None => Err("no result".into()),
        }
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<(), String> {
        let r = handlers::delete_topics::handle(&self.broker, DeleteTopicsRequest::default().with_topic_names(vec![name(topic)]).with_timeout_ms(30_000), &self.session).await;
        match r.responses.into_iter().next() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) => Err(error_text(t.error_code, t.error_message.as_ref())),
            None => Err("no result".into()),
        }
    }

    /// Commits offsets for a group without members, as `kafka-consumer-groups.sh
    /// --reset-offsets --execute` does (generation -1, no member id: the coordinator refuses it
    /// while the group has members).
    pub async fn commit(&self, id: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<(), String> {
        let parts = offsets.iter().map(|&(p, o)| OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(o)).collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(group(id))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(parts)]);
        let r = handlers::offset_commit::handle(&self.broker, req, 8, &self.session).await;
        let errors: Vec<String> = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.error_code != 0)
            .map(|p| format!("partition {}: {}", p.partition_index, error_text(p.error_code, None)))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
