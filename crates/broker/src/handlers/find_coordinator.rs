//! FindCoordinator: which broker coordinates a group (key type 0) or a transactional id (key
//! type 1): the leader of the key's partition of `__consumer_offsets` or `__transaction_state`.
//! The topic is created here on first use, and awaited, as Kafka does; no other request creates it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::coordinator_topic::CoordinatorTopic;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// How long FindCoordinator waits for this broker to load the keys' partitions it leads.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// As Kafka: a group key needs DESCRIBE on the group, a transactional id DESCRIBE on it.
pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16, session: &Session) -> FindCoordinatorResponse {
    let listener = &*session.listener;
    let authz = broker.authz(session);
    // v4+ asks for many keys at once; v0-3 for one, answered in the top-level fields.
    let keys: Vec<StrBytes> = if version >= 4 { req.coordinator_keys } else { vec![req.key] };
    let topic = match req.key_type {
        KEY_TYPE_GROUP => Some(&broker.groups.topic),
        KEY_TYPE_TRANSACTION => Some(&broker.transactions.topic),
        _ => None,
    };
    let ready = match topic {
        Some(t) => t.ensure().await,
        None => Err(ResponseError::InvalidRequest),
    };
    if let (Some(t), Ok(())) = (topic, ready) {
        // Name this broker only once it can serve the key (see `await_load`), within a bound.
        let deadline = tokio::time::Instant::now() + LOAD_WAIT;
        for key in &keys {
            t.await_load(key.as_str(), deadline).await;
        }
    }
    let answers: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            let denied = match req.key_type {
                KEY_TYPE_GROUP if !authz.allows_group(Operation::Describe, &key) => Some(ResponseError::GroupAuthorizationFailed),
                KEY_TYPE_TRANSACTION if !authz.allows_transactional_id(Operation::Describe, &key) => Some(ResponseError::TransactionalIdAuthorizationFailed),
                _ => None,
            };
            match denied {
                Some(code) => not_found(key, code, "authorization failed"),
                None => find(broker, topic, key, ready, listener),
            }
        })
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(answers);
    }
    let a = answers.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(a.error_code)
        .with_error_message(a.error_message)
        .with_node_id(a.node_id)
        .with_host(a.host)
        .with_port(a.port)
}

fn not_found(key: StrBytes, code: ResponseError, message: &str) -> Coordinator {
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(-1))
        .with_host(StrBytes::from_static_str(""))
        .with_port(-1)
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

fn find(broker: &Arc<Broker>, topic: Option<&Arc<CoordinatorTopic>>, key: StrBytes, ready: Result<(), ResponseError>, listener: &str) -> Coordinator {
    let not_found = |code: ResponseError, message: &str| not_found(key.clone(), code, message);
    let Some(topic) = topic else {
        return not_found(ResponseError::InvalidRequest, "unknown coordinator key type");
    };
    if key.is_empty() {
        return not_found(ResponseError::InvalidRequest, "the key is empty");
    }
    // The topic exists (its partitions may still be loading: a coordinator still loading is
    // still the coordinator, and the requests that follow get COORDINATOR_LOAD_IN_PROGRESS and
    // retry there).
    if let Err(code) = ready {
        return not_found(code, "the coordinator's internal topic is not available");
    }
    let leader = topic.coordinator_of(key.as_str());
    let image = broker.metadata.image();
    let endpoint = super::metadata::brokers(&image, listener).into_iter().find(|b| Some(b.node_id.0) == leader);
    match endpoint {
        Some(b) => Coordinator::default().with_key(key).with_node_id(b.node_id).with_host(b.host).with_port(b.port),
        None => not_found(ResponseError::CoordinatorNotAvailable, "the key's partition has no leader"),
    }
}
