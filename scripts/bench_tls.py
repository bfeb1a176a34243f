#!/usr/bin/env python3
"""Produce and fetch of 1 KiB records over PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) on the same
broker, alternating rounds, with the broker's and the client's CPU time per GB moved (the broker's from
/proc/<pid>/stat, the client's from this process: librdkafka's threads run in it). "of it user" is
the broker's user-space share: its own code (TLS, copies, CRC), steadier than the total, whose
kernel part (TCP, page cache) moves with writeback and reclaim. Clients are
confluent-kafka (librdkafka with OpenSSL); the Python loop that hands records to the producer is
the same for every listener. Client and broker share the machine's cores, so the client's own
encryption slows the broker's throughput too: compare the CPU columns as well as the MB/s.
Each round starts at a different listener and deletes its topics when read, so that no listener
always runs after (and pays the page-cache writeback of) another.

With `--client raw` the client is instead `rawkafka.py`: pre-encoded Produce requests of one
~1 MB batch (four in flight) and Fetch requests of eight batches (three in flight), through
Python's ssl module, which sends whole requests as full TLS records. It spends less CPU than
the broker on produce, so there the throughput is the broker's. On fetch its decryption (one
Python thread, OpenSSL underneath) is what limits it; `--client sink` is the raw client whose
fetches decrypt only the first answer and read past the rest by TLS record lengths (rawkafka.
SinkTls; over PLAINTEXT they are read unparsed), standing in for clients on other machines.

Usage: scripts/bench_tls.py [--strom target/release/strom] [--records 200000] [--rounds 2] [--client raw]
Needs openssl (test certificates) and confluent-kafka (the test venv has it)."""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from tlscerts import Certs  # noqa: E402
from benchlib import cpu_times, free_port  # noqa: E402
import rawkafka  # noqa: E402


def produce(conf, topic, n, size):
    p = Producer({**conf, "linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000,
                  "acks": "1", "delivery.report.only.error": True})
    value = b"x" * size
    for i in range(n):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(120) == 0


def consume(conf, topic, n):
    c = Consumer({**conf, "group.id": f"bench-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    while got < n:
        for m in c.consume(num_messages=10000, timeout=10):
            assert m.error() is None, m.error()
            got += 1
    c.close()


def raw_run(op, proto, addr, ca, topic, n, batch, per_batch, sink):
    """One produce or fetch phase with the raw client; `topic` exists with one partition. With
    `sink`, fetches read past the records undecrypted (rawkafka.SinkTls)."""
    import ssl
    tls = ssl.create_default_context(cafile=str(ca)) if proto != "PLAINTEXT" else None
    scram = rawkafka.ScramClient("SCRAM-SHA-512", "bench", "bench-secret") if proto == "SASL_SSL" else None
    if sink and op == "fetch":
        sock = rawkafka.SinkTls(addr, tls) if tls else rawkafka.SinkPlain(addr)
        if scram:
            scram.login(sock)
    else:
        sock = rawkafka.connect(addr, tls, scram)
    try:
        if op == "produce":
            rawkafka.produce(sock, topic, batch, n // per_batch)
        else:
            rawkafka.fetch(sock, topic, n // per_batch * per_batch, len(batch), per_batch, skip=sink)
    finally:
        sock.close()


def client_cpu():
    """CPU seconds of this process (the client: librdkafka's threads run in it)."""
    t = os.times()
    return t.user + t.system


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--client", choices=["librdkafka", "raw", "sink"], default="librdkafka")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        certs = Certs(Path(tmp) / "certs")
        plain_port, ssl_port, sasl_port = free_port(), free_port(), free_port()
        broker = subprocess.Popen([a.strom, "server", "--override", f"log.dirs={tmp}/data",
                                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_port}",
                                   "--override", "sasl.enabled.mechanisms=SCRAM-SHA-512",
                                   "--add-scram", "SCRAM-SHA-512=[name=bench,password=bench-secret,iterations=4096]",
                                   "--override", f"ssl.keystore.location={certs.keystore}", "--override", "http.listeners=http://127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert re.search(r"bootstrap\.servers=", broker.stdout.readline())
            confs = {"PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{plain_port}"},
                     "SSL": {"bootstrap.servers": f"127.0.0.1:{ssl_port}", "security.protocol": "SSL", "ssl.ca.location": certs.ca},
                     "SASL_SSL": {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_SSL", "ssl.ca.location": certs.ca,
                                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench", "sasl.password": "bench-secret"}}
            results = {(proto, op): [] for proto in confs for op in ("produce", "fetch")}
            gb = a.records * a.record_size / 1e9
            admin = AdminClient(confs["PLAINTEXT"])
            per_batch = max(1, 1_000_000 // (a.record_size + 16))  # within max.message.bytes (1 MB) with record overheads
            batch = rawkafka.record_batch(per_batch, a.record_size) if a.client != "librdkafka" else None
            order = list(confs)
            for r in range(a.rounds):
                for proto in order[r % len(order):] + order[:r % len(order)]:
                    conf = confs[proto]
                    topic = f"bench-{proto.lower()}-{r}"
                    if a.client in ("raw", "sink"):
                        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
                        port = int(conf["bootstrap.servers"].rsplit(":", 1)[1])
                        phases = [(op, lambda op=op: raw_run(op, proto, ("127.0.0.1", port), certs.ca, topic, a.records, batch, per_batch, a.client == "sink"))
                                  for op in ("produce", "fetch")]
                    else:
                        phases = [("produce", lambda: produce(conf, topic, a.records, a.record_size)),
                                  ("fetch", lambda: consume(conf, topic, a.records))]
                    for op, run in phases:
                        (user0, sys0), own0, t0 = cpu_times(broker.pid), client_cpu(), time.perf_counter()
                        run()
                        secs, (user1, sys1) = time.perf_counter() - t0, cpu_times(broker.pid)
                        user, cpu = user1 - user0, user1 - user0 + sys1 - sys0
                        own = client_cpu() - own0
                        results[(proto, op)].append((a.records * a.record_size / secs / 1e6, cpu / gb, user / gb, own / gb))
                    admin.delete_topics([topic])[topic].result(30)
            del admin
            print(f"{a.records} records of {a.record_size} B per run, {a.rounds} rounds, {a.client} client, load {os.getloadavg()[0]:.2f}")
            print(f"{'':10} {'op':8} {'MB/s (median)':>14} {'broker CPU s/GB':>16} {'of it user':>11} {'client CPU s/GB':>16}")
            for (proto, op), runs in results.items():
                med = [statistics.median(run[i] for run in runs) for i in range(4)]
                print(f"{proto:10} {op:8} {med[0]:14.1f} {med[1]:16.2f} {med[2]:11.2f} {med[3]:16.2f}")
        finally:
            broker.terminate()
            broker.wait(30)


if __name__ == "__main__":
    main()
