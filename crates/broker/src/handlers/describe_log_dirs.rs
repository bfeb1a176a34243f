//! DescribeLogDirs (`kafka-log-dirs.sh --describe`, `strom log-dirs`): the node's data
//! directory (Strom has one: `log.dirs` with several is refused), each hosted replica's size in
//! bytes and offset lag, and (v4) the file system's total and usable bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;

use crate::broker::Broker;
use crate::session::Session;

/// Needs DESCRIBE on the cluster, as Kafka (CLUSTER_AUTHORIZATION_FAILED and no directories).
/// `topics` null asks for every hosted replica; named partitions this node does not host are
/// left out, as Kafka leaves them out.
pub fn handle(broker: &Arc<Broker>, req: DescribeLogDirsRequest, session: &Session) -> DescribeLogDirsResponse {
    if !broker.authz(session).allows_cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.topic.as_str() == topic && t.partitions.contains(&index)),
    };
    let mut by_topic: BTreeMap<Arc<str>, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in broker.replicas.all() {
        if !wanted(&p.topic, p.index) {
            continue;
        }
        // A replica being closed or deleted under us is simply not described.
        let (Ok(size), Ok(end)) = (p.size_bytes(), p.log_end_offset()) else { continue };
        // Kafka's lag of a current (not future) replica: how far its log end is below the high
        // watermark it knows (0 on a leader; a follower's distance from what is committed).
        let lag = (p.high_watermark() - end).max(0);
        by_topic.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default().with_partition_index(p.index).with_partition_size(size as i64).with_offset_lag(lag).with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_string(name.to_string()))).with_partitions(partitions)
        })
        .collect();
    let dir = &broker.config.log_dir;
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    // The disk guard's reading of the file system (bytes this process may still write).
    let (total, usable) = crate::disk_guard::space(dir)
        .map(|(free, total)| (i64::try_from(total).unwrap_or(i64::MAX), i64::try_from(free).unwrap_or(i64::MAX)))
        .unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(shown.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
