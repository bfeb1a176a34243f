//! A consumer group's records in `__consumer_offsets`, in Kafka's own formats (the
//! group-coordinator module's `ConsumerGroup*Key`/`Value` schemas), so that Kafka's tools read
//! Strom's log and a restarted or failed-over coordinator rebuilds its groups from it.
//!
//! Keys are not flexible: an i16 record type (3 to 8), then i16-length strings. Values start with
//! an i16 version (0) and are flexible: compact strings and arrays (unsigned varint length + 1, 0
//! is null), 16-byte uuids, big-endian integers, and a tagged-field section after every struct.
//!
//! ```text
//! 3 ConsumerGroupMetadata            group                   epoch:i32
//! 4 ConsumerGroupPartitionMetadata   group                   topics:[id:uuid name:str partitions:i32 [partition:i32 racks:[str]]]
//! 5 ConsumerGroupMemberMetadata      group member            instance:nstr rack:nstr client:str host:str topics:[str] regex:nstr
//!                                                            rebalance_timeout:i32 assignor:nstr (tag 0: classic metadata)
//! 6 ConsumerGroupTargetAssignmentMetadata group              assignment_epoch:i32
//! 7 ConsumerGroupTargetAssignmentMember   group member       [id:uuid partitions:[i32]]
//! 8 ConsumerGroupCurrentMemberAssignment  group member       epoch:i32 previous_epoch:i32 state:i8 assigned:[id [i32]] pending_revocation:[id [i32]]
//! ```
//!
//! A tombstone (null value) deletes its key. Decoding checks every length against what is left
//! (no panic, no allocation from a wire count beyond the input), and skips unknown tagged fields.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::types::Assignment;
use crate::group::RecordError;

pub const KEY_METADATA: i16 = 3;
pub const KEY_PARTITION_METADATA: i16 = 4;
pub const KEY_MEMBER_METADATA: i16 = 5;
pub const KEY_TARGET_METADATA: i16 = 6;
pub const KEY_TARGET_MEMBER: i16 = 7;
pub const KEY_CURRENT_ASSIGNMENT: i16 = 8;

/// Whether a `__consumer_offsets` key is a consumer group's record (types 3 to 8).
pub fn is_consumer_group_key(key: &[u8]) -> bool {
    key.len() >= 2 && (KEY_METADATA..=KEY_CURRENT_ASSIGNMENT).contains(&i16::from_be_bytes([key[0], key[1]]))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tagged field 0: set for a member that uses the classic protocol (JoinGroup/SyncGroup).
    pub classic: Option<ClassicMemberMetadata>,
}

/// Kafka's `ClassicMemberMetadata`: what a classic member inside a consumer group joined with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    /// (protocol name, embedded consumer-protocol metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// One record's value; `None` in [`Record::value`] is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Metadata { epoch: i32 },
    /// Each subscribed topic: id, name, partition count, and per partition its replicas' racks
    /// (empty: unknown).
    PartitionMetadata { topics: Vec<(Uuid, String, i32, Vec<BTreeSet<String>>)> },
    Member(MemberMetadata),
    TargetMetadata { assignment_epoch: i32 },
    TargetMember(Assignment),
    CurrentAssignment(CurrentAssignment),
}

/// A record's key: its type, the group and, for member records, the member.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: i16,
    pub group_id: String,
    pub member_id: Option<String>,
}

impl Key {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(self.kind);
        put_str16(&mut b, &self.group_id);
        if let Some(m) = &self.member_id {
            put_str16(&mut b, m);
        }
        b.freeze()
    }

    pub fn decode(key: &[u8]) -> Result<Key, RecordError> {
        let mut r = Reader(key);
        let kind = r.i16()?;
        let group_id = r.str16()?;
        let member_id = match kind {
            KEY_METADATA | KEY_PARTITION_METADATA | KEY_TARGET_METADATA => None,
            KEY_MEMBER_METADATA | KEY_TARGET_MEMBER | KEY_CURRENT_ASSIGNMENT => Some(r.str16()?),
            // A share group's (`share_group/member_record.rs`), which shares this codec.
            11 => None,
            10 | 14 => Some(r.str16()?),
            other => return Err(RecordError::UnknownKeyType(other)),
        };
        r.end()?;
        Ok(Key { kind, group_id, member_id })
    }
}

impl Value {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        match self {
            Value::Metadata { epoch } => b.put_i32(*epoch),
            Value::PartitionMetadata { topics } => {
                put_len(&mut b, topics.len());
                for (id, name, partitions, racks) in topics {
                    b.put_slice(id.as_bytes());
                    put_cstr(&mut b, Some(name));
                    b.put_i32(*partitions);
                    // Per partition its racks, written only when racks are known.
                    put_len(&mut b, racks.len());
                    for (p, rs) in racks.iter().enumerate() {
                        b.put_i32(i32::try_from(p).unwrap_or(i32::MAX));
                        put_len(&mut b, rs.len());
                        for r in rs {
                            put_cstr(&mut b, Some(r));
                        }
                        b.put_u8(0);
                    }
                    b.put_u8(0);
                }
            }
            Value::Member(m) => {
                put_cstr(&mut b, m.instance_id.as_deref());
                put_cstr(&mut b, m.rack_id.as_deref());
                put_cstr(&mut b, Some(&m.client_id));
                put_cstr(&mut b, Some(&m.client_host));
                put_len(&mut b, m.subscribed_topic_names.len());
                for t in &m.subscribed_topic_names {
                    put_cstr(&mut b, Some(t));
                }
                put_cstr(&mut b, m.subscribed_topic_regex.as_deref());
                b.put_i32(m.rebalance_timeout_ms);
                put_cstr(&mut b, m.server_assignor.as_deref());
                if let Some(c) = &m.classic {
                    // One tagged field, tag 0, its size, then the struct.
                    let mut t = BytesMut::new();
                    t.put_i32(c.session_timeout_ms);
                    put_len(&mut t, c.protocols.len());
                    for (name, metadata) in &c.protocols {
                        put_cstr(&mut t, Some(name));
                        put_len(&mut t, metadata.len());
                        t.put_slice(metadata);
                        t.put_u8(0);
                    }
                    t.put_u8(0);
                    put_uvarint(&mut b, 1);
                    put_uvarint(&mut b, 0);
                    put_uvarint(&mut b, t.len() as u64);
                    b.put_slice(&t);
                    return b.freeze();
                }
            }
            Value::TargetMetadata { assignment_epoch } => b.put_i32(*assignment_epoch),
            Value::TargetMember(a) => put_assignment(&mut b, a),
            Value::CurrentAssignment(c) => {
                b.put_i32(c.member_epoch);
                b.put_i32(c.previous_member_epoch);
                b.put_i8(c.state);
                put_assignment(&mut b, &c.assigned);
                put_assignment(&mut b, &c.pending_revocation);
            }
        }
        b.put_u8(0); // no tagged fields
        b.freeze()
    }

    pub fn decode(kind: i16, value: &[u8]) -> Result<Value, RecordError> {
        let mut r = Reader(value);
        let version = r.i16()?;
        if version != 0 {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let v = match kind {
            KEY_METADATA => Value::Metadata { epoch: r.i32()? },
            KEY_PARTITION_METADATA => {
                let mut topics = Vec::new();
                for _ in 0..r.len()? {
                    let id = r.uuid()?;
                    let name = r.cstr()?.ok_or(RecordError::Truncated)?;
                    let partitions = r.i32()?;
                    let mut racks: Vec<BTreeSet<String>> = Vec::new();
                    let entries = r.len()?;
                    for _ in 0..entries {
                        let p = r.i32()?;
                        let mut rs = BTreeSet::new();
                        for _ in 0..r.len()? {
                            rs.extend(r.cstr()?);
                        }
                        r.tags()?;
                        // Kafka and Strom list the partitions densely; an entry for a partition
                        // past the count or past the entries read is ignored (a damaged record
                        // must not make a huge allocation), any missing below it is unknown.
                        if let Ok(p) = usize::try_from(p) {
                            if p < usize::try_from(partitions).unwrap_or(0) && p < entries {
                                if racks.len() <= p {
                                    racks.resize(p + 1, BTreeSet::new());
                                }
                                racks[p] = rs;
                            }
                        }
                    }
                    r.tags()?;
                    topics.push((id, name, partitions, racks));
                }
                Value::PartitionMetadata { topics }
            }
            KEY_MEMBER_METADATA => {
                let instance_id = r.cstr()?;
                let rack_id = r.cstr()?;
                let client_id = r.cstr()?.unwrap_or_default();
                let client_host = r.cstr()?.unwrap_or_default();
                let mut subscribed_topic_names = Vec::new();
                for _ in 0..r.len()? {
                    subscribed_topic_names.push(r.cstr()?.unwrap_or_default());
                }
                Value::Member(MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex: r.cstr()?,
                    rebalance_timeout_ms: r.i32()?,
                    server_assignor: r.cstr()?,
                    classic: r.classic_tag()?,
                })
            }
            KEY_TARGET_METADATA => Value::TargetMetadata { assignment_epoch: r.i32()? },
            KEY_TARGET_MEMBER => Value::TargetMember(r.assignment()?),
            KEY_CURRENT_ASSIGNMENT => Value::CurrentAssignment(CurrentAssignment {
                member_epoch: r.i32()?,
                previous_member_epoch: r.i32()?,
                state: r.i8()?,
                assigned: r.assignment()?,
                pending_revocation: r.assignment()?,
            }),
            other => return Err(RecordError::UnknownKeyType(other)),
        };
        if kind != KEY_MEMBER_METADATA {
            r.tags()?;
        }
        r.end()?;
        Ok(v)
    }
}

fn put_str16(b: &mut BytesMut, s: &str) {
    // Group and member ids come from requests whose strings are at most i16::MAX bytes.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(bytes.len() as i16);
    b.put_slice(bytes);
}

fn put_uvarint(b: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        b.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    b.put_u8(n as u8);
}

pub(crate) fn put_len(b: &mut BytesMut, n: usize) {
    put_uvarint(b, n as u64 + 1);
}

pub(crate) fn put_cstr(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_len(b, s.len());
            b.put_slice(s.as_bytes());
        }
    }
}

pub(crate) fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    let topics: Vec<_> = a.iter().filter(|(_, ps)| !ps.is_empty()).collect();
    put_len(b, topics.len());
    for (id, ps) in topics {
        b.put_slice(id.as_bytes());
        put_len(b, ps.len());
        for p in ps {
            b.put_i32(*p);
        }
        b.put_u8(0);
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        let b = self.take(16)?;
        Uuid::from_slice(b).map_err(|_| RecordError::Truncated)
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(RecordError::Truncated)
    }

    /// A compact array's length; a null array reads as empty. Never more than the bytes left, so a
    /// hostile count cannot make a loop run long.
    pub(crate) fn len(&mut self) -> Result<usize, RecordError> {
        let n = self.uvarint()?.saturating_sub(1);
        if n > self.0.len() as u64 {
            return Err(RecordError::Truncated);
        }
        Ok(n as usize)
    }

    fn str16(&mut self) -> Result<String, RecordError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| RecordError::Truncated)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| RecordError::InvalidUtf8)
    }

    pub(crate) fn cstr(&mut self) -> Result<Option<String>, RecordError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| RecordError::Truncated)?;
        String::from_utf8(self.take(n)?.to_vec()).map(Some).map_err(|_| RecordError::InvalidUtf8)
    }

    pub(crate) fn tags(&mut self) -> Result<(), RecordError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| RecordError::Truncated)?;
            self.take(size)?;
        }
        Ok(())
    }

    /// The tagged-field section of a member's metadata: tag 0 is its classic metadata, other
    /// tags are skipped.
    fn classic_tag(&mut self) -> Result<Option<ClassicMemberMetadata>, RecordError> {
        let mut classic = None;
        for _ in 0..self.uvarint()? {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| RecordError::Truncated)?;
            let mut field = Reader(self.take(size)?);
            if tag == 0 {
                let session_timeout_ms = field.i32()?;
                let mut protocols = Vec::new();
                for _ in 0..field.len()? {
                    let name = field.cstr()?.unwrap_or_default();
                    let n = field.len()?;
                    let metadata = Bytes::copy_from_slice(field.take(n)?);
                    field.tags()?;
                    protocols.push((name, metadata));
                }
                field.tags()?;
                classic = Some(ClassicMemberMetadata { session_timeout_ms, protocols });
            }
        }
        Ok(classic)
    }

    pub(crate) fn assignment(&mut self) -> Result<Assignment, RecordError> {
        let mut a: Assignment = BTreeMap::new();
        for _ in 0..self.len()? {
            let id = self.uuid()?;
            let mut ps = BTreeSet::new();
            for _ in 0..self.len()? {
                ps.insert(self.i32()?);
            }
            self.tags()?;
            a.entry(id).or_default().extend(ps);
        }
        Ok(a)
    }

    pub(crate) fn end(&self) -> Result<(), RecordError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RecordError::TrailingBytes(self.0.len()))
        }
    }
}
