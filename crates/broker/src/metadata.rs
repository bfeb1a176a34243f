//! Cluster metadata: an immutable image, changed only by applying records.
//!
//! This follows Kafka's KRaft shape (MetadataImage + MetadataDelta): readers take an `Arc` snapshot
//! and never hold a lock while they work; a writer builds the next image from the current one plus
//! a list of records and swaps it in. Today the records are applied locally and the image is
//! persisted as one JSON file (topics change rarely); the cluster issue replaces that persistence
//! with a Raft log carrying the same records, without touching the readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sync::{lock, read, write};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Only the configs set on the topic; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Producer ids below this have been handed out; they are never reused.
    pub next_producer_id: i64,
    /// Dynamic broker-level configs set through AlterConfigs.
    pub broker_configs: BTreeMap<String, String>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == id)
    }
}

/// One change to the cluster metadata. The unit a replicated metadata log will carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MetadataRecord {
    TopicCreated(TopicImage),
    TopicDeleted { name: String },
    PartitionsIncreased { name: String, partitions: i32 },
    TopicConfigsSet { name: String, configs: BTreeMap<String, String> },
    BrokerConfigsSet { configs: BTreeMap<String, String> },
    ProducerIdsAllocated { next_producer_id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("metadata file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl MetadataImage {
    fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated(t) => {
                self.topics.insert(t.name.clone(), Arc::new(t.clone()));
            }
            MetadataRecord::TopicDeleted { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::PartitionsIncreased { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    debug_assert!(*partitions >= t.partitions, "partition counts only grow");
                    Arc::make_mut(t).partitions = *partitions;
                }
            }
            MetadataRecord::TopicConfigsSet { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    Arc::make_mut(t).configs = configs.clone();
                }
            }
            MetadataRecord::BrokerConfigsSet { configs } => self.broker_configs = configs.clone(),
            MetadataRecord::ProducerIdsAllocated { next_producer_id } => {
                debug_assert!(*next_producer_id >= self.next_producer_id);
                self.next_producer_id = *next_producer_id;
            }
        }
    }
}

/// Holds the current image and is the only writer of it.
pub struct MetadataStore {
    path: PathBuf,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises writers so that two changes never build on the same old image.
    writer: Mutex<()>,
}

impl MetadataStore {
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join("cluster-metadata.json");
        let image = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| MetadataError::Corrupt { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let image = MetadataImage { cluster_id: new_cluster_id(), ..Default::default() };
                persist(&path, &image)?;
                image
            }
            Err(source) => return Err(MetadataError::Io { path, source }),
        };
        Ok(MetadataStore { path, image: RwLock::new(Arc::new(image)), writer: Mutex::new(()) })
    }

    /// A consistent snapshot; cheap (one `Arc` clone).
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).clone()
    }

    /// Applies records atomically: all of them become visible and durable together, or none.
    /// `check` runs against the current image under the writer lock, so validation and apply
    /// cannot race with another writer.
    pub fn commit<E>(
        &self,
        build: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        let _w = lock(&self.writer);
        let current = self.image();
        let records = match build(&current) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut next = (*current).clone();
        for r in &records {
            next.apply(r);
        }
        persist(&self.path, &next)?;
        let next = Arc::new(next);
        *write(&self.image) = next.clone();
        Ok(Ok(next))
    }
}

fn persist(path: &Path, image: &MetadataImage) -> Result<(), MetadataError> {
    let io = |source| MetadataError::Io { path: path.to_path_buf(), source };
    let bytes = serde_json::to_vec_pretty(image)
        .map_err(|e| MetadataError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    crate::fsutil::write_atomic(path, &bytes).map_err(io)
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicImage {
        TopicImage { name: name.into(), id: Uuid::new_v4(), partitions: 2, replication_factor: 1, configs: BTreeMap::new() }
    }

    #[test]
    fn records_apply_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let cluster = store.image().cluster_id.clone();
        assert_eq!(cluster.len(), 22);
        let old = store.image();
        store
            .commit::<()>(|_| Ok(vec![MetadataRecord::TopicCreated(topic("a")), MetadataRecord::TopicCreated(topic("b"))]))
            .unwrap()
            .unwrap();
        store.commit::<()>(|_| Ok(vec![MetadataRecord::PartitionsIncreased { name: "a".into(), partitions: 5 }])).unwrap().unwrap();
        store.commit::<()>(|_| Ok(vec![MetadataRecord::TopicDeleted { name: "b".into() }])).unwrap().unwrap();
        // An old snapshot is unaffected by later changes.
        assert!(old.topics.is_empty());
        let reopened = MetadataStore::open(dir.path()).unwrap().image();
        assert_eq!(reopened.cluster_id, cluster);
        assert_eq!(reopened.topics.len(), 1);
        assert_eq!(reopened.topic("a").unwrap().partitions, 5);
    }

    #[test]
    fn failed_validation_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let r = store.commit(|_| Err::<Vec<MetadataRecord>, _>("no")).unwrap();
        assert!(r.is_err());
        assert!(store.image().topics.is_empty());
    }
}
