//! An internal topic whose partition leaders coordinate something: `__consumer_offsets` (groups)
//! and `__transaction_state` (transactions). What both coordinators share lives here once: the
//! topic is created on first use, as Kafka creates it on the first FindCoordinator; a key maps to
//! a partition with Java's `String.hashCode`; a partition's coordination starts only once this
//! broker has replayed its log in the leader epoch it now leads; and the replay itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use strom_controller::Controller;
use strom_storage::BatchHeader;

use crate::partition::Partition;
use crate::replica_manager::{LeadershipChanges, ReplicaManager};
use crate::sync::lock;
use crate::topics::TopicAdmin;

/// Kafka's name for the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's name for the transaction log.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Topics clients may read but not write or delete.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC
}

/// The partition that owns a key (group id, transactional id), as Kafka maps it.
pub use strom_coordinator::partition_for;

/// How the topic is created.
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    /// Capped at the cluster size when created.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub struct CoordinatorTopic {
    spec: TopicSpec,
    node_id: i32,
    voters: usize,
    replicas: Arc<ReplicaManager>,
    metadata: Arc<Controller>,
    topics: Arc<TopicAdmin>,
    /// False until this broker applied the metadata that includes its own registration (and
    /// with it, its leadership of the topic's partitions); requests meanwhile get
    /// COORDINATOR_LOAD_IN_PROGRESS and retry.
    loaded: AtomicBool,
    /// The partitions whose state is loaded, with the leader epoch they were loaded in. A
    /// partition led in another epoch (being replayed, or made leader by a metadata change that
    /// `leadership_changed` has not reached yet) is still loading: state created there now would
    /// be dropped by the replay.
    coordinating: Mutex<HashMap<i32, i32>>,
    /// Set once the topic exists with every partition of this broker open.
    topic_ready: AtomicBool,
    /// A task is creating the topic.
    creating: AtomicBool,
}

/// The partitions of the topic this broker gained and lost in one metadata change.
pub struct Moves {
    pub gained: Vec<Arc<Partition>>,
    pub lost: Vec<Arc<Partition>>,
}

impl Moves {
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }

    /// Every partition index that moved either way.
    pub fn indexes(&self) -> BTreeSet<i32> {
        self.gained.iter().chain(&self.lost).map(|p| p.index).collect()
    }
}

impl CoordinatorTopic {
    pub fn new(spec: TopicSpec, node_id: i32, voters: usize, replicas: Arc<ReplicaManager>, metadata: Arc<Controller>, topics: Arc<TopicAdmin>) -> Self {
        CoordinatorTopic {
            spec,
            node_id,
            voters,
            replicas,
            metadata,
            topics,
            loaded: AtomicBool::new(false),
            coordinating: Mutex::new(HashMap::new()),
            topic_ready: AtomicBool::new(false),
            creating: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Whether requests can be served now: the broker is registered and the topic exists with
    /// its local partitions open. The topic is created on first use; the request that triggers
    /// it (and any meanwhile) gets COORDINATOR_LOAD_IN_PROGRESS and retries.
    pub fn ready(self: &Arc<Self>) -> Result<(), ResponseError> {
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if self.topic_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(topic) = self.metadata.image().topic(self.spec.name) {
            // The topic is in the image before its partitions are open (another request may be
            // creating it right now): answer "retry" until they are.
            let open = topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&self.node_id))
                .all(|(i, _)| self.replicas.partition(self.spec.name, i as i32).is_some());
            if !open {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
            self.topic_ready.store(true, Ordering::Release);
            return Ok(());
        }
        if !self.creating.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                me.create().await;
                me.creating.store(false, Ordering::Release);
            });
        }
        Err(ResponseError::CoordinatorLoadInProgress)
    }

    /// Creates the topic if it does not exist yet, then answers as `ready`. FindCoordinator,
    /// the first request of every coordinated client, awaits the creation, as Kafka's does.
    pub async fn ensure(self: &Arc<Self>) -> Result<(), ResponseError> {
        if self.is_loaded() && self.metadata.image().topic(self.spec.name).is_none() {
            self.create().await;
        }
        self.ready()
    }

    /// The topic's partition count: its own once it exists, else the configured one.
    pub fn partitions(&self) -> i32 {
        self.metadata.image().topic(self.spec.name).map(|t| t.partition_count()).unwrap_or(self.spec.partitions)
    }

    pub fn partition_of(&self, key: &str) -> i32 {
        partition_for(key, self.partitions())
    }

    /// `ready`, and this broker coordinates `key`: it leads the key's partition and has loaded
    /// it in its current leader epoch. Else NOT_COORDINATOR (the client asks FindCoordinator
    /// again) or COORDINATOR_LOAD_IN_PROGRESS (retry).
    pub fn ready_for(self: &Arc<Self>, key: &str) -> Result<Arc<Partition>, ResponseError> {
        self.ready()?;
        let index = self.partition_of(key);
        let Some(partition) = self.replicas.partition(self.spec.name, index).filter(|p| p.is_leader()) else {
            return Err(ResponseError::NotCoordinator);
        };
        if lock(&self.coordinating).get(&index) != Some(&partition.leader_epoch()) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(partition)
    }

    /// The leader of the key's partition, as FindCoordinator answers: `None` without one. Before
    /// the topic exists this broker is the answer (it creates the topic).
    pub fn coordinator_of(&self, key: &str) -> Option<i32> {
        match self.metadata.image().topic(self.spec.name) {
            Some(t) => t.partition(partition_for(key, t.partition_count())).map(|p| p.leader).filter(|&l| l >= 0),
            None => Some(self.node_id),
        }
    }

    /// This topic's share of a leadership change. Partitions that moved stop being coordinated
    /// until `loaded` is called for them again.
    pub fn moves(&self, changes: &LeadershipChanges) -> Moves {
        let mine = |ps: &[Arc<Partition>]| -> Vec<Arc<Partition>> { ps.iter().filter(|p| &*p.topic == self.spec.name).cloned().collect() };
        let moves = Moves { gained: mine(&changes.gained), lost: mine(&changes.lost) };
        if !moves.is_empty() {
            let moved = moves.indexes();
            lock(&self.coordinating).retain(|index, _| !moved.contains(index));
        }
        moves
    }

    /// A gained partition was replayed in leader epoch `epoch`: requests for its keys are served.
    pub fn loaded(&self, index: i32, epoch: i32) {
        lock(&self.coordinating).insert(index, epoch);
    }

    /// The broker registered: requests may be served once their partitions are loaded.
    pub fn registered(&self) -> bool {
        !self.loaded.swap(true, Ordering::AcqRel)
    }

    /// Replays a partition's whole log (a new leader's whole log is what its followers will
    /// converge on), batch by batch: `f` gets each batch's header and bytes. Returns false when
    /// the log could not be read to its end (logged).
    pub fn replay(&self, partition: &Partition, mut f: impl FnMut(&BatchHeader, Bytes)) -> bool {
        let mut offset = partition.log_start_offset().unwrap_or(0);
        loop {
            let slices = match partition.read_to_end(offset, 1 << 20) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(topic = self.spec.name, partition = partition.index, offset, error = %e, "cannot read the internal topic");
                    return false;
                }
            };
            if slices.slices.is_empty() {
                return true;
            }
            let mut buf = Vec::with_capacity(slices.len);
            if let Some(e) = slices.slices.iter().find_map(|s| s.read_into(&mut buf).err()) {
                tracing::error!(topic = self.spec.name, partition = partition.index, offset, error = %e, "cannot read the internal topic");
                return false;
            }
            let buf = Bytes::from(buf);
            // Batch by batch, so that a batch whose records were all compacted away still
            // moves the read position past it.
            let mut pos = 0;
            while pos < buf.len() {
                let header = match BatchHeader::parse(&buf, pos) {
                    Ok(h) if h.end_position() <= buf.len() => h,
                    _ => break,
                };
                let batch = buf.slice(pos..header.end_position());
                pos = header.end_position();
                offset = header.last_offset() + 1;
                f(&header, batch);
            }
            if pos == 0 {
                return true;
            }
        }
    }

    async fn create(&self) {
        // Kafka refuses to create the topic until its replication factor's worth of brokers is
        // up, which leaves a fresh single-node cluster without coordination. Strom caps the
        // factor at the cluster's size (its voters: every node is a broker), so a single node
        // gets 1 and a three-node cluster 3 (fewer live brokers than that: the creation fails
        // and the next request retries).
        let rf = self.spec.replication_factor.min(self.voters.max(1) as i16);
        let mut configs = self.spec.configs.clone();
        if let Some(min_isr) = configs.get_mut("min.insync.replicas") {
            // Capped at the factor too, or a single node could never write.
            let capped = min_isr.parse::<i64>().unwrap_or(1).clamp(1, i64::from(rf));
            *min_isr = capped.to_string();
        }
        match self.topics.create_topic(self.spec.name, self.spec.partitions, rf, configs, false).await {
            Ok(_) => {}
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
            Err(e) => tracing::error!(topic = self.spec.name, error = %e.message, "cannot create the internal topic"),
        }
    }
}
