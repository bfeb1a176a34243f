//! The controller: the cluster's metadata as a Raft log (openraft) that every node holds.
//!
//! Every node is a voter of the controller quorum and a broker (KRaft's combined mode). A change
//! to the metadata is a `MetadataCommand`, proposed to the active controller (the Raft leader),
//! appended to a majority, and applied by every node to its own `MetadataImage`, which readers
//! take as an `Arc` snapshot (`image()`). A cluster of one is the same code with a single voter
//! and no network.
//!
//! Here: the `Controller` itself: `open`, the published image (`image()`, `subscribe()`), the
//! ways to change it (`commit`, `alter_isr`, both through `propose` to the active controller),
//! `fatal` and `shutdown`, and `ControllerError`.
//!
//! - `bootstrap.rs`: founding or joining the cluster (and the migration of a pre-Raft data
//!   directory), and the checks that tie a data directory to one node, cluster and quorum
//!   (`meta.properties`, the voters in the log).
//! - `types.rs`: the Raft type configuration.
//! - `log_store.rs`, `state_machine.rs`: the log on disk and the image as state machine.
//! - `network.rs`: the CONTROLLER listener's protocol, client side; `rpc.rs`: its server side.
//! - `liveness.rs`: broker registration, heartbeats, fencing and controlled shutdown.
//! - `quorum.rs`: the quorum's state for DescribeQuorum (`describe_quorum`).

mod bootstrap;
mod liveness;
mod log_store;
mod network;
mod quorum;
mod rpc;
mod state_machine;
mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::watch;

use bootstrap::{check_meta_properties, check_voters};
use log_store::LogStore;
use network::{Network, NodeContext, NotController, PeerClient, Request, Response};
pub use quorum::{QuorumInfo, ReplicaInfo};
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
        let ctx = NodeContext { node_id, applied: applied.clone(), catching_up: Arc::new(AtomicBool::new(false)), peers: Default::default(), acks: Default::default() };
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
            if !config.bootstrap_scram.is_empty() {
                tracing::warn!("--add-scram ignored: the metadata log exists already (use AlterUserScramCredentials, `strom configs --entity-type users`)");
            }
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

    /// Stops this node's Raft member (after `liveness::controlled_shutdown`).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    pub(crate) fn single_node(dir: &Path) -> Arc<BrokerConfig> {
        let props = BTreeMap::from([("log.dirs".to_string(), dir.display().to_string())]);
        Arc::new(BrokerConfig::from_props(&props).unwrap())
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
