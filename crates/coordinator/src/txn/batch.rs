//! `__transaction_state` records as record batches: what the broker appends and replays (the batch format is
//! `crate::batch`).

use bytes::{Bytes, BytesMut};

use super::types::TxnAppend;
use crate::batch::{self, BatchError};

/// One uncompressed v2 batch holding the records of `appends` (Kafka writes one record per batch; several are fine
/// too), stamped `now_ms`.
pub fn encode_batch(appends: &[TxnAppend], now_ms: i64) -> Result<BytesMut, BatchError> {
    let records: Vec<(Bytes, Option<Bytes>)> = appends.iter().map(|a| (a.key_bytes(), a.value_bytes())).collect();
    batch::encode(&records, None, now_ms)
}

/// The keyed records of one batch: (key, value, offset), to decode with [`super::decode_record`] and feed to
/// `load_partition` in log order. Control batches (none belong in this topic) yield nothing.
pub fn decode_batch(batch: Bytes) -> Result<Vec<(Bytes, Option<Bytes>, i64)>, BatchError> {
    Ok(batch::decode(batch)?.records)
}
