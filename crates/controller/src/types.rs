//! The Raft type configuration of the metadata log, and what its entries carry.

use std::io;

use openraft::{BasicNode, ErrorSubject, ErrorVerb, StorageError};
use serde::{Deserialize, Serialize};

use strom_metadata::MetadataCommand;

/// What applying one command did, returned to its proposer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommandResult {
    /// False when the command was built on an older image (`MetadataCommand::based_on`).
    pub applied: bool,
    /// The image version after the command.
    pub version: u64,
}

openraft::declare_raft_types!(
    /// The metadata log: node ids are Kafka node ids, a node's address is its CONTROLLER listener,
    /// a snapshot is the serialized image (small: topics and brokers, not records).
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageResult<T> = Result<T, StorageError<u64>>;

pub fn read_error(e: io::Error) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
}

pub fn write_error(e: io::Error) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e)
}
