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
