//! The table of every config key Strom acts on: each key once, with its default, its check, where
//! it applies (broker, and the topic key that overrides it), whether AlterConfigs may change it at
//! run time, and its documentation. Everything else derives from this table: the unknown-key check,
//! defaults, validation of broker and topic values, DescribeConfigs' synonyms, `--help-config` and
//! the key tables of docs/configuration.md (`markdown.rs`, kept current by a unit test).

use crate::ConfigError;

/// Where a key's documentation goes in docs/configuration.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Broker,
    Groups,
    Transactions,
    Cluster,
    Replication,
    Security,
}

/// A key's default when it is not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value.
    Value(&'static str),
    /// Derived from another key (`log.roll.ms` from `log.roll.hours`); DescribeConfigs reports
    /// such an unset broker key as null, as Kafka does.
    From(&'static str),
    /// No value; the text says what happens instead.
    Unset(&'static str),
}

/// How a value is checked (and then parsed by the typed readers in `resolve.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    Bool,
    /// A number between 0 and 1.
    Ratio,
    /// `CreateTime` or `LogAppendTime`.
    TimestampType,
    /// `delete`, `compact`, or both, comma-separated.
    CleanupPolicy,
    /// Kafka's BrokerCompressionType: `producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`.
    CompressionType,
    /// A Kafka version as `message.format.version` takes it (Kafka's MetadataVersionValidator):
    /// `0.8.0` to `3.9`, optionally with its `-IVn`, a longer `x.y.z` cut to its release.
    KafkaVersion,
    /// Free text, parsed by the code that reads it (listeners, voters, ...).
    Text,
    /// KIP-73's throttled-replica lists: empty, `*`, or `partition:brokerId` pairs separated by
    /// commas (Kafka's ThrottledReplicaListValidator).
    ThrottledReplicas,
}

const fn int(min: i64, max: i64) -> Check {
    Check::Int { min, max }
}
const POSITIVE_I16: Check = int(1, i16::MAX as i64);
const POSITIVE_I32: Check = int(1, i32::MAX as i64);
const POSITIVE_U32: Check = int(1, u32::MAX as i64);
const POSITIVE: Check = int(1, i64::MAX);
const ANY_INT: Check = int(i64::MIN, i64::MAX);

/// One config key.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// Another name Kafka accepts for the same key (`broker.id` for `node.id`).
    pub alias: Option<&'static str>,
    pub default: DefaultValue,
    pub check: Check,
    /// The topic-level key that overrides this broker key for one topic (`retention.ms` for
    /// `log.retention.ms`): DescribeConfigs lists this key as its synonym.
    pub topic: Option<&'static str>,
    /// AlterConfigs / IncrementalAlterConfigs may change it at run time, for one broker or the
    /// whole cluster (Kafka's dynamic broker configs; `dynamic_key`).
    pub dynamic: bool,
    /// A topic config with no broker key at all (Kafka's `leader.replication.throttled.replicas`):
    /// `name` and `topic` are the topic key, `key` (the broker key lookup) never finds it, and it
    /// is refused in the broker's properties.
    pub topic_only: bool,
    /// The group-level key that overrides this broker key for one group (KIP-848 and KIP-932's
    /// group configs, config resource GROUP: `consumer.session.timeout.ms` for
    /// `group.consumer.session.timeout.ms`); `group.rs` checks and applies them.
    pub group: Option<&'static str>,
    pub section: Section,
    pub doc: &'static str,
}

impl Key {
    /// The default as a value, if it is one.
    pub fn default_value(&self) -> Option<&'static str> {
        match self.default {
            DefaultValue::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Checks `value` for this key; errors name `shown` (the broker or the topic key).
    pub fn check_value(&self, shown: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue { key: shown.into(), value: value.into(), reason };
        let v = value.trim();
        match self.check {
            Check::Int { min, max } => {
                let n: i64 = v.parse().map_err(|e: std::num::ParseIntError| invalid(e.to_string()))?;
                if n < min {
                    return Err(invalid(if min == 1 { "must be positive".into() } else { format!("must be at least {min}") }));
                }
                if n > max {
                    return Err(invalid(format!("must be at most {max}")));
                }
            }
            Check::Bool => {
                v.parse::<bool>().map_err(|e| invalid(e.to_string()))?;
            }
            Check::Ratio => {
                let r: f64 = v.parse().map_err(|e: std::num::ParseFloatError| invalid(e.to_string()))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(invalid("must be between 0 and 1".into()));
                }
            }
            Check::TimestampType => {
                if !matches!(v, "CreateTime" | "LogAppendTime") {
                    return Err(invalid("must be CreateTime or LogAppendTime".into()));
                }
            }
            Check::CleanupPolicy => {
                if v.is_empty() || !v.split(',').map(str::trim).all(|p| p == "delete" || p == "compact") {
                    return Err(invalid("must be delete, compact or both".into()));
                }
            }
            Check::CompressionType => {
                if crate::topic::CompressionType::parse(v).is_none() {
                    return Err(invalid("must be one of producer, uncompressed, gzip, snappy, lz4, zstd".into()));
                }
            }
            Check::KafkaVersion => {
                if !is_kafka_version(v) {
                    return Err(invalid(format!("Version {v} is not a valid version")));
                }
            }
            Check::ThrottledReplicas => {
                if crate::topic::ThrottledReplicas::parse(v).is_none() {
                    return Err(invalid("must be `*` or a comma-separated list of partition:brokerId pairs".into()));
                }
            }
            Check::Text => {}
        }
        Ok(())
    }
}

/// Kafka 3.9's MetadataVersion strings: each release, and each inter-broker protocol version
/// (`release-IVn`) up to 4.0-IV1.
const KAFKA_VERSIONS: &[&str] = &[
    "0.8.0", "0.8.1", "0.8.2", "0.9.0", "0.10.0-IV0", "0.10.0-IV1", "0.10.1-IV0", "0.10.1-IV1", "0.10.1-IV2", "0.10.2-IV0",
    "0.11.0-IV0", "0.11.0-IV1", "0.11.0-IV2", "1.0-IV0", "1.1-IV0", "2.0-IV0", "2.0-IV1", "2.1-IV0", "2.1-IV1", "2.1-IV2",
    "2.2-IV0", "2.2-IV1", "2.3-IV0", "2.3-IV1", "2.4-IV0", "2.4-IV1", "2.5-IV0", "2.6-IV0", "2.7-IV0", "2.7-IV1", "2.7-IV2",
    "2.8-IV0", "2.8-IV1", "3.0-IV0", "3.0-IV1", "3.1-IV0", "3.2-IV0", "3.3-IV0", "3.3-IV1", "3.3-IV2", "3.3-IV3", "3.4-IV0",
    "3.5-IV0", "3.5-IV1", "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2", "3.7-IV0", "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4",
    "3.8-IV0", "3.9-IV0", "4.0-IV0", "4.0-IV1",
];

/// Kafka's MetadataVersion.fromVersionString: a version is known by its full string, or by its
/// release alone (`2.8`, `0.10.1`) for the releases up to 3.9 (4.0 was not a production version
/// in 3.9); `0.x` strings keep three dot-separated parts, later ones two (`2.8.1` is `2.8`).
fn is_kafka_version(v: &str) -> bool {
    let parts = if v.starts_with("0.") { 3 } else { 2 };
    let segments: Vec<&str> = v.split('.').collect();
    let key = if segments.len() <= parts { v.to_string() } else { segments[..parts].join(".") };
    KAFKA_VERSIONS.iter().any(|k| *k == key || (k.split('-').next() == Some(key.as_str()) && !key.starts_with("4.")))
}

/// The broker key named `name` (or aliased so); never a topic-only key.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| !k.topic_only && (k.name == name || k.alias == Some(name)))
}

/// At which level a dynamic broker config may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicScope {
    /// For the whole cluster (`--entity-default`) or for one broker.
    Cluster,
    /// For one broker only: its TLS keystore and truststore, which are files of that machine
    /// (Kafka's rule for them too).
    PerBroker,
}

/// The TLS settings Kafka lets an operator change at run time (its `SslConfigs.RECONFIGURABLE_CONFIGS`),
/// bare or per listener.
const RECONFIGURABLE_TLS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
];

/// Whether `name` may be altered as a dynamic broker config, and at which level (None: only in
/// server.properties).
pub fn dynamic_key(name: &str) -> Option<DynamicScope> {
    let bare = name.strip_prefix("listener.name.").and_then(|rest| rest.split_once('.')).map_or(name, |(_, k)| k);
    if RECONFIGURABLE_TLS.contains(&bare) {
        return Some(DynamicScope::PerBroker);
    }
    key(name).filter(|k| k.dynamic).map(|_| DynamicScope::Cluster)
}

/// The key `name`, broker or topic-only: the resolver reads both kinds by name.
pub(crate) fn any_key(name: &str) -> Option<&'static Key> {
    key(name).or_else(|| KEYS.iter().find(|k| k.topic_only && k.name == name))
}

/// The key a topic-level key names: the broker key it overrides, or the topic-only key itself.
pub fn by_topic_key(topic_key: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.topic == Some(topic_key))
}

/// Keys of Kafka's PASSWORD type: DescribeConfigs never shows their values (null, flagged
/// sensitive), whatever level sets them.
pub fn is_sensitive(name: &str) -> bool {
    const SENSITIVE: &[&str] = &["ssl.key.password", "ssl.keystore.password", "ssl.truststore.password", "ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.certificates"];
    SENSITIVE.contains(&name) || name.ends_with("sasl.jaas.config") || name.ends_with(".password")
}

/// Kafka's other topic keys: accepted, stored and read back by DescribeConfigs, not acted on yet.
pub const INERT_TOPIC_KEYS: &[&str] = &[
    "file.delete.delay.ms",
    "flush.ms",
    "max.compaction.lag.ms",
    "min.compaction.lag.ms",
    "preallocate",
    "segment.index.bytes",
    "segment.jitter.ms",
];

/// Broker keys Apache Kafka accepts that Strom deliberately does not act on (yet): accepted and
/// logged once, so a stock `server.properties` works.
pub const IGNORED_KAFKA_KEYS: &[&str] = &[
    "controller.quorum.bootstrap.servers",
    "delete.topic.enable",
    "log.flush.interval.ms",
    "log.cleaner.threads",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
];

/// A row with the common fields; rows that override a key at topic level, are dynamic or have an
/// alias set those with struct-update syntax.
const fn row(section: Section, name: &'static str, default: DefaultValue, check: Check, doc: &'static str) -> Key {
    Key { name, alias: None, default, check, topic: None, dynamic: false, topic_only: false, group: None, section, doc }
}

/// A topic config that no broker key stands behind (see `Key::topic_only`).
const fn topic_row(section: Section, name: &'static str, default: DefaultValue, check: Check, doc: &'static str) -> Key {
    Key { name, alias: None, default, check, topic: Some(name), dynamic: false, topic_only: true, group: None, section, doc }
}

use DefaultValue::{From, Unset, Value};

/// Every key Strom acts on, in the order the documentation lists them.
pub const KEYS: &[Key] = &[
    Key { alias: Some("broker.id"), ..row(Section::Broker, "node.id", Value("1"), int(0, i32::MAX as i64), "this broker's id (`broker.id` is accepted as an alias)") },
    row(Section::Broker, "listeners", Value("PLAINTEXT://127.0.0.1:9092"), Check::Text, "where clients connect; port `0` picks a free port, shown in the ready line"),
    row(
        Section::Broker,
        "listener.security.protocol.map",
        Value(crate::security::DEFAULT_PROTOCOL_MAP),
        Check::Text,
        "each listener name's security protocol (`NAME:PROTOCOL,...`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL); when not set, controller listener names map to PLAINTEXT, as in Kafka"
    ),
    row(Section::Broker, "advertised.listeners", Unset("the value of `listeners`"), Check::Text, "the address handed to clients in Metadata"),
    Key { alias: Some("log.dir"), ..row(Section::Broker, "log.dirs", Value("./strom-data"), Check::Text, "the data directory (`log.dir` is an alias; one directory for now)") },
    row(Section::Broker, "num.partitions", Value("1"), POSITIVE_I32, "partitions of an auto-created topic, or of a CreateTopics request that says -1"),
    row(Section::Broker, "default.replication.factor", Value("1"), POSITIVE_I16, "replication factor when a request says -1"),
    row(Section::Broker, "auto.create.topics.enable", Value("true"), Check::Bool, "create a topic when a Metadata request names an unknown one (and the client allows it)"),
    Key {
        topic: Some("segment.bytes"),
        dynamic: true,
        ..row(Section::Broker, "log.segment.bytes", Value("1073741824"), int(14, i64::MAX), "roll the active segment at this size")
    },
    Key { topic: Some("segment.ms"), dynamic: true, ..row(Section::Broker, "log.roll.ms", From("log.roll.hours"), POSITIVE, "roll the active segment at this age") },
    row(Section::Broker, "log.roll.hours", Value("168"), POSITIVE, "as `log.roll.ms`, in hours"),
    Key {
        topic: Some("retention.ms"),
        dynamic: true,
        ..row(Section::Broker, "log.retention.ms", From("log.retention.minutes"), int(-1, i64::MAX), "delete segments whose newest record is older; `-1` keeps forever")
    },
    row(Section::Broker, "log.retention.minutes", From("log.retention.hours"), ANY_INT, "as `log.retention.ms`, in minutes"),
    row(Section::Broker, "log.retention.hours", Value("168"), ANY_INT, "as `log.retention.ms`, in hours"),
    Key {
        topic: Some("retention.bytes"),
        dynamic: true,
        ..row(Section::Broker, "log.retention.bytes", Value("-1"), int(-1, i64::MAX), "per partition: delete oldest segments while the log is larger; `-1` is no limit")
    },
    row(Section::Broker, "log.retention.check.interval.ms", Value("300000"), POSITIVE, "how often retention runs"),
    Key {
        dynamic: true,
        ..row(
            Section::Broker,
            "log.dir.min.free.bytes",
            Value("-1"),
            int(-1, i64::MAX),
            "below this many free bytes on the data directory's file system, Produce is refused with KAFKA_STORAGE_ERROR (retriable) while reads, admin requests and retention go on; writes resume by themselves once space returns. `-1`: 5% of the file system, at most 1 GiB; `0` turns the guard off (Strom's own key)"
        )
    },
    Key {
        topic: Some("index.interval.bytes"),
        dynamic: true,
        ..row(Section::Broker, "log.index.interval.bytes", Value("4096"), POSITIVE_U32, "bytes of log between two offset-index entries")
    },
    Key {
        topic: Some("compression.type"),
        dynamic: true,
        ..row(
            Section::Broker,
            "compression.type",
            Value("producer"),
            Check::CompressionType,
            "the codec produced batches are stored in: `producer` keeps each batch's own; `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd` recompresses the batches in another codec on the leader before they are written (Kafka's rule). gzip at level 6, LZ4 at its fast level, zstd at level 3"
        )
    },
    Key {
        topic: Some("message.timestamp.type"),
        dynamic: true,
        ..row(Section::Broker, "log.message.timestamp.type", Value("CreateTime"), Check::TimestampType, "`CreateTime` keeps the producer's timestamps; `LogAppendTime` stamps batches with the broker's clock")
    },
    Key {
        topic: Some("message.timestamp.before.max.ms"),
        dynamic: true,
        ..row(Section::Broker, "log.message.timestamp.before.max.ms", Value("9223372036854775807"), int(0, i64::MAX), "refuse (INVALID_TIMESTAMP, naming each record) a CreateTime record whose timestamp is more than this before the broker's clock")
    },
    Key {
        topic: Some("message.timestamp.after.max.ms"),
        dynamic: true,
        ..row(Section::Broker, "log.message.timestamp.after.max.ms", Value("9223372036854775807"), int(0, i64::MAX), "refuse (INVALID_TIMESTAMP, naming each record) a CreateTime record whose timestamp is more than this after the broker's clock")
    },
    Key {
        topic: Some("message.timestamp.difference.max.ms"),
        dynamic: true,
        ..row(Section::Broker, "log.message.timestamp.difference.max.ms", Value("9223372036854775807"), int(0, i64::MAX), "deprecated: both timestamp bounds, where `log.message.timestamp.before.max.ms` / `.after.max.ms` are left at their default")
    },
    Key {
        topic: Some("message.format.version"),
        ..row(Section::Broker, "log.message.format.version", Value("3.0-IV1"), Check::KafkaVersion, "deprecated and ignored, as in Kafka 3.x: the log always stores message format v2, and older formats are converted when produced and fetched. Any Kafka version (`0.8.0` to `3.9`, or an inter-broker protocol version like `2.8-IV1`) is accepted")
    },
    Key {
        topic: Some("message.downconversion.enable"),
        dynamic: true,
        ..row(Section::Broker, "log.message.downconversion.enable", Value("true"), Check::Bool, "convert records to message format v0/v1 for consumers that fetch with Fetch v0-3; `false` answers them UNSUPPORTED_VERSION instead (followers are always served)")
    },
    Key {
        topic: Some("cleanup.policy"),
        dynamic: true,
        ..row(Section::Broker, "log.cleanup.policy", Value("delete"), Check::CleanupPolicy, "`delete` (retention), `compact` (keep the latest record per key), or `compact,delete`")
    },
    row(Section::Broker, "log.cleaner.enable", Value("true"), Check::Bool, "run the log cleaner for compacted topics"),
    row(Section::Broker, "log.cleaner.backoff.ms", Value("15000"), POSITIVE, "pause between two passes of the log cleaner"),
    Key {
        topic: Some("min.cleanable.dirty.ratio"),
        ..row(Section::Broker, "log.cleaner.min.cleanable.ratio", Value("0.5"), Check::Ratio, "compact a log only once at least this share of its cleanable bytes was written since its last compaction (or when a kept tombstone becomes removable); `0` compacts on every pass")
    },
    Key {
        topic: Some("delete.retention.ms"),
        ..row(Section::Broker, "log.cleaner.delete.retention.ms", Value("86400000"), int(0, i64::MAX), "how long a tombstone (null value) survives compaction")
    },
    Key {
        topic: Some("max.message.bytes"),
        dynamic: true,
        ..row(Section::Broker, "message.max.bytes", Value("1048588"), POSITIVE_U32, "the largest record batch accepted (MESSAGE_TOO_LARGE beyond it)")
    },
    row(Section::Security, "quota.window.num", Value("11"), int(2, 1000), "client quotas: how many samples a client's rates (bytes, request handler time, an address's new connections) are measured over; a `controller_mutation_rate` bucket holds this many samples' worth of its rate"),
    row(Section::Security, "quota.window.size.seconds", Value("1"), int(1, 3600), "client quotas: the length of one sample; a client over a byte rate is throttled for at most `quota.window.num` of these, over `request_percentage` or an address over its `connection_creation_rate` for at most one"),
    row(Section::Security, "max.connections", Value("2147483647"), int(0, i32::MAX as i64), "the most client connections this broker holds open; at the limit the listeners stop accepting until one closes (the inter-broker listener is exempt when there are other listeners)"),
    row(Section::Security, "max.connections.per.ip", Value("2147483647"), int(0, i32::MAX as i64), "the most connections from one address; a connection beyond it is closed at once; `0` needs `max.connections.per.ip.overrides`"),
    row(Section::Security, "max.connections.per.ip.overrides", Value(""), Check::Text, "per-address exceptions to `max.connections.per.ip`: `address:count,...` (IP addresses; Kafka also takes host names)"),
    row(
        Section::Broker,
        "http.listeners",
        Value("http://127.0.0.1:9644"),
        Check::Text,
        "where the HTTP listener serves `/metrics` (Prometheus), `/health` and `/ready`: `http://host:port`, comma-separated for several; empty turns it off; port `0` picks a free port, shown in the ready line"
    ),
    row(
        Section::Broker,
        "metrics.partition.series.max",
        Value("1000"),
        int(0, i32::MAX as i64),
        "at most this many per-partition series (`strom_partition_*`, `strom_consumer_group_lag*`) each in `/metrics`; beyond it they are left out, which `strom_metrics_series_dropped` counts and the log says once"
    ),
    row(Section::Broker, "max.request.partition.size.limit", Value("2000"), POSITIVE_I32, "the most partitions one DescribeTopicPartitions response lists; a client asking for more gets a cursor to continue from"),
    row(Section::Broker, "socket.request.max.bytes", Value("104857600"), POSITIVE_I32, "the largest request frame; a larger one closes the connection"),
    Key {
        topic: Some("flush.messages"),
        dynamic: true,
        ..row(Section::Broker, "log.flush.interval.messages", Value("9223372036854775807"), POSITIVE, "fsync a partition before acknowledging once this many messages are unflushed; `1` makes every acknowledged batch durable on disk (group commit: one fsync covers all batches that arrived meanwhile)")
    },
    row(Section::Groups, "group.min.session.timeout.ms", Value("6000"), POSITIVE_I32, "the shortest `session.timeout.ms` a member may ask for (INVALID_SESSION_TIMEOUT below it)"),
    row(Section::Groups, "group.max.session.timeout.ms", Value("1800000"), POSITIVE_I32, "the longest `session.timeout.ms` a member may ask for"),
    row(Section::Groups, "group.initial.rebalance.delay.ms", Value("3000"), int(0, i64::MAX), "how long the first rebalance of an empty group waits for more members to join; `0` completes as soon as every known member has joined"),
    row(Section::Groups, "group.max.size", Value("2147483647"), POSITIVE_I32, "most members a group may have (GROUP_MAX_SIZE_REACHED beyond it)"),
    Key { group: Some("consumer.session.timeout.ms"), ..row(Section::Groups, "group.consumer.session.timeout.ms", Value("45000"), POSITIVE_I32, "KIP-848 consumer groups (`group.protocol=consumer`): a member not heard from for this long is removed and its partitions move on; within the min and max below") },
    row(Section::Groups, "group.consumer.min.session.timeout.ms", Value("45000"), POSITIVE_I32, "the lowest `group.consumer.session.timeout.ms` allowed"),
    row(Section::Groups, "group.consumer.max.session.timeout.ms", Value("60000"), POSITIVE_I32, "the highest `group.consumer.session.timeout.ms` allowed"),
    Key { group: Some("consumer.heartbeat.interval.ms"), ..row(Section::Groups, "group.consumer.heartbeat.interval.ms", Value("5000"), POSITIVE_I32, "how often consumer-group members are told to heartbeat; below the session timeout, within the min and max below") },
    row(Section::Groups, "group.consumer.min.heartbeat.interval.ms", Value("5000"), POSITIVE_I32, "the lowest `group.consumer.heartbeat.interval.ms` allowed"),
    row(Section::Groups, "group.consumer.max.heartbeat.interval.ms", Value("15000"), POSITIVE_I32, "the highest `group.consumer.heartbeat.interval.ms` allowed"),
    row(Section::Groups, "group.consumer.max.size", Value("2147483647"), POSITIVE_I32, "most members a consumer group may have (GROUP_MAX_SIZE_REACHED beyond it)"),
    row(Section::Groups, "group.consumer.assignors", Value("uniform,range"), Check::Text, "the server-side assignors consumer groups may use, comma-separated (`uniform`, `range`, or Kafka's class names of them); the first is the default, a member may ask for another with `group.remote.assignor`"),
    row(Section::Groups, "group.consumer.migration.policy", Value("bidirectional"), Check::Text, "the online conversion of a group between the classic and the consumer protocol (KIP-848): `upgrade` (a consumer-protocol member joining a classic group converts it), `downgrade` (the last consumer-protocol member leaving converts the group back to classic), `bidirectional` (both) or `disabled` (neither: a group changes protocol only once empty); case-insensitive"),
    Key { group: Some("share.session.timeout.ms"), ..row(Section::Groups, "group.share.session.timeout.ms", Value("45000"), POSITIVE_I32, "KIP-932 share groups: a member not heard from for this long is removed and the records it holds are released; within the min and max below") },
    row(Section::Groups, "group.share.min.session.timeout.ms", Value("45000"), POSITIVE_I32, "the lowest `group.share.session.timeout.ms` allowed"),
    row(Section::Groups, "group.share.max.session.timeout.ms", Value("60000"), POSITIVE_I32, "the highest `group.share.session.timeout.ms` allowed"),
    Key { group: Some("share.heartbeat.interval.ms"), ..row(Section::Groups, "group.share.heartbeat.interval.ms", Value("5000"), POSITIVE_I32, "how often share-group members are told to heartbeat; below the session timeout, within the min and max below") },
    row(Section::Groups, "group.share.min.heartbeat.interval.ms", Value("5000"), POSITIVE_I32, "the lowest `group.share.heartbeat.interval.ms` allowed"),
    row(Section::Groups, "group.share.max.heartbeat.interval.ms", Value("15000"), POSITIVE_I32, "the highest `group.share.heartbeat.interval.ms` allowed"),
    Key { group: Some("share.record.lock.duration.ms"), ..row(Section::Groups, "group.share.record.lock.duration.ms", Value("30000"), POSITIVE_I32, "how long a share consumer holds the records of one ShareFetch (their acquisition lock); unacknowledged when it expires, they are delivered again. Within the min and max below") },
    row(Section::Groups, "group.share.min.record.lock.duration.ms", Value("15000"), POSITIVE_I32, "the lowest `group.share.record.lock.duration.ms` allowed"),
    row(Section::Groups, "group.share.max.record.lock.duration.ms", Value("60000"), POSITIVE_I32, "the highest `group.share.record.lock.duration.ms` allowed"),
    row(Section::Groups, "group.share.delivery.count.limit", Value("5"), int(2, 10), "how many times a share group delivers a record; one released or whose lock expires at this count is archived, never delivered again"),
    row(Section::Groups, "group.share.partition.max.record.locks", Value("2000"), int(100, 10000), "most records of one share partition in flight (acquired, or waiting to be delivered again) at once; acquisition waits beyond it"),
    row(Section::Groups, "group.share.max.size", Value("200"), int(1, 1000), "most members a share group may have (GROUP_MAX_SIZE_REACHED beyond it)"),
    Key { group: Some("share.auto.offset.reset"), ..row(Section::Groups, "share.auto.offset.reset", Value("latest"), Check::Text, "where a share group starts reading a partition it has never read: `latest` (the log end) or `earliest` (the log start). A group's own `share.auto.offset.reset` (a group config) wins over it") },
    row(Section::Groups, "offset.metadata.max.bytes", Value("4096"), POSITIVE_I32, "the largest metadata string of a committed offset (OFFSET_METADATA_TOO_LARGE beyond it)"),
    row(Section::Groups, "offsets.retention.minutes", Value("10080"), POSITIVE, "committed offsets of a group without members are dropped this long after it became empty (or after the commit, whichever is later)"),
    row(Section::Groups, "offsets.retention.check.interval.ms", Value("600000"), POSITIVE, "how often expired offsets are looked for"),
    row(Section::Groups, "offsets.topic.num.partitions", Value("50"), POSITIVE_I32, "partitions of `__consumer_offsets`, created by the first FindCoordinator for a group; fixed once it exists"),
    row(Section::Groups, "offsets.topic.replication.factor", Value("3"), POSITIVE_I16, "replication factor of `__consumer_offsets`, capped at the cluster size (see Replication below)"),
    row(Section::Groups, "offsets.topic.segment.bytes", Value("104857600"), POSITIVE, "segment size of `__consumer_offsets` (small segments let the cleaner compact sooner)"),
    row(Section::Groups, "offsets.commit.timeout.ms", Value("5000"), POSITIVE, "how long an OffsetCommit, or a SyncGroup that stores a group's assignment, waits for the offsets partition's in-sync replicas to have the record; past it the client gets COORDINATOR_NOT_AVAILABLE and retries"),
    row(Section::Transactions, "transaction.state.log.num.partitions", Value("50"), POSITIVE_I32, "partitions of `__transaction_state`, created on the first transactional FindCoordinator; fixed once it exists"),
    row(Section::Transactions, "transaction.state.log.replication.factor", Value("3"), POSITIVE_I16, "replication factor of `__transaction_state`, capped at the cluster size as `offsets.topic.replication.factor` is"),
    row(Section::Transactions, "transaction.state.log.min.isr", Value("2"), POSITIVE_I32, "`min.insync.replicas` of `__transaction_state`, capped at its replication factor (so a single node works)"),
    row(Section::Transactions, "transaction.state.log.segment.bytes", Value("104857600"), POSITIVE, "segment size of `__transaction_state`"),
    row(Section::Transactions, "transaction.max.timeout.ms", Value("900000"), POSITIVE_I32, "the longest `transaction.timeout.ms` a producer may ask for (INVALID_TRANSACTION_TIMEOUT above it)"),
    row(Section::Transactions, "transactional.id.expiration.ms", Value("604800000"), POSITIVE_I32, "a transactional id with no transaction for this long is forgotten (its producer id and epoch with it)"),
    row(Section::Transactions, "transaction.abort.timed.out.transaction.cleanup.interval.ms", Value("10000"), POSITIVE_I32, "how often the coordinator looks for transactions open longer than their timeout, and aborts them"),
    row(Section::Transactions, "transaction.remove.expired.transaction.cleanup.interval.ms", Value("3600000"), POSITIVE_I32, "how often expired transactional ids are looked for"),
    row(Section::Transactions, "producer.id.expiration.ms", Value("86400000"), POSITIVE_I32, "a partition forgets an idempotent producer's sequence state this long after its last write, unless it has an open transaction there"),
    row(Section::Transactions, "producer.id.expiration.check.interval.ms", Value("600000"), POSITIVE_I32, "how often partitions look for expired producers"),
    row(Section::Transactions, "transaction.partition.verification.enable", Value("true"), Check::Bool, "KIP-890 part 1: before a partition leader (or the group coordinator, for TxnOffsetCommit) appends the first transactional batch of a producer's transaction, it asks the transaction coordinator whether the partition is in the transaction, so a late or duplicated batch cannot open a transaction that never ends. Transactions v2 clients (Produce v12, TxnOffsetCommit v5) always have the partition added by the coordinator, whatever this says"),
    row(Section::Cluster, "process.roles", Value("broker,controller"), Check::Text, "this node's roles. Strom runs every node as both (KRaft's combined mode); `broker` or `controller` alone is refused with an error for now"),
    row(Section::Cluster, "controller.quorum.voters", Unset("this node alone"), Check::Text, "the controller quorum, `id@host:port,...` (each voter's CONTROLLER listener). Unset, or naming only this node: a cluster of one, with no controller network at all. A duplicate id, or a list without this `node.id`, is a startup error"),
    row(Section::Cluster, "controller.listener.names", Value("CONTROLLER"), Check::Text, "which listener in `listeners` is the controllers' (for example `listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093`); it is never advertised to clients"),
    row(Section::Cluster, "broker.rack", Unset("none"), Check::Text, "this broker's rack; a new partition's replicas go to different racks where there are enough"),
    row(Section::Cluster, "broker.heartbeat.interval.ms", Value("2000"), POSITIVE, "how often a broker heartbeats to the controller voters (all of them: the active one acts on it, the others keep its clock for a failover); each heartbeat is given up after one interval"),
    row(Section::Cluster, "broker.session.timeout.ms", Value("9000"), POSITIVE, "the active controller fences a broker whose heartbeats stop this long; the partitions it led move to another in-sync replica"),
    Key {
        topic: Some("min.insync.replicas"),
        ..row(Section::Replication, "min.insync.replicas", Value("1"), POSITIVE_I32, "an acks=all produce is refused with NOT_ENOUGH_REPLICAS while fewer replicas than this are in sync, and answered NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below it while the batch was being replicated")
    },
    Key {
        topic: Some("unclean.leader.election.enable"),
        ..row(Section::Replication, "unclean.leader.election.enable", Value("false"), Check::Bool, "when no in-sync replica of a partition is left alive, let a live out-of-sync replica lead; what only the lost ISR had is gone. Off, the partition waits (offline) for its last in-sync replica to return")
    },
    row(Section::Replication, "auto.leader.rebalance.enable", Value("true"), Check::Bool, "after a broker returns and catches up, the active controller moves leadership back to each partition's preferred (first) replica. Kafka does so only past `leader.imbalance.per.broker.percentage`; Strom moves every such partition at each check (a leadership move is cheap, and a skew below the threshold never heals in Kafka)"),
    row(Section::Replication, "leader.imbalance.check.interval.seconds", Value("300"), POSITIVE, "how often that check runs"),
    row(Section::Replication, "replica.lag.time.max.ms", Value("30000"), POSITIVE, "a follower that has not caught up with the leader's log end for this long leaves the ISR; it is added back once it has everything below the high watermark"),
    Key {
        dynamic: true,
        ..row(Section::Replication, "leader.replication.throttled.rate", Value("9223372036854775807"), int(0, i64::MAX), "KIP-73: the most bytes per second this broker, as a leader, sends to followers of the replicas its topics' `leader.replication.throttled.replicas` name, measured over `replication.quota.window.num` windows; once over it those partitions are answered with no records until the rate falls back. In-sync followers are never held back")
    },
    Key {
        dynamic: true,
        ..row(Section::Replication, "follower.replication.throttled.rate", Value("9223372036854775807"), int(0, i64::MAX), "KIP-73: the most bytes per second this broker, as a follower, fetches for the replicas its topics' `follower.replication.throttled.replicas` name; once over it those partitions are left out of its fetches until the rate falls back, unless the replica is caught up with the leader's high watermark")
    },
    row(Section::Replication, "replication.quota.window.num", Value("11"), int(1, i32::MAX as i64), "replication throttles: how many samples the replication byte rates are measured over"),
    row(Section::Replication, "replication.quota.window.size.seconds", Value("1"), int(1, i32::MAX as i64), "replication throttles: the length of one sample"),
    topic_row(Section::Replication, "leader.replication.throttled.replicas", Value(""), Check::ThrottledReplicas, "topic only (no broker key): the replicas whose leader's sending counts against and is held to `leader.replication.throttled.rate`, as `partition:brokerId` pairs naming the leader's broker (`0:101,0:102`), or `*` for every replica of the topic. `strom reassign-partitions --throttle` sets it to the moving partitions' current replicas"),
    topic_row(Section::Replication, "follower.replication.throttled.replicas", Value(""), Check::ThrottledReplicas, "topic only (no broker key): the replicas whose fetching counts against and is held to `follower.replication.throttled.rate`, as `partition:brokerId` pairs naming the follower's broker, or `*`. `strom reassign-partitions --throttle` sets it to the replicas a reassignment adds"),
    row(Section::Replication, "replica.selector.class", Unset("null: consumers fetch from the leader"), Check::Text, "KIP-392: `org.apache.kafka.common.replica.RackAwareReplicaSelector` sends a consumer whose `client.rack` has an in-sync follower (and not the leader) to that follower, which serves it up to its high watermark; `org.apache.kafka.common.replica.LeaderSelector` keeps every consumer on the leader. Other classes cannot be loaded (Strom is not a JVM) and are a startup error"),
    // TLS (`SSL` listeners). Each may be given per listener as `listener.name.<listener>.<key>`
    // (the listener name in lower case, as Kafka), which wins over the bare key.
    row(Section::Security, "ssl.keystore.type", Value("PEM"), Check::Text, "`PEM` (KIP-651: a file with the private key and its certificate chain, or both inline) or `PKCS12` (a password-protected file, as `keytool` of JDK 11.0.12+ and `openssl pkcs12 -export` of OpenSSL 3 write it: PBES2 with AES, HMAC-SHA-2; stores in the legacy 3DES/RC2 encryption are refused with the command that re-exports them). Kafka's default is `JKS`, a Java format Strom does not read: it stops the start"),
    row(Section::Security, "ssl.keystore.location", Unset("none"), Check::Text, "the keystore file: with `PEM`, this broker's private key (PKCS#8, PKCS#1 or SEC1; an encrypted PKCS#8 key with `ssl.key.password`) and its certificate chain, leaf first; with `PKCS12`, a store holding exactly one private key and its chain"),
    row(Section::Security, "ssl.keystore.password", Unset("none"), Check::Text, "the password of a `PKCS12` keystore (required with it; refused with `PEM`, which has none); never logged, shown as sensitive by DescribeConfigs"),
    row(Section::Security, "ssl.keystore.certificate.chain", Unset("none"), Check::Text, "the certificate chain in PEM, inline (instead of `ssl.keystore.location`)"),
    row(Section::Security, "ssl.keystore.key", Unset("none"), Check::Text, "the private key in PEM, inline (with `ssl.keystore.certificate.chain`)"),
    row(Section::Security, "ssl.key.password", Unset("none: the key is not encrypted"), Check::Text, "the password of the keystore's private key when it is an encrypted PKCS#8 key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with PBKDF2 or scrypt and AES-CBC, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it); never logged, shown as sensitive by DescribeConfigs"),
    row(Section::Security, "ssl.truststore.type", Value("PEM"), Check::Text, "`PEM` or `PKCS12`; as `ssl.keystore.type`"),
    row(Section::Security, "ssl.truststore.location", Unset("none"), Check::Text, "a file of the CA certificates that client certificates (and, between brokers, peers' certificates) must chain to: PEM, or a `PKCS12` store whose every certificate is trusted"),
    row(Section::Security, "ssl.truststore.password", Unset("none"), Check::Text, "the password of a `PKCS12` truststore (required with it: its integrity is always checked, where Kafka skips the check without one); never logged, shown as sensitive"),
    row(Section::Security, "ssl.truststore.certificates", Unset("none"), Check::Text, "those CA certificates in PEM, inline"),
    row(Section::Security, "ssl.client.auth", Value("none"), Check::Text, "`required`: a client must present a certificate the truststore trusts (else the handshake fails); `requested`: it may, and one it presents must be trusted; `none`: none is asked for"),
    row(Section::Security, "ssl.enabled.protocols", Value("TLSv1.2,TLSv1.3"), Check::Text, "the TLS versions a client may negotiate (`TLSv1.2`, `TLSv1.3`; older ones are not offered at all)"),
    row(Section::Security, "ssl.protocol", Value("TLSv1.3"), Check::Text, "accepted for Kafka's sake (`TLSv1.2`, `TLSv1.3`, `TLS`); `ssl.enabled.protocols` decides"),
    row(Section::Security, "ssl.cipher.suites", Unset("every suite rustls offers for the enabled versions"), Check::Text, "restrict the cipher suites, by IANA name as Java spells them (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`, ...), in the broker's order of preference; a name rustls does not offer stops the start. Unset, AES-128-GCM is preferred (clients list AES-256-GCM first, which costs more CPU per byte)"),
    row(Section::Security, "connections.max.reauth.ms", Value("0"), int(0, i64::MAX), "KIP-368: on SASL listeners, an authenticated session lasts this long (told to the client in SaslAuthenticate); the client must authenticate again, as the same principal with the same mechanism, on the same connection, or the connection is closed at its next request. 0: a session lasts as long as its connection"),
    row(Section::Security, "ssl.principal.mapping.rules", Value("DEFAULT"), Check::Text, "how a client certificate's distinguished name (RFC 2253, most specific first: `CN=alice,OU=eng,O=Example`) becomes the principal `User:<name>` on an SSL listener with client authentication: `DEFAULT` (the whole DN) and `RULE:<regex>/<replacement>/[L|U]` rules, comma-separated, the first whose regex matches the whole DN deciding, as Kafka's. A certificate no rule matches is refused"),
    row(Section::Security, "authorizer.class.name", Unset("empty: no authorizer, every request is allowed and the ACL APIs answer SECURITY_DISABLED"), Check::Text, "`org.apache.kafka.metadata.authorizer.StandardAuthorizer` turns on ACLs with Kafka's semantics (stored in the metadata log). Other classes cannot be loaded (Strom is not a JVM) and stop the start"),
    row(Section::Security, "super.users", Unset("none"), Check::Text, "principals allowed every operation whatever the ACLs say, separated by `;` (`User:admin;User:ops`)"),
    row(Section::Security, "allow.everyone.if.no.acl.found", Value("false"), Check::Bool, "with an authorizer: allow a request on a resource that no ACL names at all. Off (Kafka's default), such requests are denied"),
    row(Section::Security, "sasl.enabled.mechanisms", Value("GSSAPI"), Check::Text, "the SASL mechanisms a SASL_PLAINTEXT or SASL_SSL listener offers. Strom serves `PLAIN` (users from `listener.name.<listener>.plain.sasl.jaas.config`), `SCRAM-SHA-256` and `SCRAM-SHA-512` (users in the metadata log: AlterUserScramCredentials, `strom configs --entity-type users`), `OAUTHBEARER` (JWTs checked against `sasl.oauthbearer.jwks.endpoint.url`); Kafka's default, GSSAPI (Kerberos), and mechanisms not served yet stop the start"),
    row(Section::Security, "sasl.oauthbearer.jwks.endpoint.url", Unset("none: a listener offering OAUTHBEARER without it stops the start"), Check::Text, "OAUTHBEARER: the JSON Web Key Set (a `file:` URL, or `http://` / `https://`, verified against the system's CA certificates or `SSL_CERT_FILE`) whose keys sign the JWTs clients present (RS256/384/512, PS256/384/512, ES256/384, EdDSA). Fetched at startup (failing the start if it cannot be) and every `sasl.oauthbearer.jwks.endpoint.refresh.ms`. Unsigned tokens are never accepted"),
    row(Section::Security, "sasl.oauthbearer.jwks.endpoint.refresh.ms", Value("3600000"), POSITIVE, "OAUTHBEARER: refetch the JWKS this often; a token signed by a key id not in it triggers a refetch too (at most every 10 s)"),
    row(Section::Security, "sasl.oauthbearer.expected.audience", Unset("not checked"), Check::Text, "OAUTHBEARER: comma-separated audiences; the token's `aud` must name one"),
    row(Section::Security, "sasl.oauthbearer.expected.issuer", Unset("not checked"), Check::Text, "OAUTHBEARER: the token's `iss` must be exactly this"),
    row(Section::Security, "sasl.oauthbearer.sub.claim.name", Value("sub"), Check::Text, "OAUTHBEARER: the claim whose value names the principal (`User:<value>`)"),
    row(Section::Security, "sasl.oauthbearer.clock.skew.seconds", Value("30"), int(0, i64::MAX), "OAUTHBEARER: tolerance for the token's `exp`, `nbf` and `iat`"),
    row(Section::Security, "ssl.endpoint.identification.algorithm", Value("https"), Check::Text, "when this broker connects to another over TLS (replication, transaction markers, the controller quorum): `https` checks that the peer's certificate names the host it was reached at (a `subjectAltName` DNS name or IP address); empty: the certificate must chain to the truststore, whatever host it names"),
    row(Section::Security, "inter.broker.listener.name", Unset("the listener named after `security.inter.broker.protocol`"), Check::Text, "the listener brokers reach each other on (replication, transaction markers), by name; it must be an advertised listener of every broker. Give this or `security.inter.broker.protocol`, not both. When neither is set and no listener is named PLAINTEXT, Strom takes the first advertised listener (Kafka would refuse to start)"),
    row(Section::Security, "security.inter.broker.protocol", Value("PLAINTEXT"), Check::Text, "the inter-broker listener by its protocol: the listener named `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`. Over TLS this broker verifies its peers with the listener's `ssl.truststore.*` and presents its `ssl.keystore.*` when they ask for a client certificate"),
    row(Section::Security, "sasl.mechanism.inter.broker.protocol", Value("GSSAPI"), Check::Text, "the SASL mechanism brokers log in to each other with on a SASL inter-broker listener: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (Kafka's default, GSSAPI, stops the start). The user and password are the `username` and `password` options of `listener.name.<listener>.<mechanism>.sasl.jaas.config`, as in Kafka; that principal needs CLUSTER_ACTION on the cluster (or `super.users`) under an authorizer"),
    row(Section::Security, "sasl.mechanism.controller.protocol", Value("GSSAPI"), Check::Text, "the SASL mechanism controllers log in to each other with on a SASL_PLAINTEXT or SASL_SSL controller listener: `PLAIN` only (as Kafka: SCRAM credentials live in the metadata log the controllers replicate), with the `username` and `password` of `listener.name.<controller listener>.plain.sasl.jaas.config`, whose `user_<name>` entries are the logins it accepts. An SSL controller listener needs `ssl.client.auth=required` instead"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystores_are_one_brokers_own_and_other_dynamic_keys_the_clusters() {
        for k in ["ssl.keystore.location", "listener.name.internal.ssl.keystore.password", "ssl.truststore.certificates"] {
            assert_eq!(dynamic_key(k), Some(DynamicScope::PerBroker), "{k}");
        }
        assert_eq!(dynamic_key("log.dir.min.free.bytes"), Some(DynamicScope::Cluster));
        for k in ["ssl.client.auth", "listeners", "log.dirs", "listener.name.x.log.dir.min.free.bytes"] {
            assert_eq!(dynamic_key(k), None, "{k}");
        }
    }

    #[test]
    fn names_are_unique_and_defaults_pass_their_own_checks() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(KEYS[..i].iter().all(|o| o.name != k.name && o.topic.is_none_or(|t| Some(t) != k.topic)), "{} twice", k.name);
            if let Some(v) = k.default_value() {
                k.check_value(k.name, v).unwrap_or_else(|e| panic!("default of {}: {e}", k.name));
            }
            if let DefaultValue::From(other) = k.default {
                assert!(key(other).is_some(), "{} derives from unknown {other}", k.name);
            }
        }
    }

    /// message.format.version takes what Kafka 3.9's MetadataVersion.fromVersionString takes.
    #[test]
    fn message_format_versions_are_kafkas() {
        let k = key("log.message.format.version").unwrap();
        for ok in ["0.8.0", "0.9.0", "0.10.0", "0.10.0-IV1", "0.10.1", "0.10.2.1", "0.11.0", "1.0", "2.0-IV1", "2.8", "2.8.1", "3.0-IV1", "3.9", "3.9.0", "4.0-IV0"] {
            assert!(k.check_value("message.format.version", ok).is_ok(), "{ok}");
        }
        for bad in ["", "0.10", "0.7.0", "1.2", "2.9", "4.0", "3.9-IV1", "banana", "0.10.0-IV9"] {
            let e = k.check_value("message.format.version", bad).unwrap_err();
            assert!(e.to_string().contains("not a valid version"), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_refuse_what_kafka_refuses() {
        let k = key("log.retention.ms").unwrap();
        assert!(k.check_value("retention.ms", "-1").is_ok());
        let e = k.check_value("retention.ms", "-2").unwrap_err();
        assert!(e.to_string().contains("retention.ms") && e.to_string().contains("at least -1"), "{e}");
        assert!(key("message.max.bytes").unwrap().check_value("x", "4294967296").is_err());
        assert!(key("log.cleanup.policy").unwrap().check_value("x", "compact, delete").is_ok());
        assert!(key("log.cleanup.policy").unwrap().check_value("x", "").is_err());
        assert!(key("log.cleaner.min.cleanable.ratio").unwrap().check_value("x", "1.5").is_err());
        assert_eq!(key("broker.id").unwrap().name, "node.id");
        assert_eq!(by_topic_key("segment.ms").unwrap().name, "log.roll.ms");
    }

    /// A topic-only key is a topic config and nothing else: the broker lookup never finds it.
    #[test]
    fn topic_only_keys_are_topic_configs_only() {
        let k = by_topic_key("leader.replication.throttled.replicas").unwrap();
        assert!(k.topic_only && k.topic == Some(k.name));
        assert!(key("leader.replication.throttled.replicas").is_none());
        assert!(key("leader.replication.throttled.rate").is_some_and(|k| k.dynamic && !k.topic_only));
        for ok in ["", "*", "0:1", "0:1, 1:2 ,2:3", " * ", "0:1,"] {
            assert!(k.check_value(k.name, ok).is_ok(), "{ok:?}");
        }
        for bad in ["0", "a:1", "*,0:1", "0:1:2", "-1:2", ":"] {
            assert!(k.check_value(k.name, bad).is_err(), "{bad:?}");
        }
    }
}
