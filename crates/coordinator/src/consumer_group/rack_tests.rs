//! Rack-aware assignment: unit cases, and a proptest of both assignors with random
//! subscriptions, member racks and replica racks. Racks never change how many partitions a
//! member gets (range: exactly the plain counts; uniform: no partition could move to a member
//! with two fewer), every partition still goes to exactly one subscribed member, and what racks
//! change is only for the better (range: identical to plain ranges when every partition has a
//! replica in every member's rack; uniform: no swap of two partitions would put more of them
//! in their member's rack).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const T: Uuid = Uuid::from_u128(7);
const U: Uuid = Uuid::from_u128(8);

/// A topic whose partition `p` has one replica, in rack `racks[p]`.
fn topic(id: Uuid, racks: &[&str]) -> TopicMeta {
    let per_partition: Vec<BTreeSet<String>> = racks.iter().map(|r| BTreeSet::from([r.to_string()])).collect();
    TopicMeta { id, partitions: racks.len() as i32, racks: per_partition.into() }
}

#[test]
fn each_member_gets_the_partitions_of_its_rack() {
    // Partitions alternate between racks x and y; one member per rack.
    let tp = Topics::from([("t".to_string(), topic(T, &["x", "y", "x", "y", "x", "y"]))]);
    let subs = BTreeSet::from(["t".to_string()]);
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&subs, None));
    spec.members.insert("b", (&subs, None));
    spec.racks.insert("a", "y");
    spec.racks.insert("b", "x");
    for assignor in [Assignor::Uniform, Assignor::Range] {
        let out = assignor.assign(&spec, &tp);
        assert_eq!(out["a"][&T], BTreeSet::from([1, 3, 5]), "{assignor:?}");
        assert_eq!(out["b"][&T], BTreeSet::from([0, 2, 4]), "{assignor:?}");
    }
    // Without member racks, the plain assignment: range's contiguous halves.
    spec.racks.clear();
    let out = Assignor::Range.assign(&spec, &tp);
    assert_eq!(out["a"][&T], BTreeSet::from([0, 1, 2]));
}

#[test]
fn balance_wins_over_racks() {
    // Every partition is in rack x, one member of two is: still three each.
    let tp = Topics::from([("t".to_string(), topic(T, &["x"; 6]))]);
    let subs = BTreeSet::from(["t".to_string()]);
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&subs, None));
    spec.members.insert("b", (&subs, None));
    spec.racks.insert("b", "x");
    for assignor in [Assignor::Uniform, Assignor::Range] {
        let out = assignor.assign(&spec, &tp);
        assert_eq!((out["a"][&T].len(), out["b"][&T].len()), (3, 3), "{assignor:?}");
    }
}

#[test]
fn range_places_the_most_constrained_partition_first() {
    // Partition 1 is only in rack p, partition 0 in p and q; a (rack p) and b (rack q) get one
    // each: a must take 1 for b to have a partition of its rack.
    let racks: Vec<BTreeSet<String>> = vec![BTreeSet::from(["p".into(), "q".into()]), BTreeSet::from(["p".into()])];
    let tp = Topics::from([("t".to_string(), TopicMeta { id: T, partitions: 2, racks: racks.into() })]);
    let subs = BTreeSet::from(["t".to_string()]);
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&subs, None));
    spec.members.insert("b", (&subs, None));
    spec.racks.insert("a", "p");
    spec.racks.insert("b", "q");
    let out = Assignor::Range.assign(&spec, &tp);
    assert_eq!((out["a"][&T].clone(), out["b"][&T].clone()), (BTreeSet::from([1]), BTreeSet::from([0])));
}

#[test]
fn uniform_swaps_only_within_what_members_subscribe_to() {
    // a subscribes to t only, b to u only: racks cannot move a partition across topics.
    let tp = Topics::from([("t".to_string(), topic(T, &["y", "y"])), ("u".to_string(), topic(U, &["x", "x"]))]);
    let (st, su) = (BTreeSet::from(["t".to_string()]), BTreeSet::from(["u".to_string()]));
    let mut spec = AssignorSpec::default();
    spec.members.insert("a", (&st, None));
    spec.members.insert("b", (&su, None));
    spec.racks.insert("a", "x");
    spec.racks.insert("b", "y");
    let out = Assignor::Uniform.assign(&spec, &tp);
    assert_eq!(out["a"], Assignment::from([(T, BTreeSet::from([0, 1]))]));
    assert_eq!(out["b"], Assignment::from([(U, BTreeSet::from([0, 1]))]));
}

#[test]
fn racks_go_through_the_partition_metadata_record() {
    let tp = Topics::from([("t".to_string(), topic(T, &["x", "y"]))]);
    let mut c = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    let req = HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        rack_id: Some("y".into()),
        rebalance_timeout_ms: 1000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    };
    assert_eq!(c.heartbeat(req, &tp, 0).member_epoch, 1);
    let mut replay = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    for (k, v) in c.take_records("g") {
        assert!(replay.load_record(&k, v.as_deref(), 0).is_ok());
    }
    assert_eq!(replay.groups["g"].subscribed_topics, c.groups["g"].subscribed_topics);
    assert_eq!(replay.groups["g"].subscribed_topics["t"].racks_of(1), Some(&BTreeSet::from(["y".to_string()])));
    // A replica moving to another rack is a change of the subscribed topics: the group re-assigns.
    let moved = Topics::from([("t".to_string(), topic(T, &["x", "x"]))]);
    let beat = HeartbeatRequest { group_id: "g".into(), member_id: "a".into(), member_epoch: 1, rebalance_timeout_ms: -1, ..Default::default() };
    assert_eq!(c.heartbeat(beat, &moved, 1).member_epoch, 2);
}

/// Each member: its topics (a bit per topic) and its rack, if any.
type MemberSpec = (u8, Option<u8>);
/// Per topic, per partition, the racks of its replicas.
type TopicRacks = Vec<Vec<u8>>;
/// Member id, its topics, its rack.
type Built = Vec<(String, BTreeSet<String>, Option<String>)>;

/// Members with random subscriptions to topics t0..t2 and racks among r0..r2 (or none); the
/// topics' partitions have one to three replicas in random racks.
fn scenario() -> impl Strategy<Value = (Vec<MemberSpec>, Vec<TopicRacks>)> {
    let members = proptest::collection::vec((1u8..8, proptest::option::of(0u8..3)), 1..6);
    let partition = proptest::collection::vec(0u8..3, 0..3);
    let topics = proptest::collection::vec(proptest::collection::vec(partition, 0..9), 3);
    (members, topics)
}

fn build(members: &[MemberSpec], topic_racks: &[TopicRacks]) -> (Topics, Built) {
    let topics: Topics = topic_racks
        .iter()
        .enumerate()
        .map(|(i, parts)| {
            let racks: Vec<BTreeSet<String>> = parts.iter().map(|rs| rs.iter().map(|r| format!("r{r}")).collect()).collect();
            (format!("t{i}"), TopicMeta { id: Uuid::from_u128(i as u128 + 1), partitions: parts.len() as i32, racks: racks.into() })
        })
        .collect();
    let members = members
        .iter()
        .enumerate()
        .map(|(i, (subs, rack))| {
            let s: BTreeSet<String> = (0..3).filter(|b| subs & (1 << b) != 0).map(|b| format!("t{b}")).collect();
            (format!("m{i}"), s, rack.map(|r| format!("r{r}")))
        })
        .collect();
    (topics, members)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn racks_keep_the_balance_and_only_improve_locality((members, topic_racks) in scenario()) {
        let (topics, members) = build(&members, &topic_racks);
        let mut spec = AssignorSpec::default();
        for (m, s, r) in &members {
            spec.members.insert(m.as_str(), (s, None));
            if let Some(r) = r {
                spec.racks.insert(m.as_str(), r.as_str());
            }
        }
        let mut plain_spec = spec.clone();
        plain_spec.racks.clear();
        let by_id: BTreeMap<Uuid, (&String, &TopicMeta)> = topics.iter().map(|(n, t)| (t.id, (n, t))).collect();
        let subscribed_to = |m: &str, t: &Uuid| members.iter().any(|(id, s, _)| id == m && s.contains(by_id[t].0));
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let out = assignor.assign(&spec, &topics);
            let plain = assignor.assign(&plain_spec, &topics);
            // Every partition of a subscribed topic exactly once, to a member subscribed to it.
            let mut seen = BTreeSet::new();
            for (m, a) in &out {
                for (t, ps) in a {
                    prop_assert!(subscribed_to(m, t), "{assignor:?} gave {m} a topic it does not subscribe to");
                    for p in ps {
                        prop_assert!(seen.insert((*t, *p)), "{assignor:?} gave {t}/{p} twice");
                    }
                }
            }
            let plain_all: BTreeSet<(Uuid, i32)> = plain.values().flat_map(|a| a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))).collect();
            prop_assert_eq!(&seen, &plain_all, "{:?} assigns other partitions with racks", assignor);
            let count = |o: &BTreeMap<String, Assignment>, m: &str| o.get(m).map_or(0, |a| a.values().map(BTreeSet::len).sum::<usize>());
            match assignor {
                Assignor::Range => {
                    // The same count per member and topic as the plain ranges.
                    for (m, _, _) in &members {
                        for t in by_id.keys() {
                            let n = |o: &BTreeMap<String, Assignment>| o.get(m).and_then(|a| a.get(t)).map_or(0, BTreeSet::len);
                            prop_assert_eq!(n(&out), n(&plain));
                        }
                    }
                    // Every partition with a replica in every member's rack: the plain ranges.
                    let member_racks: BTreeSet<&str> = spec.racks.values().copied().collect();
                    let everywhere = topics.values().all(|t| (0..t.partitions).all(|p| t.racks_of(p).is_some_and(|rs| member_racks.iter().all(|r| rs.contains(*r)))));
                    if everywhere && spec.racks.len() == members.len() {
                        prop_assert_eq!(&out, &plain);
                    }
                }
                Assignor::Uniform => {
                    // Balanced as without racks: no partition could go to an eligible member with
                    // two fewer.
                    for (m, a) in &out {
                        for t in a.keys() {
                            for (o, s, _) in &members {
                                if s.contains(by_id[t].0) {
                                    prop_assert!(count(&out, o) + 1 >= count(&out, m), "{m} has {} and {o} {}", count(&out, m), count(&out, o));
                                }
                            }
                        }
                    }
                    // No swap of two partitions between two members (each allowed the other's)
                    // would put more partitions in their owner's rack.
                    let local = |m: &str, t: &Uuid, p: i32| spec.racks.get(m).is_some_and(|r| by_id[t].1.racks_of(p).is_some_and(|rs| rs.contains(*r)));
                    let owned: Vec<(&String, Uuid, i32)> = out.iter().flat_map(|(m, a)| a.iter().flat_map(move |(t, ps)| ps.iter().map(move |p| (m, *t, *p)))).collect();
                    for (a, ta, pa) in &owned {
                        if local(a, ta, *pa) {
                            continue;
                        }
                        for (b, tb, pb) in &owned {
                            if a == b || !local(b, ta, *pa) || !subscribed_to(a, tb) || !subscribed_to(b, ta) {
                                continue;
                            }
                            prop_assert!(local(b, tb, *pb) && !local(a, tb, *pb), "swapping {ta}/{pa} of {a} and {tb}/{pb} of {b} would gain");
                        }
                    }
                }
            }
        }
    }
}
