//! The metadata log on disk: Raft's entries, its vote and its commit point.
//!
//! `<log.dirs>/__cluster_metadata-0/` (Kafka's name for the metadata log) holds:
//! - `entries.log`: frames of `[len u32][crc32c u32][entry as JSON]`, appended and fsynced before
//!   Raft is told they are durable. A torn or corrupt tail (a crash mid-append) is cut off on open:
//!   Raft only ever counted entries whose fsync completed, so a valid prefix is all it needs.
//! - `state.json`: the vote, the last purged log id and the commit point, replaced atomically.
//!
//! The metadata log is small (topics and brokers change rarely, and snapshots let Raft purge the
//! applied prefix), so every entry is also kept in memory and reads never touch the disk.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::types::{write_error, Entry, LogId, StorageResult, TypeConfig, Vote};
use crate::sync::lock;

/// Largest entry accepted when reading the file back; anything larger is corruption.
const MAX_ENTRY_BYTES: usize = 64 << 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// Present entries by index, with the file position each starts at.
    entries: BTreeMap<u64, (u64, Entry)>,
    file_len: u64,
    state: State,
}

/// Cheap to clone: the log reader openraft asks for shares the same entries.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl LogStore {
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state = match std::fs::read(dir.join("state.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("state.json: {e}")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        let path = dir.join("entries.log");
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (entries, valid) = parse_frames(&bytes);
        if valid < bytes.len() {
            tracing::warn!(file = %path.display(), kept = valid, dropped = bytes.len() - valid, "metadata log has a torn tail; truncating it");
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner { dir: dir.to_path_buf(), file, entries, file_len: valid as u64, state })),
        })
    }

    /// Whether this node has ever taken part in a cluster (a vote or an entry on disk).
    pub fn is_empty(&self) -> bool {
        let inner = lock(&self.inner);
        inner.state.vote.is_none() && inner.entries.is_empty() && inner.state.last_purged.is_none()
    }
}

/// The valid frames of the file, and the length of the valid prefix.
fn parse_frames(bytes: &[u8]) -> (BTreeMap<u64, (u64, Entry)>, usize) {
    let mut entries = BTreeMap::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        let crc = u32::from_be_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]);
        if len > MAX_ENTRY_BYTES || bytes.len() - pos - 8 < len {
            break;
        }
        let body = &bytes[pos + 8..pos + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(body) else { break };
        // Entries are contiguous; anything else means the file was damaged.
        if entries.last_key_value().is_some_and(|(i, _): (&u64, _)| *i + 1 != entry.log_id.index) {
            break;
        }
        entries.insert(entry.log_id.index, (pos as u64, entry));
        pos += 8 + len;
    }
    (entries, pos)
}

fn frame(entry: &Entry) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

impl Inner {
    fn save_state(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(&self.dir.join("state.json"), &bytes)
    }

    /// Rewrites the file with only the present entries (after a purge).
    fn rewrite(&mut self) -> io::Result<()> {
        let path = self.dir.join("entries.log");
        let tmp = self.dir.join("entries.log.tmp");
        let mut out = Vec::new();
        let mut entries = BTreeMap::new();
        for (index, (_, e)) in std::mem::take(&mut self.entries) {
            let pos = out.len() as u64;
            out.extend_from_slice(&frame(&e)?);
            entries.insert(index, (pos, e));
        }
        crate::fsutil::write_atomic(&tmp, &out)?;
        std::fs::rename(&tmp, &path)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_len = out.len() as u64;
        self.entries = entries;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let inner = lock(&self.inner);
        Ok(inner.entries.range(range).map(|(_, (_, e))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = lock(&self.inner);
        let last = inner.entries.last_key_value().map(|(_, (_, e))| e.log_id).or(inner.state.last_purged);
        Ok(LogState { last_purged_log_id: inner.state.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> StorageResult<()> {
        let mut inner = lock(&self.inner);
        inner.state.vote = Some(*vote);
        inner.save_state().map_err(write_error)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote>> {
        Ok(lock(&self.inner).state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> StorageResult<()> {
        let mut inner = lock(&self.inner);
        inner.state.committed = committed;
        inner.save_state().map_err(write_error)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId>> {
        Ok(lock(&self.inner).state.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = lock(&self.inner);
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            let pos = inner.file_len + buf.len() as u64;
            buf.extend_from_slice(&frame(&e).map_err(write_error)?);
            added.push((pos, e));
        }
        let written = inner.file.write_all(&buf).and_then(|_| inner.file.sync_data());
        if let Err(e) = written {
            // What reached the file is unknown: cut it back so memory and disk agree.
            let len = inner.file_len;
            let _ = inner.file.set_len(len);
            callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(write_error(e));
        }
        inner.file_len += buf.len() as u64;
        for (pos, e) in added {
            debug_assert!(inner.entries.last_key_value().is_none_or(|(i, _)| *i + 1 == e.log_id.index), "metadata log entries are contiguous");
            inner.entries.insert(e.log_id.index, (pos, e));
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> StorageResult<()> {
        let mut inner = lock(&self.inner);
        let Some((pos, _)) = inner.entries.get(&log_id.index).map(|(p, e)| (*p, e.log_id)) else { return Ok(()) };
        inner.file.set_len(pos).and_then(|_| inner.file.sync_all()).map_err(write_error)?;
        inner.file_len = pos;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> StorageResult<()> {
        let mut inner = lock(&self.inner);
        // The purge point is recorded first: a crash between the two steps leaves extra entries
        // below it, which open() keeps and Raft never asks for.
        inner.state.last_purged = Some(log_id);
        inner.save_state().map_err(write_error)?;
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite().map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    #[test]
    fn a_torn_tail_is_cut_back_to_the_last_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for i in 0..5 {
            bytes.extend_from_slice(&frame(&entry(i)).unwrap());
        }
        let whole = bytes.len();
        let last = frame(&entry(5)).unwrap();
        for cut in [1, 7, 8, last.len() - 1] {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&last[..cut]);
            std::fs::write(dir.path().join("entries.log"), &torn).unwrap();
            let store = LogStore::open(dir.path()).unwrap();
            let inner = lock(&store.inner);
            assert_eq!(inner.entries.len(), 5, "cut at {cut}");
            assert_eq!(inner.file_len as usize, whole);
            assert_eq!(std::fs::metadata(dir.path().join("entries.log")).unwrap().len() as usize, whole);
        }
        // A flipped bit in the middle keeps only the entries before it.
        let mut bad = bytes.clone();
        bad[whole / 2] ^= 0x40;
        std::fs::write(dir.path().join("entries.log"), &bad).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let n = lock(&store.inner).entries.len();
        assert!(n < 5);
        assert!(lock(&store.inner).entries.keys().copied().eq(0..n as u64));
    }
}
