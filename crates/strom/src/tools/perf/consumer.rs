//! `strom consumer-perf-test`: Kafka's `kafka-consumer-perf-test.sh`. Consumes `--messages`
//! records in a consumer group and prints Kafka's summary line (or a line per
//! `--reporting-interval` with `--show-detailed-stats`), with the time spent joining the group
//! counted apart from the time spent fetching.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::date_format::DateFormat;
use super::{next_random, tuned_config, MB};
use crate::tools::{self, Connection};

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
    /// (Strom) read_uncommitted (the default, as Kafka's consumer) or read_committed: records of
    /// open and aborted transactions are skipped, and fetches stop at the last stable offset.
    #[arg(long, value_parser = ["read_uncommitted", "read_committed"])]
    pub isolation_level: Option<String>,
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
        let Ok(committed) = consumer.committed_offsets(tpl.clone(), tools::TIMEOUT) else { return };
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
    if let Some(level) = &a.isolation_level {
        settings.push(("isolation.level".into(), level.clone()));
    }
    // The tool's own settings win over the file, as in Kafka's tool.
    let mut cfg = tuned_config(&a.connection, "--consumer.config", a.consumer_config.as_ref(), settings, CONSUMER_TUNING)?;
    // Kafka's consumer reads uncommitted unless told otherwise; librdkafka's reads committed.
    if cfg.get("isolation.level").is_none() {
        cfg.set("isolation.level", "read_uncommitted");
    }
    let bootstrap = cfg.get("bootstrap.servers").unwrap_or(&a.connection.bootstrap_server).to_string();
    let context = ConsumerPerf {
        join: Mutex::new(JoinState { assigned: 0, start: Instant::now(), total: Duration::ZERO, this_round: Duration::ZERO }),
        reset: if a.from_latest { Offset::End } else { Offset::Beginning },
    };
    let consumer: BaseConsumer<ConsumerPerf> = cfg.create_with_context(context).context("cannot create the consumer")?;
    let md = tools::metadata(consumer.client(), &bootstrap)?;
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
