//! The coordinator's records in `__consumer_offsets`, in Apache Kafka's own key/value formats,
//! so that tools that read Kafka's offsets topic read Strom's too.
//!
//! Keys start with an i16 record type, values with an i16 schema version; strings are i16-length
//! prefixed (-1 is null), bytes i32-length prefixed, all integers big-endian:
//!
//! ```text
//! OffsetCommitKey   (type 0 or 1) group:str topic:str partition:i32
//! OffsetCommitValue (v3, written) offset:i64 leader_epoch:i32 metadata:str commit_timestamp:i64
//!                   (v0-v2 read too: no leader epoch; v1 adds expire_timestamp:i64)
//! GroupMetadataKey  (type 2)      group:str
//! GroupMetadataValue(v3, written) protocol_type:str generation:i32 protocol:nstr leader:nstr
//!                                 current_state_timestamp:i64 members:[member]
//! member            member_id:str instance_id:nstr client_id:str client_host:str
//!                   rebalance_timeout:i32 session_timeout:i32 subscription:bytes assignment:bytes
//!                   (v0 lacks rebalance_timeout and the timestamp, v0-v2 the instance id)
//! ```
//!
//! A deletion is the key with a null value: a tombstone, which compaction removes after
//! `delete.retention.ms`. Decoding checks every length against the remaining input, so garbage
//! yields a [`RecordError`], never a panic or a huge allocation.

use bytes::{BufMut, Bytes, BytesMut};

/// The value schema versions Strom writes (the newest non-flexible ones).
pub const OFFSET_VALUE_VERSION: i16 = 3;
pub const GROUP_VALUE_VERSION: i16 = 3;

const KEY_OFFSET_V0: i16 = 0;
const KEY_OFFSET: i16 = 1;
const KEY_GROUP: i16 = 2;

/// A group's persisted metadata (Kafka's GroupMetadataValue): written when a generation's
/// assignment is set, when a group becomes Empty, and when a static member is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub group_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// When the group entered its current state (the base of offset retention once Empty).
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One committed offset (Kafka's OffsetCommitValue, with its key fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// Everything the coordinator writes to its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    Group(GroupRecord),
    GroupTombstone { group_id: String },
    Offset(OffsetRecord),
    OffsetTombstone { group_id: String, topic: String, partition: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated or a length is out of range")]
    Truncated,
    #[error("unknown record type {0} in the key")]
    UnknownKeyType(i16),
    #[error("unsupported value version {0}")]
    UnsupportedVersion(i16),
    #[error("string is not UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    #[error("a record without a key")]
    MissingKey,
}

impl LogRecord {
    /// The record's key: a record and its tombstone share it, different entities never do.
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32);
        match self {
            LogRecord::Group(GroupRecord { group_id, .. }) | LogRecord::GroupTombstone { group_id } => {
                b.put_i16(KEY_GROUP);
                put_str(&mut b, group_id);
            }
            LogRecord::Offset(OffsetRecord { group_id, topic, partition, .. })
            | LogRecord::OffsetTombstone { group_id, topic, partition } => {
                b.put_i16(KEY_OFFSET);
                put_str(&mut b, group_id);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
        }
        b.freeze()
    }

    /// The record's value; `None` for a tombstone.
    pub fn value(&self) -> Option<Bytes> {
        let mut b = BytesMut::with_capacity(64);
        match self {
            LogRecord::GroupTombstone { .. } | LogRecord::OffsetTombstone { .. } => return None,
            LogRecord::Group(g) => {
                b.put_i16(GROUP_VALUE_VERSION);
                put_str(&mut b, g.protocol_type.as_deref().unwrap_or(""));
                b.put_i32(g.generation_id);
                put_nstr(&mut b, g.protocol_name.as_deref());
                put_nstr(&mut b, g.leader_id.as_deref());
                b.put_i64(g.state_timestamp_ms);
                b.put_i32(i32::try_from(g.members.len()).unwrap_or(i32::MAX));
                for m in &g.members {
                    put_str(&mut b, &m.member_id);
                    put_nstr(&mut b, m.group_instance_id.as_deref());
                    put_str(&mut b, &m.client_id);
                    put_str(&mut b, &m.client_host);
                    b.put_i32(m.rebalance_timeout_ms);
                    b.put_i32(m.session_timeout_ms);
                    put_bytes(&mut b, &m.subscription);
                    put_bytes(&mut b, &m.assignment);
                }
            }
            LogRecord::Offset(o) => {
                b.put_i16(OFFSET_VALUE_VERSION);
                b.put_i64(o.offset);
                b.put_i32(o.leader_epoch);
                put_str(&mut b, &o.metadata);
                b.put_i64(o.commit_timestamp_ms);
            }
        }
        Some(b.freeze())
    }

    /// Decode a record read back from the log (`value` is `None` for a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<LogRecord, RecordError> {
        let mut k = Reader { buf: key };
        let rec = match k.i16()? {
            KEY_OFFSET_V0 | KEY_OFFSET => {
                let (group_id, topic, partition) = (k.string()?, k.string()?, k.i32()?);
                k.finish()?;
                match value {
                    None => LogRecord::OffsetTombstone { group_id, topic, partition },
                    Some(v) => decode_offset(group_id, topic, partition, v)?,
                }
            }
            KEY_GROUP => {
                let group_id = k.string()?;
                k.finish()?;
                match value {
                    None => LogRecord::GroupTombstone { group_id },
                    Some(v) => LogRecord::Group(decode_group(group_id, v)?),
                }
            }
            other => return Err(RecordError::UnknownKeyType(other)),
        };
        Ok(rec)
    }

    /// The group this record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            LogRecord::Group(g) => &g.group_id,
            LogRecord::GroupTombstone { group_id } => group_id,
            LogRecord::Offset(o) => &o.group_id,
            LogRecord::OffsetTombstone { group_id, .. } => group_id,
        }
    }
}

fn decode_offset(group_id: String, topic: String, partition: i32, value: &[u8]) -> Result<LogRecord, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    if version == 1 {
        r.i64()?; // expireTimestamp: retention is the broker's setting since KIP-211.
    }
    r.finish()?;
    Ok(LogRecord::Offset(OffsetRecord { group_id, topic, partition, offset, leader_epoch, metadata, commit_timestamp_ms }))
}

fn decode_group(group_id: String, value: &[u8]) -> Result<GroupRecord, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let protocol_type = Some(r.string()?).filter(|s| !s.is_empty());
    let generation_id = r.i32()?;
    let protocol_name = r.nstring()?;
    let leader_id = r.nstring()?;
    let state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    // A member takes at least 22 bytes; a count beyond that is garbage, and checking it first
    // keeps `with_capacity` bounded by the input size.
    let count = usize::try_from(count).map_err(|_| RecordError::Truncated)?;
    if count > r.buf.len() / 22 {
        return Err(RecordError::Truncated);
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.nstring()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        members.push(MemberRecord {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    r.finish()?;
    Ok(GroupRecord { group_id, generation_id, protocol_type, protocol_name, leader_id, state_timestamp_ms, members })
}

/// Strings the broker accepted came from i16-length wire strings, so they fit; a longer one
/// (impossible in practice) is cut at a character boundary rather than written wrong.
fn put_str(b: &mut BytesMut, s: &str) {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_i16(end as i16);
    b.put_slice(&s.as_bytes()[..end]);
}

fn put_nstr(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_i16(-1),
        Some(s) => put_str(b, s),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.put_slice(v);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn nstring(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec()).map(Some).map_err(|_| RecordError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nstring()?.ok_or(RecordError::Truncated)
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = usize::try_from(self.i32()?).map_err(|_| RecordError::Truncated)?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn finish(&self) -> Result<(), RecordError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(RecordError::TrailingBytes(n)),
        }
    }
}
