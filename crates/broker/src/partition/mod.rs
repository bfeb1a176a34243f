//! One partition replica as the broker sees it: its log, its role (leader or follower, and the
//! leader epoch), and its high watermark.
//!
//! A leader appends what producers send and advances the high watermark as its in-sync followers
//! fetch (`LeaderState`); a follower appends what it fetched from the leader
//! (`replication::fetcher`) and takes the leader's high watermark. Consumers read below the high
//! watermark only; followers read up to the log end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI16, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use strom_storage::{AppendInfo, CompactionStats, PartitionLog, StorageError, TxnMarker};

use strom_config::TopicSettings;
use strom_metadata::PartitionImage;
use uuid::Uuid;

mod follower;
mod leader_state;
mod read;

pub use leader_state::LeaderState;

pub use read::{FetchPosition, Isolation, PartitionRead, ReadOutcome};
use crate::sync::{lock, read, write};

/// What waiters on a partition watch: an acks=all produce waits for the high watermark to pass
/// its batch, and gives up when this broker's leadership (of that epoch) ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub high_watermark: i64,
    pub leader_epoch: i32,
    pub is_leader: bool,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    /// The epoch of this broker's leadership, from the metadata image; stamped on appended batches.
    leader_epoch: AtomicI32,
    /// The partition epoch of the metadata this replica last applied (ISR changes name it).
    partition_epoch: AtomicI32,
    is_leader: AtomicBool,
    /// Followers' positions and the in-sync set, while this broker leads. Locked inside the log
    /// lock when both are taken, so appends and follower fetches see one order of log ends.
    leader_state: Mutex<Option<LeaderState>>,
    progress: watch::Sender<Progress>,
    dir: PathBuf,
    /// `None` once the broker has shut the log down cleanly or the topic was deleted.
    log: RwLock<Option<PartitionLog>>,
    high_watermark: AtomicI64,
    log_append_time: AtomicBool,
    /// The codec produced batches are stored in (`compression.type`); -1: the producer's.
    compression: AtomicI16,
    down_conversion: AtomicBool,
    flush_messages: AtomicI64,
    min_insync_replicas: AtomicI32,
    /// Messages appended since the last fsync (approximate under concurrency, as in Kafka).
    unflushed: AtomicI64,
    /// Every offset below this is on disk (fsynced).
    durable_offset: AtomicI64,
    /// One fsync at a time; appends that arrive meanwhile are covered by the next one.
    sync_lock: tokio::sync::Mutex<()>,
    /// The topic's traffic counters (`/metrics`), updated by the produce and fetch handlers.
    pub counters: crate::metrics::TopicCounters,
    /// KIP-73: the topic's `leader.replication.throttled.replicas` names this partition on
    /// this broker (its sending to followers out of sync is throttled while it leads).
    leader_throttled: AtomicBool,
    /// KIP-73: `follower.replication.throttled.replicas` names this broker's replica.
    follower_throttled: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("partition is closed")]
    Closed,
    #[error("this broker does not lead the partition (epoch {0})")]
    NotLeader(i32),
    #[error("this broker is not a follower of leader epoch {0}")]
    NotFollower(i32),
    #[error("partition directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl PartitionError {
    /// The Kafka error code a client gets for this failure (produce, fetch, markers).
    pub fn code(&self) -> ResponseError {
        use PartitionError as P;
        use ResponseError as R;
        use StorageError as S;
        match self {
            P::Closed | P::NotLeader(_) | P::NotFollower(_) => R::NotLeaderOrFollower,
            P::Io(..) => R::KafkaStorageError,
            P::Storage(s) => match s {
                S::MessageTooLarge { .. } => R::MessageTooLarge,
                S::InvalidRecords { records } if records.iter().any(|r| r.rule.is_timestamp()) => R::InvalidTimestamp,
                S::InvalidRecord(_) | S::InvalidRecords { .. } => R::InvalidRecord,
                S::InvalidTimestamp(_) => R::InvalidTimestamp,
                S::CorruptMessage { .. } => R::CorruptMessage,
                S::OffsetOutOfRange { .. } => R::OffsetOutOfRange,
                S::OutOfOrderSequence { .. } => R::OutOfOrderSequenceNumber,
                S::InvalidProducerEpoch { .. } => R::InvalidProducerEpoch,
                S::InvalidTxnState { .. } => R::InvalidTxnState,
                S::TransactionCoordinatorFenced { .. } => R::TransactionCoordinatorFenced,
                _ => R::KafkaStorageError,
            },
        }
    }
}

/// What `apply_assignment` changed in this broker's leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    None,
    Gained,
    Lost,
}

/// Name of the file in each partition directory that ties it to one topic incarnation: a topic
/// deleted and re-created under the same name gets a new id, and stale data is never served.
const PARTITION_METADATA: &str = "partition.metadata";

impl Partition {
    pub fn dir_for(log_dir: &Path, topic: &str, index: i32) -> PathBuf {
        log_dir.join(format!("{topic}-{index}"))
    }

    /// Opens (recovering if needed) or creates the partition's log.
    pub fn open(
        log_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        settings: &TopicSettings,
    ) -> Result<Partition, PartitionError> {
        let dir = Self::dir_for(log_dir, topic, index);
        let meta_path = dir.join(PARTITION_METADATA);
        let expected = format!("version: 0\ntopic_id: {topic_id}\n");
        match std::fs::read_to_string(&meta_path) {
            Ok(found) if found == expected => {}
            Ok(_) => {
                tracing::warn!(dir = %dir.display(), "partition directory belongs to an older topic of the same name; removing it");
                std::fs::remove_dir_all(&dir).map_err(|e| PartitionError::Io(dir.clone(), e))?;
            }
            Err(_) => {}
        }
        std::fs::create_dir_all(&dir).map_err(|e| PartitionError::Io(dir.clone(), e))?;
        if !meta_path.exists() {
            strom_storage::replace_file(&meta_path, expected.as_bytes()).map_err(|e| PartitionError::Io(dir.clone(), e))?;
        }
        let log = PartitionLog::open(&dir, settings.log.clone())?;
        // Unknown until this replica leads (its in-sync followers tell) or follows (its leader
        // tells); a sole in-sync replica knows at once. Starting at the log end would show
        // consumers an uncommitted suffix that a new leader may not have.
        let hw = 0;
        Ok(Partition {
            topic: Arc::from(topic),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(0),
            partition_epoch: AtomicI32::new(0),
            is_leader: AtomicBool::new(false),
            leader_state: Mutex::new(None),
            progress: watch::Sender::new(Progress { high_watermark: hw, leader_epoch: 0, is_leader: false }),
            dir,
            log: RwLock::new(Some(log)),
            high_watermark: AtomicI64::new(hw),
            log_append_time: AtomicBool::new(settings.log_append_time),
            compression: AtomicI16::new(codec_of(settings.compression)),
            down_conversion: AtomicBool::new(settings.down_conversion),
            flush_messages: AtomicI64::new(settings.flush_messages),
            min_insync_replicas: AtomicI32::new(settings.min_insync_replicas),
            unflushed: AtomicI64::new(0),
            // After a process crash the recovered tail may exist only in the page cache, so
            // nothing is assumed durable: the first sync covers everything.
            durable_offset: AtomicI64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
            counters: crate::metrics::TopicCounters::new(topic),
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// This broker leads the partition from now on, in `epoch` (`ReplicaManager::sync_with`).
    /// The epoch is recorded at the log end first, so followers of older epochs learn from
    /// OffsetForLeaderEpoch where their divergent suffix starts.
    pub fn become_leader(&self, me: i32, epoch: i32, replicas: &[i32], isr: &[i32], now_ms: i64) -> Result<(), PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        log.assign_epoch(epoch)?;
        let leo = log.log_end_offset();
        let mut state = LeaderState::new(me, replicas, isr, self.partition_epoch.load(Ordering::Acquire), leo, self.high_watermark(), now_ms);
        let hw = state.on_append(leo);
        *lock(&self.leader_state) = Some(state);
        self.leader_epoch.store(epoch, Ordering::Release);
        self.is_leader.store(true, Ordering::Release);
        drop(guard);
        self.publish(hw);
        Ok(())
    }

    /// This broker follows the partition's leader in `epoch` (or nobody leads it). Taken under
    /// the log lock, so no append of the ended leadership can follow.
    pub fn become_follower(&self, epoch: i32) {
        let guard = write(&self.log);
        *lock(&self.leader_state) = None;
        self.leader_epoch.store(epoch, Ordering::Release);
        self.is_leader.store(false, Ordering::Release);
        drop(guard);
        self.publish(self.high_watermark());
    }

    /// Takes the role the metadata image assigns this replica on broker `me`: lead in the image's
    /// leader epoch if the image names `me` and holds this process's registration (`registered`:
    /// an image from before it may name the previous process, whose log this one may not have),
    /// else follow in that epoch. Returns whether this broker gained or lost leadership.
    pub fn apply_assignment(&self, me: i32, registered: bool, a: &PartitionImage, now_ms: i64) -> Result<RoleChange, PartitionError> {
        self.set_partition_epoch(a.partition_epoch);
        let was_leader = self.is_leader();
        if registered && a.leader == me {
            if !was_leader || self.leader_epoch() != a.leader_epoch {
                self.become_leader(me, a.leader_epoch, &a.replicas, &a.isr, now_ms)?;
                tracing::info!(topic = %self.topic, partition = self.index, leader_epoch = a.leader_epoch, isr = ?a.isr, "leading");
                return Ok(RoleChange::Gained);
            }
            self.set_replicas_and_isr(&a.replicas, &a.isr, now_ms);
            return Ok(RoleChange::None);
        }
        if was_leader || self.leader_epoch() != a.leader_epoch {
            self.become_follower(a.leader_epoch);
            if was_leader {
                return Ok(RoleChange::Lost);
            }
        }
        Ok(RoleChange::None)
    }

    pub fn set_partition_epoch(&self, epoch: i32) {
        self.partition_epoch.store(epoch, Ordering::Release);
    }

    /// The controller recorded new replicas or a new ISR for this broker's leadership.
    pub fn set_replicas_and_isr(&self, replicas: &[i32], isr: &[i32], now_ms: i64) {
        let partition_epoch = self.partition_epoch.load(Ordering::Acquire);
        let hw = lock(&self.leader_state).as_mut().map(|s| {
            s.set_replicas(replicas, now_ms);
            s.set_isr(isr, partition_epoch)
        });
        if let Some(hw) = hw {
            self.publish(hw);
        }
    }

    /// acks=all needs `min.insync.replicas` replicas in sync (Kafka's NOT_ENOUGH_REPLICAS).
    pub fn enough_replicas(&self) -> bool {
        let isr = lock(&self.leader_state).as_ref().map_or(0, |s| s.isr().len());
        isr >= self.min_insync_replicas.load(Ordering::Relaxed).max(1) as usize
    }

    /// The topic's `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas.load(Ordering::Relaxed)
    }

    /// The ISR change this leader asks the controller for, with the epochs it is built on
    /// (`LeaderState::propose_isr`: an expansion counts for the high watermark from now on).
    pub fn propose_isr(&self, now_ms: i64, lag_ms: i64) -> Option<strom_metadata::IsrChange> {
        let (isr, partition_epoch) = lock(&self.leader_state).as_mut()?.propose_isr(now_ms, lag_ms)?;
        Some(strom_metadata::IsrChange { topic: self.topic.clone(), index: self.index, leader_epoch: self.leader_epoch(), partition_epoch, isr })
    }

    /// The controller answered an ISR proposal built on `partition_epoch`, and the partition is
    /// still in that epoch: it did not apply (`LeaderState::proposal_settled`).
    pub fn isr_proposal_settled(&self, partition_epoch: i32) {
        let hw = lock(&self.leader_state).as_mut().map(|s| s.proposal_settled(partition_epoch));
        if let Some(hw) = hw {
            self.publish(hw);
        }
    }

    /// A follower fetched from `offset` (it has everything below). Returns whether the high
    /// watermark moved, so that waiting consumers are woken.
    pub fn follower_fetched(&self, replica: i32, offset: i64, now_ms: i64) -> bool {
        let before = self.high_watermark();
        let hw = lock(&self.leader_state).as_mut().map(|s| s.on_follower_fetch(replica, offset, now_ms));
        match hw {
            Some(hw) => {
                self.publish(hw);
                hw > before
            }
            None => false,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    fn publish(&self, hw: i64) {
        self.high_watermark.store(hw, Ordering::Release);
        let now = Progress { high_watermark: hw, leader_epoch: self.leader_epoch(), is_leader: self.is_leader() };
        self.progress.send_if_modified(|p| std::mem::replace(p, now) != now);
    }

    /// Waits until the high watermark reaches `offset` (acks=all): every in-sync replica has
    /// the batch. Fails if this broker's leadership in `epoch` ends first (the batch may be
    /// truncated by the next leader) or `timeout` passes, and with NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// if the ISR it reached shrank below `min.insync.replicas` meanwhile.
    pub async fn wait_replicated(&self, offset: i64, epoch: i32, timeout: std::time::Duration) -> Result<(), ResponseError> {
        let mut rx = self.progress.subscribe();
        let done = |p: &Progress| p.high_watermark >= offset || p.leader_epoch != epoch || !p.is_leader;
        let seen = match tokio::time::timeout(timeout, rx.wait_for(done)).await {
            Ok(Ok(p)) => Some(*p),
            Ok(Err(_)) => None,
            Err(_) => return Err(ResponseError::RequestTimedOut),
        };
        match seen {
            Some(p) if p.high_watermark >= offset && p.leader_epoch == epoch && p.is_leader => {
                if self.enough_replicas() { Ok(()) } else { Err(ResponseError::NotEnoughReplicasAfterAppend) }
            }
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    pub fn uses_log_append_time(&self) -> bool {
        self.log_append_time.load(Ordering::Relaxed)
    }

    /// The codec a produce's batches are stored in (the topic's `compression.type`), if not the
    /// producer's own.
    pub fn compression(&self) -> Option<i16> {
        Some(self.compression.load(Ordering::Relaxed)).filter(|c| *c >= 0)
    }

    /// Whether consumers fetching with message formats v0/v1 are served (the topic's
    /// `message.downconversion.enable`).
    pub fn down_conversion_enabled(&self) -> bool {
        self.down_conversion.load(Ordering::Relaxed)
    }

    /// A produce's batches, on the leader.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let append_time = self.log_append_time.load(Ordering::Relaxed).then_some(now_ms);
        self.append_as_leader(|log, epoch| log.append(batches, epoch, now_ms, append_time))
    }

    /// A transaction's commit or abort marker (WriteTxnMarkers), on the leader.
    pub fn append_marker(&self, marker: &TxnMarker, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        self.append_as_leader(|log, epoch| log.append_marker(marker, epoch, now_ms))
    }

    /// Whether `producer_id` has a transaction open in this log under `producer_epoch`: its next
    /// transactional batch of that epoch needs no verification with the coordinator (KIP-890).
    pub fn has_open_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.with_log(|log| Ok(log.open_transaction(producer_id, producer_epoch).is_some())).unwrap_or(false)
    }

    fn append_as_leader(&self, append: impl FnOnce(&mut PartitionLog, i32) -> Result<AppendInfo, StorageError>) -> Result<AppendInfo, PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        let mut leader = lock(&self.leader_state);
        let state = leader.as_mut().ok_or(PartitionError::NotLeader(self.leader_epoch()))?;
        let info = append(log, self.leader_epoch())?;
        let hw = state.on_append(log.log_end_offset());
        drop(leader);
        drop(guard);
        self.publish(hw);
        if !info.duplicate {
            self.unflushed.fetch_add(info.last_offset - info.first_offset + 1, Ordering::Relaxed);
        }
        Ok(info)
    }

    /// Whether `flush.messages` asks for an fsync before the last append is acknowledged.
    pub fn needs_sync(&self) -> bool {
        self.unflushed.load(Ordering::Relaxed) >= self.flush_messages.load(Ordering::Relaxed)
    }

    /// Makes every offset below `offset` durable. Group commit: the fsync runs without the log's
    /// lock, so appends continue meanwhile, and callers that queue behind a running fsync find
    /// their offsets covered by the next one, so one fsync acknowledges many batches.
    pub async fn make_durable(&self, offset: i64) -> Result<(), PartitionError> {
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _one_at_a_time = self.sync_lock.lock().await;
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let handle = {
            let guard = read(&self.log);
            guard.as_ref().ok_or(PartitionError::Closed)?.sync_handle()
        };
        self.unflushed.store(0, Ordering::Relaxed);
        let up_to = handle.up_to;
        tokio::task::spawn_blocking(move || handle.sync())
            .await
            .map_err(|e| PartitionError::Io(self.dir.clone(), std::io::Error::other(e)))??;
        self.durable_offset.fetch_max(up_to, Ordering::AcqRel);
        Ok(())
    }

    /// Runs `f` on the open log under its shared lock.
    fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> Result<T, StorageError>) -> Result<T, PartitionError> {
        let guard = read(&self.log);
        Ok(f(guard.as_ref().ok_or(PartitionError::Closed)?)?)
    }

    /// Runs `f` on the open log under its exclusive lock; the high watermark follows the log end
    /// down (truncation, retention).
    fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> Result<T, StorageError>) -> Result<T, PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        let r = f(log)?;
        let leo = log.log_end_offset();
        drop(guard);
        if self.high_watermark() > leo {
            self.publish(leo);
        }
        Ok(r)
    }

    /// One pass of the log cleaner over this partition, if its policy includes compact. The
    /// expensive middle step (reading old segments, writing cleaned copies) runs without the log's
    /// lock; only the plan (a shared lock) and the install (a brief exclusive lock) take it.
    /// Blocking: call from a blocking thread.
    pub fn compact(&self, now_ms: i64) -> Result<Option<CompactionStats>, PartitionError> {
        let plan = {
            let guard = read(&self.log);
            let log = guard.as_ref().ok_or(PartitionError::Closed)?;
            let config = log.config();
            if !config.cleanup_policy.includes_compact() || !log.compaction_due(now_ms, self.high_watermark()) {
                return Ok(None);
            }
            log.compaction_plan(now_ms, config.delete_retention_ms, self.high_watermark())?
        };
        if plan.segment_count() == 0 {
            return Ok(None);
        }
        let result = plan.execute()?;
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        Ok(Some(log.install_compaction(result)?))
    }

    pub fn set_settings(&self, settings: &TopicSettings) {
        self.log_append_time.store(settings.log_append_time, Ordering::Relaxed);
        self.compression.store(codec_of(settings.compression), Ordering::Relaxed);
        self.down_conversion.store(settings.down_conversion, Ordering::Relaxed);
        self.flush_messages.store(settings.flush_messages, Ordering::Relaxed);
        self.min_insync_replicas.store(settings.min_insync_replicas, Ordering::Relaxed);
        if let Some(log) = write(&self.log).as_mut() {
            log.set_config(settings.log.clone());
        }
    }

    /// Flushes and marks the log clean, so the next start skips recovery.
    /// KIP-73: whether this broker's replica is throttled as a leader and as a follower (the
    /// topic's throttled-replica lists, filtered by this broker's id).
    pub fn set_throttled(&self, as_leader: bool, as_follower: bool) {
        self.leader_throttled.store(as_leader, Ordering::Relaxed);
        self.follower_throttled.store(as_follower, Ordering::Relaxed);
    }

    pub fn leader_throttled(&self) -> bool {
        self.leader_throttled.load(Ordering::Relaxed)
    }

    pub fn follower_throttled(&self) -> bool {
        self.follower_throttled.load(Ordering::Relaxed)
    }

    /// Whether `replica` is in the ISR this broker leads with (false when it does not lead).
    pub fn in_isr(&self, replica: i32) -> bool {
        lock(&self.leader_state).as_ref().is_some_and(|s| s.isr().contains(&replica))
    }

    pub fn close(&self) -> Result<(), PartitionError> {
        if let Some(log) = write(&self.log).take() {
            log.close()?;
        }
        Ok(())
    }

    /// Removes the partition's data for good (DeleteTopics).
    pub fn delete(&self) -> Result<(), PartitionError> {
        match write(&self.log).take() {
            Some(log) => log.delete()?,
            None => {
                if self.dir.exists() {
                    std::fs::remove_dir_all(&self.dir).map_err(|e| PartitionError::Io(self.dir.clone(), e))?;
                }
            }
        }
        Ok(())
    }
}

fn codec_of(compression: strom_config::CompressionType) -> i16 {
    match compression {
        strom_config::CompressionType::Producer => -1,
        strom_config::CompressionType::Codec(c) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_config::BrokerConfig;

    fn batch(records: i32) -> Vec<u8> {
        // A minimal valid v2 batch: header, then `records` empty records; CRC over [21..].
        let mut body = Vec::new();
        for i in 0..records {
            // length, attributes, timestampDelta, offsetDelta (zigzag varints), key -1, value -1, 0 headers
            let rec = [0u8, 0, (i as u8) << 1, 1, 1, 0];
            body.push((rec.len() as u8) << 1);
            body.extend_from_slice(&rec);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(records - 1).to_be_bytes());
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&1i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&records.to_be_bytes());
        b.extend_from_slice(&body);
        let crc = crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    // CRC-32C (Castagnoli), bitwise: tests should not share code with what they test.
    fn crc32c(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[tokio::test]
    async fn flush_messages_asks_for_group_committed_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = BrokerConfig::from_props(&Default::default()).unwrap().topic_defaults;
        let p = Partition::open(dir.path(), "t", Uuid::new_v4(), 0, &settings).unwrap();
        p.become_leader(1, 0, &[1], &[1], 0).unwrap();
        p.append(&batch(3), 0).unwrap();
        assert!(!p.needs_sync(), "the default never forces an fsync");
        settings.flush_messages = 5;
        p.set_settings(&settings);
        p.append(&batch(2), 0).unwrap();
        assert!(p.needs_sync(), "5 unflushed messages reach flush.messages=5");
        p.make_durable(5).await.unwrap();
        assert_eq!(p.durable_offset.load(Ordering::Acquire), 5);
        assert!(!p.needs_sync());
        // Already covered: returns without another sync.
        p.make_durable(4).await.unwrap();
        p.append(&batch(1), 0).unwrap();
        assert!(!p.needs_sync());
        p.make_durable(6).await.unwrap();
        assert_eq!(p.durable_offset.load(Ordering::Acquire), 6);
    }

    fn read_all(p: &Partition, from: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for s in p.read_to_end(from, usize::MAX).unwrap().slices {
            s.read_into(&mut out).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn acks_all_waits_for_the_in_sync_follower_and_fails_when_leadership_ends() {
        let dir = tempfile::tempdir().unwrap();
        let settings = BrokerConfig::from_props(&Default::default()).unwrap().topic_defaults;
        let id = Uuid::new_v4();
        let leader = Partition::open(&dir.path().join("a"), "t", id, 0, &settings).unwrap();
        let follower = Partition::open(&dir.path().join("b"), "t", id, 0, &settings).unwrap();
        leader.become_leader(1, 3, &[1, 2], &[1, 2], 0).unwrap();
        follower.become_follower(3);
        leader.append(&batch(4), 0).unwrap();
        assert_eq!(leader.high_watermark(), 0, "the follower has nothing yet");
        assert!(leader.read(0, 1 << 20).unwrap().slices.is_empty(), "consumers see nothing above the high watermark");
        let short = std::time::Duration::from_millis(50);
        assert_eq!(leader.wait_replicated(4, 3, short).await, Err(ResponseError::RequestTimedOut));
        // The follower copies the batch (its fetch from 0) and fetches again from 4.
        assert!(!leader.follower_fetched(2, 0, 1));
        let copied = read_all(&leader, 0);
        assert_eq!(follower.append_replicated(&copied, 3, leader.high_watermark(), 1).unwrap(), 4);
        assert!(follower.append_replicated(&copied, 2, 0, 1).is_err(), "a fetch answered for another epoch is refused");
        assert!(leader.follower_fetched(2, 4, 2));
        assert_eq!(leader.high_watermark(), 4);
        leader.wait_replicated(4, 3, short).await.unwrap();
        assert_eq!(read_all(&follower, 0), copied, "a follower's log is the leader's, byte for byte");
        // A waiter for a batch the follower never gets fails once leadership moves.
        leader.append(&batch(1), 0).unwrap();
        let waiting = leader.wait_replicated(5, 3, std::time::Duration::from_secs(10));
        leader.become_follower(4);
        assert_eq!(waiting.await, Err(ResponseError::NotLeaderOrFollower));
        assert!(matches!(leader.append(&batch(1), 0), Err(PartitionError::NotLeader(_))));
    }

    #[test]
    fn a_truncation_computed_as_follower_never_cuts_the_log_of_a_new_leadership() {
        // The race: a follower asks its leader (epoch 3) where to truncate; before the answer
        // arrives this replica becomes leader in epoch 4 and acknowledges appends. The late
        // answer must not cut them.
        let dir = tempfile::tempdir().unwrap();
        let settings = BrokerConfig::from_props(&Default::default()).unwrap().topic_defaults;
        let p = Partition::open(dir.path(), "t", Uuid::new_v4(), 0, &settings).unwrap();
        p.become_follower(3);
        assert_eq!(p.append_replicated(&batch(2), 3, 0, 0).unwrap(), 2);
        p.become_leader(1, 4, &[1], &[1], 0).unwrap();
        p.append(&batch(3), 0).unwrap();
        assert_eq!(p.high_watermark(), 5, "a sole in-sync leader commits at once");
        assert!(matches!(p.truncate_to_leader(3, 3, 1), Err(PartitionError::NotFollower(3))));
        assert!(matches!(p.reset_to_leader_start(3, 10), Err(PartitionError::NotFollower(3))));
        assert_eq!(p.log_end_offset().unwrap(), 5);
        // As a follower of the epoch it was computed for, the same cut applies.
        p.become_follower(5);
        assert_eq!(p.truncate_to_leader(5, 3, 2).unwrap(), 2);
        assert_eq!(p.high_watermark(), 2, "the high watermark follows the log end down");
    }

    #[test]
    fn a_follower_forgets_an_epoch_it_led_without_appending() {
        // Found by the simulation (seed 8): a replica took leadership in epoch 3 (recorded at its
        // log end), appended nothing, and follows epoch 4. Its new leader has no epoch 3, so a
        // fetch naming it as the last fetched epoch is divergent; the truncation must drop it
        // even though no offset is cut, or the follower loops between the two forever.
        let dir = tempfile::tempdir().unwrap();
        let settings = BrokerConfig::from_props(&Default::default()).unwrap().topic_defaults;
        let p = Partition::open(dir.path(), "t", Uuid::new_v4(), 0, &settings).unwrap();
        p.become_follower(0);
        p.append_replicated(&batch(2), 0, 0, 0).unwrap();
        p.become_leader(1, 3, &[1, 2], &[1, 2], 0).unwrap();
        assert_eq!(p.latest_epoch(), Some(3));
        p.become_follower(4);
        // The leader of epoch 4: its epoch at or below 3 is 0, which ends at 2.
        assert_eq!(p.truncate_to_leader(4, 0, 2).unwrap(), 2);
        assert_eq!(p.latest_epoch(), Some(0), "the empty epoch 3 is gone");
    }
}
