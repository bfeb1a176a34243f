//! A partition leader's view of its followers: their log end offsets, the high watermark, and
//! which replicas are in sync. Kafka's rules (`Partition.maybeIncrementLeaderHW`,
//! `getOutOfSyncReplicas`, `maybeExpandIsr`) as a pure state machine: no clock, no I/O; the
//! replica manager feeds it follower fetches and the time, and reports ISR changes to the
//! controller.
//!
//! `Partition` holds one while this broker leads the partition; `ReplicaManager::maintain_isr`
//! sends its ISR proposals to the controller.

use std::collections::{BTreeMap, BTreeSet};

use strom_metadata::read_replica::ReplicaView;

#[derive(Clone, Debug)]
struct Follower {
    /// The follower's log end offset: the offset of its last fetch.
    leo: i64,
    /// The last time its log end reached the leader's log end as of its previous fetch.
    last_caught_up_ms: i64,
    /// The leader's log end offset when this follower last fetched.
    leader_leo_at_last_fetch: i64,
    last_fetch_ms: i64,
    /// The log start it reported in its last fetch (-1: not yet known).
    log_start: i64,
}

impl Follower {
    fn new(now_ms: i64) -> Self {
        Follower { leo: -1, last_caught_up_ms: now_ms, leader_leo_at_last_fetch: -1, last_fetch_ms: now_ms, log_start: -1 }
    }
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    me: i32,
    leo: i64,
    hw: i64,
    isr: BTreeSet<i32>,
    /// The partition epoch of the ISR above: a proposal built on it applies only while the
    /// partition is still in it.
    partition_epoch: i32,
    /// Followers this leader asked the controller to add, whose outcome it does not know yet.
    /// Until it does they count for the high watermark (Kafka's maximal ISR, KIP-497): the
    /// expansion may commit at any moment, and a member of the committed ISR must have
    /// everything below the high watermark.
    pending: BTreeSet<i32>,
    followers: BTreeMap<i32, Follower>,
}

impl LeaderState {
    /// A new leadership: `hw` is the high watermark the replica had as a follower (it never goes
    /// back), `isr` as the controller recorded it.
    pub fn new(me: i32, replicas: &[i32], isr: &[i32], partition_epoch: i32, leo: i64, hw: i64, now_ms: i64) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| (*r, Follower::new(now_ms)))
            .collect();
        LeaderState { me, leo, hw: hw.min(leo), isr: isr.iter().copied().collect(), partition_epoch, pending: BTreeSet::new(), followers }
    }

    pub fn high_watermark(&self) -> i64 {
        self.hw
    }

    pub fn isr(&self) -> &BTreeSet<i32> {
        &self.isr
    }

    /// The leader appended; returns the new high watermark (a partition whose ISR is the leader
    /// alone commits at once).
    pub fn on_append(&mut self, leo: i64) -> i64 {
        debug_assert!(leo >= self.leo, "the leader's log end never goes back while it leads");
        self.leo = leo;
        self.advance_hw()
    }

    /// A follower fetched from `fetch_offset` (so it has everything below it). Returns the new
    /// high watermark.
    pub fn on_follower_fetch(&mut self, id: i32, fetch_offset: i64, now_ms: i64) -> i64 {
        let leo = self.leo;
        let Some(f) = self.followers.get_mut(&id) else { return self.hw };
        // Kafka's lastCaughtUpTime: caught up now if it has the whole log; caught up as of its
        // previous fetch if it has what the leader had then.
        if fetch_offset >= leo {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.leader_leo_at_last_fetch && f.leader_leo_at_last_fetch >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.leo = fetch_offset.min(leo);
        f.leader_leo_at_last_fetch = leo;
        f.last_fetch_ms = now_ms;
        self.advance_hw()
    }

    /// The partition's replicas changed under this leadership (a reassignment): joining
    /// followers start with nothing known, leaving ones are forgotten.
    pub fn set_replicas(&mut self, replicas: &[i32], now_ms: i64) {
        let me = self.me;
        self.followers.retain(|id, _| replicas.contains(id));
        for r in replicas.iter().filter(|r| **r != me) {
            self.followers.entry(*r).or_insert(Follower::new(now_ms));
        }
    }

    /// The controller recorded the ISR for this leadership, in `partition_epoch`. A new partition
    /// epoch settles every pending expansion: it applied, or it can no longer apply.
    pub fn set_isr(&mut self, isr: &[i32], partition_epoch: i32) -> i64 {
        if partition_epoch != self.partition_epoch {
            self.partition_epoch = partition_epoch;
            self.pending.clear();
        }
        let isr: BTreeSet<i32> = isr.iter().copied().collect();
        // A follower that left the ISR proves itself again by fetching: what it had before may
        // be gone (the controller removes a restarted broker, whose disk may have been wiped).
        for id in self.isr.difference(&isr) {
            if let Some(f) = self.followers.get_mut(id) {
                f.leo = -1;
            }
        }
        self.isr = isr;
        self.advance_hw()
    }

    /// Followers in the ISR that have not caught up for longer than `lag_ms`
    /// (`replica.lag.time.max.ms`): the leader asks the controller to drop them.
    pub fn lagging(&self, now_ms: i64, lag_ms: i64) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(id, f)| self.isr.contains(id) && now_ms - f.last_caught_up_ms > lag_ms)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Followers outside the ISR that have caught up to the high watermark: the leader asks the
    /// controller to add them back.
    pub fn caught_up(&self) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(id, f)| !self.isr.contains(id) && f.leo >= self.hw && f.leo >= 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The log start a follower reported with its fetch (`read_replicas`).
    pub fn on_follower_log_start(&mut self, id: i32, log_start: i64) {
        if let Some(f) = self.followers.get_mut(&id) {
            f.log_start = log_start;
        }
    }

    /// KIP-392's candidates to serve a consumer at `fetch_offset` besides the leader: in-sync
    /// followers that have it (their log end has reached it, their log start is not past it),
    /// with how long ago each last caught up.
    pub fn read_replicas(&self, fetch_offset: i64, now_ms: i64) -> Vec<ReplicaView> {
        self.followers
            .iter()
            .filter(|(id, f)| self.isr.contains(id) && f.leo >= 0 && f.leo >= fetch_offset && f.log_start <= fetch_offset)
            .map(|(id, f)| ReplicaView { id: *id, log_end_offset: f.leo, time_since_caught_up_ms: now_ms - f.last_caught_up_ms })
            .collect()
    }

    /// The leader as a candidate (`read_replicas`).
    pub fn leader_view(&self) -> ReplicaView {
        ReplicaView { id: self.me, log_end_offset: self.leo, time_since_caught_up_ms: 0 }
    }

    /// The ISR this leader asks the controller for, with the partition epoch it is built on:
    /// lagging members out, caught-up replicas in (from now on pending, see `pending`). While an
    /// expansion is pending and nothing else is wanted, the recorded ISR again: its outcome
    /// settles the pending one (a later proposal committed in the same partition epoch means
    /// the earlier one never applies). `None` when there is nothing to ask.
    pub fn propose_isr(&mut self, now_ms: i64, lag_ms: i64) -> Option<(Vec<i32>, i32)> {
        let lagging = self.lagging(now_ms, lag_ms);
        let mut wanted: BTreeSet<i32> = self.isr.iter().copied().filter(|r| !lagging.contains(r)).collect();
        wanted.extend(self.caught_up());
        if wanted == self.isr && self.pending.is_empty() {
            return None;
        }
        self.pending.extend(wanted.difference(&self.isr).copied());
        Some((wanted.into_iter().collect(), self.partition_epoch))
    }

    /// The controller answered a proposal built on `partition_epoch` and the partition is still
    /// in that epoch: it did not apply, and no earlier one will. Returns the high watermark.
    pub fn proposal_settled(&mut self, partition_epoch: i32) -> i64 {
        if partition_epoch == self.partition_epoch {
            self.pending.clear();
        }
        self.advance_hw()
    }

    /// Everything below the smallest log end in the ISR (with the pending additions) is on every
    /// in-sync replica. Never goes back: a consumer may have read up to it.
    fn advance_hw(&mut self) -> i64 {
        let min = self
            .isr
            .union(&self.pending)
            .map(|id| if *id == self.me { self.leo } else { self.followers.get(id).map_or(-1, |f| f.leo) })
            .min()
            .unwrap_or(self.leo);
        if min > self.hw {
            self.hw = min;
        }
        self.hw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_replica() {
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 0, 0);
        assert_eq!(s.on_append(10), 0);
        assert_eq!(s.on_follower_fetch(2, 10, 1), 0, "3 has nothing yet");
        assert_eq!(s.on_follower_fetch(3, 4, 1), 4);
        assert_eq!(s.on_follower_fetch(3, 10, 2), 10);
        // Alone in the ISR, the leader commits what it appends.
        let mut alone = LeaderState::new(1, &[1, 2], &[1], 0, 0, 0, 0);
        assert_eq!(alone.on_append(5), 5);
    }

    #[test]
    fn read_replicas_are_the_in_sync_followers_that_have_the_offset() {
        let mut s = LeaderState::new(1, &[1, 2, 3, 4], &[1, 2, 3], 0, 0, 0, 0);
        s.on_append(10);
        s.on_follower_fetch(2, 10, 5);
        s.on_follower_fetch(3, 6, 5);
        s.on_follower_fetch(4, 10, 5);
        let ids = |v: Vec<ReplicaView>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(s.read_replicas(6, 7)), vec![2, 3], "4 is not in the ISR");
        assert_eq!(ids(s.read_replicas(8, 7)), vec![2], "3 does not have offset 8 yet");
        assert_eq!(s.read_replicas(6, 7)[0], ReplicaView { id: 2, log_end_offset: 10, time_since_caught_up_ms: 2 });
        assert_eq!(s.leader_view(), ReplicaView { id: 1, log_end_offset: 10, time_since_caught_up_ms: 0 });
        s.on_follower_log_start(2, 7);
        assert_eq!(ids(s.read_replicas(6, 7)), vec![3], "2 no longer has offset 6");
    }

    #[test]
    fn a_stuck_follower_leaves_the_isr_after_the_lag_time_and_returns_once_caught_up() {
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 0, 0);
        s.on_append(100);
        for t in (0..=40_000).step_by(500) {
            s.on_follower_fetch(2, 100, t);
            s.on_follower_fetch(3, 50, t); // fetching, but never catching up
        }
        assert_eq!(s.lagging(40_000, 30_000), vec![3]);
        assert_eq!(s.set_isr(&[1, 2], 1), 100, "without 3 the high watermark moves up");
        assert!(s.caught_up().is_empty());
        s.on_follower_fetch(3, 100, 40_500);
        assert_eq!(s.caught_up(), vec![3]);
        assert!(s.lagging(41_000, 30_000).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Fetch(usize, u8),
        Shrink(usize),
        /// The leader proposes the ISR it wants; the proposal is in flight.
        Propose,
        /// The controller commits the proposal in flight (if still valid) and the leader sees it.
        Commit,
        /// The controller answers that the proposal in flight did not apply.
        Refuse,
        Tick(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u8>().prop_map(Op::Append),
            (0usize..2, any::<u8>()).prop_map(|(f, d)| Op::Fetch(f, d)),
            (0usize..2).prop_map(Op::Shrink),
            Just(Op::Propose),
            Just(Op::Commit),
            Just(Op::Refuse),
            any::<u16>().prop_map(Op::Tick),
        ]
    }

    #[test]
    fn a_proposed_expansion_holds_the_high_watermark_until_its_outcome_is_known() {
        // Found by the simulation (seed 3): the ISR shrank to the leader alone, the leader asked
        // to add follower 2 back (caught up at 10), appended, and the high watermark moved on
        // without 2; the expansion committed and 2 was in sync without the new batch.
        let mut s = LeaderState::new(1, &[1, 2], &[1], 5, 10, 10, 0);
        assert_eq!(s.on_follower_fetch(2, 10, 1), 10);
        assert_eq!(s.propose_isr(2, 30_000), Some((vec![1, 2], 5)));
        assert_eq!(s.on_append(12), 10, "2 may join at any moment: it must have what is committed");
        assert_eq!(s.set_isr(&[1, 2], 6), 10, "committed");
        assert_eq!(s.on_follower_fetch(2, 12, 3), 12);
        // A proposal the controller refused (the partition is still in its epoch) lets go.
        let mut s = LeaderState::new(1, &[1, 2], &[1], 5, 10, 10, 0);
        s.on_follower_fetch(2, 10, 1);
        s.propose_isr(2, 30_000);
        s.on_append(12);
        assert_eq!(s.proposal_settled(5), 12);
    }

    proptest! {
        /// Whatever the followers do, the high watermark never goes back, never passes the log
        /// end of any in-sync replica, and an offset below it is on every replica that was in
        /// the ISR when it got there (so a new leader chosen from the ISR has it).
        #[test]
        fn the_high_watermark_is_safe(ops in proptest::collection::vec(op(), 1..200)) {
            let followers = [2, 3];
            let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 0, 0);
            let (mut leo, mut now) = (0i64, 0i64);
            let mut has = BTreeMap::from([(2, 0i64), (3, 0i64)]);
            let mut last_hw = 0;
            let mut epoch = 0;
            let mut in_flight: Option<(Vec<i32>, i32)> = None;
            for op in ops {
                match op {
                    Op::Append(n) => { leo += i64::from(n); s.on_append(leo); }
                    Op::Fetch(f, d) => {
                        let id = followers[f];
                        // A follower fetches from what it has, and then has at most up to the log end.
                        let offset = (has[&id] + i64::from(d)).min(leo);
                        has.insert(id, offset);
                        s.on_follower_fetch(id, offset, now);
                    }
                    Op::Shrink(f) => {
                        // A shrink the controller made (the follower's broker was fenced).
                        let isr: Vec<i32> = s.isr().iter().copied().filter(|r| *r != followers[f]).collect();
                        epoch += 1;
                        s.set_isr(&isr, epoch);
                    }
                    Op::Propose => in_flight = s.propose_isr(now, 30_000).or(in_flight),
                    Op::Commit => {
                        // As `MetadataRecord::IsrChanged` applies: only in the epoch it was built on.
                        if let Some((isr, built_on)) = in_flight.take() {
                            if built_on == epoch {
                                epoch += 1;
                                s.set_isr(&isr, epoch);
                            }
                        }
                    }
                    Op::Refuse => {
                        if let Some((_, built_on)) = in_flight.take() {
                            s.proposal_settled(built_on);
                        }
                    }
                    Op::Tick(ms) => now += i64::from(ms),
                }
                let hw = s.high_watermark();
                prop_assert!(hw >= last_hw, "high watermark went back");
                prop_assert!(hw <= leo);
                // Every replica in the committed ISR, or in a proposal that may still commit, has
                // everything below the high watermark.
                let mut members: Vec<i32> = s.isr().iter().copied().collect();
                members.extend(in_flight.iter().filter(|(_, built_on)| *built_on == epoch).flat_map(|(isr, _)| isr.iter().copied()));
                for id in members {
                    if id != 1 {
                        prop_assert!(has[&id] >= hw, "replica {} in the ISR lacks offsets below the high watermark", id);
                    }
                }
                last_hw = hw;
            }
        }
    }
}
