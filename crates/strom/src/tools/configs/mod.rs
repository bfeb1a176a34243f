//! `strom configs`: Kafka's `kafka-configs.sh` for topics, brokers and groups: `--describe` a
//! resource's dynamic configs (or all of them with `--all`), `--alter` them incrementally; for
//! users' SCRAM credentials (`users.rs`); and for client quotas of users, client ids and
//! addresses (`quotas.rs`). Groups' configs (Kafka 4's GROUP resource) go through the tools'
//! protocol client (`groups.rs`): librdkafka has no such resource type.
//!
//! Both go to librdkafka directly (the tools' [`admin_ffi`] module, `tools/admin_ffi.rs`): the `rdkafka`
//! crate wraps neither IncrementalAlterConfigs nor the synonyms and per-resource errors of
//! DescribeConfigs. `--alter` is IncrementalAlterConfigs (DELETE for each `--delete-config` key,
//! then SET for each `--add-config` pair, in one request, as Kafka's tool sends them): keys not
//! named keep their values, and nothing is read and written back, so concurrent changes are not
//! lost.
//!
//! This file is the tool: its flags, which entity they name, Kafka's output, `--add-config`
//! parsing. `admin_ffi.rs` holds all of the tool's `unsafe`, the two librdkafka requests.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

mod defaults;
mod groups;
mod quotas;
mod users;

use super::admin_ffi::{self, Entry, Op, ResourceKind};
use super::{metadata, Connection, TIMEOUT};

// Kafka's ConfigSource ids (DescribeConfigs v1+).
const DYNAMIC_TOPIC_CONFIG: i32 = 1;
const DYNAMIC_BROKER_CONFIG: i32 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i32 = 3;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityType {
    Topics,
    Brokers,
    /// Quotas (`producer_byte_rate=1024,...`) or SCRAM credentials (`SCRAM-SHA-256=[iterations=N,password=P]`).
    Users,
    /// Client ids' quotas.
    Clients,
    /// Addresses' connection quotas (`connection_creation_rate`).
    Ips,
    /// A group's configs (Kafka 4's group configs: `consumer.session.timeout.ms`, ...).
    Groups,
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["describe", "alter"]))]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// List the entity's dynamic configs (all of them with --all).
    #[arg(long)]
    pub describe: bool,
    /// Change the entity's configs: --add-config and/or --delete-config; other keys keep their values.
    #[arg(long)]
    pub alter: bool,
    /// With --describe: every config, defaults included, not only the dynamic ones.
    #[arg(long, conflicts_with = "alter")]
    pub all: bool,
    /// The kind of entity.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub entity_type: Option<EntityType>,
    /// The topic name, broker id, group id or user name (with --describe: all of them if absent, groups excepted).
    #[arg(long, value_name = "NAME")]
    pub entity_name: Option<String>,
    /// With --entity-type brokers: the cluster-wide default broker configs.
    #[arg(long)]
    pub entity_default: bool,
    /// The topic (--entity-type topics --entity-name TOPIC).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// The broker (--entity-type brokers --entity-name ID).
    #[arg(long, value_name = "ID")]
    pub broker: Option<String>,
    /// The cluster-wide default broker configs (--entity-type brokers --entity-default).
    #[arg(long)]
    pub broker_defaults: bool,
    /// Configs to set, k1=v1,k2=v2; a value with commas goes in brackets: cleanup.policy=[compact,delete].
    #[arg(long, value_name = "K=V,...", conflicts_with = "describe")]
    pub add_config: Option<String>,
    /// A properties file of configs to set (--add-config wins for a key in both).
    #[arg(long, value_name = "FILE", conflicts_with = "describe")]
    pub add_config_file: Option<std::path::PathBuf>,
    /// Config keys to remove (back to their defaults), k1,k2.
    #[arg(long, value_name = "K,...", value_delimiter = ',', conflicts_with = "describe")]
    pub delete_config: Vec<String>,
    /// A user's quotas (--entity-type users --entity-name USER); with --client, the pair's.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// A client id's quotas (--entity-type clients --entity-name ID); with --user, the pair's.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// An address's connection quota (--entity-type ips --entity-name IP).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// The default user's quotas.
    #[arg(long, conflicts_with = "user")]
    pub user_defaults: bool,
    /// The default client id's quotas.
    #[arg(long, conflicts_with = "client")]
    pub client_defaults: bool,
    /// The default address's connection quota.
    #[arg(long, conflicts_with = "ip")]
    pub ip_defaults: bool,
}

/// What the command is about, after Kafka's shorthands are resolved.
#[derive(Debug, PartialEq, Eq)]
enum Entity {
    Topic(String),
    Broker(i32),
    /// The cluster-wide default of every broker (Kafka's empty broker name).
    BrokerDefault,
    AllTopics,
    /// Every broker, then the cluster-wide default (--describe without a name).
    AllBrokers,
    Group(String),
    /// Every group (--describe without a name).
    AllGroups,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let resource_flags = [a.topic.is_some(), a.broker.is_some(), a.broker_defaults].iter().any(|b| *b);
    if !resource_flags && quotas::is_quota_command(&a) {
        return quotas::run(&a);
    }
    if a.entity_type == Some(EntityType::Users) && !resource_flags {
        return users::run(&a, a.entity_name.clone());
    }
    let entity = entity(&a)?;
    // Group configs go through the tools' own protocol client (see `groups.rs`).
    match &entity {
        Entity::Group(g) => return if a.alter { alter_group(&a, g) } else { describe_group(&a, g) },
        Entity::AllGroups => return groups::list(&a)?.iter().try_for_each(|g| describe_group(&a, g)),
        _ => {}
    }
    let admin: AdminClient<DefaultClientContext> =
        a.connection.client_config(&[])?.create().context("cannot create the admin client")?;
    if a.alter {
        alter(&admin, &a, &entity)
    } else {
        describe(&admin, &a, &entity)
    }
}

/// Resolves --topic / --broker / --broker-defaults and --entity-{type,name,default}, with
/// Kafka's checks and messages.
fn entity(a: &Args) -> anyhow::Result<Entity> {
    let shorthands = [a.topic.is_some(), a.broker.is_some(), a.broker_defaults].iter().filter(|b| **b).count();
    let long_form = a.entity_type.is_some() || a.entity_name.is_some() || a.entity_default;
    if shorthands > 0 && long_form {
        bail!("--entity-{{type,name,default}} should not be used in conjunction with specific entity flags");
    }
    if shorthands > 1 {
        bail!("Only one of --topic, --broker and --broker-defaults may be specified");
    }
    let (kind, name) = if let Some(t) = &a.topic {
        (EntityType::Topics, Some(t.clone()))
    } else if let Some(b) = &a.broker {
        (EntityType::Brokers, Some(b.clone()))
    } else if a.broker_defaults {
        (EntityType::Brokers, Some(String::new()))
    } else {
        let Some(kind) = a.entity_type else { bail!("At least one entity type must be specified") };
        if a.entity_name.is_some() && a.entity_default {
            bail!("Only one of --entity-name and --entity-default may be specified");
        }
        if a.entity_default && kind == EntityType::Topics {
            bail!("--entity-default applies to brokers only, not to topics");
        }
        if a.entity_default && kind == EntityType::Groups {
            bail!("--entity-default applies to brokers only, not to groups");
        }
        (kind, if a.entity_default { Some(String::new()) } else { a.entity_name.clone() })
    };
    Ok(match (kind, name) {
        (EntityType::Topics, Some(t)) if t.is_empty() => bail!("The topic name must not be empty"),
        (EntityType::Topics, Some(t)) => Entity::Topic(t),
        (EntityType::Topics, None) if a.alter => bail!("An entity name must be specified with --alter of topics"),
        (EntityType::Topics, None) => Entity::AllTopics,
        (EntityType::Brokers, Some(b)) if b.is_empty() => Entity::BrokerDefault,
        (EntityType::Brokers, Some(b)) => match b.parse::<i32>() {
            Ok(id) if id >= 0 => Entity::Broker(id),
            _ => bail!("The entity name for brokers must be a valid integer broker id, but it is: {b}"),
        },
        (EntityType::Brokers, None) if a.alter => bail!("An entity-name or default entity must be specified with --alter of brokers"),
        (EntityType::Brokers, None) => Entity::AllBrokers,
        (EntityType::Groups, Some(g)) if g.is_empty() => bail!("--entity-default applies to brokers only, not to groups"),
        (EntityType::Groups, Some(g)) => Entity::Group(g),
        (EntityType::Groups, None) if a.alter => bail!("An entity name must be specified with --alter of groups"),
        (EntityType::Groups, None) => Entity::AllGroups,
        (EntityType::Users | EntityType::Clients | EntityType::Ips, _) => bail!("--entity-{{type,name,default}} should not be used in conjunction with specific entity flags"),
    })
}

/// Kafka's describe format: a header per entity, then one line per config, sorted by name:
/// `  key=value sensitive=false synonyms={SOURCE:key=value, ...}`.
fn describe(admin: &AdminClient<DefaultClientContext>, a: &Args, entity: &Entity) -> anyhow::Result<()> {
    let bootstrap = &a.connection.bootstrap_server;
    let targets: Vec<Entity> = match entity {
        Entity::Topic(t) => vec![Entity::Topic(t.clone())],
        Entity::Broker(id) => {
            check_broker(admin, bootstrap, *id)?;
            vec![Entity::Broker(*id)]
        }
        Entity::BrokerDefault => vec![Entity::BrokerDefault],
        Entity::Group(_) | Entity::AllGroups => bail!("group configs are described by describe_group"),
        Entity::AllTopics => {
            let md = metadata(admin.inner(), bootstrap)?;
            let mut names: Vec<String> = md.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_string()).collect();
            names.sort_unstable();
            names.into_iter().map(Entity::Topic).collect()
        }
        Entity::AllBrokers => {
            let md = metadata(admin.inner(), bootstrap)?;
            let mut ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
            ids.sort_unstable();
            ids.into_iter().map(Entity::Broker).chain([Entity::BrokerDefault]).collect()
        }
    };
    for target in &targets {
        let (header, entries) = match target {
            Entity::Topic(t) => {
                let entries = admin_ffi::describe(admin.inner(), ResourceKind::Topic, t, TIMEOUT)
                    .with_context(|| format!("cannot describe the configs of topic {t}"))?;
                let entries = if a.all { entries } else { with_source(entries, DYNAMIC_TOPIC_CONFIG) };
                (format!("{} configs for topic {t} are:", if a.all { "All" } else { "Dynamic" }), entries)
            }
            Entity::Broker(id) => {
                let entries = admin_ffi::describe(admin.inner(), ResourceKind::Broker, &id.to_string(), TIMEOUT)
                    .with_context(|| format!("cannot describe the configs of broker {id}"))?;
                let entries = if a.all { entries } else { with_source(entries, DYNAMIC_BROKER_CONFIG) };
                (format!("{} configs for broker {id} are:", if a.all { "All" } else { "Dynamic" }), entries)
            }
            _ => ("Default configs for brokers in the cluster are:".to_string(), broker_defaults(admin, bootstrap)?),
        };
        print_entries(&header, entries);
    }
    Ok(())
}

/// Kafka's describe format: the header, then one line per config, sorted by name:
/// `  key=value sensitive=false synonyms={SOURCE:key=value, ...}`.
fn print_entries(header: &str, entries: Vec<Entry>) {
    println!("{header}");
    for e in sorted(entries) {
        let synonyms: Vec<String> = e.synonyms.iter().map(|s| format!("{}:{}={}", source_name(s.source), s.name, s.value.as_deref().unwrap_or("null"))).collect();
        println!("  {}={} sensitive={} synonyms={{{}}}", e.name, e.value.as_deref().unwrap_or("null"), e.sensitive, synonyms.join(", "));
    }
}

/// A group's configs: those set for the group (all of them with `--all`), as Kafka's tool.
fn describe_group(a: &Args, group: &str) -> anyhow::Result<()> {
    let entries = groups::describe(a, group).with_context(|| format!("cannot describe the configs of group {group}"))?;
    let entries = if a.all { entries } else { with_source(entries, groups::DYNAMIC_GROUP_CONFIG) };
    print_entries(&format!("{} configs for group {group} are:", if a.all { "All" } else { "Dynamic" }), entries);
    Ok(())
}

fn alter_group(a: &Args, group: &str) -> anyhow::Result<()> {
    let (adds, deletes) = alter_ops(a)?;
    let what = format!("config for group {group}");
    if !deletes.is_empty() {
        let current = groups::describe(a, group).with_context(|| format!("cannot update {what}"))?;
        let missing: Vec<&str> = deletes.iter().filter(|k| !current.iter().any(|e| &e.name == *k && e.source == groups::DYNAMIC_GROUP_CONFIG)).map(String::as_str).collect();
        if !missing.is_empty() {
            bail!("Invalid config(s): {}", missing.join(","));
        }
    }
    let ops: Vec<Op> = deletes.iter().map(|k| Op::Delete(k.as_str())).chain(adds.iter().map(|(k, v)| Op::Set(k.as_str(), v.as_str()))).collect();
    groups::alter(a, group, &ops).with_context(|| format!("cannot update {what}"))?;
    println!("Completed updating {what}.");
    Ok(())
}

/// The cluster-wide dynamic broker defaults (Kafka's broker resource with the empty name).
///
/// librdkafka cannot send that resource: it routes every broker resource to the broker its name
/// designates and refuses a name that is not an integer. So this asks one broker of the cluster
/// for its configs and keeps what comes from the cluster-wide level: an entry whose source is
/// DYNAMIC_DEFAULT_BROKER_CONFIG, or, where the broker overrides it, the entry's synonym of that
/// source (with the synonyms from that level down), which is what Kafka answers for the empty
/// name. Read-only, so nothing is lost by the detour.
fn broker_defaults(admin: &AdminClient<DefaultClientContext>, bootstrap: &str) -> anyhow::Result<Vec<Entry>> {
    let md = metadata(admin.inner(), bootstrap)?;
    let Some(id) = md.brokers().iter().map(|b| b.id()).min() else { bail!("the cluster at {bootstrap} lists no brokers") };
    let entries = admin_ffi::describe(admin.inner(), ResourceKind::Broker, &id.to_string(), TIMEOUT)
        .with_context(|| format!("cannot describe the configs of broker {id}"))?;
    Ok(entries
        .into_iter()
        .filter_map(|mut e| {
            if e.source == DYNAMIC_DEFAULT_BROKER_CONFIG {
                return Some(e);
            }
            let at = e.synonyms.iter().position(|s| s.source == DYNAMIC_DEFAULT_BROKER_CONFIG && s.name == e.name)?;
            e.synonyms.drain(..at);
            e.value = e.synonyms[0].value.clone();
            e.source = DYNAMIC_DEFAULT_BROKER_CONFIG;
            Some(e)
        })
        .collect())
}

fn with_source(entries: Vec<Entry>, source: i32) -> Vec<Entry> {
    entries.into_iter().filter(|e| e.source == source).collect()
}

fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|x, y| x.name.cmp(&y.name));
    entries
}

/// Kafka's (Java) names of the config sources, as its tool prints them.
fn source_name(source: i32) -> String {
    match source {
        0 => "UNKNOWN".into(),
        1 => "DYNAMIC_TOPIC_CONFIG".into(),
        2 => "DYNAMIC_BROKER_CONFIG".into(),
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG".into(),
        4 => "STATIC_BROKER_CONFIG".into(),
        5 => "DEFAULT_CONFIG".into(),
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG".into(),
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG".into(),
        8 => "DYNAMIC_GROUP_CONFIG".into(),
        n => format!("SOURCE_{n}"),
    }
}

/// A broker resource goes to the broker it names; one that is not in the cluster would only
/// time out, so it is refused up front.
fn check_broker(admin: &AdminClient<DefaultClientContext>, bootstrap: &str, id: i32) -> anyhow::Result<()> {
    let md = metadata(admin.inner(), bootstrap)?;
    let mut ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    if ids.contains(&id) {
        return Ok(());
    }
    ids.sort_unstable();
    bail!("The broker '{id}' doesn't exist (brokers in the cluster: {})", ids.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
}

/// --add-config, --add-config-file and --delete-config, with Kafka's checks.
fn alter_ops(a: &Args) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut adds: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = &a.add_config_file {
        adds.extend(super::read_properties("--add-config-file", path)?);
    }
    if let Some(spec) = &a.add_config {
        adds.extend(parse_add_config(spec)?);
    }
    if let Some(k) = adds.keys().find(|k| !k.chars().all(|c| c.is_ascii_alphanumeric() || "$._-".contains(c))) {
        bail!("Invalid character found for config key: {k}");
    }
    let mut deletes: Vec<String> = Vec::new();
    for k in a.delete_config.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        if !deletes.iter().any(|d| d == k) {
            deletes.push(k.to_string());
        }
    }
    if adds.is_empty() && deletes.is_empty() {
        bail!("At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter");
    }
    if let Some(k) = deletes.iter().find(|k| adds.contains_key(*k)) {
        bail!("Config `{k}` is both in --add-config and in --delete-config");
    }
    Ok((adds, deletes))
}

fn alter(admin: &AdminClient<DefaultClientContext>, a: &Args, entity: &Entity) -> anyhow::Result<()> {
    let (adds, deletes) = alter_ops(a)?;
    let bootstrap = &a.connection.bootstrap_server;
    let (kind, name, what) = match entity {
        Entity::Topic(t) => (ResourceKind::Topic, t.clone(), format!("config for topic {t}")),
        Entity::Broker(id) => {
            check_broker(admin, bootstrap, *id)?;
            (ResourceKind::Broker, id.to_string(), format!("config for broker {id}"))
        }
        Entity::BrokerDefault => (ResourceKind::Broker, String::new(), "default config for brokers in the cluster".to_string()),
        Entity::AllTopics | Entity::AllBrokers | Entity::Group(_) | Entity::AllGroups => bail!("An entity name must be specified with --alter"),
    };
    if !deletes.is_empty() {
        // As Kafka's tool: deleting a key that is not set at that level is an error, not a
        // silent no-op.
        let (current, level) = match (kind, name.is_empty()) {
            (ResourceKind::Broker, true) => (broker_defaults(admin, bootstrap)?, DYNAMIC_DEFAULT_BROKER_CONFIG),
            (ResourceKind::Broker, false) => (admin_ffi::describe(admin.inner(), kind, &name, TIMEOUT).with_context(|| format!("cannot update {what}"))?, DYNAMIC_BROKER_CONFIG),
            (ResourceKind::Topic, _) => (admin_ffi::describe(admin.inner(), kind, &name, TIMEOUT).with_context(|| format!("cannot update {what}"))?, DYNAMIC_TOPIC_CONFIG),
        };
        let set = |k: &String| current.iter().any(|e| &e.name == k && e.source == level);
        let missing: Vec<&str> = deletes.iter().filter(|k| !set(k)).map(String::as_str).collect();
        if !missing.is_empty() {
            bail!("Invalid config(s): {}", missing.join(","));
        }
    }
    let ops: Vec<Op> = deletes
        .iter()
        .map(|k| Op::Delete(k.as_str()))
        .chain(adds.iter().map(|(k, v)| Op::Set(k.as_str(), v.as_str())))
        .collect();
    if kind == ResourceKind::Broker && name.is_empty() {
        defaults::alter(a, &ops).with_context(|| format!("cannot update {what}"))?;
    } else {
        admin_ffi::incremental_alter(admin.inner(), kind, &name, &ops, TIMEOUT).with_context(|| format!("cannot update {what}"))?;
    }
    println!("Completed updating {what}.");
    Ok(())
}

/// Kafka's --add-config syntax: `k1=v1,k2=[v2a,v2b]`: pairs split at commas outside brackets,
/// each at its one `=` outside brackets; brackets are then dropped from the value and both sides
/// trimmed. An empty value is allowed (`k=`). A key given twice takes its last value.
fn parse_add_config(spec: &str) -> anyhow::Result<Vec<(String, String)>> {
    const FORMAT: &str = "Invalid entity config: all configs to be added must be in the format \"key=val\" or \"key=[val1,val2]\" to group values which contain commas.";
    // Byte offsets of the commas and `=` outside brackets (all ASCII, so slicing there is safe).
    let mut pieces: Vec<(&str, Vec<usize>)> = Vec::new();
    let (mut start, mut in_brackets, mut eqs) = (0, false, Vec::new());
    for (i, c) in spec.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '=' if !in_brackets => eqs.push(i - start),
            ',' if !in_brackets => {
                pieces.push((&spec[start..i], std::mem::take(&mut eqs)));
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push((&spec[start..], eqs));
    // As Java's String.split: trailing empty pieces are dropped.
    while pieces.len() > 1 && pieces.last().is_some_and(|(p, _)| p.is_empty()) {
        pieces.pop();
    }
    let mut out = Vec::with_capacity(pieces.len());
    for (piece, eqs) in pieces {
        let [at] = eqs[..] else { bail!("{FORMAT}") };
        let key = piece[..at].trim();
        if key.is_empty() {
            bail!("{FORMAT}");
        }
        let value: String = piece[at + 1..].chars().filter(|c| *c != '[' && *c != ']').collect();
        out.push((key.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_add_config;

    fn pairs(spec: &str) -> Vec<(String, String)> {
        parse_add_config(spec).unwrap()
    }

    #[test]
    fn add_config_syntax_is_kafkas() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(pairs("retention.ms=1000"), vec![p("retention.ms", "1000")]);
        assert_eq!(
            pairs("cleanup.policy=[compact,delete], retention.ms = 5 ,segment.ms=7"),
            vec![p("cleanup.policy", "compact,delete"), p("retention.ms", "5"), p("segment.ms", "7")]
        );
        assert_eq!(pairs("a=[x=1,y=2],b="), vec![p("a", "x=1,y=2"), p("b", "")]);
        assert_eq!(pairs("a=1,"), vec![p("a", "1")]);
        for bad in ["", "a", "a=1,b", "=1", "a=1=2", ",a=1", "a=1,,b=2"] {
            assert!(parse_add_config(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
