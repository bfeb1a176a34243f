//! Partition replication: followers copy their leaders' logs over the Fetch API, leaders track
//! their followers and keep the in-sync replica set (ISR) with the controller.
//!
//! - `leader`: a leader's high watermark and ISR, as a pure state machine (`Partition` holds one
//!   while it leads).
//! - `fetcher`: one task per leader broker that fetches every partition followed there, after
//!   truncating any divergent suffix (OffsetForLeaderEpoch).
//! - `follow`: what a follower does with its leader's answers, free of I/O (the fetcher and the
//!   simulation share it).
//! - `client`: the minimal Kafka client the fetchers speak with.
//! - `maintain_isr` (here): leaders ask the controller to drop followers that lag behind
//!   `replica.lag.time.max.ms` and to add back those that caught up (Kafka's AlterPartition).

mod client;
pub mod fetcher;
pub mod follow;
mod leader;

use std::sync::Arc;
use std::time::Duration;

pub use leader::LeaderState;

use strom_controller::Controller;

use crate::clock::now_ms;
use crate::replica_manager::ReplicaManager;

/// How often leaders look at their followers: often enough that a follower that caught up is
/// back in the ISR within a fraction of a second (min.insync.replicas waits for it).
const ISR_CHECK: Duration = Duration::from_millis(200);

/// The leaders' side of ISR changes. A change is proposed to the controller with the leader
/// epoch it was computed in; the controller refuses it if leadership moved meanwhile, and the
/// leader applies the new ISR only once it is in the metadata image (`ReplicaManager::sync_with`),
/// so the high watermark never counts on a follower the controller might not elect.
pub async fn maintain_isr(replicas: Arc<ReplicaManager>, controller: Arc<Controller>, lag_ms: i64) {
    let mut tick = tokio::time::interval(ISR_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let proposals: Vec<_> = replicas.all().into_iter().filter_map(|p| Some((p.clone(), p.propose_isr(now, lag_ms)?))).collect();
        if proposals.is_empty() {
            continue;
        }
        let changes = proposals.iter().map(|(_, c)| c.clone()).collect();
        match controller.alter_isr(changes).await {
            Ok(image) => {
                // Committed: the image has the outcome. Where the partition is still in the
                // epoch a proposal was built on, it did not apply (and no earlier one will).
                for (p, c) in proposals {
                    let Some(now_in) = image.topic(&c.topic).and_then(|t| t.partition(c.index)) else { continue };
                    if now_in.partition_epoch == c.partition_epoch {
                        p.isr_proposal_settled(c.partition_epoch);
                    } else if now_in.leader_epoch == c.leader_epoch && now_in.isr == c.isr {
                        tracing::info!(topic = %c.topic, partition = c.index, leader_epoch = c.leader_epoch, isr = ?c.isr, "ISR changed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "ISR changes not committed; retrying"),
        }
    }
}
