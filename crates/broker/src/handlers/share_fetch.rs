//! ShareFetch (API 78, KIP-932): a share consumer's fetch, sent to each partition's leader. In
//! one request it acknowledges records of earlier fetches, keeps its share session with this
//! broker (epoch 0 opens it with the partitions named, later epochs add and forget partitions,
//! -1 closes it and releases what the member still holds) and acquires records for itself: each
//! record of the response's batches that the member may process is named in
//! `acquired_records`, with its delivery count, under a lock of
//! `group.share.record.lock.duration.ms`.
//!
//! The share partitions are this broker's as their leader (`share_leader.rs`): loaded from the
//! group's coordinator, the state's owner, when first used in a leader epoch, and every change
//! stored there before the answer. A partition not led here is NOT_LEADER_OR_FOLLOWER (for its
//! acknowledgements too); one whose state cannot be loaded now is answered without records (the
//! client fetches again). The response carries the batches that hold acquired records, read
//! into memory (share fetches are not zero-copy).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_fetch_response::{AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::{FetchPosition, Isolation, ReadOutcome};
use crate::session::Session;
use strom_coordinator::share_group::{Acquired, LogBatch, ShareKey, FINAL_EPOCH};
use strom_metadata::acl::Operation;

/// The broker caps what one response may carry whatever the client asks, to bound memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Records per fetch when the client does not say.
const DEFAULT_MAX_RECORDS: usize = 500;
/// At most this much of a partition's log is read per pass (the first batch always whole): a
/// fetch acquires a few hundred records, and clients ask for up to 50 MiB, which read whole
/// would cost a read of the rest of the log per fetch.
const READ_BYTES: usize = 1024 * 1024;
/// While long-polling, how often acquisition is tried again although no data arrived (a lock may
/// have expired, or another member released records).
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// One partition's answer as it is built.
#[derive(Default)]
struct Answer {
    error: Option<ResponseError>,
    ack_error: Option<ResponseError>,
    records: Vec<u8>,
    acquired: Vec<Acquired>,
    leader: Option<(i32, i32)>,
}

/// Needs READ on the group (GROUP_AUTHORIZATION_FAILED for the request) and READ on each topic
/// (TOPIC_AUTHORIZATION_FAILED for its partitions), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: ShareFetchRequest, session: &Session) -> ShareFetchResponse {
    let group_id = req.group_id.as_ref().map(|g| g.to_string()).unwrap_or_default();
    let member_id = req.member_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
    let top = |code: ResponseError| ShareFetchResponse::default().with_error_code(code.code());
    let authz = broker.authz(session);
    if !authz.allows_group(Operation::Read, &group_id) {
        return top(ResponseError::GroupAuthorizationFailed);
    }
    if group_id.is_empty() || member_id.is_empty() {
        return top(ResponseError::InvalidRequest);
    }
    let image = broker.metadata.image();
    // Each named partition's topic: its name if it exists and may be read, else the error.
    let topic_of = |id: Uuid| -> Result<String, ResponseError> {
        let t = image.topic_by_id(id).ok_or(ResponseError::UnknownTopicId)?;
        if !authz.allows_topic(Operation::Read, &t.name) {
            return Err(ResponseError::TopicAuthorizationFailed);
        }
        Ok(t.name.clone())
    };
    let mut answers: BTreeMap<(Uuid, i32), Answer> = BTreeMap::new();
    let mut add = Vec::new();
    let mut acks = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            add.push((t.topic_id, p.partition_index));
            for b in &p.acknowledgement_batches {
                acks.push((t.topic_id, p.partition_index, b.first_offset, b.last_offset, b.acknowledge_types.clone()));
            }
        }
    }
    let forget: Vec<(Uuid, i32)> = req.forgotten_topics_data.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p))).collect();
    let epoch = req.share_session_epoch;
    // The acknowledged partitions' share state, loaded for the leader epoch they are led in here.
    let mut ackable: BTreeMap<(Uuid, i32), Result<(), ResponseError>> = BTreeMap::new();
    for (topic_id, partition, ..) in &acks {
        if !ackable.contains_key(&(*topic_id, *partition)) {
            let r = load(broker, &group_id, &topic_of, *topic_id, *partition, false).await.map(|_| ());
            ackable.insert((*topic_id, *partition), r);
        }
    }
    // The session first (Kafka's newContext): its errors answer the whole request.
    let (fetch_from, stored) = broker
        .shares
        .call(&group_id, |share, now| -> Result<_, ResponseError> {
            let partitions = share.fetch_session(&group_id, &member_id, epoch, &add, &forget, !acks.is_empty(), now)?;
            let mut results = BTreeMap::new();
            for (topic_id, partition, first, last, types) in &acks {
                let loaded = ackable.get(&(*topic_id, *partition)).copied().unwrap_or(Err(ResponseError::NotLeaderOrFollower));
                let result = loaded.and_then(|_| share.acknowledge(&(group_id.clone(), *topic_id, *partition), &member_id, *first, *last, types, now));
                // The first failure of a partition is its answer.
                let entry = results.entry((*topic_id, *partition)).or_insert(Ok(()));
                if entry.is_ok() {
                    *entry = result;
                }
            }
            if epoch == FINAL_EPOCH {
                share.close_session(&group_id, &member_id);
            }
            Ok((partitions, results))
        })
        .await;
    let (partitions, ack_results) = match fetch_from {
        Ok(x) => x,
        Err(code) => return top(code),
    };
    for (tp, result) in ack_results {
        // An acknowledgement that could not be stored did not happen, for the client.
        let error = result.err().or(stored.err());
        answers.entry(tp).or_default().ack_error = error;
    }
    if !partitions.is_empty() {
        // Each partition's share state, loaded here where this broker leads it (checked against
        // the owner's state epoch when the session opens); the others are answered by
        // `acquire_all`.
        for &(topic_id, index) in &partitions {
            if let Err(code) = load(broker, &group_id, &topic_of, topic_id, index, epoch == strom_coordinator::share_group::INITIAL_EPOCH).await {
                tracing::debug!(group = %group_id, %topic_id, partition = index, error = ?code, "share partition not loaded for this fetch");
            }
        }
        let max_records = usize::try_from(req.max_records).ok().filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_RECORDS);
        let max_bytes = usize::try_from(req.max_bytes).ok().filter(|n| *n > 0).unwrap_or(MAX_RESPONSE_BYTES).min(MAX_RESPONSE_BYTES);
        let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
        loop {
            // Register for the wake-up before reading, so an append between the read and the
            // wait is not missed.
            let notified = broker.replicas.data_arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = acquire_all(broker, &group_id, &member_id, &partitions, &topic_of, max_records, max_bytes, &mut answers);
            if got || answers.values().any(|a| a.error.is_some()) || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_EVERY)) => {}
            }
        }
        // The acquisitions' delivery counts are stored before the records go out; if they
        // cannot be, the acquisitions are undone (counts included: no client saw them, so
        // they must not move a record towards archiving) and none go out (the client fetches
        // again).
        let ((), stored) = broker.shares.call(&group_id, |_, _| ()).await;
        if let Err(code) = stored {
            tracing::debug!(group = %group_id, error = ?code, "share fetch: acquisitions not stored; records released");
            broker.shares.modify(&group_id, |share, _| {
                for ((topic_id, index), a) in answers.iter_mut() {
                    share.unacquire(&(group_id.clone(), *topic_id, *index), &member_id, &a.acquired);
                    a.acquired.clear();
                    a.records.clear();
                }
            });
        }
    }
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, index), a) in answers {
        let (leader_id, leader_epoch) = a.leader.unwrap_or((-1, -1));
        let data = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(a.error.map_or(0, |e| e.code()))
            .with_acknowledge_error_code(a.ack_error.map_or(0, |e| e.code()))
            .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(leader_id).with_leader_epoch(leader_epoch))
            .with_records(Some(Bytes::from(a.records)))
            .with_acquired_records(
                a.acquired.iter().map(|r| AcquiredRecords::default().with_first_offset(r.first_offset).with_last_offset(r.last_offset).with_delivery_count(r.delivery_count)).collect(),
            );
        topics.entry(topic_id).or_default().push(data);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(broker.shares.lock_duration_ms(&group_id))
        .with_error_message(None::<StrBytes>)
        .with_responses(topics.into_iter().map(|(topic_id, partitions)| ShareFetchableTopicResponse::default().with_topic_id(topic_id).with_partitions(partitions)).collect())
}

/// Loads the share state of a partition this broker leads, for its leader epoch: the epoch, or
/// the partition's error (UNKNOWN_TOPIC_ID, TOPIC_AUTHORIZATION_FAILED, NOT_LEADER_OR_FOLLOWER,
/// or the owner's).
pub(super) async fn load(
    broker: &Broker,
    group_id: &str,
    topic_of: &(dyn Fn(Uuid) -> Result<String, ResponseError> + Sync),
    topic_id: Uuid,
    index: i32,
    recheck: bool,
) -> Result<i32, ResponseError> {
    let topic = topic_of(topic_id)?;
    let epoch = broker.replicas.leader(&topic, index)?.leader_epoch();
    broker.shares.ensure_loaded(&(group_id.to_string(), topic_id, index), epoch, recheck).await?;
    Ok(epoch)
}

/// One pass over the session's partitions: for each, read the log where the share partition
/// can next acquire and acquire what the member may have. Returns whether anything was acquired.
#[allow(clippy::too_many_arguments)]
fn acquire_all(
    broker: &Broker,
    group_id: &str,
    member_id: &str,
    partitions: &[(Uuid, i32)],
    topic_of: &dyn Fn(Uuid) -> Result<String, ResponseError>,
    max_records: usize,
    max_bytes: usize,
    answers: &mut BTreeMap<(Uuid, i32), Answer>,
) -> bool {
    let (mut records_left, mut bytes_left) = (max_records, max_bytes);
    let mut got = false;
    for &(topic_id, index) in partitions {
        if records_left == 0 || bytes_left == 0 {
            break;
        }
        let answer = answers.entry((topic_id, index)).or_default();
        let topic = match topic_of(topic_id) {
            Ok(t) => t,
            Err(code) => {
                answer.error = Some(code);
                continue;
            }
        };
        let partition = match broker.replicas.leader(&topic, index) {
            Ok(p) => p,
            Err(code) => {
                answer.error = Some(code);
                continue;
            }
        };
        answer.leader = Some((broker.config.node_id, partition.leader_epoch()));
        let key: ShareKey = (group_id.to_string(), topic_id, index);
        if !broker.shares.is_loaded(&key, partition.leader_epoch()) {
            continue;
        }
        let Ok(log_start) = partition.log_start_offset() else {
            answer.error = Some(ResponseError::NotLeaderOrFollower);
            continue;
        };
        let high_watermark = partition.high_watermark();
        let from = broker.shares.modify(group_id, |share, now| share.prepare_fetch(&key, log_start, high_watermark, now));
        if from >= high_watermark {
            continue;
        }
        let position = FetchPosition { offset: from, current_leader_epoch: -1, last_fetched_epoch: -1 };
        let read = match partition.fetch(&position, bytes_left.min(READ_BYTES), true, Isolation::ReadUncommitted) {
            Ok(r) => r,
            Err(code) => {
                answer.error = Some(code);
                continue;
            }
        };
        let ReadOutcome::Records(slices) = read.outcome else { continue };
        let mut bytes = Vec::with_capacity(slices.len);
        if let Some(e) = slices.slices.iter().find_map(|s| s.read_into(&mut bytes).err()) {
            tracing::warn!(topic = %topic, partition = index, error = %e, "share fetch read failed");
            answer.error = Some(ResponseError::KafkaStorageError);
            continue;
        }
        let batches = headers(&bytes);
        let log_batches: Vec<LogBatch> = batches.iter().map(|(b, _)| *b).collect();
        let acquired = broker.shares.modify(group_id, |share, now| share.acquire(&key, member_id, &log_batches, records_left, now));
        if acquired.is_empty() {
            continue;
        }
        got = true;
        records_left = records_left.saturating_sub(acquired.iter().map(|a| (a.last_offset - a.first_offset + 1) as usize).sum());
        // Only the batches holding acquired records go out.
        for (b, range) in &batches {
            if acquired.iter().any(|a| a.first_offset <= b.last_offset && b.first_offset <= a.last_offset) {
                answer.records.extend_from_slice(&bytes[range.clone()]);
            }
        }
        bytes_left = bytes_left.saturating_sub(answer.records.len());
        answer.acquired.extend(acquired);
    }
    got
}

/// The batches of a read (whole v2 batches, as the log stores them) with their byte ranges; a
/// batch that does not parse ends the list.
fn headers(bytes: &[u8]) -> Vec<(LogBatch, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Ok(h) = strom_storage::BatchHeader::parse(bytes, pos) else { break };
        if h.end_position() > bytes.len() || h.len == 0 {
            break;
        }
        out.push((LogBatch { first_offset: h.base_offset, last_offset: h.last_offset(), control: h.is_control() }, pos..h.end_position()));
        pos = h.end_position();
    }
    out
}
