//! Metadata: brokers, topics and partition leaders, from one snapshot of the metadata image.
//! Unknown topics are created here when `auto.create.topics.enable` and the client allow it,
//! as Kafka does.
//!
//! With an authorizer, as Kafka: the all-topics listing leaves out topics the principal may not
//! DESCRIBE; a named one it may not describe is answered TOPIC_AUTHORIZATION_FAILED whether it
//! exists or not (its existence is not disclosed); auto-creation needs CREATE on the cluster or
//! on the topic.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::{Operation, ResourceType, CLUSTER_NAME};
use strom_metadata::{MetadataImage, TopicImage, NO_LEADER};
use crate::topics::validate_topic_name;

/// "Not requested" for the authorized-operations fields.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16, session: &Session) -> MetadataResponse {
    let authz = broker.authz(session);
    let listener = &*session.listener;
    let describable = |name: &str| authz.allows_topic(Operation::Describe, name);
    // v0 had no flag: auto-creation was always requested.
    let client_allows_create = version < 4 || req.allow_auto_topic_creation;
    let mut image = broker.metadata.image();
    // In v0 the list could not be null: an empty list meant "all topics".
    let requested = match req.topics {
        Some(t) if t.is_empty() && version == 0 => None,
        other => other,
    };
    let topics = match requested {
        None => image.topics.values().filter(|t| describable(&t.name)).map(|t| topic_response(&image, t)).collect(),
        Some(requested) => {
            let mut out = Vec::with_capacity(requested.len());
            for t in requested {
                let name = t.name.map(|n| n.0.to_string());
                let found = match &name {
                    Some(n) => image.topic(n).cloned(),
                    None => image.topic_by_id(t.topic_id).cloned(),
                };
                let shown_name = name.as_deref().or(found.as_ref().map(|t| t.name.as_str()));
                if shown_name.is_some_and(|n| !describable(n)) {
                    // Topic ids are not secret (Kafka returns the id of an id lookup), names are.
                    let id = if name.is_none() { t.topic_id } else { Uuid::nil() };
                    out.push(error_topic(name, id, ResponseError::TopicAuthorizationFailed));
                    continue;
                }
                out.push(match (found, name) {
                    (Some(topic), _) => topic_response(&image, &topic),
                    (None, Some(name)) => match validate_topic_name(&name) {
                        Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
                        Ok(()) if client_allows_create
                            && broker.config.auto_create_topics
                            && !authz.allows_cluster(Operation::Create)
                            && !authz.allows_topic(Operation::Create, &name) =>
                        {
                            error_topic(Some(name), Uuid::nil(), ResponseError::TopicAuthorizationFailed)
                        }
                        Ok(()) if client_allows_create && broker.config.auto_create_topics => {
                            match broker.topics.auto_create_topic(&name).await {
                                Ok(topic) => {
                                    image = broker.metadata.image();
                                    topic_response(&image, &topic)
                                }
                                Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
                            }
                        }
                        Ok(()) => error_topic(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition),
                    },
                    (None, None) => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                });
            }
            out
        }
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    if req.include_topic_authorized_operations && version >= 8 {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = authz.operations(ResourceType::Topic, name.as_str());
            }
        }
    }
    // v8-10 only (KIP-700 moved it to DescribeCluster).
    let cluster_operations = if req.include_cluster_authorized_operations && (8..=10).contains(&version) && authz.allows_cluster(Operation::Describe) {
        authz.operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    MetadataResponse::default()
        .with_brokers(brokers(&image, listener))
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(BrokerId(admin_target(broker, &image)))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_operations)
}

/// The "controller" clients send admin requests to. As in KRaft (KIP-590), any broker takes them
/// and the metadata log carries them to the active controller, so this is the answering broker
/// itself: a client never waits on a stale controller id after a controller failover.
fn admin_target(broker: &Broker, image: &MetadataImage) -> i32 {
    let me = broker.config.node_id;
    if image.live_brokers().any(|b| b.id == me) {
        me
    } else {
        image.live_brokers().next().map_or(-1, |b| b.id)
    }
}

/// The live brokers, each at its endpoint for `listener`, the one the client connected to (as
/// Kafka: a client that came in over SSL is sent to SSL ports, never to plaintext ones).
pub fn brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.listener == listener).or(b.endpoints.first())?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn topic_response(image: &MetadataImage, t: &TopicImage) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline: Vec<i32> = p.replicas.iter().copied().filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced)).collect();
            let error = if p.leader == NO_LEADER { ResponseError::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(crate::coordinator_topic::is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn error_topic(name: Option<String>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
