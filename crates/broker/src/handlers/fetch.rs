//! Fetch: whole batches from each requested partition, long-polling until `min_bytes` have
//! arrived or `max_wait_ms` passes.
//!
//! A request with a replica id is a follower's (`replication::fetcher`): it reads up to the log
//! end rather than the high watermark, and its fetch offset tells the leader what the follower
//! has (`Partition::follower_fetched`), which is what moves the high watermark.
//!
//! Fetch v0-3 read message formats v0 (v0-1) and v1 (v2-3): each partition's batches are
//! down-converted as they are read (`strom_storage::down_convert_slices`, one batch in memory at
//! a time) and sent as bytes; v4 and later send the segment bytes by `sendfile` (`zero_copy`).
//!
//! KIP-392: a consumer's Fetch v11+ carries its rack (`client.rack`). A follower serves such a
//! fetch up to its own high watermark, as Kafka does; a leader whose `replica.selector.class`
//! picks another replica answers the partition with no records and `preferred_read_replica`
//! (at once, without long-polling), and the client moves its fetches there.
//!
//! Fetch sessions (KIP-227) are declined by answering session id 0: clients then keep sending
//! full fetch requests, which is correct and, at this scale, cheap.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use bytes::Bytes;
use strom_storage::{DownConvertError, FileSlice, ReadSlices};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::partition::{FetchPosition, Isolation, Partition, PartitionError, ReadOutcome};
use crate::session::Session;
use crate::zero_copy;
use strom_metadata::acl::Operation;

/// The broker caps what one response may carry whatever the client asks, to bound memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The response, and the file ranges its placeholder records stand for (see `zero_copy`).
pub async fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16, session: &Session, client_id: &str) -> (FetchResponse, Vec<FileSlice>) {
    // As Kafka: a follower needs CLUSTER_ACTION on the cluster, a consumer READ on each topic;
    // the others are answered TOPIC_AUTHORIZATION_FAILED.
    let authz = broker.authz(session);
    let allowed: Vec<bool> = if req.replica_id.0 >= 0 {
        vec![authz.allows_cluster(Operation::ClusterAction); req.topics.len()]
    } else {
        req.topics.iter().map(|t| authz.allows_topic(Operation::Read, &t.topic)).collect()
    };
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = (req.max_bytes.max(0) as usize).min(MAX_RESPONSE_BYTES);
    let replica = req.replica_id.0;
    if replica >= 0 && allowed.iter().all(|a| *a) {
        record_follower_positions(broker, replica, &req.topics);
    }
    loop {
        // Register for the wake-up before reading, so an append between the read and the wait
        // is not missed.
        let notified = broker.replicas.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let reader = if replica >= 0 {
            Reader::Follower { replica }
        } else {
            Reader::Consumer { isolation: Isolation::of_consumer(req.isolation_level), rack: (version >= 11).then(|| req.rack_id.as_str()) }
        };
        let (responses, files, bytes, answer_now, sent, throttled) = read_all(broker, &req.topics, &allowed, max_bytes, reader, version);
        if bytes >= min_bytes || answer_now || Instant::now() >= deadline {
            // Counted once, for the read that is answered (a long poll reads several times).
            for (partition, len) in sent {
                partition.counters.sent(len as u64);
            }
            // A consumer's byte rate (`consumer_byte_rate`; followers are not client-metered,
            // but what throttled replicas carry counts against the leader's replication rate,
            // in sync or not, as Kafka's `sizeOfThrottledPartitions`).
            let throttle = if replica >= 0 {
                broker.replicas.replication_quotas.leader.record(throttled as u64, now_ms());
                0
            } else {
                broker.quotas.record(&broker.metadata.image().quotas, crate::quotas::Kind::Fetch, &session.principal, client_id, bytes, now_ms())
            };
            return (FetchResponse::default().with_session_id(0).with_responses(responses).with_throttle_time_ms(throttle), files);
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A follower's fetch offsets are its log ends: the leader's record of what each replica has
/// (`Partition::record_follower_position`).
fn record_follower_positions(broker: &Broker, replica: i32, topics: &[FetchTopic]) {
    let now = now_ms();
    let mut advanced = false;
    for topic in topics {
        for p in &topic.partitions {
            if let Ok(partition) = broker.replicas.leader(topic.topic.as_str(), p.partition) {
                advanced |= partition.record_follower_position(replica, &position(p), now);
                partition.record_follower_log_start(replica, p.log_start_offset);
            }
        }
    }
    if advanced {
        // Consumers long-polling at the old high watermark have something to read now.
        broker.replicas.data_arrived.notify_waiters();
    }
}

fn position(p: &FetchPartition) -> FetchPosition {
    FetchPosition { offset: p.fetch_offset, current_leader_epoch: p.current_leader_epoch, last_fetched_epoch: p.last_fetched_epoch }
}

/// Who fetches: a follower (replica id), or a consumer with its isolation and, from Fetch v11
/// on, its rack (possibly empty), which lets it read from followers (Kafka's `ClientMetadata`).
#[derive(Clone, Copy)]
enum Reader<'a> {
    Follower { replica: i32 },
    Consumer { isolation: Isolation, rack: Option<&'a str> },
}

/// The responses, their file ranges, the bytes read, whether to answer without waiting (an
/// error, a diverging epoch, a preferred read replica), the bytes each partition gave a
/// consumer, and the bytes read for a follower from throttled replicas (KIP-73).
type ReadAll = (Vec<FetchableTopicResponse>, Vec<FileSlice>, usize, bool, Vec<(Arc<Partition>, usize)>, usize);

/// The message format an old Fetch version reads (Kafka's FetchResponse down-conversion): v0-1
/// magic 0, v2-3 magic 1; None for v4 and later (format v2, as stored).
fn old_format(version: i16) -> Option<i8> {
    match version {
        0..=1 => Some(strom_storage::MAGIC_V0),
        2..=3 => Some(strom_storage::MAGIC_V1),
        _ => None,
    }
}

/// `allowed[i]`: whether the session may read `topics[i]`.
fn read_all(broker: &Broker, topics: &[FetchTopic], allowed: &[bool], max_bytes: usize, reader: Reader, version: i16) -> ReadAll {
    let old_format = old_format(version);
    let mut total = 0usize;
    // Kafka's limits (ReplicaManager.readFromLog, KIP-74): each partition reads at most
    // min(partition_max_bytes, what is left of max_bytes), except that the first partition to
    // return data gets its first batch whole even when it is larger than both, so a consumer
    // always makes progress. Every later partition must fit in what is left: a response exceeds
    // max_bytes by at most that one batch. Clients size their receive buffer on this (librdkafka
    // drops the connection on a response larger than receive.message.max.bytes).
    // Before v3 the limits were hard (Kafka's hardMaxBytesLimit): a first batch larger than the
    // partition's limit is not returned at all.
    let mut min_one = version >= 3;
    let mut files = Vec::new();
    // Nothing to wait for if nothing may be read.
    let mut answer_now = !allowed.contains(&true);
    // Consumers' reads, for the bytes-out counters (followers' reads are replication).
    let mut sent = Vec::new();
    // KIP-73 (Kafka's `shouldLeaderThrottle`): while the leader's replication rate is over its
    // bound, a follower's throttled replicas that are not in the ISR get no records.
    let mut throttled_bytes = 0usize;
    let over_quota = matches!(reader, Reader::Follower { .. }) && broker.replicas.replication_quotas.leader.is_exceeded(now_ms());
    let responses = topics
        .iter()
        .zip(allowed)
        .map(|(topic, allowed)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let resp = PartitionData::default().with_partition_index(p.partition);
                    if !allowed {
                        return error(resp, ResponseError::TopicAuthorizationFailed);
                    }
                    let (found, isolation) = match reader {
                        Reader::Follower { .. } => (broker.replicas.leader(topic.topic.as_str(), p.partition), Isolation::Follower),
                        Reader::Consumer { isolation, rack } => (broker.replicas.for_consumer(topic.topic.as_str(), p.partition, rack.is_some()), isolation),
                    };
                    let partition = match found {
                        Ok(p) => p,
                        Err(code) => {
                            answer_now = true;
                            return error(resp, code);
                        }
                    };
                    if let Reader::Consumer { rack: Some(rack), .. } = reader {
                        if let Some(replica) = broker.replicas.preferred_read_replica(&partition, rack, p.fetch_offset) {
                            answer_now = true;
                            return redirect(resp, &partition, p, replica);
                        }
                    }
                    let throttled = matches!(reader, Reader::Follower { .. }) && partition.leader_throttled();
                    let held_back = matches!(reader, Reader::Follower { replica } if throttled && over_quota && !partition.in_isr(replica));
                    let limit = if held_back { 0 } else { (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total)) };
                    let read = match partition.fetch(&position(p), limit, min_one && !held_back, isolation) {
                        Ok(read) => read,
                        Err(code) => {
                            answer_now = true;
                            return error(resp, code);
                        }
                    };
                    let aborted = read.aborted.map(|list| {
                        list.iter().map(|a| AbortedTransaction::default().with_producer_id(a.producer_id.into()).with_first_offset(a.first_offset)).collect()
                    });
                    let resp = resp
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.last_stable_offset)
                        .with_log_start_offset(read.log_start_offset)
                        .with_aborted_transactions(aborted);
                    match read.outcome {
                        ReadOutcome::Diverging { epoch, end_offset } => {
                            answer_now = true;
                            resp.with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset))
                                .with_records(Some(Bytes::new()))
                        }
                        ReadOutcome::Records(_) if old_format.is_some() && isolation != Isolation::Follower && !partition.down_conversion_enabled() => {
                            // Kafka: message.downconversion.enable=false refuses old consumers.
                            answer_now = true;
                            error(resp, ResponseError::UnsupportedVersion)
                        }
                        ReadOutcome::Records(r) => {
                            total += r.len;
                            if throttled {
                                throttled_bytes += r.len;
                            }
                            if isolation != Isolation::Follower && r.len > 0 {
                                sent.push((partition.clone(), r.len));
                            }
                            min_one &= r.len == 0;
                            if let Some(magic) = old_format {
                                return match down_converted(r, magic, p.fetch_offset) {
                                    Ok(records) => resp.with_records(Some(records)),
                                    Err(code) => {
                                        answer_now = true;
                                        error(resp, code)
                                    }
                                };
                            }
                            match records(r, &mut files) {
                                Ok(records) => resp.with_records(Some(records)),
                                Err(e) => {
                                    answer_now = true;
                                    tracing::warn!(topic = %topic.topic.as_str(), partition = p.partition, error = %e, "fetch read failed");
                                    error(resp, ResponseError::KafkaStorageError)
                                }
                            }
                        }
                        ReadOutcome::Failed(e) => {
                            answer_now = true;
                            // Consumers retry in a loop: at most one line per 10 s.
                            static LIMIT: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(10_000);
                            if !matches!(&e, PartitionError::Storage(strom_storage::StorageError::OffsetOutOfRange { .. })) {
                                if let Some(suppressed) = LIMIT.allow(now_ms()) {
                                    tracing::warn!(topic = %topic.topic.as_str(), partition = p.partition, error = %e, similar_since_last = suppressed, "fetch failed");
                                }
                            }
                            resp.with_error_code(e.code().code())
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions)
        })
        .collect();
    (responses, files, total, answer_now, sent, throttled_bytes)
}

/// The records field for an old fetcher: the read's batches in message format `magic`, within
/// the size read (the first batch whole).
fn down_converted(r: ReadSlices, magic: i8, fetch_offset: i64) -> Result<Bytes, ResponseError> {
    match strom_storage::down_convert_slices(&r.slices, magic, fetch_offset, r.len) {
        Ok(records) => Ok(Bytes::from(records)),
        Err(DownConvertError::Zstd) => Err(ResponseError::UnsupportedCompressionType),
        Err(DownConvertError::Corrupt(e)) => {
            tracing::warn!(error = %e, "fetch down-conversion failed");
            // Kafka answers fetches before v6 NOT_LEADER_OR_FOLLOWER for a storage error, which
            // old clients know to retry.
            Err(ResponseError::NotLeaderOrFollower)
        }
    }
}

/// The records field for one partition: a placeholder whose bytes go out by `sendfile`, or for a
/// records field too large for the placeholder (a single huge batch), the bytes themselves.
fn records(r: ReadSlices, files: &mut Vec<FileSlice>) -> Result<Bytes, strom_storage::StorageError> {
    if r.len == 0 {
        return Ok(Bytes::new());
    }
    match zero_copy::placeholder(r.len) {
        Some(p) => {
            files.extend(r.slices);
            Ok(p)
        }
        None => {
            let mut data = Vec::with_capacity(r.len);
            for s in &r.slices {
                s.read_into(&mut data)?;
            }
            Ok(Bytes::from(data))
        }
    }
}

/// KIP-392: "fetch this partition from `replica`": no records, the leader's offsets (Kafka's
/// `fetchOffsetSnapshot`, with the consumer's leader epoch checked).
fn redirect(resp: PartitionData, partition: &Partition, p: &FetchPartition, replica: i32) -> PartitionData {
    if let Err(code) = partition.check_epoch(p.current_leader_epoch) {
        return error(resp, code);
    }
    let (Ok(log_start_offset), Ok(last_stable_offset)) = (partition.log_start_offset(), partition.last_stable_offset()) else {
        return error(resp, ResponseError::NotLeaderOrFollower);
    };
    resp.with_high_watermark(partition.high_watermark())
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start_offset)
        .with_preferred_read_replica(BrokerId(replica))
        .with_records(Some(Bytes::new()))
}

fn error(resp: PartitionData, code: ResponseError) -> PartitionData {
    resp.with_error_code(code.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1)
}
