//! Consumer lag as `/metrics` and the console both report it: a group's committed offset
//! against the partition's high watermark (records), and the age of the oldest record not yet
//! consumed (seconds, from the batch header at the committed offset). Both read the groups
//! coordinated on this node, copying what they need under the coordinator's lock and releasing
//! it before touching a partition.

use crate::broker::Broker;

/// One group's committed position in one partition.
#[derive(Debug, Clone)]
pub struct Committed {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The groups coordinated here with their member counts, and their committed offsets, both in
/// (group, topic, partition) order.
pub fn committed(broker: &Broker) -> (Vec<(String, usize)>, Vec<Committed>) {
    let (mut committed, mut members) = broker.groups.read(|c| {
        let mut committed = Vec::new();
        let mut members = Vec::new();
        for group in c.group_ids() {
            members.push((group.to_string(), c.describe_group(group).members.len()));
            for f in c.fetch_offsets(group, None).partitions {
                if f.offset >= 0 {
                    committed.push(Committed { group: group.to_string(), topic: f.topic, partition: f.partition, offset: f.offset });
                }
            }
        }
        (committed, members)
    });
    // A KIP-848 group keeps its offsets in a classic entry without members: count its own.
    for (group, n) in &mut members {
        if let Some(d) = broker.groups.describe_consumer_group(group) {
            *n = d.members.len();
        }
    }
    members.sort();
    committed.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    (members, committed)
}

/// Records from `offset` to the partition's high watermark, where a replica of it is hosted
/// here (every replica follows the high watermark, a follower slightly behind).
pub fn records(broker: &Broker, topic: &str, partition: i32, offset: i64) -> Option<i64> {
    let p = broker.replicas.partition(topic, partition)?;
    Some((p.high_watermark() - offset).max(0))
}

/// Age in seconds of the first record at or after `offset` (0 when nothing is left to consume).
pub fn seconds(broker: &Broker, topic: &str, partition: i32, offset: i64, records: i64, now_ms: i64) -> Option<f64> {
    if records == 0 {
        return Some(0.0);
    }
    let ts = broker.replicas.partition(topic, partition)?.first_timestamp_from(offset)?;
    Some(((now_ms - ts).max(0) as f64) / 1000.0)
}
