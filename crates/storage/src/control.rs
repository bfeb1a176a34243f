//! Transaction markers (KIP-98): the control batches that commit or abort a producer's transaction on a
//! partition. This file knows their bytes: parsing the control record of a batch, building a marker batch
//! on the leader, and stamping a delete horizon on a marker during compaction.
//!
//! A marker is a RecordBatch v2 with attributes transactional|control (0x30), baseSequence -1, never
//! compressed, holding one record whose key is `version: i16 (0), type: i16 (0 = ABORT, 1 = COMMIT)` and
//! whose value is `version: i16 (0), coordinator_epoch: i32`. Readers accept newer key/value versions
//! (the fields they know come first), as Kafka's do.
//!
//! Everything read here may come from disk or from another broker, so every access is bounds-checked
//! and a malformed control batch is an error, never a panic.

use crate::batch::{read_varlong, BatchHeader, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TRANSACTIONAL, HEADER_LEN, LOG_OVERHEAD};
use crate::error::StorageError;

/// A commit or abort marker the transaction coordinator asks the partition leader to write
/// (WriteTxnMarkers). See [`PartitionLog::append_marker`](crate::PartitionLog::append_marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    /// The epoch the marker is written with: under KIP-890 (transactions v2) the coordinator bumps the
    /// epoch at every EndTxn and the marker carries the new one.
    pub producer_epoch: i16,
    /// true: COMMIT, false: ABORT.
    pub commit: bool,
    /// The coordinator's epoch, so a zombie coordinator's late markers are fenced.
    pub coordinator_epoch: i32,
}

/// The parsed control record of a marker batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ControlRecord {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// version + type.
const CONTROL_KEY_LEN: usize = 4;
/// version + coordinator epoch.
const MARKER_VALUE_LEN: usize = 6;

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One record of an uncompressed records field, by byte ranges.
struct RawRecord {
    /// Where the record ends (after its headers), in the records field.
    end: usize,
    timestamp_delta: i64,
    /// Bytes from offsetDelta to the end of the record: everything a timestamp rewrite copies as is.
    tail_start: usize,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
}

fn parse_record(data: &[u8], pos: usize) -> Result<RawRecord, StorageError> {
    let bad = |why: &str| StorageError::corrupt(format!("control record: {why}"));
    let mut p = pos;
    let len = read_varlong(data, &mut p, 5)?;
    if len < 1 || len as u64 > (data.len() - p) as u64 {
        return Err(bad("record length runs past the batch"));
    }
    let end = p + len as usize;
    let rec = &data[..end];
    p += 1; // attributes
    let timestamp_delta = read_varlong(rec, &mut p, 10)?;
    let tail_start = p;
    read_varlong(rec, &mut p, 5)?; // offsetDelta
    let field = |p: &mut usize| -> Result<Option<(usize, usize)>, StorageError> {
        let n = read_varlong(rec, p, 5)?;
        if n < 0 {
            return Ok(None);
        }
        let start = *p;
        let stop = start.checked_add(n as usize).filter(|&e| e <= end).ok_or_else(|| bad("field runs past its record"))?;
        *p = stop;
        Ok(Some((start, stop)))
    };
    let key = field(&mut p)?;
    let value = field(&mut p)?;
    if p > end {
        return Err(bad("record header runs past the record"));
    }
    Ok(RawRecord { end, timestamp_delta, tail_start, key, value })
}

/// The control record of a marker batch (`batch` is the whole batch). None for an empty control batch
/// (compaction leaves those behind; they mean the transaction's data are all gone). Errors when the batch
/// is not a well-formed COMMIT/ABORT marker.
pub(crate) fn parse_control_record(h: &BatchHeader, batch: &[u8]) -> Result<Option<ControlRecord>, StorageError> {
    let bad = |why: String| StorageError::corrupt(format!("control batch at offset {}: {why}", h.base_offset));
    if !h.is_control() {
        return Err(bad("not a control batch".into()));
    }
    if h.compression() != 0 {
        return Err(bad("control batches are never compressed".into()));
    }
    if h.records_count == 0 {
        return Ok(None);
    }
    let data = batch.get(HEADER_LEN..h.len.min(batch.len())).ok_or_else(|| bad("shorter than its header".into()))?;
    // Kafka reads the first record only; a marker holds exactly one.
    let r = parse_record(data, 0)?;
    let (ks, ke) = r.key.ok_or_else(|| bad("null key".into()))?;
    let key = &data[ks..ke];
    if key.len() < CONTROL_KEY_LEN {
        return Err(bad(format!("key of {} bytes", key.len())));
    }
    let key_version = be_i16(key, 0).ok_or_else(|| bad("short key".into()))?;
    let kind = be_i16(key, 2).ok_or_else(|| bad("short key".into()))?;
    if key_version < 0 {
        return Err(bad(format!("key version {key_version}")));
    }
    let commit = match kind {
        CONTROL_TYPE_COMMIT => true,
        CONTROL_TYPE_ABORT => false,
        other => return Err(bad(format!("control record type {other} is not a transaction marker"))),
    };
    let (vs, ve) = r.value.ok_or_else(|| bad("null value".into()))?;
    let value = &data[vs..ve];
    if value.len() < MARKER_VALUE_LEN {
        return Err(bad(format!("value of {} bytes", value.len())));
    }
    let value_version = be_i16(value, 0).ok_or_else(|| bad("short value".into()))?;
    if value_version < 0 {
        return Err(bad(format!("value version {value_version}")));
    }
    let coordinator_epoch = be_i32(value, 2).ok_or_else(|| bad("short value".into()))?;
    Ok(Some(ControlRecord { commit, coordinator_epoch }))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The 61-byte v2 header followed by `records`, with batchLength and CRC filled in.
#[allow(clippy::too_many_arguments)]
fn assemble(
    base_offset: i64,
    leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer: (i64, i16, i32),
    records_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&producer.0.to_be_bytes());
    b.extend_from_slice(&producer.1.to_be_bytes());
    b.extend_from_slice(&producer.2.to_be_bytes());
    b.extend_from_slice(&records_count.to_be_bytes());
    debug_assert_eq!(b.len(), HEADER_LEN);
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A complete marker batch for `marker` at `base_offset`, stamped `timestamp` (CreateTime), as Kafka's
/// `MemoryRecords.withEndTransactionMarker` builds it.
pub(crate) fn build_marker_batch(marker: &TxnMarker, base_offset: i64, leader_epoch: i32, timestamp: i64) -> Vec<u8> {
    let kind = if marker.commit { CONTROL_TYPE_COMMIT } else { CONTROL_TYPE_ABORT };
    let mut body = vec![0u8]; // record attributes
    put_varint(&mut body, 0); // timestampDelta
    put_varint(&mut body, 0); // offsetDelta
    put_varint(&mut body, CONTROL_KEY_LEN as i64);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&kind.to_be_bytes());
    put_varint(&mut body, MARKER_VALUE_LEN as i64);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    put_varint(&mut body, 0); // no headers
    let mut records = Vec::with_capacity(body.len() + 1);
    put_varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);
    assemble(
        base_offset,
        leader_epoch,
        ATTR_TRANSACTIONAL | ATTR_CONTROL,
        0,
        timestamp,
        timestamp,
        (marker.producer_id, marker.producer_epoch, -1),
        1,
        &records,
    )
}

/// A copy of the uncompressed batch `batch` whose baseTimestamp is the delete horizon `horizon_ms` and
/// whose attributes carry the delete-horizon flag (0x40), as Kafka's cleaner writes it on the first pass
/// that finds a marker removable. Record timestamps are kept: their deltas are rewritten against the new
/// base (they may become negative). maxTimestamp, offsets and the rest of the header are unchanged; the
/// CRC is recomputed. None when the batch is compressed (markers never are).
pub(crate) fn with_delete_horizon(h: &BatchHeader, batch: &[u8], horizon_ms: i64) -> Result<Option<Vec<u8>>, StorageError> {
    if h.compression() != 0 {
        return Ok(None);
    }
    let data = batch.get(HEADER_LEN..h.len.min(batch.len())).ok_or_else(|| StorageError::corrupt("batch shorter than its header"))?;
    let mut records = Vec::with_capacity(data.len() + 8 * h.records_count.max(0) as usize);
    let mut pos = 0usize;
    let mut body = Vec::new();
    for _ in 0..h.records_count {
        let r = parse_record(data, pos)?;
        let timestamp = if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp.saturating_add(r.timestamp_delta) };
        body.clear();
        body.push(0); // record attributes (unused in v2)
        put_varint(&mut body, if h.is_log_append_time() { r.timestamp_delta } else { timestamp.saturating_sub(horizon_ms) });
        body.extend_from_slice(&data[r.tail_start..r.end]);
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
        pos = r.end;
    }
    if pos != data.len() {
        return Err(StorageError::corrupt(format!("batch at offset {}: bytes after the last record", h.base_offset)));
    }
    Ok(Some(assemble(
        h.base_offset,
        h.partition_leader_epoch,
        h.attributes | ATTR_DELETE_HORIZON,
        h.last_offset_delta,
        horizon_ms,
        h.max_timestamp,
        (h.producer_id, h.producer_epoch, h.base_sequence),
        h.records_count,
        &records,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;

    fn marker(commit: bool) -> TxnMarker {
        TxnMarker { producer_id: 42, producer_epoch: 3, commit, coordinator_epoch: 7 }
    }

    #[test]
    fn marker_batches_round_trip() {
        for commit in [false, true] {
            let b = build_marker_batch(&marker(commit), 100, 5, 1234);
            let h = validate_batches(&b, u32::MAX).unwrap()[0];
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.base_offset, h.last_offset(), h.records_count, h.base_sequence), (100, 100, 1, -1));
            assert_eq!((h.producer_id, h.producer_epoch, h.partition_leader_epoch), (42, 3, 5));
            assert_eq!((h.base_timestamp, h.max_timestamp), (1234, 1234));
            assert_eq!(parse_control_record(&h, &b).unwrap(), Some(ControlRecord { commit, coordinator_epoch: 7 }));
        }
    }

    #[test]
    fn malformed_control_batches_are_errors_never_panics() {
        let b = build_marker_batch(&marker(true), 0, 0, 0);
        let h = BatchHeader::parse(&b, 0).unwrap();
        // Every truncation and every single-byte change of the records field either parses or errors.
        for cut in HEADER_LEN..b.len() {
            assert!(parse_control_record(&h, &b[..cut]).is_err(), "cut at {cut}");
        }
        for i in HEADER_LEN..b.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bad = b.clone();
                bad[i] ^= x;
                let _ = parse_control_record(&h, &bad);
            }
        }
        // Unknown type, compressed, not control.
        let mut t = b.clone();
        let type_at = b.len() - 1 - 6 - 1 - 2; // ... key type, value len, value, headers
        t[type_at] = 9;
        assert!(parse_control_record(&h, &t).is_err());
        let mut compressed = h;
        compressed.attributes |= 1;
        assert!(parse_control_record(&compressed, &b).is_err());
        let mut data = h;
        data.attributes &= !ATTR_CONTROL;
        assert!(parse_control_record(&data, &b).is_err());
        // An empty control batch has no record.
        let mut empty = h;
        empty.records_count = 0;
        assert_eq!(parse_control_record(&empty, &b[..HEADER_LEN]).unwrap(), None);
    }

    #[test]
    fn delete_horizon_keeps_the_record_and_its_timestamp() {
        let b = build_marker_batch(&marker(false), 9, 1, 5_000);
        let h = BatchHeader::parse(&b, 0).unwrap();
        let stamped = with_delete_horizon(&h, &b, 90_000).unwrap().unwrap();
        let h2 = validate_batches(&stamped, u32::MAX).unwrap()[0];
        assert_eq!(h2.delete_horizon_ms(), Some(90_000));
        assert_eq!(h.delete_horizon_ms(), None);
        assert_eq!((h2.base_offset, h2.max_timestamp, h2.records_count, h2.attributes & 0x3f), (9, 5_000, 1, 0x30));
        assert_eq!(parse_control_record(&h2, &stamped).unwrap(), Some(ControlRecord { commit: false, coordinator_epoch: 7 }));
        let found = crate::batch::find_record(&h2, &stamped, |_, _| true).unwrap();
        assert_eq!(found, Some((9, 5_000)), "the record keeps its timestamp");
    }
}
