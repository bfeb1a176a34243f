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
use crate::producer_ids::ProducerIds;
use crate::replica_manager::ReplicaManager;
use crate::topics::TopicAdmin;
use crate::txn_service::TxnService;
use strom_metadata::MetadataImage;
use tokio::sync::watch;

pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// The cluster metadata: `metadata.image()` is the current snapshot.
    pub metadata: Arc<Controller>,
    pub replicas: Arc<ReplicaManager>,
    pub topics: Arc<TopicAdmin>,
    pub groups: Arc<GroupService>,
    pub transactions: Arc<TxnService>,
    /// The last metadata version applied to the replicas and the coordinators.
    published: watch::Sender<u64>,
    pub producer_ids: Arc<ProducerIds>,
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
        let producer_ids = Arc::new(ProducerIds::new(metadata.clone()));
        let transactions = Arc::new(TxnService::new(config.clone(), replicas.clone(), metadata.clone(), topics.clone(), groups.clone(), producer_ids.clone()));
        let broker = Arc::new(Broker {
            config,
            metadata,
            replicas,
            topics,
            groups,
            transactions,
            published,
            producer_ids,
            _dir_lock: dir_lock,
        });
        tokio::spawn(follow_metadata(broker.clone()));
        Ok(broker)
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
        self.transactions.leadership_changed(&changes);
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
