use std::path::PathBuf;

/// Every failure the storage layer reports. Variants that describe bad input carry enough context for
/// the broker to map them to a Kafka error code; I/O failures carry the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Framing, magic, CRC or header-field problems in batches from a client, or malformed metadata.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),

    /// A well-formed batch whose records break a rule of the topic (a compacted topic's record
    /// without a key) or of the produce path (a client's control batch, a transactional batch without a
    /// producer id): Kafka's INVALID_RECORD.
    #[error("invalid record: {0}")]
    InvalidRecord(String),

    /// Well-formed batches some of whose records break a rule of the topic, named one by one
    /// (Kafka's ProduceResponse `record_errors`, KIP-467): nothing is appended, and a client can
    /// tell the bad records from their batch mates. Kafka's INVALID_RECORD, or INVALID_TIMESTAMP
    /// when a timestamp is among the reasons.
    #[error("invalid record: {} of the records break the topic's rules (first: record {})", records.len(), records.first().map_or(-1, |r| r.batch_index))]
    InvalidRecords { records: Vec<RecordError> },

    /// A batch whose timestamps break the topic's bounds where its records cannot be read one by
    /// one (a zstd batch): Kafka's INVALID_TIMESTAMP, without record errors.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),

    #[error("batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge { size: usize, max: u32 },

    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },

    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current_epoch}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current_epoch: i16 },

    #[error("producer {producer_id}: out of order sequence {found}, expected {expected}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, found: i32 },

    /// A write that contradicts the producer's transaction state (a non-transactional batch while its
    /// transaction is ongoing): Kafka's INVALID_TXN_STATE.
    #[error("producer {producer_id}: invalid transaction state: {reason}")]
    InvalidTxnState { producer_id: i64, reason: String },

    /// A transaction marker from a coordinator older than the one that wrote the producer's last
    /// marker (a zombie coordinator): Kafka's TRANSACTION_COORDINATOR_FENCED.
    #[error("producer {producer_id}: coordinator epoch {coordinator_epoch} is older than {current_coordinator_epoch}")]
    TransactionCoordinatorFenced { producer_id: i64, coordinator_epoch: i32, current_coordinator_epoch: i32 },

    /// Data read back from our own files does not parse although it was validated when written
    /// (bit rot, or a file changed behind our back).
    #[error("corrupt log file {path}: {reason}")]
    CorruptLog { path: PathBuf, reason: String },

    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One refused record of a produce request's batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position among the records of the partition's batches, counted from 0
    /// (Kafka's `batch_index`: a Kafka produce request carries one batch per partition, so this
    /// is the index within that batch).
    pub batch_index: i32,
    pub rule: RecordRule,
}

/// The rule a refused record broke. The broker words it for the client (with the topic
/// partition, as Kafka does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordRule {
    /// A compacted topic's record needs a key: without one it could never be compacted away.
    KeyRequired,
    /// A CreateTime record's timestamp lies outside [earliest, latest] (the broker's clock minus
    /// `message.timestamp.before.max.ms`, plus `message.timestamp.after.max.ms`). `offset` is
    /// the record's offset as the producer numbered it (Kafka's message names it).
    TimestampOutOfRange { timestamp: i64, offset: i64, earliest: i64, latest: i64 },
    /// The producer marked its batch LogAppendTime, which only the broker may do (allowed only
    /// for a CreateTime topic's records that carry a timestamp, as in Kafka).
    LogAppendTimeFromProducer { offset: i64 },
}

impl RecordRule {
    /// Whether Kafka answers INVALID_TIMESTAMP for it (else INVALID_RECORD). A request with
    /// both kinds of refused records gets INVALID_TIMESTAMP, as in Kafka.
    pub fn is_timestamp(self) -> bool {
        matches!(self, RecordRule::TimestampOutOfRange { .. } | RecordRule::LogAppendTimeFromProducer { .. })
    }
}

impl StorageError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> StorageError {
        StorageError::CorruptMessage(reason.into())
    }

    pub(crate) fn corrupt_log(path: &std::path::Path, reason: impl Into<String>) -> StorageError {
        StorageError::CorruptLog { path: path.to_path_buf(), reason: reason.into() }
    }
}

/// Attaches a path to `std::io::Error`s, because an error without the file name is useless in a
/// broker that holds thousands of files open.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io { path: path.to_path_buf(), source })
    }
}
