//! Message formats v0/v1: round trips through v2 with every codec, and bad input. The message
//! sets are built and read here by code that shares nothing with `legacy.rs`.

use std::io::{Read, Write};

use proptest::prelude::*;

use super::{down_convert, down_convert_slices, records_magic, up_convert, DownConvertError};
use crate::log::FileSlice;
use crate::error::StorageError;
use crate::testutil::{build_keyed_batch, decode_all, keyed_batch_from_payload, Rec};

/// One message as a test writes or reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    offset: i64,
    timestamp: Option<i64>,
    log_append_time: bool,
    rec: Rec,
}

fn message(magic: u8, attributes: u8, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for b in [key, value] {
        match b {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
        }
    }
    let mut m = crc32fast::hash(&body).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn entry(offset: i64, message: &[u8]) -> Vec<u8> {
    let mut e = offset.to_be_bytes().to_vec();
    e.extend_from_slice(&(message.len() as i32).to_be_bytes());
    e.extend_from_slice(message);
    e
}

fn xerial_snappy(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
    let block = snap::raw::Encoder::new().compress_vec(data).unwrap();
    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
    out.extend_from_slice(&block);
    out
}

fn lz4_frame(data: &[u8], broken_checksum: bool) -> Vec<u8> {
    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
    e.write_all(data).unwrap();
    let mut f = e.finish().unwrap();
    if broken_checksum {
        assert_eq!(f[4] & 0x08, 0, "no content size in the header");
        f[6] = (twox_hash::XxHash32::oneshot(0, &f[..6]) >> 8) as u8;
    }
    f
}

fn compress(codec: u8, magic: u8, data: &[u8]) -> Vec<u8> {
    match codec {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        2 => xerial_snappy(data),
        3 => lz4_frame(data, magic == 0),
        c => panic!("codec {c}"),
    }
}

fn decompress(codec: u8, magic: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match codec {
        1 => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut v).unwrap();
        }
        2 => {
            assert_eq!(&data[..8], &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0]);
            let mut p = 16;
            while p < data.len() {
                let l = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
                v.extend(snap::raw::Decoder::new().decompress_vec(&data[p + 4..p + 4 + l]).unwrap());
                p += 4 + l;
            }
        }
        3 => {
            let mut f = data.to_vec();
            let expected = if magic == 0 { &data[..6] } else { &data[4..6] };
            assert_eq!(f[6], (twox_hash::XxHash32::oneshot(0, expected) >> 8) as u8, "magic {magic} LZ4 header checksum");
            f[6] = (twox_hash::XxHash32::oneshot(0, &data[4..6]) >> 8) as u8;
            lz4_flex::frame::FrameDecoder::new(&f[..]).read_to_end(&mut v).unwrap();
        }
        c => panic!("codec {c}"),
    }
    v
}

/// A message set as an old producer writes it: uncompressed, one entry per message (offsets 0..);
/// compressed, one wrapper (inner offsets 0.., the wrapper's the last inner one).
fn message_set(magic: u8, codec: u8, msgs: &[(i64, Rec)]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (i, (ts, r)) in msgs.iter().enumerate() {
        inner.extend(entry(i as i64, &message(magic, 0, *ts, r.key.as_deref(), r.value.as_deref())));
    }
    if codec == 0 {
        return inner;
    }
    let max_ts = msgs.iter().map(|m| m.0).max().unwrap_or(-1);
    entry(msgs.len() as i64 - 1, &message(magic, codec, max_ts, None, Some(&compress(codec, magic, &inner))))
}

/// Reads a message set, descending into wrappers; offsets made absolute as old consumers do.
fn read_set(buf: &[u8], codec_seen: &mut Vec<u8>) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < buf.len() {
        let offset = i64::from_be_bytes(buf[p..p + 8].try_into().unwrap());
        let size = i32::from_be_bytes(buf[p + 8..p + 12].try_into().unwrap()) as usize;
        let m = &buf[p + 12..p + 12 + size];
        assert_eq!(crc32fast::hash(&m[4..]), u32::from_be_bytes(m[..4].try_into().unwrap()), "CRC-32");
        let (magic, attributes) = (m[4], m[5]);
        let mut q = 6;
        let timestamp = (magic == 1).then(|| {
            q += 8;
            i64::from_be_bytes(m[6..14].try_into().unwrap())
        });
        let mut field = || {
            let l = i32::from_be_bytes(m[q..q + 4].try_into().unwrap());
            q += 4;
            (l >= 0).then(|| {
                q += l as usize;
                m[q - l as usize..q].to_vec()
            })
        };
        let key = field();
        let value = field();
        assert_eq!(q, m.len());
        let codec = attributes & 7;
        if codec == 0 {
            out.push(Msg { offset, timestamp, log_append_time: attributes & 8 != 0, rec: Rec { key, value } });
        } else {
            codec_seen.push(codec);
            let inner = read_set(&decompress(codec, magic, &value.unwrap()), &mut Vec::new());
            let last = inner.last().unwrap().offset;
            for mut i in inner {
                if magic == 1 {
                    i.offset += offset - last;
                }
                out.push(i);
            }
        }
        p += 12 + size;
    }
    out
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)))
        .prop_map(|(key, value)| Rec { key, value })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Produced in magic 0/1 with each codec, stored as v2, fetched back in the same format: the
    /// records, timestamps and codec survive, and offsets are the log's.
    #[test]
    fn round_trip(magic in 0u8..2, codec in 0u8..4, base_ts in 0i64..1 << 41, msgs in proptest::collection::vec((0i64..5000, arb_rec()), 1..20)) {
        let msgs: Vec<(i64, Rec)> = msgs.into_iter().map(|(d, r)| (base_ts + d, r)).collect();
        let set = message_set(magic, codec, &msgs);
        prop_assert_eq!(records_magic(&set), Some(magic as i8));
        let mut v2 = up_convert(&set).unwrap();
        prop_assert_eq!(records_magic(&v2), Some(2));
        let (decoded, shapes) = decode_all(&v2);
        prop_assert_eq!(shapes, vec![(0, msgs.len() as i32 - 1, msgs.len() as i32, i16::from(codec))]);
        let recs: Vec<Rec> = decoded.iter().map(|(_, r)| r.clone()).collect();
        prop_assert_eq!(&recs, &msgs.iter().map(|m| m.1.clone()).collect::<Vec<_>>());
        let base = i64::from_be_bytes(v2[27..35].try_into().unwrap());
        let max = i64::from_be_bytes(v2[35..43].try_into().unwrap());
        if magic == 0 {
            prop_assert_eq!((base, max), (-1, -1));
        } else {
            prop_assert_eq!((base, max), (msgs[0].0, msgs.iter().map(|m| m.0).max().unwrap()));
        }
        // The log assigns offset 1000 to the batch (outside the CRC).
        v2[..8].copy_from_slice(&1000i64.to_be_bytes());
        for to in 0u8..2 {
            let mut out = Vec::new();
            down_convert(&v2, to as i8, 1000, &mut out).unwrap();
            prop_assert_eq!(records_magic(&out), Some(to as i8));
            let mut codecs = Vec::new();
            let back = read_set(&out, &mut codecs);
            prop_assert_eq!(codecs, if codec == 0 { vec![] } else { vec![codec] });
            let expected: Vec<Msg> = msgs.iter().enumerate().map(|(i, (ts, r))| Msg {
                offset: 1000 + i as i64,
                timestamp: (to == 1).then_some(if magic == 0 { -1 } else { *ts }),
                log_append_time: false,
                rec: r.clone(),
            }).collect();
            prop_assert_eq!(back, expected);
        }
    }

    /// Whatever the bytes, up-conversion answers an error or a valid v2 batch, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v2) = up_convert(&bytes) {
            decode_all(&v2);
        }
    }

    /// A valid message set with one byte changed is refused (CRC, framing) or, where the byte
    /// is the producer's offset, which nothing checks, converted unchanged.
    #[test]
    fn flipped_byte_is_refused(codec in 0u8..4, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let msgs: Vec<(i64, Rec)> = (0..3).map(|i| (i, Rec { key: Some(vec![i as u8]), value: Some(vec![7; 10]) })).collect();
        let mut set = message_set(1, codec, &msgs);
        // Each outer entry's offset (bytes 0..8 of its 12-byte prefix), which nothing checks.
        let mut offsets = Vec::new();
        let mut p = 0;
        while p < set.len() {
            offsets.push(p..p + 8);
            p += 12 + i32::from_be_bytes(set[p + 8..p + 12].try_into().unwrap()) as usize;
        }
        let i = at.index(set.len());
        set[i] ^= 1 << bit;
        let in_offset = offsets.iter().any(|r| r.contains(&i));
        match up_convert(&set) {
            Ok(_) => prop_assert!(in_offset, "a corrupted byte at {} was accepted", i),
            Err(e) => prop_assert!(matches!(e, StorageError::CorruptMessage(_) | StorageError::InvalidRecord(_)), "{e:?}"),
        }
    }
}

#[test]
fn uncompressed_down_conversion_starts_at_the_fetch_offset() {
    let recs: Vec<Rec> = (0..5).map(|i| Rec { key: None, value: Some(vec![i]) }).collect();
    let mut v2 = build_keyed_batch(50, &recs);
    v2[..8].copy_from_slice(&10i64.to_be_bytes());
    let mut out = Vec::new();
    down_convert(&v2, 1, 12, &mut out).unwrap();
    let back = read_set(&out, &mut Vec::new());
    assert_eq!(back.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![12, 13, 14]);
    assert_eq!(back.iter().map(|m| m.timestamp).collect::<Vec<_>>(), vec![Some(52), Some(53), Some(54)]);
}

#[test]
fn log_append_time_batches_carry_the_append_time() {
    let recs: Vec<Rec> = (0..2).map(|i| Rec { key: None, value: Some(vec![i]) }).collect();
    let mut v2 = build_keyed_batch(50, &recs);
    // LogAppendTime attribute and max timestamp 777, as the log stamps them.
    v2[22] |= 0x08;
    v2[35..43].copy_from_slice(&777i64.to_be_bytes());
    let crc = crc32c::crc32c(&v2[21..]);
    v2[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut out = Vec::new();
    down_convert(&v2, 1, 0, &mut out).unwrap();
    let back = read_set(&out, &mut Vec::new());
    assert!(back.iter().all(|m| m.timestamp == Some(777) && m.log_append_time));
}

#[test]
fn zstd_and_control_batches() {
    let zstd = keyed_batch_from_payload(0, 1, &[0; 8], 4, (-1, -1, -1));
    assert!(matches!(down_convert(&zstd, 1, 0, &mut Vec::new()), Err(DownConvertError::Zstd)));
    let mut control = build_keyed_batch(0, &[Rec { key: Some(vec![0, 0, 0, 0]), value: Some(vec![0; 6]) }]);
    control[22] |= 0x20;
    let crc = crc32c::crc32c(&control[21..]);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut out = Vec::new();
    down_convert(&control, 0, 0, &mut out).unwrap();
    assert!(out.is_empty());
}

fn refused(set: &[u8]) -> String {
    match up_convert(set) {
        Err(StorageError::CorruptMessage(m)) => format!("corrupt: {m}"),
        Err(StorageError::InvalidRecord(m)) => format!("invalid: {m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn bad_message_sets_are_refused() {
    let one = message_set(1, 0, &[(5, Rec { key: None, value: Some(b"v".to_vec()) })]);
    // Truncated anywhere.
    for cut in 1..one.len() {
        assert!(refused(&one[..cut]).starts_with("corrupt"), "cut at {cut}");
    }
    // A size claiming far more than the request holds: refused without allocating it.
    let mut huge = one.clone();
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(refused(&huge).starts_with("corrupt"));
    let mut negative = one.clone();
    negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(refused(&negative).starts_with("corrupt"));
    // A value length past the message.
    let mut long_value = message(1, 0, 5, None, Some(b"v"));
    long_value[18..22].copy_from_slice(&1000i32.to_be_bytes());
    let crc = crc32fast::hash(&long_value[4..]);
    long_value[..4].copy_from_slice(&crc.to_be_bytes());
    assert!(refused(&entry(0, &long_value)).starts_with("corrupt"));
    // Bad CRC.
    let mut bad_crc = one.clone();
    bad_crc[12] ^= 1;
    assert!(refused(&bad_crc).contains("crc"));
    // Magic 2 message, mixed magic, empty.
    let mut mixed = message_set(0, 0, &[(0, Rec { key: None, value: None })]);
    mixed.extend(one.clone());
    assert!(refused(&mixed).starts_with("invalid"));
    assert!(refused(&[]).starts_with("invalid"));
}

#[test]
fn wrapper_abuse_is_refused() {
    let inner = message_set(1, 1, &[(1, Rec { key: None, value: Some(b"x".to_vec()) })]);
    // A wrapper inside a wrapper.
    let nested = entry(0, &message(1, 1, 1, None, Some(&compress(1, 1, &inner))));
    assert!(refused(&nested).starts_with("invalid"));
    // Two wrappers in one request.
    let mut two = inner.clone();
    two.extend(inner.clone());
    assert!(refused(&two).starts_with("invalid"));
    // A wrapper without a value, one with garbage, one whose inner set is empty.
    assert!(refused(&entry(0, &message(1, 2, 1, None, None))).starts_with("invalid"));
    assert!(refused(&entry(0, &message(1, 1, 1, None, Some(b"not gzip")))).starts_with("corrupt"));
    assert!(refused(&entry(0, &message(1, 1, 1, None, Some(&compress(1, 1, b""))))).starts_with("invalid"));
    // zstd has no legacy form; an unknown codec is corrupt or invalid, never a panic.
    assert!(refused(&entry(0, &message(1, 4, 1, None, Some(b"z")))).starts_with("invalid"));
    refused(&entry(0, &message(1, 7, 1, None, Some(b"z"))));
    // A v1 wrapper whose offset is below its last inner offset (and not 0).
    let inner3 = message_set(1, 0, &[(1, Rec { key: None, value: None }), (2, Rec { key: None, value: None }), (3, Rec { key: None, value: None })]);
    let low_wrapper = entry(1, &message(1, 1, 1, None, Some(&compress(1, 1, &inner3))));
    assert!(refused(&low_wrapper).contains("wrapper offset"));
    assert!(up_convert(&entry(0, &message(1, 1, 1, None, Some(&compress(1, 1, &inner3))))).is_ok(), "wrapper offset 0 is accepted");
    // Inner magic differs from the wrapper's.
    let inner0 = message_set(0, 0, &[(1, Rec { key: None, value: Some(b"x".to_vec()) })]);
    assert!(refused(&entry(0, &message(1, 1, 1, None, Some(&compress(1, 1, &inner0))))).starts_with("invalid"));
}

#[test]
fn gzip_bomb_is_capped() {
    // 100 MiB of zeros as one value: more than the decompression cap.
    let big = vec![0u8; 100 << 20];
    let inner = entry(0, &message(1, 0, 1, None, Some(&big)));
    let set = entry(0, &message(1, 1, 1, None, Some(&compress(1, 1, &inner))));
    assert!(refused(&set).starts_with("corrupt"));
}

/// Batches 0-3 of 10 uncompressed records each at offsets 0, 10, 20, 30, the third zstd when
/// asked, in a file read as one slice.
fn slice_of_batches(zstd_third: bool) -> (tempfile::NamedTempFile, FileSlice, Vec<usize>) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut sizes = Vec::new();
    for i in 0..4i64 {
        let recs: Vec<Rec> = (0..10).map(|j| Rec { key: Some(vec![j]), value: Some(vec![j; 3]) }).collect();
        let mut b = if zstd_third && i == 2 { keyed_batch_from_payload(0, 10, &[0; 8], 4, (-1, -1, -1)) } else { build_keyed_batch(0, &recs) };
        b[..8].copy_from_slice(&(i * 10).to_be_bytes());
        sizes.push(b.len());
        file.write_all(&b).unwrap();
    }
    let len = sizes.iter().sum();
    let slice = FileSlice { file: std::sync::Arc::new(file.reopen().unwrap()), path: file.path().to_path_buf(), position: 0, len };
    (file, slice, sizes)
}

fn offsets(set: &[u8]) -> Vec<i64> {
    read_set(set, &mut Vec::new()).iter().map(|m| m.offset).collect()
}

#[test]
fn slices_convert_within_the_budget() {
    let (_f, slice, sizes) = slice_of_batches(false);
    let all = down_convert_slices(std::slice::from_ref(&slice), 1, 0, usize::MAX).unwrap();
    assert_eq!(offsets(&all), (0..40).collect::<Vec<_>>());
    // Format v1 is larger than v2 here: the v2 size read holds fewer converted messages, whole.
    let within = down_convert_slices(std::slice::from_ref(&slice), 1, 0, slice.len).unwrap();
    assert!(within.len() <= slice.len && within.len() < all.len());
    let got = offsets(&within);
    assert_eq!(got, (0..got.len() as i64).collect::<Vec<_>>());
    assert!(got.len() > 10, "more than the first batch fits");
    // A budget smaller than the first batch's conversion still gets that batch whole.
    let first = down_convert_slices(std::slice::from_ref(&slice), 0, 5, 1).unwrap();
    assert_eq!(offsets(&first), (5..10).collect::<Vec<_>>());
    assert!(sizes[0] > 1);
}

#[test]
fn a_zstd_batch_ends_the_conversion_or_is_the_error() {
    let (_f, slice, sizes) = slice_of_batches(true);
    let got = down_convert_slices(std::slice::from_ref(&slice), 1, 0, usize::MAX).unwrap();
    assert_eq!(offsets(&got), (0..20).collect::<Vec<_>>());
    let from_zstd = FileSlice { position: (sizes[0] + sizes[1]) as u64, len: sizes[2] + sizes[3], ..slice.clone() };
    assert!(matches!(down_convert_slices(&[from_zstd], 1, 20, usize::MAX), Err(DownConvertError::Zstd)));
}
