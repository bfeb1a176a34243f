//! The records of `__transaction_state`, in Apache Kafka's own formats (`TransactionLogKey.json`,
//! `TransactionLogValue.json`), so that Kafka's tools read Strom's log and a Kafka log replays here.
//!
//! ```text
//! key   v0                    version:i16 (0) transactional_id:str
//! value v0 (non-flexible)     version:i16 producer_id:i64 producer_epoch:i16 timeout_ms:i32 status:i8
//!                             partitions:[topic:str partition_ids:[i32]] (null when Empty)
//!                             last_update_ms:i64 start_ms:i64
//! value v1 (flexible)         the same fields with compact strings/arrays (uvarint length + 1, 0 is null), a tagged
//!                             field section after every struct, and the tags
//!                             0 PreviousProducerId:i64 (default -1), 1 NextProducerId:i64 (default -1),
//!                             2 ClientTransactionVersion:i16 (default 0)
//! ```
//!
//! A tagged field is written only when it differs from its default (as Kafka's generated code does); unknown tags
//! are skipped when reading, so a newer Kafka's extra tags do not stop a replay. A key with no value is a
//! tombstone: the id was expired. Decoding checks every length against the remaining input: garbage yields a
//! [`TxnRecordError`], never a panic or a huge allocation.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TransactionVersion, TxnState};
use super::types::TopicPartition;

const KEY_VERSION: i16 = 0;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    #[error("record truncated or a length is out of range")]
    Truncated,
    #[error("unsupported key version {0}")]
    UnsupportedKeyVersion(i16),
    #[error("unsupported value version {0}")]
    UnsupportedValueVersion(i16),
    #[error("unknown transaction status {0}")]
    UnknownState(i8),
    #[error("string is not UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// `TransactionLogKey`: one record per transactional id (compaction keeps the latest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnLogKey {
    pub transactional_id: String,
}

/// `TransactionLogValue`: a transactional id's metadata after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 only (tag 0): the producer id before the last rotation.
    pub previous_producer_id: i64,
    /// v1 only (tag 1): the producer id a TV2 EndTxn rotated to, set while Prepare* (the epoch ran out).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Written as null when Empty, and ignored when read for an Empty state (as Kafka).
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    /// -1 when no transaction started.
    pub start_ms: i64,
    /// v1 only (tag 2).
    pub client_transaction_version: TransactionVersion,
}

impl TxnLogKey {
    pub fn new(transactional_id: &str) -> Self {
        TxnLogKey { transactional_id: transactional_id.to_string() }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(4 + self.transactional_id.len());
        b.put_i16(KEY_VERSION);
        put_str(&mut b, &self.transactional_id);
        b.freeze()
    }

    pub fn decode(key: &[u8]) -> Result<Self, TxnRecordError> {
        let mut r = Reader { buf: key };
        let version = r.i16()?;
        if version != KEY_VERSION {
            return Err(TxnRecordError::UnsupportedKeyVersion(version));
        }
        let transactional_id = r.string()?;
        r.finish()?;
        Ok(TxnLogKey { transactional_id })
    }
}

impl TxnLogValue {
    /// Encode as `version` (0 or 1; anything above 1 writes 1). Version 0 has no place for the tagged fields.
    pub fn encode(&self, version: i16) -> Bytes {
        let flexible = version >= 1;
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(if flexible { 1 } else { 0 });
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.state.id());
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &self.partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let null = self.state == TxnState::Empty;
        if flexible {
            if null {
                put_uvarint(&mut b, 0);
            } else {
                put_uvarint(&mut b, by_topic.len() as u32 + 1);
                for (topic, ids) in &by_topic {
                    put_compact_str(&mut b, topic);
                    put_uvarint(&mut b, ids.len() as u32 + 1);
                    ids.iter().for_each(|p| b.put_i32(*p));
                    put_uvarint(&mut b, 0); // the entry's tagged fields
                }
            }
        } else if null {
            b.put_i32(-1);
        } else {
            b.put_i32(by_topic.len() as i32);
            for (topic, ids) in &by_topic {
                put_str(&mut b, topic);
                b.put_i32(ids.len() as i32);
                ids.iter().for_each(|p| b.put_i32(*p));
            }
        }
        b.put_i64(self.last_update_ms);
        b.put_i64(self.start_ms);
        if flexible {
            let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
            if self.previous_producer_id != -1 {
                tags.push((TAG_PREVIOUS_PRODUCER_ID, self.previous_producer_id.to_be_bytes().to_vec()));
            }
            if self.next_producer_id != -1 {
                tags.push((TAG_NEXT_PRODUCER_ID, self.next_producer_id.to_be_bytes().to_vec()));
            }
            if self.client_transaction_version != TransactionVersion::Tv0 {
                tags.push((TAG_CLIENT_TRANSACTION_VERSION, self.client_transaction_version.feature_level().to_be_bytes().to_vec()));
            }
            put_uvarint(&mut b, tags.len() as u32);
            for (tag, data) in tags {
                put_uvarint(&mut b, tag);
                put_uvarint(&mut b, data.len() as u32);
                b.put_slice(&data);
            }
        }
        b.freeze()
    }

    pub fn decode(value: &[u8]) -> Result<Self, TxnRecordError> {
        let mut r = Reader { buf: value };
        let version = r.i16()?;
        if !(0..=1).contains(&version) {
            return Err(TxnRecordError::UnsupportedValueVersion(version));
        }
        let flexible = version >= 1;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let status = r.i8()?;
        let state = TxnState::from_id(status).ok_or(TxnRecordError::UnknownState(status))?;
        let mut partitions = BTreeSet::new();
        // Each topic entry takes at least 6 bytes (v0) or 3 (v1): a larger count is garbage.
        let topics = if flexible { r.compact_len()? } else { r.len_i32()? };
        if let Some(n) = topics {
            r.bound(n, if flexible { 3 } else { 6 })?;
            for _ in 0..n {
                let topic = if flexible { r.compact_string()? } else { r.string()? };
                let ids = if flexible { r.compact_len()? } else { r.len_i32()? }.unwrap_or(0);
                r.bound(ids, 4)?;
                for _ in 0..ids {
                    partitions.insert(TopicPartition { topic: topic.clone(), partition: r.i32()? });
                }
                if flexible {
                    r.skip_tagged_fields(|_, _| Ok(()))?;
                }
            }
        }
        if state == TxnState::Empty {
            partitions.clear();
        }
        let last_update_ms = r.i64()?;
        let start_ms = r.i64()?;
        let mut v = TxnLogValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
            client_transaction_version: TransactionVersion::Tv0,
        };
        if flexible {
            r.skip_tagged_fields(|tag, data| {
                let mut d = Reader { buf: data };
                match tag {
                    TAG_PREVIOUS_PRODUCER_ID => v.previous_producer_id = d.i64()?,
                    TAG_NEXT_PRODUCER_ID => v.next_producer_id = d.i64()?,
                    TAG_CLIENT_TRANSACTION_VERSION => v.client_transaction_version = TransactionVersion::from_feature_level(d.i16()?),
                    _ => {}
                }
                Ok(())
            })?;
        }
        r.finish()?;
        Ok(v)
    }
}

/// Decode one record read back from `__transaction_state` (`value` is `None` for a tombstone).
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<(TxnLogKey, Option<TxnLogValue>), TxnRecordError> {
    let key = TxnLogKey::decode(key)?;
    let value = value.map(TxnLogValue::decode).transpose()?;
    Ok((key, value))
}

/// Strings the broker accepted came from i16-length wire strings, so they fit; a longer one (impossible in practice)
/// is cut at a character boundary rather than written wrong.
fn fit(s: &str) -> &str {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_str(b: &mut BytesMut, s: &str) {
    let s = fit(s);
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    let s = fit(s);
    put_uvarint(b, s.len() as u32 + 1);
    b.put_slice(s.as_bytes());
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TxnRecordError> {
        if n > self.buf.len() {
            return Err(TxnRecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TxnRecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i8(&mut self) -> Result<i8, TxnRecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, TxnRecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, TxnRecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, TxnRecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u32, TxnRecordError> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            v |= u32::from(byte & 0x7f).checked_shl(shift).ok_or(TxnRecordError::Truncated)?;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TxnRecordError::Truncated)
    }

    fn utf8(raw: &[u8]) -> Result<String, TxnRecordError> {
        String::from_utf8(raw.to_vec()).map_err(|_| TxnRecordError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, TxnRecordError> {
        let len = usize::try_from(self.i16()?).map_err(|_| TxnRecordError::Truncated)?;
        Self::utf8(self.take(len)?)
    }

    fn compact_string(&mut self) -> Result<String, TxnRecordError> {
        let len = self.uvarint()?.checked_sub(1).ok_or(TxnRecordError::Truncated)?;
        Self::utf8(self.take(len as usize)?)
    }

    /// An i32 array length; `None` is null (-1).
    fn len_i32(&mut self) -> Result<Option<usize>, TxnRecordError> {
        match self.i32()? {
            -1 => Ok(None),
            n => usize::try_from(n).map(Some).map_err(|_| TxnRecordError::Truncated),
        }
    }

    /// A compact array length; `None` is null (0).
    fn compact_len(&mut self) -> Result<Option<usize>, TxnRecordError> {
        Ok(self.uvarint()?.checked_sub(1).map(|n| n as usize))
    }

    /// `n` items of at least `min` bytes each must fit in what is left.
    fn bound(&self, n: usize, min: usize) -> Result<(), TxnRecordError> {
        if n > self.buf.len() / min {
            return Err(TxnRecordError::Truncated);
        }
        Ok(())
    }

    fn skip_tagged_fields(&mut self, mut each: impl FnMut(u32, &[u8]) -> Result<(), TxnRecordError>) -> Result<(), TxnRecordError> {
        let count = self.uvarint()? as usize;
        self.bound(count, 2)?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            each(tag, self.take(size)?)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), TxnRecordError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(TxnRecordError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const TIMEOUT: i32 = 60_000;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    /// A value with every field set (used by the coordinator's tests too).
    pub(crate) fn value(state: TxnState, parts: &[TopicPartition]) -> TxnLogValue {
        TxnLogValue {
            producer_id: 7,
            previous_producer_id: 6,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: TIMEOUT,
            state,
            partitions: parts.iter().cloned().collect(),
            last_update_ms: 1234,
            start_ms: 1000,
            client_transaction_version: TransactionVersion::Tv2,
        }
    }

    #[test]
    fn key_is_version_0_and_the_id() {
        let k = TxnLogKey::new("tx");
        assert_eq!(&k.encode()[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(TxnLogKey::decode(&k.encode()), Ok(k));
        assert_eq!(TxnLogKey::decode(&[0, 1, 0, 0]), Err(TxnRecordError::UnsupportedKeyVersion(1)));
    }

    #[test]
    fn value_v0_is_kafkas_layout() {
        let v = value(TxnState::Ongoing, &[tp("a", 1), tp("a", 0)]);
        let mut want = vec![0, 0]; // version 0
        want.extend(7i64.to_be_bytes());
        want.extend(3i16.to_be_bytes());
        want.extend(TIMEOUT.to_be_bytes());
        want.push(1); // Ongoing
        want.extend(1i32.to_be_bytes()); // one topic
        want.extend([0, 1, b'a']);
        want.extend(2i32.to_be_bytes());
        want.extend(0i32.to_be_bytes());
        want.extend(1i32.to_be_bytes());
        want.extend(1234i64.to_be_bytes());
        want.extend(1000i64.to_be_bytes());
        assert_eq!(&v.encode(0)[..], &want[..]);
        // Version 0 has no tagged fields: previous producer id and client version are lost.
        let back = TxnLogValue::decode(&want).unwrap();
        assert_eq!(back, TxnLogValue { previous_producer_id: -1, client_transaction_version: TransactionVersion::Tv0, ..v });
    }

    #[test]
    fn value_v1_is_flexible_with_tagged_fields() {
        let v = value(TxnState::PrepareCommit, &[tp("a", 0)]);
        let mut want = vec![0, 1];
        want.extend(7i64.to_be_bytes());
        want.extend(3i16.to_be_bytes());
        want.extend(TIMEOUT.to_be_bytes());
        want.push(2);
        want.push(2); // compact array: one topic
        want.extend([2, b'a']); // compact string
        want.push(2); // one partition id
        want.extend(0i32.to_be_bytes());
        want.push(0); // the topic entry's tagged fields
        want.extend(1234i64.to_be_bytes());
        want.extend(1000i64.to_be_bytes());
        // Tags 0 (previous producer id 6) and 2 (client version 2); tag 1 (next producer id) is at its default.
        want.extend([2, 0, 8]);
        want.extend(6i64.to_be_bytes());
        want.extend([2, 2]);
        want.extend(2i16.to_be_bytes());
        assert_eq!(&v.encode(1)[..], &want[..]);
        assert_eq!(TxnLogValue::decode(&want), Ok(v));
    }

    #[test]
    fn empty_state_writes_null_partitions_and_ignores_them_when_read() {
        let v = value(TxnState::Empty, &[]);
        for version in [0, 1] {
            let bytes = v.encode(version);
            assert_eq!(TxnLogValue::decode(&bytes), Ok(if version == 0 {
                TxnLogValue { previous_producer_id: -1, client_transaction_version: TransactionVersion::Tv0, ..v.clone() }
            } else {
                v.clone()
            }));
        }
        // A null array in v1 is a 0 length.
        assert_eq!(v.encode(1)[2 + 8 + 2 + 4 + 1], 0);
    }

    #[test]
    fn unknown_tags_are_skipped_and_garbage_is_an_error() {
        let v = value(TxnState::Ongoing, &[tp("t", 3)]);
        let mut bytes = v.encode(1).to_vec();
        // Replace the tag section (2 tags) with 3, the third an unknown tag 9 of 3 bytes.
        let tags_at = bytes.len() - (1 + (2 + 8) + (2 + 2));
        bytes.truncate(tags_at);
        bytes.extend([3, 0, 8]);
        bytes.extend(6i64.to_be_bytes());
        bytes.extend([2, 2]);
        bytes.extend(2i16.to_be_bytes());
        bytes.extend([9, 3, 1, 2, 3]);
        assert_eq!(TxnLogValue::decode(&bytes), Ok(v.clone()));
        let good = v.encode(1);
        for cut in 0..good.len() {
            assert!(TxnLogValue::decode(&good[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(TxnLogValue::decode(&long), Err(TxnRecordError::TrailingBytes(1)));
        assert_eq!(TxnLogValue::decode(&[0, 2]), Err(TxnRecordError::UnsupportedValueVersion(2)));
        let mut bad_state = good.to_vec();
        bad_state[2 + 8 + 2 + 4] = 9;
        assert_eq!(TxnLogValue::decode(&bad_state), Err(TxnRecordError::UnknownState(9)));
        // A huge count is refused before allocating.
        let mut huge = good[..2 + 8 + 2 + 4 + 1].to_vec();
        huge.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(TxnLogValue::decode(&huge), Err(TxnRecordError::Truncated));
    }
}
