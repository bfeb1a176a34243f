//! How a node comes to belong to its cluster, and stays in it.
//!
//! - Founding or joining: in a cluster, `bootstrap` decides whether this node founds a new
//!   cluster with the other voters or joins an existing one; in a cluster of one,
//!   `wait_for_cluster` waits to lead. Either way the first leader of a new log writes the
//!   cluster's id (`create_cluster_if_new`, retried by the active controller's `leader_duties`
//!   in `liveness.rs`), or, from a pre-Raft data directory, the contents of its
//!   `cluster-metadata.json` (`legacy_records`).
//! - The checks that tie a data directory to one node, one cluster and one quorum:
//!   `check_meta_properties` (node id, at open), `keep_meta_properties` (cluster id, once known)
//!   and `check_voters` (the voters in the log against `controller.quorum.voters`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;

use crate::network::{Request, Response};
use crate::types::Raft;
use crate::{Controller, ControllerError, PROPOSE_TIMEOUT, RPC_TIMEOUT};
use strom_config::BrokerConfig;
use strom_metadata::MetadataRecord;

impl Controller {
    /// In a cluster of one: waits to lead, then creates the cluster if the log is new.
    pub(crate) async fn wait_for_cluster(&self) -> Result<(), ControllerError> {
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
    pub(crate) async fn create_cluster_if_new(&self) -> Result<(), ControllerError> {
        let legacy = self.config.log_dir.join("cluster-metadata.json");
        let migrated = legacy_records(&legacy, self.node_id)?;
        let from_legacy = migrated.is_some();
        let scram = bootstrap_scram(&self.config);
        self.commit::<std::convert::Infallible>(|img| {
            if !img.cluster_id.is_empty() {
                return Ok(vec![]);
            }
            let mut records = migrated.clone().unwrap_or_else(|| vec![MetadataRecord::ClusterCreated { cluster_id: strom_metadata::new_cluster_id() }]);
            records.extend(scram.iter().cloned());
            Ok(records)
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
    pub(crate) async fn bootstrap(self: Arc<Self>, started_empty: bool) {
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
    pub(crate) async fn keep_meta_properties(self: Arc<Self>) {
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
}

/// A metadata log belongs to one quorum: a node whose log names other voters than its config
/// (a data directory from another cluster, or a changed `controller.quorum.voters`) would
/// otherwise go on as a quorum of its own. Changing the voters of a running cluster needs
/// membership changes, which Strom does not offer yet.
/// `strom server --add-scram`'s credentials as the records AlterUserScramCredentials writes, to
/// go into the command that creates the cluster (so the first super user exists from the first
/// moment the cluster does, as after `kafka-storage format --add-scram`).
fn bootstrap_scram(config: &BrokerConfig) -> Vec<MetadataRecord> {
    use strom_metadata::scram::{ScramCredential, ScramMechanism};
    config
        .bootstrap_scram
        .iter()
        .filter_map(|c| {
            let mechanism = ScramMechanism::from_name(c.mechanism.name())?;
            let credential = ScramCredential { salt: c.salt.clone(), stored_key: c.stored_key.clone(), server_key: c.server_key.clone(), iterations: c.iterations };
            Some(MetadataRecord::ScramCredentialSet { name: c.name.clone(), mechanism, credential })
        })
        .collect()
}

pub(crate) async fn check_voters(raft: &Raft, config: &BrokerConfig) -> Result<(), ControllerError> {
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
pub(crate) fn check_meta_properties(config: &BrokerConfig) -> Result<(), ControllerError> {
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
    use crate::tests::single_node;

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
}
