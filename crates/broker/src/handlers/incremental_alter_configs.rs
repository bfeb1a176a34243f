//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on single keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{is_this_broker, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::topics::AdminError;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest, session: &Session) -> IncrementalAlterConfigsResponse {
    let authz = broker.authz(session);
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        responses.push({
            let resp = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            if let Some(code) = super::describe_configs::config_access_denied(&authz, r.resource_type, &r.resource_name, Operation::AlterConfigs) {
                responses.push(resp.with_error_code(code.code()));
                continue;
            }
            let result = match r.configs.iter().find(|c| !(SET..=SUBTRACT).contains(&c.config_operation)) {
                Some(c) => Err(AdminError::new(ResponseError::InvalidRequest, format!("Unknown operation {} for {}", c.config_operation, c.name.as_str()))),
                None => {
                    let image = broker.metadata.image();
                    let effective = broker.config.with_dynamic(&image.dynamic_configs(broker.config.node_id)).unwrap_or_else(|_| (*broker.config).clone());
                    match r.resource_type {
                        // A list key the topic does not set starts from its broker default.
                        RESOURCE_TOPIC => {
                            let defaults = effective.topic_values(&BTreeMap::new());
                            let default_of = |k: &str| defaults.iter().find(|(key, _)| key.topic == Some(k)).map(|(_, v)| v.clone());
                            let edit = |m: &mut BTreeMap<String, String>| apply(m, &r.configs, default_of);
                            broker.topics.alter_topic_configs(r.resource_name.as_str(), edit, req.validate_only).await
                        }
                        RESOURCE_BROKER if is_this_broker(broker, r.resource_name.as_str()) => {
                            let default_of = |k: &str| effective.props.get(k).cloned().or_else(|| strom_config::key(k).and_then(|k| k.default_value()).map(str::to_string));
                            let edit = |m: &mut BTreeMap<String, String>| apply(m, &r.configs, default_of);
                            super::describe_configs::alter_this_broker(broker, r.resource_name.as_str(), edit, req.validate_only).await
                        }
                        RESOURCE_GROUP => match null_group_values(r.configs.iter().filter(|c| c.config_operation == SET).map(|c| (&c.name, c.value.is_none()))) {
                            Some(e) => Err(e),
                            None => {
                                let edit = |m: &mut BTreeMap<String, String>| apply(m, &r.configs, |_| None);
                                broker.topics.alter_group_configs(r.resource_name.as_str(), edit, req.validate_only).await
                            }
                        },
                        _ => Err(AdminError::new(ResponseError::InvalidRequest, "Unsupported resource")),
                    }
                }
            };
            match result {
                Ok(()) => resp,
                Err(e) => resp.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Kafka refuses a group config set to null (`ControllerConfigurationValidator`), naming them all.
pub(super) fn null_group_values<'a>(configs: impl Iterator<Item = (&'a StrBytes, bool)>) -> Option<AdminError> {
    let nulls: Vec<&str> = configs.filter(|(_, null)| *null).map(|(n, _)| n.as_str()).collect();
    (!nulls.is_empty()).then(|| AdminError::new(ResponseError::InvalidConfig, format!("Null value not supported for group configs: {}", nulls.join(","))))
}

/// Keys whose values are comma-separated lists: the only ones APPEND and SUBTRACT apply to.
const LIST_KEYS: &[&str] = &["cleanup.policy", "log.cleanup.policy", "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"];

/// Applies the operations in order. APPEND/SUBTRACT edit a list key as a list, starting from the
/// key's default (`default_of`) when it is not set; on any other key they are INVALID_CONFIG,
/// as in Kafka.
fn apply(
    configs: &mut BTreeMap<String, String>,
    ops: &[AlterableConfig],
    default_of: impl Fn(&str) -> Option<String>,
) -> Result<(), AdminError> {
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match op.config_operation {
            SET => {
                configs.insert(key, value);
            }
            DELETE => {
                configs.remove(&key);
            }
            APPEND | SUBTRACT => {
                if !LIST_KEYS.contains(&key.as_str()) {
                    let verb = if op.config_operation == APPEND { "append" } else { "subtract" };
                    return Err(AdminError::new(
                        ResponseError::InvalidConfig,
                        format!("Config value {verb} is not allowed for config key: {key}"),
                    ));
                }
                let mut items: Vec<String> = configs
                    .get(&key)
                    .cloned()
                    .or_else(|| default_of(&key))
                    .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default();
                for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if op.config_operation == APPEND && !items.iter().any(|i| i == v) {
                        items.push(v.to_string());
                    } else if op.config_operation == SUBTRACT {
                        items.retain(|i| i != v);
                    }
                }
                if items.is_empty() {
                    configs.remove(&key);
                } else {
                    configs.insert(key, items.join(","));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
