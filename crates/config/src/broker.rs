//! The broker's own settings, resolved from properties through the key table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strom_coordinator::consumer_group::{Assignor, ConsumerGroupConfig, MigrationPolicy};
use strom_coordinator::share_group::ShareGroupConfig;
use strom_coordinator::group::GroupConfig;

use crate::cluster::{cluster_settings, ClusterSettings};
use crate::keys::{key, Key, IGNORED_KAFKA_KEYS};
use crate::resolve::{invalid, Resolver};
use crate::security::{self, SecurityProtocol};
use crate::topic::TopicSettings;
use crate::ConfigError;

#[derive(Clone, Debug)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// From `listener.security.protocol.map`; only served protocols pass `from_props`.
    pub security_protocol: SecurityProtocol,
    /// Set exactly when the protocol uses TLS (for `listeners`; advertised ones have none).
    pub tls: Option<security::TlsSettings>,
    /// Set exactly when the protocol uses SASL (likewise).
    pub sasl: Option<security::SaslSettings>,
}

/// `http.listeners` and the metrics it serves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Empty: no HTTP listener.
    pub listeners: Vec<HttpListener>,
    /// `metrics.partition.series.max`.
    pub partition_series_max: usize,
}

/// One `http://host:port` of `http.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    pub host: String,
    pub port: u16,
}

impl HttpListener {
    /// `host:port`, bracketing an IPv6 host.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
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
    /// What a topic gets for each topic-level key it does not set (the broker's log defaults).
    pub topic_defaults: TopicSettings,
    pub log_retention_check_interval_ms: u64,
    /// `log.dir.min.free.bytes` as configured at startup (-1: automatic); the image's dynamic
    /// value wins at run time.
    pub log_dir_min_free_bytes: i64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub socket_request_max_bytes: usize,
    /// The most partitions one DescribeTopicPartitions response lists (`max.request.partition.size.limit`).
    pub max_request_partition_size_limit: i32,
    /// The HTTP listener (`/metrics`, `/health`, `/ready`); none when `http.listeners` is empty.
    pub http: HttpSettings,
    pub groups: GroupSettings,
    pub transactions: TxnSettings,
    pub cluster: ClusterSettings,
    /// The listener brokers reach each other on, and how this one connects to it.
    pub inter_broker: security::InterBroker,
    /// How this node connects to the other controllers when the controller listener is SSL.
    pub controller_tls: Option<security::ClientTls>,
    /// This node's login to the other controllers when the controller listener uses SASL.
    pub controller_sasl: Option<security::SaslLogin>,
    pub replica_lag_time_max_ms: i64,
    /// Which replica a consumer should fetch from (KIP-392's `replica.selector.class`).
    pub replica_selector: ReplicaSelector,
    /// `None` when auto.leader.rebalance.enable is false.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// Client quotas' measurement: `quota.window.num` samples of `quota.window.size.seconds`.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    /// KIP-73's replication throttles (`leader/follower.replication.throttled.rate`).
    pub replication_throttle: ReplicationThrottle,
    /// `max.connections`, `max.connections.per.ip` and its overrides.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, usize)>,
    /// `authorizer.class.name` and its settings; `None`: every request is allowed.
    pub authorizer: Option<security::AuthorizerSettings>,
    /// Known-but-ignored keys that were set, for the one-time log line.
    pub ignored: Vec<String>,
    /// SCRAM credentials to write when this node creates the cluster's metadata log (not a
    /// key: set by `strom server --add-scram`; empty from `from_props`).
    pub bootstrap_scram: Vec<security::BootstrapScram>,
    /// The properties this config was built from, so dynamic broker configs and topic overrides
    /// can be layered on top.
    pub props: BTreeMap<String, String>,
}

/// KIP-392's `replica.selector.class`: Kafka's two built-in selectors, by their class names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// Unset, or `LeaderSelector`: the leader serves every consumer (preferred_read_replica is
    /// never set).
    Leader,
    /// `RackAwareReplicaSelector`: a consumer with `client.rack` is sent to an in-sync replica in
    /// its rack when the leader is not there.
    RackAware,
}

impl ReplicaSelector {
    const RACK_AWARE: &'static str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
    const LEADER: &'static str = "org.apache.kafka.common.replica.LeaderSelector";

    fn parse(value: Option<&str>) -> Result<ReplicaSelector, ConfigError> {
        match value.map(str::trim).unwrap_or("") {
            "" | "null" | Self::LEADER => Ok(ReplicaSelector::Leader),
            Self::RACK_AWARE => Ok(ReplicaSelector::RackAware),
            other => Err(invalid(
                "replica.selector.class",
                other,
                format!("Strom has Kafka's built-in selectors only: {} or {}", Self::RACK_AWARE, Self::LEADER),
            )),
        }
    }
}

/// The group coordinator's settings.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub coordinator: GroupConfig,
    /// KIP-848 consumer groups (`group.consumer.*`).
    pub consumer: ConsumerGroupConfig,
    /// KIP-932 share groups (`group.share.*`, `share.auto.offset.reset`).
    pub share: ShareGroupConfig,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: u64,
    pub offsets_retention_check_interval_ms: u64,
    pub offsets_commit_timeout_ms: u64,
}

/// KIP-73: the byte rates replication of throttled replicas is held to, and how they are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationThrottle {
    pub leader_rate: u64,
    pub follower_rate: u64,
    pub window_num: usize,
    pub window_size_seconds: u64,
}

/// The transaction coordinator's and the partitions' transaction settings (Kafka's names).
#[derive(Clone, Debug)]
pub struct TxnSettings {
    pub state_log_num_partitions: i32,
    pub state_log_replication_factor: i16,
    pub state_log_min_isr: i32,
    pub state_log_segment_bytes: u64,
    pub max_timeout_ms: i32,
    pub transactional_id_expiration_ms: i64,
    pub abort_timed_out_interval_ms: u64,
    pub remove_expired_interval_ms: u64,
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    pub partition_verification: bool,
}

/// The value `props` sets for a key, under its name or its alias.
pub(crate) fn lookup<'a>(props: &'a BTreeMap<String, String>, k: &Key) -> Option<&'a str> {
    props.get(k.name).or_else(|| k.alias.and_then(|a| props.get(a))).map(String::as_str)
}

impl BrokerConfig {
    /// Builds the config from an optional properties file and `key=value` overrides.
    pub fn load(file: Option<&std::path::Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let f = std::fs::File::open(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
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
        for name in props.keys() {
            if key(name).is_some() || security::per_listener_security_key(name).is_some() || security::is_served_jaas_key(name) || security::is_oauth_handler_key(name) {
                continue;
            }
            // Before the ignored families below: `listener.name.<l>.ssl.*` is security, and a
            // security setting that is silently dropped is a hole the operator cannot see.
            if security::is_security_key(name) {
                if props.get(name).is_some_and(|v| security::asks_for_nothing(name, v)) {
                    ignored.push(name.clone());
                    continue;
                }
                return Err(ConfigError::SecurityNotSupported(name.clone()));
            }
            if IGNORED_KAFKA_KEYS.contains(&name.as_str()) || name.starts_with("listener.name.") {
                ignored.push(name.clone());
                continue;
            }
            return Err(ConfigError::UnknownKey(name.clone()));
        }
        let get = |k: &Key| lookup(props, k);
        let r = Resolver::new(&get);
        let node_id = r.int("node.id")?;
        let listeners_value = r.text("listeners")?.unwrap_or_default();
        let controller_value = r.text("controller.listener.names")?.unwrap_or_default();
        let controller_names: Vec<String> =
            controller_value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_uppercase).collect();
        let controller_names: Vec<&str> = controller_names.iter().map(String::as_str).collect();
        let protocols = {
            let names: Vec<String> = parse_listeners("listeners", listeners_value, None)?.into_iter().map(|l| l.name).collect();
            let explicit = props.contains_key("listener.security.protocol.map");
            let map = r.text("listener.security.protocol.map")?.unwrap_or_default();
            security::protocol_map(map, explicit, &names, &controller_names)?
        };
        let mut all_listeners = parse_listeners("listeners", listeners_value, Some(&protocols))?;
        for l in &mut all_listeners {
            if l.security_protocol.uses_tls() {
                l.tls = Some(security::tls_settings(props, &l.name)?);
            }
            if l.security_protocol.uses_sasl() {
                l.sasl = Some(security::sasl_settings(props, &l.name)?);
            }
        }
        let (controller_listeners, listeners): (Vec<Listener>, Vec<Listener>) =
            all_listeners.into_iter().partition(|l| controller_names.contains(&l.name.as_str()));
        if listeners.is_empty() {
            return Err(invalid("listeners", listeners_value, "no client listener: every listener is named in controller.listener.names".into()));
        }
        let cluster = cluster_settings(&r, node_id, controller_listeners.into_iter().next())?;
        let (controller_tls, controller_sasl) = match cluster.controller_listener.as_ref() {
            None => (None, None),
            Some(c) => controller_security(props, c)?,
        };
        let advertised_listeners = match r.text("advertised.listeners")? {
            Some(v) => {
                let mut l = parse_listeners("advertised.listeners", v, Some(&protocols))?;
                l.retain(|l| !controller_names.contains(&l.name.as_str()));
                if let Some(bad) = l.iter().find(|l| is_meta_address(&l.host)) {
                    return Err(invalid("advertised.listeners", v, format!("{} is not an address a client can connect to", bad.host)));
                }
                l
            }
            // As Kafka: a listener bound to every interface is advertised under the host name.
            None => listeners
                .iter()
                .map(|l| Listener { host: if is_meta_address(&l.host) { host_name() } else { l.host.clone() }, ..l.clone() })
                .collect(),
        };
        let inter_broker = security::inter_broker(props, &protocols, &listeners, &advertised_listeners, !cluster.is_single_node())?;
        let log_dir_key = if props.contains_key("log.dirs") || !props.contains_key("log.dir") { "log.dirs" } else { "log.dir" };
        let log_dir = first_dir(log_dir_key, r.text("log.dirs")?.unwrap_or_default())?;
        Ok(BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            log_dir,
            num_partitions: r.int("num.partitions")?,
            default_replication_factor: r.int("default.replication.factor")?,
            auto_create_topics: r.bool("auto.create.topics.enable")?,
            topic_defaults: TopicSettings::resolve(&r)?,
            log_retention_check_interval_ms: r.int("log.retention.check.interval.ms")?,
            log_dir_min_free_bytes: r.int("log.dir.min.free.bytes")?,
            log_cleaner_enable: r.bool("log.cleaner.enable")?,
            log_cleaner_backoff_ms: r.int("log.cleaner.backoff.ms")?,
            socket_request_max_bytes: r.int("socket.request.max.bytes")?,
            max_request_partition_size_limit: r.int("max.request.partition.size.limit")?,
            http: HttpSettings {
                listeners: parse_http_listeners("http.listeners", r.text("http.listeners")?.unwrap_or_default())?,
                partition_series_max: r.int("metrics.partition.series.max")?,
            },
            groups: group_settings(&r)?,
            transactions: TxnSettings {
                state_log_num_partitions: r.int("transaction.state.log.num.partitions")?,
                state_log_replication_factor: r.int("transaction.state.log.replication.factor")?,
                state_log_min_isr: r.int("transaction.state.log.min.isr")?,
                state_log_segment_bytes: r.int("transaction.state.log.segment.bytes")?,
                max_timeout_ms: r.int("transaction.max.timeout.ms")?,
                transactional_id_expiration_ms: r.int("transactional.id.expiration.ms")?,
                abort_timed_out_interval_ms: r.int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
                remove_expired_interval_ms: r.int("transaction.remove.expired.transaction.cleanup.interval.ms")?,
                producer_id_expiration_ms: r.int("producer.id.expiration.ms")?,
                producer_id_expiration_check_interval_ms: r.int("producer.id.expiration.check.interval.ms")?,
                partition_verification: r.bool("transaction.partition.verification.enable")?,
            },
            cluster,
            inter_broker,
            controller_tls,
            controller_sasl,
            replica_lag_time_max_ms: r.int("replica.lag.time.max.ms")?,
            replica_selector: ReplicaSelector::parse(r.text("replica.selector.class")?)?,
            leader_imbalance_check_interval_ms: {
                let secs: u64 = r.int("leader.imbalance.check.interval.seconds")?;
                r.bool("auto.leader.rebalance.enable")?.then_some(secs * 1000)
            },
            authorizer: security::authorizer_settings(&r)?,
            quota_window_num: r.int("quota.window.num")?,
            quota_window_size_seconds: r.int("quota.window.size.seconds")?,
            replication_throttle: ReplicationThrottle {
                leader_rate: r.int("leader.replication.throttled.rate")?,
                follower_rate: r.int("follower.replication.throttled.rate")?,
                window_num: r.int("replication.quota.window.num")?,
                window_size_seconds: r.int("replication.quota.window.size.seconds")?,
            },
            max_connections: r.int("max.connections")?,
            max_connections_per_ip: r.int("max.connections.per.ip")?,
            max_connections_per_ip_overrides: per_ip_overrides(&r)?,
            ignored,
            bootstrap_scram: Vec::new(),
            props: props.clone(),
        })
    }

    /// This config with dynamic broker configs (set through AlterConfigs) on top.
    /// The TLS settings of listener `name` that may change at run time (keystore and
    /// truststore keys, bare or per listener), as this config sets them: equal for two configs
    /// exactly when the listener's stores are the same.
    pub fn reconfigurable_tls(&self, name: &str) -> BTreeMap<String, String> {
        let prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
        self.props
            .iter()
            .filter(|(k, _)| crate::dynamic_key(k) == Some(crate::DynamicScope::PerBroker) && (!k.starts_with("listener.name.") || k.starts_with(&prefix)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn with_dynamic(&self, dynamic: &BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        if dynamic.is_empty() {
            return Ok(self.clone());
        }
        let mut props = self.props.clone();
        props.extend(dynamic.iter().map(|(k, v)| (k.clone(), v.clone())));
        BrokerConfig::from_props(&props)
    }

    /// What a topic's configs mean for its partitions: this broker's defaults with the topic's
    /// overrides on top. Overrides were validated when they were set; should one fail here all
    /// the same, the topic gets the broker defaults.
    pub fn topic_settings(&self, overrides: &BTreeMap<String, String>) -> TopicSettings {
        self.resolve_topic(overrides).map(|(s, _)| s).unwrap_or_else(|_| self.topic_defaults.clone())
    }

    /// Each topic-level key with the value it takes for a topic with these overrides, and the
    /// broker key it falls back to, as DescribeConfigs lists them: by topic key name.
    pub fn topic_values(&self, overrides: &BTreeMap<String, String>) -> Vec<(&'static Key, String)> {
        let mut values = self.resolve_topic(overrides).map(|(_, v)| v).unwrap_or_default();
        values.sort_by_key(|(k, _)| k.topic);
        values
    }

    fn resolve_topic(&self, overrides: &BTreeMap<String, String>) -> Result<(TopicSettings, Vec<(&'static Key, String)>), ConfigError> {
        let get = |k: &Key| k.topic.and_then(|t| overrides.get(t)).map(String::as_str).or_else(|| lookup(&self.props, k));
        let r = Resolver::new(&get);
        let settings = TopicSettings::resolve(&r)?;
        Ok((settings, r.topic_values.into_inner()))
    }

    pub fn bootstrap_address(&self) -> String {
        self.advertised_listeners.first().map(|l| format!("{}:{}", l.host, l.port)).unwrap_or_default()
    }
}

/// How this node connects to the other controllers: the controller listener's protocol.
/// On SSL client certificates are required (Strom's controller protocol has no authorization of
/// its own, so the handshake is what keeps strangers out of the quorum); on SASL the login is
/// PLAIN, with `sasl.mechanism.controller.protocol` and the listener's JAAS `username` and
/// `password`, as Kafka (SCRAM credentials live in the metadata log the controllers replicate,
/// so Kafka serves no SCRAM between controllers either).
fn controller_security(props: &BTreeMap<String, String>, c: &Listener) -> Result<(Option<security::ClientTls>, Option<security::SaslLogin>), ConfigError> {
    let tls = match (&c.tls, c.security_protocol) {
        (Some(tls), SecurityProtocol::Ssl) if tls.client_auth != security::ClientAuth::Required => {
            let key = format!("listener.name.{}.ssl.client.auth", c.name.to_ascii_lowercase());
            return Err(invalid(
                &key,
                "",
                format!("the controller listener {} uses SSL: set {key}=required, so that only nodes with a certificate the truststore trusts join the quorum", c.name),
            ));
        }
        (Some(tls), _) => Some(security::client_tls(props, &c.name, tls)?),
        (None, _) => None,
    };
    let sasl = match &c.sasl {
        None => None,
        Some(served) => {
            let login = security::sasl_login(props, &c.name, "sasl.mechanism.controller.protocol", served)?;
            if login.mechanism != security::SaslMechanism::Plain {
                return Err(invalid(
                    "sasl.mechanism.controller.protocol",
                    login.mechanism.name(),
                    "controllers log in to each other with PLAIN only: SCRAM credentials live in the metadata log they replicate (as in Kafka)".into(),
                ));
            }
            Some(login)
        }
    };
    Ok((tls, sasl))
}

fn group_settings(r: &Resolver) -> Result<GroupSettings, ConfigError> {
    let min_session: i32 = r.int("group.min.session.timeout.ms")?;
    let max_session: i32 = r.int("group.max.session.timeout.ms")?;
    if max_session < min_session {
        return Err(invalid(
            "group.max.session.timeout.ms",
            &max_session.to_string(),
            format!("must be at least group.min.session.timeout.ms ({min_session})"),
        ));
    }
    let max_size: i32 = r.int("group.max.size")?;
    let retention_minutes: i64 = r.int("offsets.retention.minutes")?;
    Ok(GroupSettings {
        coordinator: GroupConfig {
            group_min_session_timeout_ms: min_session,
            group_max_session_timeout_ms: max_session,
            group_initial_rebalance_delay_ms: r.int("group.initial.rebalance.delay.ms")?,
            offsets_retention_ms: retention_minutes.saturating_mul(60_000),
            group_max_size: (max_size < i32::MAX).then_some(max_size as usize),
            offset_metadata_max_bytes: r.int("offset.metadata.max.bytes")?,
        },
        consumer: consumer_group_settings(r)?,
        share: share_group_settings(r)?,
        offsets_topic_num_partitions: r.int("offsets.topic.num.partitions")?,
        offsets_topic_replication_factor: r.int("offsets.topic.replication.factor")?,
        offsets_topic_segment_bytes: r.int("offsets.topic.segment.bytes")?,
        offsets_retention_check_interval_ms: r.int("offsets.retention.check.interval.ms")?,
        offsets_commit_timeout_ms: r.int("offsets.commit.timeout.ms")?,
    })
}

/// `group.consumer.*`: each value within its min and max (Kafka's checks), the heartbeat interval
/// below the session timeout, the assignors known.
fn consumer_group_settings(r: &Resolver) -> Result<ConsumerGroupConfig, ConfigError> {
    let within = |name: &str, min: &str, max: &str| -> Result<i32, ConfigError> {
        let (v, lo, hi): (i32, i32, i32) = (r.int(name)?, r.int(min)?, r.int(max)?);
        if lo > hi {
            return Err(invalid(max, &hi.to_string(), format!("must be at least {min} ({lo})")));
        }
        if v < lo || v > hi {
            return Err(invalid(name, &v.to_string(), format!("must be within {min} ({lo}) and {max} ({hi})")));
        }
        Ok(v)
    };
    let session = within("group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms")?;
    let heartbeat = within("group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms")?;
    if heartbeat >= session {
        return Err(invalid(
            "group.consumer.heartbeat.interval.ms",
            &heartbeat.to_string(),
            format!("must be below group.consumer.session.timeout.ms ({session})"),
        ));
    }
    let max_size: i32 = r.int("group.consumer.max.size")?;
    let names = r.text("group.consumer.assignors")?.unwrap_or_default();
    let mut assignors = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let assignor = match name {
            "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => Some(Assignor::Uniform),
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => Some(Assignor::Range),
            other => Assignor::from_name(other),
        }
        .ok_or_else(|| invalid("group.consumer.assignors", names, format!("unknown assignor {name}: Strom has uniform and range")))?;
        if !assignors.contains(&assignor) {
            assignors.push(assignor);
        }
    }
    if assignors.is_empty() {
        return Err(invalid("group.consumer.assignors", names, "at least one assignor is needed".into()));
    }
    let policy = r.text("group.consumer.migration.policy")?.unwrap_or_default();
    let migration_policy = match policy.to_ascii_lowercase().as_str() {
        "disabled" | "upgrade" | "downgrade" | "bidirectional" => MigrationPolicy::parse(&policy),
        _ => return Err(invalid("group.consumer.migration.policy", &policy, "must be one of disabled, upgrade, downgrade, bidirectional".into())),
    };
    Ok(ConsumerGroupConfig {
        session_timeout_ms: session,
        heartbeat_interval_ms: heartbeat,
        max_size: (max_size < i32::MAX).then_some(max_size as usize),
        assignors,
        migration_policy,
    })
}

/// Reads `name` within the keys `min` and `max` (Kafka's checks of its min/max pairs).
fn within(r: &Resolver, name: &str, min: &str, max: &str) -> Result<i32, ConfigError> {
    let (v, lo, hi): (i32, i32, i32) = (r.int(name)?, r.int(min)?, r.int(max)?);
    if lo > hi {
        return Err(invalid(max, &hi.to_string(), format!("must be at least {min} ({lo})")));
    }
    if v < lo || v > hi {
        return Err(invalid(name, &v.to_string(), format!("must be within {min} ({lo}) and {max} ({hi})")));
    }
    Ok(v)
}

/// `max.connections.per.ip.overrides`: `address:count,...`, as Kafka's, with IP addresses only
/// (an IPv6 address is split at its last colon). With `max.connections.per.ip=0` it must not be
/// empty (Kafka's check: otherwise no client could ever connect).
fn per_ip_overrides(r: &Resolver) -> Result<Vec<(std::net::IpAddr, usize)>, ConfigError> {
    const KEY: &str = "max.connections.per.ip.overrides";
    let v = r.text(KEY)?.unwrap_or("");
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.rsplit_once(':').and_then(|(host, n)| {
            let host = host.trim().trim_start_matches('[').trim_end_matches(']');
            Some((host.parse::<std::net::IpAddr>().ok()?, n.trim().parse::<usize>().ok().filter(|n| *n <= i32::MAX as usize)?))
        });
        match parsed {
            Some(o) => out.push(o),
            None => return Err(invalid(KEY, v, format!("`{item}` is not `address:count` (an IP address and a count)"))),
        }
    }
    let per_ip: usize = r.int("max.connections.per.ip")?;
    if per_ip == 0 && out.is_empty() {
        return Err(invalid("max.connections.per.ip", "0", format!("0 needs {KEY}, or no client could connect")));
    }
    Ok(out)
}

/// `group.share.*` and `share.auto.offset.reset`: Kafka's min/max checks, the heartbeat
/// interval below the session timeout.
fn share_group_settings(r: &Resolver) -> Result<ShareGroupConfig, ConfigError> {
    let session = within(r, "group.share.session.timeout.ms", "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms")?;
    let heartbeat = within(r, "group.share.heartbeat.interval.ms", "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms")?;
    if heartbeat >= session {
        return Err(invalid("group.share.heartbeat.interval.ms", &heartbeat.to_string(), format!("must be below group.share.session.timeout.ms ({session})")));
    }
    let lock = within(r, "group.share.record.lock.duration.ms", "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms")?;
    let reset = r.text("share.auto.offset.reset")?.unwrap_or("latest");
    let auto_offset_reset = crate::group::parse_reset(reset.trim()).ok_or_else(|| invalid("share.auto.offset.reset", reset.trim(), "must be latest or earliest".into()))?;
    let max_size: i32 = r.int("group.share.max.size")?;
    Ok(ShareGroupConfig {
        session_timeout_ms: session,
        heartbeat_interval_ms: heartbeat,
        record_lock_duration_ms: lock,
        delivery_count_limit: r.int("group.share.delivery.count.limit")?,
        partition_max_record_locks: r.int("group.share.partition.max.record.locks")?,
        max_size: Some(max_size.max(1) as usize),
        auto_offset_reset,
    })
}

fn first_dir(key: &str, v: &str) -> Result<PathBuf, ConfigError> {
    let dirs: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    match dirs.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        [] => Err(invalid(key, v, "no directory given".into())),
        _ => Err(invalid(key, v, "Strom takes one data directory for now".into())),
    }
}

/// `NAME://host:port,...`. With `protocols`, each listener gets its security protocol (a name
/// the map lacks is an error); without, every protocol reads PLAINTEXT (only the names are
/// wanted).
fn parse_listeners(key: &str, v: &str, protocols: Option<&BTreeMap<String, SecurityProtocol>>) -> Result<Vec<Listener>, ConfigError> {
    let bad = |reason: &str| invalid(key, v, reason.into());
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item.split_once("://").ok_or_else(|| bad("expected NAME://host:port"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("expected NAME://host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("port must be a number 0-65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let name = name.trim().to_ascii_uppercase();
        let security_protocol = match protocols {
            None => SecurityProtocol::Plaintext,
            Some(map) => {
                let p = *map.get(&name).ok_or_else(|| {
                    bad(&format!("no security protocol defined for listener {name} (add it to listener.security.protocol.map)"))
                })?;
                p
            }
        };
        out.push(Listener { name, host: host.to_string(), port, security_protocol, tls: None, sasl: None });
    }
    if out.is_empty() {
        return Err(bad("no listener given"));
    }
    Ok(out)
}

/// `http://host:port`, comma-separated; empty is none (the HTTP listener off).
fn parse_http_listeners(key: &str, v: &str) -> Result<Vec<HttpListener>, ConfigError> {
    let bad = |reason: &str| invalid(key, v, reason.into());
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let rest = item.strip_prefix("http://").ok_or_else(|| bad("expected http://host:port (https is not served yet)"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("expected http://host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("port must be a number 0-65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("expected http://host:port (name the interface, e.g. 127.0.0.1 or 0.0.0.0)"));
        }
        out.push(HttpListener { host: host.to_string(), port });
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
    use crate::topic::validate_topic_config;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn share_group_settings_are_checked_as_kafka() {
        let share = |kv: &[(&str, &str)]| BrokerConfig::from_props(&props(kv)).map(|c| c.groups.share);
        let d = share(&[]).unwrap();
        assert_eq!((d.record_lock_duration_ms, d.delivery_count_limit, d.auto_offset_reset), (30_000, 5, strom_coordinator::share_group::AutoOffsetReset::Latest));
        assert_eq!(share(&[("share.auto.offset.reset", "earliest")]).unwrap().auto_offset_reset, strom_coordinator::share_group::AutoOffsetReset::Earliest);
        assert!(share(&[("share.auto.offset.reset", "none")]).is_err());
        assert!(share(&[("group.share.record.lock.duration.ms", "1000")]).is_err(), "below its min");
        let short = [("group.share.min.record.lock.duration.ms", "1000"), ("group.share.record.lock.duration.ms", "1000")];
        assert_eq!(share(&short).unwrap().record_lock_duration_ms, 1000);
        assert!(share(&[("group.share.delivery.count.limit", "1")]).is_err());
    }

    #[test]
    fn connection_limits_are_read_as_kafka() {
        let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_ip), (i32::MAX as usize, i32::MAX as usize));
        assert!(c.max_connections_per_ip_overrides.is_empty());
        let c = BrokerConfig::from_props(&props(&[("max.connections.per.ip", "0"), ("max.connections.per.ip.overrides", "127.0.0.1:5, [::1]:7")])).unwrap();
        assert_eq!(c.max_connections_per_ip_overrides, vec![("127.0.0.1".parse().unwrap(), 5), ("::1".parse().unwrap(), 7)]);
        assert!(BrokerConfig::from_props(&props(&[("max.connections.per.ip", "0")])).is_err());
        for bad in ["127.0.0.1", "localhost:5", "127.0.0.1:x", "127.0.0.1:-1"] {
            assert!(BrokerConfig::from_props(&props(&[("max.connections.per.ip.overrides", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_match_kafka() {
        let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        assert_eq!(c.bootstrap_address(), "127.0.0.1:9092");
        assert_eq!(c.topic_defaults.log.retention_ms, 168 * 3_600_000);
        assert_eq!(c.topic_defaults.log.max_message_bytes, 1048588);
        assert_eq!(c.log_dir, PathBuf::from("./strom-data"));
    }

    #[test]
    fn http_listeners_default_to_loopback_9644_and_empty_turns_them_off() {
        let http = |v: Option<&str>| {
            let p = v.map(|v| props(&[("http.listeners", v)])).unwrap_or_default();
            BrokerConfig::from_props(&p).map(|c| c.http.listeners)
        };
        assert_eq!(http(None).unwrap(), vec![HttpListener { host: "127.0.0.1".into(), port: 9644 }]);
        assert_eq!(http(Some("")).unwrap(), vec![]);
        assert_eq!(
            http(Some("http://0.0.0.0:0, http://[::1]:80")).unwrap(),
            vec![HttpListener { host: "0.0.0.0".into(), port: 0 }, HttpListener { host: "::1".into(), port: 80 }]
        );
        assert_eq!(http(Some("http://[::1]:80")).unwrap()[0].address(), "[::1]:80");
        for bad in ["127.0.0.1:9644", "https://127.0.0.1:9644", "http://127.0.0.1", "http://:9644", "http://h:99999"] {
            let e = http(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("http.listeners"), "{bad}: {e}");
        }
        assert_eq!(BrokerConfig::from_props(&BTreeMap::new()).unwrap().http.partition_series_max, 1000);
    }

    #[test]
    fn replica_selector_takes_kafkas_built_in_classes_only() {
        let selector = |v: &str| BrokerConfig::from_props(&props(&[("replica.selector.class", v)])).map(|c| c.replica_selector);
        assert_eq!(BrokerConfig::from_props(&BTreeMap::new()).unwrap().replica_selector, ReplicaSelector::Leader);
        assert_eq!(selector("org.apache.kafka.common.replica.RackAwareReplicaSelector").unwrap(), ReplicaSelector::RackAware);
        assert_eq!(selector("org.apache.kafka.common.replica.LeaderSelector").unwrap(), ReplicaSelector::Leader);
        let e = selector("com.example.MySelector").unwrap_err();
        assert!(e.to_string().contains("replica.selector.class"), "{e}");
    }

    #[test]
    fn consumer_group_keys_are_checked_against_their_bounds() {
        let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap().groups.consumer;
        assert_eq!((c.session_timeout_ms, c.heartbeat_interval_ms, c.max_size), (45_000, 5_000, None));
        assert_eq!(c.assignors, vec![Assignor::Uniform, Assignor::Range]);
        let load = |kv: &[(&str, &str)]| BrokerConfig::from_props(&props(kv)).map(|c| c.groups.consumer);
        let e = load(&[("group.consumer.session.timeout.ms", "3000")]).unwrap_err();
        assert!(e.to_string().contains("group.consumer.min.session.timeout.ms"), "{e}");
        let e = load(&[("group.consumer.min.session.timeout.ms", "3000"), ("group.consumer.session.timeout.ms", "3000")]).unwrap_err();
        assert!(e.to_string().contains("below group.consumer.session.timeout.ms"), "the 5 s heartbeat is not below 3 s: {e}");
        let low = load(&[
            ("group.consumer.min.session.timeout.ms", "3000"),
            ("group.consumer.session.timeout.ms", "3000"),
            ("group.consumer.min.heartbeat.interval.ms", "500"),
            ("group.consumer.heartbeat.interval.ms", "1000"),
        ])
        .unwrap();
        assert_eq!((low.session_timeout_ms, low.heartbeat_interval_ms), (3000, 1000));
        let e = load(&[
            ("group.consumer.min.session.timeout.ms", "3000"),
            ("group.consumer.session.timeout.ms", "5000"),
            ("group.consumer.max.heartbeat.interval.ms", "15000"),
            ("group.consumer.heartbeat.interval.ms", "6000"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("below group.consumer.session.timeout.ms"), "{e}");
        let r = load(&[("group.consumer.assignors", "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform")]).unwrap();
        assert_eq!(r.assignors, vec![Assignor::Range, Assignor::Uniform]);
        assert!(load(&[("group.consumer.assignors", "sticky")]).is_err());
        assert_eq!(load(&[("group.consumer.max.size", "3")]).unwrap().max_size, Some(3));
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
        assert_eq!(c.topic_defaults.log.retention_ms, 120_000);
        let c = BrokerConfig::from_props(&props(&[("log.retention.ms", "7"), ("log.retention.minutes", "2")])).unwrap();
        assert_eq!(c.topic_defaults.log.retention_ms, 7);
        assert_eq!(BrokerConfig::from_props(&props(&[("log.retention.ms", "-1")])).unwrap().topic_defaults.log.retention_ms, -1);
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
    fn listeners_fail_closed() {
        // SASL without its mechanisms and users: refused, naming the key to set.
        for l in ["SASL_PLAINTEXT://127.0.0.1:9097", "sasl_ssl://127.0.0.1:9097"] {
            let e = BrokerConfig::from_props(&props(&[("listeners", l), ("ssl.keystore.location", "/k.pem")])).unwrap_err().to_string();
            assert!(e.contains("sasl.enabled.mechanisms") && e.contains("not served yet"), "{e}");
        }
        // SSL, by name or through the map, needs its keystore.
        for p in [props(&[("listeners", "SSL://127.0.0.1:9097")]), props(&[("listeners", "EXTERNAL://127.0.0.1:9097"), ("listener.security.protocol.map", "EXTERNAL:SSL")])] {
            let e = BrokerConfig::from_props(&p).unwrap_err().to_string();
            assert!(e.contains("ssl.keystore.location") && e.contains("needs a keystore"), "{e}");
        }
        let c = BrokerConfig::from_props(&props(&[("listeners", "EXTERNAL://127.0.0.1:9097"), ("listener.security.protocol.map", "EXTERNAL:SSL"), ("listener.name.external.ssl.keystore.location", "/k.pem")])).unwrap();
        assert_eq!(c.listeners[0].security_protocol, SecurityProtocol::Ssl);
        assert!(c.listeners[0].tls.is_some());
        let c = BrokerConfig::from_props(&props(&[("listeners", "external://127.0.0.1:9097"), ("listener.security.protocol.map", "EXTERNAL:PLAINTEXT")])).unwrap();
        assert_eq!((c.listeners[0].name.as_str(), c.listeners[0].security_protocol), ("EXTERNAL", SecurityProtocol::Plaintext));
        // A name the map does not know: Kafka's "no security protocol defined".
        let e = BrokerConfig::from_props(&props(&[("listeners", "EXTERNAL://127.0.0.1:9097")])).unwrap_err().to_string();
        assert!(e.contains("no security protocol defined for listener EXTERNAL"), "{e}");
        // The controller listener needs no map entry while nothing is secured.
        let c = BrokerConfig::from_props(&props(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")])).unwrap();
        assert_eq!(c.listeners.len(), 1);
    }

    fn cluster(listeners: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut p = props(&[
            ("listeners", listeners),
            ("controller.quorum.voters", "1@127.0.0.1:9094,2@127.0.0.1:9095"),
            ("ssl.keystore.location", "/k.pem"),
            // With SSL in use Kafka maps no controller name by default: it must be given.
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"),
        ]);
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    }

    #[test]
    fn the_inter_broker_listener_as_kafka_picks_it() {
        // Neither key: the listener named PLAINTEXT (Kafka's default), wherever it is listed.
        let c = BrokerConfig::from_props(&cluster("SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9094", &[])).unwrap();
        assert_eq!((c.inter_broker.listener.as_str(), c.inter_broker.protocol), ("PLAINTEXT", SecurityProtocol::Plaintext));
        assert!(c.inter_broker.tls.is_none() && c.inter_broker.sasl.is_none() && c.controller_tls.is_none());
        // By protocol, or by name; never both.
        let trust = ("ssl.truststore.location", "/ca.pem");
        let c = BrokerConfig::from_props(&cluster("PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094", &[("security.inter.broker.protocol", "ssl"), trust])).unwrap();
        let tls = c.inter_broker.tls.expect("client TLS");
        assert_eq!(c.inter_broker.listener, "SSL");
        assert!(tls.verify_hostname);
        let c = BrokerConfig::from_props(&cluster(
            "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094",
            &[("inter.broker.listener.name", "ssl"), trust, ("listener.name.ssl.ssl.endpoint.identification.algorithm", "")],
        ))
        .unwrap();
        assert!(!c.inter_broker.tls.expect("client TLS").verify_hostname);
        for (extra, says) in [
            (vec![("inter.broker.listener.name", "SSL"), ("security.inter.broker.protocol", "SSL"), trust], "not both"),
            // Without a truststore a broker could not verify the peer it replicates from.
            (vec![("security.inter.broker.protocol", "SSL")], "listener.name.ssl.ssl.truststore.location"),
            (vec![("security.inter.broker.protocol", "SASL_SSL")], "not in `listeners`"),
            (vec![("security.inter.broker.protocol", "SASL_PLAINTEXT")], "no security protocol defined"),
            (vec![("inter.broker.listener.name", "CONTROLLER")], "not in `listeners`"),
            (vec![("inter.broker.listener.name", "SSL"), trust, ("ssl.endpoint.identification.algorithm", "ldaps")], "ssl.endpoint.identification.algorithm"),
        ] {
            let e = BrokerConfig::from_props(&cluster("PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094", &extra)).unwrap_err();
            assert!(e.to_string().contains(says), "{extra:?}: {e}");
        }
        // A single node has no peers: an SSL-only broker needs no truststore, and a stock
        // `security.inter.broker.protocol=PLAINTEXT` naming no listener of it is harmless.
        let c = BrokerConfig::from_props(&props(&[
            ("listeners", "CLIENTS://127.0.0.1:9093"),
            ("listener.security.protocol.map", "CLIENTS:PLAINTEXT"),
            ("security.inter.broker.protocol", "PLAINTEXT"),
        ]))
        .unwrap();
        assert_eq!(c.inter_broker.listener, "CLIENTS");
        let c = BrokerConfig::from_props(&props(&[("listeners", "SSL://127.0.0.1:9093"), ("ssl.keystore.location", "/k.pem")])).unwrap();
        assert_eq!(c.inter_broker.listener, "SSL");
        assert!(c.inter_broker.tls.is_none());
    }

    #[test]
    fn inter_broker_sasl_logs_in_with_the_listeners_jaas_username() {
        let listeners = "SASL_SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094";
        let base = [
            ("security.inter.broker.protocol", "SASL_SSL"),
            ("ssl.truststore.location", "/ca.pem"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#),
        ];
        let e = BrokerConfig::from_props(&cluster(listeners, &base)).unwrap_err().to_string();
        assert!(e.contains("sasl.mechanism.inter.broker.protocol") && e.contains("GSSAPI"), "{e}");
        let mut ok = base.to_vec();
        ok.push(("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"));
        let c = BrokerConfig::from_props(&cluster(listeners, &ok)).unwrap();
        let login = c.inter_broker.sasl.expect("a login");
        assert_eq!((login.mechanism, login.username.as_str(), login.password.0.as_str()), (security::SaslMechanism::ScramSha512, "broker", "broker-secret"));
        assert!(c.inter_broker.tls.is_some());
        // A mechanism the listener does not offer, or a JAAS config without the broker's own
        // username and password: refused, naming the key, never echoing the password.
        let mut wrong = base.to_vec();
        wrong.push(("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"));
        let e = BrokerConfig::from_props(&cluster(listeners, &wrong)).unwrap_err().to_string();
        assert!(e.contains("does not offer SCRAM-SHA-256"), "{e}");
        let mut no_user = ok.clone();
        no_user[3].1 = r#"org.apache.kafka.common.security.scram.ScramLoginModule required password="broker-secret";"#;
        let e = BrokerConfig::from_props(&cluster(listeners, &no_user)).unwrap_err().to_string();
        assert!(e.contains("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config") && !e.contains("broker-secret"), "{e}");
    }

    #[test]
    fn an_ssl_controller_listener_requires_client_certificates() {
        let listeners = "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9094";
        let map = ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL");
        let trust = ("ssl.truststore.location", "/ca.pem");
        let e = BrokerConfig::from_props(&cluster(listeners, &[map, trust])).unwrap_err().to_string();
        assert!(e.contains("listener.name.controller.ssl.client.auth=required"), "{e}");
        let c = BrokerConfig::from_props(&cluster(listeners, &[map, trust, ("listener.name.controller.ssl.client.auth", "required")])).unwrap();
        assert!(c.controller_tls.is_some());
        assert!(c.cluster.controller_listener.as_ref().is_some_and(|l| l.tls.is_some()));
        // SASL_SSL: PLAIN only, with the node's own login in the listener's JAAS config.
        let jaas = (
            "listener.name.controller.plain.sasl.jaas.config",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="node" password="node-pw" user_node="node-pw";"#,
        );
        let sasl_ssl = ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL");
        let plain = ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN");
        let e = BrokerConfig::from_props(&cluster(listeners, &[sasl_ssl, trust, plain, jaas])).unwrap_err().to_string();
        assert!(e.contains("sasl.mechanism.controller.protocol") && e.contains("GSSAPI"), "{e}");
        let c = BrokerConfig::from_props(&cluster(listeners, &[sasl_ssl, trust, plain, jaas, ("sasl.mechanism.controller.protocol", "PLAIN")])).unwrap();
        assert!(c.controller_tls.is_some());
        assert_eq!(c.controller_sasl.expect("a login").username, "node");
        let scram = [sasl_ssl, trust, ("listener.name.controller.sasl.enabled.mechanisms", "SCRAM-SHA-256"), ("sasl.mechanism.controller.protocol", "SCRAM-SHA-256"),
            ("listener.name.controller.scram-sha-256.sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="node" password="x";"#)];
        let e = BrokerConfig::from_props(&cluster(listeners, &scram)).unwrap_err().to_string();
        assert!(e.contains("PLAIN only"), "{e}");
    }

    #[test]
    fn security_keys_are_refused_not_ignored() {
        for k in ["sasl.jaas.config", "listener.name.plaintext.sasl.jaas.config", "ssl.keymanager.algorithm", "delegation.token.secret.key"] {
            let e = BrokerConfig::from_props(&props(&[(k, "x")])).unwrap_err();
            assert!(matches!(e, ConfigError::SecurityNotSupported(ref key) if key == k), "{k}: {e}");
            assert!(!e.to_string().contains("spelling"), "{e}");
        }
        // Kafka's own no-security values in a stock server.properties still start.
        let c = BrokerConfig::from_props(&props(&[("security.inter.broker.protocol", "PLAINTEXT"), ("authorizer.class.name", "")])).unwrap();
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        assert_eq!(c.authorizer, None);
    }

    #[test]
    fn the_standard_authorizer_and_its_settings() {
        let c = BrokerConfig::from_props(&props(&[
            ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
            ("super.users", "User:admin; User:ops"),
        ]))
        .unwrap();
        let a = c.authorizer.expect("an authorizer");
        assert_eq!(a.super_users, ["User:admin", "User:ops"]);
        assert!(!a.allow_everyone_if_no_acl_found);
        for (k, v, says) in [
            ("authorizer.class.name", "kafka.security.authorizer.AclAuthorizer", "ZooKeeper"),
            ("authorizer.class.name", "com.example.MyAuthorizer", "not a JVM"),
            ("super.users", "admin", "User:<name>"),
            ("allow.everyone.if.no.acl.found", "maybe", "allow.everyone.if.no.acl.found"),
        ] {
            let mut p = props(&[(k, v)]);
            p.entry("authorizer.class.name".into()).or_insert_with(|| "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into());
            let e = BrokerConfig::from_props(&p).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(says), "{k}={v}: {e}");
        }
    }

    #[test]
    fn topic_overrides_apply() {
        let b = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        let t = b.topic_settings(&props(&[("retention.ms", "1000"), ("message.timestamp.type", "LogAppendTime"), ("flush.messages", "1")]));
        assert_eq!(t.log.retention_ms, 1000);
        assert!(t.log_append_time);
        assert_eq!(t.flush_messages, 1);
        assert_eq!(b.topic_settings(&BTreeMap::new()).flush_messages, i64::MAX);
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.mss", "1").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
    }
}
