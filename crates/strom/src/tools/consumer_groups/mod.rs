//! `strom consumer-groups`: Kafka's `kafka-consumer-groups.sh`: list groups, describe their
//! positions and lag, members and state, reset their committed offsets, delete them, for classic
//! and KIP-848 consumer groups alike (`groups.rs`). Output columns and messages are Kafka's.

// Column headers read best as literals beside the widths that format them.
#![allow(clippy::print_literal)]

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::kafka_client::{Cluster, Settings};
use super::{block_on, Connection, KafkaContext, TIMEOUT};

mod groups;
use groups::{Group, Kind, Listing};

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["list", "describe", "reset_offsets", "delete"]))]
#[command(group = clap::ArgGroup::new("reset").args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime"]))]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe a group: committed offsets, log-end offsets and lag per partition, with the
    /// member consuming each (or --members, or --state).
    #[arg(long)]
    pub describe: bool,
    /// Change a group's committed offsets (the group must have no active members).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete a group and its committed offsets (the group must have no active members).
    #[arg(long)]
    pub delete: bool,
    /// The group (repeatable with --describe and --delete).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// With --describe, --reset-offsets and --delete: every group.
    #[arg(long)]
    pub all_groups: bool,
    /// With --describe: the members.
    #[arg(long)]
    pub members: bool,
    /// With --describe --members: each member's partitions too.
    #[arg(long)]
    pub verbose: bool,
    /// With --describe: the group's state. With --list: show each group's state.
    #[arg(long)]
    pub state: bool,
    /// With --list: show each group's type (Classic or Consumer, KIP-848); with a value
    /// (`consumer`, `classic`, or both separated by a comma), list only groups of those types.
    #[arg(long = "type", value_name = "TYPES", num_args = 0..=1, default_missing_value = "")]
    pub group_type: Option<String>,
    /// With --reset-offsets: TOPIC or TOPIC:P1,P2 (repeatable).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// With --reset-offsets: every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// yyyy-MM-ddTHH:mm:SS.sss (UTC), or with a Z / +hh:mm offset.
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// With --reset-offsets: show the new offsets, change nothing (the default).
    #[arg(long)]
    pub dry_run: bool,
    /// With --reset-offsets: commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

const MISSING: &str = "-";

pub fn run(a: Args) -> anyhow::Result<()> {
    let bootstrap = a.connection.bootstrap_server.clone();
    let admin: AdminClient<DefaultClientContext> = a.connection.client_config(&[])?.create().context("cannot create the admin client")?;
    // Classic groups as librdkafka describes them (DescribeGroups); it also says, first, whether
    // the cluster answers at all.
    let classic = list_groups(&admin, &bootstrap)?;
    let types = match a.group_type.as_deref() {
        None | Some("") => None,
        Some(t) => Some(parse_types(t)?),
    };
    // Every group with its type (ListGroups v5), and the KIP-848 groups to act on, described by
    // their coordinators: one runtime for the protocol client's connections.
    let settings = Settings::read("strom-consumer-groups", a.connection.command_config.as_deref(), TIMEOUT)?;
    let (wanted_names, all_groups, acting) = (a.groups.clone(), a.all_groups, !a.list);
    let (listings, described) = block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let listings = groups::list(&mut cluster).await?;
        let mut described: BTreeMap<String, Group> = BTreeMap::new();
        if acting {
            for l in listings.iter().filter(|l| l.kind == Kind::Consumer && (all_groups || wanted_names.contains(&l.name))) {
                if let Some(g) = groups::describe_consumer_group(&mut cluster, &l.name).await? {
                    described.insert(l.name.clone(), g);
                }
            }
        }
        Ok::<_, anyhow::Error>((listings, described))
    })??;
    let bootstrap = a.connection.bootstrap_server.clone();
    let all: Vec<&Listing> = listings.iter().filter(|l| types.as_ref().is_none_or(|t| t.contains(&l.kind))).collect();
    if a.list {
        print_list(&all, a.group_type.is_some(), a.state);
        return Ok(());
    }
    let wanted: Vec<String> = if a.all_groups { all.iter().filter(|l| l.state != "Dead").map(|l| l.name.clone()).collect() } else { a.groups.clone() };
    if wanted.is_empty() {
        bail!("--group or --all-groups is required");
    }
    if a.delete {
        return delete(&admin, &wanted);
    }
    for name in &wanted {
        let found: Option<Group> = match all.iter().find(|l| l.name == *name).map(|l| l.kind) {
            Some(Kind::Consumer) => described.get(name).cloned(),
            Some(Kind::Classic) => classic.groups().iter().find(|g| g.name() == name.as_str()).map(groups::from_classic),
            None => None,
        }
        .filter(|g| g.state != "Dead");
        if found.is_none() && !a.reset_offsets {
            // A group that was never used, or was deleted (a reset may create it, as Kafka's).
            bail!("Consumer group '{name}' does not exist.");
        }
        if a.reset_offsets {
            reset(&a, name, found.as_ref())?;
        } else if a.state {
            describe_state(name, found.as_ref(), &bootstrap);
        } else if a.members {
            describe_members(name, found.as_ref(), a.verbose);
        } else {
            describe_offsets(&a.connection, name, found.as_ref())?;
        }
    }
    Ok(())
}

/// `--type`'s value: Kafka's group type names, comma-separated, in any case.
fn parse_types(value: &str) -> anyhow::Result<Vec<Kind>> {
    value
        .split(',')
        .map(|t| match t.trim().to_ascii_lowercase().as_str() {
            "consumer" => Ok(Kind::Consumer),
            "classic" => Ok(Kind::Classic),
            other => bail!("Invalid types list '{value}'. Valid types are: consumer, classic (`{other}` is not one; share groups are `strom share-groups`')"),
        })
        .collect()
}

/// `--list`, with `--type` and `--state` columns as Kafka prints them.
fn print_list(all: &[&Listing], with_type: bool, with_state: bool) {
    if !with_type && !with_state {
        for l in all {
            println!("{}", l.name);
        }
        return;
    }
    let w = all.iter().map(|l| l.name.len()).max().unwrap_or(0).max(15);
    let line = |name: &str, kind: &str, state: &str| {
        let mut out = format!("{name:<w$}");
        if with_type {
            out.push_str(&format!(" {kind:<20}"));
        }
        if with_state {
            out.push_str(&format!(" {state}"));
        }
        println!("{}", out.trim_end());
    };
    line("GROUP", "TYPE", "STATE");
    for l in all {
        line(&l.name, l.kind.name(), &l.state);
    }
}

/// Every group (ListGroups to each broker). A broker creating or loading `__consumer_offsets`
/// (the first group request a cluster sees creates it) answers COORDINATOR_LOAD_IN_PROGRESS or
/// COORDINATOR_NOT_AVAILABLE for a moment: asked again, as Kafka's admin client does with
/// retriable errors, until the tool's timeout. Other errors are the broker's, named as such.
fn list_groups(admin: &AdminClient<DefaultClientContext>, bootstrap: &str) -> anyhow::Result<rdkafka::groups::GroupList> {
    let start = std::time::Instant::now();
    loop {
        let left = TIMEOUT.saturating_sub(start.elapsed());
        match admin.inner().fetch_group_list(None, left) {
            Ok(groups) => return Ok(groups),
            Err(e) => {
                let retriable = matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::CoordinatorLoadInProgress | RDKafkaErrorCode::CoordinatorNotAvailable | RDKafkaErrorCode::NotCoordinator)
                );
                if retriable && start.elapsed() + RETRY_BACKOFF < TIMEOUT {
                    std::thread::sleep(RETRY_BACKOFF);
                    continue;
                }
                // Nothing answered: the usual one line about the cluster. A broker's refusal: its error.
                if matches!(e.rdkafka_error_code(), Some(c) if (c as i32) < 0) {
                    bail!("cannot reach the cluster at {bootstrap} within {} s: {}", TIMEOUT.as_secs(), super::kafka_error_text(&e));
                }
                bail!("cannot list the consumer groups: {}", super::kafka_error_text(&e));
            }
        }
    }
}

/// The wait before asking again after a retriable error.
const RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Kafka's notes about a group without a stable membership; `false` when there is no group.
fn print_state_notice(name: &str, g: Option<&Group>) -> bool {
    match g.map(|g| g.state.as_str()) {
        None | Some("Dead") => false,
        Some("Empty") => {
            println!("\nConsumer group '{name}' has no active members.");
            true
        }
        // Classic groups rebalance; KIP-848 groups assign and reconcile.
        Some("PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling") => {
            println!("\nWarning: Consumer group '{name}' is rebalancing.");
            true
        }
        _ => true,
    }
}

/// One row of `--describe`.
struct Row {
    topic: String,
    partition: i32,
    current: Option<i64>,
    log_end: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

fn describe_offsets(conn: &Connection, name: &str, g: Option<&Group>) -> anyhow::Result<()> {
    if !print_state_notice(name, g) {
        return Ok(());
    }
    // Who consumes what, from the members' assignments.
    let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in g.map(|g| g.members.as_slice()).unwrap_or_default() {
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owner.insert((topic.clone(), *p), (m.id.clone(), m.host.clone(), m.client_id.clone()));
            }
        }
    }
    let consumer = group_consumer(conn, name)?;
    let committed = committed_offsets(&consumer, &conn.bootstrap_server)?;
    let mut keys: Vec<(String, i32)> = committed.keys().cloned().chain(owner.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    let mut rows = Vec::with_capacity(keys.len());
    for (topic, partition) in keys {
        let log_end = consumer.fetch_watermarks(&topic, partition, TIMEOUT).ok().map(|(_, high)| high);
        let who = owner.get(&(topic.clone(), partition));
        rows.push(Row {
            current: committed.get(&(topic.clone(), partition)).copied(),
            log_end,
            consumer_id: who.map(|w| w.0.clone()),
            host: who.map(|w| w.1.clone()),
            client_id: who.map(|w| w.2.clone()),
            topic,
            partition,
        });
    }
    let gw = name.len().max(15);
    let tw = rows.iter().map(|r| r.topic.len()).max().unwrap_or(0).max(15);
    let cw = rows.iter().map(|r| r.consumer_id.as_deref().unwrap_or(MISSING).len()).max().unwrap_or(0).max(15);
    let hw = rows.iter().map(|r| r.host.as_deref().unwrap_or(MISSING).len()).max().unwrap_or(0).max(15);
    println!(
        "\n{:<gw$} {:<tw$} {:<10} {:<15} {:<15} {:<15} {:<cw$} {:<hw$} {}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"
    );
    for r in &rows {
        let show = |v: Option<i64>| v.map_or(MISSING.to_string(), |v| v.to_string());
        let lag = match (r.current, r.log_end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        println!(
            "{:<gw$} {:<tw$} {:<10} {:<15} {:<15} {:<15} {:<cw$} {:<hw$} {}",
            name,
            r.topic,
            r.partition,
            show(r.current),
            show(r.log_end),
            show(lag),
            r.consumer_id.as_deref().unwrap_or(MISSING),
            r.host.as_deref().unwrap_or(MISSING),
            r.client_id.as_deref().unwrap_or(MISSING),
        );
    }
    println!();
    Ok(())
}

fn describe_members(name: &str, g: Option<&Group>, verbose: bool) {
    if !print_state_notice(name, g) {
        return;
    }
    let members = g.map(|g| g.members.as_slice()).unwrap_or_default();
    let gw = name.len().max(15);
    let cw = members.iter().map(|m| m.id.len()).max().unwrap_or(0).max(15);
    let sw = members.iter().map(|m| m.instance_id.as_deref().unwrap_or(MISSING).len()).max().unwrap_or(0).max(17);
    let hw = members.iter().map(|m| m.host.len()).max().unwrap_or(0).max(15);
    let iw = members.iter().map(|m| m.client_id.len()).max().unwrap_or(0).max(15);
    let header = format!("{:<gw$} {:<cw$} {:<sw$} {:<hw$} {:<iw$} {:<12}", "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS");
    println!("\n{}{}", header, if verbose { " ASSIGNMENT" } else { "" });
    for m in members {
        let count: usize = m.assignment.iter().map(|(_, ps)| ps.len()).sum();
        let instance = m.instance_id.as_deref().unwrap_or(MISSING);
        let line = format!("{:<gw$} {:<cw$} {:<sw$} {:<hw$} {:<iw$} {:<12}", name, m.id, instance, m.host, m.client_id, count);
        if verbose {
            let mut parts: Vec<String> = m
                .assignment
                .iter()
                .map(|(t, ps)| {
                    let mut ps = ps.clone();
                    ps.sort_unstable();
                    format!("{t}({})", ps.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
                })
                .collect();
            parts.sort();
            println!("{line} {}", if parts.is_empty() { MISSING.to_string() } else { parts.join(", ") });
        } else {
            println!("{line}");
        }
    }
    println!();
}

fn describe_state(name: &str, g: Option<&Group>, bootstrap: &str) {
    let Some(g) = g else { return };
    let gw = name.len().max(15);
    // The coordinator's address: a KIP-848 group's from FindCoordinator; librdkafka's classic
    // group listing does not report it, and on a single node it is the broker the tool talks to.
    let coordinator = g.coordinator.clone().unwrap_or_else(|| bootstrap.split(',').next().unwrap_or(bootstrap).to_string());
    let strategy = if g.strategy.is_empty() { MISSING } else { g.strategy.as_str() };
    let cw = coordinator.len().max(25);
    println!("\n{:<gw$} {:<cw$} {:<20} {:<15} {}", "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS");
    println!("{:<gw$} {:<cw$} {:<20} {:<15} {}", name, coordinator, strategy, g.state, g.members.len());
    println!();
}

fn delete(admin: &AdminClient<DefaultClientContext>, groups: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let results = block_on(admin.delete_groups(&names, &opts))??;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err())
        .map(|(g, code)| format!("* Group '{g}' could not be deleted due to: {}", super::error_text(code as i32, None)))
        .collect();
    if failed.is_empty() {
        let list = groups.iter().map(|g| format!("'{g}'")).collect::<Vec<_>>().join(", ");
        println!("Deletion of requested consumer groups ({list}) was successful.");
        return Ok(());
    }
    bail!("Deletion of some consumer groups failed:\n{}", failed.join("\n"))
}

fn reset(a: &Args, name: &str, g: Option<&Group>) -> anyhow::Result<()> {
    let state = g.map_or("Dead", |g| g.state.as_str());
    if !matches!(state, "Empty" | "Dead") {
        bail!("Assignments can only be reset if the group '{name}' is inactive, but the current state is {state}.");
    }
    if !(a.to_earliest || a.to_latest || a.to_offset.is_some() || a.shift_by.is_some() || a.to_datetime.is_some()) {
        bail!("one of --to-earliest, --to-latest, --to-offset, --shift-by or --to-datetime is required");
    }
    if a.execute && a.dry_run {
        bail!("--dry-run and --execute exclude each other");
    }
    let consumer = group_consumer(&a.connection, name)?;
    let md = super::metadata(consumer.client(), &a.connection.bootstrap_server)?;
    let committed = committed_offsets(&consumer, &a.connection.bootstrap_server)?;
    // Which partitions: --all-topics means those with committed offsets, as Kafka.
    let mut targets: Vec<(String, i32)> = Vec::new();
    if a.all_topics {
        targets.extend(committed.keys().cloned());
    }
    for spec in &a.topics {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, ps)) => (t, Some(ps)),
            None => (spec.as_str(), None),
        };
        let Some(t) = md.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
            bail!("topic {topic} does not exist");
        };
        match parts {
            None => targets.extend(t.partitions().iter().map(|p| (topic.to_string(), p.id()))),
            Some(ps) => {
                for p in ps.split(',') {
                    let p: i32 = p.trim().parse().with_context(|| format!("bad partition in --topic {spec}"))?;
                    targets.push((topic.to_string(), p));
                }
            }
        }
    }
    targets.sort();
    targets.dedup();
    if targets.is_empty() {
        bail!("--topic or --all-topics is required");
    }
    let by_time = match &a.to_datetime {
        Some(s) => Some(super::datetime::parse(s)?),
        None => None,
    };
    let mut new_offsets = Vec::with_capacity(targets.len());
    for (topic, p) in &targets {
        let (low, high) = consumer.fetch_watermarks(topic, *p, TIMEOUT).kafka_context(|| format!("{topic}:{p}"))?;
        let offset = if a.to_earliest {
            low
        } else if a.to_latest {
            high
        } else if let Some(o) = a.to_offset {
            o.clamp(low, high)
        } else if let Some(n) = a.shift_by {
            committed.get(&(topic.clone(), *p)).copied().unwrap_or(low).saturating_add(n).clamp(low, high)
        } else if let Some(ts) = by_time {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, *p, Offset::Offset(ts)).context("bad timestamp")?;
            let found = consumer.offsets_for_times(tpl, TIMEOUT).kafka_context(|| "ListOffsets by time failed")?;
            match found.elements().first().map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => high,
            }
        } else {
            unreachable!("checked above")
        };
        new_offsets.push((topic.clone(), *p, offset));
    }
    let gw = name.len().max(30);
    let tw = targets.iter().map(|(t, _)| t.len()).max().unwrap_or(0).max(30);
    println!("\n{:<gw$} {:<tw$} {:<10} {:<15}", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (topic, p, o) in &new_offsets {
        println!("{:<gw$} {:<tw$} {:<10} {:<15}", name, topic, p, o);
    }
    if a.execute {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, o) in &new_offsets {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o)).context("bad offset")?;
        }
        consumer.commit(&tpl, CommitMode::Sync).kafka_context(|| "cannot commit the new offsets")?;
    }
    Ok(())
}

/// A client with the group's id that never joins it: used to read and write its offsets, and for
/// the log-end offsets, which Kafka's tool lists read_uncommitted (the admin client's default): the
/// high watermark, not the last stable offset that librdkafka's default read_committed gives.
fn group_consumer(conn: &Connection, group: &str) -> anyhow::Result<BaseConsumer> {
    let settings = [
        ("group.id".to_string(), group.to_string()),
        ("enable.auto.commit".to_string(), "false".to_string()),
        ("isolation.level".to_string(), "read_uncommitted".to_string()),
    ];
    conn.client_config(&settings)?.create().context("cannot create the consumer")
}

/// Every committed offset of the group, over all (non-internal) topics.
fn committed_offsets(consumer: &BaseConsumer, bootstrap: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let md = super::metadata(consumer.client(), bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| !t.name().starts_with("__") && t.error().is_none()) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let mut out = BTreeMap::new();
    if tpl.count() == 0 {
        return Ok(out);
    }
    let got = consumer.committed_offsets(tpl, TIMEOUT).kafka_context(|| "cannot fetch the group's committed offsets")?;
    for e in got.elements() {
        if let Offset::Offset(o) = e.offset() {
            out.insert((e.topic().to_string(), e.partition()), o);
        }
    }
    Ok(out)
}

/// The consumer protocol's Assignment: version, [topic, [partition]], user data.
pub(crate) fn parse_assignment(b: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    let mut b = b;
    let mut out = Vec::new();
    let parse = |b: &mut &[u8], out: &mut Vec<(String, Vec<i32>)>| -> Option<()> {
        i16_(b)?;
        let topics = i32_(b)?;
        for _ in 0..topics.max(0) {
            let len = usize::try_from(i16_(b)?).ok()?;
            let topic = String::from_utf8_lossy(take(b, len)?).into_owned();
            let n = i32_(b)?;
            // Each partition takes 4 bytes: a count beyond the input is garbage.
            if n < 0 || n as usize > b.len() / 4 {
                return None;
            }
            let partitions = (0..n).map(|_| i32_(b)).collect::<Option<Vec<i32>>>()?;
            out.push((topic, partitions));
        }
        Some(())
    };
    let _ = parse(&mut b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_and_garbage_is_empty() {
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 0];
        assert_eq!(parse_assignment(&b), vec![("t".to_string(), vec![3, 5])]);
        b[12] = 0xff; // a partition count far beyond the input
        assert!(parse_assignment(&b).is_empty());
        assert!(parse_assignment(&[1, 2, 3]).is_empty());
    }
}
