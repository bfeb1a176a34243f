//! A follower's side of replication: appending what it fetched, and cutting a divergent suffix.
//! Every change a follower makes to its log is checked, under the log's lock, against the role
//! and leader epoch it was computed for: a fetch or an OffsetForLeaderEpoch answered before this
//! replica became leader (or followed a newer epoch) must never change the log afterwards.

use std::sync::atomic::Ordering;

use super::{Partition, PartitionError};
use crate::sync::write;

impl Partition {
    fn check_follower(&self, epoch: i32) -> Result<(), PartitionError> {
        if self.is_leader() || self.leader_epoch() != epoch {
            return Err(PartitionError::NotFollower(epoch));
        }
        Ok(())
    }

    /// A follower's append of batches fetched from the leader of `epoch`, with the leader's high
    /// watermark (a follower's is the leader's, capped at its own log end). Refused once this
    /// replica's role changed, so a fetch answered before a leader change cannot land after it.
    pub fn append_replicated(&self, batches: &[u8], epoch: i32, leader_hw: i64, now_ms: i64) -> Result<i64, PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        self.check_follower(epoch)?;
        // An empty answer (a long poll that timed out) still carries the leader's high watermark.
        let appended = if batches.is_empty() { None } else { log.append_replicated(batches, now_ms)? };
        if let Some(info) = appended {
            self.unflushed.fetch_add(info.last_offset - info.first_offset + 1, Ordering::Relaxed);
        }
        let leo = log.log_end_offset();
        drop(guard);
        self.publish(leader_hw.min(leo));
        Ok(leo)
    }

    /// Cuts the log where it stops agreeing with the leader of `epoch`, which answered that its
    /// epoch `leader_epoch` (the largest it has at or below ours) ends at `end`; ours ends at our
    /// own end for that epoch. Both logs agree below the smaller of the two (one leader wrote both
    /// prefixes). Returns the new log end.
    pub fn truncate_to_leader(&self, epoch: i32, leader_epoch: i32, end: i64) -> Result<i64, PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        self.check_follower(epoch)?;
        let leo = log.log_end_offset();
        let target = if end < 0 || leader_epoch < 0 {
            // The leader knows no epoch at or below ours: nothing of ours can be trusted beyond
            // what was committed.
            log.latest_epoch().map_or(leo, |_| 0)
        } else {
            let ours = log.end_offset_for_epoch(leader_epoch).map_or(leo, |(_, e)| e);
            end.min(ours).min(leo)
        };
        if target < leo {
            tracing::info!(topic = %self.topic, partition = self.index, from = leo, to = target, leader_epoch, "follower truncates a divergent suffix");
        }
        log.truncate_to(target)?;
        let leo = log.log_end_offset();
        drop(guard);
        if self.high_watermark() > leo {
            self.publish(leo);
        }
        Ok(leo)
    }

    /// The leader of `epoch` deleted what this follower would fetch next (its log start is past
    /// our end): start over, empty, at `log_start_offset`.
    pub fn reset_to_leader_start(&self, epoch: i32, log_start_offset: i64) -> Result<(), PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        self.check_follower(epoch)?;
        log.reset_empty_at(log_start_offset)?;
        Ok(())
    }
}
