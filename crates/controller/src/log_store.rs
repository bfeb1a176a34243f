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
use crate::lock;

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
        strom_storage::replace_file(&self.dir.join("state.json"), &bytes)
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
        strom_storage::replace_file(&tmp, &out)?;
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
        match self.append_entries(entries) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(write_error(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> StorageResult<()> {
        self.truncate_from(log_id.index).map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> StorageResult<()> {
        self.purge_upto(log_id).map_err(write_error)
    }
}

impl LogStore {
    /// Appends and fsyncs; the entries are in memory only once they are on disk.
    fn append_entries(&self, entries: impl IntoIterator<Item = Entry>) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            let pos = inner.file_len + buf.len() as u64;
            buf.extend_from_slice(&frame(&e)?);
            added.push((pos, e));
        }
        let written = inner.file.write_all(&buf).and_then(|_| inner.file.sync_data());
        if let Err(e) = written {
            // What reached the file is unknown: cut it back so memory and disk agree.
            let len = inner.file_len;
            let _ = inner.file.set_len(len);
            return Err(e);
        }
        inner.file_len += buf.len() as u64;
        for (pos, e) in added {
            assert!(
                inner.entries.last_key_value().is_none_or(|(i, _)| *i + 1 == e.log_id.index),
                "metadata log entries are contiguous"
            );
            inner.entries.insert(e.log_id.index, (pos, e));
        }
        Ok(())
    }

    /// Removes the entries at `index` and after (a follower's conflicting suffix).
    fn truncate_from(&self, index: u64) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        let Some(pos) = inner.entries.get(&index).map(|(p, _)| *p) else { return Ok(()) };
        inner.file.set_len(pos)?;
        inner.file.sync_all()?;
        inner.file_len = pos;
        inner.entries.split_off(&index);
        Ok(())
    }

    /// Forgets the entries up to `log_id` (covered by a snapshot).
    fn purge_upto(&self, log_id: LogId) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        // The purge point is recorded first: a crash between the two steps leaves extra entries
        // below it, which open() keeps and Raft never asks for.
        inner.state.last_purged = Some(log_id);
        inner.save_state()?;
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite()
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

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Truncate(u8),
        Purge(u8),
        /// Reopen after a crash that tore this many bytes off the file's end.
        Crash(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1u8..5).prop_map(Op::Append),
            1 => any::<u8>().prop_map(Op::Truncate),
            1 => any::<u8>().prop_map(Op::Purge),
            2 => any::<u8>().prop_map(Op::Crash),
        ]
    }

    proptest::proptest! {
        /// The log against a model (the acknowledged entries), through appends, truncations,
        /// purges and crashes that tear the file's tail: after a torn write, only entries that
        /// were not yet acknowledged can be lost, and what remains is a contiguous prefix.
        #[test]
        fn the_log_matches_its_model_through_crashes(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = LogStore::open(dir.path()).unwrap();
            let mut model: BTreeMap<u64, Entry> = BTreeMap::new();
            let mut next = 0u64;
            let mut purged: Option<u64> = None;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let batch: Vec<Entry> = (next..next + u64::from(n)).map(entry).collect();
                        store.append_entries(batch.clone()).unwrap();
                        for e in batch {
                            model.insert(e.log_id.index, e);
                        }
                        next += u64::from(n);
                    }
                    Op::Truncate(at) => {
                        let Some(first) = model.keys().next().copied() else { continue };
                        let at = first + u64::from(at) % (next - first + 1);
                        store.truncate_from(at).unwrap();
                        model.split_off(&at);
                        next = next.min(at).max(first);
                    }
                    Op::Purge(upto) => {
                        let Some(first) = model.keys().next().copied() else { continue };
                        let upto = first + u64::from(upto) % (next - first);
                        store.purge_upto(entry(upto).log_id).unwrap();
                        model = model.split_off(&(upto + 1));
                        purged = Some(upto);
                    }
                    Op::Crash(tear) => {
                        let path = dir.path().join("entries.log");
                        let len = std::fs::metadata(&path).unwrap().len();
                        // Only a tail that was being written can tear: an entry whose append
                        // returned was fsynced. Tear into a new, unacknowledged partial frame.
                        let partial = frame(&entry(next)).unwrap();
                        let keep = usize::from(tear) % partial.len();
                        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
                        f.write_all(&partial[..keep]).unwrap();
                        drop(f);
                        drop(store);
                        store = LogStore::open(dir.path()).unwrap();
                        proptest::prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
                    }
                }
                let inner = lock(&store.inner);
                let got: Vec<u64> = inner.entries.keys().copied().collect();
                let want: Vec<u64> = model.keys().copied().collect();
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert_eq!(inner.state.last_purged.map(|l| l.index), purged);
            }
        }
    }
}
