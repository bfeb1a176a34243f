//! The counters and histograms the request path updates, as handles made once and kept: a
//! partition holds its topic's counters (`TopicCounters`), each Kafka API has its request counter
//! and duration histogram in a table indexed by API key. Updating one is an atomic add (a
//! histogram sample is appended to a lock-free bucket); no label is looked up or hashed per
//! request, nothing is done per record. Everything that comes from state (partitions, lag, log
//! sizes) is not kept here: the HTTP side computes it at scrape time (`http::scrape`).
//!
//! The handles record into the global `metrics` recorder, which the server installs (`install`)
//! before any partition opens when the HTTP listener is on; without it (listener off, unit tests,
//! the simulation) every handle is a no-op.

use std::sync::OnceLock;

use kafka_protocol::messages::ApiKey;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const MESSAGES_IN: &str = "strom_topic_messages_in_total";
pub const BYTES_IN: &str = "strom_topic_bytes_in_total";
pub const BYTES_OUT: &str = "strom_topic_bytes_out_total";
pub const REQUEST_DURATION: &str = "strom_request_duration_seconds";
pub const REQUESTS: &str = "strom_requests_total";
pub const ISR_SHRINKS: &str = "strom_isr_shrinks_total";
pub const ISR_EXPANDS: &str = "strom_isr_expands_total";
pub const CONNECTIONS: &str = "strom_connections";
pub const REPLICATION_THROTTLED_BYTES: &str = "strom_replication_throttled_bytes_total";

/// Request durations from 0.1 ms to 30 s (long-poll fetches and parked joins wait up to their
/// timeouts, so the top buckets are for them).
const DURATION_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the process-wide recorder and returns the handle that renders it. `None` if a
/// recorder was installed already (a second server in one process, as some tests run): that
/// server's metrics then go to the first one's recorder.
pub fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_string()), DURATION_BUCKETS).ok()?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    metrics::describe_counter!(MESSAGES_IN, "records appended by this broker as the partitions' leader");
    metrics::describe_counter!(BYTES_IN, "bytes of record batches appended by this broker as the partitions' leader");
    metrics::describe_counter!(BYTES_OUT, "bytes of record batches sent to consumers (not to follower replicas)");
    metrics::describe_histogram!(REQUEST_DURATION, metrics::Unit::Seconds, "time from a request's decoding to its response, per Kafka API");
    metrics::describe_counter!(REQUESTS, "requests answered, per Kafka API and the response's error (NONE, or the first error it carries)");
    metrics::describe_counter!(ISR_SHRINKS, "ISR shrinks this broker made as a leader");
    metrics::describe_counter!(ISR_EXPANDS, "ISR expansions this broker made as a leader");
    metrics::describe_gauge!(CONNECTIONS, "open client connections per listener");
    metrics::describe_counter!(REPLICATION_THROTTLED_BYTES, "bytes of throttled replicas (KIP-73) this broker sent as a leader or fetched as a follower");
    Some(handle)
}

/// One topic's traffic counters, held by each of its partitions (every partition of a topic gets
/// the same underlying counters from the recorder).
pub struct TopicCounters {
    messages_in: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl TopicCounters {
    pub fn new(topic: &str) -> TopicCounters {
        let t = topic.to_string();
        TopicCounters {
            messages_in: metrics::counter!(MESSAGES_IN, "topic" => t.clone()),
            bytes_in: metrics::counter!(BYTES_IN, "topic" => t.clone()),
            bytes_out: metrics::counter!(BYTES_OUT, "topic" => t),
        }
    }

    /// A leader appended `records` records in `bytes` bytes of batches.
    pub fn appended(&self, records: u64, bytes: u64) {
        self.messages_in.increment(records);
        self.bytes_in.increment(bytes);
    }

    /// A consumer's fetch got `bytes` bytes of batches.
    pub fn sent(&self, bytes: u64) {
        self.bytes_out.increment(bytes);
    }
}

/// One API's handles: the counter of answers without an error, and the duration histogram.
struct ApiHandles {
    name: &'static str,
    ok: Counter,
    duration: Histogram,
}

/// API keys go up to about 90; a request's key indexes the table directly.
const API_SLOTS: usize = 128;

fn api_table() -> &'static [Option<ApiHandles>] {
    static TABLE: OnceLock<Vec<Option<ApiHandles>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..API_SLOTS as i16)
            .map(|k| {
                let key = ApiKey::try_from(k).ok()?;
                let name = api_name(key);
                Some(ApiHandles {
                    name,
                    ok: metrics::counter!(REQUESTS, "api" => name, "error" => "NONE"),
                    duration: metrics::histogram!(REQUEST_DURATION, "api" => name),
                })
            })
            .collect()
    })
}

/// Kafka's name of an API as its request metrics spell it (`Produce`, `ApiVersions`):
/// kafka-protocol's variant names are exactly those.
fn api_name(key: ApiKey) -> &'static str {
    // Leaked once per API key for the life of the process (the table is built once).
    Box::leak(format!("{key:?}").into_boxed_str())
}

/// A request of `api` was answered in `seconds`, with `error` (0: none) the first error code its
/// response carries. Errors are rare, so their counters are looked up by label here.
pub fn request_done(api: ApiKey, error: i16, seconds: f64) {
    let Some(Some(h)) = api_table().get(api as i16 as usize) else { return };
    h.duration.record(seconds);
    if error == 0 {
        h.ok.increment(1);
    } else {
        metrics::counter!(REQUESTS, "api" => h.name, "error" => error_name(error)).increment(1);
    }
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), from kafka-protocol's variant
/// names in CamelCase.
pub fn error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("ERROR_{code}"),
        Some(e) => upper_snake(&format!("{e:?}")),
    }
}

fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The error a response reports for `strom_requests_total`: its top-level error code, else the
/// first partition's or topic's that is not NONE (Kafka's request metrics count per error code;
/// one label per request keeps the series few). 0 for the APIs whose errors are not read here.
/// Walks the response's partitions, never its records.
pub fn first_error(response: &kafka_protocol::messages::ResponseKind) -> i16 {
    use kafka_protocol::messages::ResponseKind as R;
    fn first(codes: impl IntoIterator<Item = i16>) -> i16 {
        codes.into_iter().find(|c| *c != 0).unwrap_or(0)
    }
    match response {
        R::Produce(r) => first(r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))),
        R::Fetch(r) => first(std::iter::once(r.error_code).chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))),
        R::Metadata(r) => first(std::iter::once(r.error_code).chain(r.topics.iter().map(|t| t.error_code))),
        R::ListOffsets(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        R::OffsetCommit(r) => first(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
        R::OffsetFetch(r) => first(
            std::iter::once(r.error_code)
                .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
                .chain(r.groups.iter().map(|g| g.error_code)),
        ),
        R::FindCoordinator(r) => first(std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code))),
        R::CreateTopics(r) => first(r.topics.iter().map(|t| t.error_code)),
        R::DeleteTopics(r) => first(r.responses.iter().map(|t| t.error_code)),
        R::DescribeGroups(r) => first(r.groups.iter().map(|g| g.error_code)),
        R::ApiVersions(r) => r.error_code,
        R::JoinGroup(r) => r.error_code,
        R::SyncGroup(r) => r.error_code,
        R::Heartbeat(r) => r.error_code,
        R::LeaveGroup(r) => r.error_code,
        R::ListGroups(r) => r.error_code,
        R::InitProducerId(r) => r.error_code,
        R::EndTxn(r) => r.error_code,
        R::AddOffsetsToTxn(r) => r.error_code,
        R::SaslHandshake(r) => r.error_code,
        R::SaslAuthenticate(r) => r.error_code,
        _ => 0,
    }
}

/// The leader shrank (`true`) or expanded a partition's ISR.
pub fn isr_changed(shrunk: bool) {
    if shrunk {
        metrics::counter!(ISR_SHRINKS).increment(1);
    } else {
        metrics::counter!(ISR_EXPANDS).increment(1);
    }
}

/// Counts an open connection on a listener while it lives.
pub struct ConnectionGauge(metrics::Gauge);

impl ConnectionGauge {
    pub fn open(listener: &str) -> ConnectionGauge {
        let g = metrics::gauge!(CONNECTIONS, "listener" => listener.to_string());
        g.increment(1.0);
        ConnectionGauge(g)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(32000), "ERROR_32000");
    }

    #[test]
    fn api_names_are_kafkas() {
        assert_eq!(api_name(ApiKey::Produce), "Produce");
        assert_eq!(api_name(ApiKey::ApiVersions), "ApiVersions");
        assert_eq!(api_name(ApiKey::OffsetCommit), "OffsetCommit");
    }
}
