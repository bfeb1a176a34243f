//! The transaction coordinator as the broker runs it: the pure state machine of
//! `strom_coordinator::txn` behind one lock, its log in the internal compacted topic
//! `__transaction_state`, and the markers it has written to partition leaders.
//!
//! The state machine never applies a change before it is in the log (Kafka's `pendingState`): a
//! request that changes a transaction gets back the record to append; this service appends it,
//! waits until the partition's in-sync replicas have it, and reports the outcome, which applies
//! the change and yields the client's answer. That report runs in a task of its own, so a client
//! that disconnects meanwhile cannot leave a transaction pending forever. Follow-up work (markers
//! after a PrepareCommit/PrepareAbort, the Complete record after the markers, the aborts of timed
//! out transactions) runs the same way, in background tasks.
//!
//! Why a transaction always ends: every transaction the coordinator knows is either decided (a
//! Prepare* record in the log, whose markers this service or, after a failover, the partition's
//! next leader writes until every partition has one) or Ongoing, which its timeout aborts. A
//! partition leader appends a transactional batch only for a producer whose transaction already
//! holds that partition (KIP-890 verification or implicit add, `check_partition`), so no batch can open
//! a transaction that the coordinator does not know and would never end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use strom_config::BrokerConfig;
use strom_controller::Controller;
use strom_coordinator::txn::{
    decode_batch, decode_record, encode_batch, AppendOutcome, TopicPartition, TransactionCoordinator, TransactionVersion, TxnAppend, TxnConfig, TxnEffect, TxnReply,
    TxnResponse,
};
use strom_storage::TxnMarker;

use crate::clock::now_ms;
use crate::coordinator_topic::{CoordinatorTopic, TopicSpec, TRANSACTION_STATE_TOPIC};
use crate::group_service::GroupService;
use crate::partition::PartitionError;
use crate::producer_ids::ProducerIds;
use crate::replica_manager::{LeadershipChanges, ReplicaManager};
use crate::peers::Peers;
use crate::sync::lock;
use crate::topics::TopicAdmin;
use crate::txn_markers::MarkerWriter;

/// How long a partition leader waits for a remote coordinator's verification.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a partition leader asks the coordinator about a transactional write (Kafka's
/// `TransactionSupportedOperation`, chosen by the request's version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCheck {
    /// Is the partition in the producer's ongoing transaction? (KIP-890 part 1)
    Verify,
    /// Add it to the producer's transaction (KIP-890 part 2: transactions v2 clients send no
    /// AddPartitionsToTxn/AddOffsetsToTxn).
    Add,
}

/// A coordinator that cannot answer now (loading, moving, between two states): worth a retry.
pub fn is_busy(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::ConcurrentTransactions
            | ResponseError::NetworkException
            | ResponseError::RequestTimedOut
    )
}

pub struct TxnService {
    /// `__transaction_state`: creation, which partitions are loaded, replay.
    pub(crate) topic: Arc<CoordinatorTopic>,
    pub(crate) markers: Arc<MarkerWriter>,
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    producer_ids: Arc<ProducerIds>,
    coordinator: Mutex<TransactionCoordinator>,
    /// `transaction.partition.verification.enable`
    verification: bool,
    /// Connections to other brokers, for KIP-890 checks with their coordinators (shared with
    /// the marker writer).
    peers: Arc<Peers>,
}

impl TxnService {
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        metadata: Arc<Controller>,
        topics: Arc<TopicAdmin>,
        groups: Arc<GroupService>,
        producer_ids: Arc<ProducerIds>,
    ) -> Self {
        let t = &config.transactions;
        let spec = TopicSpec {
            name: TRANSACTION_STATE_TOPIC,
            partitions: t.state_log_num_partitions,
            replication_factor: t.state_log_replication_factor,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), t.state_log_segment_bytes.to_string()),
                ("min.insync.replicas".to_string(), t.state_log_min_isr.to_string()),
            ]),
        };
        let txn_config = TxnConfig {
            transaction_max_timeout_ms: t.max_timeout_ms,
            transactional_id_expiration_ms: t.transactional_id_expiration_ms,
            abort_timed_out_transaction_cleanup_interval_ms: t.abort_timed_out_interval_ms as i64,
            remove_expired_transaction_cleanup_interval_ms: t.remove_expired_interval_ms as i64,
            // The level ApiVersions finalizes: it picks the record format and the rules of the
            // aborts the coordinator starts itself; each client's own level comes from its requests.
            transaction_version: TransactionVersion::FINALIZED,
        };
        let voters = config.cluster.voters.len();
        let peers = Arc::new(Peers::new(config.node_id, replicas.clone(), metadata.clone()));
        TxnService {
            markers: Arc::new(MarkerWriter::new(config.node_id, replicas.clone(), metadata.clone(), groups, peers.clone())),
            topic: Arc::new(CoordinatorTopic::new(spec, config.node_id, voters, replicas.clone(), metadata.clone(), topics)),
            node_id: config.node_id,
            replicas,
            producer_ids,
            coordinator: Mutex::new(TransactionCoordinator::new(txn_config)),
            verification: t.partition_verification,
            peers,
        }
    }

    /// Coordination follows the leadership of `__transaction_state` partitions: a gained one is
    /// replayed (and the markers of transactions its predecessor left decided but unfinished are
    /// written), a lost one forgotten. Blocking (it reads logs).
    pub fn leadership_changed(self: &Arc<Self>, changes: &LeadershipChanges) {
        let moves = self.topic.moves(changes);
        for p in &moves.lost {
            lock(&self.coordinator).unload_partition(p.index);
            tracing::info!(partition = p.index, "no longer coordinating the transactions of this partition");
        }
        for p in moves.gained {
            let epoch = p.leader_epoch();
            let started = std::time::Instant::now();
            let (mut records, mut bad) = (Vec::new(), 0u64);
            let complete = self.topic.replay(&p, |header, batch| {
                if header.is_control() {
                    return;
                }
                match decode_batch(batch) {
                    Ok(rs) => {
                        for (key, value, offset) in rs {
                            match decode_record(&key, value.as_deref()) {
                                Ok(r) => records.push(r),
                                Err(e) => {
                                    bad += 1;
                                    tracing::warn!(partition = p.index, offset, error = %e, "skipping a transaction-log record");
                                }
                            }
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        tracing::error!(partition = p.index, offset = header.base_offset, error = %e, "skipping an undecodable transaction-log batch");
                    }
                }
            });
            if !complete {
                tracing::error!(partition = p.index, "the transactions of this partition are loaded from part of its log only");
            }
            let n = records.len();
            let fx = lock(&self.coordinator).load_partition(p.index, epoch, records, now_ms());
            self.topic.loaded(p.index, epoch);
            tracing::info!(partition = p.index, records = n, skipped = bad, ms = started.elapsed().as_millis() as u64, "loaded the transactions of a partition");
            self.spawn_effects(fx);
        }
        if changes.registered && self.topic.registered() {
            tracing::info!("transaction coordinator ready");
        }
    }

    pub async fn init_producer_id(self: &Arc<Self>, transactional_id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> Result<(i64, i16), ResponseError> {
        self.topic.ready_for(transactional_id)?;
        // A new producer id may be needed; the block is refilled here, where waiting is allowed.
        self.producer_ids.ensure_available().await.map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        let partition = self.topic.partition_of(transactional_id);
        let ids = self.producer_ids.clone();
        let r = self
            .request(|c| {
                let mut alloc = || ids.take().ok_or(ResponseError::CoordinatorLoadInProgress);
                c.init_producer_id(transactional_id, timeout_ms, expected, partition, now_ms(), &mut alloc)
            })
            .await;
        match r.error {
            None => Ok((r.producer_id, r.producer_epoch)),
            Some(e) => Err(e),
        }
    }

    /// AddPartitionsToTxn, AddOffsetsToTxn and the implicit adds of transactions v2: one answer
    /// for all the partitions. `client_version` is the version of the transaction protocol the
    /// request comes from (recorded with the transaction).
    pub async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
        client_version: TransactionVersion,
    ) -> Result<(), ResponseError> {
        self.topic.ready_for(transactional_id)?;
        let tps: Vec<TopicPartition> = partitions.iter().map(|(t, p)| TopicPartition::new(t, *p)).collect();
        let r = self.request(|c| c.add_partitions(transactional_id, producer_id, epoch, tps, client_version, now_ms())).await;
        r.map_or(Ok(()), Err)
    }

    /// KIP-890 part 1, verify-only: for each partition, whether it is in the producer's ongoing
    /// transaction (`None`) or the error a partition leader must refuse its batch with.
    pub fn verify(self: &Arc<Self>, transactional_id: &str, producer_id: i64, epoch: i16, partitions: &[(String, i32)]) -> Vec<Option<ResponseError>> {
        if let Err(code) = self.topic.ready_for(transactional_id) {
            return vec![Some(code); partitions.len()];
        }
        let tps = partitions.iter().map(|(t, p)| TopicPartition::new(t, *p));
        lock(&self.coordinator).verify_partitions(transactional_id, producer_id, epoch, tps).into_iter().map(|(_, e)| e).collect()
    }

    /// EndTxn; `version` is the request's (v5+ is transactions v2).
    pub async fn end_txn(self: &Arc<Self>, transactional_id: &str, producer_id: i64, epoch: i16, commit: bool, version: i16) -> Result<(i64, i16), ResponseError> {
        self.topic.ready_for(transactional_id)?;
        let client_version = TransactionVersion::for_end_txn(version);
        self.producer_ids.ensure_available().await.map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        let ids = self.producer_ids.clone();
        let r = self
            .request(|c| {
                let mut alloc = || ids.take().ok_or(ResponseError::CoordinatorLoadInProgress);
                c.end_txn(transactional_id, producer_id, epoch, commit, client_version, now_ms(), &mut alloc)
            })
            .await;
        match r.error {
            None => Ok((r.producer_id, r.producer_epoch)),
            Some(e) => Err(e),
        }
    }

    /// Read-only access (DescribeTransactions, ListTransactions).
    pub fn read<R>(&self, f: impl FnOnce(&TransactionCoordinator) -> R) -> R {
        f(&lock(&self.coordinator))
    }

    /// Timeouts: aborts transactions open past their timeout, expires idle ids.
    pub fn tick(self: &Arc<Self>) {
        if !self.topic.is_loaded() {
            return;
        }
        let ids = self.producer_ids.clone();
        let fx = {
            let mut alloc = || ids.take().ok_or(ResponseError::CoordinatorLoadInProgress);
            lock(&self.coordinator).tick(now_ms(), &mut alloc)
        };
        self.spawn_effects(fx);
    }

    /// Before a partition leader appends a transactional batch of a producer that has no
    /// transaction open there under that epoch: the coordinator, here or on its broker, checks
    /// the partition against the producer's transaction. Transactions v1 clients added it
    /// themselves, so it is only verified (KIP-890 part 1, if
    /// `transaction.partition.verification.enable`); transactions v2 clients do not, so the
    /// leader adds it (KIP-890 part 2, always). Returns the coordinator's answer, which each
    /// caller maps for its own client.
    pub async fn check_partition(self: &Arc<Self>, transactional_id: &str, producer_id: i64, epoch: i16, check: TxnCheck, (topic, partition): (&str, i32)) -> Option<ResponseError> {
        if check == TxnCheck::Verify && !self.verification {
            return None;
        }
        let tp = vec![(topic.to_string(), partition)];
        match self.topic.coordinator_of(transactional_id) {
            Some(c) if c == self.node_id => match check {
                TxnCheck::Verify => self.verify(transactional_id, producer_id, epoch, &tp).into_iter().next().flatten(),
                TxnCheck::Add => self.add_partitions(transactional_id, producer_id, epoch, tp, TransactionVersion::Tv2).await.err(),
            },
            Some(c) => self.check_remote(c, transactional_id, producer_id, epoch, check, topic, partition).await,
            None => Some(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// [`Self::check_partition`] for a Produce, mapped as Kafka's `AddPartitionsToTxnManager` and
    /// `ReplicaManager` map it: a partition not in the transaction is INVALID_TXN_STATE
    /// (TRANSACTION_ABORTABLE from Produce v11, whose clients know it), a fenced producer
    /// INVALID_PRODUCER_EPOCH, a coordinator that cannot answer now NOT_ENOUGH_REPLICAS
    /// (retriable for every producer). Produce v12+ comes from a transactions v2 client.
    pub async fn check_for_produce(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        tp: (&str, i32),
        produce_version: i16,
    ) -> Result<(), ResponseError> {
        let check = if produce_version >= 12 { TxnCheck::Add } else { TxnCheck::Verify };
        match self.check_partition(transactional_id, producer_id, epoch, check, tp).await {
            None => Ok(()),
            Some(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
            Some(ResponseError::TransactionAbortable) if produce_version >= 11 => Err(ResponseError::TransactionAbortable),
            Some(ResponseError::TransactionAbortable) => Err(ResponseError::InvalidTxnState),
            Some(e) if is_busy(e) => Err(ResponseError::NotEnoughReplicas),
            Some(other) => Err(other),
        }
    }

    /// AddPartitionsToTxn to the coordinator on another broker: v4 verify-only, or v5 adding.
    #[allow(clippy::too_many_arguments)]
    async fn check_remote(&self, coordinator: i32, transactional_id: &str, producer_id: i64, epoch: i16, check: TxnCheck, topic: &str, partition: i32) -> Option<ResponseError> {
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(check == TxnCheck::Verify)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])])]);
        let version = match check {
            TxnCheck::Verify => 4,
            TxnCheck::Add => 5,
        };
        // Any failure to ask is "cannot answer now" (the producer retries), never a pass.
        let response = match self.peers.call(coordinator, version, &request, VERIFY_TIMEOUT).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(coordinator, error = %e, "transaction check failed");
                return Some(ResponseError::CoordinatorNotAvailable);
            }
        };
        if response.error_code != 0 {
            return Some(ResponseError::try_from_code(response.error_code).unwrap_or(ResponseError::UnknownServerError));
        }
        let code = response
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .find(|p| p.partition_index == partition)
            .map_or(ResponseError::UnknownServerError.code(), |p| p.partition_error_code);
        (code != 0).then(|| ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
    }

    /// Runs one request on the state machine. When it must append first, the append, its
    /// report and the follow-up work run in a task of their own (see the module docs), whose
    /// answer this awaits.
    async fn request<R: TxnResponse + Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut TransactionCoordinator) -> TxnReply<R>) -> R {
        let reply = f(&mut lock(&self.coordinator));
        match reply {
            TxnReply::Now(r) => r,
            TxnReply::AfterAppend { append, then } => {
                let me = self.clone();
                let task = tokio::spawn(async move {
                    let outcome = me.append_and_report(&append).await;
                    let answer = outcome.reply(then);
                    me.spawn_effects(outcome.effects);
                    answer
                });
                task.await.unwrap_or_else(|_| R::error(ResponseError::CoordinatorNotAvailable))
            }
        }
    }

    /// Appends a record to its `__transaction_state` partition, waits for its replication, and
    /// reports the outcome to the state machine.
    async fn append_and_report(&self, append: &TxnAppend) -> AppendOutcome {
        let result = self.append(append).await;
        if let Err(e) = result {
            tracing::debug!(transactional_id = append.transactional_id, error = ?e, "transaction-log append failed");
        }
        lock(&self.coordinator).append_completed(append, result, now_ms())
    }

    /// Kafka's mapping of transaction-log append failures to coordinator errors
    /// (`TransactionStateManager.appendTransactionToLog`).
    async fn append(&self, append: &TxnAppend) -> Result<(), ResponseError> {
        let partition = self
            .replicas
            .partition(TRANSACTION_STATE_TOPIC, append.partition)
            .filter(|p| p.is_leader() && p.leader_epoch() == append.coordinator_epoch)
            .ok_or(ResponseError::NotCoordinator)?;
        if !partition.enough_replicas() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let now = now_ms();
        let buf = encode_batch(std::slice::from_ref(append), now).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a transaction-log batch");
            ResponseError::UnknownServerError
        })?;
        let info = partition.append(&buf, now).map_err(|e| match e {
            PartitionError::Closed | PartitionError::NotLeader(_) => ResponseError::NotCoordinator,
            PartitionError::Storage(strom_storage::StorageError::MessageTooLarge { .. }) => ResponseError::UnknownServerError,
            e => {
                tracing::error!(error = %e, "cannot append to the transaction log");
                ResponseError::NotCoordinator
            }
        })?;
        let timeout = Duration::from_millis(append.timeout_ms.max(1000) as u64);
        partition.wait_replicated(info.last_offset + 1, append.coordinator_epoch, timeout).await.map_err(|e| match e {
            ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
            _ => ResponseError::CoordinatorNotAvailable,
        })
    }

    /// Runs the coordinator's own work in the background: appends (reported when done) and
    /// markers (then `markers_written`, whose Complete record is appended in turn).
    fn spawn_effects(self: &Arc<Self>, effects: Vec<TxnEffect>) {
        for effect in effects {
            let me = self.clone();
            match effect {
                TxnEffect::Append(append) => {
                    tokio::spawn(async move {
                        let outcome = me.append_and_report(&append).await;
                        me.spawn_effects(outcome.effects);
                    });
                }
                TxnEffect::WriteMarkers { transactional_id, producer_id, producer_epoch, coordinator_epoch, commit, partitions, .. } => {
                    tokio::spawn(async move {
                        let marker = TxnMarker { producer_id, producer_epoch, commit, coordinator_epoch };
                        let tps = partitions.into_iter().map(|tp| (tp.topic, tp.partition)).collect();
                        let partition = me.topic.partition_of(&transactional_id);
                        let still = || lock(&me.coordinator).loaded_epoch(partition) == Some(coordinator_epoch);
                        if !me.markers.send(marker, tps, still).await {
                            return;
                        }
                        let fx = lock(&me.coordinator).markers_written(&transactional_id, producer_id, producer_epoch, coordinator_epoch, now_ms());
                        me.spawn_effects(fx);
                    });
                }
            }
        }
    }
}
