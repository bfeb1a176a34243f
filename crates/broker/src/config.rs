//! Broker configuration, spelled with Apache Kafka's own property names.
//!
//! Sources are applied in order: built-in defaults, the properties file, then each `--override`.
//! A key Strom does not know is a startup error that names it, because a silently ignored typo
//! (`log.retension.ms`) is the kind of mistake that costs data weeks later. Keys that Kafka knows
//! but Strom does not act on are accepted and logged once, so a stock `server.properties` works.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strom_storage::LogConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config key `{0}` (Strom takes Kafka's property names; check the spelling)")]
    UnknownKey(String),
    #[error("config `{key}` has an invalid value `{value}`: {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("override `{0}` is not of the form key=value")]
    BadOverride(String),
}

/// Keys Apache Kafka accepts that Strom deliberately does not act on (yet). Accepted, logged once.
const IGNORED_KAFKA_KEYS: &[&str] = &[
    "compression.type",
    "controller.quorum.bootstrap.servers",
    "delete.topic.enable",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "log.flush.interval.ms",
    "log.cleaner.threads",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "transaction.state.log.min.isr",
    "transaction.state.log.replication.factor",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
];

/// Every key Strom acts on, with its default. `strom server --help-config` prints this table.
pub const KNOWN_KEYS: &[(&str, &str, &str)] = &[
    ("node.id", "1", "this broker's id (`broker.id` is accepted as an alias)"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092", "where to accept clients; port 0 picks a free port"),
    ("advertised.listeners", "(listeners)", "the address given to clients in Metadata"),
    ("log.dirs", "./strom-data", "data directory (`log.dir` is an alias; one directory for now)"),
    ("num.partitions", "1", "partitions of an auto-created topic or a CreateTopics request with -1"),
    ("default.replication.factor", "1", "replication factor when a request leaves it at -1"),
    ("auto.create.topics.enable", "true", "create a topic when a Metadata request names an unknown one"),
    ("log.segment.bytes", "1073741824", "roll a segment at this size (topic: segment.bytes)"),
    ("log.roll.ms", "(log.roll.hours)", "roll a segment at this age (topic: segment.ms)"),
    ("log.roll.hours", "168", "roll a segment at this age, in hours"),
    ("log.retention.ms", "(log.retention.minutes)", "delete segments older than this; -1 keeps forever (topic: retention.ms)"),
    ("log.retention.minutes", "(log.retention.hours)", "as log.retention.ms, in minutes"),
    ("log.retention.hours", "168", "as log.retention.ms, in hours"),
    ("log.retention.bytes", "-1", "delete oldest segments past this size per partition (topic: retention.bytes)"),
    ("log.retention.check.interval.ms", "300000", "how often retention runs"),
    ("log.index.interval.bytes", "4096", "bytes between offset-index entries (topic: index.interval.bytes)"),
    ("log.message.timestamp.type", "CreateTime", "CreateTime or LogAppendTime (topic: message.timestamp.type)"),
    ("log.cleanup.policy", "delete", "delete, compact, or compact,delete (topic: cleanup.policy)"),
    ("log.cleaner.enable", "true", "run the log cleaner for compacted topics"),
    ("log.cleaner.backoff.ms", "15000", "pause between two passes of the log cleaner"),
    ("log.cleaner.min.cleanable.ratio", "0.5", "compact a log once this share of it was written since its last compaction (topic: min.cleanable.dirty.ratio)"),
    ("log.cleaner.delete.retention.ms", "86400000", "how long tombstones survive compaction (topic: delete.retention.ms)"),
    ("message.max.bytes", "1048588", "largest record batch accepted (topic: max.message.bytes)"),
    ("log.flush.interval.messages", "9223372036854775807", "fsync before acknowledging once this many messages are unflushed; 1 = every batch (topic: flush.messages)"),
    ("socket.request.max.bytes", "104857600", "largest request frame; larger closes the connection"),
    ("group.min.session.timeout.ms", "6000", "shortest session timeout a group member may ask for"),
    ("group.max.session.timeout.ms", "1800000", "longest session timeout a group member may ask for"),
    ("group.initial.rebalance.delay.ms", "3000", "how long the first rebalance of an empty group waits for more members"),
    ("group.max.size", "2147483647", "most members a group may have"),
    ("offset.metadata.max.bytes", "4096", "largest metadata string of a committed offset"),
    ("offsets.retention.minutes", "10080", "committed offsets of an empty group are dropped after this"),
    ("offsets.retention.check.interval.ms", "600000", "how often expired committed offsets are looked for"),
    ("offsets.topic.num.partitions", "50", "partitions of __consumer_offsets (fixed once the topic exists)"),
    ("offsets.topic.replication.factor", "3", "replication factor of __consumer_offsets, capped at the number of controller.quorum.voters"),
    ("offsets.topic.segment.bytes", "104857600", "segment size of __consumer_offsets"),
    ("offsets.commit.timeout.ms", "5000", "how long an offset commit (or a group's assignment) waits for the offsets topic's in-sync replicas"),
    ("process.roles", "broker,controller", "this node's roles; Strom runs every node as both (combined mode)"),
    ("controller.quorum.voters", "(this node alone)", "the controller quorum, `id@host:port,...`; unset: a cluster of one"),
    ("controller.listener.names", "CONTROLLER", "the listener in `listeners` that controllers talk to each other on"),
    ("broker.rack", "(none)", "this broker's rack; replicas of a partition are spread across racks"),
    ("broker.heartbeat.interval.ms", "2000", "how often a broker heartbeats to the controller voters"),
    ("broker.session.timeout.ms", "9000", "a broker whose heartbeats stop this long is fenced and loses leadership"),
    ("min.insync.replicas", "1", "acks=all produce fails with NOT_ENOUGH_REPLICAS while fewer replicas are in sync (topic: min.insync.replicas)"),
    ("unclean.leader.election.enable", "false", "let a replica outside the ISR lead when no in-sync replica is left, losing what it lacks (topic: unclean.leader.election.enable)"),
    ("replica.lag.time.max.ms", "30000", "a follower that has not caught up for this long leaves the ISR"),
    ("auto.leader.rebalance.enable", "true", "move leadership back to each partition's preferred (first) replica once it is in sync"),
    ("leader.imbalance.check.interval.seconds", "300", "how often the active controller moves leadership back to preferred replicas"),
];

#[derive(Clone, Debug)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub log_segment_bytes: u64,
    pub log_roll_ms: i64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_index_interval_bytes: u32,
    pub log_append_time: bool,
    pub log_cleanup_policy: String,
    pub log_flush_interval_messages: i64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_delete_retention_ms: i64,
    pub log_cleaner_min_cleanable_ratio: f64,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: usize,
    pub groups: GroupSettings,
    pub cluster: ClusterSettings,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max_ms: i64,
    /// `None` when auto.leader.rebalance.enable is false.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// Known-but-ignored keys that were set, for the one-time log line.
    pub ignored: Vec<String>,
    /// The properties this config was built from, so dynamic broker configs can be layered on top.
    pub props: BTreeMap<String, String>,
}

/// The group coordinator's settings.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub coordinator: crate::group::GroupConfig,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: u64,
    pub offsets_retention_check_interval_ms: u64,
    pub offsets_commit_timeout_ms: u64,
}

/// Broker keys that AlterConfigs may change at run time (Kafka's cluster-wide dynamic log configs).
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.index.interval.bytes",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
];

impl BrokerConfig {
    /// Builds the config from an optional properties file and `key=value` overrides.
    pub fn load(file: Option<&std::path::Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let f = std::fs::File::open(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            let map = java_properties::read(std::io::BufReader::new(f))
                .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), reason: e.to_string() })?;
            props.extend(map);
        }
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        Self::from_props(&props)
    }

    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut ignored = Vec::new();
        for key in props.keys() {
            let known = KNOWN_KEYS.iter().any(|(k, _, _)| k == key)
                || matches!(key.as_str(), "broker.id" | "log.dir");
            if known {
                continue;
            }
            if IGNORED_KAFKA_KEYS.contains(&key.as_str()) || key.starts_with("listener.name.") {
                ignored.push(key.clone());
                continue;
            }
            return Err(ConfigError::UnknownKey(key.clone()));
        }
        let get = |k: &str| props.get(k).map(String::as_str);
        let node_id = match (get("node.id"), get("broker.id")) {
            (Some(v), _) => parse("node.id", v)?,
            (None, Some(v)) => parse("broker.id", v)?,
            (None, None) => 1,
        };
        let all_listeners = parse_listeners("listeners", get("listeners").unwrap_or("PLAINTEXT://127.0.0.1:9092"))?;
        let controller_names: Vec<&str> =
            get("controller.listener.names").unwrap_or("CONTROLLER").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let (controller_listeners, listeners): (Vec<Listener>, Vec<Listener>) =
            all_listeners.into_iter().partition(|l| controller_names.contains(&l.name.as_str()));
        if listeners.is_empty() {
            return Err(ConfigError::InvalidValue {
                key: "listeners".into(),
                value: get("listeners").unwrap_or_default().into(),
                reason: "no client listener: every listener is named in controller.listener.names".into(),
            });
        }
        let cluster = cluster_settings(&get, node_id, controller_listeners.into_iter().next())?;
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) => {
                let mut l = parse_listeners("advertised.listeners", v)?;
                l.retain(|l| !controller_names.contains(&l.name.as_str()));
                if let Some(bad) = l.iter().find(|l| is_meta_address(&l.host)) {
                    return Err(ConfigError::InvalidValue {
                        key: "advertised.listeners".into(),
                        value: v.into(),
                        reason: format!("{} is not an address a client can connect to", bad.host),
                    });
                }
                l
            }
            // As Kafka: a listener bound to every interface is advertised under the host name.
            None => listeners
                .iter()
                .map(|l| Listener { host: if is_meta_address(&l.host) { host_name() } else { l.host.clone() }, ..l.clone() })
                .collect(),
        };
        let log_dir = match (get("log.dirs"), get("log.dir")) {
            (Some(v), _) => first_dir("log.dirs", v)?,
            (None, Some(v)) => first_dir("log.dir", v)?,
            (None, None) => PathBuf::from("./strom-data"),
        };
        let hours = |ms: i64| ms * 3_600_000;
        let log_roll_ms = match get("log.roll.ms") {
            Some(v) => parse("log.roll.ms", v)?,
            None => hours(get("log.roll.hours").map(|v| parse("log.roll.hours", v)).transpose()?.unwrap_or(168)),
        };
        let log_retention_ms = if let Some(v) = get("log.retention.ms") {
            // As the topic-level retention.ms: -1 keeps forever; anything lower is a mistake.
            min_value("log.retention.ms", parse("log.retention.ms", v)?, -1)?
        } else if let Some(v) = get("log.retention.minutes") {
            let m: i64 = parse("log.retention.minutes", v)?;
            if m < 0 { -1 } else { m * 60_000 }
        } else {
            let h: i64 = get("log.retention.hours").map(|v| parse("log.retention.hours", v)).transpose()?.unwrap_or(168);
            if h < 0 { -1 } else { hours(h) }
        };
        let timestamp_type = get("log.message.timestamp.type").unwrap_or("CreateTime");
        let log_append_time = parse_timestamp_type("log.message.timestamp.type", timestamp_type)?;
        let cfg = BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            log_dir,
            num_partitions: positive("num.partitions", get("num.partitions").unwrap_or("1"))?,
            default_replication_factor: positive("default.replication.factor", get("default.replication.factor").unwrap_or("1"))?,
            auto_create_topics: parse("auto.create.topics.enable", get("auto.create.topics.enable").unwrap_or("true"))?,
            log_segment_bytes: positive("log.segment.bytes", get("log.segment.bytes").unwrap_or("1073741824"))?,
            log_roll_ms: min_value("log.roll.ms", log_roll_ms, 1)?,
            log_retention_ms,
            log_retention_bytes: min_value("log.retention.bytes", parse("log.retention.bytes", get("log.retention.bytes").unwrap_or("-1"))?, -1)?,
            log_retention_check_interval_ms: positive("log.retention.check.interval.ms", get("log.retention.check.interval.ms").unwrap_or("300000"))?,
            log_index_interval_bytes: positive("log.index.interval.bytes", get("log.index.interval.bytes").unwrap_or("4096"))?,
            log_append_time,
            log_cleanup_policy: parse_cleanup_policy("log.cleanup.policy", get("log.cleanup.policy").unwrap_or("delete"))?,
            log_flush_interval_messages: positive("log.flush.interval.messages", get("log.flush.interval.messages").unwrap_or("9223372036854775807"))?,
            log_cleaner_enable: parse("log.cleaner.enable", get("log.cleaner.enable").unwrap_or("true"))?,
            log_cleaner_backoff_ms: positive("log.cleaner.backoff.ms", get("log.cleaner.backoff.ms").unwrap_or("15000"))?,
            log_cleaner_delete_retention_ms: parse("log.cleaner.delete.retention.ms", get("log.cleaner.delete.retention.ms").unwrap_or("86400000"))?,
            log_cleaner_min_cleanable_ratio: parse_ratio("log.cleaner.min.cleanable.ratio", get("log.cleaner.min.cleanable.ratio").unwrap_or("0.5"))?,
            message_max_bytes: positive("message.max.bytes", get("message.max.bytes").unwrap_or("1048588"))?,
            socket_request_max_bytes: positive("socket.request.max.bytes", get("socket.request.max.bytes").unwrap_or("104857600"))?,
            groups: group_settings(&get)?,
            cluster,
            min_insync_replicas: positive("min.insync.replicas", get("min.insync.replicas").unwrap_or("1"))?,
            unclean_leader_election: parse("unclean.leader.election.enable", get("unclean.leader.election.enable").unwrap_or("false"))?,
            replica_lag_time_max_ms: positive("replica.lag.time.max.ms", get("replica.lag.time.max.ms").unwrap_or("30000"))?,
            leader_imbalance_check_interval_ms: {
                let enabled: bool = parse("auto.leader.rebalance.enable", get("auto.leader.rebalance.enable").unwrap_or("true"))?;
                let secs: u64 = positive("leader.imbalance.check.interval.seconds", get("leader.imbalance.check.interval.seconds").unwrap_or("300"))?;
                enabled.then_some(secs * 1000)
            },
            ignored,
            props: props.clone(),
        };
        Ok(cfg)
    }

    /// This config with dynamic broker configs (set through AlterConfigs) on top.
    pub fn with_dynamic(&self, dynamic: &BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        if dynamic.is_empty() {
            return Ok(self.clone());
        }
        let mut props = self.props.clone();
        props.extend(dynamic.iter().map(|(k, v)| (k.clone(), v.clone())));
        BrokerConfig::from_props(&props)
    }

    /// The log settings a topic gets when it overrides nothing.
    pub fn default_log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            index_interval_bytes: self.log_index_interval_bytes,
            max_message_bytes: self.message_max_bytes,
            cleanup_policy: strom_storage::CleanupPolicy::parse(&self.log_cleanup_policy).unwrap_or_default(),
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
        }
    }

    /// The broker-level default of each topic-level config, as DescribeConfigs reports them.
    pub fn topic_defaults(&self) -> Vec<(&'static str, &'static str, String)> {
        vec![
            ("cleanup.policy", "log.cleanup.policy", self.log_cleanup_policy.clone()),
            ("retention.ms", "log.retention.ms", self.log_retention_ms.to_string()),
            ("retention.bytes", "log.retention.bytes", self.log_retention_bytes.to_string()),
            ("segment.bytes", "log.segment.bytes", self.log_segment_bytes.to_string()),
            ("segment.ms", "log.roll.ms", self.log_roll_ms.to_string()),
            ("max.message.bytes", "message.max.bytes", self.message_max_bytes.to_string()),
            ("index.interval.bytes", "log.index.interval.bytes", self.log_index_interval_bytes.to_string()),
            (
                "message.timestamp.type",
                "log.message.timestamp.type",
                if self.log_append_time { "LogAppendTime" } else { "CreateTime" }.to_string(),
            ),
            ("flush.messages", "log.flush.interval.messages", self.log_flush_interval_messages.to_string()),
            ("delete.retention.ms", "log.cleaner.delete.retention.ms", self.log_cleaner_delete_retention_ms.to_string()),
            ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", self.log_cleaner_min_cleanable_ratio.to_string()),
            ("min.insync.replicas", "min.insync.replicas", self.min_insync_replicas.to_string()),
            ("unclean.leader.election.enable", "unclean.leader.election.enable", self.unclean_leader_election.to_string()),
        ]
    }

    pub fn bootstrap_address(&self) -> String {
        self.advertised_listeners
            .first()
            .map(|l| format!("{}:{}", l.host, l.port))
            .unwrap_or_default()
    }
}

/// Where this node sits in a cluster: KRaft's property names, Strom's rules.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Controller voters by node id. Without `controller.quorum.voters` this node alone.
    pub voters: BTreeMap<i32, (String, u16)>,
    /// The listener controllers talk to each other on; `None` for a cluster of one.
    pub controller_listener: Option<Listener>,
    pub rack: Option<String>,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
}

impl ClusterSettings {
    /// A cluster of one needs no controller network at all.
    pub fn is_single_node(&self) -> bool {
        self.controller_listener.is_none()
    }
}

fn cluster_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    node_id: i32,
    controller_listener: Option<Listener>,
) -> Result<ClusterSettings, ConfigError> {
    let invalid = |key: &str, value: &str, reason: String| ConfigError::InvalidValue { key: key.into(), value: value.into(), reason };
    let roles = get("process.roles").unwrap_or("broker,controller");
    let mut roles_set: Vec<&str> = roles.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
    roles_set.sort_unstable();
    roles_set.dedup();
    match roles_set.as_slice() {
        ["broker", "controller"] => {}
        ["broker"] | ["controller"] => {
            return Err(invalid(
                "process.roles",
                roles,
                "Strom runs every node as broker and controller (combined mode); dedicated roles are not supported yet".into(),
            ))
        }
        _ => return Err(invalid("process.roles", roles, "expected `broker,controller`".into())),
    }
    if node_id < 0 {
        return Err(invalid("node.id", &node_id.to_string(), "must be 0 or more".into()));
    }
    let mut voters = BTreeMap::new();
    if let Some(v) = get("controller.quorum.voters").filter(|v| !v.trim().is_empty()) {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: &str| invalid("controller.quorum.voters", v, format!("`{item}`: {why}"));
            let (id, addr) = item.split_once('@').ok_or_else(|| bad("expected id@host:port"))?;
            let id: i32 = id.parse().map_err(|_| bad("the node id must be a number"))?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("expected id@host:port"))?;
            let port: u16 = port.parse().map_err(|_| bad("port must be a number 1-65535"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            if voters.insert(id, (host, port)).is_some() {
                return Err(bad(&format!("node id {id} appears twice")));
            }
        }
        if !voters.contains_key(&node_id) {
            return Err(invalid("controller.quorum.voters", v, format!("this node (node.id={node_id}) is not among the voters")));
        }
        if controller_listener.is_none() {
            return Err(invalid(
                "controller.listener.names",
                get("controller.listener.names").unwrap_or("CONTROLLER"),
                "no listener of that name in `listeners`; controllers need one to reach each other".into(),
            ));
        }
    }
    // A cluster of one: a CONTROLLER listener, if configured, is simply not needed.
    let controller_listener = if voters.len() > 1 { controller_listener } else { None };
    let interval: u64 = positive("broker.heartbeat.interval.ms", get("broker.heartbeat.interval.ms").unwrap_or("2000"))?;
    let session: u64 = positive("broker.session.timeout.ms", get("broker.session.timeout.ms").unwrap_or("9000"))?;
    if session <= interval {
        return Err(invalid("broker.session.timeout.ms", &session.to_string(), format!("must be above broker.heartbeat.interval.ms ({interval})")));
    }
    Ok(ClusterSettings {
        voters,
        controller_listener,
        rack: get("broker.rack").map(str::to_string).filter(|r| !r.is_empty()),
        broker_heartbeat_interval_ms: interval,
        broker_session_timeout_ms: session,
    })
}

fn group_settings<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<GroupSettings, ConfigError> {
    let v = |k: &str, default: &'static str| get(k).unwrap_or(default);
    let min_session: i32 = positive("group.min.session.timeout.ms", v("group.min.session.timeout.ms", "6000"))?;
    let max_session: i32 = positive("group.max.session.timeout.ms", v("group.max.session.timeout.ms", "1800000"))?;
    if max_session < min_session {
        return Err(ConfigError::InvalidValue {
            key: "group.max.session.timeout.ms".into(),
            value: max_session.to_string(),
            reason: format!("must be at least group.min.session.timeout.ms ({min_session})"),
        });
    }
    let max_size: i32 = positive("group.max.size", v("group.max.size", "2147483647"))?;
    let retention_minutes: i64 = positive("offsets.retention.minutes", v("offsets.retention.minutes", "10080"))?;
    Ok(GroupSettings {
        coordinator: crate::group::GroupConfig {
            group_min_session_timeout_ms: min_session,
            group_max_session_timeout_ms: max_session,
            group_initial_rebalance_delay_ms: min_value(
                "group.initial.rebalance.delay.ms",
                parse("group.initial.rebalance.delay.ms", v("group.initial.rebalance.delay.ms", "3000"))?,
                0,
            )?,
            offsets_retention_ms: retention_minutes.saturating_mul(60_000),
            group_max_size: (max_size < i32::MAX).then_some(max_size as usize),
            offset_metadata_max_bytes: positive("offset.metadata.max.bytes", v("offset.metadata.max.bytes", "4096"))?,
        },
        offsets_topic_num_partitions: positive("offsets.topic.num.partitions", v("offsets.topic.num.partitions", "50"))?,
        offsets_topic_replication_factor: positive("offsets.topic.replication.factor", v("offsets.topic.replication.factor", "3"))?,
        offsets_topic_segment_bytes: positive("offsets.topic.segment.bytes", v("offsets.topic.segment.bytes", "104857600"))?,
        offsets_retention_check_interval_ms: positive(
            "offsets.retention.check.interval.ms",
            v("offsets.retention.check.interval.ms", "600000"),
        )?,
        offsets_commit_timeout_ms: positive("offsets.commit.timeout.ms", v("offsets.commit.timeout.ms", "5000"))?,
    })
}

/// Topic-level configs that take effect, and Kafka's other topic keys that are accepted as stored values.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "index.interval.bytes",
    "message.timestamp.type",
    "flush.messages",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    // Accepted and stored, not yet acted on:
    "compression.type",
    "file.delete.delay.ms",
    "flush.ms",
    "max.compaction.lag.ms",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "min.compaction.lag.ms",
    "preallocate",
    "segment.index.bytes",
    "segment.jitter.ms",
];

/// Validates one topic config value; the error text goes back to the client in INVALID_CONFIG.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    if !TOPIC_CONFIG_KEYS.contains(&key) {
        return Err(format!("unknown topic config `{key}`"));
    }
    let r = match key {
        "cleanup.policy" => parse_cleanup_policy(key, value).map(|_| ()),
        "message.timestamp.type" => parse_timestamp_type(key, value).map(|_| ()),
        "retention.ms" | "retention.bytes" => parse::<i64>(key, value).and_then(|v| min_value(key, v, -1)).map(|_| ()),
        "segment.bytes" => parse::<u64>(key, value).and_then(|v| min_value(key, v, 14)).map(|_| ()),
        "segment.ms" | "flush.messages" => parse::<i64>(key, value).and_then(|v| min_value(key, v, 1)).map(|_| ()),
        "delete.retention.ms" => parse::<i64>(key, value).and_then(|v| min_value(key, v, 0)).map(|_| ()),
        "min.cleanable.dirty.ratio" => parse_ratio(key, value).map(|_| ()),
        "max.message.bytes" | "index.interval.bytes" => parse::<u32>(key, value).map(|_| ()),
        "min.insync.replicas" => positive::<i32>(key, value).map(|_| ()),
        "unclean.leader.election.enable" => parse::<bool>(key, value).map(|_| ()),
        _ => Ok(()),
    };
    r.map_err(|e| e.to_string())
}

/// What a topic's configs mean for its partitions: broker defaults with its overrides on top.
#[derive(Clone, Debug)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub log_append_time: bool,
    /// fsync before acknowledging once this many messages are unflushed (Kafka's flush.messages).
    pub flush_messages: i64,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
}

pub fn topic_settings(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> TopicSettings {
    let mut c = broker.default_log_config();
    let mut append_time = broker.log_append_time;
    let mut flush_messages = broker.log_flush_interval_messages;
    let mut min_insync_replicas = broker.min_insync_replicas;
    let mut unclean_leader_election = broker.unclean_leader_election;
    for (k, v) in overrides {
        // Values were validated when they were set; a value that fails here keeps the default.
        match k.as_str() {
            "retention.ms" => c.retention_ms = v.parse().unwrap_or(c.retention_ms),
            "retention.bytes" => c.retention_bytes = v.parse().unwrap_or(c.retention_bytes),
            "segment.bytes" => c.segment_bytes = v.parse().unwrap_or(c.segment_bytes),
            "segment.ms" => c.segment_ms = v.parse().unwrap_or(c.segment_ms),
            "max.message.bytes" => c.max_message_bytes = v.parse().unwrap_or(c.max_message_bytes),
            "index.interval.bytes" => c.index_interval_bytes = v.parse().unwrap_or(c.index_interval_bytes),
            "message.timestamp.type" => append_time = v == "LogAppendTime",
            "flush.messages" => flush_messages = v.parse().unwrap_or(flush_messages),
            "cleanup.policy" => c.cleanup_policy = strom_storage::CleanupPolicy::parse(v).unwrap_or(c.cleanup_policy),
            "delete.retention.ms" => c.delete_retention_ms = v.parse().unwrap_or(c.delete_retention_ms),
            "min.cleanable.dirty.ratio" => c.min_cleanable_dirty_ratio = v.parse().unwrap_or(c.min_cleanable_dirty_ratio),
            "min.insync.replicas" => min_insync_replicas = v.parse().unwrap_or(min_insync_replicas),
            "unclean.leader.election.enable" => unclean_leader_election = v.parse().unwrap_or(unclean_leader_election),
            _ => {}
        }
    }
    TopicSettings { log: c, log_append_time: append_time, flush_messages, min_insync_replicas, unclean_leader_election }
}

fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse::<T>().map_err(|e| ConfigError::InvalidValue {
        key: key.into(),
        value: v.into(),
        reason: e.to_string(),
    })
}

fn min_value<T: PartialOrd + std::fmt::Display + Copy>(key: &str, v: T, min: T) -> Result<T, ConfigError> {
    if v < min {
        return Err(ConfigError::InvalidValue { key: key.into(), value: v.to_string(), reason: format!("must be at least {min}") });
    }
    Ok(v)
}

fn positive<T: std::str::FromStr + PartialOrd + Default + std::fmt::Display + Copy>(key: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let n: T = parse(key, v)?;
    if n <= T::default() {
        return Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "must be positive".into() });
    }
    Ok(n)
}

fn parse_ratio(key: &str, v: &str) -> Result<f64, ConfigError> {
    let r: f64 = parse(key, v)?;
    if !(0.0..=1.0).contains(&r) {
        return Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "must be between 0 and 1".into() });
    }
    Ok(r)
}

fn parse_timestamp_type(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "CreateTime" => Ok(false),
        "LogAppendTime" => Ok(true),
        _ => Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "must be CreateTime or LogAppendTime".into() }),
    }
}

fn parse_cleanup_policy(key: &str, v: &str) -> Result<String, ConfigError> {
    let ok = v.split(',').map(str::trim).all(|p| p == "delete" || p == "compact") && !v.trim().is_empty();
    if !ok {
        return Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "must be delete, compact or both".into() });
    }
    Ok(v.to_string())
}

fn first_dir(key: &str, v: &str) -> Result<PathBuf, ConfigError> {
    let dirs: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    match dirs.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        [] => Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "no directory given".into() }),
        _ => Err(ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: "Strom takes one data directory for now".into() }),
    }
}

fn parse_listeners(key: &str, v: &str) -> Result<Vec<Listener>, ConfigError> {
    let bad = |reason: &str| ConfigError::InvalidValue { key: key.into(), value: v.into(), reason: reason.into() };
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item.split_once("://").ok_or_else(|| bad("expected NAME://host:port"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("expected NAME://host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("port must be a number 0-65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        out.push(Listener { name: name.to_string(), host: host.to_string(), port });
    }
    if out.is_empty() {
        return Err(bad("no listener given"));
    }
    Ok(out)
}

fn is_meta_address(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::" | "")
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

impl Listener {
    pub fn socket_addr(&self) -> Result<SocketAddr, std::io::Error> {
        use std::net::ToSocketAddrs;
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("cannot resolve {}", self.host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_kafka() {
        let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        assert_eq!(c.bootstrap_address(), "127.0.0.1:9092");
        assert_eq!(c.log_retention_ms, 168 * 3_600_000);
        assert_eq!(c.message_max_bytes, 1048588);
        assert_eq!(c.log_dir, PathBuf::from("./strom-data"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = BrokerConfig::from_props(&props(&[("log.retension.ms", "5")])).unwrap_err();
        assert!(e.to_string().contains("log.retension.ms"), "{e}");
    }

    #[test]
    fn ignored_kafka_key_is_accepted_and_remembered() {
        let c = BrokerConfig::from_props(&props(&[("num.network.threads", "3")])).unwrap();
        assert_eq!(c.ignored, vec!["num.network.threads".to_string()]);
    }

    #[test]
    fn retention_precedence_ms_over_minutes_over_hours() {
        let c = BrokerConfig::from_props(&props(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")])).unwrap();
        assert_eq!(c.log_retention_ms, 120_000);
        let c = BrokerConfig::from_props(&props(&[("log.retention.ms", "7"), ("log.retention.minutes", "2")])).unwrap();
        assert_eq!(c.log_retention_ms, 7);
        assert_eq!(BrokerConfig::from_props(&props(&[("log.retention.ms", "-1")])).unwrap().log_retention_ms, -1);
        for key in ["log.retention.ms", "log.retention.bytes"] {
            let e = BrokerConfig::from_props(&props(&[(key, "-5")])).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn bad_value_names_key() {
        let e = BrokerConfig::from_props(&props(&[("num.partitions", "zero")])).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = BrokerConfig::from_props(&props(&[("listeners", "127.0.0.1:9092")])).unwrap_err();
        assert!(e.to_string().contains("listeners"), "{e}");
    }

    #[test]
    fn wildcard_listener_is_advertised_by_host_name() {
        let c = BrokerConfig::from_props(&props(&[("listeners", "PLAINTEXT://0.0.0.0:9093")])).unwrap();
        assert_ne!(c.advertised_listeners[0].host, "0.0.0.0");
        assert_eq!(c.advertised_listeners[0].port, 9093);
        let e = BrokerConfig::from_props(&props(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9093")])).unwrap_err();
        assert!(e.to_string().contains("advertised.listeners"), "{e}");
    }

    #[test]
    fn topic_overrides_apply() {
        let b = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        let t = topic_settings(&b, &props(&[("retention.ms", "1000"), ("message.timestamp.type", "LogAppendTime"), ("flush.messages", "1")]));
        assert_eq!(t.log.retention_ms, 1000);
        assert!(t.log_append_time);
        assert_eq!(t.flush_messages, 1);
        assert_eq!(topic_settings(&b, &BTreeMap::new()).flush_messages, i64::MAX);
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.mss", "1").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
    }
}

#[cfg(test)]
mod doc_tests {
    /// docs/configuration.md is the user's reference: every key Strom acts on must be in it.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        for (key, _, _) in super::KNOWN_KEYS {
            assert!(doc.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
        }
        for key in super::TOPIC_CONFIG_KEYS.iter().take(10) {
            assert!(doc.contains(&format!("`{key}`")), "docs/configuration.md does not document topic key `{key}`");
        }
    }
}
