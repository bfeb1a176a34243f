//! All partitions this broker hosts, keyed by topic name and partition index.
//!
//! The map is rebuilt from the metadata image (`sync_with`), so the image stays the single source
//! of truth for which partitions exist; this module only owns their open logs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kafka_protocol::error::ResponseError;
use std::time::Duration;

use strom_controller::Controller;
use tokio::sync::Notify;

use strom_config::{BrokerConfig, ReplicaSelector};
use crate::clock::now_ms;
use strom_metadata::delta::MetadataDelta;
use strom_metadata::{MetadataImage, TopicImage, NO_LEADER};
use crate::partition::{Partition, PartitionError, RoleChange};
use crate::replication::client::Connector;
use crate::replication::fetcher::{Assignment, Fetchers};
use crate::replication::quota::ReplicationQuotas;
use crate::sync::{lock, read, write};

/// What a `sync_with` changed in this broker's leadership.
#[derive(Default)]
pub struct LeadershipChanges {
    pub gained: Vec<Arc<Partition>>,
    pub lost: Vec<Arc<Partition>>,
    /// The image includes this process's registration: leadership in it is current.
    pub registered: bool,
    /// The first partition that could not be opened, re-roled or deleted. The others were
    /// synced all the same, and the next image visits what this one touched again.
    pub error: Option<PartitionError>,
}

pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    incarnation: uuid::Uuid,
    log_dir: PathBuf,
    fetchers: Fetchers,
    connector: Arc<Connector>,
    /// The replicas hosted here, by topic and partition index.
    topics: RwLock<HashMap<String, BTreeMap<i32, Arc<Partition>>>>,
    /// The image the hosted set was last synced with.
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises `sync_with`: two concurrent syncs would both see a topic's old partition count
    /// and open the same new partition twice, which would mean two writers for one log. Holds
    /// true once `close_all` ran: no sync opens a log after the clean shutdown closed them all.
    syncing: std::sync::Mutex<bool>,
    /// The partitions followed here: (leader, its address, the replica, the leader epoch), kept
    /// between syncs, which visit only what changed.
    following: std::sync::Mutex<BTreeMap<(Arc<str>, i32), (i32, String, Arc<Partition>, i32)>>,
    /// Woken on every append so that long-polling fetches re-check. One broker-wide signal is
    /// enough at this scale; a per-partition purgatory (as Kafka has) can replace it if many idle
    /// consumers make the wake-ups show up in profiles.
    pub data_arrived: Arc<Notify>,
    /// KIP-73's replication throttles: the fetch handler meters the leader's side, the fetchers
    /// the follower's; their bounds follow the dynamic configs at each `sync_with`.
    pub replication_quotas: Arc<ReplicationQuotas>,
}

impl ReplicaManager {
    /// `incarnation`: this process's, as it registers with the controller. Call inside the runtime.
    /// `connector`: how this broker reaches the other brokers' inter-broker listener.
    pub fn new(config: Arc<BrokerConfig>, incarnation: uuid::Uuid, connector: Arc<Connector>) -> Self {
        let log_dir = config.log_dir.clone();
        let data_arrived = Arc::new(Notify::new());
        let replication_quotas = Arc::new(ReplicationQuotas::new(&config.replication_throttle));
        ReplicaManager {
            fetchers: Fetchers::new(config.node_id, connector.clone(), data_arrived.clone(), replication_quotas.clone()),
            replication_quotas,
            connector,
            config,
            incarnation,
            log_dir,
            topics: RwLock::new(HashMap::new()),
            image: RwLock::new(Arc::default()),
            syncing: std::sync::Mutex::new(false),
            following: std::sync::Mutex::new(BTreeMap::new()),
            data_arrived,
        }
    }

    /// The replica hosted here, leader or not.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        read(&self.topics).get(topic)?.get(&index).cloned()
    }

    /// The partition if this broker leads it, else the error a Kafka broker gives a client that
    /// asked the wrong broker (it refreshes its metadata and retries elsewhere).
    pub fn leader(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ResponseError> {
        if let Some(p) = self.partition(topic, index).filter(|p| p.is_leader()) {
            return Ok(p);
        }
        let image = read(&self.image).clone();
        match image.topic(topic).and_then(|t| t.partition(index)) {
            Some(p) if p.leader == strom_metadata::NO_LEADER => Err(ResponseError::LeaderNotAvailable),
            Some(_) => Err(ResponseError::NotLeaderOrFollower),
            None => Err(ResponseError::UnknownTopicOrPartition),
        }
    }

    /// The replica a consumer's fetch reads: with `from_followers` (Fetch v11+, which carries
    /// the client's rack, KIP-392) any replica hosted here, leader or follower, as Kafka serves
    /// such fetches from followers too; else only the leader (`leader`).
    pub fn for_consumer(&self, topic: &str, index: i32, from_followers: bool) -> Result<Arc<Partition>, ResponseError> {
        match self.partition(topic, index) {
            Some(p) if from_followers => Ok(p),
            _ => self.leader(topic, index),
        }
    }

    /// KIP-392: the follower a consumer in `client_rack` should fetch `partition` from at
    /// `fetch_offset`, if this broker leads it and `replica.selector.class` picks another
    /// replica (Kafka's `findPreferredReadReplica`).
    pub fn preferred_read_replica(&self, partition: &Partition, client_rack: &str, fetch_offset: i64) -> Option<i32> {
        if self.config.replica_selector != ReplicaSelector::RackAware {
            return None;
        }
        let (leader, followers) = partition.read_replica_views(fetch_offset, now_ms())?;
        let image = read(&self.image).clone();
        strom_metadata::read_replica::rack_aware(&image, client_rack, leader, &followers)
    }

    /// The replicas of a topic hosted here.
    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        read(&self.topics).get(topic).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        read(&self.topics).values().flat_map(|m| m.values().cloned()).collect()
    }

    /// Makes the hosted replicas match `image`: opens the replicas assigned to this node, removes
    /// (with their data) those of deleted topics or no longer assigned here, applies configs,
    /// takes up or gives up leadership, and points the fetchers at the leaders of the rest.
    /// Called at startup and after each metadata change; an image older than the last one
    /// synced is ignored, so racing callers cannot go back in time.
    ///
    /// Only the topics the change touched are visited (`MetadataDelta`), unless brokers or
    /// dynamic broker configs changed, which concern every partition (this broker's own
    /// registration, the leaders' addresses, topic defaults).
    ///
    /// Leadership counts only under this process's own registration: an image from before it
    /// may still name this broker the leader its previous process was, with a log this process
    /// may not have (a wiped disk). Until the registration lands, every replica here follows.
    pub fn sync_with(&self, image: &Arc<MetadataImage>) -> LeadershipChanges {
        let closed = crate::sync::lock(&self.syncing);
        let mut changes = LeadershipChanges::default();
        let old = read(&self.image).clone();
        if image.version < old.version || *closed {
            return changes;
        }
        let me = self.config.node_id;
        changes.registered = image.brokers.get(&me).is_some_and(|b| b.incarnation == self.incarnation && !b.fenced);
        let delta = MetadataDelta::between(&old, image);
        let everything = delta.brokers_changed || delta.broker_configs_changed;
        // Dynamic broker configs were validated when set; should that ever fail, keep the static ones.
        let config = self.config.with_dynamic(&image.dynamic_configs(me)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ignoring invalid dynamic broker configs");
            (*self.config).clone()
        });
        self.replication_quotas.set_bounds(&config.replication_throttle);
        let touched: BTreeSet<&str> = delta.changed.iter().chain(&delta.deleted).map(|t| t.name.as_str()).collect();
        let assigned = |topic: &str, id: uuid::Uuid, index: i32| {
            image.topic(topic).filter(|t| t.id == id).and_then(|t| t.partition(index)).filter(|p| p.replicas.contains(&me))
        };
        let stale: Vec<Arc<Partition>> = self
            .all()
            .into_iter()
            .filter(|p| everything || touched.contains(&*p.topic))
            .filter(|p| assigned(&p.topic, p.topic_id, p.index).is_none())
            .collect();
        let mut following = lock(&self.following);
        for p in stale {
            if let Some(m) = write(&self.topics).get_mut(&*p.topic) {
                m.remove(&p.index);
            }
            following.remove(&(p.topic.clone(), p.index));
            if p.is_leader() {
                changes.lost.push(p.clone());
            }
            p.become_follower(p.leader_epoch());
            if let Err(e) = p.delete() {
                changes.error.get_or_insert(e);
            }
        }
        write(&self.topics).retain(|_, m| !m.is_empty());
        let now = now_ms();
        let visit: Vec<&Arc<TopicImage>> = if everything { image.topics.values().collect() } else { delta.changed.iter().collect() };
        for topic in visit {
            let settings = config.topic_settings(&topic.configs);
            for (index, assignment) in topic.partitions.iter().enumerate() {
                if !assignment.replicas.contains(&me) {
                    continue;
                }
                let index = index as i32;
                let p = match self.partition(&topic.name, index) {
                    Some(p) => {
                        p.set_settings(&settings);
                        p
                    }
                    None => match Partition::open(&self.log_dir, &topic.name, topic.id, index, &settings) {
                        Ok(p) => {
                            let p = Arc::new(p);
                            write(&self.topics).entry(topic.name.clone()).or_default().insert(index, p.clone());
                            p
                        }
                        Err(e) => {
                            changes.error.get_or_insert(e);
                            continue;
                        }
                    },
                };
                p.set_throttled(settings.leader_throttled_replicas.covers(index, me), settings.follower_throttled_replicas.covers(index, me));
                match p.apply_assignment(me, changes.registered, assignment, now) {
                    Ok(RoleChange::Gained) => changes.gained.push(p.clone()),
                    Ok(RoleChange::Lost) => changes.lost.push(p.clone()),
                    Ok(RoleChange::None) => {}
                    Err(e) => {
                        changes.error.get_or_insert(e);
                    }
                }
                let key = (p.topic.clone(), index);
                match self.leader_address(image, assignment.leader) {
                    Some(addr) => {
                        following.insert(key, (assignment.leader, addr, p, assignment.leader_epoch));
                    }
                    None => {
                        following.remove(&key);
                    }
                }
            }
        }
        let mut follow: HashMap<i32, (String, Vec<Assignment>)> = HashMap::new();
        for (leader, addr, partition, epoch) in following.values() {
            follow.entry(*leader).or_insert_with(|| (addr.clone(), Vec::new())).1.push(Assignment { partition: partition.clone(), epoch: *epoch });
        }
        drop(following);
        self.fetchers.assign(follow);
        // Only an image applied whole becomes the base of the next delta: after a failure the
        // next image visits this one's changes again (re-visiting a synced partition is a no-op).
        if changes.error.is_none() {
            *write(&self.image) = image.clone();
        }
        changes
    }

    /// How this broker connects to the others (fetchers, and `Peers` for the coordinators).
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    /// Where this broker reaches broker `leader` (its fetcher, the transaction coordinator's
    /// markers): the inter-broker listener in the leader's registration.
    /// `None` for no leader, this broker, or an unknown one.
    pub fn leader_address(&self, image: &MetadataImage, leader: i32) -> Option<String> {
        if leader == NO_LEADER || leader == self.config.node_id {
            return None;
        }
        let listener = self.connector.listener.as_str();
        let b = image.brokers.get(&leader)?;
        // Never another listener: it could be a weaker one than the inter-broker listener.
        let e = b.endpoints.iter().find(|e| e.listener == listener)?;
        Some(format!("{}:{}", e.host, e.port))
    }

    /// Clean shutdown: every log flushed and marked clean; no later `sync_with` opens another.
    pub fn close_all(&self) {
        *crate::sync::lock(&self.syncing) = true;
        self.fetchers.stop_all();
        for p in self.all() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing partition failed; it will be recovered on next start");
            }
        }
    }

    /// One pass of the log cleaner over every compacted partition (the background task's body).
    pub fn compact_all(&self, now_ms: i64) {
        for p in self.all() {
            match p.compact(now_ms) {
                Ok(Some(s)) if s.segments_cleaned > 0 => tracing::info!(
                    topic = %p.topic,
                    partition = p.index,
                    segments = s.segments_cleaned,
                    records_removed = s.records_removed,
                    bytes_before = s.bytes_before,
                    bytes_after = s.bytes_after,
                    "compacted"
                ),
                Ok(_) | Err(PartitionError::Closed) => {}
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "compaction failed"),
            }
        }
    }

    /// Forgets idempotent producers idle past `producer.id.expiration.ms` in every partition
    /// (never one with an open transaction).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) {
        for p in self.all() {
            match p.expire_producers(now_ms, expiration_ms) {
                Ok(0) | Err(PartitionError::Closed) => {}
                Ok(n) => tracing::debug!(topic = %p.topic, partition = p.index, producers = n, "expired idle producers"),
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "producer expiry failed"),
            }
        }
    }

    /// Time- and size-based retention for every partition (the background task's body).
    pub fn enforce_retention(&self, now_ms: i64) {
        for p in self.all() {
            match p.enforce_retention(now_ms) {
                Ok(0) | Err(PartitionError::Closed) => {}
                Ok(n) => tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
            }
        }
    }
}

/// How often leaders look at their followers: often enough that a follower that caught up is
/// back in the ISR within a fraction of a second (min.insync.replicas waits for it).
const ISR_CHECK: Duration = Duration::from_millis(200);

/// The leaders' side of ISR changes. A change is proposed to the controller with the leader
/// epoch it was computed in; the controller refuses it if leadership moved meanwhile, and the
/// leader applies the new ISR only once it is in the metadata image (`ReplicaManager::sync_with`),
/// so the high watermark never counts on a follower the controller might not elect.
/// Runs until `stopping` turns true.
pub async fn maintain_isr(replicas: Arc<ReplicaManager>, controller: Arc<Controller>, lag_ms: i64, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ISR_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let now = now_ms();
        let proposals: Vec<_> = replicas.all().into_iter().filter_map(|p| Some((p.clone(), p.propose_isr(now, lag_ms)?))).collect();
        if proposals.is_empty() {
            continue;
        }
        let changes = proposals.iter().map(|(_, c)| c.clone()).collect();
        // The ISRs the proposals replace, to count shrinks and expansions that applied.
        let before = controller.image();
        match controller.alter_isr(changes).await {
            Ok(image) => {
                // Committed: the image has the outcome. Where the partition is still in the
                // epoch a proposal was built on, it did not apply (and no earlier one will).
                for (p, c) in proposals {
                    let Some(now_in) = image.topic(&c.topic).and_then(|t| t.partition(c.index)) else { continue };
                    if now_in.partition_epoch == c.partition_epoch {
                        p.isr_proposal_settled(c.partition_epoch);
                    } else if now_in.leader_epoch == c.leader_epoch && now_in.isr == c.isr {
                        tracing::info!(topic = %c.topic, partition = c.index, leader_epoch = c.leader_epoch, isr = ?c.isr, "ISR changed");
                        if let Some(was) = before.topic(&c.topic).and_then(|t| t.partition(c.index)) {
                            if was.isr.len() != c.isr.len() {
                                crate::metrics::isr_changed(c.isr.len() < was.isr.len());
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "ISR changes not committed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_metadata::{BrokerRegistration, MetadataCommand, MetadataRecord, PartitionImage};

    fn with(image: &MetadataImage, record: MetadataRecord) -> Arc<MetadataImage> {
        let mut next = image.clone();
        next.apply_command(&MetadataCommand { based_on: None, records: vec![record] });
        Arc::new(next)
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::TopicCreated(TopicImage {
            name: name.into(),
            id: uuid::Uuid::from_u128(id),
            replication_factor: 1,
            partitions: vec![PartitionImage::new(vec![1])],
            configs: Default::default(),
        })
    }

    #[tokio::test]
    async fn a_partition_that_failed_to_open_is_opened_with_the_next_image() {
        let dir = tempfile::tempdir().unwrap();
        let props = [("log.dirs".to_string(), dir.path().display().to_string())].into_iter().collect();
        let config = Arc::new(BrokerConfig::from_props(&props).unwrap());
        let incarnation = uuid::Uuid::from_u128(7);
        let rm = ReplicaManager::new(config, incarnation, Arc::new(Connector::plaintext("PLAINTEXT")));
        let registered = with(&MetadataImage::default(), MetadataRecord::BrokerRegistered(BrokerRegistration { id: 1, incarnation, endpoints: vec![], rack: None, fenced: false }));
        // A file where the partition's directory must go: opening it fails.
        std::fs::write(Partition::dir_for(dir.path(), "a", 0), b"in the way").unwrap();
        let one = with(&registered, topic("a", 1));
        let changes = rm.sync_with(&one);
        assert!(changes.error.is_some() && rm.partition("a", 0).is_none());
        // The obstacle goes; the next image does not touch topic "a", but the failed change is
        // visited again because only a whole sync becomes the base of the next delta.
        std::fs::remove_file(Partition::dir_for(dir.path(), "a", 0)).unwrap();
        let two = with(&one, topic("b", 2));
        let changes = rm.sync_with(&two);
        assert!(changes.error.is_none());
        assert!(rm.partition("a", 0).is_some_and(|p| p.is_leader()), "opened and leading");
        assert_eq!(changes.gained.len(), 2);
        rm.close_all();
    }
}
