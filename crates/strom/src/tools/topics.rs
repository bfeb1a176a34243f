//! `strom topics`: Kafka's `kafka-topics.sh`: create, list, describe, alter and delete topics.
//! Refusals print the broker's error name and message; --describe prints each topic's id.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka_sys::types::RDKafkaRespErr;

use super::admin_ffi::{self, TopicOp};
use super::{block_on, metadata, parse_properties, Connection, TIMEOUT};

const TOPIC_ALREADY_EXISTS: i32 = RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS as i32;
const UNKNOWN_TOPIC_OR_PARTITION: i32 = RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART as i32;

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "alter", "delete"]))]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all topics.
    #[arg(long)]
    pub list: bool,
    /// Describe topics: one line per topic, one per partition (leader, replicas, in-sync replicas).
    #[arg(long)]
    pub describe: bool,
    /// Change the number of partitions of a topic.
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic (with --list and --describe: all topics if absent).
    #[arg(long)]
    pub topic: Option<String>,
    /// Number of partitions, for --create and --alter (broker default if absent at --create).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor for --create (broker default if absent).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Replicas by partition for --create (instead of --partitions and --replication-factor) or
    /// --alter (all partitions, the existing ones first, which are left as they are): broker ids,
    /// `:` between replicas (the first is the preferred leader), `,` between partitions, as in
    /// `1:2,2:3,3:1`.
    #[arg(long, value_name = "B1:B2,...")]
    pub replica_assignment: Option<String>,
    /// A topic config for --create, key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,
    /// With --create: no error if the topic exists already.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter and --delete: no error if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// With --list and --describe: leave out internal topics (__consumer_offsets).
    #[arg(long)]
    pub exclude_internal: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        a.connection.client_config(&[])?.create().context("cannot create the admin client")?;
    let opts = AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT));
    let bootstrap = &a.connection.bootstrap_server;
    if a.list {
        let md = metadata(admin.inner(), bootstrap)?;
        let mut names: Vec<&str> = md
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|n| !(a.exclude_internal && is_internal(n)))
            .filter(|n| a.topic.as_deref().is_none_or(|t| t == *n))
            .collect();
        names.sort_unstable();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    if a.describe {
        return describe(&admin, &opts, &a);
    }
    let Some(topic) = a.topic.as_deref() else { bail!("--topic is required with --create, --alter and --delete") };
    // CreateTopics, CreatePartitions and DeleteTopics go through `admin_ffi`: the broker's
    // message for a refusal says why (which character of a name is illegal, which config value
    // is bad), and the rdkafka crate would drop it.
    let configs = parse_properties("--config", &a.configs)?;
    let assignment = a.replica_assignment.as_deref().filter(|s| !s.is_empty()).map(parse_replica_assignment).transpose()?;
    if a.replica_assignment.is_some() && !(a.create || a.alter) {
        bail!("--replica-assignment goes with --create or --alter");
    }
    let new_partitions;
    let (op, what, tolerated) = if a.create {
        if assignment.is_some() && (a.partitions.is_some() || a.replication_factor.is_some()) {
            bail!("--replica-assignment can't be used with --partitions or --replication-factor");
        }
        let (partitions, replication_factor) = (a.partitions.unwrap_or(-1), a.replication_factor.unwrap_or(-1));
        let op = TopicOp::Create { partitions, replication_factor, assignment: assignment.as_deref(), configs: &configs };
        (op, "create", a.if_not_exists.then_some(TOPIC_ALREADY_EXISTS))
    } else if a.alter {
        let Some(n) = a.partitions else { bail!("--alter needs --partitions") };
        let n = usize::try_from(n).map_err(|_| anyhow::anyhow!("--partitions must be positive"))?;
        // As kafka-topics.sh: the assignment lists every partition; the existing ones are skipped.
        new_partitions = match &assignment {
            Some(all) => {
                let md = metadata(admin.inner(), bootstrap)?;
                let existing = md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
                Some(all.iter().skip(existing).cloned().collect::<Vec<_>>())
            }
            None => None,
        };
        (TopicOp::AddPartitions { total: n, assignment: new_partitions.as_deref() }, "alter", a.if_exists.then_some(UNKNOWN_TOPIC_OR_PARTITION))
    } else {
        (TopicOp::Delete, "delete", a.if_exists.then_some(UNKNOWN_TOPIC_OR_PARTITION))
    };
    match admin_ffi::topic_request(admin.inner(), topic, op, TIMEOUT)? {
        Ok(()) if a.create => println!("Created topic {topic}."),
        Ok(()) => {}
        // --if-not-exists, --if-exists.
        Err(e) if Some(e.code) == tolerated => {}
        Err(e) => bail!("cannot {what} topic {topic}: {e}"),
    }
    Ok(())
}

/// `--replica-assignment`: `1:2,2:3` is partition 0 on brokers 1 and 2, partition 1 on 2 and 3.
/// kafka-topics.sh's own checks: no broker twice in a partition, one replication factor.
fn parse_replica_assignment(text: &str) -> anyhow::Result<Vec<Vec<i32>>> {
    let mut out: Vec<Vec<i32>> = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let brokers = part
            .split(':')
            .map(|b| b.trim().parse::<i32>().map_err(|_| anyhow::anyhow!("--replica-assignment: `{}` is not a broker id", b.trim())))
            .collect::<anyhow::Result<Vec<i32>>>()?;
        let mut dups: Vec<i32> = brokers.iter().copied().filter(|b| brokers.iter().filter(|x| *x == b).count() > 1).collect();
        dups.sort_unstable();
        dups.dedup();
        if !dups.is_empty() {
            bail!("Partition replica lists may not contain duplicate entries: {}", dups.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
        }
        if out.first().is_some_and(|first| first.len() != brokers.len()) {
            bail!("Partition {i} has different replication factor: {brokers:?}");
        }
        out.push(brokers);
    }
    Ok(out)
}

/// Kafka's `--describe` format, tab-separated: a topic line with its non-default configs, then
/// one line per partition.
fn describe(admin: &AdminClient<DefaultClientContext>, opts: &AdminOptions, a: &Args) -> anyhow::Result<()> {
    let md = metadata(admin.inner(), &a.connection.bootstrap_server)?;
    let mut topics: Vec<_> = md
        .topics()
        .iter()
        .filter(|t| !(a.exclude_internal && is_internal(t.name())))
        .filter(|t| a.topic.as_deref().is_none_or(|want| want == t.name()))
        .collect();
    topics.sort_by(|x, y| x.name().cmp(y.name()));
    if let (Some(want), true) = (&a.topic, topics.is_empty()) {
        bail!("Topic '{want}' does not exist as expected");
    }
    let specs: Vec<ResourceSpecifier> = topics.iter().map(|t| ResourceSpecifier::Topic(t.name())).collect();
    let configs = block_on(admin.describe_configs(&specs, opts))??;
    let mut overrides: BTreeMap<String, String> = BTreeMap::new();
    for r in configs.into_iter().flatten() {
        let set: Vec<String> = r
            .entries
            .iter()
            .filter(|e| matches!(e.source, ConfigSource::DynamicTopic))
            .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
            .collect();
        if let rdkafka::admin::OwnedResourceSpecifier::Topic(name) = &r.specifier {
            overrides.insert(name.clone(), set.join(","));
        }
    }
    // librdkafka's metadata has no topic ids; DescribeTopics has them.
    let names: Vec<&str> = topics.iter().filter(|t| t.error().is_none()).map(|t| t.name()).collect();
    let ids: BTreeMap<String, String> = admin_ffi::topic_ids(admin.inner(), &names, TIMEOUT)?.into_iter().collect();
    for t in topics {
        if t.error().is_some() {
            continue;
        }
        let replication = t.partitions().first().map_or(0, |p| p.replicas().len());
        // As kafka-topics.sh: no TopicId field for a topic without one.
        let id = ids.get(t.name()).map(|id| format!("\tTopicId: {id}")).unwrap_or_default();
        println!(
            "Topic: {}{id}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            t.name(),
            t.partitions().len(),
            replication,
            overrides.get(t.name()).map(String::as_str).unwrap_or("")
        );
        let mut partitions: Vec<_> = t.partitions().iter().collect();
        partitions.sort_by_key(|p| p.id());
        for p in partitions {
            println!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                t.name(),
                p.id(),
                if p.leader() < 0 { "none".to_string() } else { p.leader().to_string() },
                join(p.replicas()),
                join(p.isr())
            );
        }
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::parse_replica_assignment;

    #[test]
    fn replica_assignments_read_as_kafka_topics_reads_them() {
        assert_eq!(parse_replica_assignment("1:2, 2:3,3 :1").unwrap(), vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
        assert_eq!(parse_replica_assignment("1:2:1:2").unwrap_err().to_string(), "Partition replica lists may not contain duplicate entries: 1,2");
        assert_eq!(parse_replica_assignment("1:2,3").unwrap_err().to_string(), "Partition 1 has different replication factor: [3]");
        assert!(parse_replica_assignment("1:x").is_err());
    }
}
