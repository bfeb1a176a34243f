//! The group coordinator as the broker runs it: the pure state machine of `strom_coordinator::group`
//! behind one lock, its log in the internal compacted topic `__consumer_offsets`, parked
//! JoinGroup/SyncGroup requests, timers, and the replay of the log on start.
//!
//! Why one `std` mutex for every group: each call is a few map operations plus, at most, one
//! `pwrite` of a small batch to a page-cached file, so contention costs less than the sharding
//! would; nothing is awaited while it is held. A parked request waits on a oneshot channel
//! outside the lock.
//!
//! Persistence follows Kafka's order: the records a call produces are appended to the group's
//! offsets partition, and replicated to its in-sync replicas (its high watermark passes them,
//! as for a produce with acks=all), *before* any response of that call is released. So an
//! acknowledged commit survives a crash of the process (the page cache keeps it) and a failover
//! of the offsets partition (the new leader has it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use strom_config::BrokerConfig;
use strom_controller::Controller;
use strom_coordinator::consumer_group::{
    is_consumer_group_key, ConsumerGroupCoordinator, DescribedConsumerGroup, HeartbeatRequest as ConsumerHeartbeat, HeartbeatResponse as ConsumerHeartbeatResponse, OffsetAccess, RawRecord, TopicMeta, Topics,
};
use strom_coordinator::share_group::{is_share_group_key, is_share_state_key};
use strom_coordinator::group::{
    encode_batch, encode_txn_batch, read_batch, TxnOffsetCommitRequest, Effect, ErrorCode, GroupCoordinator, HeartbeatRequest, JoinOutcome, JoinRequest, JoinResponse, LeaveMember, LeaveResponse, LogRecord, OffsetCommitRequest, PartitionResult,
    SyncOutcome, SyncRequest, SyncResponse, Ticket,
};

use crate::clock::now_ms;
use crate::coordinator_topic::{partition_for, CoordinatorTopic, TopicSpec};
use crate::partition::Partition;
use crate::replica_manager::{LeadershipChanges, ReplicaManager};
use crate::sync::lock;
use crate::topics::TopicAdmin;

pub use crate::coordinator_topic::OFFSETS_TOPIC;

mod group_configs;
mod share;

pub struct GroupService {
    replicas: Arc<ReplicaManager>,
    /// `__consumer_offsets`: creation, which partitions are loaded, replay.
    pub(crate) topic: Arc<CoordinatorTopic>,
    state: Mutex<State>,
    /// `offsets.commit.timeout.ms`: how long an answer waits for its records to be replicated.
    commit_timeout: Duration,
    /// The topics KIP-848 groups are assigned from.
    metadata: Arc<Controller>,
    /// Those topics as the assignors take them, built once per metadata image (a heartbeat
    /// must not walk every topic and partition of the cluster), with the image version.
    topics_cache: Mutex<Option<(u64, Arc<Topics>)>>,
    /// The broker's group settings, which a group's configs in the image override (`group_configs.rs`).
    config: Arc<BrokerConfig>,
}

struct State {
    coordinator: GroupCoordinator,
    /// KIP-848 consumer groups, beside the classic ones: a group id is one or the other. Their
    /// committed offsets are kept with the classic coordinator's (one offsets store per group id,
    /// as in Kafka), which `commit_offsets` reaches once the member epoch is checked here.
    consumer: ConsumerGroupCoordinator,
    /// KIP-932 share groups and their share partitions (`share.rs`).
    share: strom_coordinator::share_group::ShareGroupCoordinator,
    joins: HashMap<Ticket, oneshot::Sender<JoinResponse>>,
    /// A parked member's answer comes with the appends it must see replicated before it leaves.
    syncs: HashMap<Ticket, oneshot::Sender<(SyncResponse, Replication)>>,
}

impl GroupService {
    pub fn new(config: Arc<BrokerConfig>, replicas: Arc<ReplicaManager>, metadata: Arc<Controller>, topics: Arc<TopicAdmin>) -> Self {
        let g = &config.groups;
        let spec = TopicSpec {
            name: OFFSETS_TOPIC,
            partitions: g.offsets_topic_num_partitions,
            replication_factor: g.offsets_topic_replication_factor,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), g.offsets_topic_segment_bytes.to_string()),
            ]),
        };
        let voters = config.cluster.voters.len();
        GroupService {
            commit_timeout: Duration::from_millis(g.offsets_commit_timeout_ms),
            state: Mutex::new(State {
                coordinator: GroupCoordinator::new(g.coordinator.clone()),
                consumer: ConsumerGroupCoordinator::new(g.consumer.clone()),
                share: strom_coordinator::share_group::ShareGroupCoordinator::new(g.share.clone()),
                joins: HashMap::new(),
                syncs: HashMap::new(),
            }),
            topic: Arc::new(CoordinatorTopic::new(spec, config.node_id, voters, replicas.clone(), metadata.clone(), topics)),
            metadata,
            replicas,
            topics_cache: Mutex::new(None),
            config,
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.topic.is_loaded()
    }

    /// Whether requests about all of this coordinator's groups (ListGroups) can be answered
    /// (see `CoordinatorTopic::all_loaded`).
    pub fn all_loaded(&self) -> Result<(), ResponseError> {
        self.topic.all_loaded()
    }

    /// Whether this broker coordinates `group_id` now (see `CoordinatorTopic::ready_for`): else
    /// NOT_COORDINATOR (the client asks FindCoordinator again, as after a coordinator move in
    /// Kafka) or COORDINATOR_LOAD_IN_PROGRESS (it retries).
    pub fn ready_for(&self, group_id: &str) -> Result<(), ResponseError> {
        self.topic.ready_for(group_id).map(|_| ())
    }

    /// Group coordination follows the leadership of `__consumer_offsets` partitions, as in
    /// Kafka: for a partition this broker now leads, its groups and committed offsets are
    /// replayed from the log (requests for them get COORDINATOR_LOAD_IN_PROGRESS meanwhile);
    /// for one it no longer leads, its groups are dropped and their parked requests answered
    /// NOT_COORDINATOR, so their clients look for the new coordinator. Blocking (it reads logs).
    pub fn leadership_changed(&self, changes: &LeadershipChanges) {
        let moves = self.topic.moves(changes);
        if !moves.is_empty() {
            let n = self.topic.partitions();
            let moved = moves.indexes();
            let mut state = lock(&self.state);
            let (joins, syncs) = state.coordinator.unload(|g| moved.contains(&partition_for(g, n)));
            state.consumer.unload(|g| moved.contains(&partition_for(g, n)));
            state.share.unload(|g| moved.contains(&partition_for(g, n)));
            for t in joins {
                if let Some(tx) = state.joins.remove(&t) {
                    let _ = tx.send(JoinResponse::error(ResponseError::NotCoordinator, ""));
                }
            }
            for t in syncs {
                if let Some(tx) = state.syncs.remove(&t) {
                    let _ = tx.send((SyncResponse::error(ResponseError::NotCoordinator), Replication::default()));
                }
            }
            drop(state);
            for p in &moves.lost {
                tracing::info!(partition = p.index, "no longer coordinating the groups of this offsets partition");
            }
            for p in moves.gained {
                // The epoch this load is for: should another change come meanwhile, its own
                // call loads again, and until then requests are told to retry.
                let epoch = p.leader_epoch();
                self.load_partition(&p);
                self.topic.loaded(p.index, epoch);
            }
        }
        if changes.registered && self.topic.registered() {
            tracing::info!("group coordinator ready");
        }
    }

    /// Replays one offsets partition, batch by batch in log order: plain batches hold group and
    /// offset records, transactional ones pending offsets, control batches the markers that
    /// decide them. A record that cannot be decoded is logged and skipped; it never stops the
    /// broker.
    fn load_partition(&self, partition: &Partition) {
        let started = std::time::Instant::now();
        let (mut batches, mut bad) = (Vec::new(), 0u64);
        let complete = self.topic.replay(partition, |header, batch| match read_batch(batch) {
            Ok(b) => batches.push(b),
            Err(e) => {
                bad += 1;
                tracing::error!(partition = partition.index, offset = header.base_offset, error = %e, "skipping an undecodable offsets-topic batch");
            }
        });
        if !complete {
            tracing::error!(partition = partition.index, "the groups of this offsets partition are loaded from part of its log only");
        }
        let now = now_ms();
        let n = self.topic.partitions();
        let mut state = lock(&self.state);
        self.install_group_configs(&mut state, |g| partition_for(g, n) == partition.index);
        let records: usize = batches.iter().map(|b| b.records.len()).sum();
        for b in &batches {
            // KIP-848 groups' records (types 3 to 8) to their coordinator; the rest as before.
            // Share-partition state (Strom's own key version) and share groups' membership
            // (Kafka's types 10, 11, 14) to the share coordinator.
            let (share, rest): (Vec<_>, Vec<_>) = b.records.iter().cloned().partition(|(k, _, _)| !b.transactional && (is_share_state_key(k) || is_share_group_key(k)));
            for (key, value, offset) in share {
                let loaded = if is_share_group_key(&key) { state.share.load_member_record(&key, value.as_deref(), now) } else { state.share.load_record(&key, value.as_deref()) };
                if let Err(e) = loaded {
                    bad += 1;
                    tracing::warn!(partition = partition.index, offset, error = %e, "skipping a share-group record");
                }
            }
            let (consumer, classic): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(k, _, _)| !b.transactional && is_consumer_group_key(k));
            for (key, value, offset) in consumer {
                if let Err(e) = state.consumer.load_record(&key, value.as_deref(), now) {
                    bad += 1;
                    tracing::warn!(partition = partition.index, offset, error = %e, "skipping a consumer-group record");
                }
            }
            let b = &strom_coordinator::batch::DecodedBatch { records: classic, marker: b.marker, ..*b };
            for (offset, e) in state.coordinator.load_batch(b, |g| partition_for(g, n) == partition.index, now) {
                bad += 1;
                tracing::warn!(partition = partition.index, offset, error = %e, "skipping an offsets-topic record");
            }
        }
        drop(state);
        tracing::info!(partition = partition.index, records, skipped = bad, ms = started.elapsed().as_millis() as u64, "loaded the groups of an offsets partition");
    }

    /// Runs `f` on the coordinator and carries out its effects: appends the records, then
    /// releases completions, each with the appends it must see replicated. `f` may register
    /// waiters for the tickets it returns. The caller's own answer comes with the same.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut State) -> (R, Vec<Effect>),
    ) -> (R, Result<Replication, ResponseError>) {
        let mut state = lock(&self.state);
        let (r, mut fx) = f(&mut state);
        let persisted = self.persist(&fx);
        if persisted.is_err() {
            // A generation whose assignment is not in the log must not stay Stable in memory.
            // The rebalance this starts writes nothing that matters if it fails too (its record
            // is written again when the group settles), so it is tried once.
            let now = now_ms();
            let lost: Vec<(String, i32)> = fx
                .iter()
                .filter_map(|e| match e {
                    Effect::PersistGroup { group_id, record } => Some((group_id.clone(), record.generation_id)),
                    _ => None,
                })
                .collect();
            for (group_id, generation) in lost {
                let more = state.coordinator.assignment_not_stored(&group_id, generation, now);
                let _ = self.persist(&more);
                fx.extend(more);
            }
        }
        self.deliver(&mut state, fx, &persisted);
        (r, persisted)
    }

    /// Releases the completions among `fx`, each with the appends it must see replicated.
    fn deliver(&self, state: &mut State, fx: Vec<Effect>, persisted: &Result<Replication, ResponseError>) {
        for e in fx {
            match e {
                Effect::CompleteJoin { ticket, response } => {
                    if let Some(tx) = state.joins.remove(&ticket) {
                        let _ = tx.send(response);
                    }
                }
                Effect::CompleteSync { ticket, response } => {
                    // A member leaves SyncGroup with its assignment only once the group record
                    // holding it is replicated (it waits in its own request, see `sync`): a
                    // failover must not bring back a coordinator without it.
                    let answer = match persisted {
                        Ok(replication) => (response, replication.clone()),
                        Err(code) => (SyncResponse::error(*code), Replication::default()),
                    };
                    if let Some(tx) = state.syncs.remove(&ticket) {
                        let _ = tx.send(answer);
                    }
                }
                _ => {}
            }
        }
    }

    /// `call`, then the wait for its records to be replicated.
    async fn call_replicated<R>(&self, f: impl FnOnce(&mut State) -> (R, Vec<Effect>)) -> (R, Result<(), ResponseError>) {
        let (r, persisted) = self.call(f);
        let result = match persisted {
            Ok(replication) => replication.wait(self.commit_timeout).await,
            Err(code) => Err(code),
        };
        (r, result)
    }

    pub async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member_id = req.member_id.clone();
        let topics = self.topics();
        // The records a join into a consumer group wrote, to be replicated before its answer.
        let mut inside: Option<Result<Replication, ResponseError>> = None;
        let (waiting, _) = self.call(|s| {
            if Self::share_in_use(s, &req.group_id) {
                return (Ok(JoinResponse::error(ResponseError::InconsistentGroupProtocol, &member_id)), Vec::new());
            }
            // A consumer group with members takes classic members, whatever the migration policy
            // (Kafka's classicGroupJoinToConsumerGroup); the answer is immediate.
            if s.consumer.has_members(&req.group_id) {
                let limits = s.coordinator.config();
                if req.session_timeout_ms < limits.group_min_session_timeout_ms || req.session_timeout_ms > limits.group_max_session_timeout_ms {
                    return (Ok(JoinResponse::error(ResponseError::InvalidSessionTimeout, &member_id)), Vec::new());
                }
                let group_id = req.group_id.clone();
                let response = s.consumer.classic_join(req, &topics, now_ms());
                inside = Some(self.settle_consumer(s, &group_id));
                return (Ok(response), Vec::new());
            }
            // An empty consumer group gives way to the classic group (Kafka's
            // maybeDeleteEmptyConsumerGroup, the offline downgrade): its records are tombstoned,
            // its committed offsets stay. Left in place it would take consumer-protocol members
            // again beside the classic ones.
            if let Some(Ok(tombstones)) = s.consumer.delete(&req.group_id) {
                tracing::info!(group = %req.group_id, "an empty consumer group becomes a classic group");
                if let Err(code) = self.append_records(&req.group_id, &tombstones) {
                    // The classic group goes on; a restart may bring the empty consumer group
                    // back, which then gives way again at the next classic join.
                    tracing::warn!(group = %req.group_id, error = ?code, "the tombstones of a consumer group could not be appended");
                }
            }
            let (out, fx) = s.coordinator.join_group(req, now_ms());
            let out = match out {
                JoinOutcome::Ready(r) => Ok(r),
                JoinOutcome::Pending(t) => {
                    let (tx, rx) = oneshot::channel();
                    s.joins.insert(t, tx);
                    Err(rx)
                }
            };
            (out, fx)
        });
        if let Some(persisted) = inside {
            return match wait_for(persisted, self.commit_timeout).await {
                Ok(()) => waiting.unwrap_or_else(|_| JoinResponse::error(ResponseError::CoordinatorNotAvailable, &member_id)),
                Err(code) => JoinResponse::error(code, &member_id),
            };
        }
        match waiting {
            Ok(r) => r,
            // The coordinator completes every ticket; a dropped sender means the service went
            // away (shutdown), and the client retries elsewhere.
            Err(rx) => rx.await.unwrap_or_else(|_| JoinResponse::error(ResponseError::CoordinatorNotAvailable, &member_id)),
        }
    }

    pub async fn sync(&self, req: SyncRequest) -> SyncResponse {
        let topics = self.topics();
        let (waiting, persisted) = self.call_replicated(|s| {
            // A classic member of a consumer group gets its assignment from the consumer group.
            if let Some(r) = s.consumer.classic_sync(&req, &topics, now_ms()) {
                return (Ok(r), Vec::new());
            }
            let (out, fx) = s.coordinator.sync_group(req, now_ms());
            let out = match out {
                SyncOutcome::Ready(r) => Ok(r),
                SyncOutcome::Pending(t) => {
                    let (tx, rx) = oneshot::channel();
                    s.syncs.insert(t, tx);
                    Err(rx)
                }
            };
            (out, fx)
        })
        .await;
        match (waiting, persisted) {
            (Ok(_), Err(code)) => SyncResponse::error(code),
            (Ok(r), Ok(())) => r,
            (Err(rx), _) => match rx.await {
                Ok((response, replication)) => match replication.wait(self.commit_timeout).await {
                    Ok(()) => response,
                    Err(code) => SyncResponse::error(code),
                },
                Err(_) => SyncResponse::error(ResponseError::CoordinatorNotAvailable),
            },
        }
    }

    /// Any other coordinator call: `f` gets the state machine and returns its answer and effects.
    /// The answer comes with the result of appending the effects' records.
    pub async fn with<R>(&self, f: impl FnOnce(&mut GroupCoordinator) -> (R, Vec<Effect>)) -> (R, Result<(), ResponseError>) {
        self.call_replicated(|s| f(&mut s.coordinator)).await
    }

    /// OffsetCommit: appended, waited for until replicated, and only then shown by OffsetFetch
    /// (a commit whose wait fails is not shown, as on Kafka).
    ///
    /// A consumer group's commit is checked against the member's epoch (OffsetCommit v9 carries
    /// it as the generation id: STALE_MEMBER_EPOCH when it is not the member's, as Kafka), then
    /// stored as a commit from outside a classic generation.
    pub async fn commit_offsets(&self, mut req: OffsetCommitRequest, version: i16) -> (Vec<PartitionResult>, Result<(), ResponseError>) {
        let group_id = req.group_id.clone();
        self.commit(&group_id, |s| {
            match s.consumer.offset_access(&req.group_id, Some(&req.member_id), req.generation_id, Some(version)) {
                OffsetAccess::NotConsumerGroup => {}
                OffsetAccess::Refused(code) => {
                    let results = req.offsets.iter().map(|o| PartitionResult { topic: o.topic.clone(), partition: o.partition, error: Some(code) }).collect();
                    return (results, Vec::new());
                }
                OffsetAccess::Allowed => {
                    req.generation_id = -1;
                    req.member_id.clear();
                    req.group_instance_id = None;
                }
            }
            s.coordinator.commit_offsets(req, now_ms())
        })
        .await
    }

    /// TxnOffsetCommit (KIP-447): the offsets go to the log in a transactional batch of the
    /// producer and stay pending, invisible to OffsetFetch, until the transaction's marker.
    pub async fn commit_txn_offsets(&self, req: TxnOffsetCommitRequest) -> (Vec<PartitionResult>, Result<(), ResponseError>) {
        let group_id = req.group_id.clone();
        self.commit(&group_id, |s| s.coordinator.commit_txn_offsets(req, now_ms())).await
    }

    /// A commit of either kind: its records appended and replicated, then the outcome reported
    /// to the state machine (`offsets_appended`), which shows or drops them.
    async fn commit(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut State) -> (Vec<PartitionResult>, Vec<Effect>),
    ) -> (Vec<PartitionResult>, Result<(), ResponseError>) {
        let ((results, commit), outcome) = self
            .call_replicated(|s| {
                let (results, fx) = f(s);
                let commit = fx.iter().find_map(|e| match e {
                    Effect::PersistOffsets { commit, .. } | Effect::PersistTxnOffsets { commit, .. } => Some(*commit),
                    _ => None,
                });
                ((results, commit), fx)
            })
            .await;
        if let Some(commit) = commit {
            lock(&self.state).coordinator.offsets_appended(group_id, commit, outcome.is_ok());
        }
        (results, outcome)
    }

    /// Heartbeat: of a classic member inside a consumer group (told to rejoin when its target
    /// assignment moved), or of a classic group's member.
    pub fn heartbeat(&self, req: HeartbeatRequest) -> ErrorCode {
        let mut state = lock(&self.state);
        let now = now_ms();
        match state.consumer.classic_heartbeat(&req, now) {
            Some(error) => error,
            None => state.coordinator.heartbeat(req, now),
        }
    }

    /// LeaveGroup: classic members leaving a consumer group (its records appended and replicated
    /// before the answer), or a classic group's members.
    pub async fn leave(&self, group_id: &str, members: Vec<LeaveMember>) -> (LeaveResponse, Result<(), ResponseError>) {
        let topics = self.topics();
        let inside = {
            let mut state = lock(&self.state);
            match state.consumer.classic_leave(group_id, &members, &topics) {
                Some(r) => Some((r, self.settle_consumer(&mut state, group_id))),
                None => None,
            }
        };
        match inside {
            Some((r, persisted)) => (r, wait_for(persisted, self.commit_timeout).await),
            None => self.with(|c| c.leave_group(group_id, members, now_ms())).await,
        }
    }

    /// Appends consumer group `group_id`'s changed records, and carries out the downgrades of
    /// the call (`settle_downgrades`): what the answer must see replicated.
    fn settle_consumer(&self, state: &mut State, group_id: &str) -> Result<Replication, ResponseError> {
        let records = state.consumer.take_records(group_id);
        let mut replication = self.append_records(group_id, &records)?;
        replication.0.extend(self.settle_downgrades(state)?.0);
        Ok(replication)
    }

    /// The consumer groups converted back to classic groups (Kafka's convertToClassicGroup):
    /// their records tombstoned, their classic members handed to the classic coordinator, which
    /// writes the classic group and starts its rebalance.
    fn settle_downgrades(&self, state: &mut State) -> Result<Replication, ResponseError> {
        let mut replication = Replication::default();
        let mut failed = None;
        for d in state.consumer.take_downgrades() {
            tracing::info!(group = %d.group_id, members = d.group.members.len(), "the last consumer-protocol member left: the consumer group becomes a classic group");
            match self.append_records(&d.group_id, &d.tombstones) {
                Ok(r) => replication.0.extend(r.0),
                Err(code) => failed = Some(code),
            }
            let fx = state.coordinator.adopt_members(&d.group_id, d.group, now_ms());
            let persisted = self.persist(&fx);
            if let Ok(r) = &persisted {
                replication.0.extend(r.0.iter().cloned());
            }
            if let Err(code) = &persisted {
                failed = Some(*code);
            }
            self.deliver(state, fx, &persisted);
        }
        match failed {
            Some(code) => Err(code),
            None => Ok(replication),
        }
    }

    /// Read-only access (OffsetFetch, ListGroups, DescribeGroups).
    pub fn read<R>(&self, f: impl FnOnce(&GroupCoordinator) -> R) -> R {
        f(&lock(&self.state).coordinator)
    }

    /// Session and rebalance timers; cheap when nothing is due.
    pub fn tick(&self) {
        let now = now_ms();
        if self.is_loaded() {
            // A failed append was logged; timers have nobody to answer.
            let _ = self.call(|s| ((), s.coordinator.tick(now)));
            let mut state = lock(&self.state);
            self.share_tick(&mut state, now);
            if state.consumer.next_deadline() <= now {
                let topics = self.topics();
                let mut groups = std::collections::BTreeSet::new();
                for e in state.consumer.tick(&topics, now) {
                    let why = if e.session { "its session timed out" } else { "it did not revoke its partitions within its rebalance timeout" };
                    tracing::info!(group = %e.group_id, member = %e.member_id, "removed a consumer-group member: {why}");
                    groups.insert(e.group_id);
                }
                for group_id in groups {
                    // Nobody waits for a timer's records; a failed append was logged, and the
                    // group's next change writes its state again.
                    let _ = self.settle_consumer(&mut state, &group_id);
                }
            }
        }
    }

    /// The cluster's topics as KIP-848 assignors see them.
    /// Each partition carries its replicas' racks (`broker.rack`) when any broker has one, for
    /// the rack-aware assignment; otherwise none, and nothing is built per partition.
    fn topics(&self) -> Arc<Topics> {
        let image = self.metadata.image();
        let mut cache = lock(&self.topics_cache);
        if let Some((version, topics)) = &*cache {
            if *version == image.version {
                return topics.clone();
            }
        }
        let racks: BTreeMap<i32, &str> = image.brokers.values().filter_map(|b| b.rack.as_deref().map(|r| (b.id, r))).collect();
        let topics: Arc<Topics> = Arc::new(
            image
                .topics
                .values()
                .map(|t| {
                    let mut meta = TopicMeta::new(t.id, t.partition_count());
                    if !racks.is_empty() {
                        let per_partition = t.partitions.iter().map(|p| p.replicas.iter().filter_map(|r| racks.get(r).map(|s| s.to_string())).collect()).collect::<Vec<_>>();
                        meta.racks = per_partition.into();
                    }
                    (t.name.clone(), meta)
                })
                .collect(),
        );
        *cache = Some((image.version, topics.clone()));
        topics
    }

    /// ConsumerGroupHeartbeat (KIP-848). A classic group with members is converted to a consumer
    /// group when the migration policy allows it and its members use the consumer embedded
    /// protocol (the online upgrade); otherwise it is not a consumer group: GROUP_ID_NOT_FOUND,
    /// Kafka's answer. A member leaving may convert the group back (`settle_consumer`). The
    /// group's changed records are appended and replicated before the answer, as a classic
    /// group's assignment is.
    pub async fn consumer_heartbeat(&self, req: ConsumerHeartbeat) -> ConsumerHeartbeatResponse {
        let topics = self.topics();
        let group_id = req.group_id.clone();
        let (response, persisted) = {
            let mut state = lock(&self.state);
            // A classic group with members (or rebalancing) keeps its id, even if an empty
            // consumer group of the same id came back from the log; an empty classic group
            // gives way (Kafka's offline upgrade: its offsets stay, kept by the classic side).
            let not_consumer = || ConsumerHeartbeatResponse::error(ResponseError::GroupIdNotFound, format!("Group {} is not a consumer group.", req.group_id));
            if state.share.contains(&req.group_id) {
                return not_consumer();
            }
            let mut upgraded = Ok(Replication::default());
            if classic_in_use(&state.coordinator, &req.group_id) {
                // The online upgrade (Kafka's convertToConsumerGroup), when the policy allows it
                // and the classic group's members use the consumer embedded protocol; otherwise
                // GROUP_ID_NOT_FOUND, Kafka's answer.
                let now = now_ms();
                let Some(classic) = state.coordinator.migrating_members(&req.group_id).filter(|g| state.consumer.can_upgrade(g)) else {
                    return not_consumer();
                };
                if let Err(e) = state.consumer.upgrade(&req.group_id, &classic, &topics, now) {
                    // A client can repeat this heartbeat: rate-limited.
                    static LIMIT: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(10_000);
                    if let Some(skipped) = LIMIT.allow(now) {
                        tracing::warn!(group = %req.group_id, error = %e, skipped, "cannot upgrade a classic group to a consumer group");
                    }
                    return not_consumer();
                }
                tracing::info!(group = %req.group_id, members = classic.members.len(), "a consumer-protocol member joins a classic group: it becomes a consumer group");
                // The classic group gives its members up (its parked requests answered
                // REBALANCE_IN_PROGRESS) and stays, Empty, with the offsets.
                let fx = state.coordinator.release_members(&req.group_id, now);
                upgraded = self.persist(&fx);
                self.deliver(&mut state, fx, &upgraded);
            }
            state.consumer.set_group_config(&req.group_id, self.consumer_group_config(&req.group_id));
            let response = state.consumer.heartbeat(req, &topics, now_ms());
            let persisted = self.settle_consumer(&mut state, &group_id);
            let persisted = match (upgraded, persisted) {
                (Ok(mut a), Ok(b)) => {
                    a.0.extend(b.0);
                    Ok(a)
                }
                (Err(code), _) | (_, Err(code)) => Err(code),
            };
            (response, persisted)
        };
        let stored = match persisted {
            Ok(replication) => replication.wait(self.commit_timeout).await,
            Err(code) => Err(code),
        };
        match stored {
            Ok(()) => response,
            Err(code) => ConsumerHeartbeatResponse::error(code, "the group's records could not be stored"),
        }
    }

    /// Appends a consumer group's records (tombstones too) to its offsets partition in one batch.
    fn append_records(&self, group_id: &str, records: &[RawRecord]) -> Result<Replication, ResponseError> {
        let mut replication = Replication::default();
        if records.is_empty() {
            return Ok(replication);
        }
        let index = partition_for(group_id, self.offsets_partitions());
        replication.0.push(self.append(index, |now| strom_coordinator::batch::encode(records, None, now))?);
        Ok(replication)
    }

    /// ConsumerGroupDescribe: `None` when `group_id` is not a consumer group here.
    pub fn describe_consumer_group(&self, group_id: &str) -> Option<DescribedConsumerGroup> {
        lock(&self.state).consumer.describe(group_id)
    }

    /// Whether `group_id` is a KIP-848 consumer group here (ListGroups and DescribeGroups leave
    /// its offsets-only classic entry out).
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        lock(&self.state).consumer.contains(group_id)
    }

    /// Every consumer group with its state, for ListGroups.
    pub fn list_consumer_groups(&self) -> Vec<(String, strom_coordinator::consumer_group::ConsumerGroupState)> {
        lock(&self.state).consumer.list()
    }

    /// OffsetFetch v9+ by a consumer-group member: its epoch must be current (Kafka's
    /// STALE_MEMBER_EPOCH / UNKNOWN_MEMBER_ID). `None`: allowed, or not a consumer group.
    pub fn check_offset_fetch(&self, group_id: &str, member_id: Option<&str>, member_epoch: i32) -> Option<ResponseError> {
        match lock(&self.state).consumer.offset_access(group_id, member_id, member_epoch, None) {
            OffsetAccess::Refused(code) => Some(code),
            OffsetAccess::Allowed | OffsetAccess::NotConsumerGroup => None,
        }
    }

    /// DeleteGroups: a consumer group only without members (NON_EMPTY_GROUP otherwise); its
    /// offsets go with the classic coordinator's delete.
    pub async fn delete_groups(&self, ids: &[String]) -> Vec<(String, Option<ResponseError>)> {
        let (results, persisted) = self
            .call_replicated(|s| {
                let mut refused = Vec::new();
                let mut consumer = Vec::new();
                for id in ids {
                    if s.share.contains(id) {
                        // A share group: its share-partition state is tombstoned.
                        match s.share.delete_state(id, None) {
                            Err(code) => refused.push((id.clone(), Some(code))),
                            Ok(()) => {
                                if let Err(code) = self.append_share_records(&s.share.take_records()) {
                                    tracing::warn!(group = %id, error = ?code, "cannot tombstone a deleted share group's state");
                                }
                                consumer.push(id.clone());
                            }
                        }
                        continue;
                    }
                    match s.consumer.delete(id) {
                        Some(Err(code)) => refused.push((id.clone(), Some(code))),
                        Some(Ok(tombstones)) => {
                            if let Err(code) = self.append_records(id, &tombstones) {
                                tracing::warn!(group = %id, error = ?code, "cannot tombstone a deleted consumer group's records");
                            }
                            consumer.push(id.clone());
                        }
                        None => {}
                    }
                }
                let classic: Vec<String> = ids.iter().filter(|id| !refused.iter().any(|(r, _)| r == *id)).cloned().collect();
                let (deleted, fx) = s.coordinator.delete_groups(&classic);
                let mut results = refused;
                for (id, e) in deleted {
                    // A consumer or share group that never committed has no classic entry to delete.
                    let e = if e == Some(ResponseError::GroupIdNotFound) && consumer.contains(&id) { None } else { e };
                    results.push((id, e));
                }
                (results, fx)
            })
            .await;
        results.into_iter().map(|(id, e)| (id, e.or(persisted.err()))).collect()
    }

    /// Drops committed offsets past `offsets.retention.minutes` (of Empty groups).
    pub fn expire_offsets(&self) {
        let now = now_ms();
        if self.is_loaded() {
            let _ = self.call(|s| {
                let State { coordinator, consumer, .. } = s;
                ((), coordinator.expire_offsets_except(now, |id| consumer.has_members(id)))
            });
        }
    }

    /// A transaction marker for `producer_id` is in offsets partition `index` (and replicated):
    /// its transactional offset commits there become visible (commit) or are dropped (abort).
    pub fn transaction_completed(&self, producer_id: i64, commit: bool, index: i32) {
        let n = self.topic.partitions();
        lock(&self.state).coordinator.complete_txn(producer_id, commit, |g| partition_for(g, n) == index, now_ms());
    }

    /// The offsets topic's partition count: the topic's own once it exists, else the config's.
    pub fn offsets_partitions(&self) -> i32 {
        self.topic.partitions()
    }
}

/// Waits for an append's replication, or passes its failure on.
async fn wait_for(persisted: Result<Replication, ResponseError>, timeout: Duration) -> Result<(), ResponseError> {
    match persisted {
        Ok(replication) => replication.wait(timeout).await,
        Err(code) => Err(code),
    }
}

/// Whether a classic group with members (or a rebalance under way) holds `group_id`.
fn classic_in_use(c: &GroupCoordinator, group_id: &str) -> bool {
    use strom_coordinator::group::GroupState;
    c.snapshot(group_id).is_some() && !matches!(c.describe_group(group_id).state, GroupState::Empty | GroupState::Dead)
}

/// Offsets-topic appends an answer must see replicated: (partition, end offset, leader epoch).
#[derive(Clone, Default)]
struct Replication(Vec<(Arc<Partition>, i64, i32)>);

impl Replication {
    /// Waits for the high watermark to pass every append. Kafka's mapping of the outcomes to
    /// coordinator errors: a lost leadership is NOT_COORDINATOR (find the new one), a timeout
    /// or too small an ISR COORDINATOR_NOT_AVAILABLE (retry).
    async fn wait(&self, timeout: Duration) -> Result<(), ResponseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for (partition, end, epoch) in &self.0 {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match partition.wait_replicated(*end, *epoch, left).await {
                Ok(()) => {}
                Err(ResponseError::NotLeaderOrFollower) => return Err(ResponseError::NotCoordinator),
                Err(_) => return Err(ResponseError::CoordinatorNotAvailable),
            }
        }
        Ok(())
    }
}

impl GroupService {
    /// Appends the effects' records to their groups' offsets partitions, one batch per
    /// partition, and says what to wait for before answering. Kafka's mapping of append
    /// failures to coordinator errors: a missing partition, or fewer in-sync replicas than
    /// `min.insync.replicas`, is COORDINATOR_NOT_AVAILABLE (the client retries), a lost
    /// leadership NOT_COORDINATOR, an oversized batch INVALID_COMMIT_OFFSET_SIZE, anything else
    /// UNKNOWN_SERVER_ERROR.
    fn persist(&self, fx: &[Effect]) -> Result<Replication, ResponseError> {
        // One batch per partition and producer: a TxnOffsetCommit's records go in a
        // transactional batch of their own, everything else in a plain one.
        let mut by_partition: BTreeMap<(i32, Option<(i64, i16)>), Vec<LogRecord>> = BTreeMap::new();
        let partitions = self.offsets_partitions();
        for e in fx {
            let records = e.log_records();
            if let Some(first) = records.first() {
                by_partition.entry((partition_for(first.group_id(), partitions), e.txn_producer())).or_default().extend(records);
            }
        }
        let mut replication = Replication::default();
        for ((index, producer), records) in by_partition {
            replication.0.push(self.append(index, |now| match producer {
                Some((producer_id, producer_epoch)) => encode_txn_batch(&records, producer_id, producer_epoch, now),
                None => encode_batch(&records, now),
            })?);
        }
        Ok(replication)
    }

    /// Appends one batch (`encode` makes it for the time given) to offsets partition `index`:
    /// what the answer must then see replicated.
    fn append(
        &self,
        index: i32,
        encode: impl FnOnce(i64) -> Result<bytes::BytesMut, strom_coordinator::batch::BatchError>,
    ) -> Result<(Arc<Partition>, i64, i32), ResponseError> {
        let now = now_ms();
        let partition = self.replicas.partition(OFFSETS_TOPIC, index).ok_or(ResponseError::CoordinatorNotAvailable)?;
        if !partition.enough_replicas() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let epoch = partition.leader_epoch();
        let buf = encode(now).map_err(|e| {
            tracing::error!(error = %e, "cannot encode an offsets-topic batch");
            ResponseError::UnknownServerError
        })?;
        let appended = partition.append(&buf, now).map_err(|e| {
            tracing::error!(partition = index, error = %e, "cannot append to the offsets topic");
            match e {
                crate::partition::PartitionError::Closed | crate::partition::PartitionError::NotLeader(_) => ResponseError::NotCoordinator,
                crate::partition::PartitionError::Storage(strom_storage::StorageError::MessageTooLarge { .. }) => {
                    ResponseError::InvalidCommitOffsetSize
                }
                // A fenced producer's TxnOffsetCommit, as a produce of the same batch would hear.
                crate::partition::PartitionError::Storage(strom_storage::StorageError::InvalidProducerEpoch { .. }) => {
                    ResponseError::ProducerFenced
                }
                _ => ResponseError::UnknownServerError,
            }
        })?;
        Ok((partition, appended.last_offset + 1, epoch))
    }
}
