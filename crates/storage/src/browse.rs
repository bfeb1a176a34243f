//! Records as a person reads them: the web console's message browser turns the batches of a
//! read into records (offset, timestamp, key, value, headers). Off the produce and fetch paths:
//! those never look inside a batch. Decompression is capped and a batch that cannot be read is
//! reported as such, not skipped silently and not a panic: the bytes come from disk.

use crate::batch::{read_varlong, verify_crc, BatchHeader, HEADER_LEN};
use crate::codec::{decompress, DEFAULT_MAX_DECOMPRESSED_BYTES};
use crate::compaction::parse_records;
use crate::StorageError;

/// One record of a data batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowsedRecord {
    pub offset: i64,
    pub timestamp: i64,
    /// Whether the timestamp is the broker's (LogAppendTime) rather than the producer's.
    pub log_append_time: bool,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What one batch of a read holds, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowsedBatch {
    Records(Vec<BrowsedRecord>),
    /// A transaction marker (commit or abort); it holds no user records.
    Control { offset: i64 },
    /// A batch whose records cannot be shown (a codec Strom does not read, a bad CRC, records
    /// that do not parse): its offsets and why.
    Unreadable { base_offset: i64, last_offset: i64, why: String },
}

/// The batches in `bytes` (whole batches, as a read returns them; a cut-off batch at the end is
/// left out). Records below `from_offset` are dropped (a read starts at the batch holding it).
pub fn browse_batches(bytes: &[u8], from_offset: i64) -> Vec<BrowsedBatch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        let h = match BatchHeader::parse(bytes, pos) {
            Ok(h) => h,
            Err(e) => {
                out.push(BrowsedBatch::Unreadable { base_offset: -1, last_offset: -1, why: e.to_string() });
                break;
            }
        };
        let Some(batch) = bytes.get(pos..pos + h.len) else { break };
        pos += h.len;
        if h.last_offset() < from_offset {
            continue;
        }
        if h.is_control() {
            out.push(BrowsedBatch::Control { offset: h.base_offset });
            continue;
        }
        match records_of(&h, batch) {
            Ok(records) => out.push(BrowsedBatch::Records(records.into_iter().filter(|r| r.offset >= from_offset).collect())),
            Err(why) => out.push(BrowsedBatch::Unreadable { base_offset: h.base_offset, last_offset: h.last_offset(), why }),
        }
    }
    out
}

fn records_of(h: &BatchHeader, batch: &[u8]) -> Result<Vec<BrowsedRecord>, String> {
    verify_crc(h, batch).map_err(|e| e.to_string())?;
    let payload = &batch[HEADER_LEN..];
    let data = match h.compression() {
        0 => std::borrow::Cow::Borrowed(payload),
        codec => std::borrow::Cow::Owned(decompress(codec, payload, DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(|why| format!("{why} (compression codec {codec})"))?),
    };
    let records = parse_records(&data, h).map_err(|e| e.to_string())?;
    let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| data[a..b].to_vec());
    records
        .iter()
        .map(|r| {
            Ok(BrowsedRecord {
                offset: h.base_offset + i64::from(r.offset_delta),
                timestamp: if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp.saturating_add(r.timestamp_delta) },
                log_append_time: h.is_log_append_time(),
                key: slice(r.key),
                value: slice(r.value),
                headers: parse_headers(&data[r.headers.0..r.headers.1]).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// A record's headers: a varint count, then per header a varint-length UTF-8 key and a
/// varint-length value (-1: null).
fn parse_headers(buf: &[u8]) -> Result<Vec<(String, Option<Vec<u8>>)>, StorageError> {
    let mut pos = 0;
    let count = read_varlong(buf, &mut pos, 5)?;
    if count < 0 || count as usize > buf.len() {
        return Err(StorageError::corrupt("bad header count"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let take = |pos: &mut usize, len: i64| -> Result<&[u8], StorageError> {
        let end = pos.checked_add(len as usize).filter(|&e| e <= buf.len()).ok_or_else(|| StorageError::corrupt("header runs past its record"))?;
        let s = &buf[*pos..end];
        *pos = end;
        Ok(s)
    };
    for _ in 0..count {
        let key_len = read_varlong(buf, &mut pos, 5)?;
        if key_len < 0 {
            return Err(StorageError::corrupt("header key is null"));
        }
        let key = String::from_utf8_lossy(take(&mut pos, key_len)?).into_owned();
        let value_len = read_varlong(buf, &mut pos, 5)?;
        let value = if value_len < 0 { None } else { Some(take(&mut pos, value_len)?.to_vec()) };
        out.push((key, value));
    }
    if pos != buf.len() {
        return Err(StorageError::corrupt("bytes after the record's headers"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::build_batch_with_headers;

    #[test]
    fn records_keys_values_and_headers_come_back() {
        let records = vec![
            (Some(b"k1".to_vec()), Some(b"<script>v1</script>".to_vec()), vec![("h".to_string(), Some(b"x".to_vec())), ("n".to_string(), None)]),
            (None, None, vec![]),
        ];
        let batch = build_batch_with_headers(40, &records);
        let browsed = browse_batches(&batch, 0);
        let [BrowsedBatch::Records(rs)] = browsed.as_slice() else { panic!("{browsed:?}") };
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].offset, 40);
        assert_eq!(rs[1].offset, 41);
        for (i, (r, (k, v, h))) in rs.iter().zip(records).enumerate() {
            assert_eq!((r.key.clone(), r.value.clone(), r.headers.clone()), (k, v, h));
            assert_eq!(r.timestamp, 1000 + i as i64);
        }
        // Records before the requested offset are left out.
        let browsed = browse_batches(&batch, 41);
        let [BrowsedBatch::Records(rs)] = browsed.as_slice() else { panic!("{browsed:?}") };
        assert_eq!(rs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![41]);
    }

    #[test]
    fn a_damaged_batch_is_reported_not_skipped() {
        let mut batch = build_batch_with_headers(0, &[(None, Some(b"v".to_vec()), vec![])]);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        let browsed = browse_batches(&batch, 0);
        assert!(matches!(browsed.as_slice(), [BrowsedBatch::Unreadable { base_offset: 0, .. }]), "{browsed:?}");
        // A cut-off batch at the end of a read is left out.
        assert!(browse_batches(&batch[..batch.len() - 3], 0).is_empty());
    }
}
