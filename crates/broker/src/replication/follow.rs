//! What a follower does with its leader's answers: the decisions of the fetcher, free of I/O,
//! so that the fetcher task (`fetcher.rs`) and the deterministic simulation (`strom-sim`) run
//! the same code. Every change to the log goes through `Partition`'s follower methods, which
//! refuse it once the replica no longer follows the epoch it was computed for.

use crate::partition::{FetchPosition, Partition, PartitionError};

/// A leader's answer to one partition of a follower's Fetch.
#[derive(Debug)]
pub enum FetchAnswer<'a> {
    Records { records: &'a [u8], high_watermark: i64 },
    /// The follower's log diverges from the leader's (`diverging_epoch`).
    Diverging,
    OffsetOutOfRange { log_start_offset: i64 },
    /// Any other error: not the leader (yet, or any more), another epoch. The next metadata
    /// image moves the partition; until then the follower retries.
    Refused,
}

/// What the fetcher does next for the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// Ask OffsetForLeaderEpoch and truncate before fetching again.
    pub truncate: bool,
    /// The answer moved something (else the fetcher backs off).
    pub progress: bool,
}

/// Where the follower fetches from in `epoch`: its log end, with its latest epoch.
pub fn position(p: &Partition, epoch: i32) -> Option<FetchPosition> {
    let offset = p.log_end_offset().ok()?;
    Some(FetchPosition { offset, current_leader_epoch: epoch, last_fetched_epoch: p.latest_epoch().unwrap_or(-1) })
}

/// Applies the leader's answer to a fetch made while following `epoch`.
pub fn on_fetch_answer(p: &Partition, epoch: i32, answer: FetchAnswer, now_ms: i64) -> Next {
    const IDLE: Next = Next { truncate: false, progress: false };
    match answer {
        FetchAnswer::OffsetOutOfRange { log_start_offset } => {
            let leo = p.log_end_offset().unwrap_or(0);
            if log_start_offset <= leo {
                return Next { truncate: true, progress: false };
            }
            // The leader deleted what we would fetch next: start over at its log start.
            match p.reset_to_leader_start(epoch, log_start_offset) {
                Ok(()) | Err(PartitionError::NotFollower(_)) | Err(PartitionError::Closed) => {}
                Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "resetting the follower's log failed"),
            }
            IDLE
        }
        FetchAnswer::Refused => IDLE,
        FetchAnswer::Diverging => Next { truncate: true, progress: true },
        FetchAnswer::Records { records, high_watermark } => match p.append_replicated(records, epoch, high_watermark, now_ms) {
            Ok(_) => Next { truncate: false, progress: true },
            Err(PartitionError::NotFollower(_)) | Err(PartitionError::Closed) => IDLE,
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "appending fetched batches failed; truncating against the leader again");
                Next { truncate: true, progress: false }
            }
        },
    }
}

/// Applies the leader's OffsetForLeaderEpoch answer (its epoch at or below ours, and where that
/// ends) to a follower of `epoch`. Returns whether the truncation is done.
pub fn on_epoch_end(p: &Partition, epoch: i32, leader_epoch: i32, end_offset: i64) -> bool {
    match p.truncate_to_leader(epoch, leader_epoch, end_offset) {
        Ok(_) => true,
        // The role changed meanwhile: the next assignment says what to do.
        Err(PartitionError::NotFollower(_)) | Err(PartitionError::Closed) => true,
        Err(e) => {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "truncating the follower's log failed");
            false
        }
    }
}
