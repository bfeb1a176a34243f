//! Sparse offset index and time index of one segment. Both are held in memory (a sorted Vec) and
//! appended to their files; the files exist so a clean restart need not rescan segments. A file
//! may be stale after a crash, so the segment validates what it loads against its log file and
//! rebuilds the index when anything is off.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};

pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
}

/// Maps the relative base offset of a batch to its byte position in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// The segment's largest timestamp up to an index point (`timestamp`), and the batch that first
/// reached it (`rel_offset`): no batch before that index point has a larger timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        debug_assert_eq!(b.len(), Self::SIZE);
        OffsetEntry {
            rel_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        debug_assert_eq!(b.len(), Self::SIZE);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry { timestamp: i64::from_be_bytes(ts), rel_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) }
    }
}

pub(crate) struct IndexFile<E: IndexEntry> {
    /// Open only while the index is written. The entries live in memory, so reading never needs
    /// the file: a segment that is no longer written (loaded at start, or sealed by a roll and
    /// then [released](IndexFile::release)) holds no descriptor for its indexes, and a node with
    /// many partitions needs one open file per segment (its log) rather than four.
    file: Option<File>,
    /// Written through a handle that may have been released since: a later sync must reopen.
    written: bool,
    path: PathBuf,
    entries: Vec<E>,
    /// The file ended in a partial entry when loaded (a torn write).
    torn_tail: bool,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Creates the file empty, replacing any previous content.
    pub fn create(path: &Path) -> Result<Self, StorageError> {
        // Not kept open: an index may never be written (most segments have no aborted
        // transaction), and the first write opens it.
        OpenOptions::new().write(true).create(true).truncate(true).open(path).at(path)?;
        Ok(IndexFile { file: None, written: true, path: path.to_path_buf(), entries: Vec::new(), torn_tail: false })
    }

    /// Loads the entries of an existing file, or None when it does not exist. A trailing partial
    /// entry (torn write) is ignored and overwritten by the next append.
    pub fn load(path: &Path) -> Result<Option<Self>, StorageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(path),
        };
        let entries = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        Ok(Some(IndexFile { file: None, written: false, path: path.to_path_buf(), entries, torn_tail: bytes.len() % E::SIZE != 0 }))
    }

    /// The file for writing, opened on first use.
    fn writer(&mut self) -> Result<&File, StorageError> {
        self.written = true;
        match &mut self.file {
            Some(f) => Ok(f),
            slot @ None => Ok(slot.insert(OpenOptions::new().write(true).open(&self.path).at(&self.path)?)),
        }
    }

    /// Closes the file until the next write (a sealed segment's index is not written again,
    /// except by recovery). Whatever was written stays covered by [`IndexFile::sync`].
    pub fn release(&mut self) {
        self.file = None;
    }

    /// Replaces the whole content with `entries` (used when rebuilding).
    pub fn rewrite(&mut self, entries: Vec<E>) -> Result<(), StorageError> {
        self.writer()?.set_len(0).at(&self.path)?;
        self.entries.clear();
        self.append(&entries)
    }

    pub fn append(&mut self, new: &[E]) -> Result<(), StorageError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(new.len() * E::SIZE);
        for e in new {
            e.encode(&mut buf);
        }
        let at = (self.entries.len() * E::SIZE) as u64;
        self.writer()?.write_all_at(&buf, at).at(&self.path)?;
        self.entries.extend_from_slice(new);
        Ok(())
    }

    /// Keeps the first `len` entries, in memory and on disk.
    pub fn truncate(&mut self, len: usize) -> Result<(), StorageError> {
        if len < self.entries.len() {
            self.entries.truncate(len);
        }
        let len = (self.entries.len() * E::SIZE) as u64;
        self.writer()?.set_len(len).at(&self.path)
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    /// Whether the file ended in a partial entry when loaded.
    pub fn had_torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// Makes every write so far durable. fsync covers the file's dirty pages whichever
    /// descriptor wrote them, so a released index is reopened just for this.
    pub fn sync(&self) -> Result<(), StorageError> {
        match &self.file {
            Some(f) => f.sync_data().at(&self.path),
            None if self.written => File::open(&self.path).and_then(|f| f.sync_data()).at(&self.path),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl IndexFile<OffsetEntry> {
    /// Position of the last indexed batch whose base offset is <= `rel_offset`; 0 when none is.
    pub fn lookup(&self, rel_offset: u32) -> u32 {
        let n = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].position
        }
    }
}

impl IndexFile<OffsetEntry> {
    /// Position of the last indexed batch starting at or before byte `position`; 0 when none does.
    pub fn floor_position(&self, position: u32) -> u32 {
        let n = self.entries.partition_point(|e| e.position <= position);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].position
        }
    }
}

impl IndexFile<TimeEntry> {
    /// Relative offset of the last batch known to hold only timestamps below `timestamp`: every
    /// earlier batch has a smaller maximum, so a search for `timestamp` can start there.
    pub fn start_for(&self, timestamp: i64) -> u32 {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].rel_offset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_truncates_and_ignores_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.index");
        let mut idx = IndexFile::<OffsetEntry>::create(&path).unwrap();
        let entries: Vec<_> = (0..10).map(|i| OffsetEntry { rel_offset: i * 10, position: i * 100 }).collect();
        idx.append(&entries[..4]).unwrap();
        idx.append(&entries[4..]).unwrap();
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(15), 100);
        assert_eq!(idx.lookup(90), 900);
        assert_eq!(idx.lookup(1000), 900);
        drop(idx);
        // A torn trailing entry.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let mut idx = IndexFile::<OffsetEntry>::load(&path).unwrap().unwrap();
        assert_eq!(idx.entries(), &entries[..]);
        idx.truncate(3).unwrap();
        drop(idx);
        let idx = IndexFile::<OffsetEntry>::load(&path).unwrap().unwrap();
        assert_eq!(idx.entries(), &entries[..3]);
        assert!(IndexFile::<TimeEntry>::load(&dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn time_index_start_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = IndexFile::<TimeEntry>::create(&dir.path().join("t")).unwrap();
        idx.append(&[
            TimeEntry { timestamp: 10, rel_offset: 0 },
            TimeEntry { timestamp: 20, rel_offset: 5 },
            TimeEntry { timestamp: 30, rel_offset: 9 },
        ])
        .unwrap();
        assert_eq!(idx.start_for(5), 0);
        assert_eq!(idx.start_for(10), 0);
        assert_eq!(idx.start_for(11), 0);
        assert_eq!(idx.start_for(21), 5);
        assert_eq!(idx.start_for(31), 9);
    }
}
