//! Kafka's everyday command-line tools as `strom` subcommands, with Kafka's flags and output:
//! `strom topics` is `kafka-topics.sh`, and so on. They are clients like any other, built on
//! librdkafka (the `rdkafka` crate): the same client most non-Java Kafka applications use, so
//! the tools exercise the broker the way real traffic does (see ARCHITECTURE.md for why).

pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod get_offsets;
pub mod kafka_client;
pub mod perf;
pub mod topics;
pub mod transactions;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;

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
        if let Some(path) = &self.command_config {
            for (k, v) in read_properties("--command-config", path)? {
                c.set(k, v);
            }
        }
        for (k, v) in extra {
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
