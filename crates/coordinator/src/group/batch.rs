//! The coordinator's records as record batches of `__consumer_offsets`: what the broker appends
//! and what it replays, shared by the broker and the simulation.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::record::LogRecord;

/// One uncompressed v2 batch holding `records`, stamped `now_ms`. Offsets are relative (the log
/// assigns the real ones). The encoder keeps records in one batch only while offset minus
/// sequence is constant; sequence `i - 1` also makes the batch's base sequence -1, "none", as a
/// non-idempotent producer writes it.
pub fn encode_batch(records: &[LogRecord], now_ms: i64) -> Result<BytesMut, String> {
    let records: Vec<Record> = records
        .iter()
        .zip(0i64..)
        .map(|(r, i)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(r.key()),
            value: r.value(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The keyed records of one batch: (key, value, offset). Records without a key are not the
/// coordinator's and are skipped.
pub fn decode_batch(mut batch: Bytes) -> Result<Vec<(Bytes, Option<Bytes>, i64)>, String> {
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| e.to_string())?;
    Ok(set.records.into_iter().filter_map(|r| Some((r.key?, r.value, r.offset))).collect())
}
