//! `strom get-offsets`: Kafka's `kafka-get-offsets.sh`: one `topic:partition:offset` line per
//! partition, for the latest offset (`--time -1`, the default), the earliest (`-2`), or the
//! first offset at or after a timestamp in ms. (`-3`, the offset of the largest timestamp, needs
//! librdkafka's ListOffsets admin call, which the `rdkafka` crate does not wrap yet.)

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{Connection, KafkaContext, TIMEOUT};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    /// The topic (default: every topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Comma-separated partition ids (default: all).
    #[arg(long)]
    pub partitions: Option<String>,
    /// -1 or latest, -2 or earliest, or a timestamp in ms.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub time: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let time: i64 = match a.time.as_str() {
        "latest" => -1,
        "earliest" => -2,
        t => t.parse().with_context(|| format!("--time must be -1, -2, latest, earliest or a timestamp, not {t}"))?,
    };
    if time < -2 {
        bail!("--time {time} is not supported (use -1, -2 or a timestamp in ms)");
    }
    let wanted: Option<Vec<i32>> = a
        .partitions
        .as_deref()
        .map(|s| s.split(',').map(|p| p.trim().parse::<i32>().with_context(|| format!("bad partition id {p}"))).collect())
        .transpose()?;
    // Kafka's tool lists offsets read_uncommitted (the admin client's default): the latest offset
    // is the high watermark. librdkafka's consumers default to read_committed, whose latest offset
    // is the last stable offset, which an open transaction holds back.
    let settings = [("group.id".into(), "strom-get-offsets".into()), ("isolation.level".into(), "read_uncommitted".into())];
    let consumer: BaseConsumer = a.connection.client_config(&settings)?.create()?;
    let md = super::metadata(consumer.client(), &a.connection.bootstrap_server)?;
    let mut lines = Vec::new();
    let mut topics: Vec<_> = md.topics().iter().filter(|t| a.topic.as_deref().is_none_or(|want| want == t.name())).collect();
    if let (Some(want), true) = (&a.topic, topics.is_empty()) {
        bail!("topic {want} does not exist");
    }
    topics.sort_by(|x, y| x.name().cmp(y.name()));
    for t in topics {
        if t.error().is_some() {
            if a.topic.is_some() {
                bail!("topic {} does not exist", t.name());
            }
            continue;
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).filter(|id| wanted.as_ref().is_none_or(|w| w.contains(id))).collect();
        ids.sort_unstable();
        if time == -1 || time == -2 {
            for id in ids {
                let (low, high) = consumer.fetch_watermarks(t.name(), id, TIMEOUT).kafka_context(|| format!("{}:{id}", t.name()))?;
                lines.push(format!("{}:{id}:{}", t.name(), if time == -1 { high } else { low }));
            }
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for id in &ids {
            tpl.add_partition_offset(t.name(), *id, Offset::Offset(time)).context("bad partition")?;
        }
        let found = consumer.offsets_for_times(tpl, TIMEOUT).kafka_context(|| "ListOffsets by time failed")?;
        for e in found.elements() {
            // Kafka prints nothing for a partition without a record at or after the time.
            if let Offset::Offset(o) = e.offset() {
                lines.push(format!("{}:{}:{o}", e.topic(), e.partition()));
            }
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
