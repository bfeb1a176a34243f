//! The controller: the cluster's metadata as a Raft log (openraft) that every node holds.
//!
//! Every node is a voter of the controller quorum and a broker (KRaft's combined mode). A change
//! to the metadata is a `MetadataCommand`, proposed to the active controller (the Raft leader),
//! appended to a majority, and applied by every node to its own `MetadataImage`, which readers
//! take as an `Arc` snapshot (`image()`). A cluster of one is the same code with a single voter
//! and no network.
//!
//! - `types.rs`: the Raft type configuration.
//! - `log_store.rs`, `state_machine.rs`: the log on disk and the image as state machine.
//! - `network.rs`: the CONTROLLER listener's protocol, client side; `rpc.rs`: its server side.
//! - `liveness.rs`: broker registration, heartbeats, fencing and controlled shutdown.

mod liveness;
mod log_store;
mod network;
mod rpc;
mod state_machine;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::watch;

use log_store::LogStore;
use network::{Network, NodeContext, NotController, PeerClient, Request, Response};
pub use state_machine::Applied;
use state_machine::StateMachine;
use types::{CommandResult, Raft};

use strom_config::BrokerConfig;
use strom_metadata::{IsrChange, MetadataCommand, MetadataImage, MetadataRecord};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("metadata log in {dir}: {source}")]
    Storage { dir: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("the controller quorum is not available: {0}")]
    Unavailable(String),
    #[error("metadata change kept conflicting with concurrent changes; try again")]
    Contention,
}

/// A poisoned lock means a thread panicked while holding it; the state it guards is still
/// valid (critical sections keep their invariants before any fallible call), so take it.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a proposal waits for a leader before giving up.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Controller {
    pub node_id: i32,
    /// New on every start of the process: the broker registers with it, and leads partitions
    /// only under a registration of this incarnation (`ReplicaManager::sync_with`).
    pub incarnation: uuid::Uuid,
    raft: Raft,
    ctx: NodeContext,
    applied: watch::Receiver<Applied>,
    /// The other voters, by node id.
    peers: BTreeMap<u64, Arc<PeerClient>>,
    /// A second connection to each voter, for heartbeats only: a heartbeat must never wait
    /// behind a proposal stuck on a frozen controller, or a new active controller would fence
    /// brokers that are alive but still queued on the old one.
    heartbeat_peers: BTreeMap<u64, Arc<PeerClient>>,
    config: Arc<BrokerConfig>,
    pub(crate) liveness: liveness::Liveness,
    /// Set when the node must stop (another cluster's id on disk, storage failure).
    fatal: watch::Sender<Option<String>>,
}

impl Controller {
    /// Opens the metadata log and starts this node's Raft member (and, in a cluster, its
    /// CONTROLLER listener). Returns once the node can take proposals; in a cluster of one, once
    /// it leads and the cluster exists.
    pub async fn open(config: Arc<BrokerConfig>) -> Result<Arc<Controller>, ControllerError> {
        let dir = config.log_dir.join("__cluster_metadata-0");
        let storage = |source| ControllerError::Storage { dir: dir.clone(), source };
        check_meta_properties(&config)?;
        let log = LogStore::open(&dir).map_err(storage)?;
        let started_empty = log.is_empty();
        let sm = StateMachine::open(&dir).map_err(storage)?;
        let applied = sm.subscribe();
        let node_id = config.node_id as u64;
        let ctx = NodeContext { node_id, applied: applied.clone(), catching_up: Arc::new(AtomicBool::new(false)) };
        let cluster = &config.cluster;
        // openraft 0.9 draws a node's election timeout once, at start, and checks it on a tick
        // of 1.5 heartbeats; two voters whose draws land in the same tick split the vote again
        // and again (seen with two of three voters left). Staggering the ranges by the node's
        // rank among the voters makes the timeouts differ by at least two ticks.
        let rank = cluster.voters.keys().position(|id| *id == config.node_id).unwrap_or(0) as u64;
        let election_timeout_min = 500 + 250 * rank;
        let raft_config = openraft::Config {
            cluster_name: "strom".into(),
            heartbeat_interval: 50,
            election_timeout_min,
            election_timeout_max: election_timeout_min + 100,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Config(e.to_string()))?;
        let raft = Raft::new(node_id, Arc::new(raft_config), Network { ctx: ctx.clone() }, log, sm)
            .await
            .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
        if !started_empty {
            check_voters(&raft, &config).await?;
        }
        let connect_voters = || -> BTreeMap<u64, Arc<PeerClient>> {
            cluster
                .voters
                .iter()
                .filter(|(id, _)| **id != config.node_id)
                .map(|(id, (host, port))| (*id as u64, Arc::new(PeerClient::new(format!("{host}:{port}")))))
                .collect()
        };
        let (peers, heartbeat_peers) = (connect_voters(), connect_voters());
        let controller = Arc::new(Controller {
            node_id: config.node_id,
            incarnation: uuid::Uuid::new_v4(),
            raft,
            ctx,
            applied,
            peers,
            heartbeat_peers,
            liveness: liveness::Liveness::default(),
            config: config.clone(),
            fatal: watch::channel(None).0,
        });
        if let Some(listener) = &cluster.controller_listener {
            let addr = format!("{}:{}", listener.host, listener.port);
            let bind = |e: std::io::Error| ControllerError::Config(format!("cannot listen on {addr} (the CONTROLLER listener in `listeners`): {e}"));
            let sock = listener.socket_addr().map_err(bind)?;
            let l = tokio::net::TcpListener::bind(sock).await.map_err(bind)?;
            tokio::spawn(rpc::accept_loop(controller.clone(), l));
        }
        if cluster.is_single_node() {
            if started_empty {
                let members = BTreeMap::from([(node_id, BasicNode { addr: String::new() })]);
                controller.raft.initialize(members).await.map_err(|e| ControllerError::Unavailable(e.to_string()))?;
            } else {
                // Alone, there is nobody to wait for: no election timeout on restart.
                let _ = controller.raft.trigger().elect().await;
            }
            controller.wait_for_cluster().await?;
        } else {
            tokio::spawn(controller.clone().bootstrap(started_empty));
        }
        tokio::spawn(controller.clone().keep_meta_properties());
        tokio::spawn(controller.clone().leader_duties());
        Ok(controller)
    }

    /// A consistent snapshot of the metadata; cheap (one `Arc` clone).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().image.clone()
    }

    /// Wakes on every applied change; `.borrow().image` is the image.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// Resolves with a reason when the node must stop.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        self.fatal.send_replace(Some(why));
    }

    pub fn is_active(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.ctx.node_id)
    }

    pub fn active_controller(&self) -> Option<i32> {
        self.raft.metrics().borrow().current_leader.map(|id| id as i32)
    }

    /// Applies the records `build` computes from the current image, atomically and on every
    /// node. `build` may run more than once: when another change lands between building and
    /// applying, the records are built again from the newer image. Returns the image that
    /// includes the change.
    pub async fn commit<E>(
        &self,
        build: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, ControllerError> {
        self.commit_routed(build, true).await
    }

    /// `commit` for a decision only the active controller may take, because it rests on state
    /// outside the log (fencing a broker by this node's heartbeat clock): never forwarded, so a
    /// controller that froze and thawed after being replaced cannot push its stale verdicts
    /// through its successor; its own appends fail once it learns of the newer term.
    pub(crate) async fn commit_as_active<E>(
        &self,
        build: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, ControllerError> {
        self.commit_routed(build, false).await
    }

    async fn commit_routed<E>(
        &self,
        build: impl Fn(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
        forward: bool,
    ) -> Result<Result<Arc<MetadataImage>, E>, ControllerError> {
        for _ in 0..50 {
            let image = self.image();
            let records = match build(&image) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            if records.is_empty() {
                return Ok(Ok(image));
            }
            let cmd = MetadataCommand { based_on: Some(image.version), records };
            let (result, index) = if forward {
                self.propose(cmd).await?
            } else {
                self.propose_local(cmd).await.map_err(|e| ControllerError::Unavailable(e.to_string()))?
            };
            self.wait_applied(index).await?;
            if result.applied {
                return Ok(Ok(self.image()));
            }
        }
        Err(ControllerError::Contention)
    }

    /// Leaders' ISR changes, in one command (`MetadataRecord::IsrChanged` checks each against
    /// the partition's epochs when applied, so it needs no `based_on` and never contends).
    /// Returns this node's image once it holds the outcome.
    pub async fn alter_isr(&self, changes: Vec<IsrChange>) -> Result<Arc<MetadataImage>, ControllerError> {
        if !changes.is_empty() {
            let records = changes.iter().map(|c| c.record(self.node_id)).collect();
            let (_, index) = self.propose(MetadataCommand { based_on: None, records }).await?;
            self.wait_applied(index).await?;
        }
        Ok(self.image())
    }

    /// Appends a command through the active controller, wherever it is.
    async fn propose(&self, cmd: MetadataCommand) -> Result<(CommandResult, u64), ControllerError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let mut last_error = String::from("no leader elected");
        while tokio::time::Instant::now() < deadline {
            let leader = match self.raft.client_write(cmd.clone()).await {
                Ok(r) => return Ok((r.data, r.log_id.index)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_id,
                Err(e) => return Err(ControllerError::Unavailable(e.to_string())),
            };
            if let Some((l, peer)) = leader.and_then(|l| Some((l, self.peers.get(&l)?))) {
                // Stop waiting on a controller the quorum has already replaced (a frozen one
                // answers nothing until the timeout): the new one takes the retry at once.
                let mut metrics = self.raft.metrics();
                let replaced = metrics.wait_for(|m| m.current_leader.is_some_and(|now| now != l));
                let envelope = self.ctx.envelope(Request::Propose(cmd.clone()));
                tokio::select! {
                    answer = peer.call(&envelope, RPC_TIMEOUT) => match answer {
                        Ok(Response::Propose(Ok(r))) => return Ok(r),
                        Ok(Response::Propose(Err(e))) => last_error = e.to_string(),
                        Ok(other) => last_error = format!("unexpected answer {other:?}"),
                        Err(e) => last_error = format!("active controller {}: {e}", peer.addr),
                    },
                    _ = replaced => {
                        last_error = format!("active controller {} was replaced", peer.addr);
                        continue;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ControllerError::Unavailable(last_error))
    }

    /// The active controller's side of a forwarded proposal.
    async fn propose_local(&self, cmd: MetadataCommand) -> Result<(CommandResult, u64), NotController> {
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok((r.data, r.log_id.index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(NotController { leader: f.leader_id, reason: "leadership moved".into() })
            }
            Err(e) => Err(NotController { leader: None, reason: e.to_string() }),
        }
    }

    /// Waits until this node's image includes log entry `index`.
    async fn wait_applied(&self, index: u64) -> Result<(), ControllerError> {
        let mut rx = self.applied.clone();
        let applied = tokio::time::timeout(PROPOSE_TIMEOUT, async move { rx.wait_for(|a| a.index.is_some_and(|i| i >= index)).await.is_ok() }).await;
        match applied {
            Ok(true) => Ok(()),
            _ => Err(ControllerError::Unavailable(format!("entry {index} was not applied here in time"))),
        }
    }

    /// In a cluster of one: waits to lead, then creates the cluster if the log is new.
    async fn wait_for_cluster(&self) -> Result<(), ControllerError> {
        let mut metrics = self.raft.metrics();
        let me = self.ctx.node_id;
        tokio::time::timeout(PROPOSE_TIMEOUT, metrics.wait_for(|m| m.current_leader == Some(me)))
            .await
            .map_err(|_| ControllerError::Unavailable("this node did not become leader of its own quorum".into()))?
            .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
        self.create_cluster_if_new().await
    }

    /// The first leader of a new log writes the cluster's id (and, when the data directory holds
    /// a pre-Raft `cluster-metadata.json`, its topics).
    async fn create_cluster_if_new(&self) -> Result<(), ControllerError> {
        let legacy = self.config.log_dir.join("cluster-metadata.json");
        let migrated = legacy_records(&legacy, self.node_id)?;
        let from_legacy = migrated.is_some();
        self.commit::<std::convert::Infallible>(|img| {
            if !img.cluster_id.is_empty() {
                return Ok(vec![]);
            }
            Ok(migrated.clone().unwrap_or_else(|| vec![MetadataRecord::ClusterCreated { cluster_id: strom_metadata::new_cluster_id() }]))
        })
        .await?
        .unwrap_or_else(|never| match never {});
        if from_legacy {
            let done = legacy.with_extension("json.migrated");
            std::fs::rename(&legacy, &done).map_err(|source| ControllerError::Storage { dir: legacy.clone(), source })?;
            tracing::info!(from = %legacy.display(), "metadata moved into the metadata log");
        }
        Ok(())
    }

    /// In a cluster: decides whether this node founds a new cluster or joins an existing one.
    /// A node with an empty log founds only together with a majority of voters that are empty
    /// too; if any voter already belongs to a cluster, this node was wiped or is new, so it joins,
    /// and does not vote until it has caught up (see `NodeContext::catching_up`).
    async fn bootstrap(self: Arc<Self>, started_empty: bool) {
        if !started_empty {
            return;
        }
        let voters = self.config.cluster.voters.len();
        let mut last_warning = tokio::time::Instant::now();
        loop {
            let mut empty = 1;
            let mut founding = 0;
            let mut errors = Vec::new();
            for (id, peer) in &self.peers {
                match peer.call(&self.ctx.envelope(Request::Hello), RPC_TIMEOUT).await {
                    Ok(Response::Hello { cluster_id, .. }) if !cluster_id.is_empty() => {
                        if self.raft.is_initialized().await.unwrap_or(false) {
                            // We took part in the founding (waited on below) and hold the
                            // log already: nothing was lost that a vote could endanger.
                            return;
                        }
                        tracing::info!(peer = id, %cluster_id, "joining the existing cluster; not voting until caught up");
                        self.ctx.catching_up.store(true, std::sync::atomic::Ordering::Release);
                        return;
                    }
                    // A voter that founded the cluster but has not committed its first record
                    // yet: nothing is committed that a vote of ours could endanger, and it needs
                    // our vote to commit anything (refusing it deadlocked a starting cluster).
                    Ok(Response::Hello { initialized: true, .. }) => founding += 1,
                    Ok(Response::Hello { .. }) => empty += 1,
                    Ok(other) => errors.push(format!("{id}@{}: {other:?}", peer.addr)),
                    Err(e) => errors.push(format!("{id}@{}: {e}", peer.addr)),
                }
            }
            if self.raft.is_initialized().await.unwrap_or(false) {
                return;
            }
            if founding == 0 && empty * 2 > voters {
                let members: BTreeMap<u64, BasicNode> = self
                    .config
                    .cluster
                    .voters
                    .iter()
                    .map(|(id, (h, p))| (*id as u64, BasicNode { addr: format!("{h}:{p}") }))
                    .collect();
                match self.raft.initialize(members).await {
                    Ok(()) => tracing::info!(voters, "founded a new cluster with the other voters"),
                    Err(e) => tracing::info!(error = %e, "another voter founded the cluster first"),
                }
                return;
            }
            if last_warning.elapsed() >= Duration::from_secs(5) {
                last_warning = tokio::time::Instant::now();
                tracing::warn!(unreachable = %errors.join("; "), "waiting for a majority of controller.quorum.voters");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Writes `meta.properties` once the cluster id is known, and stops the node if the id on disk
    /// belongs to another cluster.
    async fn keep_meta_properties(self: Arc<Self>) {
        let path = self.config.log_dir.join("meta.properties");
        let mut rx = self.applied.clone();
        loop {
            let cluster_id = rx.borrow_and_update().image.cluster_id.clone();
            if !cluster_id.is_empty() {
                match read_meta_properties(&path).get("cluster.id") {
                    Some(on_disk) if *on_disk != cluster_id => {
                        return self.fail(format!(
                            "{} says cluster.id={on_disk}, but the controller quorum is cluster {cluster_id}; \
                             this data directory belongs to another cluster",
                            path.display()
                        ));
                    }
                    Some(_) => return,
                    None => {
                        let text = format!("version=1\nnode.id={}\ncluster.id={cluster_id}\n", self.node_id);
                        if let Err(e) = strom_storage::replace_file(&path, text.as_bytes()) {
                            return self.fail(format!("cannot write {}: {e}", path.display()));
                        }
                        return;
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops this node's Raft member (after `liveness::controlled_shutdown`).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// A metadata log belongs to one quorum: a node whose log names other voters than its config
/// (a data directory from another cluster, or a changed `controller.quorum.voters`) would
/// otherwise go on as a quorum of its own. Changing the voters of a running cluster needs
/// membership changes, which Strom does not offer yet.
async fn check_voters(raft: &Raft, config: &BrokerConfig) -> Result<(), ControllerError> {
    let in_log: Vec<u64> = raft
        .with_raft_state(|st| {
            let mut v: Vec<u64> = st.membership_state.effective().voter_ids().collect();
            v.sort_unstable();
            v
        })
        .await
        .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
    let configured: Vec<u64> = if config.cluster.voters.is_empty() {
        vec![config.node_id as u64]
    } else {
        config.cluster.voters.keys().map(|id| *id as u64).collect()
    };
    if !in_log.is_empty() && in_log != configured {
        return Err(ControllerError::Config(format!(
            "the metadata log in {} belongs to a quorum of voters {in_log:?}, but controller.quorum.voters names {configured:?}; \
             this data directory belongs to another cluster (or the voters were changed, which is not supported yet)",
            config.log_dir.join("__cluster_metadata-0").display()
        )));
    }
    Ok(())
}

fn read_meta_properties(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A data directory belongs to one node id for life.
fn check_meta_properties(config: &BrokerConfig) -> Result<(), ControllerError> {
    let path = config.log_dir.join("meta.properties");
    if let Some(id) = read_meta_properties(&path).get("node.id") {
        if *id != config.node_id.to_string() {
            return Err(ControllerError::Config(format!(
                "{} says node.id={id}, but the config says node.id={}; a data directory belongs to one node",
                path.display(),
                config.node_id
            )));
        }
    }
    Ok(())
}

/// The records that recreate a pre-Raft metadata file (Strom before the controller quorum).
fn legacy_records(path: &Path, node_id: i32) -> Result<Option<Vec<MetadataRecord>>, ControllerError> {
    #[derive(serde::Deserialize)]
    struct LegacyTopic {
        name: String,
        id: uuid::Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Legacy {
        cluster_id: String,
        topics: BTreeMap<String, LegacyTopic>,
        next_producer_id: i64,
        broker_configs: BTreeMap<String, String>,
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ControllerError::Storage { dir: path.to_path_buf(), source }),
    };
    let legacy: Legacy = serde_json::from_slice(&bytes)
        .map_err(|e| ControllerError::Storage { dir: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) })?;
    let mut records = vec![MetadataRecord::ClusterCreated { cluster_id: legacy.cluster_id }];
    for t in legacy.topics.into_values() {
        records.push(MetadataRecord::TopicCreated(strom_metadata::TopicImage {
            name: t.name,
            id: t.id,
            replication_factor: t.replication_factor,
            partitions: vec![strom_metadata::PartitionImage::new(vec![node_id]); t.partitions.max(0) as usize],
            configs: t.configs,
        }));
    }
    records.push(MetadataRecord::BrokerConfigsSet { configs: legacy.broker_configs });
    records.push(MetadataRecord::ProducerIdsAllocated { next_producer_id: legacy.next_producer_id });
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_node(dir: &Path) -> Arc<BrokerConfig> {
        let props = BTreeMap::from([("log.dirs".to_string(), dir.display().to_string())]);
        Arc::new(BrokerConfig::from_props(&props).unwrap())
    }

    /// A data directory written before the controller quorum existed keeps its cluster id, its
    /// topics (same ids, so their partition directories stay valid) and its producer-id counter.
    #[tokio::test]
    async fn a_pre_raft_metadata_file_moves_into_the_metadata_log() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        let legacy = serde_json::json!({
            "cluster_id": "AAAAAAAAAAAAAAAAAAAAAA",
            "topics": {"orders": {"name": "orders", "id": id, "partitions": 3, "replication_factor": 1,
                                  "configs": {"retention.ms": "1000"}}},
            "next_producer_id": 5000,
            "broker_configs": {"log.retention.ms": "60000"}
        });
        std::fs::write(dir.path().join("cluster-metadata.json"), legacy.to_string()).unwrap();
        let c = Controller::open(single_node(dir.path())).await.unwrap();
        let img = c.image();
        assert_eq!(img.cluster_id, "AAAAAAAAAAAAAAAAAAAAAA");
        let t = img.topic("orders").unwrap();
        assert_eq!((t.id, t.partition_count(), t.configs["retention.ms"].as_str()), (id, 3, "1000"));
        assert!(t.partitions.iter().all(|p| p.replicas == vec![1] && p.leader == 1));
        assert_eq!(img.next_producer_id, 5000);
        assert_eq!(img.broker_configs["log.retention.ms"], "60000");
        assert!(!dir.path().join("cluster-metadata.json").exists());
        c.shutdown().await;
        drop(c);
        // Reopened, the log (not the old file) is the source, and nothing is migrated twice.
        let c = Controller::open(single_node(dir.path())).await.unwrap();
        assert_eq!(c.image().topic("orders").unwrap().id, id);
        assert_eq!(c.image().cluster_id, "AAAAAAAAAAAAAAAAAAAAAA");
        c.shutdown().await;
    }

    #[tokio::test]
    async fn a_cluster_of_one_survives_restarts_with_its_changes() {
        let dir = tempfile::tempdir().unwrap();
        let c = Controller::open(single_node(dir.path())).await.unwrap();
        let cluster_id = c.image().cluster_id.clone();
        assert_eq!(cluster_id.len(), 22);
        for i in 0..20 {
            let r = c
                .commit::<()>(|img| Ok(vec![MetadataRecord::ProducerIdsAllocated { next_producer_id: img.next_producer_id + 10 }]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.next_producer_id, (i + 1) * 10);
        }
        c.shutdown().await;
        drop(c);
        let c = Controller::open(single_node(dir.path())).await.unwrap();
        assert_eq!(c.image().cluster_id, cluster_id);
        assert_eq!(c.image().next_producer_id, 200);
        c.shutdown().await;
    }
}
