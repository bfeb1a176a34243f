//! Requests from this broker to other brokers' inter-broker listeners, for the coordinators' work
//! (transaction markers to partition leaders, KIP-890 checks to a transaction coordinator).
//!
//! A small pool per peer: a call takes an idle connection (or opens one), and puts it back
//! only if the call succeeded, since after an error a connection's state is unknown. Calls to
//! one peer run in parallel on separate connections instead of queueing behind each other (a
//! WriteTxnMarkers waits for the leader's replication), and steady traffic reuses connections
//! instead of opening one per transaction. Replica fetchers keep their own connections: they
//! long-poll and must not hold a pooled one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::protocol::Request;
use strom_controller::Controller;

use crate::replica_manager::ReplicaManager;
use crate::replication::client::{Client, ClientError};
use crate::sync::lock;

/// Idle connections kept per peer; more may be open while calls run.
const IDLE_PER_PEER: usize = 4;

pub struct Peers {
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    metadata: Arc<Controller>,
    /// Per peer: the address its idle connections were made to, and those connections.
    idle: Mutex<BTreeMap<i32, (String, Vec<Client>)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer is not in the metadata image (or has no listener): nothing to connect to.
    #[error("broker {0} is not registered")]
    Unknown(i32),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl Peers {
    pub fn new(node_id: i32, replicas: Arc<ReplicaManager>, metadata: Arc<Controller>) -> Self {
        Peers { node_id, replicas, metadata, idle: Mutex::new(BTreeMap::new()) }
    }

    /// Sends `req` at `version` to broker `node` and waits up to `timeout` (for the connection,
    /// then for the response).
    pub async fn call<R: Request>(&self, node: i32, version: i16, req: &R, timeout: Duration) -> Result<R::Response, PeerError> {
        let addr = self.replicas.leader_address(&self.metadata.image(), node).ok_or(PeerError::Unknown(node))?;
        let mut client = match self.take(node, &addr) {
            Some(c) => c,
            None => Client::connect(&addr, self.node_id, timeout, self.replicas.connector()).await?,
        };
        let response = client.call(version, req, timeout).await?;
        self.put_back(node, addr, client);
        Ok(response)
    }

    /// An idle connection to `node` at `addr`; the ones to an address it no longer has are dropped.
    fn take(&self, node: i32, addr: &str) -> Option<Client> {
        let mut idle = lock(&self.idle);
        let (at, clients) = idle.get_mut(&node)?;
        if at != addr {
            idle.remove(&node);
            return None;
        }
        clients.pop()
    }

    fn put_back(&self, node: i32, addr: String, client: Client) {
        let mut idle = lock(&self.idle);
        let entry = idle.entry(node).or_insert_with(|| (addr.clone(), Vec::new()));
        if entry.0 != addr {
            *entry = (addr, Vec::new());
        }
        if entry.1.len() < IDLE_PER_PEER {
            entry.1.push(client);
        }
    }
}
