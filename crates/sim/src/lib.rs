//! A deterministic simulation of a three-node Strom cluster.
//!
//! Each node runs the real rules of the code under test: `Partition` over real segment files
//! (appends, reads, the leader's high watermark and ISR, a follower's truncation and appends,
//! crash recovery), `replication::follow` (what a follower does with its leader's answers),
//! `Partition::apply_assignment` (the role an image assigns), and the pure controller rules of
//! `strom-metadata` (records, their apply, elections, fencing by broker sessions). What the
//! simulation replaces is the I/O between them: messages travel through one seeded queue (delay,
//! loss, reordering, network partitions), time is one simulated clock (with per-node jumps), and
//! the controller quorum is an ideal one: a committed log that only a node reaching a majority
//! can extend, which every elected controller has whole. openraft itself is not simulated; it
//! is exercised by the end-to-end fault tests with real processes.
//!
//! A run is a function of its seed: every random choice comes from one `Rng` in a fixed order,
//! all maps are ordered, so a failing seed replays exactly (`Outcome::trace` is the proof: the
//! same seed gives the same trace hash). After every step the invariants of `check.rs` hold or
//! the run stops with a `Violation` that names the seed and the step.

mod check;
mod cluster;
mod groups;
mod rng;

pub use check::Violation;
pub use cluster::{Outcome, Params};

/// Runs one seed to the end: `params.steps` steps with faults, then healing and quiet until the
/// replicas converge. Returns what happened, or the first violated invariant.
pub fn run(seed: u64, params: &Params) -> Result<Outcome, Violation> {
    cluster::Sim::new(seed, params).run()
}
