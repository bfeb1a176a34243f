//! `strom console-consumer`: Kafka's `kafka-console-consumer.sh`: prints records, one per line,
//! as a member of a group (by default a fresh one, `console-consumer-NNNNN`, as Kafka does) or
//! from one partition at a given offset.
//!
//! Ctrl-C or SIGTERM (or --max-messages, or --timeout-ms without a record, or a closed standard
//! output) ends it cleanly: the position is committed and the group is left at once, as a group
//! member's close does. A topic that does not exist yet is waited for, as Kafka's tool does.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::{parse_properties, Connection};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// The topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest record when the group has no committed position.
    #[arg(long)]
    pub from_beginning: bool,
    /// The consumer group (default: a new group `console-consumer-NNNNN`).
    #[arg(long)]
    pub group: Option<String>,
    /// Read only this partition, without a group subscription.
    #[arg(long)]
    pub partition: Option<i32>,
    /// With --partition: an offset, `earliest` or `latest` (default latest, or earliest with
    /// --from-beginning).
    #[arg(long)]
    pub offset: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// read_uncommitted or read_committed.
    #[arg(long, default_value = "read_uncommitted")]
    pub isolation_level: String,
    /// How records are printed, key=value (repeatable): print.key, print.value, print.offset,
    /// print.partition, print.timestamp, print.headers, key.separator (a tab),
    /// line.separator (a newline), headers.separator (,), null.literal (null).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// A consumer setting, key=value (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_properties: Vec<String>,
    /// A properties file of consumer settings.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<std::path::PathBuf>,
}

/// Kafka's DefaultMessageFormatter settings.
struct Format {
    key: bool,
    value: bool,
    offset: bool,
    partition: bool,
    timestamp: bool,
    headers: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    null_literal: String,
}

impl Format {
    fn from_properties(props: &[(String, String)]) -> anyhow::Result<Format> {
        let mut f = Format {
            key: false,
            value: true,
            offset: false,
            partition: false,
            timestamp: false,
            headers: false,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            null_literal: "null".into(),
        };
        for (k, v) in props {
            let on = v.eq_ignore_ascii_case("true");
            match k.as_str() {
                "print.key" => f.key = on,
                "print.value" => f.value = on,
                "print.offset" => f.offset = on,
                "print.partition" => f.partition = on,
                "print.timestamp" => f.timestamp = on,
                "print.headers" => f.headers = on,
                "key.separator" => f.key_separator = unescape(v),
                "line.separator" => f.line_separator = unescape(v),
                "headers.separator" => f.headers_separator = unescape(v),
                "null.literal" => f.null_literal = v.clone(),
                other => bail!("unknown --property {other}"),
            }
        }
        Ok(f)
    }

    fn write(&self, out: &mut impl Write, m: &impl Message) -> std::io::Result<()> {
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(6);
        if self.timestamp {
            fields.push(
                match m.timestamp() {
                    Timestamp::NotAvailable => "NO_TIMESTAMP".to_string(),
                    Timestamp::CreateTime(t) => format!("CreateTime:{t}"),
                    Timestamp::LogAppendTime(t) => format!("LogAppendTime:{t}"),
                }
                .into_bytes(),
            );
        }
        if self.partition {
            fields.push(format!("Partition:{}", m.partition()).into_bytes());
        }
        if self.offset {
            fields.push(format!("Offset:{}", m.offset()).into_bytes());
        }
        if self.headers {
            let text = match m.headers() {
                Some(h) if h.count() > 0 => {
                    let mut parts = Vec::with_capacity(h.count());
                    for header in h.iter() {
                        let value = header.value.map_or(self.null_literal.clone(), |v| String::from_utf8_lossy(v).into_owned());
                        parts.push(format!("{}:{value}", header.key));
                    }
                    parts.join(&self.headers_separator)
                }
                _ => "NO_HEADERS".to_string(),
            };
            fields.push(text.into_bytes());
        }
        if self.key {
            fields.push(m.key().map_or(self.null_literal.as_bytes().to_vec(), <[u8]>::to_vec));
        }
        if self.value {
            fields.push(m.payload().map_or(self.null_literal.as_bytes().to_vec(), <[u8]>::to_vec));
        }
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.write_all(self.key_separator.as_bytes())?;
            }
            out.write_all(f)?;
        }
        out.write_all(self.line_separator.as_bytes())
    }
}

/// Kafka's default auto.commit.interval.ms.
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

fn commit(consumer: &BaseConsumer, topic: &str, printed: &std::collections::BTreeMap<i32, i64>, mode: rdkafka::consumer::CommitMode) {
    let mut tpl = TopicPartitionList::new();
    for (p, next) in printed {
        if tpl.add_partition_offset(topic, *p, Offset::Offset(*next)).is_err() {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        eprintln!("ERROR: could not commit the group's position: {}", super::kafka_error_text(&e));
    }
}

/// `\t`, `\n` and `\r` as Kafka's tools accept them on the command line.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let format = Format::from_properties(&parse_properties("--property", &a.properties)?)?;
    if a.offset.is_some() && a.partition.is_none() {
        bail!("--offset needs --partition");
    }
    let group = a.group.clone().unwrap_or_else(|| format!("console-consumer-{}", std::process::id() % 100_000));
    let mut settings = vec![
        ("client.id".to_string(), "console-consumer".to_string()),
        ("group.id".to_string(), group.clone()),
        ("auto.offset.reset".to_string(), if a.from_beginning { "earliest" } else { "latest" }.to_string()),
        ("isolation.level".to_string(), a.isolation_level.clone()),
        ("enable.partition.eof".to_string(), "false".to_string()),
        // librdkafka's auto-commit may commit past what was printed; this tool commits what it
        // printed itself, every auto.commit.interval.ms (Kafka's 5 s) and on exit.
        ("enable.auto.commit".to_string(), "false".to_string()),
    ];
    if let Some(path) = &a.consumer_config {
        settings.extend(super::read_properties("--consumer.config", path)?);
    }
    settings.extend(parse_properties("--consumer-property", &a.consumer_properties)?);
    let start = match a.offset.as_deref() {
        None if a.from_beginning => Offset::Beginning,
        None | Some("latest") => Offset::End,
        Some("earliest") => Offset::Beginning,
        Some(o) => Offset::Offset(o.parse().with_context(|| format!("--offset must be a number, earliest or latest, not {o}"))?),
    };
    let consumer: BaseConsumer = a.connection.client_config(&settings)?.create().context("cannot create the consumer")?;
    let stop = stop_on_signal();
    let idle_limit = a.timeout_ms.map(Duration::from_millis);
    // --timeout-ms counts from here: time spent waiting for the topic is time without a record.
    let started = Instant::now();
    if !wait_for_topic(&consumer, &a, &group, &stop, idle_limit.map(|l| started + l))? {
        eprintln!("Processed a total of 0 messages");
        return Ok(());
    }
    match a.partition {
        Some(p) => {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&a.topic, p, start).context("bad --partition")?;
            consumer.assign(&tpl).context("cannot assign the partition")?;
        }
        None => consumer.subscribe(&[&a.topic]).context("cannot subscribe")?,
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    // The next offset of each partition printed from: what is committed. Not the consumer's
    // position, which is further on: it has fetched ahead.
    let mut printed: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    let mut last = started;
    let group_member = a.partition.is_none();
    let mut last_commit = Instant::now();
    let mut committed = printed.clone();
    // A write error ends the loop. A closed pipe (the output piped into `head`) ends it
    // quietly, the consumer closed cleanly as Kafka's does when stdout fails; others are errors.
    let mut write_error = None;
    while !stop.load(Ordering::SeqCst) && a.max_messages.is_none_or(|max| count < max) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if let Err(e) = out.flush() {
                    write_error = Some(e);
                    break;
                }
                if idle_limit.is_some_and(|l| last.elapsed() >= l) {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("ERROR: {}", super::kafka_error_text(&e)),
            Some(Ok(m)) => {
                if let Err(e) = format.write(&mut out, &m) {
                    write_error = Some(e);
                    break;
                }
                printed.insert(m.partition(), m.offset() + 1);
                count += 1;
                last = Instant::now();
            }
        }
        if group_member && last_commit.elapsed() >= AUTO_COMMIT_INTERVAL && printed != committed {
            if let Err(e) = out.flush() {
                write_error = Some(e);
                break;
            }
            commit(&consumer, &a.topic, &printed, rdkafka::consumer::CommitMode::Async);
            committed = printed.clone();
            last_commit = Instant::now();
        }
    }
    if write_error.is_none() {
        write_error = out.flush().err();
    }
    // A BufWriter whose flush failed would try again when dropped: forget what it holds.
    let (_, _) = out.into_parts();
    if group_member && printed != committed {
        commit(&consumer, &a.topic, &printed, rdkafka::consumer::CommitMode::Sync);
    }
    // Dropping the consumer closes it, which leaves the group at once.
    drop(consumer);
    eprintln!("Processed a total of {count} messages");
    match write_error {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to standard output"),
        _ => Ok(()),
    }
}

/// A flag raised by Ctrl-C or SIGTERM (what `kill` and service managers send), so that the tool
/// finishes cleanly: commits what it printed and leaves its group.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    crate::signals::on_stop(move || flag.store(true, Ordering::SeqCst));
    stop
}

/// How often the cluster is asked again for a topic that does not exist yet.
const TOPIC_POLL: Duration = Duration::from_millis(500);

/// Waits until the topic exists, as Kafka's console consumer does: it is started before the
/// producer, often before the topic is created. Says so once, with the warning Kafka's consumer
/// logs (UNKNOWN_TOPIC_OR_PARTITION); the topic is not created by asking (metadata of every
/// topic never auto-creates one). `false` when Ctrl-C or the `deadline` came first.
fn wait_for_topic(consumer: &BaseConsumer, a: &Args, group: &str, stop: &AtomicBool, deadline: Option<Instant>) -> anyhow::Result<bool> {
    let exists = |md: &rdkafka::metadata::Metadata| md.topics().iter().any(|t| t.name() == a.topic && t.error().is_none());
    // The first answer decides whether the cluster is there at all: one clear line if not.
    if exists(&super::metadata(consumer.client(), &a.connection.bootstrap_server)?) {
        return Ok(true);
    }
    eprintln!(
        "WARN [Consumer clientId=console-consumer, groupId={group}] Error while fetching metadata: {{{}=UNKNOWN_TOPIC_OR_PARTITION}}: waiting for the topic to be created",
        a.topic
    );
    loop {
        if stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        std::thread::sleep(TOPIC_POLL);
        // A broker that is briefly away (restarting) is waited for too, as by Kafka's consumer.
        match consumer.client().fetch_metadata(None, super::TIMEOUT) {
            Ok(md) if exists(&md) => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "metadata while waiting for the topic"),
        }
    }
}
