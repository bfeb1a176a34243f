//! Brokers in the cluster: registration, heartbeats to the active controller, fencing of a
//! broker whose heartbeats stop (`broker.session.timeout.ms`), and controlled shutdown. This is
//! KIP-631's broker lifecycle; the records it writes move partition leadership (`elect.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use strom_metadata::elect::{broker_down, broker_heartbeat, broker_registered, completed_reassignments, preferred_leaders};
use strom_metadata::liveness::Sessions;
use super::network::{Request, Response};
use super::Controller;
use strom_metadata::{BrokerRegistration, Endpoint};
use crate::lock;

/// How often the active controller looks for expired sessions and other duties.
const TICK: Duration = Duration::from_millis(250);

/// This voter's broker sessions (`strom_metadata::liveness::Sessions`), on a monotonic clock.
pub struct Liveness {
    sessions: Mutex<Sessions>,
    epoch: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { sessions: Mutex::new(Sessions::default()), epoch: Instant::now() }
    }
}

impl Liveness {
    /// Milliseconds on this process's monotonic clock.
    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }
}

impl Controller {
    /// Any voter's record of a broker heartbeat.
    pub(crate) fn heartbeat_seen(&self, broker: i32, incarnation: Uuid) {
        let now = self.liveness.now_ms();
        lock(&self.liveness.sessions).heartbeat(broker, incarnation, now);
    }

    /// The active controller's side of a broker heartbeat.
    pub(crate) async fn heartbeat_received(&self, broker: i32, incarnation: Uuid) {
        self.heartbeat_seen(broker, incarnation);
        let image = self.image();
        let Some(reg) = image.brokers.get(&broker) else { return };
        if reg.fenced && reg.incarnation == incarnation {
            let unfence = self
                .commit::<std::convert::Infallible>(|img| Ok(broker_heartbeat(img, broker, incarnation, self.config.topic_defaults.unclean_leader_election)))
                .await;
            match unfence {
                Ok(_) => tracing::info!(broker, "broker is heartbeating again; unfenced"),
                Err(e) => tracing::warn!(broker, error = %e, "could not unfence broker"),
            }
        }
    }

    /// Registers this node as a broker (retrying until the quorum takes it), then heartbeats to
    /// the active controller for as long as the process runs.
    pub async fn run_broker(self: Arc<Self>, endpoints: Vec<Endpoint>) {
        let incarnation = self.register(endpoints).await;
        self.heartbeat_forever(incarnation).await
    }

    /// This process's incarnation id (`Controller::incarnation`) tells the controller a restart
    /// from a late heartbeat of the previous process.
    pub async fn register(&self, endpoints: Vec<Endpoint>) -> Uuid {
        let id = self.node_id;
        // A broker joins a cluster, so the cluster must exist first (its first record).
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|a| !a.image.cluster_id.is_empty()).await;
        let incarnation = self.incarnation;
        let registration = BrokerRegistration { id, incarnation, endpoints, rack: self.config.cluster.rack.clone(), fenced: false };
        loop {
            let r = self
                .commit::<std::convert::Infallible>(|img| Ok(broker_registered(img, &registration, self.config.topic_defaults.unclean_leader_election)))
                .await;
            match r {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "broker registration failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // A single node is a quorum of one: nothing for an operator to hear about (issue 16).
        if self.config.cluster.is_single_node() {
            tracing::debug!(broker = id, %incarnation, "registered with the controller quorum");
        } else {
            tracing::info!(broker = id, %incarnation, "registered with the controller quorum");
        }
        incarnation
    }

    /// Resolves once this node's own image holds this process's registration, unfenced: the
    /// image has then caught up at least to it, so it knows the cluster's brokers and topics.
    pub async fn registered_here(&self) {
        let (id, incarnation) = (self.node_id, self.incarnation);
        let mut applied = self.applied.clone();
        let _ = applied
            .wait_for(|a| a.image.brokers.get(&id).is_some_and(|b| b.incarnation == incarnation && !b.fenced))
            .await;
    }

    pub async fn heartbeat_forever(self: Arc<Self>, incarnation: Uuid) {
        let id = self.node_id;
        let interval = Duration::from_millis(self.config.cluster.broker_heartbeat_interval_ms);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // To every voter at once (the others keep the clock warm for a failover; see
            // `Liveness`), each given up after one interval: a frozen voter delays nothing.
            if self.is_active() {
                self.heartbeat_received(id, incarnation).await;
            } else if self.config.cluster.voters.contains_key(&id) {
                self.heartbeat_seen(id, incarnation);
            }
            let active = self.active_controller().map(|l| l as u64);
            let mut calls = tokio::task::JoinSet::new();
            for (&peer_id, peer) in &self.heartbeat_peers {
                let (peer, envelope) = (peer.clone(), self.ctx.envelope(Request::Heartbeat { broker: id, incarnation }));
                calls.spawn(async move { (peer_id, peer.call(&envelope, interval).await) });
            }
            while let Some(Ok((peer_id, answer))) = calls.join_next().await {
                match answer {
                    Ok(Response::Heartbeat(Ok(()))) => {}
                    Ok(_) if Some(peer_id) != active => {}
                    Ok(other) => tracing::debug!(?other, "heartbeat not accepted"),
                    Err(e) => tracing::debug!(peer = peer_id, error = %e, "heartbeat failed"),
                }
            }
        }
    }

    /// Runs on every node; acts while this node is the active controller: creates the cluster if
    /// the log is new, and fences brokers whose heartbeats stopped.
    pub(crate) async fn leader_duties(self: Arc<Self>) {
        let session = Duration::from_millis(self.config.cluster.broker_session_timeout_ms);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_active = false;
        let rebalance_every = self.config.leader_imbalance_check_interval_ms.map(Duration::from_millis);
        let mut last_rebalance = Instant::now();
        loop {
            let waited = Instant::now();
            tick.tick().await;
            let active = self.is_active();
            // A tick far later than due means this process itself stood still (SIGSTOP, a VM
            // stall): the heartbeats it missed meanwhile may be sitting unread in its sockets,
            // so its clock says nothing about the brokers: start every clock afresh. (Only the
            // wait counts: a slow commit below is not a stall.)
            let stood_still = waited.elapsed() > TICK + session / 2;
            if active && !was_active {
                // The clocks kept as a follower carry over; a broker never heard from gets one
                // session from now.
                if self.config.cluster.is_single_node() {
                    tracing::debug!(node = self.node_id, "this node is now the active controller");
                } else {
                    tracing::info!(node = self.node_id, "this node is now the active controller");
                }
                lock(&self.liveness.sessions).became_active(self.liveness.now_ms());
            }
            if stood_still {
                tracing::warn!(node = self.node_id, "this node itself stood still; restarting every broker's session clock");
                lock(&self.liveness.sessions).restart_clocks(self.liveness.now_ms());
            }
            was_active = active;
            if !active {
                continue;
            }
            if self.image().cluster_id.is_empty() {
                if let Err(e) = self.create_cluster_if_new().await {
                    tracing::warn!(error = %e, "creating the cluster failed; retrying");
                }
                continue;
            }
            let expired = lock(&self.liveness.sessions).expired(&self.image(), self.liveness.now_ms(), session.as_millis() as i64);
            if let Err(e) = self.commit::<std::convert::Infallible>(|img| Ok(completed_reassignments(img))).await {
                tracing::warn!(error = %e, "completing partition reassignments failed");
            }
            if rebalance_every.is_some_and(|every| last_rebalance.elapsed() >= every) {
                last_rebalance = Instant::now();
                match self.commit::<std::convert::Infallible>(|img| Ok(preferred_leaders(img))).await {
                    Ok(Ok(image)) => tracing::debug!(version = image.version, "preferred leaders checked"),
                    Ok(Err(never)) => match never {},
                    Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
                }
            }
            for id in expired {
                let r = self
                    .commit_as_active::<std::convert::Infallible>(|img| {
                        Ok(if img.brokers.get(&id).is_some_and(|b| !b.fenced) { broker_down(img, id, self.config.topic_defaults.unclean_leader_election) } else { vec![] })
                    })
                    .await;
                match r {
                    Ok(_) => tracing::warn!(broker = id, timeout_ms = session.as_millis() as u64, "broker missed its heartbeats; fenced, its leadership moved"),
                    Err(e) => tracing::warn!(broker = id, error = %e, "fencing failed"),
                }
            }
        }
    }

    /// Hands this broker's leadership to other in-sync replicas before the process stops, so
    /// clients move at once instead of after a session timeout. Nothing to hand over when alone.
    pub async fn controlled_shutdown(&self) {
        if self.config.cluster.is_single_node() {
            return;
        }
        let id = self.node_id;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            self.commit::<std::convert::Infallible>(|img| {
                Ok(if img.brokers.get(&id).is_some_and(|b| !b.fenced) { broker_down(img, id, self.config.topic_defaults.unclean_leader_election) } else { vec![] })
            }),
        )
        .await;
        match r {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: leadership handed over"),
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown failed; the controller will fence this broker after its session timeout"),
            Err(_) => tracing::warn!("controlled shutdown timed out; the controller will fence this broker after its session timeout"),
        }
    }
}

