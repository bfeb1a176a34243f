//! A share group's membership as records of its `__consumer_offsets` partition, in Kafka's own
//! formats (the group-coordinator module's `ShareGroup*Key`/`Value` schemas), so that a restarted
//! or failed-over coordinator knows the members and their epochs: their next heartbeat goes on
//! where it was, instead of being told UNKNOWN_MEMBER_ID and joining again.
//!
//! ```text
//! 10 ShareGroupMemberMetadata            group member   rack:nstr client:str host:str topics:[str]
//! 11 ShareGroupMetadata                  group          epoch:i32
//! 14 ShareGroupCurrentMemberAssignment   group member   epoch:i32 previous_epoch:i32 state:i8 assigned:[id [i32]]
//! ```
//!
//! Keys and the flexible values are encoded as the consumer group's (`consumer_group/record.rs`,
//! whose codec this shares); a tombstone deletes its key. Strom keeps no target-assignment
//! records (types 12, 13): a share group's assignment is computed from its members at once.

use bytes::{BufMut, Bytes, BytesMut};

use crate::consumer_group::record::{put_assignment, put_cstr, put_len, Key, Reader};
use crate::consumer_group::Assignment;
use crate::group::RecordError;

pub const KEY_SHARE_MEMBER_METADATA: i16 = 10;
pub const KEY_SHARE_METADATA: i16 = 11;
pub const KEY_SHARE_CURRENT_ASSIGNMENT: i16 = 14;

/// Whether `key` is one of a share group's membership records.
pub fn is_share_group_key(key: &[u8]) -> bool {
    key.len() >= 2 && matches!(i16::from_be_bytes([key[0], key[1]]), KEY_SHARE_MEMBER_METADATA | KEY_SHARE_METADATA | KEY_SHARE_CURRENT_ASSIGNMENT)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberValue {
    /// ShareGroupMetadata: the group epoch.
    Group { epoch: i32 },
    /// ShareGroupMemberMetadata.
    Member { rack_id: Option<String>, client_id: String, client_host: String, subscribed_topic_names: Vec<String> },
    /// ShareGroupCurrentMemberAssignment (state is always 0, stable: share groups never revoke).
    Assignment { member_epoch: i32, previous_member_epoch: i32, assigned: Assignment },
}

pub fn key(kind: i16, group_id: &str, member_id: Option<&str>) -> Bytes {
    Key { kind, group_id: group_id.to_string(), member_id: member_id.map(str::to_string) }.encode()
}

pub fn encode(v: &MemberValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    match v {
        MemberValue::Group { epoch } => b.put_i32(*epoch),
        MemberValue::Member { rack_id, client_id, client_host, subscribed_topic_names } => {
            put_cstr(&mut b, rack_id.as_deref());
            put_cstr(&mut b, Some(client_id));
            put_cstr(&mut b, Some(client_host));
            put_len(&mut b, subscribed_topic_names.len());
            for t in subscribed_topic_names {
                put_cstr(&mut b, Some(t));
            }
        }
        MemberValue::Assignment { member_epoch, previous_member_epoch, assigned } => {
            b.put_i32(*member_epoch);
            b.put_i32(*previous_member_epoch);
            b.put_i8(0);
            put_assignment(&mut b, assigned);
        }
    }
    b.put_u8(0); // no tagged fields
    b.freeze()
}

pub fn decode(kind: i16, value: &[u8]) -> Result<MemberValue, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let v = match kind {
        KEY_SHARE_METADATA => MemberValue::Group { epoch: r.i32()? },
        KEY_SHARE_MEMBER_METADATA => {
            let rack_id = r.cstr()?;
            let client_id = r.cstr()?.unwrap_or_default();
            let client_host = r.cstr()?.unwrap_or_default();
            let mut subscribed_topic_names = Vec::new();
            for _ in 0..r.len()? {
                subscribed_topic_names.push(r.cstr()?.unwrap_or_default());
            }
            MemberValue::Member { rack_id, client_id, client_host, subscribed_topic_names }
        }
        KEY_SHARE_CURRENT_ASSIGNMENT => {
            let member_epoch = r.i32()?;
            let previous_member_epoch = r.i32()?;
            r.i8()?;
            MemberValue::Assignment { member_epoch, previous_member_epoch, assigned: r.assignment()? }
        }
        other => return Err(RecordError::UnknownKeyType(other)),
    };
    r.tags()?;
    r.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let values = [
            (KEY_SHARE_METADATA, MemberValue::Group { epoch: 7 }),
            (KEY_SHARE_MEMBER_METADATA, MemberValue::Member { rack_id: None, client_id: "c".into(), client_host: "/127.0.0.1".into(), subscribed_topic_names: vec!["t".into(), "u".into()] }),
            (KEY_SHARE_CURRENT_ASSIGNMENT, MemberValue::Assignment { member_epoch: 7, previous_member_epoch: 6, assigned: Assignment::from([(Uuid::from_u128(5), [0, 2].into())]) }),
        ];
        for (kind, v) in values {
            let bytes = encode(&v);
            assert_eq!(decode(kind, &bytes), Ok(v.clone()));
            for cut in 0..bytes.len() {
                assert!(decode(kind, &bytes[..cut]).is_err(), "{kind} cut at {cut}");
            }
        }
        let k = key(KEY_SHARE_CURRENT_ASSIGNMENT, "g", Some("m"));
        assert!(is_share_group_key(&k));
        assert_eq!(Key::decode(&k).map(|k| k.member_id), Ok(Some("m".to_string())));
        assert!(!is_share_group_key(&key(3, "g", None)), "a consumer group's record");
    }
}
