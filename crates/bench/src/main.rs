//! `strom-bench`: produce N records through librdkafka, then fetch them back, and report
//! msgs/s, MB/s and produce latency percentiles. Measures the broker with a compiled client,
//! because a Python client saturates itself near 50 MB/s on these machines.
//!
//! Not part of the test build (librdkafka takes minutes to compile): `cargo run --release -p strom-bench -- --help`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Parser)]
struct Cli {
    /// Instead of a broker run, measure loopback TCP bandwidth (one stream, 4 GiB): the
    /// machine's own limit, printed beside the broker's figures.
    #[arg(long)]
    loopback: bool,
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Args)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    #[arg(long, default_value = "bench")]
    topic: String,
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// 1 or all
    #[arg(long, default_value = "1")]
    acks: String,
    #[arg(long, default_value = "none")]
    compression: String,
    /// Records per second to send at (0: as fast as possible). A paced run measures the latency
    /// the broker adds; an unpaced one mostly measures the client's own queue.
    #[arg(long, default_value_t = 0)]
    throughput: u64,
    /// Skip producing: fetch `records` already in the topic.
    #[arg(long)]
    fetch_only: bool,
    /// Extra producer properties, key=value.
    #[arg(long = "producer-prop")]
    producer_props: Vec<String>,
}

struct LatencyContext;
impl ClientContext for LatencyContext {}
impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<(Instant, std::sync::mpsc::Sender<Result<Duration, String>>)>;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (sent, tx) = *opaque;
        let _ = tx.send(match result {
            Ok(_) => Ok(sent.elapsed()),
            Err((e, _)) => Err(e.to_string()),
        });
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.loopback {
        return loopback();
    }
    let a = cli.args;
    if !a.fetch_only {
        produce(&a)?;
    }
    fetch(&a)
}

fn produce(a: &Args) -> anyhow::Result<()> {
    let payload = vec![b'x'; a.record_size];
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &a.bootstrap_server)
        .set("acks", &a.acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("compression.type", &a.compression);
    for p in &a.producer_props {
        let (k, v) = p.split_once('=').context("--producer-prop takes key=value")?;
        cfg.set(k, v);
    }
    let producer: ThreadedProducer<LatencyContext> = cfg.create_with_context(LatencyContext)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    for i in 0..a.records {
        if a.throughput > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / a.throughput as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let mut opaque = Box::new((Instant::now(), tx.clone()));
        loop {
            match producer.send(BaseRecord::with_opaque_to(&a.topic, opaque).payload(&payload[..]).key("")) {
                Ok(()) => break,
                Err((_, rec)) => {
                    opaque = rec.delivery_opaque;
                    opaque.0 = Instant::now();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    drop(tx);
    producer.flush(Duration::from_secs(120))?;
    let mut lat: Vec<Duration> = Vec::with_capacity(a.records);
    for r in rx.iter() {
        match r {
            Ok(d) => lat.push(d),
            Err(e) => bail!("delivery failed: {e}"),
        }
    }
    let produce_secs = start.elapsed().as_secs_f64();
    if lat.len() != a.records {
        bail!("only {} of {} records acknowledged", lat.len(), a.records);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    let mb = (a.records * a.record_size) as f64 / 1e6;
    println!(
        "produce: {} records x {} B, acks={}{}: {:.0} msgs/s, {:.1} MB/s, latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        a.records,
        a.record_size,
        a.acks,
        if a.throughput > 0 { format!(", paced at {} records/s", a.throughput) } else { String::new() },
        a.records as f64 / produce_secs,
        mb / produce_secs,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
    Ok(())
}

fn fetch(a: &Args) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap_server)
        .set("group.id", "strom-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        // librdkafka stops fetching for fetch.queue.backoff.ms (1 s) whenever its local queue
        // holds queued.min.messages (100k); one response of small records can carry that many,
        // and the bench would then measure the client's back-off, not the broker.
        .set("queued.min.messages", "10000000")
        .set("fetch.queue.backoff.ms", "5")
        .create()?;
    let md = consumer.fetch_metadata(Some(&a.topic), Duration::from_secs(10))?;
    let parts = md.topics().first().map(|t| t.partitions().len()).unwrap_or(1);
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(&a.topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    while n < a.records {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map(|p| p.len()).unwrap_or(0);
            }
            Some(Err(e)) => bail!("fetch failed: {e}"),
            None => bail!("fetch stalled after {n} records"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("fetch:   {n} records: {:.0} msgs/s, {:.1} MB/s", n as f64 / secs, bytes as f64 / 1e6 / secs);
    Ok(())
}

fn loopback() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    const TOTAL: usize = 4 << 30;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k,
            }
        }
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    for _ in 0..TOTAL / buf.len() {
        s.write_all(&buf)?;
    }
    drop(s);
    let got = reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    println!("loopback TCP, one stream: {:.1} Gbit/s ({:.0} MB/s)", got as f64 * 8.0 / 1e9 / secs, got as f64 / 1e6 / secs);
    Ok(())
}
