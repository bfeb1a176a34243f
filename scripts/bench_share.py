#!/usr/bin/env python3
"""Share-group consumption of one partition (KIP-932) against one classic consumer: a topic of one
partition holds N records; K share consumers (confluent-kafka's ShareConsumer, implicit
acknowledgement, each in its own process) drain it as one share group, for each K given; then one
classic consumer reads it. Reports the wall time until every record was delivered (and, for share
groups, accepted) and the broker's CPU time per record (from /proc/<pid>/stat over the run).

Usage: scripts/bench_share.py [--strom target/release/strom] [--records 200000] [--consumers 1,3,8]
Needs confluent-kafka 2.16 (the test venv has it)."""
import argparse
import multiprocessing as mp
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic
from benchlib import cpu_seconds, free_port  # noqa: E402

TOPIC = "share-bench"


def share_worker(bootstrap, group, total, delivered, stop):
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    c.subscribe([TOPIC])
    while not stop.is_set():
        n = len(c.poll(0.2))
        if n:
            with delivered.get_lock():
                delivered.value += n
                if delivered.value >= total:
                    stop.set()
    c.commit_sync(30)  # the last poll's records are accepted too
    c.close()


def run_share(bootstrap, pid, k, total):
    delivered, stop = mp.Value("q", 0), mp.Event()
    procs = [mp.Process(target=share_worker, args=(bootstrap, f"bench-{k}", total, delivered, stop)) for _ in range(k)]
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    return time.perf_counter() - t0, cpu_seconds(pid) - cpu0, delivered.value


def run_classic(bootstrap, pid, total):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-classic", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([TOPIC])
    cpu0, t0, n = cpu_seconds(pid), time.perf_counter(), 0
    while n < total:
        n += sum(1 for m in c.consume(500, 1.0) if m.error() is None)
    c.commit(asynchronous=False)
    c.close()
    return time.perf_counter() - t0, cpu_seconds(pid) - cpu0, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--consumers", default="1,3,8")
    a = ap.parse_args()
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([a.strom, "server", "--override", f"log.dirs={d}", "--override", f"listeners=PLAINTEXT://{bootstrap}",
                                 "--override", "share.auto.offset.reset=earliest", "--override", "http.listeners="],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert "is ready" in proc.stdout.readline()
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(15)
            p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
            for i in range(a.records):
                p.produce(TOPIC, value=b"x" * 100)
                if i % 10_000 == 0:
                    p.poll(0)
            assert p.flush(60) == 0
            for k in [int(x) for x in a.consumers.split(",")]:
                secs, cpu, n = run_share(bootstrap, proc.pid, k, a.records)
                print(f"share group, {k} consumer(s): {n} records in {secs:.2f} s ({n / secs:,.0f}/s), broker CPU {cpu / n * 1e6:.2f} us per record")
            secs, cpu, n = run_classic(bootstrap, proc.pid, a.records)
            print(f"classic consumer: {n} records in {secs:.2f} s ({n / secs:,.0f}/s), broker CPU {cpu / n * 1e6:.2f} us per record")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
