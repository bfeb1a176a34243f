//! Leader election and replica placement: pure functions from an image to the records that
//! change it. The active controller runs them; tests run them without a cluster.

use std::collections::BTreeMap;

use crate::{BrokerRegistration, MetadataCommand, MetadataImage, MetadataRecord, PartitionImage, TopicImage, NO_LEADER};

/// A broker stops (fenced after missed heartbeats, or a controlled shutdown): it leads nothing
/// afterwards (`leave`), and it is fenced.
pub fn broker_down(image: &MetadataImage, id: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::BrokerFenced { id }];
    out.extend(leave(image, id, unclean_default));
    out
}

/// A heartbeat from a fenced broker under its current registration: it is back (unfenced) and
/// takes the partitions it can lead (`broker_up`). Nothing otherwise.
pub fn broker_heartbeat(image: &MetadataImage, id: i32, incarnation: uuid::Uuid, unclean_default: bool) -> Vec<MetadataRecord> {
    if !image.brokers.get(&id).is_some_and(|b| b.fenced && b.incarnation == incarnation) {
        return vec![];
    }
    let mut records = vec![MetadataRecord::BrokerUnfenced { id }];
    let mut next = image.clone();
    next.apply_command(&MetadataCommand { based_on: None, records: records.clone() });
    records.extend(broker_up(&next, id, unclean_default));
    records
}

/// A broker registers. A new process of a known broker (a new incarnation) may have lost what
/// its previous one had (a wiped disk, an unsynced tail), so it first leaves every ISR and
/// leadership as a stopped broker does, and earns its way back by fetching (ISR expansion);
/// only where it was the last in-sync replica does it lead again at once. Then it takes the
/// partitions that have no leader and that it can lead (`broker_up`).
pub fn broker_registered(image: &MetadataImage, registration: &BrokerRegistration, unclean_default: bool) -> Vec<MetadataRecord> {
    let id = registration.id;
    let mut out = vec![MetadataRecord::BrokerRegistered(registration.clone())];
    if image.brokers.get(&id).is_some_and(|b| b.incarnation != registration.incarnation) {
        out.extend(leave(image, id, unclean_default));
    }
    let mut next = image.clone();
    next.apply_command(&MetadataCommand { based_on: None, records: out.clone() });
    out.extend(broker_up(&next, id, unclean_default));
    out
}

/// Each partition `id` led gets the first other in-sync replica that is live, as Kafka's
/// controller does; `id` leaves every ISR unless it is the last member (with unclean election
/// disabled, the last in-sync replica stays recorded so that only it can lead again). With
/// unclean election enabled for the topic, a partition with no live in-sync replica left gets
/// a live out-of-sync one, with whatever it has.
fn leave(image: &MetadataImage, id: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    let live = |b: i32| b != id && image.brokers.get(&b).is_some_and(|r| !r.fenced);
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let mut isr: Vec<i32> = if p.isr.len() > 1 { p.isr.iter().copied().filter(|b| *b != id).collect() } else { p.isr.clone() };
            let mut leader = if p.leader == id || p.leader == NO_LEADER {
                isr.iter().copied().find(|b| live(*b)).unwrap_or(NO_LEADER)
            } else {
                p.leader
            };
            if leader == NO_LEADER && unclean(t, unclean_default) {
                if let Some(b) = p.replicas.iter().copied().find(|b| live(*b)) {
                    tracing::warn!(topic = %t.name, partition = index, broker = b, "unclean leader election: a replica outside the ISR leads; records only the ISR had are lost");
                    leader = b;
                    isr = vec![b];
                }
            }
            if leader != p.leader || isr != p.isr {
                out.push(MetadataRecord::PartitionChanged { name: t.name.clone(), index: index as i32, leader, isr });
            }
        }
    }
    out
}

fn unclean(t: &TopicImage, default: bool) -> bool {
    t.configs.get("unclean.leader.election.enable").and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A broker (re)joins: partitions without a leader that it can lead (it is in their ISR, or it
/// is a replica and the topic allows unclean election) get it.
pub fn broker_up(image: &MetadataImage, id: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            if p.leader != NO_LEADER || !p.replicas.contains(&id) {
                continue;
            }
            let isr = if p.isr.contains(&id) {
                p.isr.clone()
            } else if unclean(t, unclean_default) {
                vec![id]
            } else {
                continue;
            };
            out.push(MetadataRecord::PartitionChanged { name: t.name.clone(), index: index as i32, leader: id, isr });
        }
    }
    out
}

/// Preferred-leader election (Kafka's auto leader rebalance): every partition whose first
/// replica is live and in sync but does not lead gets it back, so that leadership returns to
/// its even spread after a broker restarted and caught up.
pub fn preferred_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    let live = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else { continue };
            if p.leader != preferred && p.isr.contains(&preferred) && live(preferred) {
                out.push(MetadataRecord::PartitionChanged { name: t.name.clone(), index: index as i32, leader: preferred, isr: p.isr.clone() });
            }
        }
    }
    out
}

/// The election an ElectLeaders request asks for (Kafka's `ElectionType`: 0 and 1 on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica leads, if it is live and in sync.
    Preferred,
    /// A partition without a leader gets one: a live in-sync replica if there is one, else any
    /// live replica, whatever it lacks (the records only the old ISR had are lost).
    Unclean,
}

impl ElectionType {
    pub fn from_wire(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Why one partition's election on demand changed nothing (Kafka's error of each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionOutcome {
    /// UNKNOWN_TOPIC_OR_PARTITION, with Kafka's message.
    Unknown(String),
    /// ELECTION_NOT_NEEDED: the preferred replica leads already (preferred), or there is a
    /// leader (unclean).
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the first replica is fenced or out of sync.
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica at all.
    EligibleNotAvailable,
}

/// One partition's election on demand (ElectLeaders, `kafka-leader-election.sh`), by the rules
/// of Kafka's controller (`ReplicationControlManager.electLeader` and `PartitionChangeBuilder`):
/// a preferred election moves leadership to the first replica when it is live and in sync; a
/// partition without a leader takes the next live in-sync replica even then. An unclean
/// election is for a partition without a leader: a live in-sync replica if any, else the first
/// live replica, which becomes the whole ISR, whatever the topic's
/// `unclean.leader.election.enable` says (asking for it is the operator's consent).
pub fn elect_leader(image: &MetadataImage, topic: &str, index: i32, kind: ElectionType) -> Result<MetadataRecord, ElectionOutcome> {
    let t = image.topic(topic).ok_or_else(|| ElectionOutcome::Unknown(format!("No such topic as {topic}")))?;
    let p = t.partition(index).ok_or_else(|| ElectionOutcome::Unknown(format!("No such partition as {topic}-{index}")))?;
    let live = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let in_sync = |b: i32| p.isr.contains(&b) && live(b);
    let change = |leader: i32, isr: Vec<i32>| MetadataRecord::PartitionChanged { name: t.name.clone(), index, leader, isr };
    match kind {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else { return Err(ElectionOutcome::PreferredNotAvailable) };
            if p.leader == preferred {
                return Err(ElectionOutcome::NotNeeded);
            }
            if in_sync(preferred) {
                return Ok(change(preferred, p.isr.clone()));
            }
            if p.leader == NO_LEADER {
                if let Some(b) = p.replicas.iter().copied().skip(1).find(|b| in_sync(*b)) {
                    return Ok(change(b, p.isr.clone()));
                }
            }
            Err(ElectionOutcome::PreferredNotAvailable)
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return Err(ElectionOutcome::NotNeeded);
            }
            if let Some(b) = p.replicas.iter().copied().find(|b| in_sync(*b)) {
                return Ok(change(b, p.isr.clone()));
            }
            match p.replicas.iter().copied().find(|b| live(*b)) {
                Some(b) => {
                    tracing::warn!(topic = %t.name, partition = index, broker = b, "unclean leader election asked for: a replica outside the ISR leads; records only the ISR had are lost");
                    Ok(change(b, vec![b]))
                }
                None => Err(ElectionOutcome::EligibleNotAvailable),
            }
        }
    }
}

/// Reassignments whose target replicas are all in sync, to complete (KIP-455).
pub fn completed_reassignments(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (index, p) in t.partitions.iter().enumerate() {
            if p.reassigning() && p.target().iter().all(|r| p.isr.contains(r)) {
                out.push(MetadataRecord::ReassignmentCompleted { name: t.name.clone(), index: index as i32 });
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
    use proptest::prelude::*;
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
        img2.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1, false) });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2, 3], 1));
        assert!(img2.brokers[&1].fenced);
        // Broker 1 comes back: partition 0 has a leader, so nothing moves (it must catch up first).
        assert!(broker_up(&img2, 1, false).is_empty());
    }

    #[test]
    fn the_last_in_sync_replica_stays_recorded_and_leads_again_when_it_returns() {
        let img = with_topic(image(&[(1, None), (2, None)]), vec![PartitionImage::new(vec![1])]);
        let mut img2 = img.clone();
        img2.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1, false) });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        img2.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::BrokerUnfenced { id: 1 }] });
        let up = broker_up(&img2, 1, false);
        img2.apply_command(&MetadataCommand { based_on: None, records: up });
        let p = &img2.topics["t"].partitions[0];
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }

    #[test]
    fn a_restarted_broker_leaves_the_isr_and_leadership_until_it_catches_up_again() {
        let img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2, 3]), PartitionImage::new(vec![2, 1])]);
        let mut reg = img.brokers[&1].clone();
        reg.incarnation = Uuid::new_v4();
        let mut img2 = img.clone();
        img2.apply_command(&MetadataCommand { based_on: None, records: broker_registered(&img, &reg, false) });
        let p = &img2.topics["t"].partitions;
        assert_eq!((p[0].leader, p[0].isr.clone()), (2, vec![2, 3]));
        assert_eq!((p[1].leader, p[1].isr.clone()), (2, vec![2]));
        assert!(!img2.brokers[&1].fenced);
        // The same incarnation registering again (a retried registration) changes nothing else.
        let again = broker_registered(&img2, &reg, false);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn a_restarted_last_in_sync_replica_leads_again_at_once() {
        let img = with_topic(image(&[(1, None), (2, None)]), vec![PartitionImage::new(vec![1, 2])]);
        let mut img = img;
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 1, isr: vec![1] }] });
        let mut reg = img.brokers[&1].clone();
        reg.incarnation = Uuid::new_v4();
        img.apply_command(&MetadataCommand { based_on: None, records: broker_registered(&img.clone(), &reg, false) });
        let p = &img.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    }

    #[test]
    fn unclean_election_picks_a_live_out_of_sync_replica_only_when_enabled() {
        let mut img = with_topic(image(&[(1, None), (2, None)]), vec![PartitionImage::new(vec![1, 2])]);
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 1, isr: vec![1] }] });
        let mut clean = img.clone();
        clean.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1, false) });
        assert_eq!(clean.topics["t"].partitions[0].leader, NO_LEADER);
        let mut unclean = img.clone();
        unclean.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img, 1, true) });
        let p = &unclean.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn an_isr_change_from_an_older_partition_epoch_is_ignored() {
        let mut img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2, 3])]);
        let change = |isr: Vec<i32>, partition_epoch| MetadataRecord::IsrChanged { name: "t".into(), index: 0, leader: 1, leader_epoch: 0, partition_epoch, isr };
        img.apply_command(&MetadataCommand { based_on: None, records: vec![change(vec![1, 2], 0)] });
        assert_eq!(img.topics["t"].partitions[0].isr, vec![1, 2]);
        img.apply_command(&MetadataCommand { based_on: None, records: vec![change(vec![1, 2, 3], 0)] });
        assert_eq!(img.topics["t"].partitions[0].isr, vec![1, 2], "built on partition epoch 0, now 1");
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::BrokerFenced { id: 3 }, change(vec![1, 2, 3], 1)] });
        assert_eq!(img.topics["t"].partitions[0].isr, vec![1, 2], "a fenced broker is not eligible");
    }

    #[test]
    fn preferred_leaders_return_once_in_sync() {
        let mut img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2, 3])]);
        img.apply_command(&MetadataCommand { based_on: None, records: broker_down(&img.clone(), 1, false) });
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::BrokerUnfenced { id: 1 }] });
        assert!(preferred_leaders(&img).is_empty(), "1 is not in sync yet");
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 2, isr: vec![2, 3, 1] }] });
        img.apply_command(&MetadataCommand { based_on: None, records: preferred_leaders(&img.clone()) });
        assert_eq!(img.topics["t"].partitions[0].leader, 1);
        assert!(preferred_leaders(&img).is_empty());
    }

    #[test]
    fn elections_on_demand_follow_kafkas_controller() {
        let mut img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2, 3])]);
        let apply = |img: &mut MetadataImage, r: MetadataRecord| img.apply_command(&MetadataCommand { based_on: None, records: vec![r] });
        assert_eq!(elect_leader(&img, "t", 0, ElectionType::Preferred), Err(ElectionOutcome::NotNeeded));
        assert_eq!(elect_leader(&img, "t", 0, ElectionType::Unclean), Err(ElectionOutcome::NotNeeded));
        assert!(matches!(elect_leader(&img, "t", 1, ElectionType::Preferred), Err(ElectionOutcome::Unknown(m)) if m == "No such partition as t-1"));
        assert!(matches!(elect_leader(&img, "u", 0, ElectionType::Preferred), Err(ElectionOutcome::Unknown(m)) if m == "No such topic as u"));
        // 2 leads, 1 in sync: a preferred election gives 1 its leadership back, ISR unchanged.
        apply(&mut img, MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 2, isr: vec![2, 3, 1] });
        let r = elect_leader(&img, "t", 0, ElectionType::Preferred).unwrap();
        assert_eq!(r, MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 1, isr: vec![2, 3, 1] });
        // 1 out of sync: not available, and nothing changes.
        apply(&mut img, MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 2, isr: vec![2, 3] });
        assert_eq!(elect_leader(&img, "t", 0, ElectionType::Preferred), Err(ElectionOutcome::PreferredNotAvailable));
        // Only 3 in sync, and it is fenced: no leader; unclean takes the first live replica.
        apply(&mut img, MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: NO_LEADER, isr: vec![3] });
        apply(&mut img, MetadataRecord::BrokerFenced { id: 3 });
        assert_eq!(elect_leader(&img, "t", 0, ElectionType::Preferred), Err(ElectionOutcome::PreferredNotAvailable));
        let r = elect_leader(&img, "t", 0, ElectionType::Unclean).unwrap();
        assert_eq!(r, MetadataRecord::PartitionChanged { name: "t".into(), index: 0, leader: 1, isr: vec![1] });
        // Every replica fenced: nobody is eligible.
        apply(&mut img, MetadataRecord::BrokerFenced { id: 1 });
        apply(&mut img, MetadataRecord::BrokerFenced { id: 2 });
        assert_eq!(elect_leader(&img, "t", 0, ElectionType::Unclean), Err(ElectionOutcome::EligibleNotAvailable));
    }

    proptest! {
        /// Any partition state, any fenced brokers, either election: a leader elected is a
        /// live replica in the new ISR; a preferred election keeps the ISR and elects the first
        /// replica (or, with no leader at all, an in-sync one); an unclean one acts only
        /// without a leader and leaves the ISR alone when an in-sync replica is live; "not
        /// needed" exactly as Kafka says it; and after the change, electing again is not needed.
        #[test]
        fn elections_on_demand_elect_only_live_replicas_by_kafkas_rules(
            replicas in proptest::sample::subsequence(vec![1, 2, 3, 4], 1..=3).prop_shuffle(),
            isr_mask in 0u8..8,
            leader_pick in 0usize..4,
            fenced_mask in 0u8..16,
            unclean_kind in proptest::bool::ANY,
        ) {
            let mut img = image(&[(1, None), (2, None), (3, None), (4, None)]);
            for b in 1..=4 {
                if fenced_mask & (1 << (b - 1)) != 0 {
                    img.brokers.get_mut(&b).unwrap().fenced = true;
                }
            }
            let isr: Vec<i32> = replicas.iter().enumerate().filter(|(i, _)| isr_mask & (1 << i) != 0).map(|(_, b)| *b).collect();
            let leader = isr.get(leader_pick).copied().unwrap_or(NO_LEADER);
            let mut p = PartitionImage::new(replicas.clone());
            p.isr = if isr.is_empty() { vec![replicas[0]] } else { isr };
            p.leader = leader;
            let img = with_topic(img, vec![p.clone()]);
            let kind = if unclean_kind { ElectionType::Unclean } else { ElectionType::Preferred };
            let live = |b: i32| !img.brokers[&b].fenced;
            match elect_leader(&img, "t", 0, kind) {
                Ok(MetadataRecord::PartitionChanged { leader: new, isr: new_isr, .. }) => {
                    prop_assert!(live(new) && p.replicas.contains(&new) && new_isr.contains(&new));
                    prop_assert!(new_isr.iter().all(|b| p.replicas.contains(b)));
                    match kind {
                        ElectionType::Preferred => {
                            prop_assert_eq!(&new_isr, &p.isr);
                            prop_assert!(new == p.replicas[0] || (p.leader == NO_LEADER && p.isr.contains(&new)));
                        }
                        ElectionType::Unclean => {
                            prop_assert_eq!(p.leader, NO_LEADER);
                            if p.isr.iter().any(|b| live(*b)) {
                                prop_assert!(p.isr.contains(&new) && new_isr == p.isr);
                            } else {
                                prop_assert_eq!(new_isr, vec![new]);
                            }
                        }
                    }
                    let mut after = img.clone();
                    let record = elect_leader(&img, "t", 0, kind).unwrap();
                    after.apply_command(&MetadataCommand { based_on: None, records: vec![record] });
                    if kind == ElectionType::Unclean || new == p.replicas[0] {
                        prop_assert_eq!(elect_leader(&after, "t", 0, kind), Err(ElectionOutcome::NotNeeded));
                    }
                }
                Ok(other) => prop_assert!(false, "unexpected record {:?}", other),
                Err(ElectionOutcome::NotNeeded) => match kind {
                    ElectionType::Preferred => prop_assert_eq!(p.leader, p.replicas[0]),
                    ElectionType::Unclean => prop_assert_ne!(p.leader, NO_LEADER),
                },
                Err(ElectionOutcome::PreferredNotAvailable) => {
                    prop_assert_eq!(kind, ElectionType::Preferred);
                    prop_assert!(!(p.isr.contains(&p.replicas[0]) && live(p.replicas[0])));
                }
                Err(ElectionOutcome::EligibleNotAvailable) => {
                    prop_assert_eq!(kind, ElectionType::Unclean);
                    prop_assert!(p.replicas.iter().all(|b| !live(*b)));
                }
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }
    }

    #[test]
    fn a_reassignment_adds_the_new_replicas_first_and_drops_the_old_ones_once_they_are_in_sync() {
        let mut img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2])]);
        let apply = |img: &mut MetadataImage, records: Vec<MetadataRecord>| {
            img.apply_command(&MetadataCommand { based_on: None, records });
        };
        apply(&mut img, vec![MetadataRecord::ReassignmentChanged { name: "t".into(), index: 0, target: Some(vec![3, 2]) }]);
        let p = img.topics["t"].partitions[0].clone();
        assert_eq!((p.replicas.clone(), p.adding.clone(), p.removing.clone(), p.leader), (vec![3, 2, 1], vec![3], vec![1], 1));
        assert!(completed_reassignments(&img).is_empty(), "3 is not in sync yet");
        let caught_up = MetadataRecord::IsrChanged { name: "t".into(), index: 0, leader: 1, leader_epoch: 0, partition_epoch: p.partition_epoch, isr: vec![1, 2, 3] };
        apply(&mut img, vec![caught_up]);
        let done = completed_reassignments(&img);
        assert_eq!(done.len(), 1);
        apply(&mut img, done);
        let p = &img.topics["t"].partitions[0];
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.reassigning()), (vec![3, 2], vec![2, 3], false));
        assert_eq!((p.leader, p.leader_epoch), (2, 1), "the leader left, so the first in-sync target replica leads");
    }

    #[test]
    fn a_cancelled_reassignment_returns_to_the_original_replicas() {
        let mut img = with_topic(image(&[(1, None), (2, None), (3, None)]), vec![PartitionImage::new(vec![1, 2])]);
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::ReassignmentChanged { name: "t".into(), index: 0, target: Some(vec![2, 3]) }] });
        img.apply_command(&MetadataCommand { based_on: None, records: vec![MetadataRecord::ReassignmentChanged { name: "t".into(), index: 0, target: None }] });
        let p = &img.topics["t"].partitions[0];
        // As in Kafka, the original replicas come back in the merged order (target first).
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.reassigning()), (vec![2, 1], vec![1, 2], 1, false));
    }
}
