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
//!
//! Shutdown (`stop_work`, then `shutdown`) owns everything that opens, reads or writes a log
//! in the background: the creation of an internal topic under way is awaited (with its publish,
//! which opens and replays its partitions), then the metadata follower and the background loops
//! stop after the pass they are in, and only then are the logs closed. Otherwise a publish
//! running on a blocking thread would open logs after they were all closed (and log on after
//! "shut down cleanly", as the runtime waits for blocking threads), and the next start would
//! find them unclean.

use std::path::Path;
use std::sync::Arc;

use strom_config::BrokerConfig;
use strom_controller::{Controller, ControllerError};
use crate::group_service::GroupService;
use crate::partition::PartitionError;
use crate::producer_ids::ProducerIds;
use crate::replica_manager::ReplicaManager;
use crate::replication::client::Connector;
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
    /// Share partitions of the topic partitions led here (KIP-932), their state owned by the
    /// groups' coordinators.
    pub shares: Arc<crate::share_leader::ShareLeader>,
    pub transactions: Arc<TxnService>,
    /// The last metadata version applied to the replicas and the coordinators.
    published: watch::Sender<u64>,
    /// Set once shutdown began: the metadata follower and the background loops stop.
    stopping: watch::Sender<bool>,
    /// The metadata follower (`follow_metadata`), awaited by `stop_work`.
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub producer_ids: Arc<ProducerIds>,
    /// Client quotas and connection limits (`quotas.rs`).
    pub quotas: crate::quotas::QuotaManager,
    /// Whether the data directory is below `log.dir.min.free.bytes` (`disk_guard.rs`).
    pub disk: crate::disk_guard::DiskGuard,
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
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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
        // Nodes reach each other as securely as their listeners say: the controller quorum over
        // the CONTROLLER listener (TLS handed to the controller crate), brokers over the
        // inter-broker listener (TLS and SASL in the replication client).
        let quorum: Arc<dyn strom_controller::transport::Transport> = match &config.cluster.controller_listener {
            Some(l) if l.security_protocol != strom_config::SecurityProtocol::Plaintext => {
                let tls = l.tls.as_ref().zip(config.controller_tls.as_ref());
                let sasl = config.controller_sasl.clone().zip(l.sasl.as_ref().map(|s| s.plain_users.clone()));
                Arc::new(crate::quorum_transport::QuorumTransport::new(l.security_protocol, tls, sasl)?)
            }
            _ => Arc::new(strom_controller::transport::Plaintext),
        };
        let metadata = Controller::open_with(config.clone(), quorum).await?;
        let connector = Arc::new(inter_broker_connector(&config, &metadata.image())?);
        let replicas = Arc::new(ReplicaManager::new(config.clone(), metadata.incarnation, connector));
        // Before this process registers nothing is led here; the changes are applied as the
        // metadata follower sees them (`follow_metadata`).
        let image = metadata.image();
        if let Some(e) = replicas.sync_with(&image).error {
            return Err(e.into());
        }
        let (published, seen) = watch::channel(image.version);
        let topics = Arc::new(TopicAdmin::new(config.clone(), metadata.clone(), seen));
        let groups = Arc::new(GroupService::new(config.clone(), replicas.clone(), metadata.clone(), topics.clone()));
        let shares = Arc::new(crate::share_leader::ShareLeader::new(
            config.node_id,
            groups.clone(),
            crate::peers::Peers::new(config.node_id, replicas.clone(), metadata.clone()),
            config.groups.share.clone(),
            std::time::Duration::from_millis(config.groups.offsets_commit_timeout_ms),
        ));
        let producer_ids = Arc::new(ProducerIds::new(metadata.clone()));
        let transactions = Arc::new(TxnService::new(config.clone(), replicas.clone(), metadata.clone(), topics.clone(), groups.clone(), producer_ids.clone()));
        let limits = crate::quotas::connections::Limits {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            per_ip_overrides: config.max_connections_per_ip_overrides.iter().copied().collect(),
        };
        let quotas = crate::quotas::QuotaManager::new(config.quota_window_size_seconds, config.quota_window_num, limits);
        let broker = Arc::new(Broker {
            config,
            metadata,
            replicas,
            topics,
            groups,
            shares,
            transactions,
            published,
            stopping: watch::Sender::new(false),
            follower: std::sync::Mutex::new(None),
            producer_ids,
            quotas,
            disk: Default::default(),
            _dir_lock: dir_lock,
        });
        let follower = tokio::spawn(follow_metadata(broker.clone(), broker.stopping.subscribe()));
        *crate::sync::lock(&broker.follower) = Some(follower);
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

    /// What a background task of the broker watches: true once shutdown began, when it must
    /// stop after the pass it is in (never in the middle of one).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The first step of a clean shutdown: no internal topic is created from now on and a
    /// creation under way is awaited (published, so its partitions are open here and are
    /// closed with the rest). Metadata is still followed meanwhile: the creation needs it.
    pub async fn stop_creating_topics(&self) {
        self.groups.topic.stop_creating().await;
        self.transactions.topic.stop_creating().await;
    }

    /// Stops the metadata follower and every task watching `stopping`, and waits for the
    /// follower to finish the image it is publishing: nothing opens a log after this returns.
    pub async fn stop_work(&self) {
        self.stopping.send_replace(true);
        let follower = crate::sync::lock(&self.follower).take();
        if let Some(f) = follower {
            let _ = f.await;
        }
    }

    /// Closes every log cleanly. Call after `stop_work` (a fatal error may call it directly:
    /// the replica manager then opens nothing more either).
    pub fn shutdown(&self) {
        self.replicas.close_all();
    }
}

/// How this node connects to its peers' inter-broker listener. Stores altered at run time
/// outlive a restart, so they are presented from the first follower fetch on; should they no
/// longer load (a file gone since), the start goes on with server.properties' stores and says so,
/// as the listener's own server side does.
fn inter_broker_connector(config: &BrokerConfig, image: &MetadataImage) -> Result<Connector, crate::tls::TlsError> {
    let dynamic = image.dynamic_configs(config.node_id);
    if let Ok(effective) = config.with_dynamic(&dynamic) {
        if effective.inter_broker.tls.is_some() && effective.reconfigurable_tls(&effective.inter_broker.listener) != config.reconfigurable_tls(&config.inter_broker.listener) {
            match Connector::new(&effective.inter_broker) {
                Ok(c) => return Ok(c),
                Err(e) => tracing::error!(error = %e, "inter-broker client: the TLS stores altered as a dynamic config do not load: connecting with server.properties' stores"),
            }
        }
    }
    Connector::new(&config.inter_broker)
}

/// Publishes every metadata change this node applies (changes made through another node arrive
/// only this way), on a blocking thread, one image at a time, until shutdown.
async fn follow_metadata(broker: Arc<Broker>, mut stopping: watch::Receiver<bool>) {
    let mut images = broker.metadata.subscribe();
    loop {
        let image = images.borrow_and_update().image.clone();
        let b = broker.clone();
        // Awaited whole, so that `stop_work` waiting for this task also waits for the publish.
        let _ = tokio::task::spawn_blocking(move || b.publish(&image)).await;
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = stopping.wait_for(|s| *s) => return,
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
