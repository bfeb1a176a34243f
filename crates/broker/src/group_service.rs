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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use strom_config::BrokerConfig;
use strom_controller::Controller;
use strom_coordinator::group::{
    decode_batch, encode_batch, Effect, GroupCoordinator, JoinOutcome, JoinRequest, JoinResponse, LogRecord, OffsetCommitRequest, PartitionResult,
    SyncOutcome, SyncRequest, SyncResponse, Ticket,
};

use crate::clock::now_ms;
use crate::partition::Partition;
use crate::replica_manager::{LeadershipChanges, ReplicaManager};
use crate::sync::lock;
use crate::topics::TopicAdmin;

/// Kafka's name for the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics clients may read but not write or delete.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
}

/// The offsets partition that owns a group: Kafka's `abs(groupId.hashCode) % partitions`, with
/// Java's `String.hashCode` over UTF-16 code units, so a group maps to the same partition number
/// as on a Kafka cluster with the same partition count.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    // Kafka's Utils.abs maps MIN_VALUE to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

pub struct GroupService {
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    metadata: Arc<Controller>,
    topics: Arc<TopicAdmin>,
    state: Mutex<State>,
    /// `offsets.commit.timeout.ms`: how long an answer waits for its records to be replicated.
    commit_timeout: Duration,
    /// False until this broker applied the metadata that includes its own registration (and
    /// with it, its leadership of offsets partitions); group requests meanwhile get
    /// COORDINATOR_LOAD_IN_PROGRESS and retry.
    loaded: AtomicBool,
    /// The offsets partitions whose groups are loaded, with the leader epoch they were loaded
    /// in. A partition led in another epoch (being replayed, or made leader by a metadata change
    /// that `leadership_changed` has not reached yet) is still loading: a group joined there
    /// now would be dropped by the replay before its SyncGroup.
    coordinating: Mutex<HashMap<i32, i32>>,
    /// Set once `__consumer_offsets` exists with every partition open.
    topic_ready: AtomicBool,
    /// A task is creating `__consumer_offsets`.
    creating: AtomicBool,
}

struct State {
    coordinator: GroupCoordinator,
    joins: HashMap<Ticket, oneshot::Sender<JoinResponse>>,
    /// A parked member's answer comes with the appends it must see replicated before it leaves.
    syncs: HashMap<Ticket, oneshot::Sender<(SyncResponse, Replication)>>,
}

impl GroupService {
    pub fn new(config: Arc<BrokerConfig>, replicas: Arc<ReplicaManager>, metadata: Arc<Controller>, topics: Arc<TopicAdmin>) -> Self {
        GroupService {
            commit_timeout: Duration::from_millis(config.groups.offsets_commit_timeout_ms),
            state: Mutex::new(State {
                coordinator: GroupCoordinator::new(config.groups.coordinator.clone()),
                joins: HashMap::new(),
                syncs: HashMap::new(),
            }),
            loaded: AtomicBool::new(false),
            coordinating: Mutex::new(HashMap::new()),
            topic_ready: AtomicBool::new(false),
            creating: AtomicBool::new(false),
            config,
            replicas,
            metadata,
            topics,
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Whether group requests can be served now: the log is replayed and `__consumer_offsets`
    /// exists. The topic is created on first use, as Kafka creates it on the first
    /// FindCoordinator, so a broker that never sees a group never has one.
    pub fn ready(self: &Arc<Self>) -> Result<(), ResponseError> {
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if self.topic_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let me = self.config.node_id;
        if let Some(topic) = self.metadata.image().topic(OFFSETS_TOPIC) {
            // The topic is in the image before its partitions are open (another request may be
            // creating it right now): answer "retry" until they are, or a join could succeed
            // whose assignment cannot be stored.
            let open = topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&me))
                .all(|(i, _)| self.replicas.partition(OFFSETS_TOPIC, i as i32).is_some());
            if !open {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
            self.topic_ready.store(true, Ordering::Release);
            return Ok(());
        }
        // Created in the background, once: the request that triggers it (and any meanwhile)
        // retries. FindCoordinator, the first request of every group client, awaits the
        // creation instead (`ensure_topic`), as Kafka's does.
        if !self.creating.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                me.create_offsets_topic().await;
                me.creating.store(false, Ordering::Release);
            });
        }
        Err(ResponseError::CoordinatorLoadInProgress)
    }

    /// Creates `__consumer_offsets` if it does not exist yet, then answers as `ready`.
    pub async fn ensure_topic(self: &Arc<Self>) -> Result<(), ResponseError> {
        if self.is_loaded() && self.metadata.image().topic(OFFSETS_TOPIC).is_none() {
            self.create_offsets_topic().await;
        }
        self.ready()
    }

    /// `ready`, and this broker coordinates `group_id` (else NOT_COORDINATOR: the client asks
    /// FindCoordinator again, as after a coordinator move in Kafka).
    pub fn ready_for(self: &Arc<Self>, group_id: &str) -> Result<(), ResponseError> {
        self.ready()?;
        let index = partition_for(group_id, self.offsets_partitions());
        let Some(partition) = self.replicas.partition(OFFSETS_TOPIC, index).filter(|p| p.is_leader()) else {
            return Err(ResponseError::NotCoordinator);
        };
        if lock(&self.coordinating).get(&index) != Some(&partition.leader_epoch()) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// Group coordination follows the leadership of `__consumer_offsets` partitions, as in
    /// Kafka: for a partition this broker now leads, its groups and committed offsets are
    /// replayed from the log (requests for them get COORDINATOR_LOAD_IN_PROGRESS meanwhile);
    /// for one it no longer leads, its groups are dropped and their parked requests answered
    /// NOT_COORDINATOR, so their clients look for the new coordinator. Blocking (it reads logs).
    pub fn leadership_changed(&self, changes: &LeadershipChanges) {
        let offsets = |ps: &[Arc<Partition>]| -> Vec<Arc<Partition>> { ps.iter().filter(|p| &*p.topic == OFFSETS_TOPIC).cloned().collect() };
        let (gained, lost) = (offsets(&changes.gained), offsets(&changes.lost));
        if !gained.is_empty() || !lost.is_empty() {
            let n = self.offsets_partitions();
            let moved: BTreeSet<i32> = gained.iter().chain(&lost).map(|p| p.index).collect();
            lock(&self.coordinating).retain(|index, _| !moved.contains(index));
            let mut state = lock(&self.state);
            let (joins, syncs) = state.coordinator.unload(|g| moved.contains(&partition_for(g, n)));
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
            for p in &lost {
                tracing::info!(partition = p.index, "no longer coordinating the groups of this offsets partition");
            }
            for p in gained {
                // The epoch this load is for: should another change come meanwhile, its own
                // call loads again, and until then requests are told to retry.
                let epoch = p.leader_epoch();
                self.load_partition(&p);
                lock(&self.coordinating).insert(p.index, epoch);
            }
        }
        if changes.registered && !self.loaded.swap(true, Ordering::AcqRel) {
            tracing::info!("group coordinator ready");
        }
    }

    /// Replays one offsets partition, up to its log end (a new leader's whole log is what its
    /// followers will converge on). A record that cannot be decoded is logged and skipped; it
    /// never stops the broker.
    fn load_partition(&self, partition: &Partition) {
        let started = std::time::Instant::now();
        let (mut loaded, mut bad) = (Vec::new(), 0u64);
        let mut offset = partition.log_start_offset().unwrap_or(0);
        loop {
            let slices = match partition.read_to_end(offset, 1 << 20) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(partition = partition.index, offset, error = %e, "cannot read the offsets topic; groups of this partition start empty");
                    break;
                }
            };
            if slices.slices.is_empty() {
                break;
            }
            let mut buf = Vec::with_capacity(slices.len);
            if let Some(e) = slices.slices.iter().find_map(|s| s.read_into(&mut buf).err()) {
                tracing::error!(partition = partition.index, offset, error = %e, "cannot read the offsets topic");
                break;
            }
            let buf = Bytes::from(buf);
            // Batch by batch, so that a batch whose records were all compacted away still
            // moves the read position past it.
            let mut pos = 0;
            while pos < buf.len() {
                let header = match strom_storage::BatchHeader::parse(&buf, pos) {
                    Ok(h) if h.end_position() <= buf.len() => h,
                    _ => break,
                };
                let batch = buf.slice(pos..header.end_position());
                pos = header.end_position();
                offset = header.last_offset() + 1;
                match decode_batch(batch) {
                    Ok(records) => loaded.extend(records),
                    Err(e) => {
                        bad += 1;
                        tracing::error!(partition = partition.index, offset = header.base_offset, error = %e, "skipping an undecodable offsets-topic batch");
                    }
                }
            }
            if pos == 0 {
                break;
            }
        }
        let now = now_ms();
        let mut state = lock(&self.state);
        let records = loaded.len();
        for (key, value, offset) in loaded {
            if let Err(e) = state.coordinator.load_record(&key, value.as_deref(), now) {
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
                    let answer = match &persisted {
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
        (r, persisted)
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
        let (waiting, _) = self.call(|s| {
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
        match waiting {
            Ok(r) => r,
            // The coordinator completes every ticket; a dropped sender means the service went
            // away (shutdown), and the client retries elsewhere.
            Err(rx) => rx.await.unwrap_or_else(|_| JoinResponse::error(ResponseError::CoordinatorNotAvailable, &member_id)),
        }
    }

    pub async fn sync(&self, req: SyncRequest) -> SyncResponse {
        let (waiting, persisted) = self.call_replicated(|s| {
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
    pub async fn commit_offsets(&self, req: OffsetCommitRequest) -> (Vec<PartitionResult>, Result<(), ResponseError>) {
        let group_id = req.group_id.clone();
        let ((results, commit), outcome) = self
            .call_replicated(|s| {
                let (results, fx) = s.coordinator.commit_offsets(req, now_ms());
                let commit = fx.iter().find_map(|e| match e {
                    Effect::PersistOffsets { commit, .. } => Some(*commit),
                    _ => None,
                });
                ((results, commit), fx)
            })
            .await;
        if let Some(commit) = commit {
            lock(&self.state).coordinator.offsets_appended(&group_id, commit, outcome.is_ok());
        }
        (results, outcome)
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
        }
    }

    /// Drops committed offsets past `offsets.retention.minutes` (of Empty groups).
    pub fn expire_offsets(&self) {
        let now = now_ms();
        if self.is_loaded() {
            let _ = self.call(|s| ((), s.coordinator.expire_offsets(now)));
        }
    }

    /// The offsets topic's partition count: the topic's own once it exists, else the config's.
    pub fn offsets_partitions(&self) -> i32 {
        self.metadata
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partition_count())
            .unwrap_or(self.config.groups.offsets_topic_num_partitions)
    }
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
        let mut by_partition: BTreeMap<i32, Vec<LogRecord>> = BTreeMap::new();
        let partitions = self.offsets_partitions();
        for e in fx {
            let records = e.log_records();
            if let Some(first) = records.first() {
                by_partition.entry(partition_for(first.group_id(), partitions)).or_default().extend(records);
            }
        }
        let now = now_ms();
        let mut replication = Replication::default();
        for (index, records) in by_partition {
            let partition = self.replicas.partition(OFFSETS_TOPIC, index).ok_or(ResponseError::CoordinatorNotAvailable)?;
            if !partition.enough_replicas() {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            let epoch = partition.leader_epoch();
            let mut buf = encode_batch(&records, now).map_err(|e| {
            tracing::error!(error = %e, "cannot encode an offsets-topic batch");
            ResponseError::UnknownServerError
        })?;
        let appended = partition.append(&mut buf, now).map_err(|e| {
                tracing::error!(partition = index, error = %e, "cannot append to the offsets topic");
                match e {
                    crate::partition::PartitionError::Closed | crate::partition::PartitionError::NotLeader(_) => {
                        ResponseError::NotCoordinator
                    }
                    crate::partition::PartitionError::Storage(strom_storage::StorageError::MessageTooLarge { .. }) => {
                        ResponseError::InvalidCommitOffsetSize
                    }
                    _ => ResponseError::UnknownServerError,
                }
            })?;
            replication.0.push((partition, appended.last_offset + 1, epoch));
        }
        Ok(replication)
    }

    /// Creates `__consumer_offsets` (Kafka does so on the first FindCoordinator).
    async fn create_offsets_topic(&self) {
        let s = &self.config.groups;
        // Kafka refuses to create the topic until offsets.topic.replication.factor brokers are up,
        // which leaves a fresh single-node cluster without groups. Strom caps the factor at the
        // cluster's size (its voters: every node is a broker), so a single node gets 1 and a
        // three-node cluster 3, whichever brokers happen to be up at the first FindCoordinator
        // (fewer live brokers than that: the creation fails and the next request retries).
        let voters = self.config.cluster.voters.len().max(1) as i16;
        let rf = s.offsets_topic_replication_factor.min(voters);
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), s.offsets_topic_segment_bytes.to_string()),
        ]);
        match self.topics.create_topic(OFFSETS_TOPIC, s.offsets_topic_num_partitions, rf, configs, false).await {
            Ok(_) => {}
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
            Err(e) => tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}"),
        }
    }
}

/// Where `partition_for` is pinned against Java's `String.hashCode`.
#[cfg(test)]
mod tests {
    use super::partition_for;

    #[test]
    fn group_partition_matches_java_string_hashcode() {
        // Java: "test-group".hashCode() == 627841412, "my-group".hashCode() == -1906497762.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("my-group", 7), 1906497762 % 7);
        // "".hashCode() == 0.
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // A non-ASCII id hashes UTF-16 code units: "é" is 0xE9 = 233.
        assert_eq!(partition_for("é", 50), 233 % 50);
    }
}
