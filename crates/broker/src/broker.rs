//! The broker's shared state: config, metadata image, hosted partitions. Handlers get `&Broker`.

use std::path::Path;
use std::sync::Arc;

use strom_config::BrokerConfig;
use strom_controller::{Controller, ControllerError};
use crate::group_service::GroupService;
use strom_metadata::{MetadataImage, MetadataRecord};
use crate::partition::PartitionError;
use crate::replica_manager::ReplicaManager;

pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// The cluster metadata: `metadata.image()` is the current snapshot.
    pub metadata: Arc<Controller>,
    pub replicas: ReplicaManager,
    pub groups: GroupService,
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
        let replicas = ReplicaManager::new(config.clone(), metadata.incarnation);
        // Before this process registers nothing is led here; the changes are applied as the
        // metadata follower sees them (`server::follow_metadata`).
        replicas.sync_with(&metadata.image())?;
        let groups = GroupService::new(config.groups.coordinator.clone(), std::time::Duration::from_millis(config.groups.offsets_commit_timeout_ms));
        Ok(Arc::new(Broker {
            config,
            metadata,
            replicas,
            groups,
            producer_ids: tokio::sync::Mutex::new(0..0),
            _dir_lock: dir_lock,
        }))
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

    /// Brings the hosted replicas and group coordination in line with `image` (see
    /// `ReplicaManager::sync_with`); every caller that has a newer image goes through here, so
    /// no leadership change escapes the group coordinator. Blocking.
    pub fn apply_metadata(&self, image: &Arc<MetadataImage>) -> Result<(), PartitionError> {
        let changes = self.replicas.sync_with(image)?;
        self.groups.leadership_changed(self, &changes);
        Ok(())
    }

    pub fn shutdown(&self) {
        self.replicas.close_all();
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
