//! Transaction markers: the commit or abort control batch a transaction coordinator writes to
//! every partition of a transaction once its outcome is decided (KIP-98's WriteTxnMarkers).
//!
//! `write_local` is what a partition leader does with them, whoever asked: it appends the marker
//! to each partition it leads, waits until every in-sync replica has it (Kafka appends markers
//! with acks=all: a marker lost in a failover would leave the transaction open on the new
//! leader), and tells the group coordinator about markers in `__consumer_offsets`, whose
//! transactional offset commits become visible (commit) or are dropped (abort). `send` is the
//! coordinator's side: markers for partitions led here are written directly, the rest go to
//! their leaders as WriteTxnMarkers requests, and failures are retried until every partition has
//! its marker or no longer exists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use strom_controller::Controller;
use strom_storage::TxnMarker;

use crate::clock::now_ms;
use crate::coordinator_topic::OFFSETS_TOPIC;
use crate::group_service::GroupService;
use crate::replica_manager::ReplicaManager;
use crate::peers::Peers;

/// How long one attempt waits for a marker to be replicated, or for a remote leader to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before retrying partitions whose marker could not be written (no leader, a leader
/// that moved, too few in-sync replicas).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

pub struct MarkerWriter {
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    metadata: Arc<Controller>,
    groups: Arc<GroupService>,
    peers: Arc<Peers>,
}

/// A partition by name and index.
pub type Tp = (String, i32);

impl MarkerWriter {
    pub fn new(node_id: i32, replicas: Arc<ReplicaManager>, metadata: Arc<Controller>, groups: Arc<GroupService>, peers: Arc<Peers>) -> Self {
        MarkerWriter { node_id, replicas, metadata, groups, peers }
    }

    /// Writes `marker` to each of `partitions` this broker leads; an error per partition that
    /// did not get it (NOT_LEADER_OR_FOLLOWER and the like: the coordinator retries).
    pub async fn write_local(&self, marker: &TxnMarker, partitions: &[Tp]) -> Vec<Option<ResponseError>> {
        let now = now_ms();
        let mut waits = Vec::with_capacity(partitions.len());
        for (topic, index) in partitions {
            let appended = match self.replicas.leader(topic, *index) {
                Ok(p) => {
                    let epoch = p.leader_epoch();
                    match p.append_marker(marker, now) {
                        Ok(info) => Ok((p, info.last_offset + 1, epoch)),
                        Err(e) => {
                            tracing::debug!(topic, partition = index, error = %e, "transaction marker refused");
                            Err(e.code())
                        }
                    }
                }
                Err(code) => Err(code),
            };
            waits.push(appended);
        }
        // read_committed readers waiting at the old last stable offset may read on.
        self.replicas.data_arrived.notify_waiters();
        let mut out = Vec::with_capacity(partitions.len());
        for ((topic, index), appended) in partitions.iter().zip(waits) {
            let result = match appended {
                Ok((p, end, epoch)) => p.wait_replicated(end, epoch, ATTEMPT_TIMEOUT).await,
                Err(code) => Err(code),
            };
            if result.is_ok() && topic == OFFSETS_TOPIC {
                self.groups.transaction_completed(marker.producer_id, marker.commit, *index);
            }
            out.push(result.err());
        }
        out
    }

    /// Writes `marker` to every one of `partitions`, wherever its leader is, retrying until each
    /// has it or no longer exists (a deleted topic needs no marker). Returns true when all are
    /// done, false when `still_coordinator` says this broker stopped coordinating the
    /// transaction (its successor writes the markers again) or a leader fenced this coordinator.
    pub async fn send(&self, marker: TxnMarker, partitions: Vec<Tp>, still_coordinator: impl Fn() -> bool) -> bool {
        let mut pending = partitions;
        let mut logged = false;
        while !pending.is_empty() {
            if !still_coordinator() {
                return false;
            }
            let image = self.metadata.image();
            // By leader; partitions that no longer exist are dropped, leaderless ones retried.
            let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
            let mut retry = Vec::new();
            for tp in pending {
                match image.topic(&tp.0).map(|t| t.partition(tp.1).map(|p| p.leader)) {
                    None | Some(None) => tracing::info!(topic = tp.0, partition = tp.1, "no transaction marker for a partition that no longer exists"),
                    Some(Some(leader)) if leader >= 0 => by_leader.entry(leader).or_default().push(tp),
                    Some(Some(_)) => retry.push(tp),
                }
            }
            for (leader, tps) in by_leader {
                let errors = if leader == self.node_id {
                    self.write_local(&marker, &tps).await
                } else {
                    self.write_remote(leader, &marker, &tps).await
                };
                if errors.iter().any(|e| matches!(e, Some(ResponseError::TransactionCoordinatorFenced))) {
                    tracing::info!(producer_id = marker.producer_id, "a partition leader fenced this transaction coordinator; its successor writes the markers");
                    return false;
                }
                retry.extend(tps.into_iter().zip(errors).filter_map(|(tp, e)| e.map(|_| tp)));
            }
            pending = retry;
            if !pending.is_empty() {
                if !logged {
                    tracing::info!(producer_id = marker.producer_id, partitions = pending.len(), "retrying transaction markers");
                    logged = true;
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
        true
    }

    /// One WriteTxnMarkers request to broker `leader`; every partition fails when the request does.
    async fn write_remote(&self, leader: i32, marker: &TxnMarker, tps: &[Tp]) -> Vec<Option<ResponseError>> {
        let all_failed = |code| vec![Some(code); tps.len()];
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, i) in tps {
            topics.entry(t.as_str()).or_default().push(*i);
        }
        let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps))
                    .collect(),
            )]);
        let response = match self.peers.call(leader, 1, &request, ATTEMPT_TIMEOUT * 2).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, error = %e, "WriteTxnMarkers failed");
                return all_failed(ResponseError::NetworkException);
            }
        };
        let mut errors: BTreeMap<(String, i32), i16> = BTreeMap::new();
        for m in response.markers {
            for t in m.topics {
                for p in t.partitions {
                    errors.insert((t.name.to_string(), p.partition_index), p.error_code);
                }
            }
        }
        tps.iter()
            .map(|tp| match errors.get(tp) {
                Some(0) => None,
                Some(&code) => Some(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError)),
                None => Some(ResponseError::UnknownServerError),
            })
            .collect()
    }
}
