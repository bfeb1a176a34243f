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

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{parse_properties, Connection};

/// How often Kafka's tools print a progress line.
const REPORTING_INTERVAL: Duration = Duration::from_secs(5);

/// Kafka's "MB": 1024 * 1024 bytes.
const MB: f64 = 1024.0 * 1024.0;

/// librdkafka settings of the producer; each applies only when neither
/// --command-config, --producer.config nor --producer-props set the key. Big batches, and local
/// queues big enough that the client never waits for room while the broker keeps up.
const PRODUCER_TUNING: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("queue.buffering.max.messages", "2000000"),
    ("queue.buffering.max.kbytes", "2097151"),
    ("client.id", "perf-producer-client"),
];

/// librdkafka settings of the consumer. librdkafka stops fetching for
/// `fetch.queue.backoff.ms` (1 s) whenever its local queue holds `queued.min.messages` (100k)
/// messages, and one response of small records can hold that many: the tool would then measure
/// the client's back-off, not the broker.
const CONSUMER_TUNING: &[(&str, &str)] = &[
    ("fetch.max.bytes", "52428800"),
    ("queued.max.messages.kbytes", "1048576"),
    ("queued.min.messages", "10000000"),
    ("fetch.queue.backoff.ms", "5"),
    ("client.id", "perf-consumer-client"),
];

/// The per-partition fetch size, 10 MiB (Kafka's tool defaults to 1 MiB, which suits the
/// Java consumer; librdkafka is faster with bigger fetches).
const DEFAULT_FETCH_SIZE: u32 = 10 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// producer-perf-test

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["record_size", "payload_file", "payload_monotonic"])))]
pub struct ProducerArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The topic to produce to (created by the broker if it auto-creates topics).
    #[arg(long)]
    pub topic: String,
    /// How many records to send.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub num_records: u64,
    /// The size of each record's value in bytes (random upper-case letters).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub record_size: Option<u32>,
    /// Values are read from this file, split at --payload-delimiter, and picked at random.
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// The delimiter of --payload-file (default a newline).
    #[arg(long, default_value = "\\n")]
    pub payload_delimiter: String,
    /// Values are the record's number: 0, 1, 2, ...
    #[arg(long)]
    pub payload_monotonic: bool,
    /// At most this many records per second; -1: as fast as possible.
    #[arg(long, allow_negative_numbers = true)]
    pub throughput: f64,
    /// Producer settings, key=value (several after one flag, and repeatable; librdkafka /
    /// Kafka client property names, bootstrap.servers included). They win over --producer.config.
    #[arg(long = "producer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub producer_props: Vec<String>,
    /// A properties file of producer settings.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
}

/// What the delivery callback accumulates. Touched by librdkafka's polling thread for every
/// delivery (and by `flush` on the main thread), and by the reporter a few times a second.
struct ProducerStats {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_us: u64,
    max_latency_us: u64,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_total_latency_us: u64,
    window_max_latency_us: u64,
    /// Every `sampling`-th delivery's latency, in microseconds (Kafka keeps at most 500,000).
    samples: Vec<u32>,
    sampling: u64,
    until_sample: u64,
    failed: u64,
}

impl ProducerStats {
    fn new(num_records: u64) -> ProducerStats {
        let sampling = (num_records / num_records.min(500_000)).max(1);
        let now = Instant::now();
        ProducerStats {
            start: now,
            count: 0,
            bytes: 0,
            total_latency_us: 0,
            max_latency_us: 0,
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_total_latency_us: 0,
            window_max_latency_us: 0,
            samples: Vec::with_capacity((num_records / sampling + 1) as usize),
            sampling,
            until_sample: 0,
            failed: 0,
        }
    }

    fn record(&mut self, latency_us: u64, bytes: u64) {
        // Kafka samples deliveries 0, sampling, 2 * sampling, ...: a countdown, not a division.
        if self.until_sample == 0 {
            self.samples.push(latency_us.min(u32::MAX as u64) as u32);
            self.until_sample = self.sampling;
        }
        self.until_sample -= 1;
        self.count += 1;
        self.bytes += bytes;
        self.total_latency_us += latency_us;
        self.max_latency_us = self.max_latency_us.max(latency_us);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_total_latency_us += latency_us;
        self.window_max_latency_us = self.window_max_latency_us.max(latency_us);
    }

    /// Kafka's progress line for the window that ends now, and a new window.
    fn take_window(&mut self, now: Instant) -> String {
        let secs = now.duration_since(self.window_start).as_secs_f64().max(1e-9);
        let avg_ms = if self.window_count == 0 { 0.0 } else { self.window_total_latency_us as f64 / self.window_count as f64 / 1000.0 };
        let line = format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            self.window_count as f64 / secs,
            self.window_bytes as f64 / MB / secs,
            avg_ms,
            self.window_max_latency_us as f64 / 1000.0
        );
        self.window_start = now;
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_total_latency_us = 0;
        self.window_max_latency_us = 0;
        line
    }

    /// Kafka's summary line.
    fn total(&mut self, now: Instant) -> String {
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        self.samples.sort_unstable();
        let pct = |p: f64| -> u64 {
            if self.samples.is_empty() {
                return 0;
            }
            let i = ((p * self.samples.len() as f64) as usize).min(self.samples.len() - 1);
            u64::from(self.samples[i]) / 1000
        };
        let avg_ms = if self.count == 0 { 0.0 } else { self.total_latency_us as f64 / self.count as f64 / 1000.0 };
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
             {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            self.count as f64 / secs,
            self.bytes as f64 / MB / secs,
            avg_ms,
            self.max_latency_us as f64 / 1000.0,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999)
        )
    }
}

struct ProducerPerf {
    /// Send times travel in the delivery opaque as microseconds since this instant.
    epoch: Instant,
    stats: Mutex<ProducerStats>,
    /// Records handed to librdkafka so far, for the live line (one relaxed store per record).
    sent: std::sync::atomic::AtomicU64,
}

impl ProducerPerf {
    fn stats(&self) -> std::sync::MutexGuard<'_, ProducerStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for ProducerPerf {}

impl ProducerContext for ProducerPerf {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        let latency_us = (self.epoch.elapsed().as_micros() as u64).saturating_sub(sent_us as u64);
        match result {
            Ok(m) => self.stats().record(latency_us, m.payload_len() as u64),
            Err((e, _)) => {
                let mut s = self.stats();
                s.failed += 1;
                if s.failed == 1 {
                    eprintln!("ERROR: a record could not be delivered: {e}");
                }
            }
        }
    }
}

/// The values to send, prepared before the clock starts.
enum Payloads {
    /// `slots` distinct random values of `size` bytes, back to back; record i sends slot
    /// i % slots. Kafka's tool draws new random letters for every record; a pool of 16 MiB
    /// (more than a batch) gives the same variety within a batch, so compression sees what
    /// it would see with Kafka's tool, at no per-record cost.
    Pool { bytes: Vec<u8>, size: usize, slots: u64 },
    /// From --payload-file, one picked at random for each record.
    File(Vec<Vec<u8>>),
    /// The record's number in decimal.
    Monotonic,
}

const POOL_BYTES: u64 = 16 << 20;

/// xorshift64: a fast, good-enough generator for payload letters and --payload-file picks.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn payloads(a: &ProducerArgs) -> anyhow::Result<Payloads> {
    if let Some(size) = a.record_size {
        let size = size as u64;
        let slots = (POOL_BYTES / size).clamp(1, a.num_records);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let bytes = (0..slots * size).map(|_| b'A' + (next_random(&mut rng) % 26) as u8).collect();
        return Ok(Payloads::Pool { bytes, size: size as usize, slots });
    }
    if let Some(path) = &a.payload_file {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        println!("Reading payloads from: {}", abs.display());
        let text = std::fs::read(path).with_context(|| format!("cannot read --payload-file {}", path.display()))?;
        let delimiter = if a.payload_delimiter == "\\n" { "\n" } else { a.payload_delimiter.as_str() };
        if text.is_empty() {
            bail!("--payload-file {} is empty", path.display());
        }
        if delimiter.is_empty() {
            bail!("--payload-delimiter must not be empty");
        }
        let mut list: Vec<Vec<u8>> = split_bytes(&text, delimiter.as_bytes()).map(<[u8]>::to_vec).collect();
        if list.len() > 1 && list.last().is_some_and(Vec::is_empty) {
            list.pop();
        }
        println!("Number of messages read: {}", list.len());
        return Ok(Payloads::File(list));
    }
    Ok(Payloads::Monotonic)
}

fn split_bytes<'a>(mut s: &'a [u8], delimiter: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match s.windows(delimiter.len()).position(|w| w == delimiter) {
            Some(i) => {
                let part = &s[..i];
                s = &s[i + delimiter.len()..];
                Some(part)
            }
            None => {
                done = true;
                Some(s)
            }
        }
    })
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

pub fn run_producer(a: ProducerArgs) -> anyhow::Result<()> {
    if a.throughput == 0.0 || a.throughput.is_nan() {
        bail!("--throughput must be a number of records per second, or -1 for no limit");
    }
    let pace = (a.throughput > 0.0).then_some(a.throughput);
    let payloads = payloads(&a)?;
    let cfg = tuned_config(
        &a.connection,
        "--producer.config",
        a.producer_config.as_ref(),
        parse_properties("--producer-props", &a.producer_props)?,
        PRODUCER_TUNING,
    )?;
    let bootstrap = cfg.get("bootstrap.servers").unwrap_or(&a.connection.bootstrap_server).to_string();
    let context = ProducerPerf {
        epoch: Instant::now(),
        stats: Mutex::new(ProducerStats::new(a.num_records)),
        sent: std::sync::atomic::AtomicU64::new(0),
    };
    let producer: ThreadedProducer<ProducerPerf> = cfg.create_with_context(context).context("cannot create the producer")?;
    // Fail early and clearly when the cluster is not there.
    super::metadata(producer.client(), &bootstrap)?;
    let ctx = producer.context();

    let (stop_reporter, stopped) = mpsc::channel::<()>();
    let live = std::io::stdout().is_terminal();
    let num_records = a.num_records;
    let start = Instant::now();
    {
        let mut s = ctx.stats();
        s.start = start;
        s.window_start = start;
    }
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let reporter = scope.spawn(|| report_producer(ctx, stopped, live, num_records));
        let sent = send_all(&producer, &a.topic, &payloads, num_records, pace, start);
        let flushed = sent.and_then(|()| producer.flush(Timeout::Never).context("cannot deliver the remaining records"));
        drop(stop_reporter);
        let _ = reporter.join();
        flushed
    })?;
    let (line, failed) = {
        let mut s = ctx.stats();
        (s.total(Instant::now()), s.failed)
    };
    println!("{line}");
    if failed > 0 {
        bail!("{failed} of {num_records} records could not be delivered");
    }
    Ok(())
}

/// The send loop: per record, only the clock read for the latency and the send itself (plus
/// the pacing sleep under --throughput).
fn send_all(
    producer: &ThreadedProducer<ProducerPerf>,
    topic: &str,
    payloads: &Payloads,
    num_records: u64,
    pace: Option<f64>,
    start: Instant,
) -> anyhow::Result<()> {
    let ctx = producer.context();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut digits = [0u8; 20];
    for i in 0..num_records {
        if let Some(rate) = pace {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let value: &[u8] = match payloads {
            Payloads::Pool { bytes, size, slots } => {
                let at = (i % slots) as usize * size;
                &bytes[at..at + size]
            }
            Payloads::File(list) => &list[(next_random(&mut rng) % list.len() as u64) as usize],
            Payloads::Monotonic => decimal(i, &mut digits),
        };
        let sent_us = ctx.epoch.elapsed().as_micros() as usize;
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, sent_us).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: librdkafka's polling thread frees room as
                // deliveries come back. The latency still counts from the first attempt, as
                // Kafka's does from the call to send().
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err((e, _)) => bail!("cannot send record {i}: {e}"),
            }
        }
        ctx.sent.store(i + 1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Prints Kafka's progress line every 5 s, and, on a terminal, a live line in between.
fn report_producer(ctx: &ProducerPerf, stopped: mpsc::Receiver<()>, live: bool, num_records: u64) {
    let tick = if live { Duration::from_millis(200) } else { REPORTING_INTERVAL };
    let mut last = (Instant::now(), 0u64);
    let mut shown = false;
    loop {
        let due = ctx.stats().window_start + REPORTING_INTERVAL;
        let wait = due.saturating_duration_since(Instant::now()).min(tick);
        if !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
            break;
        }
        let now = Instant::now();
        let (window, acked) = {
            let mut s = ctx.stats();
            let window = (now >= s.window_start + REPORTING_INTERVAL).then(|| s.take_window(now));
            (window, s.count)
        };
        let mut out = std::io::stdout().lock();
        if let Some(line) = window {
            let clear = if shown { "\r\x1b[K" } else { "" };
            let _ = writeln!(out, "{clear}{line}");
            shown = false;
        }
        if live {
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
            let sent = ctx.sent.load(std::sync::atomic::Ordering::Relaxed);
            let _ = write!(
                out,
                "\r\x1b[K{acked} of {num_records} records acknowledged, {sent} sent, {:.0} records/sec",
                (acked - last.1.min(acked)) as f64 / secs
            );
            last = (now, acked);
            shown = true;
        }
        let _ = out.flush();
    }
    if shown {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[K");
        let _ = out.flush();
    }
}

// ---------------------------------------------------------------------------------------------
// consumer-perf-test

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("topics").required(true).args(["topic", "include"])))]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The topic to consume from.
    #[arg(long)]
    pub topic: Option<String>,
    /// A regular expression of the topics to consume from (librdkafka's regex syntax).
    #[arg(long, value_name = "REGEX")]
    pub include: Option<String>,
    /// How many records to consume.
    #[arg(long)]
    pub messages: u64,
    /// The consumer group (default: a new group `perf-consumer-NNNNN`).
    #[arg(long)]
    pub group: Option<String>,
    /// Bytes to fetch per partition and request (max.partition.fetch.bytes; Kafka's tool
    /// defaults to 1 MiB, strom's to 10 MiB).
    #[arg(long, default_value_t = DEFAULT_FETCH_SIZE)]
    pub fetch_size: u32,
    /// Without a committed position, start at the latest record rather than the earliest.
    #[arg(long)]
    pub from_latest: bool,
    /// The socket's receive buffer (socket.receive.buffer.bytes; default: the system's).
    #[arg(long, value_name = "BYTES")]
    pub socket_buffer_size: Option<u32>,
    /// Give up when no record arrived for this long (ms).
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    /// A properties file of consumer settings.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// A line per --reporting-interval instead of the one summary line.
    #[arg(long)]
    pub show_detailed_stats: bool,
    /// The interval of --show-detailed-stats, in ms.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub reporting_interval: u64,
    /// The format of the times (java.text.SimpleDateFormat letters; rendered in UTC).
    #[arg(long, default_value = "yyyy-MM-dd HH:mm:ss:SSS")]
    pub date_format: String,
    /// Do not print the header line.
    #[arg(long)]
    pub hide_header: bool,
}

/// Kafka's rebalance listener: the time from subscribing (or losing every partition) to
/// getting partitions counts as rebalance time, not fetch time.
///
/// It also sets where each assigned partition starts. librdkafka, starting a partition that
/// has no committed offset, waits a fixed 100 ms before it asks for the auto.offset.reset
/// position (`rd_kafka_offset_reset` treats "no offset" as an error and backs off), which on a
/// run of a second or two is several percent of the fetch time and no part of the broker's
/// work. Given a logical offset by assign(), it asks at once. So the tool looks up the
/// committed offsets itself (the one round trip librdkafka would make) and assigns each
/// partition at its committed offset, or at the beginning (the end with --from-latest).
struct ConsumerPerf {
    join: Mutex<JoinState>,
    reset: Offset,
}

struct JoinState {
    assigned: usize,
    start: Instant,
    total: Duration,
    this_round: Duration,
}

impl ConsumerPerf {
    fn join(&self) -> std::sync::MutexGuard<'_, JoinState> {
        self.join.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_positions(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        // On an error, the list stays as it came: librdkafka then looks the offsets up itself.
        let Ok(committed) = consumer.committed_offsets(tpl.clone(), super::TIMEOUT) else { return };
        for e in committed.elements() {
            let at = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => self.reset,
            };
            let _ = tpl.set_partition_offset(e.topic(), e.partition(), at);
        }
    }
}

impl ClientContext for ConsumerPerf {}

impl ConsumerContext for ConsumerPerf {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                {
                    let mut j = self.join();
                    if j.assigned == 0 {
                        let took = j.start.elapsed();
                        j.total += took;
                        j.this_round += took;
                    }
                    j.assigned += tpl.count();
                }
                self.start_positions(consumer, tpl);
                let r = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = r {
                    eprintln!("ERROR: cannot take the assigned partitions: {e}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let r = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = r {
                    eprintln!("ERROR: cannot give up the revoked partitions: {e}");
                }
                let mut j = self.join();
                j.assigned = if cooperative { j.assigned.saturating_sub(tpl.count()) } else { 0 };
                if j.assigned == 0 {
                    j.start = Instant::now();
                }
            }
            other => {
                eprintln!("ERROR: rebalance failed: {}", RDKafkaErrorCode::from(other));
                let _ = consumer.unassign();
            }
        }
    }
}

pub fn run_consumer(a: ConsumerArgs) -> anyhow::Result<()> {
    let date_format = DateFormat::parse(&a.date_format)?;
    let group = a.group.clone().unwrap_or_else(|| format!("perf-consumer-{}", pseudo_random() % 100_000));
    let mut settings: Vec<(String, String)> = vec![("group.id".into(), group)];
    settings.push(("max.partition.fetch.bytes".into(), a.fetch_size.to_string()));
    settings.push(("auto.offset.reset".into(), if a.from_latest { "latest" } else { "earliest" }.into()));
    settings.push(("enable.partition.eof".into(), "false".into()));
    if let Some(b) = a.socket_buffer_size {
        settings.push(("socket.receive.buffer.bytes".into(), b.to_string()));
    }
    // The tool's own settings win over the file, as in Kafka's tool.
    let cfg = tuned_config(&a.connection, "--consumer.config", a.consumer_config.as_ref(), settings, CONSUMER_TUNING)?;
    let bootstrap = cfg.get("bootstrap.servers").unwrap_or(&a.connection.bootstrap_server).to_string();
    let context = ConsumerPerf {
        join: Mutex::new(JoinState { assigned: 0, start: Instant::now(), total: Duration::ZERO, this_round: Duration::ZERO }),
        reset: if a.from_latest { Offset::End } else { Offset::Beginning },
    };
    let consumer: BaseConsumer<ConsumerPerf> = cfg.create_with_context(context).context("cannot create the consumer")?;
    let md = super::metadata(consumer.client(), &bootstrap)?;
    if let Some(topic) = &a.topic {
        if !md.topics().iter().any(|t| t.name() == topic && t.error().is_none()) {
            bail!("topic {topic} does not exist");
        }
    }

    let mut out = std::io::stdout().lock();
    if !a.hide_header {
        let first = if a.show_detailed_stats { "time, threadId" } else { "start.time, end.time" };
        writeln!(
            out,
            "{first}, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
        )?;
        out.flush()?;
    }

    let start_wall = SystemTime::now();
    let start = Instant::now();
    consumer.context().join().start = start;
    match (&a.topic, &a.include) {
        (Some(t), _) => consumer.subscribe(&[t.as_str()]),
        (None, Some(re)) => consumer.subscribe(&[format!("^{}", re.trim_start_matches('^')).as_str()]),
        (None, None) => unreachable!("clap requires --topic or --include"),
    }
    .context("cannot subscribe")?;

    const POLL: Duration = Duration::from_millis(100);
    let timeout = Duration::from_millis(a.timeout);
    let interval = Duration::from_millis(a.reporting_interval);
    let (mut n, mut bytes) = (0u64, 0u64);
    let (mut last_report, mut last_n, mut last_bytes) = (start, 0u64, 0u64);
    // When the current run of empty polls began; None while records arrive. Checked only
    // when a poll comes back empty, so the loop reads no clock per record (except for
    // --show-detailed-stats, which checks its interval at every record, as Kafka's tool).
    let mut idle_since = Some(start);
    while n < a.messages {
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                n += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                idle_since = None;
                if !a.show_detailed_stats {
                    continue;
                }
            }
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => bail!("cannot consume: {e}"),
            Some(Err(e)) => {
                eprintln!("ERROR: {e}");
                continue;
            }
            None => {
                let now = Instant::now();
                let since = *idle_since.get_or_insert(now.checked_sub(POLL).unwrap_or(now));
                if now.duration_since(since) > timeout {
                    break;
                }
                // As Kafka's tool: progress lines only as records arrive.
                continue;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_report) >= interval {
            let round = std::mem::take(&mut consumer.context().join().this_round);
            let elapsed = now.duration_since(last_report);
            let fetch = elapsed.saturating_sub(round);
            let interval_mb = (bytes - last_bytes) as f64 / MB;
            let interval_n = (n - last_n) as f64;
            let per_fetch_sec = |x: f64| if fetch.is_zero() { 0.0 } else { x / ms_f64(fetch) * 1000.0 };
            writeln!(
                out,
                "{}, 0, {:.4}, {:.4}, {n}, {:.4}, {}, {}, {:.4}, {:.4}",
                date_format.format(start_wall + now.duration_since(start)),
                bytes as f64 / MB,
                interval_mb / ms_f64(elapsed) * 1000.0,
                interval_n / ms_f64(elapsed) * 1000.0,
                round.as_millis(),
                fetch.as_millis(),
                per_fetch_sec(interval_mb),
                per_fetch_sec(interval_n),
            )?;
            out.flush()?;
            (last_report, last_n, last_bytes) = (now, n, bytes);
        }
    }
    let end = Instant::now();
    if n < a.messages {
        writeln!(
            out,
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. \
             You can use the --timeout option to increase the timeout.",
            a.timeout
        )?;
    }
    if !a.show_detailed_stats {
        let elapsed = end.duration_since(start);
        let join = consumer.context().join().total.min(elapsed);
        let fetch = elapsed - join;
        let mb = bytes as f64 / MB;
        let per_sec = |x: f64, d: Duration| if d.is_zero() { 0.0 } else { x / d.as_secs_f64() };
        writeln!(
            out,
            "{}, {}, {mb:.4}, {:.4}, {n}, {:.4}, {}, {}, {:.4}, {:.4}",
            date_format.format(start_wall),
            date_format.format(start_wall + elapsed),
            per_sec(mb, elapsed),
            per_sec(n as f64, elapsed),
            join.as_millis(),
            fetch.as_millis(),
            per_sec(mb, fetch),
            per_sec(n as f64, fetch),
        )?;
    }
    out.flush()?;
    // librdkafka's auto-commit commits the position of what poll() returned (every 5 s, as
    // Kafka's). Dropping the consumer would first drain what it fetched ahead, through poll(),
    // and commit that too; giving up the partitions first commits exactly what was counted and
    // discards the rest. Then the drop leaves the group.
    let _ = consumer.unassign();
    drop(consumer);
    Ok(())
}

fn ms_f64(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).max(1e-9)
}

/// For the default group name; no need for a random-number crate.
fn pseudo_random() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    next_random(&mut x);
    next_random(&mut x)
}

// ---------------------------------------------------------------------------------------------
// Java's SimpleDateFormat, the letters the tools' users put in --date-format, in UTC.

#[derive(Debug, PartialEq)]
enum DatePart {
    Literal(String),
    Field(char, usize),
}

#[derive(Debug)]
struct DateFormat(Vec<DatePart>);

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

impl DateFormat {
    fn parse(pattern: &str) -> anyhow::Result<DateFormat> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars().peekable();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match chars.next() {
                        None => bail!("--date-format {pattern}: unterminated quote"),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(q) => literal.push(q),
                    }
                }
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhmsSaEZXz".contains(c) {
                    bail!("--date-format {pattern}: the letter {c} is not supported (use y M d H h m s S a E Z X z)");
                }
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                if !literal.is_empty() {
                    parts.push(DatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(DatePart::Field(c, count));
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            parts.push(DatePart::Literal(literal));
        }
        Ok(DateFormat(parts))
    }

    fn format(&self, t: SystemTime) -> String {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let days = (secs / 86_400) as i64;
        let (year, month, day) = civil_from_days(days);
        let sod = secs % 86_400;
        let (hour, minute, second) = (sod / 3600, sod / 60 % 60, sod % 60);
        let millis = d.subsec_millis();
        let mut s = String::new();
        for part in &self.0 {
            use std::fmt::Write as _;
            let _ = match part {
                DatePart::Literal(l) => write!(s, "{l}"),
                DatePart::Field('y', 2) => write!(s, "{:02}", year.rem_euclid(100)),
                DatePart::Field('y', n) => write!(s, "{year:0n$}"),
                DatePart::Field('M', n) if *n >= 4 => write!(s, "{}", MONTHS[month as usize - 1]),
                DatePart::Field('M', 3) => write!(s, "{}", &MONTHS[month as usize - 1][..3]),
                DatePart::Field('M', n) => write!(s, "{month:0n$}"),
                DatePart::Field('d', n) => write!(s, "{day:0n$}"),
                DatePart::Field('H', n) => write!(s, "{hour:0n$}"),
                DatePart::Field('h', n) => write!(s, "{:0n$}", if hour % 12 == 0 { 12 } else { hour % 12 }),
                DatePart::Field('m', n) => write!(s, "{minute:0n$}"),
                DatePart::Field('s', n) => write!(s, "{second:0n$}"),
                DatePart::Field('S', n) => write!(s, "{millis:0n$}"),
                DatePart::Field('a', _) => write!(s, "{}", if hour < 12 { "AM" } else { "PM" }),
                DatePart::Field('E', n) => {
                    // 1970-01-01 was a Thursday.
                    let name = DAYS[(days + 3).rem_euclid(7) as usize];
                    write!(s, "{}", if *n >= 4 { name } else { &name[..3] })
                }
                DatePart::Field('Z', _) => write!(s, "+0000"),
                DatePart::Field('X', _) => write!(s, "Z"),
                DatePart::Field('z', _) => write!(s, "UTC"),
                DatePart::Field(_, _) => Ok(()),
            };
        }
        s
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_default_date_format() {
        let f = DateFormat::parse("yyyy-MM-dd HH:mm:ss:SSS").unwrap();
        // 2026-12-01 21:43:16.007 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_796_161_396_007);
        assert_eq!(f.format(t), "2026-12-01 21:43:16:007");
        assert_eq!(f.format(UNIX_EPOCH), "1970-01-01 00:00:00:000");
        let f = DateFormat::parse("EEE, d MMM yy h:mm a 'at' z ''").unwrap();
        assert_eq!(f.format(t), "Tue, 1 Dec 26 9:43 PM at UTC '");
        assert!(DateFormat::parse("yyyy-QQ").is_err());
        assert!(DateFormat::parse("'open").is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn producer_stats_lines_and_percentiles() {
        let mut s = ProducerStats::new(1000);
        for i in 0..1000u64 {
            s.record((i + 1) * 1000, 100);
        }
        let line = s.total(s.start + Duration::from_secs(2));
        assert_eq!(
            line,
            "1000 records sent, 500.000000 records/sec (0.05 MB/sec), 500.50 ms avg latency, 1000.00 ms max latency, \
             501 ms 50th, 951 ms 95th, 991 ms 99th, 1000 ms 99.9th."
        );
        let w = s.take_window(s.window_start + Duration::from_secs(5));
        assert_eq!(w, "1000 records sent, 200.0 records/sec (0.02 MB/sec), 500.5 ms avg latency, 1000.0 ms max latency.");
        // Sampling keeps at most 500,000 latencies, as Kafka's tool.
        assert_eq!(ProducerStats::new(2_000_000).sampling, 4);
        assert_eq!(ProducerStats::new(1).sampling, 1);
    }

    #[test]
    fn payload_helpers() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
        let parts: Vec<&[u8]> = split_bytes(b"a||b||", b"||").collect();
        assert_eq!(parts, vec![&b"a"[..], b"b", b""]);
    }
}
