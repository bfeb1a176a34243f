//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let node = BrokerId(broker.config.node_id);
    let brokers = broker
        .config
        .advertised_listeners
        .first()
        .map(|l| {
            vec![DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(i32::from(l.port))]
        })
        .unwrap_or_default();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(broker.metadata.image().cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}
