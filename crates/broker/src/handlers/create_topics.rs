//! CreateTopics: partitions, replication factor (or a manual assignment), configs, validate_only.
//! Under the client's `controller_mutation_rate` (KIP-599, `quotas/mutation.rs`): strict from
//! v6, as Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::topic_config_entries;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::topics::AdminError;

/// As Kafka: CREATE on the cluster or on the topic (else TOPIC_AUTHORIZATION_FAILED); the
/// configs come back (v5+) only with DESCRIBE_CONFIGS on the topic (else the topic's config
/// error is TOPIC_AUTHORIZATION_FAILED).
pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest, version: i16, session: &Session, client_id: &str) -> CreateTopicsResponse {
    let authz = broker.authz(session);
    let mut quota = broker.quotas.mutations(&broker.metadata.image().quotas, &session.principal, client_id, version >= 6);
    let cluster_create = authz.allows_cluster(Operation::Create);
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        // Kafka answers a success with a null message (the crate's default is "").
        let result = CreatableTopicResult::default().with_name(t.name.clone()).with_error_message(None);
        let created = if cluster_create || authz.allows_topic(Operation::Create, &t.name) {
            match quota.check(now_ms()) {
                Err(_) => Err(AdminError::new(ResponseError::ThrottlingQuotaExceeded, crate::quotas::mutation::EXCEEDED)),
                Ok(()) => {
                    let created = create(broker, &t, req.validate_only).await;
                    if let (Ok((_, partitions, _, _)), false) = (&created, req.validate_only) {
                        quota.record((*partitions).max(0) as usize, now_ms());
                    }
                    created
                }
            }
        } else {
            Err(AdminError::new(ResponseError::TopicAuthorizationFailed, "Authorization failed."))
        };
        let configs_allowed = authz.allows_topic(Operation::DescribeConfigs, &t.name);
        topics.push({
            match created {
                Ok((topic_id, partitions, rf, _)) if version >= 5 && !configs_allowed => result
                    .with_topic_id(topic_id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf)
                    .with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code()),
                Ok((topic_id, partitions, rf, configs)) => {
                    let entries = (version >= 5).then(|| {
                        topic_config_entries(broker, &configs)
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(e.name))
                                    .with_value(e.value.map(StrBytes::from_string))
                                    .with_config_source(e.source)
                            })
                            .collect()
                    });
                    result.with_topic_id(topic_id).with_num_partitions(partitions).with_replication_factor(rf).with_configs(entries)
                }
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics).with_throttle_time_ms(quota.throttle_ms())
}

type Created = (uuid::Uuid, i32, i16, BTreeMap<String, String>);

async fn create(broker: &Broker, t: &CreatableTopic, validate_only: bool) -> Result<Created, AdminError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        // A null value means "use the default", as in Kafka.
        if let Some(v) = &c.value {
            configs.insert(c.name.to_string(), v.to_string());
        }
    }
    let topic = if t.assignments.is_empty() {
        broker.topics.create_topic(t.name.as_str(), t.num_partitions, t.replication_factor, configs, validate_only).await?
    } else {
        // Kafka's controller checks these first, in this order.
        if t.replication_factor != -1 {
            return Err(AdminError::new(ResponseError::InvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1."));
        }
        if t.num_partitions != -1 {
            return Err(AdminError::new(ResponseError::InvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1."));
        }
        let assignments = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
        broker.topics.create_topic_assigned(t.name.as_str(), assignments, configs, validate_only).await?
    };
    Ok((topic.id, topic.partition_count(), topic.replication_factor, topic.configs.clone()))
}
