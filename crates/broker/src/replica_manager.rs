//! All partitions this broker hosts, keyed by topic name and partition index.
//!
//! The map is rebuilt from the metadata image (`sync_with`), so the image stays the single source
//! of truth for which partitions exist; this module only owns their open logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::config::{topic_settings, BrokerConfig};
use crate::metadata::MetadataStore;
use crate::partition::{Partition, PartitionError};
use crate::sync::{read, write};

pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    log_dir: PathBuf,
    topics: RwLock<HashMap<String, Vec<Arc<Partition>>>>,
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
            syncing: std::sync::Mutex::new(()),
            data_arrived: Notify::new(),
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = read(&self.topics);
        let parts = topics.get(topic)?;
        usize::try_from(index).ok().and_then(|i| parts.get(i)).cloned()
    }

    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        read(&self.topics).get(topic).cloned().unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        read(&self.topics).values().flatten().cloned().collect()
    }

    /// Opens every partition the current image names and not yet open, and applies current
    /// configs. Called at startup and after each metadata change. It reads the image itself, under
    /// its lock, so an older snapshot can never be applied after a newer one.
    pub fn sync_with(&self, metadata: &MetadataStore) -> Result<(), PartitionError> {
        let _one_at_a_time = crate::sync::lock(&self.syncing);
        let image = metadata.image();
        // Dynamic broker configs were validated when set; should that ever fail, keep the static ones.
        let config = self.config.with_dynamic(&image.broker_configs).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ignoring invalid dynamic broker configs");
            (*self.config).clone()
        });
        for topic in image.topics.values() {
            let settings = topic_settings(&config, &topic.configs);
            let have = self.partitions_of(&topic.name);
            for p in &have {
                p.set_settings(&settings);
            }
            let mut opened = Vec::new();
            for index in have.len() as i32..topic.partitions {
                let p = Partition::open(&self.log_dir, &topic.name, topic.id, index, &settings)?;
                opened.push(Arc::new(p));
            }
            if !opened.is_empty() {
                write(&self.topics).entry(topic.name.clone()).or_default().extend(opened);
            }
        }
        Ok(())
    }

    /// Removes a deleted topic's partitions and their data.
    pub fn delete_topic(&self, topic: &str) -> Result<(), PartitionError> {
        let _one_at_a_time = crate::sync::lock(&self.syncing);
        let removed = write(&self.topics).remove(topic).unwrap_or_default();
        for p in removed {
            p.delete()?;
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
