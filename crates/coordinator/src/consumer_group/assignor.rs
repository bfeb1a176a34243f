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

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::types::{Assignment, Topics};

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

/// The assignor's input: each member's subscribed topic names and its previous target.
#[derive(Debug, Clone, Default)]
pub struct AssignorSpec<'a> {
    pub members: BTreeMap<&'a str, (&'a BTreeSet<String>, Option<&'a Assignment>)>,
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
    for name in subscribed {
        let Some(meta) = topics.get(name) else { continue };
        let members: Vec<&str> = spec.members.iter().filter(|(_, (s, _))| s.contains(name)).map(|(m, _)| *m).collect();
        if members.is_empty() || meta.partitions <= 0 {
            continue;
        }
        let n = meta.partitions as usize;
        let (each, extra) = (n / members.len(), n % members.len());
        let mut next = 0usize;
        for (i, m) in members.iter().enumerate() {
            let count = each + usize::from(i < extra);
            if count > 0 {
                let set = out.entry(m.to_string()).or_default().entry(meta.id).or_default();
                set.extend((next..next + count).map(|p| p as i32));
            }
            next += count;
        }
    }
    out
}

fn uniform(spec: &AssignorSpec<'_>, topics: &Topics) -> BTreeMap<String, Assignment> {
    // Which members may take each topic's partitions.
    let mut eligible: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut partitions: Vec<(Uuid, i32)> = Vec::new();
    let subscribed: BTreeSet<&String> = spec.members.values().flat_map(|(s, _)| s.iter()).collect();
    for name in subscribed {
        let Some(meta) = topics.get(name) else { continue };
        let members: Vec<&str> = spec.members.iter().filter(|(_, (s, _))| s.contains(name)).map(|(m, _)| *m).collect();
        partitions.extend((0..meta.partitions.max(0)).map(|p| (meta.id, p)));
        eligible.insert(meta.id, members);
    }
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
        let Some(best) = eligible.get(&tp.0).and_then(|e| e.iter().min_by_key(|m| (count.get(*m).copied().unwrap_or(0), **m))) else {
            continue;
        };
        owner.insert(*tp, best);
        *count.entry(best).or_default() += 1;
    }
    // Balance: move a partition from a member to one that may take it and has at least two
    // fewer, until none can move. Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut moved = false;
        for (tp, from) in owner.clone() {
            let from_count = count.get(from).copied().unwrap_or(0);
            let target = eligible
                .get(&tp.0)
                .and_then(|e| e.iter().filter(|m| count.get(*m).copied().unwrap_or(0) + 1 < from_count).min_by_key(|m| (count.get(*m).copied().unwrap_or(0), **m)));
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
    let mut out: BTreeMap<String, Assignment> = spec.members.keys().map(|m| (m.to_string(), Assignment::new())).collect();
    for ((topic, p), m) in owner {
        out.entry(m.to_string()).or_default().entry(topic).or_default().insert(p);
    }
    out
}
