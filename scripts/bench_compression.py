#!/usr/bin/env python3
"""A topic's `compression.type` on the produce path: the same uncompressed batches (1 KiB
JSON-like records, ~1 MB per batch, four requests in flight, `rawkafka.py`) produced to topics
whose `compression.type` is `producer` (stored as sent: the broker never looks inside) and each
codec (the leader decompresses nothing here, and compresses every batch before the write). Per
run: throughput of record bytes, the broker's CPU per GB of them (/proc/<pid>/stat), and the
bytes the partition's log files take against the records' size. Rounds alternate the order of
the topics.

Usage: python scripts/bench_compression.py [--strom target/release/strom] [--records 500000] [--rounds 3]
Needs kafka-python and confluent-kafka (the test venv has both)."""
import argparse
import glob
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import cpu_seconds, free_port  # noqa: E402
import rawkafka  # noqa: E402

TARGETS = ["producer", "lz4", "snappy", "zstd", "gzip"]


def record_batch(records, size, seed=7):
    """One v2 batch of `records` JSON-like values of about `size` bytes: field names repeat,
    numbers and ids vary, so codecs find what they find in typical event streams (2-5x)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    rnd = random.Random(seed)
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i in range(records):
        fields = []
        while sum(map(len, fields)) < size - 40:
            fields.append(f'"{rnd.choice(["user", "session", "item", "price", "country", "device"])}_{rnd.randrange(40)}":'
                          f'"{rnd.getrandbits(48):x}-{rnd.randrange(10 ** 6)}"')
        value = ("{" + ",".join(fields) + "}").encode()[:size]
        b.append(i, timestamp=None, key=None, value=value, headers=[])
    return bytes(b.build())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    per_batch = max(1, 1_000_000 // (a.record_size + 16))
    batch = record_batch(per_batch, a.record_size)
    requests = a.records // per_batch
    gb = requests * per_batch * a.record_size / 1e9
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = subprocess.Popen([a.strom, "server", "--override", f"log.dirs={tmp}/data",
                                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", "http.listeners=http://127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert "bootstrap.servers=" in broker.stdout.readline()
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
            results = {t: [] for t in TARGETS}
            for r in range(a.rounds):
                for target in TARGETS[r % len(TARGETS):] + TARGETS[:r % len(TARGETS)]:
                    topic = f"bench-{target}-{r}"
                    admin.create_topics([NewTopic(topic, 1, 1, config={"compression.type": target})])[topic].result(30)
                    sock = rawkafka.connect(("127.0.0.1", port))
                    cpu0, t0 = cpu_seconds(broker.pid), time.perf_counter()
                    rawkafka.produce(sock, topic, batch, requests)
                    secs, cpu = time.perf_counter() - t0, cpu_seconds(broker.pid) - cpu0
                    sock.close()
                    stored = sum(os.path.getsize(f) for f in glob.glob(f"{tmp}/data/{topic}-0/*.log"))
                    results[target].append((gb * 1e3 / secs, cpu / gb, stored / (gb * 1e9)))
                    admin.delete_topics([topic])[topic].result(30)
            print(f"{requests * per_batch} records of {a.record_size} B per run ({len(batch)} B batches), {a.rounds} rounds, load {os.getloadavg()[0]:.2f}")
            print("| compression.type | MB/s (median) | broker CPU s/GB | log bytes / record bytes |")
            print("|---|---|---|---|")
            for target, runs in results.items():
                med = [statistics.median(run[i] for run in runs) for i in range(3)]
                print(f"| {target} | {med[0]:,.0f} | {med[1]:.2f} | {med[2]:.2f} |")
        finally:
            broker.terminate()
            broker.wait(30)


if __name__ == "__main__":
    main()
