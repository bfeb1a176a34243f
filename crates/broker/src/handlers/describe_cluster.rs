//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers. The controller here
//! is the active one (the Raft leader), for operators; Metadata's controller id is the answering
//! broker instead, because that is where clients should send admin requests.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Open to every principal, as Kafka; the cluster's authorized operations (when asked for) need
/// DESCRIBE on the cluster.
pub fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest, session: &Session) -> DescribeClusterResponse {
    let authz = broker.authz(session);
    let operations = if req.include_cluster_authorized_operations && authz.allows_cluster(Operation::Describe) {
        authz.operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        i32::MIN
    };
    let image = broker.metadata.image();
    let brokers = super::metadata::brokers(&image, &session.listener)
        .into_iter()
        .map(|b| DescribeClusterBroker::default().with_broker_id(b.node_id).with_host(b.host).with_port(b.port).with_rack(b.rack))
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.metadata.active_controller().unwrap_or(-1)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(operations)
}
