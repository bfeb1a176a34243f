//! `strom producer-perf-test`: Kafka's `kafka-producer-perf-test.sh`. Sends `--num-records`
//! records as fast as librdkafka takes them (or paced by `--throughput`), measures each
//! delivery's latency in the delivery callback, and prints Kafka's progress line every 5 s and
//! its summary line with the latency percentiles.
//!
//! Transactions, as Kafka's tool: `--transactional-id`, `--transaction-duration-ms` or a
//! `transactional.id` among the producer settings turns them on, and the tool commits the open
//! transaction once it is `--transaction-duration-ms` old (default 3000). Strom adds
//! `--transaction-size N`, a commit every N records, for transactions of a known size. The time of
//! each commit (EndTxn, after the transaction's records are flushed) is measured and summed up in
//! one more line after Kafka's summary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::{next_random, tuned_config, MB};
use crate::tools::{self, parse_properties, Connection};

/// How often Kafka's tools print a progress line.
const REPORTING_INTERVAL: Duration = Duration::from_secs(5);

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
    /// The transactional id; turns transactions on. Wins over a transactional.id in
    /// --producer-props or --producer.config.
    #[arg(long, value_name = "TRANSACTIONAL-ID")]
    pub transactional_id: Option<String>,
    /// Commit the open transaction once it is this old (ms); turns transactions on (with
    /// transactional id performance-producer-<random> unless one is given). Default 3000 when
    /// transactions are on and --transaction-size is not given.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub transaction_duration_ms: Option<u64>,
    /// (Strom) Commit the open transaction every N records; turns transactions on. With
    /// --transaction-duration-ms too, whichever comes first ends a transaction.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub transaction_size: Option<u64>,
}

/// Kafka's default transaction age before a commit.
const DEFAULT_TRANSACTION_DURATION: Duration = Duration::from_millis(3000);
/// How long init_transactions and each commit may take before the tool gives up: the first
/// transactional producer of a cluster waits for `__transaction_state` to be created.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// When the send loop ends a transaction.
#[derive(Clone, Copy, Debug)]
struct TransactionPlan {
    size: Option<u64>,
    duration: Option<Duration>,
}

/// The commit times of a transactional run, in microseconds.
#[derive(Default)]
struct CommitStats {
    micros: Vec<u64>,
}

impl CommitStats {
    /// The extra summary line: how many transactions, and what their commits cost.
    fn line(&mut self) -> String {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let ms = |us: u64| us as f64 / 1000.0;
        let pct = |p: f64| if n == 0 { 0.0 } else { ms(self.micros[((p * n as f64) as usize).min(n - 1)]) };
        let avg = if n == 0 { 0.0 } else { ms(self.micros.iter().sum::<u64>()) / n as f64 };
        format!(
            "{n} transactions committed, {avg:.2} ms avg commit latency, {:.2} ms max commit latency, {:.2} ms 50th, {:.2} ms 99th.",
            ms(self.micros.last().copied().unwrap_or(0)),
            pct(0.5),
            pct(0.99)
        )
    }
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

pub fn run_producer(a: ProducerArgs) -> anyhow::Result<()> {
    if a.throughput == 0.0 || a.throughput.is_nan() {
        bail!("--throughput must be a number of records per second, or -1 for no limit");
    }
    let pace = (a.throughput > 0.0).then_some(a.throughput);
    let payloads = payloads(&a)?;
    let mut cfg = tuned_config(
        &a.connection,
        "--producer.config",
        a.producer_config.as_ref(),
        parse_properties("--producer-props", &a.producer_props)?,
        PRODUCER_TUNING,
    )?;
    let transactions = transaction_plan(&a, &mut cfg);
    let bootstrap = cfg.get("bootstrap.servers").unwrap_or(&a.connection.bootstrap_server).to_string();
    let context = ProducerPerf {
        epoch: Instant::now(),
        stats: Mutex::new(ProducerStats::new(a.num_records)),
        sent: std::sync::atomic::AtomicU64::new(0),
    };
    let producer: ThreadedProducer<ProducerPerf> = cfg.create_with_context(context).context("cannot create the producer")?;
    // Fail early and clearly when the cluster is not there.
    tools::metadata(producer.client(), &bootstrap)?;
    if transactions.is_some() {
        producer.init_transactions(TRANSACTION_TIMEOUT).context("cannot initialize transactions")?;
    }
    let ctx = producer.context();
    let mut commits = CommitStats::default();

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
        let sent = send_all(&producer, &a.topic, &payloads, num_records, pace, start, transactions, &mut commits);
        let flushed = sent.and_then(|()| flush_promptly(&producer));
        drop(stop_reporter);
        let _ = reporter.join();
        flushed
    })?;
    let (line, failed) = {
        let mut s = ctx.stats();
        (s.total(Instant::now()), s.failed)
    };
    println!("{line}");
    if transactions.is_some() {
        println!("{}", commits.line());
    }
    if failed > 0 {
        bail!("{failed} of {num_records} records could not be delivered");
    }
    Ok(())
}

/// Whether the run is transactional, and when it commits; sets the transactional id in `cfg`
/// (the flag's, the settings', or Kafka's `performance-producer-` and a random suffix).
fn transaction_plan(a: &ProducerArgs, cfg: &mut rdkafka::config::ClientConfig) -> Option<TransactionPlan> {
    let from_settings = cfg.get("transactional.id").is_some_and(|t| !t.is_empty());
    if a.transactional_id.is_none() && a.transaction_duration_ms.is_none() && a.transaction_size.is_none() && !from_settings {
        return None;
    }
    match &a.transactional_id {
        Some(id) => {
            cfg.set("transactional.id", id);
        }
        None if from_settings => {}
        None => {
            let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id());
            let suffix = format!("{:016x}{:016x}", next_random(&mut seed), next_random(&mut seed));
            cfg.set("transactional.id", format!("performance-producer-{suffix}"));
        }
    }
    let duration = match (a.transaction_duration_ms, a.transaction_size) {
        (Some(ms), _) => Some(Duration::from_millis(ms)),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TRANSACTION_DURATION),
    };
    Some(TransactionPlan { size: a.transaction_size, duration })
}

/// Waits until every record handed to librdkafka is delivered (or failed).
///
/// Not `Producer::flush`: the rdkafka crate's flush polls the event queue itself in steps of up
/// to 100 ms, and with `ThreadedProducer`'s thread taking the delivery events that poll sits out
/// its whole step: a transaction of 100 records would take 100 ms, and the end of every run up to
/// 100 ms more, measuring the tool. librdkafka's
/// own `rd_kafka_flush` with a timeout waits on the message count, which that thread brings to
/// zero, and returns as soon as it is.
fn flush_promptly(producer: &ThreadedProducer<ProducerPerf>) -> anyhow::Result<()> {
    loop {
        // SAFETY: the pointer is the live producer's handle, valid while `producer` is borrowed;
        // rd_kafka_flush is thread-safe and only waits (the polling thread serves the callbacks).
        let err = unsafe { rdkafka_sys::rd_kafka_flush(producer.client().native_ptr(), 1000) };
        match err {
            rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => return Ok(()),
            rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__TIMED_OUT => continue,
            e => bail!("cannot deliver the remaining records: {}", RDKafkaErrorCode::from(e)),
        }
    }
}

/// Ends the open transaction: flushes its records (their delivery is the records' latency, not
/// the commit's), then times the commit itself, EndTxn and its answer.
fn commit(producer: &ThreadedProducer<ProducerPerf>, commits: &mut CommitStats) -> anyhow::Result<()> {
    flush_promptly(producer)?;
    let t0 = Instant::now();
    producer.commit_transaction(TRANSACTION_TIMEOUT).with_context(|| format!("cannot commit transaction {}", commits.micros.len() + 1))?;
    commits.micros.push(t0.elapsed().as_micros() as u64);
    Ok(())
}

/// The send loop: per record, only the clock read for the latency and the send itself (plus
/// the pacing sleep under --throughput, and the transaction bookkeeping when transactional).
#[allow(clippy::too_many_arguments)]
fn send_all(
    producer: &ThreadedProducer<ProducerPerf>,
    topic: &str,
    payloads: &Payloads,
    num_records: u64,
    pace: Option<f64>,
    start: Instant,
    transactions: Option<TransactionPlan>,
    commits: &mut CommitStats,
) -> anyhow::Result<()> {
    let ctx = producer.context();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut digits = [0u8; 20];
    let mut in_transaction = 0u64;
    let mut transaction_start = start;
    for i in 0..num_records {
        if transactions.is_some() && in_transaction == 0 {
            producer.begin_transaction().context("cannot begin a transaction")?;
            transaction_start = Instant::now();
        }
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
        if let Some(plan) = transactions {
            in_transaction += 1;
            if plan.size.is_some_and(|n| in_transaction >= n) || plan.duration.is_some_and(|d| transaction_start.elapsed() >= d) {
                commit(producer, commits)?;
                in_transaction = 0;
            }
        }
    }
    if transactions.is_some() && in_transaction > 0 {
        commit(producer, commits)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn commit_stats_line() {
        let mut c = CommitStats { micros: (1..=100).rev().map(|i| i * 1000).collect() };
        assert_eq!(c.line(), "100 transactions committed, 50.50 ms avg commit latency, 100.00 ms max commit latency, 51.00 ms 50th, 100.00 ms 99th.");
        assert_eq!(CommitStats::default().line(), "0 transactions committed, 0.00 ms avg commit latency, 0.00 ms max commit latency, 0.00 ms 50th, 0.00 ms 99th.");
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
