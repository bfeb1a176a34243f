//! `strom share-groups`: Kafka's `kafka-share-groups.sh` (KIP-932): list share groups, describe
//! them (`--state`, `--members`, or their start offsets; `--verbose` adds the epochs), reset a
//! group's start offsets (of `--topic`s or `--all-topics`, to the earliest, latest, a given
//! offset or `--to-datetime`), delete its offsets or the groups (`--all-groups` for every one).
//! Flags and table headers are Kafka's.
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
    /// The share group (repeat for several).
    #[arg(long)]
    pub group: Vec<String>,
    /// With --describe or --delete: every share group.
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// With --describe --state / --members: the epochs too.
    #[arg(long)]
    pub verbose: bool,
    /// With --describe: the group's state.
    #[arg(long)]
    pub state: bool,
    /// With --describe: the group's members.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's start offsets (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --reset-offsets / --delete-offsets: the topic (repeat for several).
    #[arg(long)]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has start offsets for.
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset.
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Reset to the first offset whose timestamp is at or after this time,
    /// YYYY-MM-DDTHH:mm:SS.sss (UTC unless it ends in Z or +hh:mm); the latest when none is.
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
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
            return Ok(list(&mut cluster).await?.into_iter().map(|id| id + "\n").collect());
        }
        let groups = if a.all_groups { list(&mut cluster).await? } else { a.group.clone() };
        if groups.is_empty() && !a.all_groups {
            bail!("Option [group] is required");
        }
        if a.describe {
            let mut tables = Vec::with_capacity(groups.len());
            for group in &groups {
                let coordinator = cluster.group_coordinator(group).await?;
                tables.push(if a.state || a.members {
                    describe(&mut cluster, coordinator, group, a.members, a.verbose).await?
                } else {
                    offsets(&mut cluster, coordinator, group).await?
                });
            }
            return Ok(tables.join("\n"));
        }
        if a.delete {
            return delete(&mut cluster, &groups).await;
        }
        let Some(group) = groups.first().cloned() else { bail!("Option [group] is required") };
        let coordinator = cluster.group_coordinator(&group).await?;
        if a.delete_offsets {
            if a.topic.is_empty() {
                bail!("Option [topic] is required");
            }
            return delete_offsets(&mut cluster, coordinator, &group, &a.topic).await;
        }
        let topics = if a.all_topics { offset_topics(&mut cluster, coordinator, &group).await? } else { a.topic.clone() };
        if topics.is_empty() {
            bail!("One of the options [topic] or [all-topics] is required");
        }
        reset(&mut cluster, coordinator, &group, &topics, &a).await
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

/// Every share group, sorted (ListGroups to every broker: each answers for the groups it
/// coordinates).
async fn list(cluster: &mut Cluster) -> anyhow::Result<Vec<String>> {
    let req = ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("share")]);
    let mut ids = std::collections::BTreeSet::new();
    let nodes: Vec<i32> = cluster.brokers.keys().copied().collect();
    for node in nodes {
        let r = cluster.call(node, LIST_GROUPS_VERSION, &req).await?;
        broker_error(r.error_code, "ListGroups")?;
        ids.extend(r.groups.into_iter().map(|g| g.group_id.to_string()));
    }
    Ok(ids.into_iter().collect())
}

async fn describe(cluster: &mut Cluster, coordinator: i32, group: &str, members: bool, verbose: bool) -> anyhow::Result<String> {
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
                let mut row = vec![group.to_string(), m.member_id.to_string(), m.client_host.to_string(), m.client_id.to_string(), n.to_string()];
                if verbose {
                    row.push(m.member_epoch.to_string());
                }
                row.push(assignment.join(";"));
                row
            })
            .collect();
        let headers: &[&str] = if verbose {
            &["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "MEMBER-EPOCH", "ASSIGNMENT"]
        } else {
            &["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
        };
        return Ok(table(headers, &rows));
    }
    let host = cluster.brokers.get(&coordinator).cloned().unwrap_or_default();
    let mut row = vec![group.to_string(), format!("{host}  ({coordinator})"), g.group_state.to_string()];
    if verbose {
        row.extend([g.group_epoch.to_string(), g.assignment_epoch.to_string()]);
    }
    row.push(g.members.len().to_string());
    let headers: &[&str] =
        if verbose { &["GROUP", "COORDINATOR (ID)", "STATE", "GROUP-EPOCH", "ASSIGNMENT-EPOCH", "#MEMBERS"] } else { &["GROUP", "COORDINATOR (ID)", "STATE", "#MEMBERS"] };
    Ok(table(headers, &[row]))
}

/// The group's start offsets per topic (DescribeShareGroupOffsets of all its topics).
async fn start_offsets(cluster: &mut Cluster, coordinator: i32, group: &str) -> anyhow::Result<Vec<(String, Vec<(i32, i64)>)>> {
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![DescribeShareGroupOffsetsRequestGroup::default().with_group_id(group_id(group)).with_topics(None)]);
    let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
    let Some(g) = r.groups.into_iter().next() else { bail!("DescribeShareGroupOffsets: empty response") };
    broker_error(g.error_code, &format!("Share group '{group}'"))?;
    Ok(g.topics.iter().map(|t| (t.topic_name.to_string(), t.partitions.iter().map(|p| (p.partition_index, p.start_offset)).collect())).collect())
}

async fn offsets(cluster: &mut Cluster, coordinator: i32, group: &str) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for (topic, partitions) in start_offsets(cluster, coordinator, group).await? {
        for (p, start) in partitions {
            let start = if start < 0 { "-".to_string() } else { start.to_string() };
            rows.push(vec![group.to_string(), topic.clone(), p.to_string(), start]);
        }
    }
    Ok(table(&["GROUP", "TOPIC", "PARTITION", "START-OFFSET"], &rows))
}

/// `--all-topics`: the topics the group has start offsets for.
async fn offset_topics(cluster: &mut Cluster, coordinator: i32, group: &str) -> anyhow::Result<Vec<String>> {
    Ok(start_offsets(cluster, coordinator, group).await?.into_iter().map(|(t, _)| t).collect())
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

async fn delete_offsets(cluster: &mut Cluster, coordinator: i32, group: &str, topics: &[String]) -> anyhow::Result<String> {
    let req = DeleteShareGroupOffsetsRequest::default().with_group_id(group_id(group)).with_topics(
        topics.iter().map(|t| DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(StrBytes::from_string(t.clone())))).collect(),
    );
    let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
    broker_error(r.error_code, &format!("Share group '{group}'"))?;
    let rows: Vec<Vec<String>> = r
        .responses
        .iter()
        .map(|t| vec![t.topic_name.to_string(), error(t.error_code).map_or("Successful".to_string(), |e| format!("Error: {e:?}"))])
        .collect();
    Ok(table(&["TOPIC", "STATUS"], &rows))
}

/// The new start offset of every partition of `topics`: the one given, or the partition's
/// earliest or latest offset, or the first at or after a time (ListOffsets to its leader).
async fn reset(cluster: &mut Cluster, coordinator: i32, group: &str, topics: &[String], a: &Args) -> anyhow::Result<String> {
    let by_time = a.to_datetime.as_deref().map(super::datetime::parse).transpose()?;
    let lookup = match (a.to_offset, a.to_earliest, a.to_latest, by_time) {
        (Some(o), false, false, None) => Target::Offset(o),
        (None, true, false, None) => Target::Lookup(-2),
        (None, false, true, None) => Target::Lookup(-1),
        (None, false, false, Some(ts)) => Target::Lookup(ts),
        _ => bail!("One of the reset scenarios must be given: --to-earliest, --to-latest, --to-offset or --to-datetime"),
    };
    let md = cluster.metadata(Some(topics)).await?;
    let mut targets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &md.topics {
        let topic = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        broker_error(t.error_code, &format!("Topic '{topic}'"))?;
        for p in &t.partitions {
            let offset = match lookup {
                Target::Offset(o) => o,
                Target::Lookup(timestamp) => {
                    let found = list_offset(cluster, p.leader_id.0, &topic, p.partition_index, timestamp).await?;
                    // No record at or after the time: the group starts at the end, as Kafka's tool does.
                    if found < 0 { list_offset(cluster, p.leader_id.0, &topic, p.partition_index, -1).await? } else { found }
                }
            };
            targets.insert((topic.clone(), p.partition_index), offset);
        }
    }
    if a.execute {
        let mut by_topic: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in &targets {
            by_topic.entry(t).or_default().push(AlterShareGroupOffsetsRequestPartition::default().with_partition_index(*p).with_start_offset(*o));
        }
        let req = AlterShareGroupOffsetsRequest::default().with_group_id(group_id(group)).with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| AlterShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(parts))
                .collect(),
        );
        let r = cluster.call(coordinator, SHARE_OFFSETS_VERSION, &req).await?;
        broker_error(r.error_code, &format!("Share group '{group}'"))?;
        for t in &r.responses {
            for p in &t.partitions {
                broker_error(p.error_code, &format!("Share group '{group}', partition {}-{}", t.topic_name.as_str(), p.partition_index))?;
            }
        }
    }
    let rows: Vec<Vec<String>> = targets.iter().map(|((t, p), o)| vec![group.to_string(), t.clone(), p.to_string(), o.to_string()]).collect();
    Ok(table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows))
}

#[derive(Clone, Copy)]
enum Target {
    Offset(i64),
    /// A ListOffsets timestamp: -2 earliest, -1 latest, or a time in milliseconds.
    Lookup(i64),
}

/// ListOffsets v1 of one partition at its leader: the offset for `timestamp`, -1 when none.
async fn list_offset(cluster: &mut Cluster, leader: i32, topic: &str, partition: i32, timestamp: i64) -> anyhow::Result<i64> {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)])]);
    let r = cluster.call(leader, LIST_OFFSETS_VERSION, &req).await.context("ListOffsets")?;
    let part = r.topics.first().and_then(|t| t.partitions.first()).context("ListOffsets: empty response")?;
    broker_error(part.error_code, &format!("ListOffsets of {topic}-{partition}"))?;
    Ok(part.offset)
}
