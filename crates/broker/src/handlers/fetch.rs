//! Fetch: whole batches from each requested partition, long-polling until `min_bytes` have
//! arrived or `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227) are declined by answering session id 0: clients then keep sending
//! full fetch requests, which is correct and, at this scale, cheap.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::storage_error_code;
use crate::broker::Broker;
use crate::partition::PartitionError;

/// The broker caps what one response may carry whatever the client asks, to bound memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub async fn handle(broker: &Arc<Broker>, req: FetchRequest) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = (req.max_bytes.max(0) as usize).min(MAX_RESPONSE_BYTES);
    loop {
        // Register for the wake-up before reading, so an append between the read and the wait
        // is not missed.
        let notified = broker.replicas.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, bytes, has_error) = read_all(broker, &req.topics, max_bytes);
        if bytes >= min_bytes || has_error || Instant::now() >= deadline {
            return FetchResponse::default().with_session_id(0).with_responses(responses);
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn read_all(broker: &Broker, topics: &[FetchTopic], max_bytes: usize) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut has_error = false;
    let responses = topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let resp = PartitionData::default().with_partition_index(p.partition);
                    let Some(partition) = broker.replicas.partition(topic.topic.as_str(), p.partition) else {
                        has_error = true;
                        return error(resp, ResponseError::UnknownTopicOrPartition);
                    };
                    // Storage returns at least one whole batch (min-one-message), so the first
                    // non-empty partition may exceed the limits by one batch and a batch larger
                    // than max_bytes can still be consumed. Later partitions may overshoot by at
                    // most one batch too; Kafka is stricter there, clients do not mind.
                    let remaining = max_bytes.saturating_sub(total);
                    if total > 0 && remaining == 0 {
                        let hw = partition.high_watermark();
                        return resp.with_high_watermark(hw).with_last_stable_offset(hw).with_log_start_offset(
                            partition.with_log(|l| Ok(l.log_start_offset())).unwrap_or(-1),
                        );
                    }
                    let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    match partition.read(p.fetch_offset, limit) {
                        Ok(r) => {
                            total += r.data.len();
                            let hw = partition.high_watermark();
                            resp.with_high_watermark(hw)
                                .with_last_stable_offset(hw)
                                .with_log_start_offset(r.log_start_offset)
                                .with_records(Some(r.data))
                        }
                        Err(e) => {
                            has_error = true;
                            if !matches!(&e, PartitionError::Storage(strom_storage::StorageError::OffsetOutOfRange { .. })) {
                                tracing::warn!(topic = %topic.topic.as_str(), partition = p.partition, error = %e, "fetch failed");
                            }
                            let hw = partition.high_watermark();
                            error(resp, storage_error_code(&e))
                                .with_high_watermark(hw)
                                .with_last_stable_offset(hw)
                                .with_log_start_offset(partition.with_log(|l| Ok(l.log_start_offset())).unwrap_or(-1))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions)
        })
        .collect();
    (responses, total, has_error)
}

fn error(resp: PartitionData, code: ResponseError) -> PartitionData {
    resp.with_error_code(code.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1)
}
