//! DescribeConfigs for topics (resource type 2), brokers (resource type 4) and groups (resource
//! type 32, Kafka 4's group configs).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::authz::Authz;
use crate::broker::Broker;
use crate::session::Session;
use crate::topics::AdminError;
use strom_metadata::acl::Operation;
use strom_config::{key, BrokerConfig, KEYS};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const GROUP_CONFIG: i8 = 8;

pub struct ConfigEntry {
    pub name: &'static str,
    /// `None` for a broker key that is unset and derived from another one (log.retention.ms
    /// from log.retention.hours), which Kafka reports as null.
    pub value: Option<String>,
    pub source: i8,
    /// Every level that sets the key, highest precedence first (Kafka's synonyms): the topic's
    /// override, then the broker key's dynamic, static and default values.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// Where a broker key's value can come from, highest precedence first: this broker's own dynamic
/// configs, the cluster's, server.properties, the default.
struct Levels<'a> {
    own: Option<&'a BTreeMap<String, String>>,
    cluster: &'a BTreeMap<String, String>,
    config: &'a BrokerConfig,
}

impl<'a> Levels<'a> {
    fn of(broker: &'a Broker, image: &'a strom_metadata::MetadataImage) -> Levels<'a> {
        Levels { own: image.node_configs.get(&broker.config.node_id), cluster: &image.broker_configs, config: &broker.config }
    }

    fn set(&self) -> impl Iterator<Item = (&'a BTreeMap<String, String>, i8)> {
        self.own
            .map(|m| (m, DYNAMIC_BROKER_CONFIG))
            .into_iter()
            .chain([(self.cluster, DYNAMIC_DEFAULT_BROKER_CONFIG), (&self.config.props, STATIC_BROKER_CONFIG)])
    }

    /// The broker-level levels of `name`, highest precedence first (Kafka's synonyms).
    fn synonyms(&self, name: &str) -> Vec<(String, Option<String>, i8)> {
        let mut out: Vec<_> = self.set().filter_map(|(m, source)| m.get(name).map(|v| (name.to_string(), Some(v.clone()), source))).collect();
        if let Some(default) = key(name).and_then(|k| k.default_value()) {
            out.push((name.to_string(), Some(default.to_string()), DEFAULT_CONFIG));
        }
        out
    }

    fn value_and_source(&self, name: &str) -> Option<(String, i8)> {
        self.set().find_map(|(m, source)| m.get(name).map(|v| (v.clone(), source)))
    }

    fn source(&self, name: &str) -> i8 {
        self.value_and_source(name).map_or(DEFAULT_CONFIG, |(_, s)| s)
    }
}

/// A topic's configs: its overrides, then the broker defaults for the rest.
pub fn topic_config_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    let image = broker.metadata.image();
    let levels = Levels::of(broker, &image);
    let effective = broker.config.with_dynamic(&image.dynamic_configs(broker.config.node_id)).unwrap_or_else(|_| (*broker.config).clone());
    let mut out: Vec<ConfigEntry> = effective
        .topic_values(&BTreeMap::new())
        .into_iter()
        .filter_map(|(k, default)| Some((k.topic?, k.name, default)))
        .map(|(name, broker_key, default)| {
            let mut synonyms = levels.synonyms(broker_key);
            match overrides.get(name) {
                Some(v) => {
                    synonyms.insert(0, (name.to_string(), Some(v.clone()), DYNAMIC_TOPIC_CONFIG));
                    ConfigEntry { name, value: Some(v.clone()), source: DYNAMIC_TOPIC_CONFIG, synonyms }
                }
                None => ConfigEntry { name, value: Some(default), source: levels.source(broker_key), synonyms },
            }
        })
        .collect();
    // Accepted-but-inert overrides are reported too, so what was set can be read back.
    for (k, v) in overrides {
        if let Some(name) = strom_config::INERT_TOPIC_KEYS.iter().find(|n| **n == k.as_str()) {
            if !out.iter().any(|e| e.name == *name) {
                let synonyms = vec![(name.to_string(), Some(v.clone()), DYNAMIC_TOPIC_CONFIG)];
                out.push(ConfigEntry { name, value: Some(v.clone()), source: DYNAMIC_TOPIC_CONFIG, synonyms });
            }
        }
    }
    out
}

/// A group's configs (every group config Kafka defines and Strom acts on): the group's own
/// values, then the broker's for the rest, each with the broker key's levels as synonyms.
fn group_config_entries(broker: &Broker, group: &str) -> Vec<ConfigEntry> {
    let image = broker.metadata.image();
    let levels = Levels::of(broker, &image);
    let empty = BTreeMap::new();
    let configs = image.group_configs.get(group).unwrap_or(&empty);
    broker
        .config
        .group_values(configs)
        .into_iter()
        .map(|v| {
            let mut synonyms = levels.synonyms(v.broker_key.name);
            if v.set {
                synonyms.insert(0, (v.name.to_string(), Some(v.value.clone()), GROUP_CONFIG));
                ConfigEntry { name: v.name, value: Some(v.value), source: GROUP_CONFIG, synonyms }
            } else {
                ConfigEntry { name: v.name, value: Some(v.value), source: levels.source(v.broker_key.name), synonyms }
            }
        })
        .collect()
}

fn broker_config_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let image = broker.metadata.image();
    let levels = Levels::of(broker, &image);
    // A topic-only key (`leader.replication.throttled.replicas`) is no broker config.
    KEYS.iter()
        .filter(|k| !k.topic_only)
        .map(|k| {
            let (value, source) = match levels.value_and_source(k.name) {
                Some((v, source)) => (Some(v), source),
                // A default derived from another key (log.roll.ms from log.roll.hours) is null.
                None => (k.default_value().map(str::to_string), DEFAULT_CONFIG),
            };
            ConfigEntry { name: k.name, value, source, synonyms: levels.synonyms(k.name) }
        })
        .collect()
}

/// Why a config resource may not be read (`DescribeConfigs`) or changed (`AlterConfigs`,
/// `IncrementalAlterConfigs`), as Kafka: a topic needs `operation` on the topic, a broker on the
/// cluster, a group on the group.
pub fn config_access_denied(authz: &Authz<'_>, resource_type: i8, name: &str, operation: Operation) -> Option<ResponseError> {
    match resource_type {
        RESOURCE_TOPIC if !authz.allows_topic(operation, name) => Some(ResponseError::TopicAuthorizationFailed),
        RESOURCE_BROKER if !authz.allows_cluster(operation) => Some(ResponseError::ClusterAuthorizationFailed),
        RESOURCE_GROUP if !authz.allows_group(operation, name) => Some(ResponseError::GroupAuthorizationFailed),
        _ => None,
    }
}

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest, session: &Session) -> DescribeConfigsResponse {
    let authz = broker.authz(session);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            if let Some(code) = config_access_denied(&authz, r.resource_type, &r.resource_name, Operation::DescribeConfigs) {
                return result.with_error_code(code.code()).with_error_message(None);
            }
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.metadata.image().topic(r.resource_name.as_str()) {
                    Some(t) => topic_config_entries(broker, &t.configs),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!("Topic '{}' does not exist.", r.resource_name.as_str()))))
                    }
                },
                RESOURCE_BROKER if is_this_broker(broker, r.resource_name.as_str()) => broker_config_entries(broker),
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!("Unexpected broker id {}", r.resource_name.as_str()))))
                }
                RESOURCE_GROUP if r.resource_name.is_empty() => {
                    return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(StrBytes::from_static_str("Group name must not be empty")))
                }
                RESOURCE_GROUP => group_config_entries(broker, r.resource_name.as_str()),
                _ => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str("Unsupported resource type")))
                }
            };
            let with_synonyms = req.include_synonyms;
            // Kafka's ConfigHelper: no key list, or an empty one, asks for every config.
            let wanted = r.configuration_keys.filter(|keys| !keys.is_empty()).map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
            let configs = entries
                .into_iter()
                .filter(|e| wanted.as_ref().is_none_or(|w| w.iter().any(|k| k == e.name)))
                .map(|e| {
                    // Passwords and private keys are never shown, as Kafka's PASSWORD type.
                    let sensitive = strom_config::is_sensitive(e.name);
                    let shown = |v: Option<String>| if sensitive { None } else { v.map(StrBytes::from_string) };
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(e.name))
                        .with_value(shown(e.value))
                        .with_is_sensitive(sensitive)
                        .with_config_source(e.source)
                        .with_synonyms(if with_synonyms {
                            e.synonyms
                                .into_iter()
                                .map(|(name, value, source)| {
                                    DescribeConfigsSynonym::default()
                                        .with_name(StrBytes::from_string(name))
                                        .with_value(shown(value))
                                        .with_source(source)
                                })
                                .collect()
                        } else {
                            Vec::new()
                        })
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Broker resources are named by node id; the empty name means the cluster-wide default.
pub fn is_this_broker(broker: &Broker, name: &str) -> bool {
    name.is_empty() || name.parse::<i32>().ok() == Some(broker.config.node_id)
}

/// Alters the dynamic configs of broker resource `name` (this broker: `is_this_broker`): the
/// cluster's default level for "", this broker's own for its id. A keystore or truststore change
/// must load and keep the listener's identity before it is committed (`tls::check_reconfiguration`).
pub async fn alter_this_broker(
    broker: &Broker,
    name: &str,
    edit: impl Fn(&mut BTreeMap<String, String>) -> Result<(), AdminError>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let me = broker.config.node_id;
    let node = (!name.is_empty()).then_some(me);
    let current = broker.config.with_dynamic(&broker.metadata.image().dynamic_configs(me)).unwrap_or_else(|_| (*broker.config).clone());
    let check = |new: &strom_config::BrokerConfig| {
        crate::tls::check_reconfiguration(&current, new).map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))
    };
    broker.topics.alter_broker_configs(node, edit, check, validate_only).await
}
