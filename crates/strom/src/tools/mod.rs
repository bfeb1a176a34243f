//! Kafka's everyday command-line tools as `strom` subcommands, with Kafka's flags and output:
//! `strom topics` is `kafka-topics.sh`, and so on. They are clients like any other, built on
//! librdkafka (the `rdkafka` crate): the same client most non-Java Kafka applications use, so
//! the tools exercise the broker the way real traffic does (see ARCHITECTURE.md for why).

pub mod acls;
pub mod admin_ffi;
pub mod client_security;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod datetime;
pub mod get_offsets;
pub mod kafka_client;
pub mod leader_election;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod perf;
pub mod reassign_partitions;
pub mod share_groups;
pub mod topics;
pub mod transactions;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka_sys::types::RDKafkaRespErr;

/// How long a tool waits for the cluster before it gives up with an error.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The flags every tool takes, as Kafka's tools spell them.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, visible_alias = "broker-list", default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file with client settings (librdkafka / Kafka client property names).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl Connection {
    /// The client configuration: bootstrap servers, then the command-config file, then `extra`.
    pub fn client_config(&self, extra: &[(String, String)]) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_server);
        // Fail within the tool's timeout, with one clear line, when nothing answers.
        c.set("socket.connection.setup.timeout.ms", TIMEOUT.as_millis().to_string());
        c.set("log_level", "3");
        let mut props = match &self.command_config {
            Some(path) => read_properties("--command-config", path)?,
            None => Vec::new(),
        };
        props.extend(extra.iter().cloned());
        // Kafka's Java names for stores and logins, as librdkafka names them.
        for (k, v) in client_security::translate(props)? {
            c.set(k, v);
        }
        Ok(c)
    }
}

/// A Java properties file named by `flag` (`--command-config`, `--producer.config`, ...).
pub fn read_properties(flag: &str, path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let props = java_properties::read(std::io::BufReader::new(f)).with_context(|| format!("cannot parse {flag} {}", path.display()))?;
    Ok(props.into_iter().collect())
}

/// Splits `key=value` pairs as given to `--property`, `--producer-property` and friends.
pub fn parse_properties(flag: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some((k, v)) = item.split_once('=') else { bail!("{flag} expects key=value, got `{item}`") };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Runs a future of the admin API (rdkafka's futures need no particular runtime).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    Ok(rt.block_on(f))
}

/// Asks the cluster for its metadata (of every topic: asking for one by name would create it
/// on a broker that auto-creates topics), turning "nobody answered" into one clear line.
pub fn metadata(client: &rdkafka::client::Client<impl rdkafka::ClientContext>, bootstrap: &str) -> anyhow::Result<rdkafka::metadata::Metadata> {
    client
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster at {bootstrap} within {} s: {e}", TIMEOUT.as_secs()))
}

/// Kafka's `ToolsUtils.prettyPrintTable`: every cell padded to its column's width and followed
/// by a tab (the last one too), the headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (cell, w) in cells.zip(&widths) {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            out.push('\t');
        }
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Kafka's name of an error code, as its protocol guide and tools spell it
/// (`INVALID_TOPIC_EXCEPTION`, `UNKNOWN_TOPIC_OR_PARTITION`); librdkafka's name for the codes
/// Kafka does not have (librdkafka's own, negative ones: `TRANSPORT`, `TIMED_OUT`).
pub fn error_name(code: i32) -> String {
    let kafka = i16::try_from(code).ok().and_then(ResponseError::try_from_code).filter(|e| !matches!(e, ResponseError::Unknown(_)));
    match kafka {
        // kafka-protocol's variants are Kafka's names in CamelCase.
        Some(e) => upper_snake(&format!("{e:?}")),
        None => match RDKafkaRespErr::try_from(code) {
            Ok(e) => upper_snake(&format!("{:?}", RDKafkaErrorCode::from(e))),
            Err(_) => format!("error code {code}"),
        },
    }
}

/// A broker's error as every tool prints it: Kafka's name of the code, then the message the
/// broker sent with it (`INVALID_TOPIC_EXCEPTION: Topic name "a/b" is illegal, ...`). Several
/// responses carry no message (DeleteGroups, OffsetCommit, DeleteTopics below v5); for those
/// librdkafka's description of the code stands in, so the line always says what went wrong.
pub fn error_text(code: i32, broker_message: Option<&str>) -> String {
    let name = error_name(code);
    let message = broker_message.map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).or_else(|| admin_ffi::description(code));
    // librdkafka prefixes its descriptions of broker codes with "Broker: " (also when it hands on
    // a response without a message); the name in front already says where the error came from.
    match message.as_deref().map(|m| m.strip_prefix("Broker: ").unwrap_or(m)) {
        Some(m) if !m.is_empty() && !m.eq_ignore_ascii_case(&name) => format!("{name}: {m}"),
        _ => name,
    }
}

/// An error of the `rdkafka` crate as `error_text` prints a broker's: the crate's Display is
/// its Rust variant's name (`InvalidTopic`) and librdkafka's description, not Kafka's name.
pub fn kafka_error_text(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => error_text(code as i32, None),
        None => e.to_string(),
    }
}

/// `context` for the `rdkafka` crate's results, the error printed by `kafka_error_text`.
pub trait KafkaContext<T> {
    fn kafka_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> anyhow::Result<T>;
}

impl<T> KafkaContext<T> for Result<T, KafkaError> {
    fn kafka_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{}: {}", context(), kafka_error_text(&e)))
    }
}

/// `InvalidTopicException` -> `INVALID_TOPIC_EXCEPTION`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{error_name, error_text};

    #[test]
    fn errors_read_as_kafka_names_them_with_the_brokers_message() {
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30_000), "error code 30000");
        assert_eq!(error_text(17, Some("Topic name \"a/b\" is illegal")), "INVALID_TOPIC_EXCEPTION: Topic name \"a/b\" is illegal");
        // No message from the broker: librdkafka's description, without its "Broker: " prefix.
        let text = error_text(69, None);
        assert!(text.starts_with("GROUP_ID_NOT_FOUND: ") && text.len() > "GROUP_ID_NOT_FOUND: ".len() && !text.contains("Broker:"), "{text}");
        assert_eq!(error_text(69, Some("  ")), text);
    }
}
