//! AlterClientQuotas (KIP-546): each entry's entity and operations are checked as Kafka's
//! controller checks them (INVALID_REQUEST with its message); the valid entries are applied in
//! one metadata change (none with `validate_only`). Needs ALTER_CONFIGS on the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as RequestEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;
use strom_metadata::quota::QuotaEntity;
use strom_metadata::MetadataRecord;

use crate::broker::Broker;
use crate::session::Session;

/// One entry as a metadata record, or Kafka's reason to refuse it.
fn record(e: &RequestEntry) -> Result<MetadataRecord, String> {
    let entity = QuotaEntity::new(e.entity.iter().map(|d| (d.entity_type.to_string(), d.entity_name.as_ref().map(|n| n.to_string()))).collect());
    entity.validate()?;
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for op in &e.ops {
        if remove.contains(&op.key.to_string()) || set.contains_key(op.key.as_str()) {
            return Err(format!("Duplicate quota key {} not updating quota for entity {entity:?}", op.key.as_str()));
        }
        if op.remove {
            remove.push(op.key.to_string());
        } else {
            entity.validate_value(&op.key, op.value)?;
            set.insert(op.key.to_string(), op.value);
        }
    }
    Ok(MetadataRecord::ClientQuotasAltered { entity, set, remove })
}

pub async fn handle(broker: &Arc<Broker>, req: AlterClientQuotasRequest, session: &Session) -> AlterClientQuotasResponse {
    let allowed = broker.authz(session).allows_cluster(Operation::AlterConfigs);
    let checked: Vec<Result<MetadataRecord, (ResponseError, String)>> = req
        .entries
        .iter()
        .map(|e| if allowed { record(e).map_err(|m| (ResponseError::InvalidRequest, m)) } else { Err((ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into())) })
        .collect();
    let records: Vec<MetadataRecord> = checked.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut failure = None;
    if !records.is_empty() && !req.validate_only {
        match broker.metadata.commit::<std::convert::Infallible>(|_| Ok(records.clone())).await {
            Ok(Ok(image)) => broker.topics.published(&image).await,
            Ok(Err(never)) => match never {},
            Err(e) => {
                tracing::error!(error = %e, "metadata write failed");
                failure = Some(e.to_string());
            }
        }
    }
    let entries = req
        .entries
        .iter()
        .zip(checked)
        .map(|(e, r)| {
            let entity = e.entity.iter().map(|d| EntityData::default().with_entity_type(d.entity_type.clone()).with_entity_name(d.entity_name.clone())).collect();
            let out = EntryData::default().with_entity(entity);
            match (r, &failure) {
                (Err((code, message)), _) => out.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message))),
                (Ok(_), Some(f)) => out.with_error_code(ResponseError::KafkaStorageError.code()).with_error_message(Some(StrBytes::from_string(f.clone()))),
                (Ok(_), None) => out.with_error_message(None),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
