//! `strom metadata-quorum`: Kafka's `kafka-metadata-quorum.sh describe --status |
//! --replication [--human-readable]`: the controller quorum's leader, epoch, high watermark and
//! each voter's progress, in Kafka's words and columns. DescribeQuorum v2 through
//! `kafka_client` to any broker, which asks the active controller. Strom's quorum is its own
//! Raft (openraft) rather than KRaft: the epoch is the Raft term, offsets count log entries, and
//! no node has a directory id (printed as Kafka prints the zero id).

use std::path::PathBuf;

use anyhow::{bail, Context};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{Node, ReplicaState};
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::{table, TIMEOUT};

const DESCRIBE_QUORUM_VERSION: i16 = 2;
/// Kafka's `Uuid.ZERO_UUID` as its `toString` prints it (base64 of 16 zero bytes).
const ZERO_DIRECTORY_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings (client.id, request.timeout.ms, SASL/PLAIN).
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Describe the metadata quorum info.
    Describe {
        /// A short summary of the quorum status.
        #[arg(long)]
        status: bool,
        /// Detailed information about the status of replication.
        #[arg(long)]
        replication: bool,
        /// Human-readable output (with --replication).
        #[arg(long)]
        human_readable: bool,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let Command::Describe { status, replication, human_readable } = a.command;
    if status && replication {
        bail!("Only one of --status or --replication should be specified with describe sub-command");
    }
    if !status && !replication {
        bail!("One of --status or --replication must be specified with describe sub-command");
    }
    if status && human_readable {
        bail!("The option --human-readable is only supported along with --replication");
    }
    let settings = Settings::read("metadata-quorum", a.command_config.as_deref(), TIMEOUT)?;
    let (cluster_id, resp) = super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        let md = cluster.metadata(Some(&[])).await?;
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let resp = cluster.call_any(DESCRIBE_QUORUM_VERSION, &req).await.context("DescribeQuorum")?;
        Ok::<_, anyhow::Error>((md.cluster_id.map(|c| c.to_string()).unwrap_or_default(), resp))
    })??;
    let quorum = Quorum::from_response(&resp)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    print!("{}", if status { quorum.status(&cluster_id) } else { quorum.replication(human_readable, now)? });
    Ok(())
}

/// The one partition of a DescribeQuorum answer, and the nodes' endpoints.
struct Quorum<'a> {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: &'a [ReplicaState],
    observers: &'a [ReplicaState],
    nodes: &'a [Node],
}

impl<'a> Quorum<'a> {
    fn from_response(resp: &'a DescribeQuorumResponse) -> anyhow::Result<Quorum<'a>> {
        if let Some(e) = error(resp.error_code) {
            return Err(anyhow::Error::new(BrokerError(e)).context("DescribeQuorum"));
        }
        let Some(p) = resp.topics.first().and_then(|t| t.partitions.first()) else { bail!("DescribeQuorum: the answer has no partition") };
        if let Some(e) = error(p.error_code) {
            return Err(anyhow::Error::new(BrokerError(e)).context("DescribeQuorum"));
        }
        Ok(Quorum {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: &p.current_voters,
            observers: &p.observers,
            nodes: &resp.nodes,
        })
    }

    fn leader(&self) -> anyhow::Result<&ReplicaState> {
        self.voters.iter().find(|v| v.replica_id.0 == self.leader_id).with_context(|| format!("the leader {} is not among the voters", self.leader_id))
    }

    /// Kafka's `--status` block.
    fn status(&self, cluster_id: &str) -> String {
        let leader = self.leader().ok();
        let leader_end = leader.map_or(-1, |l| l.log_end_offset);
        let laggard = self.voters.iter().min_by_key(|v| v.log_end_offset);
        let max_lag = laggard.map_or(0, |f| leader_end - f.log_end_offset);
        let max_lag_ms = match (leader, laggard) {
            (Some(l), Some(f)) if l.replica_id == f.replica_id => 0,
            (Some(l), Some(f)) if l.last_caught_up_timestamp >= 0 && f.last_caught_up_timestamp >= 0 => l.last_caught_up_timestamp - f.last_caught_up_timestamp,
            _ => -1,
        };
        format!(
            "ClusterId:              {cluster_id}\nLeaderId:               {}\nLeaderEpoch:            {}\nHighWatermark:          {}\nMaxFollowerLag:         {max_lag}\nMaxFollowerLagTimeMs:   {max_lag_ms}\nCurrentVoters:          {}\nCurrentObservers:       {}\n",
            self.leader_id,
            self.leader_epoch,
            self.high_watermark,
            self.replicas(self.voters),
            self.replicas(self.observers),
        )
    }

    /// `[{"id": 1, "directoryId": null, "endpoints": ["CONTROLLER://host:port"]}, ...]`.
    fn replicas(&self, replicas: &[ReplicaState]) -> String {
        let one = |r: &ReplicaState| {
            let endpoints: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.node_id == r.replica_id)
                .flat_map(|n| n.listeners.iter())
                .map(|l| {
                    let host = if l.host.contains(':') { format!("[{}]", l.host.as_str()) } else { l.host.to_string() };
                    format!("\"{}://{host}:{}\"", l.name.as_str(), l.port)
                })
                .collect();
            let endpoints = if endpoints.is_empty() { String::new() } else { format!(", \"endpoints\": [{}]", endpoints.join(", ")) };
            let dir = if r.replica_directory_id.is_nil() { "null".to_string() } else { format!("\"{}\"", r.replica_directory_id) };
            format!("{{\"id\": {}, \"directoryId\": {dir}{endpoints}}}", r.replica_id.0)
        };
        format!("[{}]", replicas.iter().map(one).collect::<Vec<_>>().join(", "))
    }

    /// Kafka's `--replication` table: the leader, the other voters, then the observers.
    fn replication(&self, human_readable: bool, now_ms: i64) -> anyhow::Result<String> {
        let leader = self.leader()?;
        let time = |ts: i64, what: &str| -> anyhow::Result<String> {
            if ts < 0 {
                return Ok("-1".into());
            }
            if !human_readable {
                return Ok(ts.to_string());
            }
            if ts > now_ms || ts <= 0 {
                bail!("Error while computing relative time, possible drift in system clock.\nCurrent timestamp is {now_ms}, {what} timestamp is {ts}");
            }
            Ok(format!("{} ms ago", now_ms - ts))
        };
        let mut rows = Vec::new();
        let followers = self.voters.iter().filter(|v| v.replica_id != leader.replica_id);
        let all = std::iter::once((leader, "Leader")).chain(followers.map(|v| (v, "Follower"))).chain(self.observers.iter().map(|o| (o, "Observer")));
        for (r, status) in all {
            let dir = if r.replica_directory_id.is_nil() { ZERO_DIRECTORY_ID.to_string() } else { r.replica_directory_id.to_string() };
            rows.push(vec![
                r.replica_id.0.to_string(),
                dir,
                r.log_end_offset.to_string(),
                (leader.log_end_offset - r.log_end_offset).to_string(),
                time(r.last_fetch_timestamp, "last fetch")?,
                time(r.last_caught_up_timestamp, "last caught up")?,
                status.to_string(),
            ]);
        }
        Ok(table(&["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"], &rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{Listener, PartitionData as P, TopicData as T};
    use kafka_protocol::messages::BrokerId;

    fn response() -> DescribeQuorumResponse {
        let r = |id, end, ts| ReplicaState::default().with_replica_id(BrokerId(id)).with_log_end_offset(end).with_last_fetch_timestamp(ts).with_last_caught_up_timestamp(ts);
        let p = P::default().with_leader_id(BrokerId(2)).with_leader_epoch(3).with_high_watermark(40).with_current_voters(vec![r(1, 38, 900), r(2, 40, 1000), r(3, -1, -1)]);
        let node = |id, port| Node::default().with_node_id(BrokerId(id)).with_listeners(vec![Listener::default().with_name(StrBytes::from_static_str("CONTROLLER")).with_host(StrBytes::from_static_str("127.0.0.1")).with_port(port)]);
        DescribeQuorumResponse::default().with_topics(vec![T::default().with_partitions(vec![p])]).with_nodes(vec![node(1, 19092), node(2, 19093)])
    }

    #[test]
    fn status_reads_as_kafkas() {
        let resp = response();
        let q = Quorum::from_response(&resp).unwrap();
        let s = q.status("abc");
        assert!(s.starts_with("ClusterId:              abc\nLeaderId:               2\nLeaderEpoch:            3\nHighWatermark:          40\n"), "{s}");
        // The laggard is node 3, which the leader never heard from.
        assert!(s.contains("MaxFollowerLag:         41\nMaxFollowerLagTimeMs:   -1\n"), "{s}");
        assert!(s.contains(r#"CurrentVoters:          [{"id": 1, "directoryId": null, "endpoints": ["CONTROLLER://127.0.0.1:19092"]}, {"id": 2, "directoryId": null, "endpoints": ["CONTROLLER://127.0.0.1:19093"]}, {"id": 3, "directoryId": null}]"#), "{s}");
        assert!(s.ends_with("CurrentObservers:       []\n"), "{s}");
    }

    #[test]
    fn replication_lists_the_leader_first_then_followers() {
        let resp = response();
        let q = Quorum::from_response(&resp).unwrap();
        let t = q.replication(false, 2000).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NodeId\tDirectoryId           \tLogEndOffset\tLag\t"), "{t}");
        let cells = |l: &str| l.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>().join(" ");
        assert_eq!(cells(lines[1]), "2 AAAAAAAAAAAAAAAAAAAAAA 40 0 1000 1000 Leader");
        assert_eq!(cells(lines[2]), "1 AAAAAAAAAAAAAAAAAAAAAA 38 2 900 900 Follower");
        assert_eq!(cells(lines[3]), "3 AAAAAAAAAAAAAAAAAAAAAA -1 41 -1 -1 Follower");
        let h = q.replication(true, 2000).unwrap();
        assert!(h.contains("1000 ms ago"), "{h}");
    }
}
