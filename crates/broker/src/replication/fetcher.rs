//! Followers: one fetcher task per leader broker, fetching every partition this broker follows
//! there in one Fetch request, as Kafka's `ReplicaFetcherThread` does.
//!
//! A partition joins a fetcher marked for truncation: before its first fetch in a new leader
//! epoch the follower asks the leader, with OffsetForLeaderEpoch, where its own latest epoch
//! ended on the leader, and cuts its log there (KIP-101/279). Whatever an old leader wrote that
//! the new one does not have is gone before the follower copies anything, so two replicas never
//! disagree below the high watermark. A leader that still sees a divergence (`diverging_epoch`
//! in its fetch answer) sends the partition back through truncation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;

use super::client::{Client, ClientError, Connector};
use super::follow::{on_epoch_end, on_fetch_answer, position, FetchAnswer};
use super::quota::ReplicationQuotas;
use crate::clock::now_ms;
use crate::partition::Partition;
use crate::sync::lock;

/// Fetch v12: replica id in the request body, leader epochs, diverging epochs; topics by name.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// How long a follower's fetch waits at the leader for new data: short enough that a follower
/// notices a leader change soon, long enough that an idle partition costs two requests a second.
const MAX_WAIT_MS: i32 = 500;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

type Key = (Arc<str>, i32);

#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    epoch: i32,
    truncate: bool,
    /// Caught up with the leader's high watermark at the last answer that carried records
    /// (Kafka's `PartitionFetchState.isReplicaInSync`: lag known and zero). A throttled replica
    /// that is in sync is never held back.
    in_sync: bool,
}

/// A partition to follow: the replica, and the leader epoch it follows in.
pub struct Assignment {
    pub partition: Arc<Partition>,
    pub epoch: i32,
}

struct Shared {
    addr: Mutex<String>,
    partitions: Mutex<BTreeMap<Key, Followed>>,
    wake: Notify,
    stop: AtomicBool,
    /// The replica manager's long-poll signal: consumers fetching from this follower (KIP-392)
    /// wait on it for what the follower copies.
    data_arrived: Arc<Notify>,
    quotas: Arc<ReplicationQuotas>,
}

pub struct Fetchers {
    me: i32,
    connector: Arc<Connector>,
    data_arrived: Arc<Notify>,
    quotas: Arc<ReplicationQuotas>,
    runtime: tokio::runtime::Handle,
    by_leader: Mutex<HashMap<i32, Arc<Shared>>>,
}

impl Fetchers {
    /// Call inside the runtime: fetcher tasks are spawned on it, also from blocking threads.
    pub fn new(me: i32, connector: Arc<Connector>, data_arrived: Arc<Notify>, quotas: Arc<ReplicationQuotas>) -> Self {
        Fetchers { me, connector, data_arrived, quotas, runtime: tokio::runtime::Handle::current(), by_leader: Mutex::new(HashMap::new()) }
    }

    /// Makes the fetchers follow exactly `wanted`: per leader broker, its address and the
    /// partitions followed there. A partition whose epoch changed goes through truncation again.
    pub fn assign(&self, wanted: HashMap<i32, (String, Vec<Assignment>)>) {
        let mut by_leader = lock(&self.by_leader);
        by_leader.retain(|leader, shared| {
            let keep = wanted.contains_key(leader);
            if !keep {
                shared.stop.store(true, Ordering::Release);
                shared.wake.notify_one();
            }
            keep
        });
        for (leader, (addr, assignments)) in wanted {
            let shared = by_leader.entry(leader).or_insert_with(|| {
                let shared = Arc::new(Shared {
                    addr: Mutex::new(addr.clone()),
                    partitions: Mutex::new(BTreeMap::new()),
                    wake: Notify::new(),
                    stop: AtomicBool::new(false),
                    data_arrived: self.data_arrived.clone(),
                    quotas: self.quotas.clone(),
                });
                self.runtime.spawn(run(shared.clone(), self.connector.clone(), self.me, leader));
                shared
            });
            *lock(&shared.addr) = addr;
            let mut partitions = lock(&shared.partitions);
            let next: BTreeMap<Key, Followed> = assignments
                .into_iter()
                .map(|a| {
                    let key = (a.partition.topic.clone(), a.partition.index);
                    let followed = match partitions.get(&key) {
                        Some(f) if f.epoch == a.epoch && Arc::ptr_eq(&f.partition, &a.partition) => f.clone(),
                        _ => Followed { partition: a.partition, epoch: a.epoch, truncate: true, in_sync: false },
                    };
                    (key, followed)
                })
                .collect();
            *partitions = next;
            drop(partitions);
            shared.wake.notify_one();
        }
    }

    pub fn stop_all(&self) {
        self.assign(HashMap::new());
    }
}

/// Connection failures that the operator must fix (an untrusted certificate, a refused
/// login) are warnings, at most one a minute; a leader that is down is only debug.
static SECURITY_FAILURE: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(60_000);

async fn run(shared: Arc<Shared>, connector: Arc<Connector>, me: i32, leader: i32) {
    let mut client: Option<Client> = None;
    while !shared.stop.load(Ordering::Acquire) {
        let followed: Vec<(Key, Followed)> = lock(&shared.partitions).iter().map(|(k, f)| (k.clone(), f.clone())).collect();
        if followed.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let c = match client.as_mut() {
            Some(c) => c,
            None => {
                let addr = lock(&shared.addr).clone();
                match Client::connect(&addr, me, CONNECT_TIMEOUT, &connector).await {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        if !e.is_security() {
                            tracing::debug!(leader, error = %e, "cannot reach the leader; retrying");
                        } else if let Some(left_out) = SECURITY_FAILURE.allow(now_ms()) {
                            tracing::warn!(leader, error = %e, left_out, "cannot connect to the leader to replicate; retrying");
                        }
                        pause(&shared).await;
                        continue;
                    }
                }
            }
        };
        let round = if followed.iter().any(|(_, f)| f.truncate) {
            truncate(c, me, &shared, &followed).await
        } else {
            fetch(c, me, &shared, &followed).await
        };
        match round {
            Ok(true) => shared.data_arrived.notify_waiters(),
            Ok(false) => pause(&shared).await,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
                client = None;
                pause(&shared).await;
            }
        }
    }
}

/// A short wait before retrying, cut short by a new assignment.
async fn pause(shared: &Shared) {
    let _ = tokio::time::timeout(RETRY_BACKOFF, shared.wake.notified()).await;
}

fn mark_truncated(shared: &Shared, key: &Key, epoch: i32, truncate: bool) {
    if let Some(f) = lock(&shared.partitions).get_mut(key) {
        if f.epoch == epoch {
            f.truncate = truncate;
        }
    }
}

fn mark_in_sync(shared: &Shared, key: &Key, epoch: i32, in_sync: bool) {
    if let Some(f) = lock(&shared.partitions).get_mut(key) {
        if f.epoch == epoch {
            f.in_sync = in_sync;
        }
    }
}

/// OffsetForLeaderEpoch for the partitions that need it, then the cut. Returns whether every
/// one of them is done (else the caller backs off before retrying).
async fn truncate(c: &mut Client, me: i32, shared: &Shared, followed: &[(Key, Followed)]) -> Result<bool, ClientError> {
    let pending: Vec<&(Key, Followed)> = followed.iter().filter(|(_, f)| f.truncate).collect();
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for ((topic, index), f) in &pending {
        let latest = f.partition.latest_epoch().unwrap_or(-1);
        topics.entry(topic).or_default().push(
            OffsetForLeaderPartition::default().with_partition(*index).with_current_leader_epoch(f.epoch).with_leader_epoch(latest),
        );
    }
    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(me)).with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| OffsetForLeaderTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect(),
    );
    let resp = c.call(OFFSET_FOR_LEADER_EPOCH_VERSION, &req, Duration::from_secs(10)).await?;
    let mut answered = 0;
    let mut all_done = true;
    for t in resp.topics {
        for r in t.partitions {
            let key: Key = (Arc::from(t.topic.as_str()), r.partition);
            let Some((_, f)) = pending.iter().find(|(k, _)| *k == key) else { continue };
            answered += 1;
            if r.error_code != 0 {
                tracing::debug!(topic = %key.0, partition = key.1, error = r.error_code, "OffsetForLeaderEpoch refused; retrying");
                all_done = false;
                continue;
            }
            if on_epoch_end(&f.partition, f.epoch, r.leader_epoch, r.end_offset) {
                mark_truncated(shared, &key, f.epoch, false);
            } else {
                all_done = false;
            }
        }
    }
    Ok(all_done && answered == pending.len())
}

/// One Fetch of every followed partition. Returns whether it made progress (else back off).
async fn fetch(c: &mut Client, me: i32, shared: &Shared, followed: &[(Key, Followed)]) -> Result<bool, ClientError> {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    // KIP-73 (Kafka's `shouldFollowerThrottle`): while this broker's follower rate is over its
    // bound, throttled replicas that are not in sync sit this fetch out.
    let over_quota = shared.quotas.follower.is_exceeded(now_ms());
    for ((topic, index), f) in followed {
        if over_quota && f.partition.follower_throttled() && !f.in_sync {
            continue;
        }
        let (Some(pos), Ok(start)) = (position(&f.partition, f.epoch), f.partition.log_start_offset()) else {
            continue;
        };
        topics.entry(topic).or_default().push(
            FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(pos.current_leader_epoch)
                .with_fetch_offset(pos.offset)
                .with_last_fetched_epoch(pos.last_fetched_epoch)
                .with_log_start_offset(start)
                .with_partition_max_bytes(1 << 20),
        );
    }
    if topics.is_empty() {
        // Everything followed here is throttled: back off, as Kafka's fetcher does.
        return Ok(false);
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                .collect(),
        );
    let resp = c.call(FETCH_VERSION, &req, Duration::from_millis(MAX_WAIT_MS as u64) + Duration::from_secs(10)).await?;
    if resp.error_code != 0 {
        return Ok(false);
    }
    let now = now_ms();
    let mut progress = false;
    for t in resp.responses {
        for r in t.partitions {
            let key: Key = (Arc::from(t.topic.as_str()), r.partition_index);
            let Some((_, f)) = followed.iter().find(|(k, _)| *k == key) else { continue };
            let answer = if r.error_code == ResponseError::OffsetOutOfRange.code() {
                FetchAnswer::OffsetOutOfRange { log_start_offset: r.log_start_offset }
            } else if r.error_code != 0 {
                tracing::trace!(topic = %key.0, partition = key.1, error = r.error_code, "replica fetch refused");
                FetchAnswer::Refused
            } else if r.diverging_epoch.epoch >= 0 {
                FetchAnswer::Diverging
            } else {
                let records = r.records.as_deref().unwrap_or(&[]);
                if f.partition.follower_throttled() {
                    shared.quotas.follower.record(records.len() as u64, now);
                }
                FetchAnswer::Records { records, high_watermark: r.high_watermark }
            };
            let answered_records = matches!(answer, FetchAnswer::Records { .. });
            let next = on_fetch_answer(&f.partition, f.epoch, answer, now);
            if answered_records {
                let caught_up = f.partition.log_end_offset().is_ok_and(|leo| leo >= r.high_watermark);
                if caught_up != f.in_sync {
                    mark_in_sync(shared, &key, f.epoch, caught_up);
                }
            }
            if next.truncate {
                mark_truncated(shared, &key, f.epoch, true);
            }
            progress |= next.progress;
        }
    }
    Ok(progress)
}
