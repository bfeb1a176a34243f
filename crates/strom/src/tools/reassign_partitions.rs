//! `strom reassign-partitions`: Kafka's `kafka-reassign-partitions.sh` with its JSON files,
//! flags and output: `--generate` a proposal for moving topics onto a broker list, `--execute`
//! a reassignment file (printing the current assignment to roll back to), `--verify` its
//! progress, `--cancel` it, `--list` what is moving. AlterPartitionReassignments and
//! ListPartitionReassignments (KIP-455) through `kafka_client`; Metadata for the current
//! replicas.
//!
//! Differences from Kafka, said where they matter: `--generate` places replicas with the
//! broker's own rule (`strom_metadata::elect::place_replicas`: leaders round-robin from a start
//! that rotates with the partition, followers on the next brokers, racks alternating), which is
//! deterministic where Kafka's starts at a random broker; and each broker has one log
//! directory, so `log_dirs` other than "any" are refused (and no log-directory throttle is set
//! or cleared).
//!
//! `--throttle N` does what Kafka's tool does (KIP-73): each moving topic's
//! `leader.replication.throttled.replicas` becomes its moving partitions' current replicas and
//! `follower.replication.throttled.replicas` the replicas being added, and the two
//! `*.replication.throttled.rate` broker configs become N, set once at the cluster's default
//! level (resource name "") rather than on each broker as Kafka's tool does: one request, and a
//! broker's own value still wins over it. `--verify` once everything is done, and `--cancel`,
//! clear both (unless `--preserve-throttles`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::TIMEOUT;

const ALTER_VERSION: i16 = 0;
const LIST_VERSION: i16 = 0;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 0;

const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// (topic, partition), ordered as Kafka's tool sorts them: by topic, then partition.
type Tp = (String, i32);

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["generate", "execute", "verify", "cancel", "list"]))]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings (client.id, request.timeout.ms, SASL/PLAIN).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Generate a candidate assignment moving the topics of --topics-to-move-json-file to the
    /// brokers of --broker-list; nothing is executed.
    #[arg(long)]
    pub generate: bool,
    /// Start the reassignment of --reassignment-json-file.
    #[arg(long)]
    pub execute: bool,
    /// Show whether the reassignment of --reassignment-json-file is done.
    #[arg(long)]
    pub verify: bool,
    /// Cancel the active reassignments of --reassignment-json-file.
    #[arg(long)]
    pub cancel: bool,
    /// List every partition reassignment in progress.
    #[arg(long)]
    pub list: bool,
    /// With --generate: {"topics": [{"topic": "foo"}, ...], "version": 1}.
    #[arg(long, value_name = "FILE")]
    pub topics_to_move_json_file: Option<PathBuf>,
    /// With --generate: the brokers to move to, "0,1,2".
    #[arg(long, value_name = "BROKER_LIST")]
    pub broker_list: Option<String>,
    /// With --generate: ignore the brokers' racks.
    #[arg(long)]
    pub disable_rack_aware: bool,
    /// With --execute, --verify, --cancel: {"version": 1, "partitions": [{"topic": "foo",
    /// "partition": 0, "replicas": [1, 2], "log_dirs": ["any", "any"]}, ...]}.
    #[arg(long, value_name = "FILE")]
    pub reassignment_json_file: Option<PathBuf>,
    /// With --execute: start even though other reassignments are in progress.
    #[arg(long)]
    pub additional: bool,
    /// With --execute: the replication throttle in B/s for the moving replicas (KIP-73); run
    /// --verify until the reassignment completes, which removes it.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "BYTES_PER_SEC")]
    pub throttle: i64,
    /// With --verify and --cancel: leave the throttles as they are.
    #[arg(long)]
    pub preserve_throttles: bool,
}

fn need<'a, T>(v: &'a Option<T>, flag: &str, action: &str) -> anyhow::Result<&'a T> {
    v.as_ref().with_context(|| format!("Missing required argument \"[{flag}]\" for {action}"))
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let settings = Settings::read("reassign-partitions-tool", a.command_config.as_deref(), TIMEOUT)?;
    // Files and flags are checked before anything is asked of the cluster.
    let generate_args = if a.generate {
        let topics = parse_topics_json(&read(need(&a.topics_to_move_json_file, "topics-to-move-json-file", "--generate")?)?)?;
        let brokers = parse_broker_list(need(&a.broker_list, "broker-list", "--generate")?)?;
        Some((topics, brokers))
    } else {
        None
    };
    let targets = if a.execute || a.verify || a.cancel {
        let action = if a.execute { "--execute" } else if a.verify { "--verify" } else { "--cancel" };
        let parsed = parse_reassignment_json(&read(need(&a.reassignment_json_file, "reassignment-json-file", action)?)?)?;
        if a.execute {
            check_execute_targets(&parsed)?;
        }
        Some(parsed)
    } else {
        None
    };
    let out = super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        if let Some((topics, brokers)) = generate_args {
            return generate(&mut cluster, &topics, &brokers, !a.disable_rack_aware).await;
        }
        if a.list {
            return list(&mut cluster).await;
        }
        let Some(targets) = targets else { bail!("no action") };
        if a.execute {
            execute(&mut cluster, &targets, a.additional, a.throttle).await
        } else if a.verify {
            verify(&mut cluster, &targets, a.preserve_throttles).await
        } else {
            cancel(&mut cluster, &targets, a.preserve_throttles).await
        }
    })??;
    print!("{out}");
    Ok(())
}

fn parse_broker_list(text: &str) -> anyhow::Result<Vec<i32>> {
    let brokers: Vec<i32> = text.split(',').map(|b| b.trim().parse::<i32>().with_context(|| format!("--broker-list: `{b}` is not a broker id"))).collect::<anyhow::Result<_>>()?;
    let dups = duplicates(&brokers);
    if !dups.is_empty() {
        bail!("Broker list contains duplicate entries: {}", set_text(&dups));
    }
    Ok(brokers)
}

fn duplicates<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    items.iter().filter(|i| !seen.insert((*i).clone())).cloned().collect()
}

/// Java's `Set.toString`: `[a, b]`.
fn set_text<T: std::fmt::Display>(items: &BTreeSet<T>) -> String {
    format!("[{}]", items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn json(text: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|_| anyhow::anyhow!("The input string is not a valid JSON"))
}

/// `version` absent means 1; any other value is refused, as Kafka refuses it.
fn check_version(js: &serde_json::Value) -> anyhow::Result<()> {
    match js.get("version") {
        None => Ok(()),
        Some(v) if v.as_i64() == Some(1) => Ok(()),
        Some(v) => bail!("Not supported version field value {v}"),
    }
}

/// The topics file of --generate.
fn parse_topics_json(text: &str) -> anyhow::Result<Vec<String>> {
    let js = json(text)?;
    check_version(&js)?;
    let mut topics = Vec::new();
    for t in js.get("topics").and_then(|t| t.as_array()).into_iter().flatten() {
        topics.push(t.get("topic").and_then(|n| n.as_str()).context("each entry of \"topics\" needs a \"topic\" string")?.to_string());
    }
    let dups = duplicates(&topics);
    if !dups.is_empty() {
        bail!("List of topics to reassign contains duplicate entries: {}", set_text(&dups));
    }
    Ok(topics)
}

/// A reassignment file: each partition's target replicas, in the file's order (duplicates kept
/// for `check_execute_targets` to name). `log_dirs`, when given, must match the replicas in
/// length and be "any" throughout: Strom brokers have one log directory.
fn parse_reassignment_json(text: &str) -> anyhow::Result<Vec<(Tp, Vec<i32>)>> {
    let js = json(text)?;
    check_version(&js)?;
    let mut out = Vec::new();
    for p in js.get("partitions").and_then(|t| t.as_array()).into_iter().flatten() {
        let topic = p.get("topic").and_then(|v| v.as_str()).context("each partition needs a \"topic\" string")?;
        let partition = p.get("partition").and_then(|v| v.as_i64()).and_then(|v| i32::try_from(v).ok()).context("each partition needs a \"partition\" number")?;
        let replicas: Vec<i32> = p
            .get("replicas")
            .and_then(|v| v.as_array())
            .context("each partition needs a \"replicas\" list")?
            .iter()
            .map(|r| r.as_i64().and_then(|r| i32::try_from(r).ok()).context("replicas are broker ids"))
            .collect::<anyhow::Result<_>>()?;
        if let Some(dirs) = p.get("log_dirs") {
            let dirs: Vec<&str> = dirs.as_array().context("\"log_dirs\" must be a list")?.iter().map(|d| d.as_str().unwrap_or("")).collect();
            if dirs.len() != replicas.len() {
                bail!("Size of replicas list {} is different from size of log dirs list [{}] for partition {topic}-{partition}", list_text(&replicas), dirs.join(", "));
            }
            if let Some(d) = dirs.iter().find(|d| **d != "any") {
                bail!("log dir {d} for partition {topic}-{partition}: moving replicas between log directories is not supported (a Strom broker has one log directory); use \"any\"");
            }
        }
        out.push(((topic.to_string(), partition), replicas));
    }
    Ok(out)
}

fn list_text(ids: &[i32]) -> String {
    format!("[{}]", ids.iter().map(i32::to_string).collect::<Vec<_>>().join(", "))
}

/// Kafka's checks of an --execute file.
fn check_execute_targets(targets: &[(Tp, Vec<i32>)]) -> anyhow::Result<()> {
    if targets.is_empty() {
        bail!("Partition reassignment list cannot be empty");
    }
    if targets.iter().any(|(_, r)| r.is_empty()) {
        bail!("Partition replica list cannot be empty");
    }
    let dups = duplicates(&targets.iter().map(|(tp, _)| tp.clone()).collect::<Vec<_>>());
    if !dups.is_empty() {
        bail!("Partition reassignment contains duplicate topic partitions: {}", dups.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(","));
    }
    let within: Vec<String> = targets
        .iter()
        .filter_map(|((t, p), r)| {
            let d = duplicates(r);
            (!d.is_empty()).then(|| format!("{t}-{p} contains multiple entries for {}", d.iter().map(i32::to_string).collect::<Vec<_>>().join(",")))
        })
        .collect();
    if !within.is_empty() {
        bail!("Partition replica lists may not contain duplicate entries: {}", within.join(". "));
    }
    Ok(())
}

/// Kafka's reassignment JSON, compact, partitions sorted: `{"version":1,"partitions":[{"topic":
/// "t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}`.
fn reassignment_json(parts: &BTreeMap<Tp, Vec<i32>>) -> String {
    let entries: Vec<String> = parts
        .iter()
        .map(|((t, p), r)| {
            let replicas = r.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let dirs = vec!["\"any\""; r.len()].join(",");
            format!("{{\"topic\":{},\"partition\":{p},\"replicas\":[{replicas}],\"log_dirs\":[{dirs}]}}", serde_json::Value::String(t.clone()))
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", entries.join(","))
}

fn tp_text((t, p): &Tp) -> String {
    format!("{t}-{p}")
}

/// Every partition's replicas of `topics` (Metadata, never creating a topic); a topic that does
/// not exist is an error naming it, as Kafka's tool says it.
async fn current_replicas(cluster: &mut Cluster, topics: &BTreeSet<String>) -> anyhow::Result<BTreeMap<Tp, Vec<i32>>> {
    let names: Vec<String> = topics.iter().cloned().collect();
    let md = cluster.metadata(Some(&names)).await?;
    let mut out = BTreeMap::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        match error(t.error_code) {
            None => {}
            Some(kafka_protocol::error::ResponseError::UnknownTopicOrPartition) => bail!("UNKNOWN_TOPIC_OR_PARTITION: Topic {name} not found."),
            Some(e) => return Err(anyhow::Error::new(BrokerError(e)).context(format!("topic {name}"))),
        }
        for p in &t.partitions {
            out.insert((name.clone(), p.partition_index), p.replica_nodes.iter().map(|b| b.0).collect());
        }
    }
    Ok(out)
}

/// Kafka's --generate: the topics' current assignment and a proposal over `brokers`, keeping
/// each topic's partition count and replication factor.
async fn generate(cluster: &mut Cluster, topics: &[String], brokers: &[i32], rack_aware: bool) -> anyhow::Result<String> {
    let current = current_replicas(cluster, &topics.iter().cloned().collect()).await?;
    let md = cluster.metadata(Some(&[])).await?;
    let mut image = strom_metadata::MetadataImage::default();
    for b in md.brokers.iter().filter(|b| brokers.contains(&b.node_id.0)) {
        let rack = if rack_aware { b.rack.as_ref().map(|r| r.to_string()) } else { None };
        image.brokers.insert(
            b.node_id.0,
            strom_metadata::BrokerRegistration { id: b.node_id.0, incarnation: uuid::Uuid::nil(), endpoints: Vec::new(), rack, fenced: false },
        );
    }
    let rackless = image.brokers.values().filter(|b| b.rack.is_none()).count();
    if rack_aware && rackless != 0 && rackless != image.brokers.len() {
        bail!("Not all brokers have rack information. Add --disable-rack-aware in command line to make replica assignment without rack information.");
    }
    let mut proposed = BTreeMap::new();
    let mut by_topic: BTreeMap<&str, (i32, usize)> = BTreeMap::new();
    for ((t, _), replicas) in &current {
        let e = by_topic.entry(t.as_str()).or_insert((0, replicas.len()));
        e.0 += 1;
    }
    for (topic, (count, rf)) in by_topic {
        let rf16 = i16::try_from(rf).unwrap_or(i16::MAX);
        let placed = strom_metadata::elect::place_replicas(&image, 0, count, rf16)
            .map_err(|available| anyhow::anyhow!("Replication factor: {rf} larger than available brokers: {available}."))?;
        for (i, p) in placed.into_iter().enumerate() {
            proposed.insert((topic.to_string(), i as i32), p.replicas);
        }
    }
    Ok(format!(
        "Current partition replica assignment\n{}\n\nProposed partition reassignment configuration\n{}\n",
        reassignment_json(&current),
        reassignment_json(&proposed)
    ))
}

/// What is moving now (ListPartitionReassignments), of `targets` or of everything.
async fn ongoing(cluster: &mut Cluster, targets: Option<&[(Tp, Vec<i32>)]>) -> anyhow::Result<BTreeMap<Tp, (Vec<i32>, Vec<i32>, Vec<i32>)>> {
    let topics = targets.map(|ts| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for ((t, p), _) in ts {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| ListPartitionReassignmentsTopics::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps))
            .collect()
    });
    let req = ListPartitionReassignmentsRequest::default().with_topics(topics).with_timeout_ms(30_000);
    let resp = cluster.call_any(LIST_VERSION, &req).await.context("ListPartitionReassignments")?;
    if let Some(e) = error(resp.error_code) {
        return Err(anyhow::Error::new(BrokerError(e)).context("ListPartitionReassignments"));
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| ((t.name.to_string(), p.partition_index), (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)))))
        .collect())
}

/// AlterPartitionReassignments: each partition's target (None cancels); the refused ones with
/// their error.
async fn alter(cluster: &mut Cluster, changes: &BTreeMap<Tp, Option<Vec<i32>>>) -> anyhow::Result<Vec<(Tp, String)>> {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((t, p), target) in changes {
        by_topic
            .entry(t.as_str())
            .or_default()
            .push(ReassignablePartition::default().with_partition_index(*p).with_replicas(target.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())));
    }
    let topics = by_topic.into_iter().map(|(t, ps)| ReassignableTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps)).collect();
    let req = AlterPartitionReassignmentsRequest::default().with_topics(topics).with_timeout_ms(30_000);
    let resp = cluster.call_any(ALTER_VERSION, &req).await.context("AlterPartitionReassignments")?;
    if let Some(e) = error(resp.error_code) {
        let text = super::error_text(i32::from(e.code()), resp.error_message.as_deref());
        bail!("{text}");
    }
    let mut errors = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                errors.push(((t.name.to_string(), p.partition_index), super::error_text(i32::from(p.error_code), p.error_message.as_deref())));
            }
        }
    }
    errors.sort();
    Ok(errors)
}

async fn execute(cluster: &mut Cluster, targets: &[(Tp, Vec<i32>)], additional: bool, throttle: i64) -> anyhow::Result<String> {
    if !additional && !ongoing(cluster, None).await?.is_empty() {
        bail!("Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment.");
    }
    let known: BTreeSet<i32> = cluster.metadata(Some(&[])).await?.brokers.iter().map(|b| b.node_id.0).collect();
    if let Some(b) = targets.iter().flat_map(|(_, r)| r).find(|b| !known.contains(b)) {
        bail!("Unknown broker id {b}");
    }
    let proposed: BTreeMap<Tp, Vec<i32>> = targets.iter().cloned().collect();
    let topics: BTreeSet<String> = proposed.keys().map(|(t, _)| t.clone()).collect();
    let current: BTreeMap<Tp, Vec<i32>> = current_replicas(cluster, &topics).await?.into_iter().filter(|(tp, _)| proposed.contains_key(tp)).collect();
    let missing: Vec<String> = proposed.keys().filter(|tp| !current.contains_key(*tp)).map(tp_text).collect();
    if !missing.is_empty() {
        bail!("UNKNOWN_TOPIC_OR_PARTITION: Unable to find partition: {}", missing.join(", "));
    }
    let mut out = format!(
        "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback\n",
        reassignment_json(&current)
    );
    if throttle >= 0 {
        out.push_str("Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.\n");
        let moves = move_map(&ongoing(cluster, None).await?, &proposed, &current);
        let (leader, follower) = throttled_replicas(&moves);
        let mut resources: Vec<AlterConfigsResource> = leader
            .iter()
            .map(|(topic, value)| {
                let follower = follower.get(topic).map(String::as_str).unwrap_or("");
                config_resource(RESOURCE_TOPIC, topic, &[(LEADER_REPLICAS, OP_SET, Some(value)), (FOLLOWER_REPLICAS, OP_SET, Some(follower))])
            })
            .collect();
        let rate = throttle.to_string();
        resources.push(config_resource(RESOURCE_BROKER, "", &[(LEADER_RATE, OP_SET, Some(&rate)), (FOLLOWER_RATE, OP_SET, Some(&rate))]));
        alter_configs(cluster, resources).await?;
        out.push_str(&format!("The inter-broker throttle limit was set to {throttle} B/s\n"));
    }
    let errors = alter(cluster, &proposed.iter().map(|(tp, r)| (tp.clone(), Some(r.clone()))).collect()).await?;
    if !errors.is_empty() {
        print!("{out}");
        bail!("Error reassigning partition(s):\n{}", errors.iter().map(|(tp, e)| format!("{}: {e}", tp_text(tp))).collect::<Vec<_>>().join("\n"));
    }
    out.push_str(&format!(
        "Successfully started partition reassignment{} for {}\n",
        if proposed.len() == 1 { "" } else { "s" },
        proposed.keys().map(tp_text).collect::<Vec<_>>().join(",")
    ));
    Ok(out)
}

/// Kafka's move map: per partition, the replicas it moves from (the current ones, or those of a
/// reassignment already under way) and those it moves to (the targets not among them). The
/// reassignments under way on other partitions are in it too, so resubmitting keeps their
/// throttles.
fn move_map(
    ongoing: &BTreeMap<Tp, (Vec<i32>, Vec<i32>, Vec<i32>)>,
    proposed: &BTreeMap<Tp, Vec<i32>>,
    current: &BTreeMap<Tp, Vec<i32>>,
) -> BTreeMap<Tp, (BTreeSet<i32>, BTreeSet<i32>)> {
    let mut moves: BTreeMap<Tp, (BTreeSet<i32>, BTreeSet<i32>)> = ongoing
        .iter()
        .map(|(tp, (replicas, adding, _))| {
            let sources = replicas.iter().filter(|r| !adding.contains(r)).copied().collect();
            (tp.clone(), (sources, adding.iter().copied().collect()))
        })
        .collect();
    for (tp, target) in proposed {
        let sources: BTreeSet<i32> = match moves.get(tp) {
            Some((sources, _)) => sources.clone(),
            None => current.get(tp).map(|r| r.iter().copied().collect()).unwrap_or_default(),
        };
        let destinations = target.iter().filter(|r| !sources.contains(r)).copied().collect();
        moves.insert(tp.clone(), (sources, destinations));
    }
    moves
}

/// Kafka's calculateLeaderThrottles / calculateFollowerThrottles: per topic, `partition:broker`
/// for every source (the leader may be any of them) and for every destination, sorted as text.
fn throttled_replicas(moves: &BTreeMap<Tp, (BTreeSet<i32>, BTreeSet<i32>)>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut leader: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut follower: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((topic, partition), (sources, destinations)) in moves {
        let l = leader.entry(topic.clone()).or_default();
        l.extend(sources.iter().map(|b| format!("{partition}:{b}")));
        let f = follower.entry(topic.clone()).or_default();
        f.extend(destinations.iter().map(|b| format!("{partition}:{b}")));
    }
    let join = |m: BTreeMap<String, BTreeSet<String>>| m.into_iter().map(|(t, items)| (t, items.into_iter().collect::<Vec<_>>().join(","))).collect();
    (join(leader), join(follower))
}

fn config_resource(kind: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> AlterConfigsResource {
    AlterConfigsResource::default().with_resource_type(kind).with_resource_name(StrBytes::from_string(name.to_string())).with_configs(
        ops.iter()
            .map(|(key, op, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(*op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
            })
            .collect(),
    )
}

/// One IncrementalAlterConfigs; any resource's error fails the tool, naming the resource.
async fn alter_configs(cluster: &mut Cluster, resources: Vec<AlterConfigsResource>) -> anyhow::Result<()> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(resources);
    let resp = cluster.call_any(INCREMENTAL_ALTER_CONFIGS_VERSION, &req).await.context("IncrementalAlterConfigs")?;
    for r in &resp.responses {
        if r.error_code != 0 {
            let what = if r.resource_type == RESOURCE_TOPIC { format!("topic {}", r.resource_name.as_str()) } else { "the brokers".to_string() };
            bail!("{} (setting the throttle on {what})", super::error_text(i32::from(r.error_code), r.error_message.as_deref()));
        }
    }
    Ok(())
}

/// Kafka's clearAllThrottles: the rates on every broker (here: the cluster-wide ones) and the
/// throttled-replica lists of the plan's topics.
async fn clear_throttles(cluster: &mut Cluster, targets: &[(Tp, Vec<i32>)]) -> anyhow::Result<String> {
    let mut brokers: BTreeSet<i32> = cluster.metadata(Some(&[])).await?.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.extend(targets.iter().flat_map(|(_, r)| r.iter().copied()));
    let topics: BTreeSet<&str> = targets.iter().map(|((t, _), _)| t.as_str()).collect();
    let mut resources = vec![config_resource(RESOURCE_BROKER, "", &[(LEADER_RATE, OP_DELETE, None), (FOLLOWER_RATE, OP_DELETE, None)])];
    resources.extend(topics.iter().map(|t| config_resource(RESOURCE_TOPIC, t, &[(LEADER_REPLICAS, OP_DELETE, None), (FOLLOWER_REPLICAS, OP_DELETE, None)])));
    alter_configs(cluster, resources).await?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    Ok(format!(
        "Clearing broker-level throttles on broker{} {}\nClearing topic-level throttles on topic{} {}\n",
        plural(brokers.len()),
        brokers.iter().map(i32::to_string).collect::<Vec<_>>().join(","),
        plural(topics.len()),
        topics.iter().copied().collect::<Vec<_>>().join(",")
    ))
}

async fn verify(cluster: &mut Cluster, targets: &[(Tp, Vec<i32>)], preserve_throttles: bool) -> anyhow::Result<String> {
    let moving = ongoing(cluster, Some(targets)).await?;
    let settled: BTreeSet<String> = targets.iter().filter(|(tp, _)| !moving.contains_key(tp)).map(|((t, _), _)| t.clone()).collect();
    let current = if settled.is_empty() { BTreeMap::new() } else { current_replicas(cluster, &settled).await? };
    let mut lines = vec!["Status of partition reassignment:".to_string()];
    let sorted: BTreeMap<Tp, Vec<i32>> = targets.iter().cloned().collect();
    for (tp, target) in &sorted {
        if moving.contains_key(tp) {
            lines.push(format!("Reassignment of partition {} is still in progress.", tp_text(tp)));
            continue;
        }
        let Some(now) = current.get(tp) else { bail!("UNKNOWN_TOPIC_OR_PARTITION: Unable to find partition: {}", tp_text(tp)) };
        if now == target {
            lines.push(format!("Reassignment of partition {} is completed.", tp_text(tp)));
        } else {
            let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            lines.push(format!("There is no active reassignment of partition {}, but replica set is {} rather than {}.", tp_text(tp), ids(now), ids(target)));
        }
    }
    // Kafka then prints the log-directory moves (none here: one directory per broker), and
    // once nothing moves any more clears the throttles.
    let mut out = format!("{}\n\n", lines.join("\n"));
    if moving.is_empty() && !preserve_throttles {
        out.push_str(&clear_throttles(cluster, targets).await?);
    }
    Ok(out)
}

async fn cancel(cluster: &mut Cluster, targets: &[(Tp, Vec<i32>)], preserve_throttles: bool) -> anyhow::Result<String> {
    let moving = ongoing(cluster, Some(targets)).await?;
    // Kafka's condition: a reassignment that still adds replicas with none to remove has not
    // begun to drop anything and is cancelled as the others are, except when it only adds.
    let cancelling: BTreeMap<Tp, Option<Vec<i32>>> =
        moving.iter().filter(|(_, (_, adding, removing))| adding.is_empty() || !removing.is_empty()).map(|(tp, _)| (tp.clone(), None)).collect();
    let mut out = String::new();
    if cancelling.is_empty() {
        out.push_str("None of the specified partition reassignments are active.\n");
    } else {
        let errors = alter(cluster, &cancelling).await?;
        if !errors.is_empty() {
            bail!(
                "Error cancelling partition reassignment{} for:\n{}",
                if errors.len() == 1 { "" } else { "s" },
                errors.iter().map(|(tp, e)| format!("{}: {e}", tp_text(tp))).collect::<Vec<_>>().join("\n")
            );
        }
        out.push_str(&format!(
            "Successfully cancelled partition reassignment{} for: {}\n",
            if cancelling.len() == 1 { "" } else { "s" },
            cancelling.keys().map(tp_text).collect::<Vec<_>>().join(",")
        ));
    }
    // As Kafka prints it, without a line end.
    out.push_str("None of the specified partition moves are active.");
    if !preserve_throttles {
        out.push_str(&clear_throttles(cluster, targets).await?);
    }
    Ok(out)
}

async fn list(cluster: &mut Cluster) -> anyhow::Result<String> {
    let moving = ongoing(cluster, None).await?;
    if moving.is_empty() {
        return Ok("No partition reassignments found.\n".into());
    }
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let lines: Vec<String> = moving
        .iter()
        .map(|(tp, (replicas, adding, removing))| {
            let adding = if adding.is_empty() { String::new() } else { format!(" adding: {}.", ids(adding)) };
            let removing = if removing.is_empty() { String::new() } else { format!(" removing: {}.", ids(removing)) };
            format!("{}: replicas: {}.{adding}{removing}", tp_text(tp), ids(replicas))
        })
        .collect();
    Ok(format!("Current partition reassignments:\n{}\n", lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's calculateProposedMoveMap and the throttle values it gives (its own test cases'
    /// shapes): sources are the current replicas, or those of a reassignment under way;
    /// followers are throttled only where they are added.
    #[test]
    fn throttles_name_the_sources_and_the_added_replicas() {
        let tp = |t: &str, p| (t.to_string(), p);
        let current: BTreeMap<Tp, Vec<i32>> = [(tp("foo", 0), vec![1, 2, 3]), (tp("foo", 1), vec![4, 5, 6]), (tp("bar", 0), vec![2, 3, 4])].into();
        let proposed: BTreeMap<Tp, Vec<i32>> = [(tp("foo", 0), vec![1, 2, 5]), (tp("foo", 1), vec![4, 5, 6]), (tp("bar", 0), vec![1, 3])].into();
        // bar-0 is already moving from 2,3 to 2,3,4 (4 being added): its sources stay 2,3.
        let ongoing: BTreeMap<Tp, (Vec<i32>, Vec<i32>, Vec<i32>)> = [(tp("bar", 0), (vec![2, 3, 4], vec![4], vec![]))].into();
        let moves = move_map(&ongoing, &proposed, &current);
        let (leader, follower) = throttled_replicas(&moves);
        assert_eq!(leader["foo"], "0:1,0:2,0:3,1:4,1:5,1:6");
        assert_eq!(follower["foo"], "0:5");
        assert_eq!(leader["bar"], "0:2,0:3");
        assert_eq!(follower["bar"], "0:1");
    }

    #[test]
    fn reassignment_files_read_and_print_as_kafkas() {
        let parsed = parse_reassignment_json(r#"{"version":1,"partitions":[{"topic":"b","partition":1,"replicas":[3,1],"log_dirs":["any","any"]},{"topic":"a","partition":0,"replicas":[2]}]}"#).unwrap();
        assert_eq!(parsed, vec![(("b".to_string(), 1), vec![3, 1]), (("a".to_string(), 0), vec![2])]);
        let printed = reassignment_json(&parsed.into_iter().collect());
        assert_eq!(printed, r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[2],"log_dirs":["any"]},{"topic":"b","partition":1,"replicas":[3,1],"log_dirs":["any","any"]}]}"#);
        assert_eq!(parse_reassignment_json(r#"{"version":2,"partitions":[]}"#).unwrap_err().to_string(), "Not supported version field value 2");
        assert_eq!(parse_reassignment_json("{").unwrap_err().to_string(), "The input string is not a valid JSON");
        let e = parse_reassignment_json(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "Size of replicas list [1, 2] is different from size of log dirs list [any] for partition a-0");
        assert!(parse_reassignment_json(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#).is_err());
    }

    #[test]
    fn execute_files_get_kafkas_checks() {
        let tp = |t: &str, p| (t.to_string(), p);
        assert_eq!(check_execute_targets(&[]).unwrap_err().to_string(), "Partition reassignment list cannot be empty");
        assert_eq!(check_execute_targets(&[(tp("a", 0), vec![])]).unwrap_err().to_string(), "Partition replica list cannot be empty");
        assert_eq!(
            check_execute_targets(&[(tp("a", 0), vec![1]), (tp("a", 0), vec![2])]).unwrap_err().to_string(),
            "Partition reassignment contains duplicate topic partitions: a-0"
        );
        assert_eq!(
            check_execute_targets(&[(tp("a", 0), vec![1, 1, 2])]).unwrap_err().to_string(),
            "Partition replica lists may not contain duplicate entries: a-0 contains multiple entries for 1"
        );
        assert!(check_execute_targets(&[(tp("a", 0), vec![1, 2])]).is_ok());
    }

    #[test]
    fn generate_inputs_get_kafkas_checks() {
        assert_eq!(parse_topics_json(r#"{"topics":[{"topic":"a"},{"topic":"b"}],"version":1}"#).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_topics_json(r#"{"topics":[{"topic":"a"},{"topic":"a"}]}"#).unwrap_err().to_string(), "List of topics to reassign contains duplicate entries: [a]");
        assert_eq!(parse_broker_list("1,2,1").unwrap_err().to_string(), "Broker list contains duplicate entries: [1]");
        assert_eq!(parse_broker_list("3, 1").unwrap(), vec![3, 1]);
    }
}
