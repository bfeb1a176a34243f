//! One member of a consumer group and its reconciliation towards its target assignment
//! (Kafka's ConsumerGroupMember and CurrentAssignmentBuilder).
//!
//! A member's *assigned* partitions are those it may own now; its partitions *pending
//! revocation* are those it still owns but must give up. It keeps its epoch until it has
//! acknowledged every revocation (a heartbeat whose owned partitions no longer name them), and
//! is handed a partition only once no other member holds it (assigned or pending revocation):
//! until then it waits in UNRELEASED_PARTITIONS with the partition left out.

use std::collections::BTreeSet;

use super::types::Assignment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Has its whole share of the target of its epoch.
    Stable,
    /// Must acknowledge the revocation of partitions before moving to a newer epoch.
    UnrevokedPartitions,
    /// At the target epoch but waiting for partitions other members still hold.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Removed when not heard from by then.
    pub session_deadline: i64,
    /// In UnrevokedPartitions: fenced if it has not revoked by then (its rebalance timeout).
    pub revocation_deadline: Option<i64>,
    /// Set for a member that uses the classic protocol (JoinGroup, SyncGroup, Heartbeat): its
    /// session timeout and the protocols it joined with (Kafka's ClassicMemberMetadata).
    pub classic: Option<super::record::ClassicMemberMetadata>,
    /// A classic member told to rejoin must join, and one that joined must sync, by then (its
    /// rebalance timeout, Kafka's join and sync timeouts), else it is removed.
    pub classic_deadline: Option<i64>,
}

impl Member {
    pub fn new(id: String, now: i64, session_timeout_ms: i32) -> Member {
        Member {
            id,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now.saturating_add(i64::from(session_timeout_ms)),
            revocation_deadline: None,
            classic: None,
            classic_deadline: None,
        }
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.epoch {
            self.previous_epoch = self.epoch;
            self.epoch = epoch;
        }
    }

    /// One reconciliation step. `target` is the member's share of the target assignment of
    /// `target_epoch`; `held_by_other(topic, partition)` says whether another member holds the
    /// partition (assigned or pending revocation); `owned` is what the heartbeat reported (`None`:
    /// not reported, which never counts as a revocation acknowledged).
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        held_by_other: impl Fn(&uuid::Uuid, i32) -> bool,
    ) {
        match self.state {
            MemberState::Stable if self.epoch == target_epoch => {}
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                let current = self.assigned.clone();
                self.next(self.epoch, &current, target_epoch, target, owned, &held_by_other);
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &self.pending_revocation) {
                    return;
                }
                let current = self.assigned.clone();
                self.next(self.epoch + 1, &current, target_epoch, target, owned, &held_by_other);
            }
        }
    }

    fn next(
        &mut self,
        epoch: i32,
        current: &Assignment,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        held_by_other: &impl Fn(&uuid::Uuid, i32) -> bool,
    ) {
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut pending_assignment = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<&uuid::Uuid> = target.keys().chain(current.keys()).collect();
        for topic in topics {
            let empty = BTreeSet::new();
            let t = target.get(topic).unwrap_or(&empty);
            let c = current.get(topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = c.intersection(t).copied().collect();
            let gone: BTreeSet<i32> = c.difference(&keep).copied().collect();
            let mut add: BTreeSet<i32> = t.difference(&keep).copied().collect();
            let before = add.len();
            add.retain(|p| !held_by_other(topic, *p));
            unreleased |= add.len() != before;
            if !keep.is_empty() {
                assigned.insert(*topic, keep);
            }
            if !gone.is_empty() {
                revoke.insert(*topic, gone);
            }
            if !add.is_empty() {
                pending_assignment.insert(*topic, add);
            }
        }
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            self.state = MemberState::UnrevokedPartitions;
            self.set_epoch(epoch);
            self.assigned = assigned;
            self.pending_revocation = revoke;
            return;
        }
        for (topic, ps) in pending_assignment {
            assigned.entry(topic).or_default().extend(ps);
        }
        self.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
        self.set_epoch(target_epoch);
        self.assigned = assigned;
        self.pending_revocation = Assignment::new();
    }

    /// Whether the member holds the partition (assigned or pending revocation).
    pub fn holds(&self, topic: &uuid::Uuid, partition: i32) -> bool {
        self.assigned.get(topic).is_some_and(|s| s.contains(&partition))
            || self.pending_revocation.get(topic).is_some_and(|s| s.contains(&partition))
    }
}

/// Whether `owned` still names any of `partitions`; an owned set that was not reported counts as
/// still owning them (Kafka's `ownsRevokedPartitions`).
fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(topic, ps)| partitions.get(topic).is_some_and(|r| ps.iter().any(|p| r.contains(p))))
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, ps)| ps.is_empty() || b.get(topic).is_some_and(|s| ps.is_subset(s)))
}
