//! Message formats v0 and v1 (Kafka's "message sets", magic 0 and 1, before 0.11): converting
//! them to RecordBatch v2 when produced (Produce v0-2) and back when fetched (Fetch v0-3). The
//! log itself only ever holds v2 batches, as Kafka 3.x's (inter.broker.protocol.version >= 3.0).
//!
//! A message set is a sequence of entries `offset: i64, size: i32, message`, a message being
//! `crc: u32, magic: i8, attributes: i8, [timestamp: i64 (magic 1)], key: bytes, value: bytes`.
//! The CRC is CRC-32 (not v2's CRC-32C) of everything after it. Attributes hold the codec (bits
//! 0-2) and, in magic 1, the timestamp type (bit 3). Uncompressed messages stand alone, one per
//! entry; a compressed one is a wrapper whose value is a whole message set compressed, with inner
//! offsets absolute in magic 0 and relative (0, 1, ...) in magic 1, where the wrapper's offset is
//! that of the last inner message. Magic 0 has no timestamps: its records get Kafka's
//! NO_TIMESTAMP (-1). Codecs are v2's (gzip, xerial-framed snappy, LZ4 frame) except that
//! magic 0's LZ4 frame header carries the checksum old Kafka computed wrongly, over the frame's
//! magic number too (Kafka's `useBrokenFlagDescriptorChecksum`); zstd has no legacy form.
//!
//! Up-conversion follows Kafka's LogValidator: a compressed message set is one wrapper whose inner
//! messages become one v2 batch in the same codec; an uncompressed set's messages become one
//! uncompressed v2 batch. Offsets the producer wrote are ignored (the log assigns them). Producer
//! id, epoch and sequence are none: old formats cannot carry idempotent or transactional data.
//!
//! Down-conversion follows Kafka's RecordsUtil.downConvert: control batches vanish, an
//! uncompressed batch becomes one message per record (those before the fetch offset are left
//! out), a compressed one becomes one wrapper in the same codec, headers are dropped, and zstd
//! batches cannot be converted (the caller answers UNSUPPORTED_COMPRESSION_TYPE).
//!
//! Nothing is allocated from a size or count on the wire before the bytes it claims are there,
//! and decompression is capped.

use std::borrow::Cow;

use std::os::unix::fs::FileExt;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::error::IoContext;
use crate::log::FileSlice;
use crate::codec::{compress, decompress, DEFAULT_MAX_DECOMPRESSED_BYTES, LZ4, ZSTD};
use crate::compaction::parse_records;
use crate::error::StorageError;

pub const MAGIC_V0: i8 = 0;
pub const MAGIC_V1: i8 = 1;
/// Kafka's RecordBatch.NO_TIMESTAMP.
const NO_TIMESTAMP: i64 = -1;
/// offset + size before each message.
const ENTRY_OVERHEAD: usize = 12;
/// The smallest message: crc, magic, attributes, key length, value length.
const MIN_MESSAGE_V0: usize = 4 + 1 + 1 + 4 + 4;
const CODEC_MASK: u8 = 0x07;
const TIMESTAMP_TYPE_LOG_APPEND: u8 = 0x08;
/// Where the magic byte sits in every format: a legacy entry's offset, size and crc, or a v2
/// batch's base offset, length and leader epoch, come before it.
const MAGIC_POSITION: usize = 16;

/// Why a batch could not be down-converted.
#[derive(Debug, thiserror::Error)]
pub enum DownConvertError {
    /// A zstd batch: message formats v0/v1 have no zstd (Kafka's UNSUPPORTED_COMPRESSION_TYPE).
    #[error("zstd-compressed batches cannot be converted to message format v0/v1")]
    Zstd,
    #[error(transparent)]
    Corrupt(#[from] StorageError),
}

/// The message format of a records field: the magic byte of its first entry, if there is one.
pub fn records_magic(records: &[u8]) -> Option<i8> {
    records.get(MAGIC_POSITION).map(|&b| b as i8)
}

/// One message of a message set, borrowing its key and value.
#[derive(Clone, Copy, Debug)]
struct Message<'a> {
    offset: i64,
    magic: i8,
    attributes: u8,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl Message<'_> {
    fn codec(&self) -> i16 {
        i16::from(self.attributes & CODEC_MASK)
    }

    fn log_append_time(&self) -> bool {
        self.magic == MAGIC_V1 && self.attributes & TIMESTAMP_TYPE_LOG_APPEND != 0
    }
}

fn corrupt(why: impl Into<String>) -> StorageError {
    StorageError::CorruptMessage(why.into())
}

fn invalid(why: impl Into<String>) -> StorageError {
    StorageError::InvalidRecord(why.into())
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses every entry of a message set: each must be whole, of magic 0 or 1, exactly as long as
/// its size says, and CRC-valid.
fn parse_message_set(buf: &[u8]) -> Result<Vec<Message<'_>>, StorageError> {
    let mut messages = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let offset = be_i64(buf, pos).ok_or_else(|| corrupt("message set ends inside an entry's offset and size"))?;
        let size = be_i32(buf, pos + 8).ok_or_else(|| corrupt("message set ends inside an entry's offset and size"))?;
        let size = usize::try_from(size).ok().filter(|&s| s >= MIN_MESSAGE_V0).ok_or_else(|| {
            corrupt(format!("Record size {size} is less than the minimum record overhead ({MIN_MESSAGE_V0})"))
        })?;
        let start = pos + ENTRY_OVERHEAD;
        let message = buf.get(start..start.saturating_add(size)).ok_or_else(|| corrupt("message set ends inside a message"))?;
        messages.push(parse_message(offset, message)?);
        pos = start + size;
    }
    Ok(messages)
}

fn parse_message(offset: i64, m: &[u8]) -> Result<Message<'_>, StorageError> {
    let stored_crc = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    let magic = m[4] as i8;
    if magic != MAGIC_V0 && magic != MAGIC_V1 {
        return Err(corrupt(format!("message of magic {magic} in a message set")));
    }
    let computed = crc32fast::hash(&m[4..]);
    if computed != stored_crc {
        return Err(corrupt(format!("Record is corrupt (stored crc = {stored_crc}, computed crc = {computed})")));
    }
    let attributes = m[5];
    let mut p = 6;
    let timestamp = if magic == MAGIC_V1 {
        let ts = be_i64(m, p).ok_or_else(|| corrupt("message too short for its timestamp"))?;
        p += 8;
        ts
    } else {
        NO_TIMESTAMP
    };
    let key = read_bytes(m, &mut p)?;
    let value = read_bytes(m, &mut p)?;
    if p != m.len() {
        return Err(corrupt(format!("message size {} does not match its contents ({p} bytes)", m.len())));
    }
    Ok(Message { offset, magic, attributes, timestamp, key, value })
}

fn read_bytes<'a>(m: &'a [u8], p: &mut usize) -> Result<Option<&'a [u8]>, StorageError> {
    let len = be_i32(m, *p).ok_or_else(|| corrupt("message ends inside a length"))?;
    *p += 4;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| corrupt(format!("invalid length {len} in a message")))?;
    let b = m.get(*p..p.saturating_add(len)).ok_or_else(|| corrupt("a key or value runs past its message"))?;
    *p += len;
    Ok(Some(b))
}

/// Up-converts a message set (Produce v0-2's records field) into one v2 batch: base offset 0,
/// no producer id, the source's codec, timestamps as produced (NO_TIMESTAMP for magic 0). The
/// log then treats it as any produced v2 batch (offsets, LogAppendTime, per-record rules).
/// Corrupt input (framing, CRC, a wrapper that does not decompress) is CORRUPT_MESSAGE; a
/// well-formed set Kafka refuses (mixed magic, several wrappers, a compressed inner message,
/// zstd) is INVALID_RECORD.
pub fn up_convert(message_set: &[u8]) -> Result<Vec<u8>, StorageError> {
    let outer = parse_message_set(message_set)?;
    let first = *outer.first().ok_or_else(|| invalid("Record batch has no batches at all"))?;
    if let Some(m) = outer.iter().find(|m| m.magic != first.magic) {
        return Err(invalid(format!("Batch magic {} is not the same as the first batch's magic byte {}", m.magic, first.magic)));
    }
    let codec = first.codec();
    if outer.iter().any(|m| m.codec() != 0) && outer.len() > 1 {
        return Err(invalid("Compressed outer record has more than one batch"));
    }
    if codec == 0 {
        return build_v2(&outer, 0);
    }
    let inner_bytes = decompress_wrapper(&first)?;
    let mut inner = parse_message_set(&inner_bytes)?;
    let Some(last_inner) = inner.last().map(|m| m.offset) else {
        return Err(invalid("Found invalid compressed record set with no inner records"));
    };
    // Format v1's wrapper carries the last inner offset (0 from some librdkafka versions).
    if first.magic == MAGIC_V1 && first.offset != 0 && first.offset < last_inner {
        return Err(invalid(format!(
            "Found invalid wrapper offset in compressed v1 message set, wrapper offset '{}' is less than the last inner message offset '{last_inner}' and it is not zero.",
            first.offset
        )));
    }
    for m in &mut inner {
        if m.magic != first.magic {
            return Err(invalid(format!("Compressed message magic {} does not match wrapper magic {}", m.magic, first.magic)));
        }
        if m.codec() != 0 {
            return Err(invalid("Compressed outer record should not have an inner record with a compression attribute set"));
        }
        // A LogAppendTime wrapper's timestamp is every inner message's (Kafka's deep iterator).
        if first.log_append_time() {
            m.timestamp = first.timestamp;
        }
    }
    build_v2(&inner, codec)
}

/// The decompressed value of a compressed wrapper message.
fn decompress_wrapper(wrapper: &Message<'_>) -> Result<Vec<u8>, StorageError> {
    let codec = wrapper.codec();
    if codec >= ZSTD {
        return Err(invalid(format!("Invalid wrapper compressionType {codec} found in legacy deep record iterator")));
    }
    let value = wrapper.value.ok_or_else(|| invalid(format!("Found invalid compressed record set with null value (magic = {})", wrapper.magic)))?;
    let value = if codec == LZ4 && wrapper.magic == MAGIC_V0 { Cow::Owned(lz4_header_fixed(value)?) } else { Cow::Borrowed(value) };
    decompress(codec, &value, DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(|why| corrupt(format!("compressed message set: {why}")))
}

/// One v2 batch holding `messages` as records 0..n, its records field compressed with `codec`.
fn build_v2(messages: &[Message<'_>], codec: i16) -> Result<Vec<u8>, StorageError> {
    let base_timestamp = messages.first().map_or(NO_TIMESTAMP, |m| m.timestamp);
    let max_timestamp = messages.iter().map(|m| m.timestamp).max().unwrap_or(NO_TIMESTAMP);
    let mut records = Vec::new();
    let mut body = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes
        put_varint(&mut body, m.timestamp.wrapping_sub(base_timestamp));
        put_varint(&mut body, i as i64);
        put_varint_bytes(&mut body, m.key);
        put_varint_bytes(&mut body, m.value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let records = match codec {
        0 => records,
        c => compress(c, &records).ok_or_else(|| corrupt(format!("cannot compress with codec {c}")))?,
    };
    let count = messages.len() as i32;
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset: the log assigns it
    out.extend_from_slice(&((HEADER_LEN - ENTRY_OVERHEAD + records.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch: the log sets it
    out.push(2);
    out.extend_from_slice(&[0; 4]); // crc, below
    out.extend_from_slice(&codec.to_be_bytes());
    out.extend_from_slice(&(count - 1).to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&records);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Appends the v2 batch `batch` (its whole bytes) to `out` in message format `magic` (0 or 1),
/// leaving out an uncompressed batch's records below `fetch_offset` (Kafka does, and some
/// clients rely on it). A control batch appends nothing.
pub fn down_convert(batch: &[u8], magic: i8, fetch_offset: i64, out: &mut Vec<u8>) -> Result<(), DownConvertError> {
    let h = BatchHeader::parse(batch, 0)?;
    if h.is_control() {
        return Ok(());
    }
    let codec = h.compression();
    if codec == ZSTD {
        return Err(DownConvertError::Zstd);
    }
    let payload = batch.get(HEADER_LEN..h.len).ok_or_else(|| corrupt("batch shorter than its header says"))?;
    let data = match codec {
        0 => Cow::Borrowed(payload),
        c => Cow::Owned(decompress(c, payload, DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(|why| corrupt(format!("batch at offset {}: {why}", h.base_offset)))?),
    };
    let log_append_time = magic == MAGIC_V1 && h.is_log_append_time();
    let attributes = if log_append_time { TIMESTAMP_TYPE_LOG_APPEND } else { 0 };
    let records = parse_records(&data, &h)?;
    let slice = |r: Option<(usize, usize)>| r.map(|(s, e)| &data[s..e]);
    let messages = records.iter().map(|r| Message {
        offset: h.base_offset.wrapping_add(i64::from(r.offset_delta)),
        magic,
        attributes,
        timestamp: match magic {
            MAGIC_V0 => NO_TIMESTAMP,
            _ if log_append_time => h.max_timestamp,
            _ => h.base_timestamp.wrapping_add(r.timestamp_delta),
        },
        key: slice(r.key),
        value: slice(r.value),
    });
    if codec == 0 {
        for m in messages.filter(|m| m.offset >= fetch_offset) {
            write_entry(out, m.offset, &m);
        }
        return Ok(());
    }
    let messages: Vec<Message<'_>> = messages.collect();
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else { return Ok(()) };
    let (first_offset, last_offset) = (first.offset, last.offset);
    let mut inner = Vec::with_capacity(data.len() + messages.len() * 34);
    for m in &messages {
        // Inner offsets: absolute in magic 0, relative to the first in magic 1.
        let offset = if magic == MAGIC_V0 { m.offset } else { m.offset - first_offset };
        write_entry(&mut inner, offset, m);
    }
    let mut value = compress(codec, &inner).ok_or_else(|| corrupt(format!("batch at offset {}: codec {codec}", h.base_offset)))?;
    if codec == LZ4 && magic == MAGIC_V0 {
        lz4_break_header(&mut value);
    }
    let timestamp = match magic {
        MAGIC_V0 => NO_TIMESTAMP,
        _ if log_append_time => h.max_timestamp,
        _ => messages.iter().map(|m| m.timestamp).max().unwrap_or(NO_TIMESTAMP),
    };
    let wrapper = Message { offset: last_offset, magic, attributes: attributes | codec as u8, timestamp, key: None, value: Some(&value) };
    write_entry(out, last_offset, &wrapper);
    Ok(())
}

/// Down-converts the whole batches of a read's file ranges (`slices`) for an old fetcher, one
/// batch in memory at a time (Kafka's LazyDownConversionRecords converts lazily for the same
/// reason). The output stays within `budget` bytes (the size of what was read) except that the
/// first batch that converts to anything is always whole, so a consumer makes progress; past
/// the budget, the messages that do not fit are left for the next fetch. A zstd batch first is an error (Kafka's
/// UNSUPPORTED_COMPRESSION_TYPE); after others, it ends the output there, and the consumer meets
/// the error when it fetches from it.
pub fn down_convert_slices(slices: &[FileSlice], magic: i8, fetch_offset: i64, budget: usize) -> Result<Vec<u8>, DownConvertError> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut converted = Vec::new();
    for s in slices {
        let mut pos = 0usize;
        while pos < s.len {
            let mut prefix = [0u8; ENTRY_OVERHEAD];
            s.file.read_exact_at(&mut prefix, s.position + pos as u64).at(&s.path)?;
            let len = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            let len = usize::try_from(len).ok().map(|l| l + ENTRY_OVERHEAD).filter(|&l| l >= HEADER_LEN && l <= s.len - pos);
            let Some(len) = len else {
                return Err(StorageError::corrupt_log(&s.path, format!("batch at position {} runs past the read", s.position + pos as u64)).into());
            };
            batch.resize(len, 0);
            s.file.read_exact_at(&mut batch, s.position + pos as u64).at(&s.path)?;
            pos += len;
            converted.clear();
            match down_convert(&batch, magic, fetch_offset, &mut converted) {
                Ok(()) => {}
                Err(DownConvertError::Zstd) if !out.is_empty() => return Ok(out),
                Err(e) => return Err(e),
            }
            if !out.is_empty() && out.len() + converted.len() > budget {
                // As many of this batch's messages as fit (an uncompressed batch converts to
                // one entry per record), so the next fetch starts where this one stops.
                let fit = entries_within(&converted, budget.saturating_sub(out.len()));
                out.extend_from_slice(&converted[..fit]);
                return Ok(out);
            }
            out.extend_from_slice(&converted);
        }
    }
    Ok(out)
}

/// The length of the longest run of whole entries at the start of `set` (a message set this
/// module wrote) within `room` bytes.
fn entries_within(set: &[u8], room: usize) -> usize {
    let mut end = 0usize;
    while let Some(size) = be_i32(set, end + 8) {
        let next = end + ENTRY_OVERHEAD + size.max(0) as usize;
        if next > room || next > set.len() {
            break;
        }
        end = next;
    }
    end
}

/// Writes one entry (offset, size, message) with its CRC.
fn write_entry(out: &mut Vec<u8>, offset: i64, m: &Message<'_>) {
    out.extend_from_slice(&offset.to_be_bytes());
    let size_at = out.len();
    out.extend_from_slice(&[0; 8]); // size and crc, below
    let crc_from = out.len();
    out.push(m.magic as u8);
    out.push(m.attributes);
    if m.magic == MAGIC_V1 {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
    for b in [m.key, m.value] {
        match b {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    let size = (out.len() - size_at - 4) as i32;
    let crc = crc32fast::hash(&out[crc_from..]);
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out[size_at + 4..size_at + 8].copy_from_slice(&crc.to_be_bytes());
}

/// The position of an LZ4 frame's header checksum byte (after magic, FLG, BD and the content
/// size when FLG says there is one).
fn lz4_checksum_position(frame: &[u8]) -> Option<usize> {
    let flg = *frame.get(4)?;
    let at = if flg & 0x08 != 0 { 14 } else { 6 };
    (at < frame.len()).then_some(at)
}

/// A copy of a magic-0 LZ4 frame with its header checksum made right (old Kafka computed it over
/// the frame magic too), so a standard decoder accepts it. Kafka ignores that checksum for magic 0.
fn lz4_header_fixed(frame: &[u8]) -> Result<Vec<u8>, StorageError> {
    let at = lz4_checksum_position(frame).ok_or_else(|| corrupt("LZ4 frame shorter than its header"))?;
    let mut fixed = frame.to_vec();
    fixed[at] = (twox_hash::XxHash32::oneshot(0, &frame[4..at]) >> 8) as u8;
    Ok(fixed)
}

/// Gives a standard LZ4 frame the header checksum magic-0 readers expect (Kafka's
/// `useBrokenFlagDescriptorChecksum`).
fn lz4_break_header(frame: &mut [u8]) {
    if let Some(at) = lz4_checksum_position(frame) {
        frame[at] = (twox_hash::XxHash32::oneshot(0, &frame[..at]) >> 8) as u8;
    }
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_varint_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
