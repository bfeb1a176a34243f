"""Consumer-group benchmarks against a real `strom server` (confluent-kafka / librdkafka):

1. Takeover time: two members of one group share a 2-partition topic that a producer keeps
   writing to (one record per partition every 5 ms). One member leaves, by a clean close() or by
   SIGKILL of its process; the figure is the time from the departure to the first record of the
   departed member's partition reaching the survivor. SIGKILL is bounded below by
   session.timeout.ms (6000 here, the broker's minimum).
2. Commit throughput: 10 consumer processes, each synchronously committing its own partition's
   offset in a loop for a fixed time; commits per second summed over all of them, with the
   broker's CPU time over the same window.

Usage: python scripts/bench_groups.py [--trials N] [--seconds S]   (STROM_BIN names the binary)
"""
import argparse
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from benchlib import cpu_seconds  # noqa: E402

STROM_BIN = os.environ.get("STROM_BIN", "target/release/strom")
SESSION_MS = 6000


def start_broker(data_dir):
    p = subprocess.Popen([STROM_BIN, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=http://127.0.0.1:0", "--override", f"log.dirs={data_dir}", "--override", "group.initial.rebalance.delay.ms=0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"bootstrap\.servers=(\S+)", line)
    if not m:
        p.kill()
        raise SystemExit("strom did not start: " + line)
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, m.group(1)


def member(bootstrap, topic, group, events, stop):
    """A group member in its own process: reports (time, partition) of the first record it gets
    from each partition after each new assignment."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": SESSION_MS,
                  "heartbeat.interval.ms": 500, "auto.offset.reset": "latest", "enable.auto.commit": True})
    seen = set()

    def on_assign(_c, parts):
        seen.clear()
        events.put(("assigned", os.getpid(), time.time(), sorted(p.partition for p in parts)))

    c.subscribe([topic], on_assign=on_assign)
    while not stop.is_set():
        m = c.poll(0.05)
        if m is not None and not m.error() and m.partition() not in seen:
            seen.add(m.partition())
            events.put(("record", os.getpid(), time.time(), m.partition()))
    c.close()
    events.put(("closed", os.getpid(), time.time(), None))


def producer_loop(bootstrap, topic, stop):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    while not stop.is_set():
        for part in (0, 1):
            p.produce(topic, b"x", partition=part)
        p.poll(0)
        time.sleep(0.005)
    p.flush(5)


def takeover_trial(bootstrap, topic, group, kill):
    ctx = mp.get_context("fork")
    events = ctx.Queue()
    stops = [ctx.Event(), ctx.Event()]
    pstop = ctx.Event()
    prod = ctx.Process(target=producer_loop, args=(bootstrap, topic, pstop))
    prod.start()
    procs = [ctx.Process(target=member, args=(bootstrap, topic, group, events, s)) for s in stops]
    for p in procs:
        p.start()
    try:
        # Wait until both members own one partition each and have received from it.
        owner = {}
        got = set()
        deadline = time.time() + 60
        while time.time() < deadline and not (len(owner) == 2 and got >= set(owner)):
            kind, pid, _t, data = events.get(timeout=60)
            if kind == "assigned":
                owner.pop(pid, None)
                if len(data) == 1:
                    owner[pid] = data[0]
                got.discard(pid)
            elif kind == "record" and owner.get(pid) == data:
                got.add(pid)
        if len(owner) != 2:
            raise RuntimeError("members never settled on one partition each")
        victim = procs[0]
        survivor = procs[1].pid
        moved = owner[victim.pid]
        t0 = time.time()
        if kill:
            os.kill(victim.pid, signal.SIGKILL)
        else:
            stops[0].set()
        deadline = time.time() + 60
        while time.time() < deadline:
            kind, pid, t, data = events.get(timeout=60)
            if os.environ.get("BENCH_DEBUG"):
                print(kind, pid, round(t - t0, 3), data, file=sys.stderr)
            if kind == "record" and pid == survivor and data == moved:
                return t - t0
        raise RuntimeError("survivor never received the moved partition")
    finally:
        for s in stops:
            s.set()
        pstop.set()
        for p in procs + [prod]:
            p.join(10)
            if p.is_alive():
                p.kill()


def committer(bootstrap, topic, group, partition, seconds, out):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        c.commit(offsets=[TopicPartition(topic, partition, n + 1)], asynchronous=False)
        n += 1
    c.close()
    out.put(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        broker, bootstrap = start_broker(d)
        try:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            fs = admin.create_topics([NewTopic("bench-groups", 2, 1), NewTopic("bench-commits", 10, 1)])
            for f in fs.values():
                f.result()
            for kill in (False, True):
                times = [takeover_trial(bootstrap, "bench-groups", f"takeover-{kill}-{i}", kill) for i in range(args.trials)]
                label = "SIGKILL" if kill else "clean close"
                times.sort()
                print(f"takeover after {label}: median {times[len(times) // 2] * 1000:.0f} ms, "
                      f"min {times[0] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms over {len(times)} trials")
            ctx = mp.get_context("fork")
            out = ctx.Queue()
            cpu0 = cpu_seconds(broker.pid)
            t0 = time.time()
            procs = [ctx.Process(target=committer, args=(bootstrap, "bench-commits", f"commit-{i}", i, args.seconds, out))
                     for i in range(10)]
            for p in procs:
                p.start()
            total = sum(out.get(timeout=args.seconds + 60) for _ in procs)
            for p in procs:
                p.join(10)
            wall = time.time() - t0
            cpu = cpu_seconds(broker.pid) - cpu0
            print(f"commits: {total / args.seconds:.0f}/s from 10 synchronous committers "
                  f"({total} in {args.seconds:.0f} s); broker CPU {cpu:.1f} s over {wall:.1f} s wall "
                  f"({cpu / wall * 100:.0f}% of one core)")
        finally:
            broker.kill()
            broker.wait()


if __name__ == "__main__":
    sys.exit(main())
