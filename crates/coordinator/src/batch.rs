//! The coordinators' records as RecordBatch v2, shared by every coordinator log (`__consumer_offsets`,
//! `__transaction_state`): the plain batches a coordinator writes for itself, the transactional batches of
//! TxnOffsetCommit (KIP-98: the producer's id and epoch on the batch, the transactional attribute set), and the
//! end-transaction control batches (markers) the broker writes into `__consumer_offsets` for them.
//!
//! Decoding reports what a replay needs from the batch header: who wrote it, whether it is transactional, and for
//! a control batch whether it commits or aborts. A record's key and value stay bytes here; each coordinator's
//! `record.rs` gives them meaning.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// A record as the log holds it: key, value (`None` for a tombstone) and its offset.
pub type KeyedRecord = (Bytes, Option<Bytes>, i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("cannot encode the batch: {0}")]
    Encode(String),
    #[error("cannot decode the batch: {0}")]
    Decode(String),
    #[error("control record: {0}")]
    Control(&'static str),
}

/// The producer a transactional batch belongs to. Coordinator batches of their own carry none (-1/-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// An end-transaction marker (Kafka's EndTransactionMarker in a control batch): the outcome of a transaction for
/// every transactional batch of its producer before it in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    /// The transaction coordinator's epoch (its `__transaction_state` partition's leader epoch) that wrote it.
    pub coordinator_epoch: i32,
}

/// One decoded batch with the header fields a replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub base_offset: i64,
    /// -1 for a coordinator's own (non-transactional) batches.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transactional: bool,
    /// `Some` for a control batch: its records are markers, not coordinator records, so `records` is empty.
    pub marker: Option<TxnMarker>,
    /// The keyed records (a record without a key is not a coordinator's and is skipped).
    pub records: Vec<KeyedRecord>,
}

/// Control record types (Kafka's ControlRecordType): the key is `version: i16 (0), type: i16`.
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// One uncompressed v2 batch holding `records`, stamped `now_ms`, transactional for `producer` if given. Offsets
/// are relative (the log assigns the real ones). The encoder keeps records in one batch only while offset minus
/// sequence is constant, so every batch uses sequence `i - 1`, which makes its base sequence -1 ("none", as a
/// non-idempotent producer writes it). Kafka's coordinator writes TxnOffsetCommit batches with base sequence 0 and
/// exempts its own appends from the sequence checks; Strom's log has one append path, where a base sequence of -1
/// is what keeps a coordinator's batch out of the idempotence checks (a second TxnOffsetCommit of the same producer
/// would otherwise look out of order, or like a duplicate of the first) while its producer epoch is still checked
/// and its transaction still tracked.
pub fn encode(records: &[(Bytes, Option<Bytes>)], producer: Option<TxnProducer>, now_ms: i64) -> Result<BytesMut, BatchError> {
    let (producer_id, producer_epoch) = producer.map_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH), |p| (p.producer_id, p.producer_epoch));
    let records: Vec<Record> = records
        .iter()
        .zip(0i64..)
        .map(|((key, value), i)| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    write(&records)
}

/// A control batch with one end-transaction marker for `producer`, as Kafka's `MemoryRecords.withEndTransactionMarker`
/// writes it: transactional and control attributes, base sequence -1, key `(0, type)`, value
/// `(version 0, coordinator epoch)`.
pub fn encode_marker(producer: TxnProducer, marker: TxnMarker, now_ms: i64) -> Result<BytesMut, BatchError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if marker.commit { CONTROL_COMMIT } else { CONTROL_ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(marker.coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    write(std::slice::from_ref(&record))
}

fn write(records: &[Record]) -> Result<BytesMut, BatchError> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| BatchError::Encode(e.to_string()))?;
    Ok(buf)
}

/// Decode one batch. The header is read on its own first, so that a batch whose records were all compacted away
/// still tells who wrote it.
pub fn decode(batch: Bytes) -> Result<DecodedBatch, BatchError> {
    let header = RecordBatchDecoder::decode_batch_info(&mut batch.clone())
        .map_err(|e| BatchError::Decode(e.to_string()))?
        .into_iter()
        .next()
        .ok_or(BatchError::Decode("not a v2 record batch".to_string()))?;
    let set = RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| BatchError::Decode(e.to_string()))?;
    let mut decoded = DecodedBatch {
        base_offset: header.min_offset,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        transactional: header.transactional,
        marker: None,
        records: Vec::new(),
    };
    if header.control {
        // A control batch holds exactly one control record; one we cannot read is an error rather than a guess,
        // since applying the wrong outcome would commit what was aborted.
        let record = set.records.first().ok_or(BatchError::Control("a control batch without records"))?;
        decoded.marker = Some(read_marker(record)?);
        return Ok(decoded);
    }
    decoded.records = set.records.into_iter().filter_map(|r| Some((r.key?, r.value, r.offset))).collect();
    Ok(decoded)
}

fn read_marker(record: &Record) -> Result<TxnMarker, BatchError> {
    let mut key = record.key.clone().ok_or(BatchError::Control("a control record without a key"))?;
    if key.remaining() < 4 {
        return Err(BatchError::Control("control record key truncated"));
    }
    let _version = key.get_i16();
    let commit = match key.get_i16() {
        CONTROL_ABORT => false,
        CONTROL_COMMIT => true,
        _ => return Err(BatchError::Control("unknown control record type")),
    };
    let mut value = record.value.clone().ok_or(BatchError::Control("a marker without a value"))?;
    if value.remaining() < 6 {
        return Err(BatchError::Control("marker value truncated"));
    }
    let _version = value.get_i16();
    Ok(TxnMarker { commit, coordinator_epoch: value.get_i32() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: Option<&str>) -> (Bytes, Option<Bytes>) {
        (Bytes::from(k.to_string()), v.map(|v| Bytes::from(v.to_string())))
    }

    #[test]
    fn plain_batch_round_trip_has_no_producer() {
        let buf = encode(&[rec("a", Some("1")), rec("b", None)], None, 7).unwrap();
        let d = decode(buf.freeze()).unwrap();
        assert_eq!((d.producer_id, d.producer_epoch, d.transactional, d.marker), (-1, -1, false, None));
        assert_eq!(d.records, vec![(Bytes::from("a"), Some(Bytes::from("1")), 0), (Bytes::from("b"), None, 1)]);
    }

    #[test]
    fn transactional_batch_carries_its_producer() {
        let p = TxnProducer { producer_id: 42, producer_epoch: 3 };
        let buf = encode(&[rec("a", Some("1")), rec("b", Some("2"))], Some(p), 7).unwrap();
        let d = decode(buf.freeze()).unwrap();
        assert_eq!((d.producer_id, d.producer_epoch, d.transactional, d.marker), (42, 3, true, None));
        assert_eq!(d.records.len(), 2);
    }

    #[test]
    fn markers_round_trip() {
        for commit in [true, false] {
            let p = TxnProducer { producer_id: 9, producer_epoch: 1 };
            let buf = encode_marker(p, TxnMarker { commit, coordinator_epoch: 5 }, 7).unwrap();
            // Kafka's attributes: transactional (bit 4) and control (bit 5).
            assert_eq!(i16::from_be_bytes([buf[21], buf[22]]) & 0x30, 0x30);
            let d = decode(buf.freeze()).unwrap();
            assert_eq!(d.marker, Some(TxnMarker { commit, coordinator_epoch: 5 }));
            assert!(d.records.is_empty() && d.transactional && d.producer_id == 9);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(Bytes::from_static(&[0u8; 10])).is_err());
        let mut buf = encode(&[rec("a", Some("1"))], None, 7).unwrap();
        let last = buf.len() - 1;
        buf[last] ^= 0xff; // breaks the CRC
        assert!(decode(buf.freeze()).is_err());
    }
}
