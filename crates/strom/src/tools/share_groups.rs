//! `strom share-groups`: Kafka's `kafka-share-groups.sh` (KIP-932): list share groups, describe
//! one (`--state`, `--members`, or its start offsets), reset its start offsets, delete its offsets
//! or the group. Flags and table headers are Kafka's.
//!
//! librdkafka has no Admin API for share groups, so this tool speaks the protocol itself
//! (`kafka_client`): ListGroups v5 (type filter `share`) to every broker, FindCoordinator and then
//! ShareGroupDescribe, DescribeShareGroupOffsets, AlterShareGroupOffsets,
//! DeleteShareGroupOffsets and DeleteGroups to the group's coordinator, ListOffsets to partition
//! leaders for `--to-earliest` / `--to-latest`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_share_group_offsets_request::{AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, BrokerId, DeleteGroupsRequest, DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, ShareGroupDescribeRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::{table, TIMEOUT};

/// The versions Kafka 4.1's admin client sends.
const LIST_GROUPS_VERSION: i16 = 5;
const SHARE_GROUP_DESCRIBE_VERSION: i16 = 1;
const SHARE_OFFSETS_VERSION: i16 = 0;
const DELETE_GROUPS_VERSION: i16 = 2;
const LIST_OFFSETS_VERSION: i16 = 1;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "describe", "reset_offsets", "delete", "delete_offsets"])))]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings (see `strom transactions --help`).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// List all share groups.
    #[arg(long)]
    pub list: bool,
    /// Describe a share group: its start offsets, or with --state / --members those.
    #[arg(long)]
    pub describe: bool,
    /// Reset the start offsets of a share group without members (dry run unless --execute).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete share groups (without members).
    #[arg(long)]
    pub delete: bool,
    /// Delete a share group's offsets of a topic (the group without members).
    #[arg(long)]
    pub delete_offsets: bool,
    /// The share group.
    #[arg(long)]
    pub group: Vec<String>,
    /// With --describe: the group's state.
    #[arg(long)]
    pub state: bool,
    /// With --describe: the group's members.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's start offsets (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --reset-offsets / --delete-offsets: the topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset.
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Carry out --reset-offsets.
    #[arg(long)]
    pub execute: bool,
    /// Only show what --reset-offsets would do (the default).
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let settings = Settings::read("strom-share-groups", a.command_config.as_deref(), TIMEOUT)?;
    let out = super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        if a.list {
            return list(&mut cluster).await;
        }
        let Some(group) = a.group.first().cloned() else { bail!("Option [group] is required") };
        if a.describe {
            let coordinator = cluster.group_coordinator(&group).await?;
            return if a.state || a.members { describe(&mut cluster, coordinator, &group, a.members).await } else { offsets(&mut cluster, coordinator, &group).await };
        }
        if a.delete {
            return delete(&mut cluster, &a.group).await;
        }
        let Some(topic) = a.topic.clone() else { bail!("Option [topic] is required") };
        let coordinator = cluster.group_coordinator(&group).await?;
        if a.delete_offsets {
            return delete_offsets(&mut cluster, coordinator, &group, &topic).await;
        }
        reset(&mut cluster, coordinator, &group, &topic, &a).await
    })??;
    print!("{out}");
    Ok(())
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

fn broker_error(code: i16, what: &str) -> anyhow::Result<()> {
    match error(code) {
        Some(e) => Err(anyhow::Error::new(BrokerError(e)).context(what.to_string())),
        None => Ok(()),
    }
}

async fn list(cluster: &mut Cluster) -> anyhow::Result<String> {
    let req = ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("share")]);
    let mut ids = std::collections::BTreeSet::new();
    let nodes: Vec<i32> = cluster.brokers.keys().copied().collect();
    for node in nodes {
        let r = cluster.call(node, LIST_GROUPS_VERSION, &req).await?;
        broker_error(r.error_code, "ListGroups")?;
        ids.extend(r.groups.into_iter().map(|g| g.group_id.to_string()));
    }
    Ok(ids.into_iter().map(|id| id + "\n").collect())
}

async fn describe(cluster: &mut Cluster, coordinator: i32, group: &str, members: bool) -> anyhow::Result<String> {
    let req = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
    let r = cluster.call(coordinator, SHARE_GROUP_DESCRIBE_VERSION, &req).await?;
    let Some(g) = r.groups.into_iter().next() else { bail!("ShareGroupDescribe: empty response") };
    if let Some(e) = error(g.error_code) {
        return Err(anyhow::Error::new(BrokerError(e)).context(format!("Share group '{group}'")));
    }
    if members {
        let rows: Vec<Vec<String>> = g
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<String> = m
                    .assignment
                    .topic_partitions
                    .iter()
                    .map(|t| format!("{}:{}", t.topic_name.as_str(), t.partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",")))
                    .collect();
                let n: usize = m.assignment.topic_partitions.iter().map(|t| t.partitions.len()).sum();
                vec![group.to_string(), m.member_id.to_string(), m.client_host.to_string(), m.client_id.to_string(), n.to_string(), assignment.join(";")]
            })
            .collect();
        return Ok(table(&["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"], &rows));
    }
    let host = cluster.brokers.get(&coordinator).cloned().unwrap_or_default();
    let row = vec![group.to_string(), format!("{host}  ({coordinator})"), g.group_state.to_string(), g.members.len().to_string()];
    Ok(table(&["GROUP", "COORDINATOR (ID)", "STATE", "#MEMBERS"], &[row]))
}

async fn offsets(cluster: &mut Cluster, coordinator: i32, group: &str) -> anyhow::Result<String> {
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![DescribeShareGroupOffsetsRequestGroup::default().with_group_id(group_id(group)).with_topics(None)]);
    let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
    let Some(g) = r.groups.into_iter().next() else { bail!("DescribeShareGroupOffsets: empty response") };
    broker_error(g.error_code, &format!("Share group '{group}'"))?;
    let mut rows = Vec::new();
    for t in &g.topics {
        for p in &t.partitions {
            let start = if p.start_offset < 0 { "-".to_string() } else { p.start_offset.to_string() };
            rows.push(vec![group.to_string(), t.topic_name.to_string(), p.partition_index.to_string(), start]);
        }
    }
    Ok(table(&["GROUP", "TOPIC", "PARTITION", "START-OFFSET"], &rows))
}

async fn delete(cluster: &mut Cluster, groups: &[String]) -> anyhow::Result<String> {
    let mut out = String::new();
    for group in groups {
        let coordinator = cluster.group_coordinator(group).await?;
        let r = cluster.call(coordinator, DELETE_GROUPS_VERSION, &DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])).await?;
        let code = r.results.first().map_or(0, |g| g.error_code);
        broker_error(code, &format!("Deletion of share group '{group}'"))?;
        out.push_str(&format!("Deletion of requested share groups ('{group}') was successful.\n"));
    }
    Ok(out)
}

async fn delete_offsets(cluster: &mut Cluster, coordinator: i32, group: &str, topic: &str) -> anyhow::Result<String> {
    let req = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))]);
    let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
    broker_error(r.error_code, &format!("Share group '{group}'"))?;
    let rows: Vec<Vec<String>> = r
        .responses
        .iter()
        .map(|t| vec![t.topic_name.to_string(), error(t.error_code).map_or("Successful".to_string(), |e| format!("Error: {e:?}"))])
        .collect();
    Ok(table(&["TOPIC", "STATUS"], &rows))
}

/// The new start offset of every partition of `topic`: the one given, or the partition's
/// earliest or latest offset (ListOffsets to its leader).
async fn reset(cluster: &mut Cluster, coordinator: i32, group: &str, topic: &str, a: &Args) -> anyhow::Result<String> {
    let md = cluster.metadata(Some(&[topic.to_string()])).await?;
    let Some(t) = md.topics.first() else { bail!("Metadata: empty response") };
    broker_error(t.error_code, &format!("Topic '{topic}'"))?;
    let mut targets: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &t.partitions {
        let offset = match (a.to_offset, a.to_earliest, a.to_latest) {
            (Some(o), false, false) => o,
            (None, true, false) | (None, false, true) => {
                let timestamp = if a.to_earliest { -2 } else { -1 };
                let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(p.partition_index).with_timestamp(timestamp)])]);
                let r = cluster.call(p.leader_id.0, LIST_OFFSETS_VERSION, &req).await.context("ListOffsets")?;
                let part = r.topics.first().and_then(|t| t.partitions.first()).context("ListOffsets: empty response")?;
                broker_error(part.error_code, &format!("ListOffsets of {topic}-{}", p.partition_index))?;
                part.offset
            }
            _ => bail!("One of the reset scenarios must be given: --to-earliest, --to-latest or --to-offset"),
        };
        targets.insert(p.partition_index, offset);
    }
    if a.execute {
        let req = AlterShareGroupOffsetsRequest::default().with_group_id(group_id(group)).with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(targets.iter().map(|(p, o)| AlterShareGroupOffsetsRequestPartition::default().with_partition_index(*p).with_start_offset(*o)).collect())]);
        let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
        broker_error(r.error_code, &format!("Share group '{group}'"))?;
        for t in &r.responses {
            for p in &t.partitions {
                broker_error(p.error_code, &format!("Share group '{group}', partition {topic}-{}", p.partition_index))?;
            }
        }
    }
    let rows: Vec<Vec<String>> = targets.iter().map(|(p, o)| vec![group.to_string(), topic.to_string(), p.to_string(), o.to_string()]).collect();
    Ok(table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows))
}
