//! One partition replica as the broker sees it: its log, its leader epoch and its high watermark.
//!
//! Today every partition is a leader on a single node, so the high watermark follows the log end
//! offset. The split between log end offset (what is written) and high watermark (what consumers
//! may see) is kept anyway: replication moves only the rule that advances the high watermark.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use strom_storage::{AppendInfo, LogConfig, PartitionLog, ReadSlices, StorageError};
use uuid::Uuid;

use crate::sync::{read, write};

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    pub leader_epoch: i32,
    dir: PathBuf,
    /// `None` once the broker has shut the log down cleanly or the topic was deleted.
    log: RwLock<Option<PartitionLog>>,
    high_watermark: AtomicI64,
    log_append_time: AtomicBool,
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
        config: LogConfig,
        log_append_time: bool,
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
        let log = PartitionLog::open(&dir, config)?;
        let hw = log.log_end_offset();
        Ok(Partition {
            topic: Arc::from(topic),
            index,
            leader_epoch: 0,
            dir,
            log: RwLock::new(Some(log)),
            high_watermark: AtomicI64::new(hw),
            log_append_time: AtomicBool::new(log_append_time),
        })
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
        let info = log.append(batches, self.leader_epoch, now_ms, append_time)?;
        // Single replica: everything written is committed.
        self.high_watermark.store(log.log_end_offset(), Ordering::Release);
        Ok(info)
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

    pub fn set_config(&self, config: LogConfig, log_append_time: bool) {
        self.log_append_time.store(log_append_time, Ordering::Relaxed);
        if let Some(log) = write(&self.log).as_mut() {
            log.set_config(config);
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
