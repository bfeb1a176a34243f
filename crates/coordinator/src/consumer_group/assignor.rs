//! The server-side assignors of KIP-848 (`group.consumer.assignors`): from the members'
//! subscriptions and the topics, each member's target partitions.
//!
//! - `uniform` (the default, Kafka's UniformAssignor): every partition of the subscribed topics to
//!   one member subscribed to its topic, as evenly as the subscriptions allow, and sticky: a
//!   member keeps what it had in the previous target unless the balance needs it elsewhere, so a
//!   join or a leave moves few partitions.
//! - `range` (Kafka's RangeAssignor): per topic, the members subscribed to it, in member-id
//!   order, each get a contiguous range of partitions, the first ones one more when the count
//!   does not divide (co-partitioned topics land together).
//!
//! Both are deterministic: the same input gives the same target, whatever the maps' history.
//!
//! Rack awareness (KIP-848's `RackId`, the replicas' `broker.rack`): when members have racks and
//! partitions' replicas have racks, each assignor prefers giving a member partitions with a
//! replica in its rack (so it can fetch from that replica, KIP-392), without changing how many
//! partitions each member gets:
//!
//! - `range` keeps each member's count per topic; the partitions with the fewest members in
//!   their racks are placed first, each with the first member (in member-id order) in one of its
//!   racks that still has room, and the rest fill the remaining room lowest first. When every
//!   partition has a replica in every member's rack this is exactly the plain ranges.
//! - `uniform` breaks ties towards a member in the partition's rack when it places a partition,
//!   then swaps pairs of partitions between members while a swap puts more partitions in their
//!   member's rack (every count stays, so the balance does too; each swap gains, so it ends).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::types::{Assignment, TopicMeta, Topics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }
}

/// The assignor's input: each member's subscribed topic names and its previous target, and the
/// racks of the members that sent one.
#[derive(Debug, Clone, Default)]
pub struct AssignorSpec<'a> {
    pub members: BTreeMap<&'a str, (&'a BTreeSet<String>, Option<&'a Assignment>)>,
    pub racks: BTreeMap<&'a str, &'a str>,
}

impl AssignorSpec<'_> {
    /// Whether member `m`'s rack holds a replica of partition `p` of `meta`.
    fn local(&self, m: &str, meta: &TopicMeta, p: i32) -> bool {
        self.racks.get(m).is_some_and(|r| meta.racks_of(p).is_some_and(|rs| rs.contains(*r)))
    }

    /// Whether racks can matter: some member has one and some subscribed partition has some.
    fn rack_aware(&self, topics: &Topics) -> bool {
        !self.racks.is_empty()
            && self.members.values().flat_map(|(s, _)| s.iter()).any(|t| topics.get(t).is_some_and(|m| m.racks.iter().any(|r| !r.is_empty())))
    }
}

impl Assignor {
    /// Each member's target. Every partition of every subscribed topic that exists in `topics`
    /// goes to exactly one member subscribed to it.
    pub fn assign(self, spec: &AssignorSpec<'_>, topics: &Topics) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(spec, topics),
            Assignor::Range => range(spec, topics),
        }
    }
}

fn range(spec: &AssignorSpec<'_>, topics: &Topics) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec.members.keys().map(|m| (m.to_string(), Assignment::new())).collect();
    let subscribed: BTreeSet<&String> = spec.members.values().flat_map(|(s, _)| s.iter()).collect();
    let rack_aware = spec.rack_aware(topics);
    for name in subscribed {
        let Some(meta) = topics.get(name) else { continue };
        let members: Vec<&str> = spec.members.iter().filter(|(_, (s, _))| s.contains(name)).map(|(m, _)| *m).collect();
        if members.is_empty() || meta.partitions <= 0 {
            continue;
        }
        let n = meta.partitions as usize;
        let (each, extra) = (n / members.len(), n % members.len());
        let quotas: Vec<usize> = (0..members.len()).map(|i| each + usize::from(i < extra)).collect();
        let owners = if rack_aware { range_by_rack(spec, meta, &members, &quotas) } else { range_plain(&quotas) };
        for (p, i) in owners.into_iter().enumerate() {
            out.entry(members[i].to_string()).or_default().entry(meta.id).or_default().insert(p as i32);
        }
    }
    out
}

/// Contiguous ranges: partition index to member index.
fn range_plain(quotas: &[usize]) -> Vec<usize> {
    quotas.iter().enumerate().flat_map(|(i, q)| std::iter::repeat_n(i, *q)).collect()
}

/// The same counts as [`range_plain`], partitions placed in their members' racks where possible.
fn range_by_rack(spec: &AssignorSpec<'_>, meta: &TopicMeta, members: &[&str], quotas: &[usize]) -> Vec<usize> {
    let n: usize = quotas.iter().sum();
    let mut room = quotas.to_vec();
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let local: Vec<Vec<usize>> = (0..n).map(|p| (0..members.len()).filter(|i| spec.local(members[*i], meta, p as i32)).collect()).collect();
    // The most constrained partitions first (fewest members in their racks), then in order.
    let mut order: Vec<usize> = (0..n).filter(|p| !local[*p].is_empty()).collect();
    order.sort_by_key(|p| (local[*p].len(), *p));
    for p in order {
        if let Some(&i) = local[p].iter().find(|i| room[**i] > 0) {
            owner[p] = Some(i);
            room[i] -= 1;
        }
    }
    // What is left: lowest partition first to the first member with room.
    let mut i = 0;
    for slot in owner.iter_mut().filter(|o| o.is_none()) {
        while i < room.len() && room[i] == 0 {
            i += 1;
        }
        if i < room.len() {
            *slot = Some(i);
            room[i] -= 1;
        }
    }
    owner.into_iter().map(|o| o.unwrap_or(0)).collect()
}

fn uniform(spec: &AssignorSpec<'_>, topics: &Topics) -> BTreeMap<String, Assignment> {
    // Which members may take each topic's partitions.
    let mut eligible: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut partitions: Vec<(Uuid, i32)> = Vec::new();
    let mut metas: BTreeMap<Uuid, &TopicMeta> = BTreeMap::new();
    let subscribed: BTreeSet<&String> = spec.members.values().flat_map(|(s, _)| s.iter()).collect();
    for name in subscribed {
        let Some(meta) = topics.get(name) else { continue };
        let members: Vec<&str> = spec.members.iter().filter(|(_, (s, _))| s.contains(name)).map(|(m, _)| *m).collect();
        partitions.extend((0..meta.partitions.max(0)).map(|p| (meta.id, p)));
        eligible.insert(meta.id, members);
        metas.insert(meta.id, meta);
    }
    let rack_aware = spec.rack_aware(topics);
    let local = |m: &str, tp: &(Uuid, i32)| rack_aware && metas.get(&tp.0).is_some_and(|meta| spec.local(m, meta, tp.1));
    let all: BTreeSet<(Uuid, i32)> = partitions.iter().copied().collect();
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    let mut count: BTreeMap<&str, usize> = spec.members.keys().map(|m| (*m, 0)).collect();
    // Stickiness: a member keeps what it had and may still have.
    for (m, (_, previous)) in &spec.members {
        for (topic, ps) in previous.iter().flat_map(|a| a.iter()) {
            if !eligible.get(topic).is_some_and(|e| e.contains(m)) {
                continue;
            }
            for p in ps {
                if all.contains(&(*topic, *p)) {
                    if let std::collections::btree_map::Entry::Vacant(v) = owner.entry((*topic, *p)) {
                        v.insert(m);
                        *count.entry(m).or_default() += 1;
                    }
                }
            }
        }
    }
    // Every partition without an owner to the least loaded member that may take it. Partitions
    // go round-robin over the topics' partition numbers so that one topic spreads too.
    partitions.sort_by_key(|(t, p)| (*p, *t));
    for tp in &partitions {
        if owner.contains_key(tp) {
            continue;
        }
        let Some(best) = eligible.get(&tp.0).and_then(|e| e.iter().min_by_key(|m| (count.get(*m).copied().unwrap_or(0), !local(m, tp), **m))) else {
            continue;
        };
        owner.insert(*tp, best);
        *count.entry(best).or_default() += 1;
    }
    // Balance, then (with racks) swaps into racks, as long as either changes anything: a swap
    // changes which topics a member holds, which may let a partition move for balance again.
    // Moves lower the sum of squared counts and swaps keep it while adding partitions in their
    // member's rack, so this ends.
    loop {
        balance(&mut owner, &mut count, &eligible, &local);
        if !rack_aware || !swap_into_racks(&mut owner, &eligible, &local) {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = spec.members.keys().map(|m| (m.to_string(), Assignment::new())).collect();
    for ((topic, p), m) in owner {
        out.entry(m.to_string()).or_default().entry(topic).or_default().insert(p);
    }
    out
}

/// Swaps pairs of partitions between two members while the swap puts more partitions in their
/// owner's rack: partition `a_tp` (of member `a`, not in its rack) for one of `b`'s where `b` is
/// in `a_tp`'s rack, each member allowed the other's topic. Counts do not change; each swap adds
/// at least one partition in its owner's rack, so there are fewer swaps than partitions.
/// Whether it swapped any.
fn swap_into_racks<'m>(owner: &mut BTreeMap<(Uuid, i32), &'m str>, eligible: &BTreeMap<Uuid, Vec<&'m str>>, local: &impl Fn(&str, &(Uuid, i32)) -> bool) -> bool {
    let mut any = false;
    let mut held: BTreeMap<&'m str, BTreeSet<(Uuid, i32)>> = BTreeMap::new();
    for (tp, m) in owner.iter() {
        held.entry(*m).or_default().insert(*tp);
    }
    let may = |m: &str, tp: &(Uuid, i32)| eligible.get(&tp.0).is_some_and(|e| e.contains(&m));
    loop {
        let mut swapped = false;
        let remote: Vec<((Uuid, i32), &'m str)> = owner.iter().filter(|(tp, m)| !local(m, tp)).map(|(tp, m)| (*tp, *m)).collect();
        for (a_tp, a) in remote {
            if owner.get(&a_tp) != Some(&a) || local(a, &a_tp) {
                continue;
            }
            let others = eligible.get(&a_tp.0).map(|e| e.as_slice()).unwrap_or_default();
            let swap = others.iter().filter(|b| **b != a && local(b, &a_tp)).find_map(|b| {
                // Prefer a partition that lands in a's rack; never take one from b's rack to
                // a member outside it (no gain then).
                held.get(b)?
                    .iter()
                    .filter(|q| may(a, q) && (local(a, q) || !local(b, q)))
                    .max_by_key(|q| (local(a, q), std::cmp::Reverse(**q)))
                    .map(|q| (*b, *q))
            });
            if let Some((b, b_tp)) = swap {
                owner.insert(a_tp, b);
                owner.insert(b_tp, a);
                if let Some(h) = held.get_mut(a) {
                    h.remove(&a_tp);
                    h.insert(b_tp);
                }
                if let Some(h) = held.get_mut(b) {
                    h.remove(&b_tp);
                    h.insert(a_tp);
                }
                swapped = true;
            }
        }
        if !swapped {
            return any;
        }
        any = true;
    }
}

/// Moves a partition from a member to one that may take it and has at least two fewer, until
/// none can move (each move lowers the sum of squared counts, so this ends). With racks, a
/// partition outside its member's rack moves first, preferably to a member in its rack.
fn balance<'m>(owner: &mut BTreeMap<(Uuid, i32), &'m str>, count: &mut BTreeMap<&'m str, usize>, eligible: &BTreeMap<Uuid, Vec<&'m str>>, local: &impl Fn(&str, &(Uuid, i32)) -> bool) {
    loop {
        let mut moved = false;
        let mut order: Vec<((Uuid, i32), &'m str)> = owner.iter().map(|(tp, m)| (*tp, *m)).collect();
        // Stable: without racks, the partitions' order.
        order.sort_by_key(|(tp, m)| local(m, tp));
        for (tp, from) in order {
            let from_count = count.get(from).copied().unwrap_or(0);
            let target = eligible
                .get(&tp.0)
                .and_then(|e| e.iter().filter(|m| count.get(*m).copied().unwrap_or(0) + 1 < from_count).min_by_key(|m| (count.get(*m).copied().unwrap_or(0), !local(m, &tp), **m)));
            if let Some(to) = target {
                owner.insert(tp, to);
                *count.entry(from).or_default() -= 1;
                *count.entry(to).or_default() += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}
