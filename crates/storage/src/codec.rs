//! The record codecs of Kafka's batches (compression attribute 1-4): gzip, snappy (xerial-framed
//! as Java clients write it, or raw), LZ4 frames and zstd. Decompression is capped, so a small
//! batch that would inflate past the cap (a decompression bomb) is an error, never an allocation.
//! Also `recompress`: a produce's batches in the codec a topic's `compression.type` names.

use std::io::Read;

use crate::batch::{rebuild_batch, verify_crc, BatchHeader, HEADER_LEN};
use crate::error::StorageError;

/// Default cap on the decompressed size of one batch (compaction, record checks, message-format
/// conversion, recompression, the message browser).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

pub(crate) const GZIP: i16 = 1;
pub(crate) const SNAPPY: i16 = 2;
pub(crate) const LZ4: i16 = 3;
pub(crate) const ZSTD: i16 = 4;
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

/// Reads at most `cap` bytes from `r`; more is an error (decompression bomb).
fn read_capped(r: impl Read, cap: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    r.take(cap as u64 + 1).read_to_end(&mut out).map_err(|_| "decompression failed")?;
    if out.len() > cap {
        return Err("decompressed size exceeds the cap");
    }
    Ok(out)
}

/// Decompresses a records field, never producing (or allocating for) more than `cap` bytes.
pub(crate) fn decompress(codec: i16, data: &[u8], cap: usize) -> Result<Vec<u8>, &'static str> {
    match codec {
        GZIP => read_capped(flate2::read::GzDecoder::new(data), cap),
        SNAPPY => {
            if data.len() >= XERIAL_HEADER_LEN && data[..8] == XERIAL_MAGIC {
                // Java clients: xerial snappy-java framing, a header then (u32 length, raw block)*.
                let mut out = Vec::new();
                let mut pos = XERIAL_HEADER_LEN;
                while pos < data.len() {
                    let len_bytes = data.get(pos..pos + 4).ok_or("truncated snappy block length")?;
                    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
                    pos += 4;
                    let block = data.get(pos..pos.saturating_add(len)).ok_or("truncated snappy block")?;
                    pos += len;
                    snappy_raw(block, cap - out.len(), &mut out)?;
                }
                Ok(out)
            } else {
                let mut out = Vec::new();
                snappy_raw(data, cap, &mut out)?;
                Ok(out)
            }
        }
        LZ4 => read_capped(lz4_flex::frame::FrameDecoder::new(data), cap),
        ZSTD => read_capped(zstd::stream::read::Decoder::new(data).map_err(|_| "bad zstd frame")?, cap),
        _ => Err("unsupported compression codec"),
    }
}

fn snappy_raw(block: &[u8], room: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let len = snap::raw::decompress_len(block).map_err(|_| "bad snappy block")?;
    if len > room {
        return Err("decompressed size exceeds the cap");
    }
    let start = out.len();
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|_| "bad snappy block")?;
    out.truncate(start + n);
    Ok(())
}

/// Compresses a records field the way Kafka's Java clients do (gzip at level 6; xerial-framed
/// snappy; LZ4 frame with independent 64 KiB blocks, at LZ4's fast level; zstd at level 3, Kafka's
/// default). None when the codec is not supported.
pub(crate) fn compress(codec: i16, data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    match codec {
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).ok()?;
            e.finish().ok()
        }
        SNAPPY => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = encoder.compress_vec(chunk).ok()?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Some(out)
        }
        LZ4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).ok()?;
            e.finish().ok()
        }
        ZSTD => zstd::bulk::compress(data, ZSTD_LEVEL).ok(),
        _ => None,
    }
}

/// Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;

/// The produce payload `batches` (whole v2 batches) with every data batch's records in `codec`
/// (0: uncompressed), as a topic's `compression.type` asks (Kafka's LogValidator recompresses the
/// same way). `None` when every batch already is: the request's own bytes are then appended, with
/// no copy. A rebuilt batch keeps its records, offset deltas, timestamps, producer fields and its
/// other attribute bits, and gets a new CRC, so the old one is checked first: a corrupt batch is
/// refused, never given a valid CRC. Decompression stops at `cap` bytes per batch.
pub fn recompress(batches: &[u8], codec: i16, cap: usize) -> Result<Option<Vec<u8>>, StorageError> {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < batches.len() {
        let h = BatchHeader::parse(batches, pos)?;
        if h.end_position() > batches.len() {
            return Err(StorageError::corrupt("batch shorter than its header says"));
        }
        pos = h.end_position();
        headers.push(h);
    }
    let differs = |h: &BatchHeader| !h.is_control() && h.compression() != codec;
    if !headers.iter().any(differs) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batches.len());
    for h in &headers {
        let batch = &batches[h.position..h.end_position()];
        if !differs(h) {
            out.extend_from_slice(batch);
            continue;
        }
        verify_crc(h, batch)?;
        let payload = &batch[HEADER_LEN..];
        let records = match h.compression() {
            0 => std::borrow::Cow::Borrowed(payload),
            c => std::borrow::Cow::Owned(
                decompress(c, payload, cap).map_err(|why| StorageError::corrupt(format!("batch {}: {why} (compression codec {c})", h.base_offset)))?,
            ),
        };
        let data = match codec {
            0 => records,
            c => std::borrow::Cow::Owned(compress(c, &records).ok_or_else(|| StorageError::corrupt(format!("batch {}: cannot compress with codec {c}", h.base_offset)))?),
        };
        out.extend_from_slice(&rebuild_batch(batch, &data, h.records_count, codec));
    }
    Ok(Some(out))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{decode_all, encode_records, keyed_batch_from_payload, rec};

    fn batch(codec: i16, records: &[crate::testutil::Rec]) -> Vec<u8> {
        let raw = encode_records(records);
        let payload = if codec == 0 { raw } else { compress(codec, &raw).unwrap() };
        keyed_batch_from_payload(1_000, records.len(), &payload, codec, (7, 1, 42))
    }

    #[test]
    fn every_codec_becomes_every_other_and_the_records_stay() {
        let records = [rec(Some("k1"), Some("first")), rec(None, Some("second")), rec(Some("k3"), None)];
        for from in 0..=ZSTD {
            for to in 0..=ZSTD {
                let two = [batch(from, &records), batch(from, &records[..1])].concat();
                let out = recompress(&two, to, 1 << 20).unwrap();
                if from == to {
                    assert!(out.is_none(), "{from} -> {to}: nothing to do, no copy");
                    continue;
                }
                let out = out.unwrap();
                // decode_all checks each CRC, and decompresses with the crates, not with this file.
                let (records_out, shapes_out) = decode_all(&out);
                let (records_in, shapes_in) = decode_all(&two);
                assert_eq!(records_out, records_in, "{from} -> {to}");
                assert_eq!(shapes_out.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>(), shapes_in.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>());
                assert!(shapes_out.iter().all(|s| s.3 == to), "{from} -> {to}: {shapes_out:?}");
                // Timestamps and producer fields (bytes 27..57) are the producer's.
                let first = BatchHeader::parse(&out, 0).unwrap();
                assert_eq!(out[27..57], two[27..57]);
                assert_eq!(first.records_count, 3);
            }
        }
    }

    #[test]
    fn only_the_batches_in_another_codec_are_rebuilt() {
        let records = [rec(Some("k"), Some("v"))];
        let (gzip, plain) = (batch(GZIP, &records), batch(0, &records));
        let out = recompress(&[gzip.clone(), plain.clone()].concat(), GZIP, 1 << 20).unwrap().unwrap();
        assert_eq!(&out[..gzip.len()], &gzip[..], "the batch already in gzip is copied as it came");
        assert_eq!(decode_all(&out).1.iter().map(|s| s.3).collect::<Vec<_>>(), vec![GZIP, GZIP]);
    }

    #[test]
    fn a_corrupt_batch_is_refused_rather_than_given_a_new_crc() {
        let mut b = batch(0, &[rec(Some("k"), Some("value"))]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(recompress(&b, ZSTD, 1 << 20), Err(StorageError::CorruptMessage(_))));
        // A truncated payload and a codec that does not decode are refused too.
        assert!(recompress(&b[..b.len() - 2], ZSTD, 1 << 20).is_err());
        let fake = keyed_batch_from_payload(1_000, 1, b"not zstd at all", ZSTD, (-1, -1, -1));
        assert!(matches!(recompress(&fake, 0, 1 << 20), Err(StorageError::CorruptMessage(_))));
    }

    #[test]
    fn a_batch_inflating_past_the_cap_is_refused() {
        let big = [rec(Some("k"), Some(&"x".repeat(100_000)))];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            assert!(recompress(&batch(codec, &big), 0, 50_000).is_err(), "codec {codec}");
            assert!(recompress(&batch(codec, &big), 0, 200_000).unwrap().is_some(), "codec {codec}");
        }
    }
}
