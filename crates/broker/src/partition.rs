//! One partition replica as the broker sees it: its log, its leader epoch and its high watermark.
//!
//! Today every partition is a leader on a single node, so the high watermark follows the log end
//! offset. The split between log end offset (what is written) and high watermark (what consumers
//! may see) is kept anyway: replication moves only the rule that advances the high watermark.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use strom_storage::{AppendInfo, CompactionStats, PartitionLog, ReadSlices, StorageError};

use crate::config::TopicSettings;
use uuid::Uuid;

use crate::sync::{read, write};

pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    /// The epoch of this broker's leadership, from the metadata image; stamped on appended batches.
    leader_epoch: AtomicI32,
    is_leader: AtomicBool,
    dir: PathBuf,
    /// `None` once the broker has shut the log down cleanly or the topic was deleted.
    log: RwLock<Option<PartitionLog>>,
    high_watermark: AtomicI64,
    log_append_time: AtomicBool,
    flush_messages: AtomicI64,
    /// Messages appended since the last fsync (approximate under concurrency, as in Kafka).
    unflushed: AtomicI64,
    /// Every offset below this is on disk (fsynced).
    durable_offset: AtomicI64,
    /// One fsync at a time; appends that arrive meanwhile are covered by the next one.
    sync_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("partition is closed")]
    Closed,
    #[error("partition directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
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
            crate::fsutil::write_atomic(&meta_path, expected.as_bytes()).map_err(|e| PartitionError::Io(dir.clone(), e))?;
        }
        let log = PartitionLog::open(&dir, settings.log.clone())?;
        let hw = log.log_end_offset();
        Ok(Partition {
            topic: Arc::from(topic),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(0),
            is_leader: AtomicBool::new(false),
            dir,
            log: RwLock::new(Some(log)),
            high_watermark: AtomicI64::new(hw),
            log_append_time: AtomicBool::new(settings.log_append_time),
            flush_messages: AtomicI64::new(settings.flush_messages),
            unflushed: AtomicI64::new(0),
            // After a process crash the recovered tail may exist only in the page cache, so
            // nothing is assumed durable: the first sync covers everything.
            durable_offset: AtomicI64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// Leadership as the metadata image says (`ReplicaManager::sync_with`).
    pub fn set_leadership(&self, leader: bool, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
        self.is_leader.store(leader, Ordering::Release);
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn uses_log_append_time(&self) -> bool {
        self.log_append_time.load(Ordering::Relaxed)
    }

    pub fn append(&self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let append_time = self.log_append_time.load(Ordering::Relaxed).then_some(now_ms);
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        let info = log.append(batches, self.leader_epoch(), now_ms, append_time)?;
        // Single replica: everything written is committed.
        self.high_watermark.store(log.log_end_offset(), Ordering::Release);
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

    /// Finds whole batches below the high watermark, as file ranges. Runs under a shared lock for
    /// a few index lookups; the bytes themselves are sent later, outside any lock.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadSlices, PartitionError> {
        let guard = read(&self.log);
        let log = guard.as_ref().ok_or(PartitionError::Closed)?;
        Ok(log.read_slices(offset, max_bytes, self.high_watermark())?)
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> Result<T, StorageError>) -> Result<T, PartitionError> {
        let guard = read(&self.log);
        Ok(f(guard.as_ref().ok_or(PartitionError::Closed)?)?)
    }

    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> Result<T, StorageError>) -> Result<T, PartitionError> {
        let mut guard = write(&self.log);
        let log = guard.as_mut().ok_or(PartitionError::Closed)?;
        let r = f(log)?;
        // Truncation or retention may have moved the end; the high watermark never exceeds it.
        let leo = log.log_end_offset();
        self.high_watermark.fetch_min(leo, Ordering::AcqRel);
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
        self.flush_messages.store(settings.flush_messages, Ordering::Relaxed);
        if let Some(log) = write(&self.log).as_mut() {
            log.set_config(settings.log.clone());
        }
    }

    /// Flushes and marks the log clean, so the next start skips recovery.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

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
        let mut settings = crate::config::topic_settings(&BrokerConfig::from_props(&Default::default()).unwrap(), &Default::default());
        let p = Partition::open(dir.path(), "t", Uuid::new_v4(), 0, &settings).unwrap();
        p.append(&mut batch(3), 0).unwrap();
        assert!(!p.needs_sync(), "the default never forces an fsync");
        settings.flush_messages = 5;
        p.set_settings(&settings);
        p.append(&mut batch(2), 0).unwrap();
        assert!(p.needs_sync(), "5 unflushed messages reach flush.messages=5");
        p.make_durable(5).await.unwrap();
        assert_eq!(p.durable_offset.load(Ordering::Acquire), 5);
        assert!(!p.needs_sync());
        // Already covered: returns without another sync.
        p.make_durable(4).await.unwrap();
        p.append(&mut batch(1), 0).unwrap();
        assert!(!p.needs_sync());
        p.make_durable(6).await.unwrap();
        assert_eq!(p.durable_offset.load(Ordering::Acquire), 6);
    }
}
