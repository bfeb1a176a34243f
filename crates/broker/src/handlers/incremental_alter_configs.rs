//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on single keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{is_this_broker, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::broker::Broker;
use crate::topics::AdminError;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub fn handle(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let resp = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            let result = match r.configs.iter().find(|c| !(SET..=SUBTRACT).contains(&c.config_operation)) {
                Some(c) => Err(AdminError::new(ResponseError::InvalidRequest, format!("Unknown operation {} for {}", c.config_operation, c.name.as_str()))),
                None => {
                    let edit = |m: &mut BTreeMap<String, String>| apply(m, &r.configs);
                    match r.resource_type {
                        RESOURCE_TOPIC => broker.alter_topic_configs(r.resource_name.as_str(), edit, req.validate_only),
                        RESOURCE_BROKER if is_this_broker(broker, r.resource_name.as_str()) => broker.alter_broker_configs(edit, req.validate_only),
                        _ => Err(AdminError::new(ResponseError::InvalidRequest, "Unsupported resource")),
                    }
                }
            };
            match result {
                Ok(()) => resp,
                Err(e) => resp.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// List-valued configs (cleanup.policy) take APPEND/SUBTRACT as comma-separated list edits.
fn apply(configs: &mut BTreeMap<String, String>, ops: &[AlterableConfig]) {
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
                let mut items: Vec<String> = configs
                    .get(&key)
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
}
