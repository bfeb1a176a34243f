//! `strom leader-election`: Kafka's `kafka-leader-election.sh`: preferred or unclean leader
//! elections for one partition, the partitions of a JSON file, or every partition, with Kafka's
//! flags, checks and output. ElectLeaders v2 through `kafka_client` (any broker commits it
//! through the active controller).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::TIMEOUT;

const ELECT_LEADERS_VERSION: i16 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of admin client settings (client.id, request.timeout.ms, SASL/PLAIN).
    #[arg(long = "admin.config", visible_alias = "command-config", value_name = "FILE")]
    pub admin_config: Option<PathBuf>,
    /// "preferred": elect the first replica where it does not lead; "unclean": elect a leader
    /// where there is none, from outside the ISR if need be (records may be lost).
    #[arg(long, value_name = "ELECTION_TYPE")]
    pub election_type: Option<String>,
    /// The topic of the partition to elect a leader for (with --partition).
    #[arg(long)]
    pub topic: Option<String>,
    /// The partition to elect a leader for (with --topic).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Elect leaders for every partition that needs it.
    #[arg(long)]
    pub all_topic_partitions: bool,
    /// A JSON file of the partitions: {"partitions": [{"topic": "foo", "partition": 1}, ...]}.
    #[arg(long, value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Election {
    Preferred,
    Unclean,
}

impl Election {
    fn wire(self) -> i8 {
        match self {
            Election::Preferred => 0,
            Election::Unclean => 1,
        }
    }

    /// As Java's ElectionType prints.
    fn name(self) -> &'static str {
        match self {
            Election::Preferred => "PREFERRED",
            Election::Unclean => "UNCLEAN",
        }
    }
}

/// Kafka's `validate()`, in its order and words.
fn validate(a: &Args) -> anyhow::Result<Election> {
    let Some(kind) = &a.election_type else { bail!("Missing required option(s): election-type") };
    let kind = match kind.to_ascii_uppercase().as_str() {
        "PREFERRED" => Election::Preferred,
        "UNCLEAN" => Election::Unclean,
        other => bail!("Cannot convert argument '{other}' of option 'election-type' (preferred or unclean)"),
    };
    let chosen = [a.topic.is_some(), a.all_topic_partitions, a.path_to_json_file.is_some()].iter().filter(|x| **x).count();
    if chosen != 1 {
        bail!("One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file");
    }
    if a.topic.is_some() && a.partition.is_none() {
        bail!("Missing required option(s): partition");
    }
    if a.topic.is_none() && a.partition.is_some() {
        bail!("Option partition is only allowed if topic is used");
    }
    Ok(kind)
}

/// Kafka's election file: `{"partitions": [{"topic": T, "partition": P}, ...]}`, no duplicates.
fn parse_json_file(text: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let js: serde_json::Value = serde_json::from_str(text).context("the JSON file is not valid JSON")?;
    let Some(list) = js.get("partitions") else { bail!("Replica election data is missing \"partitions\" field") };
    let list = list.as_array().context("\"partitions\" must be an array")?;
    let mut out = Vec::new();
    for p in list {
        let topic = p.get("topic").and_then(|t| t.as_str()).context("each partition needs a \"topic\" string")?;
        let partition = p.get("partition").and_then(|t| t.as_i64()).and_then(|i| i32::try_from(i).ok()).context("each partition needs a \"partition\" number")?;
        out.push((topic.to_string(), partition));
    }
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<String> = out.iter().filter(|p| !seen.insert((*p).clone())).map(|(t, p)| format!("{t}-{p}")).collect();
    if !dups.is_empty() {
        bail!("Replica election data contains duplicate partitions: {}", dups.into_iter().collect::<Vec<_>>().join(","));
    }
    Ok(out)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let kind = validate(&a)?;
    let partitions: Option<Vec<(String, i32)>> = match (&a.topic, a.partition, &a.path_to_json_file) {
        (Some(t), Some(p), _) => Some(vec![(t.clone(), p)]),
        (_, _, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(parse_json_file(&text)?)
        }
        _ => None,
    };
    let settings = Settings::read("leader-election", a.admin_config.as_deref(), TIMEOUT)?;
    let (succeeded, noop, failed) = super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        let topic_partitions = partitions.as_ref().map(|ps| {
            let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
            for (t, p) in ps {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| TopicPartitions::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                .collect()
        });
        let req = ElectLeadersRequest::default()
            .with_election_type(kind.wire())
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(i32::try_from(cluster.timeout.as_millis()).unwrap_or(i32::MAX));
        let resp = cluster.call_any(ELECT_LEADERS_VERSION, &req).await.context("ElectLeaders")?;
        match error(resp.error_code) {
            None => {}
            Some(ResponseError::ClusterAuthorizationFailed) => {
                println!("Not authorized to perform leader election");
                bail!("Not authorized to perform leader election");
            }
            Some(e) => return Err(anyhow::Error::new(BrokerError(e)).context("ElectLeaders")),
        }
        let (mut succeeded, mut noop, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for t in &resp.replica_election_results {
            for p in &t.partition_result {
                let name = format!("{}-{}", t.topic.as_str(), p.partition_id);
                match error(p.error_code) {
                    None => succeeded.push((t.topic.to_string(), p.partition_id, name)),
                    Some(ResponseError::ElectionNotNeeded) => noop.push((t.topic.to_string(), p.partition_id, name)),
                    Some(_) => {
                        let text = super::error_text(i32::from(p.error_code), p.error_message.as_deref());
                        failed.push((t.topic.to_string(), p.partition_id, format!("{name}: {text}")));
                    }
                }
            }
        }
        for v in [&mut succeeded, &mut noop, &mut failed] {
            v.sort();
        }
        let names = |v: Vec<(String, i32, String)>| v.into_iter().map(|(_, _, n)| n).collect::<Vec<_>>();
        Ok((names(succeeded), names(noop), names(failed)))
    })??;
    if !succeeded.is_empty() {
        println!("Successfully completed leader election ({}) for partitions {}", kind.name(), succeeded.join(", "));
    }
    if !noop.is_empty() {
        println!("Valid replica already elected for partitions {}", noop.join(", "));
    }
    if !failed.is_empty() {
        for f in &failed {
            println!("Error completing leader election ({}) for partition: {f}", kind.name());
        }
        bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_files_read_as_kafka_reads_them() {
        let ps = parse_json_file(r#"{"partitions": [{"topic": "foo", "partition": 1}, {"topic": "bar", "partition": 0}]}"#).unwrap();
        assert_eq!(ps, vec![("foo".to_string(), 1), ("bar".to_string(), 0)]);
        let e = parse_json_file(r#"{"partitions": [{"topic": "foo", "partition": 1}, {"topic": "foo", "partition": 1}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "Replica election data contains duplicate partitions: foo-1");
        let e = parse_json_file(r#"{"topics": []}"#).unwrap_err();
        assert_eq!(e.to_string(), "Replica election data is missing \"partitions\" field");
        assert!(parse_json_file("{").is_err());
    }
}
