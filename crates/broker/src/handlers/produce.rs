//! Produce: append each partition's record batches to its log.
//!
//! Batches are stored byte for byte as produced; the storage layer checks framing and CRC and
//! rewrites only the base offset and leader epoch (both outside the CRC). acks=1 answers once
//! the leader has the batch; acks=all once every in-sync replica has it (the high watermark
//! passed it), and only while at least `min.insync.replicas` replicas are in sync. A sole
//! in-sync replica commits at once, so on a single node both answer at the same moment.
//!
//! Produce v0-2 may carry message formats v0/v1 (message sets): those are up-converted to one v2
//! batch before the append (`strom_storage::up_convert`), so the log and every reader see v2
//! only. v3 and later must carry v2 batches, as Kafka's ProduceRequest.validateRecords requires.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use strom_storage::{RecordRule, StorageError};

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::partition::{Partition, PartitionError};
use crate::session::Session;
use strom_metadata::acl::Operation;

pub async fn handle(broker: &Arc<Broker>, req: ProduceRequest, version: i16, session: &Session, client_id: &str) -> Option<ProduceResponse> {
    let authz = broker.authz(session);
    // The client's byte rate (`producer_byte_rate`): over its quota, the response says how long
    // to hold back, and the connection waits that long before reading on.
    let bytes: usize = req.topic_data.iter().flat_map(|t| &t.partition_data).filter_map(|p| p.records.as_ref()).map(|r| r.len()).sum();
    let throttle = broker.quotas.record(&broker.metadata.image().quotas, crate::quotas::Kind::Produce, &session.principal, client_id, bytes as f64, now_ms());
    // As Kafka: a request with transactional batches needs WRITE on its transactional id, or the
    // whole request is refused; each topic needs WRITE.
    // (Only with an authorizer: without one, no batch header is read here.)
    let transactional = authz.enabled()
        && req.topic_data.iter().flat_map(|t| &t.partition_data).any(|p| {
            p.records.as_ref().and_then(|r| strom_storage::BatchHeader::parse(r, 0).ok()).is_some_and(|h| h.is_transactional())
        });
    if transactional && !req.transactional_id.as_ref().is_some_and(|id| authz.allows_transactional_id(Operation::Write, id)) {
        return refuse_all(req, ResponseError::TransactionalIdAuthorizationFailed);
    }
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    let now = now_ms();
    // Append everything first, then wait for any fsyncs `flush.messages` asks for: the waits of
    // several partitions (and of other connections) then overlap instead of queueing.
    let mut results = Vec::with_capacity(req.topic_data.len());
    let transactional_id = req.transactional_id.as_ref().map(|t| t.to_string());
    for topic in req.topic_data {
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let r = if !acks_valid {
                Err((ResponseError::InvalidRequiredAcks, None).into())
            } else if !authz.allows_topic(Operation::Write, &topic.name) {
                Err((ResponseError::TopicAuthorizationFailed, None).into())
            } else {
                match verify_transaction(broker, transactional_id.as_deref(), (topic.name.as_str(), p.index), p.records.as_ref(), version).await {
                    Ok(()) => append(broker, topic.name.as_str(), p.index, p.records, now, acks == -1, version),
                    Err(e) => Err(e.into()),
                }
            };
            parts.push((p.index, r));
        }
        results.push((topic.name, parts));
    }
    if results.iter().flat_map(|(_, ps)| ps).any(|(_, r)| matches!(r, Ok(a) if !a.duplicate)) {
        broker.replicas.data_arrived.notify_waiters();
    }
    for (_, parts) in &mut results {
        for (_, r) in parts.iter_mut() {
            if let Ok(a) = r {
                if a.partition.needs_sync() {
                    if let Err(e) = a.partition.make_durable(a.end_offset).await {
                        tracing::error!(error = %e, "fsync failed; the produce is not acknowledged");
                        *r = Err((ResponseError::KafkaStorageError, Some(e.to_string())).into());
                    }
                }
            }
        }
    }
    if acks == 0 {
        // acks=0: the client expects no response at all.
        return None;
    }
    if acks == -1 {
        // Every partition's wait runs against one deadline, so they overlap.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
        for (_, parts) in &mut results {
            for (_, r) in parts.iter_mut() {
                let Ok(a) = r else { continue };
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Err(code) = a.partition.wait_replicated(a.end_offset, a.leader_epoch, left).await {
                    *r = Err((code, None).into());
                }
            }
        }
    }
    let responses = results
        .into_iter()
        .map(|(name, parts)| {
            let partition_responses = parts
                .into_iter()
                .map(|(index, r)| {
                    let resp = PartitionProduceResponse::default().with_index(index);
                    match r {
                        Ok(ok) => resp
                            .with_base_offset(ok.base_offset)
                            .with_log_append_time_ms(ok.log_append_time)
                            .with_log_start_offset(ok.log_start_offset),
                        // record_errors and error_message exist from Produce v8 on; the encoder
                        // leaves them out of older versions.
                        Err(Rejected { code, message, record_errors }) => resp
                            .with_error_code(code.code())
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                            .with_error_message(message.map(StrBytes::from_string))
                            .with_record_errors(record_errors),
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(name).with_partition_responses(partition_responses)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses).with_throttle_time_ms(throttle))
}

/// Every partition of the request answered `code` (nothing is appended).
fn refuse_all(req: ProduceRequest, code: ResponseError) -> Option<ProduceResponse> {
    if req.acks == 0 {
        return None;
    }
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let parts = t
                .partition_data
                .iter()
                .map(|p| PartitionProduceResponse::default().with_index(p.index).with_error_code(code.code()).with_base_offset(-1).with_log_append_time_ms(-1).with_log_start_offset(-1))
                .collect();
            TopicProduceResponse::default().with_name(t.name).with_partition_responses(parts)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}

/// KIP-890: the first transactional batch of a producer's transaction in this partition is
/// appended only once the transaction coordinator confirms that the partition is in the
/// transaction (part 1), or has added it for a transactions v2 producer (part 2, Produce v12+);
/// later ones of the same epoch find the transaction open in the log. A transactional batch
/// needs the request's transactional id (Kafka answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED
/// without).
async fn verify_transaction(
    broker: &Arc<Broker>,
    transactional_id: Option<&str>,
    (topic, index): (&str, i32),
    records: Option<&Bytes>,
    version: i16,
) -> Result<(), (ResponseError, Option<String>)> {
    let Some(header) = records.and_then(|r| strom_storage::BatchHeader::parse(r, 0).ok()) else { return Ok(()) };
    if !header.is_transactional() || header.is_control() {
        return Ok(());
    }
    let Some(transactional_id) = transactional_id.filter(|t| !t.is_empty()) else {
        return Err((ResponseError::TransactionalIdAuthorizationFailed, Some("a transactional batch needs the request's transactional id".into())));
    };
    let Ok(partition) = broker.replicas.leader(topic, index) else { return Ok(()) };
    if partition.has_open_transaction(header.producer_id, header.producer_epoch) {
        return Ok(());
    }
    broker.transactions.check_for_produce(transactional_id, header.producer_id, header.producer_epoch, (topic, index), version).await.map_err(|code| {
        tracing::debug!(topic, partition = index, producer_id = header.producer_id, error = ?code, "transactional batch refused by verification");
        (code, Some(format!("partition {topic}-{index} is not in the producer's transaction")))
    })
}

/// Why a partition's batches were not acknowledged, as its response says it.
struct Rejected {
    code: ResponseError,
    message: Option<String>,
    /// Each refused record (Kafka's `record_errors`, KIP-467), so a client can tell the bad
    /// records of a batch from the others.
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl From<(ResponseError, Option<String>)> for Rejected {
    fn from((code, message): (ResponseError, Option<String>)) -> Self {
        Rejected { code, message, record_errors: Vec::new() }
    }
}

impl Rejected {
    /// A refused append, worded as Kafka words it: records refused one by one are listed with
    /// Kafka's messages (LogValidator's), and the partition's message summarises them as
    /// Kafka's RecordValidationException does (the count, then the first three; for timestamps
    /// a fixed sentence).
    fn of_append(topic: &str, index: i32, e: PartitionError) -> Rejected {
        let PartitionError::Storage(StorageError::InvalidRecords { records }) = &e else {
            return (e.code(), Some(e.to_string())).into();
        };
        let errors: Vec<(i32, String)> = records.iter().map(|r| (r.batch_index, record_message(r.rule, topic, index))).collect();
        let message = if records.iter().any(|r| r.rule.is_timestamp()) {
            "One or more records have been rejected due to invalid timestamp".to_string()
        } else {
            let first_three: Vec<String> = errors.iter().take(3).map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')")).collect();
            format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                errors.len(),
                first_three.join(", ")
            )
        };
        let record_errors = errors
            .into_iter()
            .map(|(i, m)| BatchIndexAndErrorMessage::default().with_batch_index(i).with_batch_index_error_message(Some(StrBytes::from_string(m))))
            .collect();
        Rejected { code: e.code(), message: Some(message), record_errors }
    }
}

/// Kafka's ProduceRequest.validateRecords, from v3 on: the first batch must be of format v2, and
/// before v7 not zstd-compressed. (Before v3 Kafka checks neither.)
fn check_v2(records: &Bytes, version: i16) -> Result<(), Rejected> {
    if version < 3 {
        return Ok(());
    }
    if strom_storage::records_magic(records).is_some_and(|m| m != 2) {
        let message = format!("Produce requests with version {version} are only allowed to contain record batches with magic version 2");
        return Err((ResponseError::InvalidRecord, Some(message)).into());
    }
    let zstd = strom_storage::BatchHeader::parse(records, 0).is_ok_and(|h| h.compression() == 4);
    if version < 7 && zstd {
        let message = format!("Produce requests with version {version} are not allowed to use ZStandard compression");
        return Err((ResponseError::UnsupportedCompressionType, Some(message)).into());
    }
    Ok(())
}

/// Kafka's message for one refused record (LogValidator).
fn record_message(rule: RecordRule, topic: &str, index: i32) -> String {
    match rule {
        RecordRule::KeyRequired => format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}"),
        RecordRule::TimestampOutOfRange { timestamp, offset, earliest, latest } => format!(
            "Timestamp {timestamp} of message with offset {offset} is out of range. The timestamp should be within [{earliest}, {latest}]"
        ),
        RecordRule::LogAppendTimeFromProducer { offset } => {
            format!("Invalid timestamp type in message with offset {offset}. Producer should not set timestamp type to LogAppendTime.")
        }
    }
}

struct Appended {
    partition: Arc<Partition>,
    /// One past the last offset appended (what must be durable before acknowledging).
    end_offset: i64,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    duplicate: bool,
    /// The leadership the batch was appended under: acks=all fails if it ends before the batch
    /// is committed.
    leader_epoch: i32,
}

fn append(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    now: i64,
    acks_all: bool,
    version: i16,
) -> Result<Appended, Rejected> {
    if crate::coordinator_topic::is_internal(topic) {
        // Kafka: only the broker itself writes internal topics.
        return Err((ResponseError::InvalidTopicException, Some(format!("Cannot append to internal topic {topic}"))).into());
    }
    let partition = broker.replicas.leader(topic, index).map_err(|code| Rejected::from((code, None)))?;
    if let Some(why) = broker.disk.refusal() {
        return Err((ResponseError::KafkaStorageError, Some(why)).into());
    }
    let records = records.ok_or_else(|| Rejected::from((ResponseError::CorruptMessage, Some("produce request without records".into()))))?;
    if acks_all && !partition.enough_replicas() {
        return Err((ResponseError::NotEnoughReplicas, None).into());
    }
    let leader_epoch = partition.leader_epoch();
    let magic = strom_storage::records_magic(&records);
    // Old message formats become one v2 batch (a new buffer); v2 batches are appended straight
    // from the request's buffer, which the log only reads: no copy before the file.
    let converted;
    let batches: &[u8] = match magic {
        Some(m @ (strom_storage::MAGIC_V0 | strom_storage::MAGIC_V1)) if version < 3 => {
            converted = strom_storage::up_convert(&records).map_err(|e| {
                tracing::debug!(topic, partition = index, magic = m, error = %e, "produce of an old message format rejected");
                Rejected::of_append(topic, index, PartitionError::Storage(e))
            })?;
            &converted
        }
        _ => {
            check_v2(&records, version)?;
            &records
        }
    };
    // A topic whose `compression.type` names a codec stores every batch in it: those in another
    // are rebuilt (a new buffer); with `producer`, the default, nothing is looked at.
    let recompressed;
    let batches: &[u8] = match partition.compression() {
        Some(codec) => match strom_storage::recompress(batches, codec, strom_storage::DEFAULT_MAX_DECOMPRESSED_BYTES) {
            Ok(Some(rebuilt)) => {
                recompressed = rebuilt;
                &recompressed
            }
            Ok(None) => batches,
            Err(e) => {
                tracing::debug!(topic, partition = index, codec, error = %e, "produce refused: its batches cannot be recompressed");
                return Err(Rejected::of_append(topic, index, PartitionError::Storage(e)));
            }
        },
        None => batches,
    };
    let info = partition.append(batches, now).map_err(|e| {
        tracing::debug!(topic, partition = index, error = %e, "produce rejected");
        Rejected::of_append(topic, index, e)
    })?;
    if !info.duplicate {
        partition.counters.appended((info.last_offset - info.first_offset + 1).max(0) as u64, batches.len() as u64);
    }
    let log_start_offset = partition.log_start_offset().unwrap_or(-1);
    Ok(Appended {
        end_offset: info.last_offset + 1,
        base_offset: info.first_offset,
        log_append_time: if partition.uses_log_append_time() { now } else { -1 },
        log_start_offset,
        duplicate: info.duplicate,
        leader_epoch,
        partition,
    })
}
