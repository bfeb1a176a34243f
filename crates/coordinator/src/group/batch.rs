//! The coordinator's records as record batches of `__consumer_offsets`: what the broker appends and what it
//! replays, shared by the broker and the simulation. The batch format itself is `crate::batch`.

use bytes::{Bytes, BytesMut};

use super::record::LogRecord;
use crate::batch::{self, BatchError, DecodedBatch, TxnMarker, TxnProducer};

fn pairs(records: &[LogRecord]) -> Vec<(Bytes, Option<Bytes>)> {
    records.iter().map(|r| (r.key(), r.value())).collect()
}

/// One uncompressed v2 batch holding `records`, stamped `now_ms` (see `crate::batch::encode`).
pub fn encode_batch(records: &[LogRecord], now_ms: i64) -> Result<BytesMut, BatchError> {
    batch::encode(&pairs(records), None, now_ms)
}

/// The batch of a TxnOffsetCommit ([`super::Effect::PersistTxnOffsets`]): the same offset-commit records, in a
/// transactional batch of the producer, so that the marker the transaction coordinator later writes into this
/// offsets partition decides them (KIP-98). The broker appends it like any other batch; the log validates the
/// producer's epoch as for a client's transactional produce.
pub fn encode_txn_batch(records: &[LogRecord], producer_id: i64, producer_epoch: i16, now_ms: i64) -> Result<BytesMut, BatchError> {
    batch::encode(&pairs(records), Some(TxnProducer { producer_id, producer_epoch }), now_ms)
}

/// The end-transaction marker the broker writes into an offsets partition when the transaction coordinator's
/// WriteTxnMarkers reaches it (then it calls [`super::GroupCoordinator::complete_txn`]).
pub fn encode_marker_batch(producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32, now_ms: i64) -> Result<BytesMut, BatchError> {
    batch::encode_marker(TxnProducer { producer_id, producer_epoch }, TxnMarker { commit, coordinator_epoch }, now_ms)
}

/// The keyed records of one batch: (key, value, offset). Records without a key are not the coordinator's and are
/// skipped, and so are control batches (their records are markers). This view ignores transactions: a replay that
/// must keep transactional offsets pending until their marker uses [`read_batch`].
pub fn decode_batch(batch: Bytes) -> Result<Vec<(Bytes, Option<Bytes>, i64)>, String> {
    let decoded = batch::decode(batch).map_err(|e| e.to_string())?;
    Ok(decoded.records)
}

/// One batch with what a transactional replay needs: the producer, the transactional flag and, for a control batch,
/// its marker. [`super::GroupCoordinator::load_batch`] applies it.
pub fn read_batch(batch: Bytes) -> Result<DecodedBatch, BatchError> {
    batch::decode(batch)
}
