//! The request quota's plumbing: the handler time a request costs (`Timed`), which requests are
//! exempt, and the throttle time field of every response that has one.

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{RequestKind, ResponseKind};

/// Handler time as Kafka records it for `request_percentage`: percent-seconds of one core
/// (one second of work is 100).
pub fn percent_seconds(busy: Duration) -> f64 {
    busy.as_secs_f64() * 100.0
}

/// Runs `f` and adds up the time spent inside its polls: the time a worker thread ran the
/// request's handler, not the time the handler waited.
pub async fn timed<F: Future>(f: F) -> (F::Output, Duration) {
    let mut f = std::pin::pin!(f);
    let mut busy = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let started = Instant::now();
        let polled = f.as_mut().poll(cx);
        busy += started.elapsed();
        polled
    })
    .await;
    (out, busy)
}

/// Requests the request quota neither counts nor throttles, as Kafka's `KafkaApis` answers them
/// with `sendResponseExemptThrottle`: the cluster's own work (a follower's Fetch, transaction
/// markers). The SASL exchange is the connection's, before any principal is known.
pub fn exempt(request: &RequestKind) -> bool {
    match request {
        RequestKind::Fetch(r) => r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0,
        RequestKind::WriteTxnMarkers(_) | RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => true,
        _ => false,
    }
}

/// Runs `$body` with `$r` bound to the response of every kind that has a throttle time field
/// (as far as Strom serves them); `$other` for the rest.
macro_rules! with_throttle_field {
    ($resp:expr, $r:ident => $body:expr, $other:expr) => {
        match $resp {
            ResponseKind::Produce($r) => $body,
            ResponseKind::Fetch($r) => $body,
            ResponseKind::ListOffsets($r) => $body,
            ResponseKind::Metadata($r) => $body,
            ResponseKind::OffsetCommit($r) => $body,
            ResponseKind::OffsetFetch($r) => $body,
            ResponseKind::FindCoordinator($r) => $body,
            ResponseKind::JoinGroup($r) => $body,
            ResponseKind::Heartbeat($r) => $body,
            ResponseKind::LeaveGroup($r) => $body,
            ResponseKind::SyncGroup($r) => $body,
            ResponseKind::DescribeGroups($r) => $body,
            ResponseKind::ListGroups($r) => $body,
            ResponseKind::ApiVersions($r) => $body,
            ResponseKind::CreateTopics($r) => $body,
            ResponseKind::DeleteTopics($r) => $body,
            ResponseKind::DeleteRecords($r) => $body,
            ResponseKind::InitProducerId($r) => $body,
            ResponseKind::OffsetForLeaderEpoch($r) => $body,
            ResponseKind::AddPartitionsToTxn($r) => $body,
            ResponseKind::AddOffsetsToTxn($r) => $body,
            ResponseKind::EndTxn($r) => $body,
            ResponseKind::TxnOffsetCommit($r) => $body,
            ResponseKind::DescribeAcls($r) => $body,
            ResponseKind::CreateAcls($r) => $body,
            ResponseKind::DeleteAcls($r) => $body,
            ResponseKind::DescribeConfigs($r) => $body,
            ResponseKind::AlterConfigs($r) => $body,
            ResponseKind::DescribeLogDirs($r) => $body,
            ResponseKind::CreatePartitions($r) => $body,
            ResponseKind::DeleteGroups($r) => $body,
            ResponseKind::ElectLeaders($r) => $body,
            ResponseKind::IncrementalAlterConfigs($r) => $body,
            ResponseKind::AlterPartitionReassignments($r) => $body,
            ResponseKind::ListPartitionReassignments($r) => $body,
            ResponseKind::OffsetDelete($r) => $body,
            ResponseKind::DescribeClientQuotas($r) => $body,
            ResponseKind::AlterClientQuotas($r) => $body,
            ResponseKind::DescribeUserScramCredentials($r) => $body,
            ResponseKind::AlterUserScramCredentials($r) => $body,
            ResponseKind::DescribeCluster($r) => $body,
            ResponseKind::DescribeProducers($r) => $body,
            ResponseKind::DescribeTransactions($r) => $body,
            ResponseKind::ListTransactions($r) => $body,
            ResponseKind::ConsumerGroupHeartbeat($r) => $body,
            ResponseKind::ConsumerGroupDescribe($r) => $body,
            ResponseKind::DescribeTopicPartitions($r) => $body,
            ResponseKind::ShareGroupHeartbeat($r) => $body,
            ResponseKind::ShareGroupDescribe($r) => $body,
            ResponseKind::ShareFetch($r) => $body,
            ResponseKind::ShareAcknowledge($r) => $body,
            ResponseKind::DescribeShareGroupOffsets($r) => $body,
            ResponseKind::AlterShareGroupOffsets($r) => $body,
            ResponseKind::DeleteShareGroupOffsets($r) => $body,
            _ => $other,
        }
    };
}

/// The response's throttle time (0 for a kind without one).
pub fn get(response: &ResponseKind) -> i32 {
    with_throttle_field!(response, r => r.throttle_time_ms, 0)
}

/// Raises the response's throttle time to at least `ms` (Kafka answers the larger of the byte
/// rate's and the request quota's).
pub fn raise(response: &mut ResponseKind, ms: i32) {
    with_throttle_field!(response, r => r.throttle_time_ms = r.throttle_time_ms.max(ms), ())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{DescribeQuorumResponse, MetadataResponse, ProduceResponse};

    use super::*;

    #[test]
    fn raises_the_field_where_there_is_one() {
        let mut m = ResponseKind::Metadata(MetadataResponse::default());
        raise(&mut m, 30);
        assert_eq!(get(&m), 30);
        let mut p = ResponseKind::Produce(ProduceResponse::default().with_throttle_time_ms(500));
        raise(&mut p, 30);
        assert_eq!(get(&p), 500, "the larger throttle wins");
        let mut q = ResponseKind::DescribeQuorum(DescribeQuorumResponse::default());
        raise(&mut q, 30);
        assert_eq!(get(&q), 0, "no field, nothing to raise");
    }

    #[test]
    fn timed_counts_polls_not_waits() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut f = Box::pin(timed(async move {
            let _ = rx.await;
            // Work inside a poll counts.
            std::thread::sleep(Duration::from_millis(20));
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        // Time between polls, while the handler waits, does not.
        std::thread::sleep(Duration::from_millis(300));
        let _ = tx.send(());
        let std::task::Poll::Ready(((), busy)) = f.as_mut().poll(&mut cx) else { panic!("the future did not finish") };
        assert!(busy >= Duration::from_millis(20) && busy < Duration::from_millis(300), "{busy:?}");
    }
}
