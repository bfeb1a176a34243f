"""Replication cost and leader failover on a local three-node cluster (docs/benchmarks.md).

Starts a 3-node cluster (tests/e2e/cluster.py, the same one the e2e tests use) and measures with
confluent-kafka, acks=all, records of --record-size bytes (1 KiB):

1. Throughput: --records records as fast as the producer goes, with `strom producer-perf-test`
   (librdkafka, tuned as scripts/bench.sh tunes it), to a topic with replication factor 3
   (min.insync.replicas=2) and to one with replication factor 1. Latency at full speed is mostly
   time queued in the client, as in Kafka's producer-perf-test.
2. Latency at a fixed rate, the same two topics: `strom producer-perf-test` at --paced-rate
   records/s (whole milliseconds, Kafka's format), and this script's own confluent-kafka
   producer at --latency-rate records/s for --latency-seconds (delivery callback time minus send
   time, in tenths of a millisecond): mostly the broker's and the replication's time.
3. Failover, --trials times on one cluster: with checker.Workload producing to partition 0 of
   the RF 3 topic, SIGKILL that partition's leader and time until the first record sent after
   the kill is acknowledged (necessarily by the new leader); restart the node and wait for the
   full ISR before the next trial. Ends with the checker's verdict on the whole run.

Prints Markdown tables. Failover time is dominated by broker.session.timeout.ms (the controller
fences the dead leader when its heartbeats stop), printed with the results.

Usage: python scripts/bench_replication.py [--trials 20] [--records 1000000] [--record-size 1024]
       (STROM_BIN = the strom binary; default ~/.cache/strom/target/release/strom)
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("STROM_BIN", str(Path.home() / ".cache/strom/target/release/strom"))  # read by conftest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from checker import Workload  # noqa: E402
from cluster import Cluster  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def pct(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def produce(bootstrap, topic, count, size, rate=None):
    """Sends `count` records (at `rate`/s, or unthrottled) with acks=all; returns
    (seconds from first send to last acknowledgement, sorted latencies in s, failures)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 1 if rate else 5, "message.timeout.ms": 60000})
    latencies, failures = [], [0]
    payload = os.urandom(size)
    producer.produce(topic, value=payload)  # connections, metadata and producer id before timing
    producer.flush(30)

    def done(err, _msg, sent):
        if err is None:
            latencies.append(time.perf_counter() - sent)
        else:
            failures[0] += 1

    start = time.perf_counter()
    for i in range(count):
        if rate:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                producer.poll(wait)
        while True:
            try:
                producer.produce(topic, value=payload, on_delivery=lambda e, m, t=time.perf_counter(): done(e, m, t))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    took = time.perf_counter() - start
    latencies.sort()
    return took, latencies, failures[0]


PERF_TUNING = ["linger.ms=5", "batch.size=1000000", "queue.buffering.max.messages=2000000",
               "queue.buffering.max.kbytes=2097151", "compression.type=none"]
PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), [\d.]+ ms avg latency, "
                       r"([\d.]+) ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def perf(bootstrap, topic, count, size, rate, linger_ms):
    """`strom producer-perf-test` with acks=all; returns its final line's figures."""
    props = ["acks=all", *PERF_TUNING, f"linger.ms={linger_ms}"]
    out = subprocess.run([os.environ["STROM_BIN"], "producer-perf-test", "--bootstrap-server", bootstrap, "--topic", topic,
                          "--num-records", str(count), "--record-size", str(size), "--throughput", str(rate),
                          "--producer-props", *props], capture_output=True, text=True, timeout=1800, check=True).stdout
    m = PERF_LINE.search(out.strip().splitlines()[-1])
    if not m:
        raise RuntimeError(f"unexpected producer-perf-test output:\n{out}")
    sent, per_s, mib_s, max_ms, p50, p99, p999 = m.groups()
    return {"records": int(sent), "per_s": float(per_s), "mb_s": float(mib_s) * 1.048576, "p50": p50, "p99": p99,
            "p999": p999, "max": max_ms}


def row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--paced-rate", type=int, default=20_000)
    ap.add_argument("--paced-records", type=int, default=400_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--latency-rate", type=int, default=2000)
    ap.add_argument("--latency-seconds", type=float, default=10)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(Path(tmp), overrides=["min.insync.replicas=2"]).start()
        try:
            bs = c.bootstrap()
            c.wait_for("3 brokers", lambda: sorted(AdminClient({"bootstrap.servers": bs}).list_topics(timeout=5).brokers) == [1, 2, 3])
            admin = AdminClient({"bootstrap.servers": bs})
            topics = {3: "bench-rf3", 1: "bench-rf1"}
            failover_topic = "bench-failover"
            futures = admin.create_topics([
                NewTopic(failover_topic, num_partitions=args.partitions, replication_factor=3, config={"min.insync.replicas": "2"}),
                NewTopic(topics[3], num_partitions=args.partitions, replication_factor=3, config={"min.insync.replicas": "2"}),
                NewTopic(topics[1], num_partitions=args.partitions, replication_factor=1, config={"min.insync.replicas": "1"}),
            ], operation_timeout=10)
            for f in futures.values():
                f.result(timeout=30)
            for rf, t in [*topics.items(), (3, failover_topic)]:
                c.wait_for_full_isr(t, rf)

            print(f"## Produce, acks=all, {args.record_size}-byte records, {args.partitions} partitions, 3 nodes on one machine\n")
            print(row(["RF", "client", "run", "records", "records/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"]))
            print(row(["---"] * 11))
            # Paced runs first, and the page cache written back before each run: an unthrottled
            # run leaves gigabytes of dirty pages (every record is on three disks), and their
            # writeback stalls later appends for hundreds of milliseconds.
            for rf in (3, 1):
                os.sync()
                count = int(args.latency_rate * args.latency_seconds)
                took, lat, failed = produce(bs, topics[rf], count, args.record_size, args.latency_rate)
                ms = lambda q: f"{pct(lat, q) * 1000:.1f}"
                print(row([rf, "confluent-kafka", f"{args.latency_rate:,}/s", len(lat), f"{len(lat) / took:,.0f}",
                           f"{len(lat) * args.record_size / took / 1e6:.1f}", ms(0.50), ms(0.99), ms(0.999),
                           f"{(lat[-1] if lat else float('nan')) * 1000:.1f}", failed]), flush=True)
            for name, count, rate, linger in [(f"{args.paced_rate:,}/s", args.paced_records, args.paced_rate, 1),
                                              ("unthrottled", args.records, -1, 5)]:
                for rf in (3, 1):
                    os.sync()
                    r = perf(bs, topics[rf], count, args.record_size, rate, linger)
                    print(row([rf, "producer-perf-test", name, r["records"], f"{r['per_s']:,.0f}", f"{r['mb_s']:.1f}",
                               r["p50"], r["p99"], r["p999"], r["max"], count - r["records"]]), flush=True)

            print(f"\n## Leader failover (SIGKILL of the leader of partition 0 to the first acknowledged produce on its successor)\n")
            w = Workload(bs, failover_topic, partitions=args.partitions, rate=300, group_id="bench-failover").start()
            w.wait_until_reading()
            times = []
            elections = []
            for trial in range(args.trials):
                old = c.leader(failover_topic, 0)
                admin = AdminClient({"bootstrap.servers": c.bootstrap_live()})  # must outlive the future
                controller = admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id
                c.nodes[old].kill()
                killed = w.mark()
                took = elected = None
                while took is None and time.monotonic() - killed < 60:
                    time.sleep(0.05)
                    if elected is None and c.leader(failover_topic, 0) not in (old, -1):
                        elected = time.monotonic() - killed
                    took = w.first_ack_after(killed, partition=0)
                new = c.leader(failover_topic, 0)
                was_controller = "the active controller, " if old == controller else ""
                print(f"trial {trial + 1}: killed leader {old} ({was_controller}session timeout 3000 ms), node {new} "
                      f"in Metadata after {'-' if elected is None else f'{elected * 1000:.0f} ms'}, acknowledged after "
                      f"{'-' if took is None else f'{took * 1000:.0f} ms'}", file=sys.stderr, flush=True)
                if took is not None:
                    times.append(took)
                    elections.append(elected if elected is not None else took)
                c.nodes[old].start()
                c.wait_for_full_isr(failover_topic, 3, timeout=60)
            w.stop()
            r = w.report()
            print(row(["measured to", "trials", "succeeded", "min ms", "median ms", "p90 ms", "max ms", "broker.session.timeout.ms"]))
            print(row(["---"] * 8))
            for what, values in [("new leader in Metadata", sorted(elections)), ("first acknowledged produce", sorted(times))]:
                print(row([what, args.trials, len(values), f"{values[0] * 1000:.0f}" if values else "-",
                           f"{statistics.median(values) * 1000:.0f}" if values else "-", f"{pct(values, 0.9) * 1000:.0f}",
                           f"{values[-1] * 1000:.0f}" if values else "-", 3000]))
            print(f"\nchecker over the failover run: {r['summary']}")
            if r["examples"]:
                print(r["details"])
        finally:
            c.kill_all()


if __name__ == "__main__":
    main()
