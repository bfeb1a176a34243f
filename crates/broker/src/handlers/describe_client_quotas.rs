//! DescribeClientQuotas (KIP-546): the quota entities matching the filter's components, with
//! their values. Needs DESCRIBE_CONFIGS on the cluster, as Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;
use strom_metadata::quota::Match;

use crate::broker::Broker;
use crate::session::Session;

pub fn handle(broker: &Arc<Broker>, req: DescribeClientQuotasRequest, session: &Session) -> DescribeClientQuotasResponse {
    let fail = |code: ResponseError, message: String| DescribeClientQuotasResponse::default().with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)));
    if !broker.authz(session).allows_cluster(Operation::DescribeConfigs) {
        return fail(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into());
    }
    let mut components = Vec::with_capacity(req.components.len());
    for c in &req.components {
        // Kafka's match types: 0 a name, 1 the default, 2 any.
        let m = match (c.match_type, &c._match) {
            (0, Some(name)) => Match::Exact(name.to_string()),
            (1, None) => Match::Default,
            (2, None) => Match::Any,
            (t, _) => return fail(ResponseError::InvalidRequest, format!("Invalid match type {t} (or a match name that does not go with it) for entity type {}", c.entity_type.as_str())),
        };
        if components.iter().any(|(t, _): &(String, Match)| t == c.entity_type.as_str()) {
            return fail(ResponseError::InvalidRequest, format!("Duplicate {} filter component entity type", c.entity_type.as_str()));
        }
        components.push((c.entity_type.to_string(), m));
    }
    let image = broker.metadata.image();
    let entries = image
        .quotas
        .describe(&components, req.strict)
        .into_iter()
        .map(|(entity, values)| {
            let entity = entity.0.into_iter().map(|(t, n)| EntityData::default().with_entity_type(StrBytes::from_string(t)).with_entity_name(n.map(StrBytes::from_string))).collect();
            let values = values.into_iter().map(|(k, v)| ValueData::default().with_key(StrBytes::from_string(k)).with_value(v)).collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
