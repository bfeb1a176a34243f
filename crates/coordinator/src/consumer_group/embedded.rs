//! The consumer embedded protocol (protocol type "consumer"): the subscription a classic member
//! sends in JoinGroup and the assignment it gets in SyncGroup (Kafka's
//! `ConsumerProtocolSubscription` and `ConsumerProtocolAssignment`, versions 0 to 3). A consumer
//! group reads its classic members' subscriptions (topics, owned partitions, rack) from them and
//! writes their assignments in them, as Kafka's ConsumerGroup does for classic members.
//!
//! ```text
//! Subscription: version:i16 topics:[str16] user_data:nbytes (v1+ owned:[topic:str16 [i32]]) (v2+ generation:i32) (v3+ rack:nstr16)
//! Assignment:   version:i16 topics:[topic:str16 [i32]] user_data:nbytes
//! ```
//!
//! Not flexible: i32 array counts, i16 string lengths, i32 byte lengths (-1 null). A newer version
//! is read as far as the fields known here, as Kafka's `ConsumerProtocol` does. Counts are
//! checked against the bytes left, so a hostile count cannot allocate or loop long.

use bytes::{BufMut, Bytes, BytesMut};

use super::types::{Assignment, Topics};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed embedded consumer protocol")]
pub struct Malformed;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// v1+: the partitions the member owns (cooperative members report them when rejoining).
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, Malformed> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, Malformed> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An array count: a null array reads as empty; never more than the bytes left.
    fn count(&mut self) -> Result<usize, Malformed> {
        let n = self.i32()?;
        let n = usize::try_from(n).unwrap_or(0);
        if n > self.0.len() {
            return Err(Malformed);
        }
        Ok(n)
    }
    fn nstr(&mut self) -> Result<Option<String>, Malformed> {
        let n = self.i16()?;
        let Ok(n) = usize::try_from(n) else { return Ok(None) };
        String::from_utf8(self.take(n)?.to_vec()).map(Some).map_err(|_| Malformed)
    }
    fn str(&mut self) -> Result<String, Malformed> {
        self.nstr()?.ok_or(Malformed)
    }
    fn skip_nbytes(&mut self) -> Result<(), Malformed> {
        let n = self.i32()?;
        if let Ok(n) = usize::try_from(n) {
            self.take(n)?;
        }
        Ok(())
    }
    fn partitions(&mut self) -> Result<Vec<(String, Vec<i32>)>, Malformed> {
        let mut out = Vec::new();
        for _ in 0..self.count()? {
            let topic = self.str()?;
            let mut ps = Vec::new();
            for _ in 0..self.count()? {
                ps.push(self.i32()?);
            }
            out.push((topic, ps));
        }
        Ok(out)
    }
}

/// The version an embedded-protocol payload starts with.
pub fn version(metadata: &[u8]) -> Result<i16, Malformed> {
    Reader(metadata).i16()
}

pub fn decode_subscription(metadata: &[u8]) -> Result<Subscription, Malformed> {
    let mut r = Reader(metadata);
    let version = r.i16()?;
    if version < 0 {
        return Err(Malformed);
    }
    let mut topics = Vec::new();
    for _ in 0..r.count()? {
        topics.push(r.str()?);
    }
    r.skip_nbytes()?;
    let mut s = Subscription { version, topics, ..Default::default() };
    if version >= 1 {
        s.owned = r.partitions()?;
    }
    if version >= 2 {
        r.i32()?;
    }
    if version >= 3 {
        s.rack_id = r.nstr()?;
    }
    Ok(s)
}

pub fn decode_assignment(assignment: &[u8]) -> Result<Vec<(String, Vec<i32>)>, Malformed> {
    if assignment.is_empty() {
        // A member that has not synced yet has no assignment (Kafka's empty byte array).
        return Ok(Vec::new());
    }
    let mut r = Reader(assignment);
    if r.i16()? < 0 {
        return Err(Malformed);
    }
    let partitions = r.partitions()?;
    r.skip_nbytes()?;
    Ok(partitions)
}

/// A classic member's assignment in the version of its subscription (at most 3), without user
/// data (null), as Kafka's `prepareAssignment`. Topics unknown to `topics` are left out.
pub fn encode_assignment(version: i16, assignment: &Assignment, topics: &Topics) -> Bytes {
    let names: Vec<(&str, &std::collections::BTreeSet<i32>)> = assignment
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .filter_map(|(id, ps)| topics.iter().find(|(_, t)| t.id == *id).map(|(name, _)| (name.as_str(), ps)))
        .collect();
    let mut b = BytesMut::new();
    b.put_i16(version.clamp(0, 3));
    b.put_i32(i32::try_from(names.len()).unwrap_or(i32::MAX));
    for (name, ps) in names {
        let name = &name.as_bytes()[..name.len().min(i16::MAX as usize)];
        b.put_i16(name.len() as i16);
        b.put_slice(name);
        b.put_i32(i32::try_from(ps.len()).unwrap_or(i32::MAX));
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

/// Partitions by topic name as an [`Assignment`] by topic id; unknown topics are left out.
pub fn to_assignment(partitions: &[(String, Vec<i32>)], topics: &Topics) -> Assignment {
    let mut a = Assignment::new();
    for (name, ps) in partitions {
        if let Some(t) = topics.get(name) {
            a.entry(t.id).or_default().extend(ps.iter().copied().filter(|p| (0..t.partitions).contains(p)));
        }
    }
    a.retain(|_, ps| !ps.is_empty());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer_group::TopicMeta;

    fn subscription_v3(topics: &[&str], owned: &[(&str, &[i32])], rack: Option<&str>) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i32(topics.len() as i32);
        for t in topics {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
        }
        b.put_i32(-1);
        b.put_i32(owned.len() as i32);
        for (t, ps) in owned {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
            b.put_i32(ps.len() as i32);
            for p in *ps {
                b.put_i32(*p);
            }
        }
        b.put_i32(7);
        match rack {
            Some(r) => {
                b.put_i16(r.len() as i16);
                b.put_slice(r.as_bytes());
            }
            None => b.put_i16(-1),
        }
        b.to_vec()
    }

    #[test]
    fn reads_a_v3_subscription() {
        let s = decode_subscription(&subscription_v3(&["a", "b"], &[("a", &[0, 2])], Some("r1"))).unwrap();
        assert_eq!(s.version, 3);
        assert_eq!(s.topics, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.owned, vec![("a".to_string(), vec![0, 2])]);
        assert_eq!(s.rack_id.as_deref(), Some("r1"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = subscription_v3(&["a"], &[("a", &[0])], None);
        for n in 0..good.len() {
            assert_eq!(decode_subscription(&good[..n]), Err(Malformed), "prefix of {n} bytes");
        }
        // A count far beyond the bytes left.
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        huge.put_i32(i32::MAX);
        assert_eq!(decode_subscription(&huge), Err(Malformed));
        assert_eq!(decode_assignment(&huge), Err(Malformed));
    }

    #[test]
    fn assignment_round_trips_by_topic_id() {
        let id = uuid::Uuid::from_u128(9);
        let topics: Topics = [("a".to_string(), TopicMeta::new(id, 4))].into_iter().collect();
        let a: Assignment = [(id, [1, 3].into_iter().collect())].into_iter().collect();
        let bytes = encode_assignment(1, &a, &topics);
        assert_eq!(version(&bytes), Ok(1));
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(decoded, vec![("a".to_string(), vec![1, 3])]);
        assert_eq!(to_assignment(&decoded, &topics), a);
        // A partition past the topic's count, or an unknown topic, is dropped.
        assert!(to_assignment(&[("a".to_string(), vec![9]), ("zz".to_string(), vec![0])], &topics).is_empty());
    }
}
