//! `strom console-producer`: Kafka's `kafka-console-producer.sh`: one record per line of
//! standard input.
//!
//! Keys go through murmur2, exactly as Kafka's Java client partitions them, so a keyed record
//! lands in the partition Kafka's own tools would pick. A line that cannot be parsed (no key
//! separator with `parse.key=true`) is reported with its number and skipped; the rest of the
//! input is still sent, and the tool exits non-zero at the end.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::{parse_properties, Connection, TIMEOUT};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// The topic to write to.
    #[arg(long)]
    pub topic: String,
    /// How lines are read, key=value (repeatable): parse.key, key.separator (default a tab),
    /// parse.headers, headers.delimiter (tab), headers.separator (,), headers.key.separator (:),
    /// null.marker (a key, value or header value equal to it is sent as null).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// A producer setting, key=value (repeatable; librdkafka / Kafka client property names).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<String>,
    /// A properties file of producer settings.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<std::path::PathBuf>,
    /// none, gzip, snappy, lz4 or zstd; gzip when given without a value.
    #[arg(long, num_args = 0..=1, default_missing_value = "gzip", value_name = "CODEC")]
    pub compression_codec: Option<String>,
    /// acks: -1 (all), 0 or 1.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub request_required_acks: String,
}

struct LineFormat {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
}

impl LineFormat {
    fn from_properties(props: &[(String, String)]) -> anyhow::Result<LineFormat> {
        let mut f = LineFormat {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_marker: None,
        };
        for (k, v) in props {
            match k.as_str() {
                "parse.key" => f.parse_key = v.eq_ignore_ascii_case("true"),
                "key.separator" => f.key_separator = v.clone(),
                "parse.headers" => f.parse_headers = v.eq_ignore_ascii_case("true"),
                "headers.delimiter" => f.headers_delimiter = v.clone(),
                "headers.separator" => f.headers_separator = v.clone(),
                "headers.key.separator" => f.headers_key_separator = v.clone(),
                "null.marker" => f.null_marker = Some(v.clone()),
                "ignore.error" => {}
                other => bail!("unknown --property {other}"),
            }
        }
        for (name, sep) in [("key.separator", &f.key_separator), ("headers.delimiter", &f.headers_delimiter)] {
            if sep.is_empty() {
                bail!("--property {name} must not be empty");
            }
        }
        Ok(f)
    }

    fn nullable<'a>(&self, s: &'a str) -> Option<&'a str> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(s)
        }
    }

    /// (headers, key, value) of one line.
    #[allow(clippy::type_complexity)]
    fn parse<'a>(&self, line: &'a str) -> Result<(Vec<(&'a str, Option<&'a str>)>, Option<&'a str>, Option<&'a str>), String> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            let Some((h, r)) = rest.split_once(self.headers_delimiter.as_str()) else {
                return Err("no headers delimiter found".into());
            };
            rest = r;
            for pair in h.split(self.headers_separator.as_str()).filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once(self.headers_key_separator.as_str()) else {
                    return Err(format!("header `{pair}` has no headers.key.separator"));
                };
                headers.push((k, self.nullable(v)));
            }
        }
        if self.parse_key {
            let Some((k, v)) = rest.split_once(self.key_separator.as_str()) else {
                return Err("no key separator found".into());
            };
            return Ok((headers, self.nullable(k), self.nullable(v)));
        }
        Ok((headers, None, self.nullable(rest)))
    }
}

/// Counts failed deliveries and prints each once.
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("ERROR when sending a record to the topic: {}", super::kafka_error_text(e));
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let format = LineFormat::from_properties(&parse_properties("--property", &a.properties)?)?;
    let mut settings = vec![
        ("client.id".to_string(), "console-producer".to_string()),
        // Java's partitioner: murmur2 of the key; records without a key are spread.
        ("partitioner".to_string(), "murmur2_random".to_string()),
        ("acks".to_string(), a.request_required_acks.clone()),
        ("linger.ms".to_string(), "5".to_string()),
        ("message.timeout.ms".to_string(), (TIMEOUT.as_millis() * 3).to_string()),
    ];
    if let Some(codec) = &a.compression_codec {
        settings.push(("compression.type".to_string(), codec.clone()));
    }
    if let Some(path) = &a.producer_config {
        settings.extend(super::read_properties("--producer.config", path)?);
    }
    settings.extend(parse_properties("--producer-property", &a.producer_properties)?);
    let context = Deliveries { failed: AtomicU64::new(0) };
    let producer: ThreadedProducer<Deliveries> =
        a.connection.client_config(&settings)?.create_with_context(context).context("cannot create the producer")?;
    let producer = Arc::new(producer);
    // Fail early and clearly when the cluster is not there.
    super::metadata(producer.client(), &a.connection.bootstrap_server)?;

    let mut bad_lines = 0u64;
    let stdin = std::io::stdin();
    // Kafka's prompt, `>` before each line, only for a person typing: Java's LineMessageReader
    // shows it when System.console() exists, that is when stdin and stdout are both terminals.
    let prompt = stdin.is_terminal() && std::io::stdout().is_terminal();
    let mut input = stdin.lock();
    let mut buf = String::new();
    for n in 0u64.. {
        if prompt {
            let mut out = std::io::stdout().lock();
            // A prompt that cannot be shown is no reason to stop sending.
            let _ = out.write_all(b">").and_then(|()| out.flush());
        }
        buf.clear();
        if input.read_line(&mut buf).context("reading standard input")? == 0 {
            break;
        }
        let line = buf.strip_suffix('\n').unwrap_or(&buf);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (headers, key, value) = match format.parse(line) {
            Ok(parsed) => parsed,
            Err(why) => {
                bad_lines += 1;
                eprintln!("ERROR line {}: {why}; skipped: {line:?}", n + 1);
                continue;
            }
        };
        let mut record: BaseRecord<'_, str, str, ()> = BaseRecord::to(&a.topic);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                h = h.insert(Header { key: k, value: v });
            }
            record = record.headers(h);
        }
        // A full local queue is back-pressure: wait for deliveries, then retry.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("cannot send line {}: {e}", n + 1),
            }
        }
    }
    producer.flush(TIMEOUT * 3).context("records still undelivered at the end of the input")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if bad_lines > 0 || failed > 0 {
        bail!("{bad_lines} line(s) could not be parsed and {failed} record(s) could not be delivered");
    }
    Ok(())
}
