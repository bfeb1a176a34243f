//! Leader election and replica placement: pure functions from an image to the records that
//! change it. The active controller runs them; tests run them without a cluster.

use std::collections::BTreeMap;

use crate::metadata::{BrokerRegistration, MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};

/// A broker stops (fenced after missed heartbeats, or a controlled shutdown): it leads nothing
/// afterwards. Each partition it led gets the first other in-sync replica that is live, as
/// Kafka's controller does; it leaves every ISR unless it is the last member (with unclean
/// election disabled, the last in-sync replica stays recorded so that only it can lead again).
pub fn broker_down(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::BrokerFenced { id }];
    let live = |b: i32| b != id && image.brokers.get(&b).is_some_and(|r| !r.fenced);
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let isr: Vec<i32> = if p.isr.len() > 1 { p.isr.iter().copied().filter(|b| *b != id).collect() } else { p.isr.clone() };
            let leader = if p.leader == id || p.leader == NO_LEADER {
                isr.iter().copied().find(|b| live(*b)).unwrap_or(NO_LEADER)
            } else {
                p.leader
            };
            if leader != p.leader || isr != p.isr {
                out.push(MetadataRecord::PartitionChanged { name: t.name.clone(), index: index as i32, leader, isr });
            }
        }
    }
    out
}

/// A broker (re)joins: partitions without a leader that it can lead (it is in their ISR) get it.
pub fn broker_up(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            if p.leader == NO_LEADER && p.isr.contains(&id) {
                out.push(MetadataRecord::PartitionChanged { name: t.name.clone(), index: index as i32, leader: id, isr: p.isr.clone() });
            }
        }
    }
    out
}

/// Replicas for `count` new partitions, starting at partition index `first`: leaders round-robin
/// over the live brokers, each partition's followers on the next brokers in a rack-alternating
/// order, so that leaders and replicas spread evenly and a rack holds at most its share of any
/// partition (Kafka's rack-aware assignment, without its random start: the start rotates with
/// the partition index, which spreads several topics just as well and keeps tests exact).
pub fn place_replicas(
    image: &MetadataImage,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<PartitionImage>, usize> {
    let brokers = rack_alternating(image.live_brokers());
    let rf = replication_factor.max(1) as usize;
    if rf > brokers.len() {
        return Err(brokers.len());
    }
    let n = brokers.len();
    Ok((first..first + count)
        .map(|p| {
            let start = p as usize % n;
            PartitionImage::new((0..rf).map(|i| brokers[(start + i) % n]).collect())
        })
        .collect())
}

/// Broker ids ordered so that consecutive brokers are on different racks where possible:
/// racks sorted, then one broker from each rack in turn.
fn rack_alternating<'a>(brokers: impl Iterator<Item = &'a BrokerRegistration>) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    let mut queues: Vec<std::collections::VecDeque<i32>> = by_rack.into_values().map(Into::into).collect();
    let mut out = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        for q in &mut queues {
            if let Some(b) = q.pop_front() {
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{MetadataCommand, TopicImage};
    use std::sync::Arc;
    use uuid::Uuid;

    fn image(brokers: &[(i32, Option<&str>)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for (id, rack) in brokers {
            img.brokers.insert(
                *id,
                BrokerRegistration { id: *id, incarnation: Uuid::nil(), endpoints: vec![], rack: rack.map(String::from), fenced: false },
            );
        }
        img
    }

    fn with_topic(mut img: MetadataImage, partitions: Vec<PartitionImage>) -> MetadataImage {
        let t = TopicImage { name: "t".into(), id: Uuid::new_v4(), replication_factor: 3, partitions, configs: BTreeMap::new() };
        img.topics.insert("t".into(), Arc::new(t));
        img
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let img = image(&[(1, None), (2, None), (3, None)]);
        let parts = place_replicas(&img, 0, 6, 3).unwrap();
        let mut leaders = BTreeMap::new();
        for p in &parts {
            *leaders.entry(p.leader).or_insert(0) += 1;
            let mut r = p.replicas.clone();
            r.sort();
            assert_eq!(r, vec![1, 2, 3]);
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        assert_eq!(place_replicas(&img, 0, 1, 4), Err(3));
    }

    #[test]
    fn replicas_of_a_partition_go_to_different_racks() {
        let img = image(&[(1, Some("a")), (2, Some("a")), (3, Some("b")), (4, Some("b"))]);
        for p in place_replicas(&img, 0, 8, 2).unwrap() {
            let rack = |id: i32| img.brokers[&id].rack.clone();
            assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
        }
    }

    #[test]
    fn a_stopped_leader_hands_over_to_a_live_in_sync_replica_and_returns_without_stealing() {
        let img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2, 3])]);
        let mut img2 = img.clone();
        img2.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1) });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2, 3], 1));
        assert!(img2.brokers[&1].fenced);
        // Broker 1 comes back: partition 0 has a leader, so nothing moves (it must catch up first).
        assert!(broker_up(&img2, 1).is_empty());
    }

    #[test]
    fn the_last_in_sync_replica_stays_recorded_and_leads_again_when_it_returns() {
        let img = with_topic(image(&[(1, None), (2, None)]), vec![PartitionImage::new(vec![1])]);
        let mut img2 = img.clone();
        img2.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1) });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        img2.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::BrokerUnfenced { id: 1 }] });
        let up = broker_up(&img2, 1);
        img2.apply_command(&MetadataCommand { based_on: None, records: up });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }
}
