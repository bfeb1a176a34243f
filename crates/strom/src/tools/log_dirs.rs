//! `strom log-dirs`: Kafka's `kafka-log-dirs.sh --describe`: each broker's log directories with
//! every replica's size, offset lag and whether it is a future replica, as Kafka's one line of
//! JSON (its keys in the order Kafka's tool prints them). DescribeLogDirs to each broker
//! (`kafka_client`: librdkafka has no API for it).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use kafka_protocol::messages::DescribeLogDirsRequest;

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::TIMEOUT;

/// v4 (KIP-827's total and usable bytes, flexible): what Kafka 3.9's admin client sends.
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings (client.id, request.timeout.ms, SASL/PLAIN).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Describe the specified log directories on the specified brokers.
    #[arg(long, required = true)]
    pub describe: bool,
    /// The brokers to query, "0,1,2" (all brokers of the cluster if absent).
    #[arg(long, value_name = "BROKER_LIST", default_value = "")]
    pub broker_list: String,
    /// The topics to show, "topic1,topic2,topic3" (all topics if absent).
    #[arg(long, value_name = "TOPIC_LIST", default_value = "")]
    pub topic_list: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let settings = Settings::read("log-dirs-tool", a.command_config.as_deref(), TIMEOUT)?;
    let topics: BTreeSet<String> = a.topic_list.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
    let asked: BTreeSet<i32> = a
        .broker_list
        .split(',')
        .filter(|b| !b.is_empty())
        .map(|b| b.trim().parse::<i32>().with_context(|| format!("--broker-list: `{b}` is not a broker id")))
        .collect::<anyhow::Result<_>>()?;
    super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        let known: BTreeSet<i32> = cluster.brokers.keys().copied().collect();
        let missing: Vec<i32> = asked.difference(&known).copied().collect();
        if !missing.is_empty() {
            bail!("ERROR: The given brokers do not exist from --broker-list: {}. Current existent brokers: {}", join(&missing), join(&known.iter().copied().collect::<Vec<_>>()));
        }
        let brokers: Vec<i32> = if asked.is_empty() { known.into_iter().collect() } else { asked.into_iter().collect() };
        println!("Querying brokers for log directories information");
        let mut described = Vec::new();
        for &b in &brokers {
            let resp = cluster
                .call(b, DESCRIBE_LOG_DIRS_VERSION, &DescribeLogDirsRequest::default().with_topics(None))
                .await
                .with_context(|| format!("DescribeLogDirs to broker {b}"))?;
            if let Some(e) = error(resp.error_code) {
                return Err(anyhow::Error::new(BrokerError(e)).context(format!("DescribeLogDirs to broker {b}")));
            }
            described.push((b, resp.results));
        }
        println!("Received log directory information from brokers {}", join(&brokers));
        println!("{}", to_json(&described, &topics));
        Ok(())
    })?
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Kafka's JSON: `{"brokers":[{"broker":B,"logDirs":[{"partitions":[{"partition":"t-0",
/// "size":S,"offsetLag":L,"isFuture":false}],"error":null,"logDir":"/dir"}]}],"version":1}`.
/// A directory's error is Kafka's name of its code (null when there is none); `topics` non-empty
/// keeps only their partitions.
fn to_json(described: &[(i32, Vec<DescribeLogDirsResult>)], topics: &BTreeSet<String>) -> String {
    let brokers: Vec<String> = described
        .iter()
        .map(|(b, dirs)| {
            let dirs: Vec<String> = dirs
                .iter()
                .map(|d| {
                    let mut partitions: Vec<(String, i32, String)> = d
                        .topics
                        .iter()
                        .filter(|t| topics.is_empty() || topics.contains(t.name.as_str()))
                        .flat_map(|t| {
                            t.partitions.iter().map(move |p| {
                                let entry = format!(
                                    "{{\"partition\":{},\"size\":{},\"offsetLag\":{},\"isFuture\":{}}}",
                                    quoted(&format!("{}-{}", t.name.as_str(), p.partition_index)),
                                    p.partition_size,
                                    p.offset_lag,
                                    p.is_future_key
                                );
                                (t.name.to_string(), p.partition_index, entry)
                            })
                        })
                        .collect();
                    partitions.sort();
                    let partitions: Vec<String> = partitions.into_iter().map(|(_, _, e)| e).collect();
                    let err = if d.error_code == 0 { "null".to_string() } else { quoted(&super::error_name(i32::from(d.error_code))) };
                    format!("{{\"partitions\":[{}],\"error\":{err},\"logDir\":{}}}", partitions.join(","), quoted(d.log_dir.as_str()))
                })
                .collect();
            format!("{{\"broker\":{b},\"logDirs\":[{}]}}", dirs.join(","))
        })
        .collect();
    format!("{{\"brokers\":[{}],\"version\":1}}", brokers.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn json_has_kafkas_shape_and_key_order() {
        let part = |i, size| DescribeLogDirsPartition::default().with_partition_index(i).with_partition_size(size).with_offset_lag(0);
        let topic = |n: &'static str, ps| DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_static_str(n))).with_partitions(ps);
        let dir = DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_static_str("/data/a \"b\""))
            .with_topics(vec![topic("t", vec![part(1, 20), part(0, 10)]), topic("u", vec![part(0, 5)])]);
        let all = to_json(&[(1, vec![dir.clone()])], &BTreeSet::new());
        assert_eq!(
            all,
            r#"{"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"t-0","size":10,"offsetLag":0,"isFuture":false},{"partition":"t-1","size":20,"offsetLag":0,"isFuture":false},{"partition":"u-0","size":5,"offsetLag":0,"isFuture":false}],"error":null,"logDir":"/data/a \"b\""}]}],"version":1}"#
        );
        let only_u = to_json(&[(1, vec![dir])], &BTreeSet::from(["u".to_string()]));
        assert!(only_u.contains("\"u-0\"") && !only_u.contains("\"t-0\""), "{only_u}");
        let parsed: serde_json::Value = serde_json::from_str(&only_u).unwrap();
        assert_eq!(parsed["version"], 1);
    }
}
