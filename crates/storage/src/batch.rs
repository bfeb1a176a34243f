//! Kafka RecordBatch v2: header view, validation of client input, and the header rewrites the log
//! performs (offsets, leader epoch, LogAppendTime) on a copy of the header. Nothing here looks inside the records on the
//! append path; only timestamp lookups walk records, and only for uncompressed batches.

use crate::error::StorageError;

/// Size of the v2 batch header, up to and including recordsCount.
pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the part of the header not counted by batchLength.
pub(crate) const LOG_OVERHEAD: usize = 12;
const MAGIC_V2: i8 = 2;
/// The CRC covers everything from the attributes to the end, so baseOffset and
/// partitionLeaderEpoch can be rewritten without recomputing it.
const CRC_START: usize = 21;
const OFF_BASE_OFFSET: usize = 0;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub(crate) const ATTR_TRANSACTIONAL: i16 = 0x10;
pub(crate) const ATTR_CONTROL: i16 = 0x20;
/// Set by compaction on a batch whose baseTimestamp now holds the delete horizon (Kafka's
/// DELETE_HORIZON_FLAG): when its markers or tombstones may go.
pub(crate) const ATTR_DELETE_HORIZON: i16 = 0x40;
/// none, gzip, snappy, lz4, zstd
const MAX_COMPRESSION_CODEC: i16 = 4;

/// Parsed header of one batch plus where it sits in the buffer or file it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Byte position of the batch in the buffer or segment it was parsed from.
    pub position: usize,
    /// Total size in bytes: 12 + batchLength.
    pub len: usize,
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(h: &[u8; HEADER_LEN], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

fn be_i32(h: &[u8; HEADER_LEN], at: usize) -> i32 {
    i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

fn be_i64(h: &[u8; HEADER_LEN], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    i64::from_be_bytes(b)
}

impl BatchHeader {
    /// Parses and sanity-checks the header of the batch at `position` in `buf`. Does not check the
    /// CRC and does not require the whole batch to be present (recovery reads headers alone).
    pub fn parse(buf: &[u8], position: usize) -> Result<BatchHeader, StorageError> {
        let bytes = position
            .checked_add(HEADER_LEN)
            .and_then(|end| buf.get(position..end))
            .ok_or_else(|| StorageError::corrupt("batch header is truncated"))?;
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(bytes);
        Self::from_array(&h, position)
    }

    pub(crate) fn from_array(h: &[u8; HEADER_LEN], position: usize) -> Result<BatchHeader, StorageError> {
        let batch_length = be_i32(h, 8);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(StorageError::corrupt(format!("batchLength {batch_length} is smaller than a v2 header")));
        }
        let header = BatchHeader {
            position,
            len: LOG_OVERHEAD + batch_length as usize,
            base_offset: be_i64(h, OFF_BASE_OFFSET),
            partition_leader_epoch: be_i32(h, OFF_LEADER_EPOCH),
            magic: h[16] as i8,
            crc: be_i32(h, OFF_CRC) as u32,
            attributes: be_i16(h, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(h, 23),
            base_timestamp: be_i64(h, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(h, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(h, 43),
            producer_epoch: be_i16(h, 51),
            base_sequence: be_i32(h, 53),
            records_count: be_i32(h, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(StorageError::corrupt(format!("unsupported magic {}", header.magic)));
        }
        if header.last_offset_delta < 0 {
            return Err(StorageError::corrupt(format!("negative lastOffsetDelta {}", header.last_offset_delta)));
        }
        if header.records_count < 0 {
            return Err(StorageError::corrupt(format!("negative recordsCount {}", header.records_count)));
        }
        if header.compression() > MAX_COMPRESSION_CODEC {
            return Err(StorageError::corrupt(format!("unknown compression codec {}", header.compression())));
        }
        Ok(header)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// When compaction may remove the batch's marker: set by the first cleaning pass that found it
    /// removable (see [`crate::compaction`]), None before.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// Idempotent producers set both; everything else sends -1 and skips sequence checks.
    pub fn has_producer_sequence(&self) -> bool {
        self.producer_id >= 0 && self.base_sequence >= 0
    }

    /// Sequence of the last record. Kafka wraps sequences from i32::MAX to 0, never negative.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    pub fn end_position(&self) -> usize {
        self.position + self.len
    }
}

pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    debug_assert!(sequence >= 0 && increment >= 0);
    let modulus = i64::from(i32::MAX) + 1;
    ((i64::from(sequence) + i64::from(increment)) % modulus) as i32
}

pub(crate) fn compute_crc(batch: &[u8]) -> Option<u32> {
    batch.get(CRC_START..).map(crc32c::crc32c)
}

/// Checks the CRC of one whole batch (`batch` is exactly the batch's bytes).
pub(crate) fn verify_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), StorageError> {
    debug_assert_eq!(batch.len(), header.len);
    match compute_crc(batch) {
        Some(crc) if crc == header.crc => Ok(()),
        Some(crc) => Err(StorageError::corrupt(format!(
            "CRC mismatch in batch at offset {}: stored {:#010x}, computed {crc:#010x}",
            header.base_offset, header.crc
        ))),
        None => Err(StorageError::corrupt("batch shorter than its header")),
    }
}

/// Validates the records field of a produce request: one or more whole v2 batches with correct
/// CRCs and no trailing bytes. Returns their headers in order.
pub fn validate_batches(buf: &[u8], max_message_bytes: u32) -> Result<Vec<BatchHeader>, StorageError> {
    if buf.is_empty() {
        return Err(StorageError::corrupt("no record batches"));
    }
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let remaining = buf.len() - pos;
        if remaining < LOG_OVERHEAD {
            return Err(StorageError::corrupt(format!("{remaining} trailing bytes are not a whole batch")));
        }
        let batch_length = i32::from_be_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
        if batch_length >= 0 {
            let size = LOG_OVERHEAD + batch_length as usize;
            if size > max_message_bytes as usize {
                return Err(StorageError::MessageTooLarge { size, max: max_message_bytes });
            }
        }
        let header = BatchHeader::parse(buf, pos)?;
        let batch = buf
            .get(pos..pos + header.len)
            .ok_or_else(|| StorageError::corrupt("last batch is truncated"))?;
        verify_crc(&header, batch)?;
        pos += header.len;
        headers.push(header);
    }
    debug_assert_eq!(pos, buf.len());
    Ok(headers)
}

/// A produced batch's header as the log writes it. The request's buffer is shared and read-only,
/// so the log never rewrites it: it writes this patched copy of the first [`HEADER_LEN`] bytes,
/// then the rest of the batch as the producer sent it. An append copies no record bytes.
#[derive(Clone, Copy)]
pub(crate) struct Head([u8; HEADER_LEN]);

impl Head {
    /// The header of `batch` (the whole batch's bytes, at least [`HEADER_LEN`] long once validated).
    pub(crate) fn of(batch: &[u8]) -> Result<Head, StorageError> {
        batch
            .get(..HEADER_LEN)
            .and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok())
            .map(Head)
            .ok_or_else(|| StorageError::corrupt("batch shorter than its header"))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Sets baseOffset and partitionLeaderEpoch. Both lie outside the CRC.
    pub(crate) fn assign_offset(&mut self, header: &mut BatchHeader, base_offset: i64, leader_epoch: i32) {
        self.put(OFF_BASE_OFFSET, &base_offset.to_be_bytes());
        self.put(OFF_LEADER_EPOCH, &leader_epoch.to_be_bytes());
        header.base_offset = base_offset;
        header.partition_leader_epoch = leader_epoch;
    }

    /// Turns the batch into a LogAppendTime batch stamped `timestamp`. These fields are covered by
    /// the CRC, so it is recomputed over the new header and `rest`, the batch's bytes after the
    /// header (read, not copied): the only per-batch cost beyond the header, and only when the
    /// topic asks for it.
    pub(crate) fn set_log_append_time(&mut self, header: &mut BatchHeader, rest: &[u8], timestamp: i64) {
        debug_assert_eq!(HEADER_LEN + rest.len(), header.len);
        let attributes = header.attributes | ATTR_LOG_APPEND_TIME;
        self.put(OFF_ATTRIBUTES, &attributes.to_be_bytes());
        self.put(OFF_BASE_TIMESTAMP, &timestamp.to_be_bytes());
        self.put(OFF_MAX_TIMESTAMP, &timestamp.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.0[CRC_START..]), rest);
        self.put(OFF_CRC, &crc.to_be_bytes());
        header.attributes = attributes;
        header.base_timestamp = timestamp;
        header.max_timestamp = timestamp;
        header.crc = crc;
    }
}

/// A copy of the v2 batch `original` (whole batch bytes) holding `records` (the records field,
/// compressed with `compression` when that is not 0) and `records_count` records. Everything else
/// in the header is kept: baseOffset, lastOffsetDelta, timestamps, producer fields, leader epoch,
/// and the attribute bits other than the codec. The CRC is recomputed.
pub(crate) fn rebuild_batch(original: &[u8], records: &[u8], records_count: i32, compression: i16) -> Vec<u8> {
    debug_assert!(original.len() >= HEADER_LEN);
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&original[..HEADER_LEN]);
    out.extend_from_slice(records);
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([original[OFF_ATTRIBUTES], original[OFF_ATTRIBUTES + 1]]);
    let attributes = (attributes & !ATTR_COMPRESSION_MASK) | (compression & ATTR_COMPRESSION_MASK);
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Reads a zigzag varint of at most `max_bytes` bytes.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<i64, StorageError> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos).ok_or_else(|| StorageError::corrupt("record varint is truncated"))?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(StorageError::corrupt("record varint is too long"))
}

/// Walks the records of an uncompressed batch (`batch` is the whole batch) and returns the first
/// (offset, timestamp) for which `want` is true. LogAppendTime batches give every record the
/// batch's maxTimestamp, as Kafka does.
pub(crate) fn find_record(
    header: &BatchHeader,
    batch: &[u8],
    mut want: impl FnMut(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>, StorageError> {
    debug_assert_eq!(header.compression(), 0);
    let mut pos = HEADER_LEN;
    for _ in 0..header.records_count {
        let length = read_varlong(batch, &mut pos, 5)?;
        if length < 0 || (length as u64) > (batch.len() - pos.min(batch.len())) as u64 {
            return Err(StorageError::corrupt(format!("record length {length} runs past its batch")));
        }
        let end = pos + length as usize;
        let mut p = pos + 1; // attributes
        let timestamp_delta = read_varlong(batch, &mut p, 10)?;
        let offset_delta = read_varlong(batch, &mut p, 5)?;
        if p > end {
            return Err(StorageError::corrupt("record header runs past the record"));
        }
        let offset = header.base_offset.saturating_add(offset_delta);
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        if want(offset, timestamp) {
            return Ok(Some((offset, timestamp)));
        }
        pos = end;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};

    #[test]
    fn parses_a_valid_batch() {
        let spec = BatchSpec { base_timestamp: 1000, timestamps: vec![0, 5, 3], ..BatchSpec::default() };
        let buf = build_batch(&spec);
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        assert_eq!(h.len, buf.len());
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.producer_id, -1);
        assert!(!h.has_producer_sequence());
    }

    #[test]
    fn validates_several_batches_and_rejects_trailing_bytes() {
        let mut buf = build_batch(&BatchSpec::default());
        let second = build_batch(&BatchSpec { timestamps: vec![1, 2], ..BatchSpec::default() });
        buf.extend_from_slice(&second);
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].position, headers[0].len);

        for cut in 1..second.len() {
            let torn = &buf[..buf.len() - cut];
            assert!(matches!(validate_batches(torn, 1 << 20), Err(StorageError::CorruptMessage(_))), "cut {cut}");
        }
        assert!(validate_batches(&[], 1 << 20).is_err());
    }

    #[test]
    fn detects_every_single_bit_flip_under_the_crc() {
        let buf = build_batch(&BatchSpec { timestamps: vec![1, 2, 3], ..BatchSpec::default() });
        for i in CRC_START..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(validate_batches(&bad, 1 << 20).is_err(), "flip at {i} not detected");
        }
        // The CRC field itself.
        let mut bad = buf.clone();
        bad[OFF_CRC] ^= 1;
        assert!(validate_batches(&bad, 1 << 20).is_err());
    }

    #[test]
    fn rejects_bad_header_fields() {
        let buf = build_batch(&BatchSpec::default());
        let mut bad_magic = buf.clone();
        bad_magic[16] = 1;
        assert!(matches!(validate_batches(&bad_magic, 1 << 20), Err(StorageError::CorruptMessage(_))));

        let mut short_len = buf.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(validate_batches(&short_len, 1 << 20).is_err());

        let mut neg_len = buf.clone();
        neg_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(validate_batches(&neg_len, 1 << 20).is_err());

        assert!(matches!(
            validate_batches(&buf, (buf.len() - 1) as u32),
            Err(StorageError::MessageTooLarge { size, .. }) if size == buf.len()
        ));
        assert!(validate_batches(&buf, buf.len() as u32).is_ok());

        let neg_delta = build_batch(&BatchSpec { last_offset_delta: Some(-1), ..BatchSpec::default() });
        assert!(validate_batches(&neg_delta, 1 << 20).is_err());
    }

    /// What the log writes for `buf`'s one batch: the patched head, then the batch's own rest.
    fn written(head: &Head, buf: &[u8]) -> Vec<u8> {
        [head.bytes(), &buf[HEADER_LEN..]].concat()
    }

    #[test]
    fn offset_rewrite_keeps_the_crc_valid() {
        let buf = build_batch(&BatchSpec { timestamps: vec![1, 2], ..BatchSpec::default() });
        let mut h = validate_batches(&buf, 1 << 20).unwrap()[0];
        let mut head = Head::of(&buf).unwrap();
        head.assign_offset(&mut h, 12345, 7);
        let out = written(&head, &buf);
        let again = validate_batches(&out, 1 << 20).unwrap()[0];
        assert_eq!(again.base_offset, 12345);
        assert_eq!(again.partition_leader_epoch, 7);
        assert_eq!(again.last_offset(), 12346);
        assert_eq!(again, h);
    }

    #[test]
    fn log_append_time_rewrites_timestamps_and_crc() {
        let buf = build_batch(&BatchSpec { base_timestamp: 10, timestamps: vec![0, 1], ..BatchSpec::default() });
        let mut h = validate_batches(&buf, 1 << 20).unwrap()[0];
        let mut head = Head::of(&buf).unwrap();
        head.set_log_append_time(&mut h, &buf[HEADER_LEN..], 999);
        let out = written(&head, &buf);
        let again = validate_batches(&out, 1 << 20).unwrap()[0];
        assert!(again.is_log_append_time());
        assert_eq!(again.max_timestamp, 999);
        assert_eq!(again, h);
        let found = find_record(&again, &out, |_, ts| ts >= 999).unwrap();
        assert_eq!(found, Some((0, 999)));
        assert!(Head::of(&buf[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn walks_records_of_uncompressed_batches() {
        let spec = BatchSpec { base_timestamp: 100, timestamps: vec![5, 1, 9, 9], ..BatchSpec::default() };
        let buf = build_batch(&spec);
        let h = BatchHeader::parse(&buf, 0).unwrap();
        assert_eq!(find_record(&h, &buf, |_, ts| ts >= 102).unwrap(), Some((0, 105)));
        assert_eq!(find_record(&h, &buf, |_, ts| ts >= 106).unwrap(), Some((2, 109)));
        assert_eq!(find_record(&h, &buf, |o, ts| o >= 3 && ts >= 106).unwrap(), Some((3, 109)));
        assert_eq!(find_record(&h, &buf, |_, ts| ts >= 110).unwrap(), None);
        // A record length that lies must not panic.
        let mut bad = buf.clone();
        bad[HEADER_LEN] = 0x7e;
        assert!(find_record(&h, &bad, |_, _| false).is_err());
    }

    #[test]
    fn sequence_wraps_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
    }
}

#[cfg(test)]
mod fuzz {
    //! The validator sees bytes straight from the network: it must reject, never panic, and never
    //! accept a batch whose CRC-covered bytes changed.
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..400), max in 0u32..2000) {
            if let Ok(headers) = validate_batches(&buf, max) {
                // Whatever is accepted tiles the buffer exactly with whole batches.
                let mut pos = 0;
                for h in &headers {
                    prop_assert_eq!(h.position, pos);
                    pos = h.end_position();
                }
                prop_assert_eq!(pos, buf.len());
            }
        }

        #[test]
        fn any_change_under_the_crc_is_caught(
            records in 1usize..5,
            value_len in 0usize..40,
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let spec = BatchSpec { timestamps: vec![0; records], value_len, ..BatchSpec::default() };
            let mut buf = build_batch(&spec);
            prop_assert!(validate_batches(&buf, u32::MAX).is_ok());
            let i = at.index(buf.len());
            buf[i] ^= xor;
            let r = validate_batches(&buf, u32::MAX);
            // baseOffset (0..8) and partitionLeaderEpoch (12..16) are outside the CRC by design.
            if (0..8).contains(&i) || (12..16).contains(&i) {
                prop_assert!(r.is_ok());
            } else {
                prop_assert!(r.is_err(), "flipping byte {} went unnoticed", i);
            }
        }

        #[test]
        fn truncated_batches_are_rejected(records in 1usize..5, cut in 1usize..60) {
            let buf = build_batch(&BatchSpec { timestamps: vec![0; records], ..BatchSpec::default() });
            let cut = cut.min(buf.len() - 1);
            prop_assert!(validate_batches(&buf[..buf.len() - cut], u32::MAX).is_err());
        }
    }
}
