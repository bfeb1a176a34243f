//! Builds valid v2 batches for tests, independently of the parsing code under test.

#[derive(Clone, Debug)]
pub(crate) struct BatchSpec {
    pub base_timestamp: i64,
    /// One record per entry: its timestampDelta.
    pub timestamps: Vec<i64>,
    pub value_len: usize,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Compression codec bits. The "compressed" payload is just the raw records: nothing in the
    /// log decompresses.
    pub compression: i16,
    pub last_offset_delta: Option<i32>,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            base_timestamp: 0,
            timestamps: vec![0],
            value_len: 3,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: 0,
            last_offset_delta: None,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

pub(crate) fn build_batch(spec: &BatchSpec) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, delta) in spec.timestamps.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, *delta);
        put_varint(&mut body, i as i64);
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, spec.value_len as i64);
        body.extend((0..spec.value_len).map(|j| (i + j) as u8));
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let n = spec.timestamps.len() as i32;
    let max_ts = spec.base_timestamp + spec.timestamps.iter().copied().max().unwrap_or(0);
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&spec.compression.to_be_bytes());
    b.extend_from_slice(&spec.last_offset_delta.unwrap_or(n - 1).to_be_bytes());
    b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    assert_eq!(b.len(), 61);
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One record of [`build_keyed_batch`]; None key / value are null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub(crate) fn rec(key: Option<&str>, value: Option<&str>) -> Rec {
    Rec { key: key.map(|k| k.as_bytes().to_vec()), value: value.map(|v| v.as_bytes().to_vec()) }
}

pub(crate) fn encode_records(records: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = vec![0u8];
        put_varint(&mut body, i as i64); // timestampDelta
        put_varint(&mut body, i as i64); // offsetDelta
        match &r.key {
            Some(k) => {
                put_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put_varint(&mut body, -1),
        }
        match &r.value {
            Some(v) => {
                put_varint(&mut body, v.len() as i64);
                body.extend_from_slice(v);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, 0);
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// A keyed batch whose records field is `payload` (already compressed with `compression`), with
/// `count` records and lastOffsetDelta `count - 1`. Record i has timestamp base + i.
pub(crate) fn keyed_batch_from_payload(base_timestamp: i64, count: usize, payload: &[u8], compression: i16, producer: (i64, i16, i32)) -> Vec<u8> {
    let n = count as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&compression.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&(base_timestamp + i64::from(n) - 1).to_be_bytes());
    b.extend_from_slice(&producer.0.to_be_bytes());
    b.extend_from_slice(&producer.1.to_be_bytes());
    b.extend_from_slice(&producer.2.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A record with headers, for the browser's tests: (key, value, headers); None is null.
pub(crate) type FullRec = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

/// An uncompressed batch at `base_offset` of `records`, headers included.
pub(crate) fn build_batch_with_headers(base_offset: i64, records: &[FullRec]) -> Vec<u8> {
    let bytes = |out: &mut Vec<u8>, b: &Option<Vec<u8>>| match b {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    };
    let mut payload = Vec::new();
    for (i, (key, value, headers)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        put_varint(&mut body, i as i64);
        put_varint(&mut body, i as i64);
        bytes(&mut body, key);
        bytes(&mut body, value);
        put_varint(&mut body, headers.len() as i64);
        for (k, v) in headers {
            bytes(&mut body, &Some(k.as_bytes().to_vec()));
            bytes(&mut body, v);
        }
        put_varint(&mut payload, body.len() as i64);
        payload.extend_from_slice(&body);
    }
    let mut b = keyed_batch_from_payload(1000, records.len(), &payload, 0, (-1, -1, -1));
    b[..8].copy_from_slice(&base_offset.to_be_bytes());
    b
}

pub(crate) fn build_keyed_batch(base_timestamp: i64, records: &[Rec]) -> Vec<u8> {
    keyed_batch_from_payload(base_timestamp, records.len(), &encode_records(records), 0, (-1, -1, -1))
}

fn get_varint(buf: &[u8], pos: &mut usize) -> i64 {
    let mut raw = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (raw >> 1) as i64 ^ -((raw & 1) as i64);
        }
        shift += 7;
    }
}

/// One decoded record of a read: (offset, record).
pub(crate) type Decoded = (i64, Rec);
/// (baseOffset, lastOffsetDelta, recordsCount, compression) of a batch.
pub(crate) type BatchShape = (i64, i32, i32, i16);

/// Decodes every record of the whole batches in `data` (test-side decoder, independent of the
/// code under test; gzip / snappy (xerial or raw) / lz4 / zstd decompressed with the crates directly).
/// Also returns each batch's (baseOffset, lastOffsetDelta, recordsCount, compression).
pub(crate) fn decode_all(data: &[u8]) -> (Vec<Decoded>, Vec<BatchShape>) {
    use std::io::Read;
    let mut out = Vec::new();
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let base = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
        let len = 12 + i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let batch = &data[pos..pos + len];
        assert_eq!(crc32c::crc32c(&batch[21..]), u32::from_be_bytes(batch[17..21].try_into().unwrap()), "bad CRC");
        let compression = i16::from_be_bytes(batch[21..23].try_into().unwrap()) & 7;
        let lod = i32::from_be_bytes(batch[23..27].try_into().unwrap());
        let count = i32::from_be_bytes(batch[57..61].try_into().unwrap());
        batches.push((base, lod, count, compression));
        let payload = &batch[61..];
        let records: Vec<u8> = match compression {
            0 => payload.to_vec(),
            1 => {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(payload).read_to_end(&mut v).unwrap();
                v
            }
            2 => {
                if payload.starts_with(&[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0]) {
                    let mut v = Vec::new();
                    let mut p = 16;
                    while p < payload.len() {
                        let l = u32::from_be_bytes(payload[p..p + 4].try_into().unwrap()) as usize;
                        v.extend(snap::raw::Decoder::new().decompress_vec(&payload[p + 4..p + 4 + l]).unwrap());
                        p += 4 + l;
                    }
                    v
                } else {
                    snap::raw::Decoder::new().decompress_vec(payload).unwrap()
                }
            }
            3 => {
                let mut v = Vec::new();
                lz4_flex::frame::FrameDecoder::new(payload).read_to_end(&mut v).unwrap();
                v
            }
            4 => zstd::stream::decode_all(payload).unwrap(),
            c => panic!("codec {c}"),
        };
        let mut p = 0;
        let mut prev = -1;
        for _ in 0..count {
            let l = get_varint(&records, &mut p) as usize;
            let end = p + l;
            p += 1;
            get_varint(&records, &mut p);
            let od = get_varint(&records, &mut p);
            assert!(od > prev && od <= i64::from(lod), "offset delta {od} out of order");
            prev = od;
            let kl = get_varint(&records, &mut p);
            let key = (kl >= 0).then(|| records[p..p + kl as usize].to_vec());
            p += kl.max(0) as usize;
            let vl = get_varint(&records, &mut p);
            let value = (vl >= 0).then(|| records[p..p + vl as usize].to_vec());
            p = end;
            out.push((base + od, Rec { key, value }));
        }
        assert_eq!(p, records.len());
        pos += len;
    }
    (out, batches)
}

/// `batches` (whole v2 batches) as the log must store them when appended at `first_offset` under
/// `leader_epoch`: offsets and epoch set, and with `log_append_time` the LogAppendTime attribute,
/// both timestamps and a new CRC. Written against the format, not with the code under test.
pub(crate) fn as_stored(batches: &[u8], first_offset: i64, leader_epoch: i32, log_append_time: Option<i64>) -> Vec<u8> {
    let mut out = batches.to_vec();
    let (mut pos, mut offset) = (0usize, first_offset);
    while pos < out.len() {
        let len = 12 + i32::from_be_bytes(out[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let b = &mut out[pos..pos + len];
        b[0..8].copy_from_slice(&offset.to_be_bytes());
        b[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        if let Some(t) = log_append_time {
            b[22] |= 0x08;
            b[27..35].copy_from_slice(&t.to_be_bytes());
            b[35..43].copy_from_slice(&t.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        offset += i64::from(i32::from_be_bytes(b[23..27].try_into().unwrap())) + 1;
        pos += len;
    }
    out
}
