//! All partitions this broker hosts, keyed by topic name and partition index.
//!
//! The map is rebuilt from the metadata image (`sync_with`), so the image stays the single source
//! of truth for which partitions exist; this module only owns their open logs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kafka_protocol::error::ResponseError;
use tokio::sync::Notify;

use crate::config::{topic_settings, BrokerConfig};
use crate::metadata::MetadataImage;
use crate::partition::{Partition, PartitionError};
use crate::sync::{read, write};

pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    log_dir: PathBuf,
    /// The replicas hosted here, by topic and partition index.
    topics: RwLock<HashMap<String, BTreeMap<i32, Arc<Partition>>>>,
    /// The image the hosted set was last synced with.
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises `sync_with`: two concurrent syncs would both see a topic's old partition count
    /// and open the same new partition twice, which would mean two writers for one log.
    syncing: std::sync::Mutex<()>,
    /// Woken on every append so that long-polling fetches re-check. One broker-wide signal is
    /// enough at this scale; a per-partition purgatory (as Kafka has) can replace it if many idle
    /// consumers make the wake-ups show up in profiles.
    pub data_arrived: Notify,
}

impl ReplicaManager {
    pub fn new(config: Arc<BrokerConfig>) -> Self {
        let log_dir = config.log_dir.clone();
        ReplicaManager {
            config,
            log_dir,
            topics: RwLock::new(HashMap::new()),
            image: RwLock::new(Arc::default()),
            syncing: std::sync::Mutex::new(()),
            data_arrived: Notify::new(),
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
            Some(p) if p.leader == crate::metadata::NO_LEADER => Err(ResponseError::LeaderNotAvailable),
            Some(_) => Err(ResponseError::NotLeaderOrFollower),
            None => Err(ResponseError::UnknownTopicOrPartition),
        }
    }

    /// The replicas of a topic hosted here.
    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        read(&self.topics).get(topic).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        read(&self.topics).values().flat_map(|m| m.values().cloned()).collect()
    }

    /// Makes the hosted replicas match `image`: opens the replicas assigned to this node, removes
    /// (with their data) those of deleted topics or no longer assigned here, and applies configs
    /// and leadership. Called at startup and after each metadata change; an image older than the
    /// last one synced is ignored, so racing callers cannot go back in time.
    pub fn sync_with(&self, image: &Arc<MetadataImage>) -> Result<(), PartitionError> {
        let _one_at_a_time = crate::sync::lock(&self.syncing);
        if image.version < read(&self.image).version {
            return Ok(());
        }
        *write(&self.image) = image.clone();
        let me = self.config.node_id;
        // Dynamic broker configs were validated when set; should that ever fail, keep the static ones.
        let config = self.config.with_dynamic(&image.broker_configs).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ignoring invalid dynamic broker configs");
            (*self.config).clone()
        });
        let assigned = |topic: &str, id: uuid::Uuid, index: i32| {
            image.topic(topic).filter(|t| t.id == id).and_then(|t| t.partition(index)).filter(|p| p.replicas.contains(&me))
        };
        let stale: Vec<Arc<Partition>> = self.all().into_iter().filter(|p| assigned(&p.topic, p.topic_id, p.index).is_none()).collect();
        for p in stale {
            if let Some(m) = write(&self.topics).get_mut(&*p.topic) {
                m.remove(&p.index);
            }
            p.delete()?;
        }
        write(&self.topics).retain(|_, m| !m.is_empty());
        for topic in image.topics.values() {
            let settings = topic_settings(&config, &topic.configs);
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
                    None => {
                        let p = Arc::new(Partition::open(&self.log_dir, &topic.name, topic.id, index, &settings)?);
                        write(&self.topics).entry(topic.name.clone()).or_default().insert(index, p.clone());
                        p
                    }
                };
                p.set_leadership(assignment.leader == me, assignment.leader_epoch);
            }
        }
        Ok(())
    }

    /// Clean shutdown: every log flushed and marked clean.
    pub fn close_all(&self) {
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

    /// Time- and size-based retention for every partition (the background task's body).
    pub fn enforce_retention(&self, now_ms: i64) {
        for p in self.all() {
            match p.with_log_mut(|log| log.enforce_retention(now_ms)) {
                Ok(0) | Err(PartitionError::Closed) => {}
                Ok(n) => tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
            }
        }
    }
}
