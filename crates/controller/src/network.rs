//! The controller network: Raft's RPCs and the brokers' requests to the active controller, over
//! the CONTROLLER listener.
//!
//! This is Strom's own inter-controller protocol, not Kafka's: clients never speak it, and
//! Kafka's KRaft RPCs are tied to its own Raft implementation. A frame is `[len u32][JSON]`; every
//! request carries the sender's cluster id, and a node never accepts a request from another
//! cluster (a misconfigured `controller.quorum.voters` must not merge two clusters' logs).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

use super::state_machine::Applied;
use super::types::{CommandResult, Snapshot, SnapshotMeta, TypeConfig, Vote};
use strom_metadata::MetadataCommand;

const MAX_FRAME: usize = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Empty while the sender has not learned its cluster's id yet (a node that starts empty).
    pub cluster_id: String,
    pub from: u64,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Bootstrap probe: has this voter ever been part of a cluster?
    Hello,
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot { vote: Vote, meta: SnapshotMeta, data: Vec<u8> },
    /// A broker's metadata change, for the active controller to append.
    Propose(MetadataCommand),
    /// A broker is alive (KIP-631's BrokerHeartbeat); answered by the active controller.
    Heartbeat { broker: i32, incarnation: Uuid },
    /// DescribeQuorum, answered by the active controller (`quorum.rs`).
    DescribeQuorum,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Hello { cluster_id: String, initialized: bool },
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    /// The command's result and the log index it was applied at.
    Propose(Result<(CommandResult, u64), NotController>),
    Heartbeat(Result<(), NotController>),
    DescribeQuorum(Result<crate::quorum::QuorumInfo, NotController>),
    /// The receiver belongs to another cluster.
    ClusterIdMismatch { cluster_id: String },
    /// The receiver will not take part yet (a node catching up after starting empty).
    Refused(String),
}

/// The receiver is not the active controller; `leader` is who it thinks is.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
#[error("not the active controller (leader: {leader:?}): {reason}")]
pub struct NotController {
    pub leader: Option<u64>,
    pub reason: String,
}

pub async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await
}

pub async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> io::Result<T> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("controller frame of {len} bytes")));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// What both sides of the network need to know about this node.
#[derive(Clone)]
pub struct NodeContext {
    pub node_id: u64,
    pub applied: watch::Receiver<Applied>,
    /// Set while a node that started empty has not caught up with the leader: it must not vote,
    /// or it could elect a node that lacks committed entries it no longer has.
    pub catching_up: Arc<AtomicBool>,
    /// Each peer's reachability as this node last saw it (openraft makes a client per
    /// replication stream and per election, so it is kept here, once per peer).
    pub peers: Arc<std::sync::Mutex<std::collections::BTreeMap<u64, Reach>>>,
    /// When each follower last answered this node's AppendEntries, and was last caught up
    /// (DescribeQuorum's timestamps; only meaningful while this node leads).
    pub acks: Arc<crate::quorum::FollowerAcks>,
}

/// What this node knows of a peer's reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Answered the last call.
    Reachable,
    /// Answered once, then stopped answering (said at warn level once).
    Lost,
}

impl NodeContext {
    /// A request came in from `peer`: it is up (so that its loss is said even when this node
    /// had no reason to call it before, as a follower of it).
    pub fn heard_from(&self, peer: u64) {
        let mut peers = crate::lock(&self.peers);
        if peers.insert(peer, Reach::Reachable) == Some(Reach::Lost) {
            tracing::info!(peer, "controller quorum peer reachable again");
        }
    }

    /// Records a call's outcome for `peer`; logs the changes an operator needs: a peer that
    /// answered before stops (warn, once), and answers again (info). A peer that never answered
    /// (the nodes of a cluster start in any order) is only debug: registration says which voters
    /// it waits for.
    fn reached(&self, peer: u64, addr: &str, outcome: Result<(), &io::Error>) {
        let mut peers = crate::lock(&self.peers);
        let before = peers.get(&peer).copied();
        match outcome {
            Ok(()) => {
                if before == Some(Reach::Lost) {
                    tracing::info!(peer, addr, "controller quorum peer reachable again");
                }
                peers.insert(peer, Reach::Reachable);
            }
            Err(e) => match before {
                Some(Reach::Reachable) => {
                    tracing::warn!(peer, addr, error = %e, "controller quorum peer unreachable; retrying (said again once it answers)");
                    peers.insert(peer, Reach::Lost);
                }
                Some(Reach::Lost) => {}
                None => tracing::debug!(peer, addr, error = %e, "controller quorum peer not reachable yet"),
            },
        }
    }
}

impl NodeContext {
    pub fn cluster_id(&self) -> String {
        self.applied.borrow().image.cluster_id.clone()
    }

    pub fn envelope(&self, request: Request) -> Envelope {
        Envelope { cluster_id: self.cluster_id(), from: self.node_id, request }
    }

    pub fn is_catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Acquire)
    }
}

/// One connection to a peer, opened on first use and again after any error. Requests on one
/// connection are strictly one at a time, so a reply always belongs to the request before it.
pub struct PeerClient {
    pub addr: String,
    conn: tokio::sync::Mutex<Option<TcpStream>>,
}

impl PeerClient {
    pub fn new(addr: String) -> Self {
        PeerClient { addr, conn: tokio::sync::Mutex::new(None) }
    }

    /// `timeout` covers the wait for the connection too: a request queued behind one to a frozen
    /// peer must not outlive its own deadline. Cancel-safe: the stream is taken out for the call
    /// and put back only after a whole reply was read, so a call dropped half-way (a timeout, a
    /// `select!`) never leaves a stale reply on the connection for the next request.
    pub async fn call(&self, envelope: &Envelope, timeout: Duration) -> io::Result<Response> {
        tokio::time::timeout(timeout, async {
            let mut conn = self.conn.lock().await;
            let mut stream = match conn.take() {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(&self.addr).await?;
                    s.set_nodelay(true)?;
                    s
                }
            };
            write_frame(&mut stream, envelope).await?;
            let response = read_frame::<Response>(&mut stream).await?;
            *conn = Some(stream);
            Ok(response)
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {} within {timeout:?}", self.addr))))
    }
}

pub struct Network {
    pub ctx: NodeContext,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork { target, client: PeerClient::new(node.addr.clone()), ctx: self.ctx.clone(), warned_mismatch: false }
    }
}

pub struct PeerNetwork {
    target: u64,
    client: PeerClient,
    ctx: NodeContext,
    warned_mismatch: bool,
}

type RpcError<E = RaftError<u64>> = RPCError<u64, BasicNode, E>;

impl PeerNetwork {
    async fn call(&mut self, request: Request, option: &RPCOption) -> Result<Response, io::Error> {
        let response = self.client.call(&self.ctx.envelope(request), option.hard_ttl()).await;
        self.ctx.reached(self.target, &self.client.addr, response.as_ref().map(|_| ()));
        let response = response?;
        match response {
            Response::ClusterIdMismatch { cluster_id } => {
                if !self.warned_mismatch {
                    self.warned_mismatch = true;
                    tracing::error!(
                        peer = self.target,
                        addr = %self.client.addr,
                        peer_cluster_id = %cluster_id,
                        cluster_id = %self.ctx.cluster_id(),
                        "controller.quorum.voters names a node of another cluster; refusing to talk to it"
                    );
                }
                Err(io::Error::other(format!("node {} belongs to cluster {cluster_id}", self.target)))
            }
            Response::Refused(why) => Err(io::Error::other(why)),
            other => Ok(other),
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcError<E> {
        RPCError::Network(NetworkError::new(&io::Error::other(format!("unexpected reply from node {}", self.target))))
    }
}

fn unreachable<E: std::error::Error>(e: io::Error) -> RpcError<E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        // For DescribeQuorum: the follower is caught up when it accepts everything up to what
        // this leader had applied when sending (a heartbeat carries no entries: its prev_log_id).
        let sent_to = rpc.entries.last().map(|e| e.log_id.index).or(rpc.prev_log_id.map(|l| l.index));
        let applied = self.ctx.applied.borrow().index;
        match self.call(Request::AppendEntries(rpc), &option).await.map_err(unreachable)? {
            Response::AppendEntries(r) => {
                if let Ok(answer) = &r {
                    let caught_up = answer.is_success() && sent_to >= applied;
                    self.ctx.acks.answered(self.target, crate::quorum::now_ms(), caught_up);
                }
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RpcError> {
        match self.call(Request::Vote(rpc), &option).await.map_err(unreachable)? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let request = Request::Snapshot { vote, meta: snapshot.meta, data: *snapshot.snapshot };
        match self.call(request, &option).await {
            Ok(Response::Snapshot(r)) => r.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e))),
            Ok(_) => Err(StreamingError::Network(NetworkError::new(&io::Error::other("unexpected reply to a snapshot")))),
            Err(e) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that answers each request on a connection in order, the first one slowly.
    async fn slow_first_peer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn({
                    n += 1;
                    let conn = n;
                    async move {
                        let mut answered = 0;
                        while read_frame::<Envelope>(&mut s).await.is_ok() {
                            answered += 1;
                            if answered == 1 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            let reply = Response::Hello { cluster_id: format!("conn{conn}-reply{answered}"), initialized: true };
                            if write_frame(&mut s, &reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn hello() -> Envelope {
        Envelope { cluster_id: String::new(), from: 1, request: Request::Hello }
    }

    fn cluster_id(r: io::Result<Response>) -> String {
        match r {
            Ok(Response::Hello { cluster_id, .. }) => cluster_id,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_call_dropped_half_way_leaves_no_stale_reply_for_the_next() {
        let client = PeerClient::new(slow_first_peer().await);
        // Dropped from outside (as `select!` does) while the peer is still answering.
        let dropped = tokio::time::timeout(Duration::from_millis(50), client.call(&hello(), Duration::from_secs(10))).await;
        assert!(dropped.is_err(), "the first reply is slow");
        // The next call must read its own reply, not the late one to the dropped request.
        let next = cluster_id(client.call(&hello(), Duration::from_secs(5)).await);
        assert_eq!(next, "conn2-reply1", "a fresh connection answers it");
    }

    #[tokio::test]
    async fn the_timeout_counts_the_wait_behind_another_call() {
        let client = Arc::new(PeerClient::new(slow_first_peer().await));
        let first = tokio::spawn({
            let c = client.clone();
            async move { c.call(&hello(), Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Had its clock started only once it got the connection (after ~300 ms), it would succeed.
        let queued = client.call(&hello(), Duration::from_millis(100)).await;
        assert!(queued.is_err(), "queued behind a 300 ms call, a 100 ms call gives up");
        assert_eq!(cluster_id(first.await.expect("join")), "conn1-reply1");
        // The connection is still good for the next request (the first call completed).
        assert_eq!(cluster_id(client.call(&hello(), Duration::from_secs(5)).await), "conn1-reply2");
    }
}
