//! The `strom` binary: the one command for running and operating Strom.

mod add_scram;
mod dev_cluster;
mod signals;
mod tools;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strom_broker::alloc_guard::GuardedAlloc;
use strom_broker::BrokerConfig;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

#[derive(Parser)]
#[command(name = "strom", version, about = "A Kafka-compatible event-streaming platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no arguments: a single node on 127.0.0.1:9092, data in ./strom-data.
    Server {
        /// A Kafka-style server.properties file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set one property, overriding the file (repeatable), as kafka-server-start.sh --override.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Print every config key Strom acts on, with its default, and exit.
        #[arg(long)]
        help_config: bool,
        /// A SCRAM user for a new cluster (repeatable), as kafka-storage format --add-scram:
        /// 'SCRAM-SHA-256=[name=admin,password=admin-secret]' (iterations=N optional, default
        /// 4096). Written only when this start creates the metadata log; ignored afterwards.
        #[arg(long, value_name = "MECHANISM=[name=N,password=P]")]
        add_scram: Vec<String>,
    },
    /// Start a local N-node cluster for development: one process, data dir and ports per node.
    Cluster(dev_cluster::Args),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    Topics(tools::topics::Args),
    /// Send one record per line of standard input (kafka-console-producer.sh).
    ConsoleProducer(tools::console_producer::Args),
    /// Print records as they arrive (kafka-console-consumer.sh).
    ConsoleConsumer(tools::console_consumer::Args),
    /// Print partitions' earliest, latest or by-time offsets (kafka-get-offsets.sh).
    GetOffsets(tools::get_offsets::Args),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups.sh).
    ConsumerGroups(tools::consumer_groups::Args),
    /// Describe and change topic and broker configs (kafka-configs.sh).
    Configs(tools::configs::Args),
    /// Add, remove and list ACLs (kafka-acls.sh).
    Acls(tools::acls::Args),
    /// List and describe transactions and producers, find and abort hanging transactions (kafka-transactions.sh).
    Transactions(tools::transactions::Args),
    /// Describe the brokers' log directories: replicas' sizes and lags (kafka-log-dirs.sh).
    LogDirs(tools::log_dirs::Args),
    /// Elect preferred or unclean leaders (kafka-leader-election.sh).
    LeaderElection(tools::leader_election::Args),
    /// Describe the controller quorum (kafka-metadata-quorum.sh).
    MetadataQuorum(tools::metadata_quorum::Args),
    /// Move partitions between brokers: generate, execute, verify, cancel (kafka-reassign-partitions.sh).
    ReassignPartitions(tools::reassign_partitions::Args),
    /// List, describe, reset and delete share groups (kafka-share-groups.sh).
    ShareGroups(tools::share_groups::Args),
    /// Measure produce throughput and latency (kafka-producer-perf-test.sh).
    ProducerPerfTest(tools::perf::ProducerArgs),
    /// Measure consume throughput (kafka-consumer-perf-test.sh).
    ConsumerPerfTest(tools::perf::ConsumerArgs),
}

fn main() {
    // One line, the causes joined by ": ", and no backtrace, whatever RUST_BACKTRACE says:
    // these errors are for the person at the terminal.
    if let Err(e) = run() {
        eprintln!("Error: {}", error_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by ": ", each cause left out when the text before it already
/// says it: many errors print their source in their own message (`i/o error on F: Too many open
/// files (os error 24)`), and the chain would repeat it.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Output piped into `head`, or into a reader that went away: a tool ends quietly, as Unix
    // tools do, by SIGPIPE's default action. Rust's runtime ignores SIGPIPE, so every write to
    // the closed pipe fails instead and `print!` panics ("failed printing to stdout"). Not for
    // the processes that must not die of it: the broker (a client's socket closing under
    // sendfile(2) raises SIGPIPE too; its one line on stdout is written without panicking),
    // `strom cluster` (it stops its nodes first) and console-consumer (it commits what it
    // printed and leaves its group, as Kafka's does when stdout fails).
    let keeps_sigpipe_ignored = matches!(cli.command, Command::Server { help_config: false, .. } | Command::Cluster(_) | Command::ConsoleConsumer(_));
    if !keeps_sigpipe_ignored {
        // SAFETY: signal(2) with the default action, before this process starts any thread.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STROM_LOG")
                // openraft narrates every election and snapshot at info, warns of harmless races
                // on every cluster start, and repeats four lines every half second while a peer
                // is down: Strom's own lines say what changed in the cluster and which peer it
                // cannot reach (once, and once more when it answers: `strom_controller::network`),
                // so only openraft's errors pass, and none from its replication and elections
                // (the same unreachable peer, again). Its fatal errors stop the node through
                // `Controller::fatal`, which says why.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error,openraft::replication=off,openraft::core::raft_core=off")),
        )
        .init();
    match cli.command {
        Command::Cluster(a) => dev_cluster::run(a),
        Command::Topics(a) => tools::topics::run(a),
        Command::ConsoleProducer(a) => tools::console_producer::run(a),
        Command::ConsoleConsumer(a) => tools::console_consumer::run(a),
        Command::GetOffsets(a) => tools::get_offsets::run(a),
        Command::ConsumerGroups(a) => tools::consumer_groups::run(a),
        Command::Configs(a) => tools::configs::run(a),
        Command::Transactions(a) => tools::transactions::run(a),
        Command::ShareGroups(a) => tools::share_groups::run(a),
        Command::Acls(a) => tools::acls::run(a),
        Command::LogDirs(a) => tools::log_dirs::run(a),
        Command::LeaderElection(a) => tools::leader_election::run(a),
        Command::MetadataQuorum(a) => tools::metadata_quorum::run(a),
        Command::ReassignPartitions(a) => tools::reassign_partitions::run(a),
        Command::ProducerPerfTest(a) => tools::perf::run_producer(a),
        Command::ConsumerPerfTest(a) => tools::perf::run_consumer(a),
        Command::Server { help_config: true, .. } => {
            print!("{}", strom_config::help_text());
            Ok(())
        }
        Command::Server { config, overrides, add_scram, .. } => {
            let mut cfg = BrokerConfig::load(config.as_deref(), &overrides).context("invalid configuration")?;
            cfg.bootstrap_scram = add_scram.iter().map(|s| add_scram::parse(s)).collect::<anyhow::Result<_>>()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
            runtime.block_on(strom_broker::server::run(cfg, |broker, ready| {
                // Write errors ignored: a broker whose stdout reader went away keeps serving
                // (its logs go to stderr).
                let mut out = std::io::stdout().lock();
                // Space-separated `key=value`s: scripts take the word after `bootstrap.servers=`
                // and after `http=`.
                let http: String = ready.http.iter().map(|u| format!(" http={u}")).collect();
                let _ = writeln!(
                    out,
                    "Strom {} broker {} is ready: bootstrap.servers={}{http} (data in {}; Ctrl-C stops it cleanly)",
                    env!("CARGO_PKG_VERSION"),
                    broker.config.node_id,
                    ready.bootstrap,
                    broker.config.log_dir.display()
                );
                let _ = out.flush();
            }))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says its source in its own message, as many do.
    #[derive(Debug)]
    struct Bind {
        source: std::io::Error,
    }

    impl std::fmt::Display for Bind {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot listen on 127.0.0.1:1: {}", self.source)
        }
    }

    impl std::error::Error for Bind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn an_os_error_is_printed_once() {
        let e = anyhow::Error::new(Bind { source: std::io::Error::from_raw_os_error(98) }).context("starting");
        let line = error_line(&e);
        assert_eq!(line.matches("os error 98").count(), 1, "{line}");
        assert!(line.starts_with("starting: cannot listen on 127.0.0.1:1: "), "{line}");
        let plain = anyhow::anyhow!("outer").context("more");
        assert_eq!(error_line(&plain), "more: outer");
    }
}
