//! Share partitions on the broker that leads their topic partition (Kafka's
//! `SharePartitionManager`): ShareFetch and ShareAcknowledge come here, clients send them to
//! each partition's leader. This broker holds the share sessions of the members fetching from
//! it and, per (group, topic, partition) it leads, the in-memory share partition (in-flight
//! records, locks, delivery counts); the group's coordinator owns the durable state.
//!
//! - Loading: the first time a share partition is used in a leader epoch, its state is read
//!   from the owner (ReadShareGroupState with this leader epoch, which fences every older
//!   leader; a direct call when the owner is this broker). State held from an earlier
//!   leadership is dropped first: what it did not store is lost (its acquisitions come back as
//!   available from the owner, which is what a crash does too).
//! - Storing: a call that changed share partitions writes their whole state to the owner
//!   (WriteShareGroupState with the leader and state epochs it read) and answers only once the
//!   owner has replicated it. Writes go out one at a time, each with the latest state of every
//!   changed partition of the group, so a later state never arrives before an earlier one.
//!   Each change is numbered (a generation): a caller succeeds once a write taken after its
//!   change succeeded; a fenced write drops the share partition (the next use reads it again)
//!   and fails every caller whose change it held; any other failure leaves the state to be
//!   written again with the next call.
//!
//! Lock expiries are not written: a stored state never holds acquisitions, so an expired lock
//! and a stored one read back the same.
//!
//! Leaving: a share partition whose topic partition this broker stops leading (or leads at a
//! newer epoch) is dropped at the next tick (`retain_led`), so a former leader holds no state
//! of partitions it no longer serves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{read_share_group_state_request as rreq, write_share_group_state_request as wreq};
use kafka_protocol::messages::{ReadShareGroupStateRequest, WriteShareGroupStateRequest};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::consumer_group::Topics;
use strom_coordinator::share_group::{from_batches, to_batches, ShareGroupConfig, ShareGroupCoordinator, ShareKey, Snapshot};

use crate::clock::now_ms;
use crate::group_service::GroupService;
use crate::peers::Peers;
use crate::sync::lock;

pub struct ShareLeader {
    node_id: i32,
    groups: Arc<GroupService>,
    peers: Peers,
    state: Mutex<State>,
    /// One write to the owners at a time (see the module doc).
    writer: tokio::sync::Mutex<()>,
    /// How long a read or write waits for the owner (`offsets.commit.timeout.ms`).
    timeout: Duration,
    lock_duration_ms: i32,
}

struct State {
    /// The share sessions and share partitions of this broker (its membership part is unused:
    /// membership is the coordinator's).
    share: ShareGroupCoordinator,
    loaded: BTreeMap<ShareKey, Loaded>,
    /// The last generation handed out.
    generation: u64,
    /// Per group, the last time changes were lost (a fenced write, a dropped leadership):
    /// callers whose change came before it fail with the error.
    lost: BTreeMap<String, (u64, ResponseError)>,
}

/// A share partition loaded from its owner.
#[derive(Debug, Clone, Copy)]
struct Loaded {
    leader_epoch: i32,
    state_epoch: i32,
    /// When it was loaded: a change older than this was made to an earlier state.
    base: u64,
    /// The last change, and the last change the owner has stored.
    changed: u64,
    stored: u64,
}

impl ShareLeader {
    pub fn new(node_id: i32, groups: Arc<GroupService>, peers: Peers, config: ShareGroupConfig, timeout: Duration) -> Self {
        let lock_duration_ms = config.record_lock_duration_ms;
        ShareLeader {
            node_id,
            groups,
            peers,
            state: Mutex::new(State { share: ShareGroupCoordinator::new(config), loaded: BTreeMap::new(), generation: 0, lost: BTreeMap::new() }),
            writer: tokio::sync::Mutex::new(()),
            timeout,
            lock_duration_ms,
        }
    }

    /// The group's `share.record.lock.duration.ms` (else the broker's
    /// `group.share.record.lock.duration.ms`), told to share consumers in every ShareFetch answer.
    pub fn lock_duration_ms(&self, group_id: &str) -> i32 {
        self.groups.share_group_config(group_id).map_or(self.lock_duration_ms, |c| c.record_lock_duration_ms)
    }

    /// Runs `f` on this broker's share state, without storing what it changed (the next
    /// `store` of the group does).
    pub fn modify<R>(&self, group_id: &str, f: impl FnOnce(&mut ShareGroupCoordinator, i64) -> R) -> R {
        self.run(group_id, f).0
    }

    /// Runs `f` on this broker's share state, then stores what it changed of `group_id`'s share
    /// partitions with their owner.
    pub async fn call<R>(&self, group_id: &str, f: impl FnOnce(&mut ShareGroupCoordinator, i64) -> R) -> (R, Result<(), ResponseError>) {
        let (r, generation) = self.run(group_id, f);
        (r, self.store(group_id, generation).await)
    }

    fn run<R>(&self, group_id: &str, f: impl FnOnce(&mut ShareGroupCoordinator, i64) -> R) -> (R, u64) {
        // The group's own settings (group configs: where it starts, how long its locks last),
        // read from the newest metadata for every call, so a change applies at once.
        let own = self.groups.share_group_config(group_id);
        let mut st = lock(&self.state);
        st.share.set_group_config(group_id, own);
        let r = f(&mut st.share, now_ms());
        st.generation += 1;
        let generation = st.generation;
        for key in st.share.dirty_of(group_id) {
            if let Some(l) = st.loaded.get_mut(&key) {
                l.changed = generation;
            }
        }
        (r, generation)
    }

    /// Whether `key` is loaded for `leader_epoch` (a fetch uses only such share partitions).
    pub fn is_loaded(&self, key: &ShareKey, leader_epoch: i32) -> bool {
        lock(&self.state).loaded.get(key).is_some_and(|l| l.leader_epoch == leader_epoch)
    }

    /// Makes sure `key` is loaded from its owner for `leader_epoch` (see the module doc). With
    /// `recheck` (a share session opens), a share partition already loaded is checked against
    /// the owner's state epoch and read again if an administrator reset or deleted the state
    /// meanwhile (only possible while the group had no members, so nothing of it was in use).
    pub async fn ensure_loaded(&self, key: &ShareKey, leader_epoch: i32, recheck: bool) -> Result<(), ResponseError> {
        let held = lock(&self.state).loaded.get(key).filter(|l| l.leader_epoch == leader_epoch).map(|l| l.state_epoch);
        if held.is_some() && !recheck {
            return Ok(());
        }
        let (snapshot, state_epoch) = self.read(key, leader_epoch).await?;
        if held == Some(state_epoch) {
            return Ok(());
        }
        let mut st = lock(&self.state);
        if st.loaded.get(key).is_some_and(|l| l.leader_epoch > leader_epoch || (l.leader_epoch == leader_epoch && l.state_epoch == state_epoch)) {
            // Another request loaded it meanwhile (or a newer leadership did).
            return Ok(());
        }
        if let Some(old) = st.loaded.remove(key) {
            if old.changed > old.stored {
                st.generation += 1;
                let g = st.generation;
                st.lost.insert(key.0.clone(), (g, ResponseError::NotLeaderOrFollower));
            }
        }
        st.share.install(key, snapshot.as_ref());
        st.generation += 1;
        let base = st.generation;
        st.loaded.insert(key.clone(), Loaded { leader_epoch, state_epoch, base, changed: base, stored: base });
        Ok(())
    }

    /// Drops the share partitions this broker no longer leads at the epoch it loaded them in
    /// (`leads` says whether it leads a key at an epoch). Their state lives on with the owner,
    /// and a new leadership reads it from there; what was not stored is lost, as on a crash,
    /// and the callers waiting for it fail with NOT_LEADER_OR_FOLLOWER.
    pub fn retain_led(&self, leads: impl Fn(&ShareKey, i32) -> bool) {
        let mut st = lock(&self.state);
        let gone: Vec<(ShareKey, Loaded)> = st.loaded.iter().filter(|(k, l)| !leads(k, l.leader_epoch)).map(|(k, l)| (k.clone(), *l)).collect();
        for (key, l) in gone {
            st.loaded.remove(&key);
            st.share.forget(&key);
            if l.changed > l.stored {
                st.generation += 1;
                let g = st.generation;
                st.lost.insert(key.0.clone(), (g, ResponseError::NotLeaderOrFollower));
            }
            tracing::info!(group = %key.0, topic_id = %key.1, partition = key.2, "dropped a share partition no longer led here");
        }
    }

    /// Session and lock timeouts (memory only: see the module doc).
    pub fn tick(&self) {
        let mut st = lock(&self.state);
        let now = now_ms();
        if st.share.next_deadline() <= now {
            st.share.tick(&Topics::default(), now);
        }
    }

    /// Whether every change of `group_id` up to `generation` is stored: `None` while not.
    fn outcome(st: &State, group_id: &str, generation: u64) -> Option<Result<(), ResponseError>> {
        if let Some((at, error)) = st.lost.get(group_id) {
            if *at >= generation {
                return Some(Err(*error));
            }
        }
        let pending = st.loaded.iter().any(|((g, _, _), l)| g == group_id && l.stored < l.changed.min(generation));
        (!pending).then_some(Ok(()))
    }

    /// Stores the changes of `group_id` up to `generation` with the owner (see the module doc).
    async fn store(&self, group_id: &str, generation: u64) -> Result<(), ResponseError> {
        let _writing = self.writer.lock().await;
        let (items, taken_at) = {
            let mut st = lock(&self.state);
            if let Some(done) = Self::outcome(&st, group_id, generation) {
                return done;
            }
            let taken = st.share.take_dirty_of(group_id);
            let items: Vec<(ShareKey, i32, i32, Snapshot)> =
                taken.into_iter().filter_map(|(key, s)| st.loaded.get(&key).map(|l| (l.leader_epoch, l.state_epoch)).map(|(le, se)| (key, le, se, s))).collect();
            (items, st.generation)
        };
        let results = self.write(group_id, &items).await;
        let mut first_error = None;
        let mut st = lock(&self.state);
        for ((key, _, _, _), result) in items.iter().zip(results) {
            let Some(l) = st.loaded.get_mut(key) else { continue };
            if l.base > taken_at {
                continue; // loaded again since: this write was of the state before.
            }
            match result {
                Ok(()) => l.stored = l.stored.max(taken_at),
                Err(e @ (ResponseError::FencedLeaderEpoch | ResponseError::FencedStateEpoch)) => {
                    tracing::info!(group = %key.0, topic_id = %key.1, partition = key.2, error = ?e, "share-partition state fenced by its owner; it is read again");
                    st.loaded.remove(key);
                    st.share.forget(key);
                    st.generation += 1;
                    let g = st.generation;
                    st.lost.insert(key.0.clone(), (g, e));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    st.share.mark_dirty(key);
                }
            }
        }
        Self::outcome(&st, group_id, generation).unwrap_or(Err(first_error.unwrap_or(ResponseError::CoordinatorNotAvailable)))
    }

    /// ReadShareGroupState from the owner of `key`'s group.
    async fn read(&self, key: &ShareKey, leader_epoch: i32) -> Result<(Option<Snapshot>, i32), ResponseError> {
        let owner = self.groups.topic.coordinator_of(&key.0).ok_or(ResponseError::CoordinatorNotAvailable)?;
        if owner == self.node_id {
            return self.groups.share_read_state(key, leader_epoch).await;
        }
        let req = ReadShareGroupStateRequest::default().with_group_id(StrBytes::from_string(key.0.clone())).with_topics(vec![rreq::ReadStateData::default()
            .with_topic_id(key.1)
            .with_partitions(vec![rreq::PartitionData::default().with_partition(key.2).with_leader_epoch(leader_epoch)])]);
        let resp = self.peers.call(owner, 0, &req, self.timeout).await.map_err(|e| {
            tracing::debug!(owner, error = %e, "reading share-partition state failed");
            ResponseError::CoordinatorNotAvailable
        })?;
        let p = resp
            .results
            .iter()
            .filter(|t| t.topic_id == key.1)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition == key.2)
            .ok_or(ResponseError::UnknownServerError)?;
        if p.error_code != 0 {
            return Err(ResponseError::try_from_code(p.error_code).unwrap_or(ResponseError::UnknownServerError));
        }
        if p.start_offset < 0 {
            return Ok((None, p.state_epoch));
        }
        let batches: Vec<_> = p.state_batches.iter().map(|b| (b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)).collect();
        let snapshot = from_batches(p.start_offset, &batches).map_err(|_| ResponseError::UnknownServerError)?;
        Ok((Some(snapshot), p.state_epoch))
    }

    /// WriteShareGroupState to the owner of `group_id`: one outcome per item.
    async fn write(&self, group_id: &str, items: &[(ShareKey, i32, i32, Snapshot)]) -> Vec<Result<(), ResponseError>> {
        if items.is_empty() {
            return Vec::new();
        }
        let owner = match self.groups.topic.coordinator_of(group_id) {
            Some(o) => o,
            None => return items.iter().map(|_| Err(ResponseError::CoordinatorNotAvailable)).collect(),
        };
        if owner == self.node_id {
            return self.groups.share_write_state(group_id, items).await;
        }
        let mut topics: BTreeMap<uuid::Uuid, Vec<wreq::PartitionData>> = BTreeMap::new();
        for ((_, topic_id, partition), leader_epoch, state_epoch, s) in items {
            let batches = to_batches(s)
                .into_iter()
                .map(|(first, last, state, count)| wreq::StateBatch::default().with_first_offset(first).with_last_offset(last).with_delivery_state(state).with_delivery_count(count))
                .collect();
            topics.entry(*topic_id).or_default().push(
                wreq::PartitionData::default()
                    .with_partition(*partition)
                    .with_leader_epoch(*leader_epoch)
                    .with_state_epoch(*state_epoch)
                    .with_start_offset(s.start_offset)
                    .with_state_batches(batches),
            );
        }
        let req = WriteShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(group_id.to_string()))
            .with_topics(topics.into_iter().map(|(topic_id, partitions)| wreq::WriteStateData::default().with_topic_id(topic_id).with_partitions(partitions)).collect());
        let resp = match self.peers.call(owner, 0, &req, self.timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(owner, error = %e, "writing share-partition state failed");
                return items.iter().map(|_| Err(ResponseError::CoordinatorNotAvailable)).collect();
            }
        };
        let codes: BTreeMap<(uuid::Uuid, i32), i16> = resp.results.iter().flat_map(|t| t.partitions.iter().map(move |p| ((t.topic_id, p.partition), p.error_code))).collect();
        items
            .iter()
            .map(|((_, t, p), _, _, _)| match codes.get(&(*t, *p)) {
                Some(0) => Ok(()),
                Some(c) => Err(ResponseError::try_from_code(*c).unwrap_or(ResponseError::UnknownServerError)),
                None => Err(ResponseError::UnknownServerError),
            })
            .collect()
    }
}
