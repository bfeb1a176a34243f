//! `strom transactions`: Kafka's `kafka-transactions.sh` (KIP-664): list the transactional ids
//! the coordinators know, describe one, describe a partition's active producers, find hanging
//! transactions and abort one. Subcommands, flags, table headers and messages are Kafka's.
//!
//! librdkafka has no Admin API for these requests, so this tool speaks the protocol itself
//! (`kafka_client`): ListTransactions to every broker, FindCoordinator + DescribeTransactions for
//! one transactional id, DescribeProducers to a partition's leader, and WriteTxnMarkers to the
//! leader to abort, as Java's `Admin.abortTransaction` does.
//!
//! A hanging transaction is one a partition leader holds open (it has a start offset, so the last
//! stable offset cannot pass it and read_committed consumers stall) that no coordinator will ever
//! end: its producer id belongs to no transactional id, or its transactional id's coordinator no
//! longer has that partition in the transaction. Only an abort marker written by hand ends it.

// Column headers read best as literals beside the code that fills the columns.
#![allow(clippy::print_literal)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, MetadataResponse, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{backoff, error, BrokerError, Cluster, Settings};
use super::{table, TIMEOUT};

/// DescribeProducers v0, DescribeTransactions v0, ListTransactions v1 (KIP-994's duration
/// filter), WriteTxnMarkers v1 (flexible): the versions Kafka's admin client sends.
const DESCRIBE_PRODUCERS_VERSION: i16 = 0;
const DESCRIBE_TRANSACTIONS_VERSION: i16 = 0;
const LIST_TRANSACTIONS_VERSION: i16 = 1;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Partitions per DescribeProducers request in find-hanging (Kafka's MAX_BATCH_SIZE), so that a
/// broker with many partitions is not sent one giant request.
const MAX_BATCH_SIZE: usize = 500;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings. Read: client.id, request.timeout.ms,
    /// security.protocol PLAINTEXT or SASL_PLAINTEXT with SASL/PLAIN (sasl.jaas.config, or
    /// sasl.username and sasl.password); TLS settings are refused.
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List transactions.
    List {
        /// Duration (in millis) to filter by: if < 0, all transactions will be returned;
        /// otherwise, only transactions running longer than this duration will be returned.
        #[arg(long, allow_negative_numbers = true, value_name = "MS")]
        duration_filter: Option<i64>,
    },
    /// Describe the state of an active transactional-id.
    Describe {
        /// The transactional id.
        #[arg(long)]
        transactional_id: String,
    },
    /// Describe the states of active producers for a topic partition.
    DescribeProducers {
        /// Describe the producer state on this replica instead of the leader.
        #[arg(long)]
        broker_id: Option<i32>,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Abort a hanging transaction (writes an abort marker to the partition's leader).
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The start offset of the transaction to abort (its producer is looked up on the leader).
        #[arg(long)]
        start_offset: Option<i64>,
        /// Without --start-offset (Kafka's form for brokers before 3.0): the producer id ...
        #[arg(long)]
        producer_id: Option<i64>,
        /// ... its epoch ...
        #[arg(long)]
        producer_epoch: Option<i16>,
        /// ... and the coordinator epoch.
        #[arg(long, allow_negative_numbers = true)]
        coordinator_epoch: Option<i32>,
    },
    /// Find hanging transactions, on one broker's partitions or one topic's.
    FindHanging {
        /// The broker whose partitions to search (DescribeProducers goes to that replica).
        #[arg(long)]
        broker_id: Option<i32>,
        /// Only transactions open longer than this many minutes are candidates: the longest
        /// transaction.timeout.ms a producer may use.
        #[arg(long, default_value_t = 15, value_name = "MINUTES")]
        max_transaction_timeout: i32,
        /// The topic to search (required with --partition).
        #[arg(long)]
        topic: Option<String>,
        /// The partition to search (with --topic).
        #[arg(long)]
        partition: Option<i32>,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let settings = Settings::read("strom-transactions", a.command_config.as_deref(), TIMEOUT)?;
    let out = super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        match a.command {
            Command::List { duration_filter } => list(&mut cluster, duration_filter).await,
            Command::Describe { transactional_id } => describe(&mut cluster, &transactional_id).await,
            Command::DescribeProducers { broker_id, topic, partition } => describe_producers(&mut cluster, broker_id, &topic, partition).await,
            Command::Abort { topic, partition, start_offset, producer_id, producer_epoch, coordinator_epoch } => {
                abort(&mut cluster, &topic, partition, start_offset, producer_id, producer_epoch, coordinator_epoch).await
            }
            Command::FindHanging { broker_id, max_transaction_timeout, topic, partition } => {
                find_hanging(&mut cluster, broker_id, max_transaction_timeout, topic, partition).await
            }
        }
    })??;
    print!("{out}");
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether asking again may help. Kafka calls UNKNOWN_TOPIC_OR_PARTITION retriable (metadata may
/// lag a creation), and Java's admin client waits out its 60 s api timeout on it; a command-line
/// tool asked about a topic that does not exist had better say so at once.
fn retriable(e: ResponseError) -> bool {
    e.is_retriable() && e != ResponseError::UnknownTopicOrPartition
}

/// Kafka's `TopicPartition.toString`.
fn tp_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// The leader of `topic`-`partition` in `md`, or the error Java's admin client would report.
fn leader_of(md: &MetadataResponse, topic: &str, partition: i32) -> Result<i32, ResponseError> {
    let t = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic)).ok_or(ResponseError::UnknownTopicOrPartition)?;
    if let Some(e) = error(t.error_code) {
        return Err(e);
    }
    let p = t.partitions.iter().find(|p| p.partition_index == partition).ok_or(ResponseError::UnknownTopicOrPartition)?;
    match p.leader_id.0 {
        l if l >= 0 => Ok(l),
        _ => Err(ResponseError::LeaderNotAvailable),
    }
}

// ---------------------------------------------------------------------------------------------
// list

async fn list(cluster: &mut Cluster, duration_filter: Option<i64>) -> anyhow::Result<String> {
    let req = ListTransactionsRequest::default().with_duration_filter(duration_filter.unwrap_or(-1));
    let by_broker = list_transactions(cluster, &req).await.map_err(|e| e.context("Failed to list transactions"))?;
    let mut rows = Vec::new();
    for (broker, mut listings) in by_broker {
        listings.sort_by(|a, b| a.0.cmp(&b.0));
        for (transactional_id, producer_id, state) in listings {
            rows.push(vec![transactional_id, broker.to_string(), producer_id.to_string(), state]);
        }
    }
    Ok(table(&["TransactionalId", "Coordinator", "ProducerId", "TransactionState"], &rows))
}

/// ListTransactions sent to every broker (each lists the transactional ids it coordinates):
/// broker -> [(transactional id, producer id, state)].
async fn list_transactions(cluster: &mut Cluster, req: &ListTransactionsRequest) -> anyhow::Result<BTreeMap<i32, Vec<(String, i64, String)>>> {
    let mut out = BTreeMap::new();
    let brokers: Vec<i32> = cluster.brokers.keys().copied().collect();
    for broker in brokers {
        let start = Instant::now();
        let resp = loop {
            let resp = cluster.call(broker, LIST_TRANSACTIONS_VERSION, req).await.with_context(|| format!("broker {broker}"))?;
            match error(resp.error_code) {
                None => break resp,
                Some(e) if retriable(e) && cluster.may_retry(start) => backoff().await,
                Some(e) => return Err(anyhow::Error::new(BrokerError(e)).context(format!("broker {broker}"))),
            }
        };
        let listings = resp.transaction_states.into_iter().map(|t| (t.transactional_id.0.to_string(), t.producer_id.0, t.transaction_state.to_string())).collect();
        out.insert(broker, listings);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// describe

async fn describe(cluster: &mut Cluster, transactional_id: &str) -> anyhow::Result<String> {
    let (coordinator, t) =
        describe_transaction(cluster, transactional_id).await.map_err(|e| e.context(format!("Failed to describe transaction state of transactional-id `{transactional_id}`")))?;
    let (start, duration) = if t.transaction_start_time_ms >= 0 {
        (t.transaction_start_time_ms.to_string(), (now_ms() - t.transaction_start_time_ms).to_string())
    } else {
        ("None".to_string(), "None".to_string())
    };
    let mut partitions: Vec<(String, i32)> = t.topics.iter().flat_map(|d| d.partitions.iter().map(|&p| (d.topic.0.to_string(), p))).collect();
    partitions.sort();
    let row = vec![
        coordinator.to_string(),
        transactional_id.to_string(),
        t.producer_id.0.to_string(),
        t.producer_epoch.to_string(),
        t.transaction_state.to_string(),
        t.transaction_timeout_ms.to_string(),
        start,
        duration,
        partitions.iter().map(|(topic, p)| tp_name(topic, *p)).collect::<Vec<_>>().join(","),
    ];
    let headers = [
        "CoordinatorId",
        "TransactionalId",
        "ProducerId",
        "ProducerEpoch",
        "TransactionState",
        "TransactionTimeoutMs",
        "CurrentTransactionStartTimeMs",
        "TransactionDurationMs",
        "TopicPartitions",
    ];
    Ok(table(&headers, &[row]))
}

/// FindCoordinator, then DescribeTransactions at the coordinator: (coordinator, its answer).
/// NOT_COORDINATOR (the coordinator moved) starts over; other retriable errors (the transaction
/// log still loading) are asked again until the timeout.
async fn describe_transaction(cluster: &mut Cluster, transactional_id: &str) -> anyhow::Result<(i32, TransactionState)> {
    let start = Instant::now();
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(StrBytes::from_string(transactional_id.to_string()))]);
    loop {
        let coordinator = cluster.transaction_coordinator(transactional_id).await?;
        let resp = cluster.call(coordinator, DESCRIBE_TRANSACTIONS_VERSION, &req).await?;
        let t = resp.transaction_states.into_iter().next().ok_or_else(|| anyhow!("empty DescribeTransactions response"))?;
        match error(t.error_code) {
            None => return Ok((coordinator, t)),
            Some(e) if retriable(e) && cluster.may_retry(start) => backoff().await,
            Some(e) => return Err(anyhow::Error::new(BrokerError(e))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// describe-producers

async fn describe_producers(cluster: &mut Cluster, broker_id: Option<i32>, topic: &str, partition: i32) -> anyhow::Result<String> {
    let on = broker_id.map_or("leader".to_string(), |b| format!("broker {b}"));
    let producers = partition_producers(cluster, broker_id, topic, partition)
        .await
        .map_err(|e| e.context(format!("Failed to describe producers for partition {} on {on}", tp_name(topic, partition))))?;
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.max(-1).to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                if p.current_txn_start_offset >= 0 { p.current_txn_start_offset.to_string() } else { "None".to_string() },
            ]
        })
        .collect();
    Ok(table(&["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp", "CurrentTransactionStartOffset"], &rows))
}

/// The active producers of one partition, from its leader (or from `broker_id`).
async fn partition_producers(cluster: &mut Cluster, broker_id: Option<i32>, topic: &str, partition: i32) -> anyhow::Result<Vec<ProducerState>> {
    let mut found = describe_producers_batch(cluster, broker_id, &[(topic.to_string(), partition)]).await?;
    found.pop().map(|(_, r)| r).ok_or_else(|| anyhow!("no answer for the partition"))?.map_err(|e| anyhow::Error::new(BrokerError(e)))
}

/// DescribeProducers for `partitions`, each asked of its leader (or all of `broker_id`), with
/// NOT_LEADER_OR_FOLLOWER and other retriable errors asked again after fresh metadata until the
/// timeout. One result per partition, in the order given.
async fn describe_producers_batch(
    cluster: &mut Cluster,
    broker_id: Option<i32>,
    partitions: &[(String, i32)],
) -> anyhow::Result<Vec<((String, i32), Result<Vec<ProducerState>, ResponseError>)>> {
    let start = Instant::now();
    let mut results: BTreeMap<(String, i32), Result<Vec<ProducerState>, ResponseError>> = BTreeMap::new();
    let mut pending: Vec<(String, i32)> = partitions.to_vec();
    while !pending.is_empty() {
        let topics: Vec<String> = pending.iter().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let md = cluster.metadata(Some(&topics)).await?;
        let mut by_broker: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut retry = Vec::new();
        for (topic, p) in pending {
            let target = match broker_id {
                Some(b) => Ok(b),
                None => leader_of(&md, &topic, p),
            };
            match target {
                Ok(b) => by_broker.entry(b).or_default().push((topic, p)),
                Err(e) if retriable(e) && cluster.may_retry(start) => retry.push((topic, p)),
                Err(e) => {
                    results.insert((topic, p), Err(e));
                }
            }
        }
        for (broker, tps) in by_broker {
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &tps {
                topics.entry(t).or_default().push(*p);
            }
            let req = DescribeProducersRequest::default().with_topics(
                topics.into_iter().map(|(t, ps)| TopicRequest::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps)).collect(),
            );
            let resp = cluster.call(broker, DESCRIBE_PRODUCERS_VERSION, &req).await.with_context(|| format!("broker {broker}"))?;
            let mut answered = BTreeSet::new();
            for t in resp.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    if !tps.contains(&tp) {
                        continue;
                    }
                    answered.insert(tp.clone());
                    match error(p.error_code) {
                        None => {
                            results.insert(tp, Ok(p.active_producers));
                        }
                        Some(e) if retriable(e) && cluster.may_retry(start) => retry.push(tp),
                        Some(e) => {
                            results.insert(tp, Err(e));
                        }
                    }
                }
            }
            for tp in tps {
                if !answered.contains(&tp) {
                    results.insert(tp, Err(ResponseError::UnknownServerError));
                }
            }
        }
        if !retry.is_empty() {
            backoff().await;
        }
        pending = retry;
    }
    Ok(partitions.iter().map(|tp| (tp.clone(), results.remove(tp).unwrap_or(Err(ResponseError::UnknownServerError)))).collect())
}

// ---------------------------------------------------------------------------------------------
// abort

/// Kafka's `AbortTransactionSpec`, as its error messages print it.
struct AbortSpec {
    topic: String,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
}

impl std::fmt::Display for AbortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AbortTransactionSpec(topicPartition={}, producerId={}, producerEpoch={}, coordinatorEpoch={})",
            tp_name(&self.topic, self.partition),
            self.producer_id,
            self.producer_epoch,
            self.coordinator_epoch
        )
    }
}

async fn abort(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    start_offset: Option<i64>,
    producer_id: Option<i64>,
    producer_epoch: Option<i16>,
    coordinator_epoch: Option<i32>,
) -> anyhow::Result<String> {
    let name = tp_name(topic, partition);
    let spec = match (start_offset, producer_id) {
        (None, None) => bail!(
            "The transaction to abort must be identified either with --start-offset (for brokers on 3.0 or above) or with \
             --producer-id, --producer-epoch, and --coordinator-epoch (for older brokers)"
        ),
        (Some(offset), _) => {
            let producers =
                partition_producers(cluster, None, topic, partition).await.map_err(|e| e.context(format!("Failed to validate producer state for partition {name}")))?;
            let p = producers
                .iter()
                .find(|p| p.current_txn_start_offset >= 0 && p.current_txn_start_offset == offset)
                .ok_or_else(|| anyhow!("Could not find any open transactions starting at offset {offset} on partition {name}"))?;
            AbortSpec {
                topic: topic.to_string(),
                partition,
                producer_id: p.producer_id.0,
                producer_epoch: i16::try_from(p.producer_epoch).with_context(|| format!("producer epoch {} out of range", p.producer_epoch))?,
                // A producer that never ended a transaction has no coordinator epoch (-1): 0 is
                // no more than any epoch a leader can have recorded, as Kafka's tool reasons.
                coordinator_epoch: p.coordinator_epoch.max(0),
            }
        }
        (None, Some(producer_id)) => {
            let producer_epoch = producer_epoch.ok_or_else(|| anyhow!("Missing required argument --producer-epoch"))?;
            let coordinator_epoch = coordinator_epoch.ok_or_else(|| anyhow!("Missing required argument --coordinator-epoch"))?;
            AbortSpec { topic: topic.to_string(), partition, producer_id, producer_epoch, coordinator_epoch: coordinator_epoch.max(0) }
        }
    };
    write_abort_marker(cluster, &spec).await.map_err(|e| e.context(format!("Failed to abort transaction {spec}")))?;
    // Kafka's tool says nothing when the marker is written.
    Ok(String::new())
}

/// WriteTxnMarkers with one ABORT marker, to the partition's leader (retrying after a leader
/// change), as Java's `Admin.abortTransaction` sends it.
async fn write_abort_marker(cluster: &mut Cluster, spec: &AbortSpec) -> anyhow::Result<()> {
    let start = Instant::now();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(spec.producer_id))
        .with_producer_epoch(spec.producer_epoch)
        .with_transaction_result(false)
        .with_coordinator_epoch(spec.coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
            .with_partition_indexes(vec![spec.partition])]);
    let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    loop {
        let md = cluster.metadata(Some(std::slice::from_ref(&spec.topic))).await?;
        let code = match leader_of(&md, &spec.topic, spec.partition) {
            Ok(leader) => {
                let resp = cluster.call(leader, WRITE_TXN_MARKERS_VERSION, &req).await.with_context(|| format!("broker {leader}"))?;
                resp.markers
                    .iter()
                    .flat_map(|m| m.topics.iter())
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == spec.partition)
                    .map(|p| p.error_code)
                    .ok_or_else(|| anyhow!("the leader's response has no result for the partition"))?
            }
            Err(e) => e.code(),
        };
        match error(code) {
            None => return Ok(()),
            Some(e) if retriable(e) && cluster.may_retry(start) => backoff().await,
            Some(e) => return Err(anyhow::Error::new(BrokerError(e))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// find-hanging

/// An open transaction a partition leader reports: a candidate for hanging.
struct OpenTransaction {
    topic: String,
    partition: i32,
    producer: ProducerState,
}

async fn find_hanging(cluster: &mut Cluster, broker_id: Option<i32>, max_timeout_minutes: i32, topic: Option<String>, partition: Option<i32>) -> anyhow::Result<String> {
    if topic.is_none() && broker_id.is_none() {
        bail!("The `find-hanging` command requires either --topic or --broker-id to limit the scope of the search");
    }
    if partition.is_some() && topic.is_none() {
        bail!("The --partition argument requires --topic to be provided");
    }
    let max_timeout_ms = i64::from(max_timeout_minutes) * 60_000;

    // The partitions to search: the one given, a topic's, or every topic's (internal ones too:
    // transactional offset commits go to __consumer_offsets) on the broker's replicas.
    let partitions: Vec<(String, i32)> = match (&topic, partition) {
        (Some(t), Some(p)) => vec![(t.clone(), p)],
        _ => {
            let md = match &topic {
                Some(t) => cluster.metadata(Some(std::slice::from_ref(t))).await,
                None => cluster.metadata(None).await,
            }
            .map_err(|e| e.context("Failed to list topics"))?;
            let mut tps = Vec::new();
            for t in &md.topics {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if let Some(e) = error(t.error_code) {
                    bail!("Failed to describe 1 topics: {name}: {}", BrokerError(e));
                }
                for p in &t.partitions {
                    if broker_id.is_none_or(|b| p.replica_nodes.iter().any(|r| r.0 == b)) {
                        tps.push((name.clone(), p.partition_index));
                    }
                }
            }
            tps.sort();
            tps
        }
    };

    let mut candidates = Vec::new();
    for batch in partitions.chunks(MAX_BATCH_SIZE) {
        let now = now_ms();
        for ((t, p), result) in describe_producers_batch(cluster, broker_id, batch).await? {
            let producers = result.map_err(|e| {
                let on = broker_id.map_or("their leaders".to_string(), |b| format!("broker {b}"));
                anyhow!("Failed to describe producers for {} partitions on {on}: {}: {}", batch.len(), tp_name(&t, p), BrokerError(e))
            })?;
            for producer in producers {
                if producer.current_txn_start_offset >= 0 && now - producer.last_timestamp > max_timeout_ms {
                    candidates.push(OpenTransaction { topic: t.clone(), partition: p, producer });
                }
            }
        }
    }

    let mut hanging = Vec::new();
    if !candidates.is_empty() {
        let producer_ids: BTreeSet<i64> = candidates.iter().map(|c| c.producer.producer_id.0).collect();
        // Which transactional id each producer id belongs to, from whichever coordinator has it.
        let req = ListTransactionsRequest::default().with_producer_id_filters(producer_ids.iter().map(|&p| ProducerId(p)).collect());
        let listed = list_transactions(cluster, &req).await.map_err(|e| e.context(format!("Failed to list transactions for {} producers", producer_ids.len())))?;
        let transactional_ids: BTreeMap<i64, String> =
            listed.into_values().flatten().filter(|(_, pid, _)| producer_ids.contains(pid)).map(|(tid, pid, _)| (pid, tid)).collect();
        // What each of those coordinators says its transaction holds (None: it does not know the id).
        let mut descriptions: BTreeMap<String, Option<BTreeSet<(String, i32)>>> = BTreeMap::new();
        for tid in transactional_ids.values().collect::<BTreeSet<_>>() {
            let description = match describe_transaction(cluster, tid).await {
                Ok((_, t)) => Some(t.topics.iter().flat_map(|d| d.partitions.iter().map(|&p| (d.topic.0.to_string(), p))).collect()),
                Err(e) if e.downcast_ref::<BrokerError>() == Some(&BrokerError(ResponseError::TransactionalIdNotFound)) => None,
                Err(e) => return Err(e.context(format!("Failed to describe {} transactions", transactional_ids.len()))),
            };
            descriptions.insert(tid.clone(), description);
        }
        // Hanging: no transactional id has the producer, the coordinator does not know the id,
        // or the coordinator's transaction (Ongoing, or Prepare* with markers still to write)
        // does not include the partition, so no marker will ever come.
        for c in candidates {
            let known = transactional_ids
                .get(&c.producer.producer_id.0)
                .and_then(|tid| descriptions.get(tid))
                .and_then(Option::as_ref)
                .is_some_and(|tps| tps.contains(&(c.topic.clone(), c.partition)));
            if !known {
                hanging.push(c);
            }
        }
    }

    let now = now_ms();
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|h| {
            let p = &h.producer;
            vec![
                h.topic.clone(),
                h.partition.to_string(),
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.max(-1).to_string(),
                p.current_txn_start_offset.to_string(),
                p.last_timestamp.to_string(),
                ((now - p.last_timestamp) / 60_000).to_string(),
            ]
        })
        .collect();
    Ok(table(&["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset", "LastTimestamp", "Duration(min)"], &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_every_cell_and_ends_each_with_a_tab_as_kafka() {
        let t = table(&["TransactionalId", "Coordinator"], &[vec!["a-much-longer-transactional-id".into(), "1".into()], vec!["t".into(), "12".into()]]);
        assert_eq!(
            t,
            "TransactionalId               \tCoordinator\t\n\
             a-much-longer-transactional-id\t1          \t\n\
             t                             \t12         \t\n"
        );
        assert_eq!(table(&["A", "B"], &[]), "A\tB\t\n");
    }
}
