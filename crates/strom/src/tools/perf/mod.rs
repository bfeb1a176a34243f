//! `strom producer-perf-test` and `strom consumer-perf-test`: Kafka's
//! `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh`, with their flags and their
//! output lines, so scripts written for Kafka's tools read ours.
//!
//! The tools must measure the broker, not themselves. Both run librdkafka tuned for
//! throughput (big batches and queues, `queued.min.messages` raised so the consumer never
//! backs off), and the Rust side does no per-record work beyond the send call and the delivery
//! callback, or the poll: no allocation per record (the send time travels in the delivery
//! opaque as an integer), payloads come from a buffer filled once, and latencies are sampled
//! into a preallocated `Vec<u32>` of microseconds that is sorted once at the end.
//!
//! - `producer.rs`: `strom producer-perf-test`: the payloads, the (optionally paced) send loop,
//!   the delivery callback's latency statistics, Kafka's progress and summary lines.
//! - `consumer.rs`: `strom consumer-perf-test`: the poll loop, rebalance time told apart from
//!   fetch time (and where assigned partitions start), Kafka's CSV-like lines.
//! - `date_format.rs`: Java's `SimpleDateFormat` letters, for the consumer's `--date-format`.
//!
//! Here: what both tools share, the tuned client configuration, Kafka's "MB" and the
//! pseudo-random generator.

mod consumer;
mod date_format;
mod producer;

pub use consumer::{run_consumer, ConsumerArgs};
pub use producer::{run_producer, ProducerArgs};

use std::path::PathBuf;

use rdkafka::config::ClientConfig;

use super::Connection;

/// Kafka's "MB": 1024 * 1024 bytes.
const MB: f64 = 1024.0 * 1024.0;

/// xorshift64: a fast, good-enough generator for payload letters and --payload-file picks.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The client configuration: `tuning` for the keys nobody else set, then Connection's
/// settings, the properties file, and the key=value pairs, in rising precedence.
fn tuned_config(
    connection: &Connection,
    file_flag: &str,
    file: Option<&PathBuf>,
    mut settings: Vec<(String, String)>,
    tuning: &[(&str, &str)],
) -> anyhow::Result<ClientConfig> {
    if let Some(path) = file {
        let mut from_file = super::read_properties(file_flag, path)?;
        from_file.extend(settings);
        settings = from_file;
    }
    let mut cfg = connection.client_config(&settings)?;
    for (k, v) in tuning {
        if cfg.get(k).is_none() {
            cfg.set(*k, *v);
        }
    }
    Ok(cfg)
}
