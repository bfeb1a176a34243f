//! The broker's shared state: config, the controller (metadata), hosted partitions, topic
//! administration, the group coordinator. Handlers get `&Broker`; the subsystems never do: each
//! holds the narrow handles it needs (`Arc<ReplicaManager>`, `Arc<Controller>`, ...), so
//! dependencies inside the crate point one way, from here down.
//!
//! Metadata flows one way: the controller publishes each applied image; `publish` (run by the
//! task `Broker::open` starts) hands it to the replica manager, which applies what changed and
//! reports leadership changes, then to the group coordinator, and finally marks the version
//! published. A proposer that must see its change here (topic administration) waits for that
//! mark; nobody applies images by hand.

use std::path::Path;
use std::sync::Arc;

use strom_config::BrokerConfig;
use strom_controller::{Controller, ControllerError};
use crate::group_service::GroupService;
use crate::partition::PartitionError;
use crate::replica_manager::ReplicaManager;
use crate::topics::TopicAdmin;
use strom_metadata::{MetadataImage, MetadataRecord};
use tokio::sync::watch;

pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// The cluster metadata: `metadata.image()` is the current snapshot.
    pub metadata: Arc<Controller>,
    pub replicas: Arc<ReplicaManager>,
    pub topics: Arc<TopicAdmin>,
    pub groups: Arc<GroupService>,
    /// The last metadata version applied to the replicas and the coordinators.
    published: watch::Sender<u64>,
    /// Producer ids are reserved from the metadata image in blocks, so an id is never handed out
    /// twice even across restarts (idempotence state on disk is keyed by it).
    producer_ids: tokio::sync::Mutex<std::ops::Range<i64>>,
    _dir_lock: DirLock,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot use data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("data directory {0} is in use by another strom process")]
    DataDirLocked(String),
    #[error(transparent)]
    Metadata(#[from] ControllerError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    pub async fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let config = Arc::new(config);
        let dir = &config.log_dir;
        let shown = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::DataDir(shown.clone(), e))?;
        let dir_lock = DirLock::acquire(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => BrokerError::DataDirLocked(shown.clone()),
            _ => BrokerError::DataDir(shown.clone(), e),
        })?;
        let metadata = Controller::open(config.clone()).await?;
        let replicas = Arc::new(ReplicaManager::new(config.clone(), metadata.incarnation));
        // Before this process registers nothing is led here; the changes are applied as the
        // metadata follower sees them (`follow_metadata`).
        let image = metadata.image();
        if let Some(e) = replicas.sync_with(&image).error {
            return Err(e.into());
        }
        let (published, seen) = watch::channel(image.version);
        let topics = Arc::new(TopicAdmin::new(config.clone(), metadata.clone(), seen));
        let groups = Arc::new(GroupService::new(config.clone(), replicas.clone(), metadata.clone(), topics.clone()));
        let broker = Arc::new(Broker {
            config,
            metadata,
            replicas,
            topics,
            groups,
            published,
            producer_ids: tokio::sync::Mutex::new(0..0),
            _dir_lock: dir_lock,
        });
        tokio::spawn(follow_metadata(broker.clone()));
        Ok(broker)
    }

    pub async fn next_producer_id(&self) -> Result<i64, ControllerError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.is_empty() {
            let image = self
                .metadata
                .commit::<std::convert::Infallible>(|img| {
                    Ok(vec![MetadataRecord::ProducerIdsAllocated { next_producer_id: img.next_producer_id + PRODUCER_ID_BLOCK }])
                })
                .await?
                .unwrap_or_else(|never| match never {});
            *ids = image.next_producer_id - PRODUCER_ID_BLOCK..image.next_producer_id;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// Brings the hosted replicas and group coordination in line with `image`, then marks it
    /// published. Only `follow_metadata` calls it, so images are applied one at a time, in order.
    /// Blocking (opening a log may recover it, loading groups reads logs).
    fn publish(&self, image: &Arc<MetadataImage>) {
        let changes = self.replicas.sync_with(image);
        if let Some(e) = &changes.error {
            tracing::error!(error = %e, "applying a metadata change to the local replicas failed; retried with the next change");
        }
        self.groups.leadership_changed(&changes);
        self.published.send_if_modified(|v| {
            let next = (*v).max(image.version);
            std::mem::replace(v, next) != next
        });
    }

    pub fn shutdown(&self) {
        self.replicas.close_all();
    }
}

/// Publishes every metadata change this node applies (changes made through another node arrive
/// only this way), on a blocking thread, one image at a time.
async fn follow_metadata(broker: Arc<Broker>) {
    let mut images = broker.metadata.subscribe();
    loop {
        let image = images.borrow_and_update().image.clone();
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.publish(&image)).await;
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// An exclusive `flock` on `<log_dir>/.lock`: two brokers writing one directory would corrupt it.
struct DirLock { _file: std::fs::File }

impl DirLock {
    fn acquire(dir: &Path) -> std::io::Result<DirLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".lock"))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _file: f })
    }
}
