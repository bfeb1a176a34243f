#!/usr/bin/env python3
"""Produce N records of S bytes through confluent-kafka (librdkafka) as fast as a Python loop
can hand them over, batching as `strom producer-perf-test` does (linger.ms=5, batch.size=1000000),
polling for delivery reports every 1000 records; report records/s and MB/s. The yardstick for
"how fast is a batching Python client" beside `strom producer-perf-test` (docs/benchmarks.md).

Usage: scripts/perf_confluent.py --bootstrap-server HOST:PORT [--topic T] [--records N] [--record-size S] [--acks 1]

Delivery reports are requested for errors only (delivery.report.only.error), so the Python side
pays nothing per acknowledged record; the run fails if any record was not delivered.
"""
import argparse
import os
import sys
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="perf-confluent")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--acks", default="1")
    a = ap.parse_args()

    failed = []

    def on_error(err, msg):
        if err is not None:
            failed.append(err)

    p = Producer({
        "bootstrap.servers": a.bootstrap_server,
        "acks": a.acks,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        "delivery.report.only.error": True,
        "on_delivery": on_error,
    })
    # Metadata (and the topic) before the clock starts, as the other two tools do.
    p.list_topics(timeout=10)
    value = os.urandom(a.record_size)
    produce, poll, topic = p.produce, p.poll, a.topic
    start = time.perf_counter()
    for i in range(a.records):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:  # the local queue is full: let deliveries free room
                poll(0.001)
        if i % 1000 == 999:
            poll(0)
    left = p.flush(300)
    secs = time.perf_counter() - start
    if left or failed:
        sys.exit(f"{left} records undelivered, {len(failed)} failed (first: {failed[:1]})")
    total = a.records * a.record_size
    print(f"{a.records} records x {a.record_size} B, acks={a.acks}: {a.records / secs:,.0f} records/s, "
          f"{total / 1e6 / secs:.1f} MB/s ({total / 1048576 / secs:.1f} MiB/s) in {secs:.2f} s")


if __name__ == "__main__":
    main()
