"""Message format v1 against v2 through one broker, in one run: kafka-python pinned to a 0.10.1
broker (Produce v2 / Fetch v3, message format v1: the broker up-converts each produce and
down-converts each fetch) and the same client pinned to 2.0 (Produce v6 / Fetch v8, format v2:
stored as sent, fetched by sendfile). kafka-python is pure Python and is the bottleneck, so the
figure that compares the broker's paths is its CPU time per record (/proc/<pid>/stat, user +
system, over each phase), printed beside the client's rate and the load average.

Usage: python scripts/bench_formats.py [--records N] [--size B] [--rounds R]
(STROM_BIN names the binary; default target/release/strom)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from benchlib import cpu_seconds  # noqa: E402

STROM_BIN = os.environ.get("STROM_BIN", "target/release/strom")
FORMATS = {"v1": (0, 10, 1), "v2": (2, 0)}


def start_broker(data_dir):
    p = subprocess.Popen([STROM_BIN, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=http://127.0.0.1:0", "--override", f"log.dirs={data_dir}"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"bootstrap\.servers=(\S+)", line)
    if not m:
        p.kill()
        raise SystemExit("strom did not start: " + line)
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, m.group(1)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def produce(bs, topic, api, codec, n, size):
    value = os.urandom(size // 2).hex().encode()[:size]
    p = KafkaProducer(bootstrap_servers=bs, api_version=api, compression_type=codec, linger_ms=5,
                      batch_size=256 * 1024, max_in_flight_requests_per_connection=5, acks=1)
    for i in range(n):
        p.send(topic, value=value, partition=0)
    p.flush(120)
    p.close()


def fetch(bs, topic, api, n):
    c = KafkaConsumer(bootstrap_servers=bs, api_version=api, auto_offset_reset="earliest",
                      fetch_max_bytes=50 * 1024 * 1024, max_partition_fetch_bytes=10 * 1024 * 1024,
                      consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = 0
    for _m in c:
        got += 1
        if got == n:
            break
    c.close()
    if got != n:
        raise SystemExit(f"fetched {got} of {n} from {topic}")


def timed(pid, f):
    cpu0, t0 = cpu_seconds(pid), time.time()
    f()
    return time.time() - t0, cpu_seconds(pid) - cpu0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as d:
        broker, bs = start_broker(d)
        try:
            print(f"load average at start: {load()}")
            print(f"{n:,} records of {args.size} B per run, kafka-python, one partition, acks=1")
            print("| round | format | codec | produce records/s | broker CPU, produce | fetch records/s | broker CPU, fetch | load |")
            print("|---|---|---|---|---|---|---|---|")
            for rnd in range(args.rounds):
                # Alternate the order, so that neither format always runs first.
                order = ["v1", "v2"] if rnd % 2 == 0 else ["v2", "v1"]
                for codec in [None, "gzip"]:
                    for fmt in order:
                        api = FORMATS[fmt]
                        topic = f"bench-{fmt}-{codec}-{rnd}"
                        pw, pc = timed(broker.pid, lambda: produce(bs, topic, api, codec, n, args.size))
                        fw, fc = timed(broker.pid, lambda: fetch(bs, topic, api, n))
                        print(f"| {rnd + 1} | {fmt} | {codec or 'none'} | {n / pw:,.0f} | {pc:.2f} s ({pc / n * 1e6:.2f} us/record) "
                              f"| {n / fw:,.0f} | {fc:.2f} s ({fc / n * 1e6:.2f} us/record) | {load()} |", flush=True)
            print(f"load average at end: {load()}")
        finally:
            broker.terminate()
            broker.wait(30)


if __name__ == "__main__":
    sys.exit(main())
