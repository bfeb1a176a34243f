//! Partition replication: followers copy their leaders' logs over the Fetch API, leaders track
//! their followers and keep the in-sync replica set (ISR) with the controller.
//!
//! - `fetcher`: one task per leader broker that fetches every partition followed there, after
//!   truncating any divergent suffix (OffsetForLeaderEpoch).
//! - `follow`: what a follower does with its leader's answers, free of I/O (the fetcher and the
//!   simulation share it).
//! - `client`: the minimal Kafka client the fetchers speak with.
//! - `quota`: KIP-73's replication throttles (the leader's and the follower's byte rates).
//!
//! A leader's side (its high watermark and ISR) is `partition::LeaderState`; its ISR proposals
//! to the controller are `ReplicaManager::maintain_isr`.

pub(crate) mod client;
pub mod fetcher;
pub mod follow;
pub mod quota;
