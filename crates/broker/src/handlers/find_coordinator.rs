//! FindCoordinator: which broker coordinates a group (key type 0). On a single node that is
//! always this broker, once `__consumer_offsets` exists (created here on first use, as Kafka
//! does). Transaction coordinators (key type 1) are not implemented yet.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    // v4+ asks for many keys at once; v0-3 for one, answered in the top-level fields.
    let keys: Vec<StrBytes> = if version >= 4 { req.coordinator_keys } else { vec![req.key] };
    let ready = if req.key_type == KEY_TYPE_GROUP { broker.groups.ensure_topic().await } else { Ok(()) };
    let answers: Vec<Coordinator> = keys.into_iter().map(|key| find(broker, req.key_type, key, ready)).collect();
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

fn find(broker: &Arc<Broker>, key_type: i8, key: StrBytes, ready: Result<(), ResponseError>) -> Coordinator {
    let not_found = |code: ResponseError, message: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    if key_type != KEY_TYPE_GROUP {
        return not_found(ResponseError::CoordinatorNotAvailable, "Strom has no transaction coordinator yet");
    }
    if key.is_empty() {
        return not_found(ResponseError::InvalidRequest, "the group id is empty");
    }
    // A coordinator still loading is still the coordinator: the group requests that follow get
    // COORDINATOR_LOAD_IN_PROGRESS and retry there.
    match ready {
        Ok(()) | Err(ResponseError::CoordinatorLoadInProgress) => {}
        Err(code) => return not_found(code, "the offsets topic is not available"),
    }
    // The coordinator is the leader of the group's offsets partition.
    let image = broker.metadata.image();
    let leader = match image.topic(crate::group_service::OFFSETS_TOPIC) {
        Some(t) => t.partition(crate::group_service::partition_for(key.as_str(), t.partition_count())).map(|p| p.leader),
        None => Some(broker.config.node_id),
    };
    let endpoint = super::metadata::brokers(broker, &image).into_iter().find(|b| Some(b.node_id.0) == leader);
    match endpoint {
        Some(b) => Coordinator::default().with_key(key).with_node_id(b.node_id).with_host(b.host).with_port(b.port),
        None => not_found(ResponseError::CoordinatorNotAvailable, "the group's offsets partition has no leader"),
    }
}
