//! Explicit replica assignments (CreateTopics' `assignments`, CreatePartitions' `assignments`,
//! `kafka-topics.sh --replica-assignment`): Kafka's checks and the partitions they become.
//!
//! Any registered broker may be named, fenced ones too (as in Kafka: a broker that is briefly
//! down keeps its place); a new partition's ISR is its replicas that are live, and the first of
//! those leads. A partition whose replicas are all fenced is refused, since nobody could lead it.

use std::collections::BTreeMap;
use std::fmt;

use crate::{MetadataImage, PartitionImage, TopicImage, NO_LEADER};

/// Why an assignment was refused: Kafka's INVALID_REPLICA_ASSIGNMENT, with its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidAssignment(pub String);

impl fmt::Display for InvalidAssignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidAssignment {}

fn invalid<T>(message: String) -> Result<T, InvalidAssignment> {
    Err(InvalidAssignment(message))
}

/// A new topic's partitions from `(partition index, replicas)` pairs as the request lists them:
/// each index once, indexes 0..n-1, every partition with the same number of replicas, each
/// replica a registered broker named once. Kafka's `ReplicationControlManager.createTopic`
/// checks, in its order (so the first error reported is the one Kafka reports).
pub fn manual_topic_partitions(image: &MetadataImage, assignments: &[(i32, Vec<i32>)]) -> Result<Vec<PartitionImage>, InvalidAssignment> {
    let mut by_index: BTreeMap<i32, PartitionImage> = BTreeMap::new();
    let mut replication_factor = None;
    for (index, replicas) in assignments {
        if by_index.contains_key(index) {
            return invalid(format!("Found multiple manual partition assignments for partition {index}"));
        }
        check_replicas(image, replicas, replication_factor)?;
        replication_factor = Some(replicas.len());
        by_index.insert(*index, new_partition(image, *index, replicas)?);
    }
    if !by_index.keys().enumerate().all(|(i, index)| *index as i64 == i as i64) {
        return invalid("partitions should be a consecutive 0-based integer sequence".into());
    }
    Ok(by_index.into_values().collect())
}

/// The partitions CreatePartitions adds to `topic` to reach `count`, from the request's
/// assignments (one per new partition, in order), with the replication factor of the topic's
/// first partition, as Kafka's `createPartitions` checks them.
pub fn manual_new_partitions(image: &MetadataImage, topic: &TopicImage, count: i32, assignments: &[Vec<i32>]) -> Result<Vec<PartitionImage>, InvalidAssignment> {
    let first = topic.partition_count();
    let additional = count - first;
    if assignments.len() as i64 != additional as i64 {
        return invalid(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        ));
    }
    let replication_factor = topic.partitions.first().map(|p| p.replicas.len() - p.adding.len());
    let mut out = Vec::with_capacity(assignments.len());
    for (i, replicas) in assignments.iter().enumerate() {
        check_replicas(image, replicas, replication_factor)?;
        out.push(new_partition(image, first + i as i32, replicas)?);
    }
    Ok(out)
}

/// Kafka's `validateManualPartitionAssignment`: non-empty, registered brokers only (checked in
/// ascending id order, as Kafka does), no broker twice, and `replication_factor` replicas if
/// given.
fn check_replicas(image: &MetadataImage, replicas: &[i32], replication_factor: Option<usize>) -> Result<(), InvalidAssignment> {
    if replicas.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for b in sorted {
        if !image.brokers.contains_key(&b) {
            return invalid(format!("The manual partition assignment includes broker {b}, but no such broker is registered."));
        }
        if previous == Some(b) {
            return invalid(format!("The manual partition assignment includes the broker {b} more than once."));
        }
        previous = Some(b);
    }
    match replication_factor {
        Some(rf) if rf != replicas.len() => invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
            replicas.len()
        )),
        _ => Ok(()),
    }
}

/// The partition `replicas` describe: in sync are its live replicas, and the first of them leads.
fn new_partition(image: &MetadataImage, index: i32, replicas: &[i32]) -> Result<PartitionImage, InvalidAssignment> {
    let isr: Vec<i32> = replicas.iter().copied().filter(|b| image.brokers.get(b).is_some_and(|r| !r.fenced)).collect();
    let Some(&leader) = isr.first() else {
        return invalid(format!("All brokers specified in the manual partition assignment for partition {index} are fenced or in controlled shutdown."));
    };
    let mut p = PartitionImage::new(replicas.to_vec());
    debug_assert_ne!(leader, NO_LEADER);
    p.leader = leader;
    p.isr = isr;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerRegistration;
    use uuid::Uuid;

    /// Brokers 1, 2, 3 registered; 3 fenced.
    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=3 {
            img.brokers.insert(id, BrokerRegistration { id, incarnation: Uuid::nil(), endpoints: vec![], rack: None, fenced: id == 3 });
        }
        img
    }

    fn message<T: fmt::Debug>(r: Result<T, InvalidAssignment>) -> String {
        r.expect_err("refused").0
    }

    #[test]
    fn any_registered_brokers_may_be_named_in_any_order() {
        let parts = manual_topic_partitions(&image(), &[(1, vec![1, 2]), (0, vec![2, 1])]).unwrap();
        assert_eq!(parts.iter().map(|p| (p.replicas.clone(), p.leader)).collect::<Vec<_>>(), vec![(vec![2, 1], 2), (vec![1, 2], 1)]);
        assert_eq!(parts[0].isr, vec![2, 1]);
    }

    #[test]
    fn a_fenced_replica_is_kept_but_not_in_sync_and_does_not_lead() {
        let parts = manual_topic_partitions(&image(), &[(0, vec![3, 1])]).unwrap();
        assert_eq!((parts[0].replicas.clone(), parts[0].isr.clone(), parts[0].leader), (vec![3, 1], vec![1], 1));
        assert_eq!(
            message(manual_topic_partitions(&image(), &[(0, vec![1]), (1, vec![3])])),
            "All brokers specified in the manual partition assignment for partition 1 are fenced or in controlled shutdown."
        );
    }

    #[test]
    fn kafkas_checks_and_messages() {
        let img = image();
        assert_eq!(
            message(manual_topic_partitions(&img, &[(0, vec![1, 7])])),
            "The manual partition assignment includes broker 7, but no such broker is registered."
        );
        assert_eq!(message(manual_topic_partitions(&img, &[(0, vec![2, 1, 2])])), "The manual partition assignment includes the broker 2 more than once.");
        assert_eq!(message(manual_topic_partitions(&img, &[(0, vec![])])), "The manual partition assignment includes an empty replica list.");
        assert_eq!(
            message(manual_topic_partitions(&img, &[(0, vec![1, 2]), (1, vec![1])])),
            "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."
        );
        assert_eq!(message(manual_topic_partitions(&img, &[(0, vec![1]), (0, vec![2])])), "Found multiple manual partition assignments for partition 0");
        for gap in [vec![(0, vec![1]), (2, vec![2])], vec![(1, vec![1])], vec![(-1, vec![1]), (0, vec![1])]] {
            assert_eq!(message(manual_topic_partitions(&img, &gap)), "partitions should be a consecutive 0-based integer sequence", "{gap:?}");
        }
    }

    #[test]
    fn new_partitions_need_one_assignment_each_with_the_topics_replication_factor() {
        let img = image();
        let topic = TopicImage {
            name: "t".into(),
            id: Uuid::nil(),
            replication_factor: 2,
            partitions: vec![PartitionImage::new(vec![1, 2])],
            configs: Default::default(),
        };
        let added = manual_new_partitions(&img, &topic, 3, &[vec![2, 1], vec![1, 3]]).unwrap();
        assert_eq!(added.iter().map(|p| (p.replicas.clone(), p.isr.clone(), p.leader)).collect::<Vec<_>>(), vec![(vec![2, 1], vec![2, 1], 2), (vec![1, 3], vec![1], 1)]);
        assert_eq!(
            message(manual_new_partitions(&img, &topic, 3, &[vec![2, 1]])),
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
        );
        assert_eq!(
            message(manual_new_partitions(&img, &topic, 2, &[vec![1, 2, 3]])),
            "The manual partition assignment includes a partition with 3 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."
        );
        assert_eq!(
            message(manual_new_partitions(&img, &topic, 2, &[vec![3]])),
            "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."
        );
    }
}
