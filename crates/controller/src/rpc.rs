//! The CONTROLLER listener's server side: one task per peer connection, one request at a time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::network::{read_frame, write_frame, Envelope, NotController, Request, Response};
use super::Controller;

pub async fn accept_loop(controller: Arc<Controller>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(controller.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(controller: Arc<Controller>, mut stream: TcpStream) {
    loop {
        // A peer that sends garbage or goes away loses its connection, nothing else.
        let envelope: Envelope = match read_frame(&mut stream).await {
            Ok(e) => e,
            Err(_) => return,
        };
        let response = handle(&controller, envelope).await;
        if write_frame(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

async fn handle(c: &Controller, envelope: Envelope) -> Response {
    let mine = c.ctx.cluster_id();
    if !envelope.cluster_id.is_empty() && !mine.is_empty() && envelope.cluster_id != mine {
        tracing::error!(peer = envelope.from, peer_cluster_id = %envelope.cluster_id, cluster_id = %mine, "refusing a request from another cluster");
        return Response::ClusterIdMismatch { cluster_id: mine };
    }
    c.ctx.heard_from(envelope.from);
    match envelope.request {
        Request::Hello => Response::Hello {
            cluster_id: mine,
            initialized: c.raft.is_initialized().await.unwrap_or(false),
        },
        Request::AppendEntries(req) => {
            let leader_commit = req.leader_commit.map(|l| l.index);
            let r = c.raft.append_entries(req).await;
            if c.ctx.is_catching_up() {
                let applied = c.raft.metrics().borrow().last_applied.map(|l| l.index);
                if leader_commit.is_some() && applied >= leader_commit {
                    c.ctx.catching_up.store(false, Ordering::Release);
                    tracing::info!("caught up with the metadata log; taking part in elections again");
                }
            }
            Response::AppendEntries(r)
        }
        Request::Vote(req) => {
            if c.ctx.is_catching_up() {
                return Response::Refused("started with an empty metadata log and has not caught up; not voting".into());
            }
            Response::Vote(c.raft.vote(req).await)
        }
        Request::Snapshot { vote, meta, data } => {
            let snapshot = openraft::Snapshot { meta, snapshot: Box::new(data) };
            Response::Snapshot(c.raft.install_full_snapshot(vote, snapshot).await)
        }
        Request::Propose(cmd) => Response::Propose(c.propose_local(cmd).await),
        Request::DescribeQuorum => Response::DescribeQuorum(c.describe_quorum_local()),
        Request::Heartbeat { broker, incarnation } => Response::Heartbeat(if c.is_active() {
            c.heartbeat_received(broker, incarnation).await;
            Ok(())
        } else {
            // Kept all the same: should this voter become the active controller, its clock for
            // the broker is already running (see `Controller::heartbeat_forever`).
            c.heartbeat_seen(broker, incarnation);
            Err(NotController { leader: c.active_controller().map(|l| l as u64), reason: "heartbeat sent to a follower".into() })
        }),
    }
}
