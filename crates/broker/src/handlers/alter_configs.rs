//! AlterConfigs (the legacy, whole-set form): the given configs replace all of a resource's
//! dynamic configs; anything not named goes back to its default.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{config_access_denied, is_this_broker, alter_this_broker, RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::broker::Broker;
use crate::topics::AdminError;

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest, session: &Session) -> AlterConfigsResponse {
    let authz = broker.authz(session);
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        if let Some(code) = config_access_denied(&authz, r.resource_type, &r.resource_name, Operation::AlterConfigs) {
            responses.push(AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name).with_error_code(code.code()));
            continue;
        }
        responses.push({
            let configs: std::collections::BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            let replace = |m: &mut std::collections::BTreeMap<String, String>| {
                *m = configs.clone();
                Ok(())
            };
            let result = match r.resource_type {
                RESOURCE_TOPIC => broker.topics.alter_topic_configs(r.resource_name.as_str(), replace, req.validate_only).await,
                RESOURCE_BROKER if is_this_broker(broker, r.resource_name.as_str()) => alter_this_broker(broker, r.resource_name.as_str(), replace, req.validate_only).await,
                RESOURCE_GROUP => match super::incremental_alter_configs::null_group_values(r.configs.iter().map(|c| (&c.name, c.value.is_none()))) {
                    Some(e) => Err(e),
                    None => broker.topics.alter_group_configs(r.resource_name.as_str(), replace, req.validate_only).await,
                },
                _ => Err(AdminError::new(ResponseError::InvalidRequest, "Unsupported resource")),
            };
            let resp = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name);
            match result {
                Ok(()) => resp,
                Err(e) => resp.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
