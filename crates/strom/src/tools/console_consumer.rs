//! `strom console-consumer`: Kafka's `kafka-console-consumer.sh`: prints records, one per line,
//! as a member of a group (by default a fresh one, `console-consumer-NNNNN`, as Kafka does) or
//! from one partition at a given offset.
//!
//! Ctrl-C or SIGTERM (or --max-messages, or --timeout-ms without a record) ends it cleanly: the position
//! is committed and the group is left at once, as a group member's close does.

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
        ("group.id".to_string(), group),
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
    let consumer: BaseConsumer = a.connection.client_config(&settings)?.create().context("cannot create the consumer")?;
    let md = super::metadata(consumer.client(), &a.connection.bootstrap_server)?;
    if !md.topics().iter().any(|t| t.name() == a.topic && t.error().is_none()) {
        bail!("topic {} does not exist", a.topic);
    }
    match a.partition {
        Some(p) => {
            let start = match a.offset.as_deref() {
                None if a.from_beginning => Offset::Beginning,
                None | Some("latest") => Offset::End,
                Some("earliest") => Offset::Beginning,
                Some(o) => Offset::Offset(o.parse().with_context(|| format!("--offset must be a number, earliest or latest, not {o}"))?),
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&a.topic, p, start).context("bad --partition")?;
            consumer.assign(&tpl).context("cannot assign the partition")?;
        }
        None => consumer.subscribe(&[&a.topic]).context("cannot subscribe")?,
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            // Ctrl-C or SIGTERM (what `kill` and service managers send): finish cleanly.
            rt.block_on(async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            });
            flag.store(true, Ordering::SeqCst);
        }
    });

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    // The next offset of each partition printed from: what is committed. Not the consumer's
    // position, which is further on: it has fetched ahead.
    let mut printed: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    let mut last = Instant::now();
    let idle_limit = a.timeout_ms.map(Duration::from_millis);
    let group_member = a.partition.is_none();
    let mut last_commit = Instant::now();
    let mut committed = printed.clone();
    while !stop.load(Ordering::SeqCst) && a.max_messages.is_none_or(|max| count < max) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                out.flush()?;
                if idle_limit.is_some_and(|l| last.elapsed() >= l) {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("ERROR: {}", super::kafka_error_text(&e)),
            Some(Ok(m)) => {
                format.write(&mut out, &m)?;
                printed.insert(m.partition(), m.offset() + 1);
                count += 1;
                last = Instant::now();
            }
        }
        if group_member && last_commit.elapsed() >= AUTO_COMMIT_INTERVAL && printed != committed {
            out.flush()?;
            commit(&consumer, &a.topic, &printed, rdkafka::consumer::CommitMode::Async);
            committed = printed.clone();
            last_commit = Instant::now();
        }
    }
    out.flush()?;
    drop(out);
    if group_member && printed != committed {
        commit(&consumer, &a.topic, &printed, rdkafka::consumer::CommitMode::Sync);
    }
    // Dropping the consumer closes it, which leaves the group at once.
    drop(consumer);
    eprintln!("Processed a total of {count} messages");
    Ok(())
}
