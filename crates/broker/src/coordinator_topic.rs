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
    /// with it, its leadership of the topic's partitions); requests for keys it may lead get
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile and retry.
    loaded: AtomicBool,
    /// The partitions whose state is loaded, with the leader epoch they were loaded in. A
    /// partition led in another epoch (being replayed, or made leader by a metadata change that
    /// `leadership_changed` has not reached yet) is still loading: state created there now would
    /// be dropped by the replay.
    coordinating: Mutex<HashMap<i32, i32>>,
    /// Whether the topic may still be created (false once shutdown began). A creation holds
    /// the read side until the topic is published here (its partitions opened and replayed),
    /// so shutdown, which takes the write side, waits for it: its logs are then closed with
    /// every other, and nothing opens a log behind shutdown's back.
    may_create: tokio::sync::RwLock<bool>,
    /// Woken whenever a partition is loaded (`loaded`), for FindCoordinator's wait.
    load_done: tokio::sync::Notify,
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
            may_create: tokio::sync::RwLock::new(true),
            load_done: tokio::sync::Notify::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// FindCoordinator's part, as Kafka's: the topic is created on first use, and the request
    /// awaits it. Ok once the topic exists (its partitions may still be loading: the
    /// coordinator found answers COORDINATOR_LOAD_IN_PROGRESS until they are);
    /// COORDINATOR_NOT_AVAILABLE while it cannot be created (before this broker registered,
    /// fewer live brokers than it needs, shutting down), which clients retry. Nothing else
    /// creates the topic: Kafka's other requests answer from what exists (see `ready_for`,
    /// `all_loaded`), so a request that does not await the creation never starts one.
    pub async fn ensure(&self) -> Result<(), ResponseError> {
        if self.exists() {
            return Ok(());
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        {
            let may_create = self.may_create.read().await;
            if !*may_create {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            self.create().await;
        }
        if self.exists() {
            Ok(())
        } else {
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }

    /// Shutdown: no creation starts from now on, and one under way is awaited (it ends, at the
    /// latest, with the controller's proposal and publish timeouts).
    pub async fn stop_creating(&self) {
        *self.may_create.write().await = false;
    }

    fn exists(&self) -> bool {
        self.metadata.image().topic(self.spec.name).is_some()
    }

    /// The topic's partition count: its own once it exists, else the configured one.
    pub fn partitions(&self) -> i32 {
        self.metadata.image().topic(self.spec.name).map(|t| t.partition_count()).unwrap_or(self.spec.partitions)
    }

    pub fn partition_of(&self, key: &str) -> i32 {
        partition_for(key, self.partitions())
    }

    /// Whether this broker serves requests for `key` now: it leads the key's partition and has
    /// loaded it in its current leader epoch. Kafka's answers otherwise (its coordinator runtime
    /// has a context per partition it was elected for): NOT_COORDINATOR where this broker has
    /// none, that is, another broker leads the partition or the topic does not exist yet (the
    /// client asks FindCoordinator, which creates it); COORDINATOR_LOAD_IN_PROGRESS where it
    /// is the leader but has not loaded it yet (the client retries here).
    pub fn ready_for(&self, key: &str) -> Result<Arc<Partition>, ResponseError> {
        let image = self.metadata.image();
        let Some(topic) = image.topic(self.spec.name) else {
            return Err(ResponseError::NotCoordinator);
        };
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let index = partition_for(key, topic.partition_count());
        let Some(partition) = self.replicas.partition(self.spec.name, index).filter(|p| p.is_leader()) else {
            // The image may already name this broker the leader, before the partition is open
            // and led here (the change is being published): it is about to load.
            return match topic.partition(index) {
                Some(p) if p.leader == self.node_id => Err(ResponseError::CoordinatorLoadInProgress),
                _ => Err(ResponseError::NotCoordinator),
            };
        };
        if lock(&self.coordinating).get(&index) != Some(&partition.leader_epoch()) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(partition)
    }

    /// Whether requests about every key this broker coordinates (ListGroups, ListTransactions)
    /// can be answered: as in Kafka, they fail with COORDINATOR_LOAD_IN_PROGRESS while any
    /// partition this broker leads (in the image it has) is not loaded in that leader epoch, and
    /// answer from what is loaded otherwise. Before the topic exists there is nothing to load,
    /// and the answer is empty (Kafka's coordinator has no partition to ask then).
    pub fn all_loaded(&self) -> Result<(), ResponseError> {
        let image = self.metadata.image();
        let Some(topic) = image.topic(self.spec.name) else {
            return Ok(());
        };
        let coordinating = lock(&self.coordinating);
        let loading = topic
            .partitions
            .iter()
            .enumerate()
            .any(|(i, p)| p.leader == self.node_id && coordinating.get(&(i as i32)) != Some(&p.leader_epoch));
        if loading {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// The leader of the key's partition, as FindCoordinator answers: `None` without one (or
    /// before the topic exists: FindCoordinator creates it first).
    pub fn coordinator_of(&self, key: &str) -> Option<i32> {
        let image = self.metadata.image();
        let t = image.topic(self.spec.name)?;
        t.partition(partition_for(key, t.partition_count())).map(|p| p.leader).filter(|&l| l >= 0)
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
        self.load_done.notify_waiters();
    }

    /// Waits, until `deadline` at the latest, while this broker leads `key`'s partition but has
    /// not loaded it yet. FindCoordinator waits here before naming this broker, where Kafka
    /// answers at once and the client's next request meets COORDINATOR_LOAD_IN_PROGRESS: some
    /// clients retry that, but librdkafka's synchronous commit hands it to the application,
    /// which then fails on a fresh or restarted broker for no reason of its own. Loading an
    /// offsets partition takes milliseconds to a few seconds, well inside a client's timeout.
    pub async fn await_load(&self, key: &str, deadline: tokio::time::Instant) {
        loop {
            let notified = self.load_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !matches!(self.ready_for(key), Err(ResponseError::CoordinatorLoadInProgress)) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
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

#[cfg(test)]
mod tests {
    //! What the coordinators' requests answer on a broker whose internal topics do not exist yet
    //! and while one of their partitions loads, through the real handlers (the end-to-end tests
    //! cannot hold a partition in the middle of its load).
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::broker::Broker;
    use crate::handlers::{describe_groups, describe_transactions, list_groups, list_transactions, offset_fetch};

    const LOAD: i16 = 14;
    const NOT_COORDINATOR: i16 = 16;

    /// A client of a broker without an authorizer.
    fn session() -> crate::session::Session {
        crate::session::Session::anonymous(std::net::SocketAddr::from(([127, 0, 0, 1], 1)), Arc::from("PLAINTEXT"))
    }

    fn group_state(broker: &Arc<Broker>, group: &str) -> (i16, String) {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        let g = describe_groups::handle(broker, req, &session()).groups.remove(0);
        (g.error_code, g.group_state.to_string())
    }

    fn offsets_error(broker: &Arc<Broker>, group: &str) -> i16 {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partition_indexes(vec![0])]));
        offset_fetch::handle(broker, req, 5, &session()).error_code
    }

    fn list_groups_error(broker: &Arc<Broker>) -> i16 {
        list_groups::handle(broker, ListGroupsRequest::default(), &session()).error_code
    }

    fn list_txns_error(broker: &Arc<Broker>) -> i16 {
        list_transactions::handle(broker, ListTransactionsRequest::default(), &session()).error_code
    }

    fn describe_txn_error(broker: &Arc<Broker>, id: &str) -> i16 {
        let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
        describe_transactions::handle(broker, req, &session()).transaction_states.remove(0).error_code
    }

    /// A key of partition `index` and one of another partition.
    fn keys(index: i32, partitions: i32) -> (String, String) {
        let of = |want: bool| (0..).map(|i| format!("k{i}")).find(|k| (partition_for(k, partitions) == index) == want).unwrap();
        (of(true), of(false))
    }

    /// Makes partition `index` of `topic` look as it does between its election here and the end
    /// of its replay: led here, not loaded.
    fn start_loading(broker: &Arc<Broker>, topic: &CoordinatorTopic, index: i32) -> i32 {
        let p = broker.replicas.partition(topic.name(), index).unwrap();
        topic.moves(&LeadershipChanges { gained: vec![p.clone()], ..Default::default() });
        p.leader_epoch()
    }

    #[tokio::test]
    async fn new_and_loading_coordinators_answer_as_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let props = BTreeMap::from([
            ("log.dirs".to_string(), dir.path().display().to_string()),
            ("offsets.topic.num.partitions".to_string(), "3".to_string()),
            ("transaction.state.log.num.partitions".to_string(), "3".to_string()),
        ]);
        let broker = Broker::open(strom_config::BrokerConfig::from_props(&props).unwrap()).await.unwrap();
        broker.metadata.register(vec![]).await;
        // Awaits the publish of an image after the registration.
        broker.topics.create_topic("t", 1, 1, Default::default(), false).await.unwrap();

        // No internal topic yet: the lists are empty, the keyed requests have no coordinator,
        // and none of them creates the topic.
        assert_eq!(list_groups_error(&broker), 0);
        assert_eq!(group_state(&broker, "g").0, NOT_COORDINATOR);
        assert_eq!(offsets_error(&broker, "g"), NOT_COORDINATOR);
        assert_eq!(list_txns_error(&broker), 0);
        assert_eq!(describe_txn_error(&broker, "tx"), NOT_COORDINATOR);
        assert!(broker.metadata.image().topic(OFFSETS_TOPIC).is_none());
        assert!(broker.metadata.image().topic(TRANSACTION_STATE_TOPIC).is_none());

        // FindCoordinator creates them and answers once they are loaded.
        assert_eq!(broker.groups.topic.ensure().await, Ok(()));
        assert_eq!(broker.transactions.topic.ensure().await, Ok(()));
        let (loading, other) = keys(1, 3);
        assert_eq!(group_state(&broker, &loading), (0, "Dead".to_string()));
        assert_eq!(offsets_error(&broker, &loading), 0);
        assert_eq!(describe_txn_error(&broker, &loading), ResponseError::TransactionalIdNotFound.code());

        // One offsets partition loading: its keys and the lists are retried, the other keys served.
        let epoch = start_loading(&broker, &broker.groups.topic, 1);
        assert_eq!(list_groups_error(&broker), LOAD);
        assert_eq!(group_state(&broker, &loading).0, LOAD);
        assert_eq!(offsets_error(&broker, &loading), LOAD);
        assert_eq!(group_state(&broker, &other), (0, "Dead".to_string()));
        assert_eq!(offsets_error(&broker, &other), 0);
        assert_eq!(list_txns_error(&broker), 0, "only the offsets topic is loading");
        broker.groups.topic.loaded(1, epoch);
        assert_eq!(list_groups_error(&broker), 0);
        assert_eq!(group_state(&broker, &loading), (0, "Dead".to_string()));

        // The same for a transaction-log partition.
        let epoch = start_loading(&broker, &broker.transactions.topic, 1);
        assert_eq!(list_txns_error(&broker), LOAD);
        assert_eq!(describe_txn_error(&broker, &loading), LOAD);
        assert_eq!(describe_txn_error(&broker, &other), ResponseError::TransactionalIdNotFound.code());
        assert_eq!(list_groups_error(&broker), 0);
        broker.transactions.topic.loaded(1, epoch);
        assert_eq!(list_txns_error(&broker), 0);
        broker.shutdown();
    }
}
