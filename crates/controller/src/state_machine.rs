//! The metadata image as Raft's state machine.
//!
//! Applying an entry is `MetadataImage::apply_command`; after each batch the new image is
//! published on a watch channel, which is how every reader in the broker gets it. A snapshot is
//! the image itself, written to `snapshot.json` atomically; on start the image is loaded from the
//! last snapshot and Raft re-applies the committed entries after it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::types::{read_error, write_error, CommandResult, Entry, LogId, Snapshot, SnapshotMeta, StorageResult, StoredMembership, TypeConfig};
use strom_metadata::MetadataImage;
use crate::lock;

/// What readers see: the image and the log index it reflects.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub image: Arc<MetadataImage>,
    pub index: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: MetadataImage,
}

struct Inner {
    path: PathBuf,
    image: MetadataImage,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    snapshots_built: u64,
}

#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Applied>>,
}

impl StateMachine {
    pub fn open(dir: &Path) -> io::Result<StateMachine> {
        let path = dir.join("snapshot.json");
        let mut inner = Inner {
            path: path.clone(),
            image: MetadataImage::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshots_built: 0,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SnapshotFile = serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
                inner.last_applied = file.meta.last_log_id;
                inner.membership = file.meta.last_membership.clone();
                inner.image = file.image;
                inner.snapshot = Some((file.meta, bytes));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let applied = Applied { image: Arc::new(inner.image.clone()), index: inner.last_applied.map(|l| l.index) };
        Ok(StateMachine { inner: Arc::new(Mutex::new(inner)), published: Arc::new(watch::channel(applied).0) })
    }

    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.published.subscribe()
    }

    fn publish(&self, inner: &Inner) {
        self.published.send_replace(Applied { image: Arc::new(inner.image.clone()), index: inner.last_applied.map(|l| l.index) });
    }
}

impl Inner {
    fn snapshot_bytes(&self, meta: &SnapshotMeta) -> io::Result<Vec<u8>> {
        serde_json::to_vec(&SnapshotFile { meta: meta.clone(), image: self.image.clone() }).map_err(io::Error::other)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot> {
        let mut inner = lock(&self.inner);
        inner.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!("{}-{}", inner.last_applied.map_or(0, |l| l.index), inner.snapshots_built),
        };
        let bytes = inner.snapshot_bytes(&meta).map_err(write_error)?;
        strom_storage::replace_file(&inner.path, &bytes).map_err(write_error)?;
        inner.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(bytes) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId>, StoredMembership)> {
        let inner = lock(&self.inner);
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = lock(&self.inner);
        let mut results = Vec::new();
        for entry in entries {
            debug_assert!(inner.last_applied.is_none_or(|l| l.index < entry.log_id.index), "entries are applied in log order, once");
            inner.last_applied = Some(entry.log_id);
            let applied = match &entry.payload {
                EntryPayload::Blank => false,
                EntryPayload::Normal(cmd) => inner.image.apply_command(cmd),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    false
                }
            };
            results.push(CommandResult { applied, version: inner.image.version });
        }
        self.publish(&inner);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Vec<u8>>> {
        Ok(Box::default())
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Vec<u8>>) -> StorageResult<()> {
        let file: SnapshotFile = serde_json::from_slice(&snapshot)
            .map_err(|e| read_error(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        let mut inner = lock(&self.inner);
        strom_storage::replace_file(&inner.path, &snapshot).map_err(write_error)?;
        inner.image = file.image;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), *snapshot));
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot>> {
        let inner = lock(&self.inner);
        Ok(inner.snapshot.as_ref().map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Box::new(bytes.clone()) }))
    }
}
