//! Small metadata files replaced atomically: write a temporary file, fsync it, rename it over the
//! old one, fsync the directory. A crash leaves either the old or the new content, never a mix;
//! a stray `*.tmp` is removed on open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};

pub(crate) const TMP_SUFFIX: &str = ".tmp";
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset";
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
pub(crate) const PRODUCER_STATE_FILE: &str = "producer-state";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let path = dir.join(name);
    replace_file(&path, bytes).at(&path)
}

/// Replaces the file at `path` with `bytes` atomically (the same protocol, for the small files
/// other crates keep: the controller's vote and snapshot, a partition's topic id). A crash
/// leaves the old or the new content, never a mix.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!("{name}{TMP_SUFFIX}"));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The file's content, or None when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

const TEXT_VERSION: &str = "0";

/// Kafka-style text checkpoint: a version line, an entry count, then one entry per line.
pub(crate) fn encode_entries(entries: &[(i64, i64)]) -> Vec<u8> {
    let mut s = format!("{TEXT_VERSION}\n{}\n", entries.len());
    for (a, b) in entries {
        s.push_str(&format!("{a} {b}\n"));
    }
    s.into_bytes()
}

pub(crate) fn decode_entries(path: &Path, bytes: &[u8]) -> Result<Vec<(i64, i64)>, StorageError> {
    let bad = |why: &str| StorageError::corrupt_log(path, why);
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(TEXT_VERSION) {
        return Err(bad("unknown version"));
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("bad entry count"))?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let a = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| bad("bad entry"))?;
        let b = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| bad("bad entry"))?;
        entries.push((a, b));
    }
    if entries.len() != count {
        return Err(bad("fewer entries than announced"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![(0, 0), (3, 100), (7, -1)];
        write_atomic(dir.path(), "x", &encode_entries(&entries)).unwrap();
        let path = dir.path().join("x");
        let bytes = read_optional(&path).unwrap().unwrap();
        assert_eq!(decode_entries(&path, &bytes).unwrap(), entries);
        assert!(!dir.path().join("x.tmp").exists());
        assert!(decode_entries(&path, b"0\n3\n1 2\n").is_err());
        assert!(decode_entries(&path, b"9\n0\n").is_err());
        assert!(read_optional(&dir.path().join("missing")).unwrap().is_none());
    }
}
