"""`strom producer-perf-test` and `strom consumer-perf-test` (Kafka's kafka-producer-perf-test.sh
and kafka-consumer-perf-test.sh) against a real broker: Kafka's output lines pinned by regexes,
record counts checked against the log itself, --throughput pacing, exact --messages."""
import re
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import STROM_BIN
from cluster import free_port

NUM = r"\d+(?:\.\d+)?"
# Kafka's ProducerPerformance: printWindow() every 5 s, printTotal() at the end.
WINDOW = re.compile(rf"^(\d+) records sent, ({NUM}) records/sec \(({NUM}) MB/sec\), ({NUM}) ms avg latency, "
                    rf"({NUM}) ms max latency\.$")
TOTAL = re.compile(rf"^(\d+) records sent, (\d+\.\d{{6}}) records/sec \((\d+\.\d\d) MB/sec\), (\d+\.\d\d) ms avg latency, "
                   rf"(\d+\.\d\d) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.$")
# Kafka's ConsumerPerformance.
HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
          "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"
F4 = r"\d+\.\d{4}"
DATA = re.compile(rf"^({DATE}), ({DATE}), ({F4}), ({F4}), (\d+), ({F4}), (\d+), (\d+), ({F4}), ({F4})$")
DETAIL = re.compile(rf"^({DATE}), 0, ({F4}), ({F4}), (\d+), ({F4}), (\d+), (\d+), ({F4}), ({F4})$")


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fast_groups(broker_factory):
    """A broker whose groups rebalance at once (no 3 s group.initial.rebalance.delay.ms)."""
    return broker_factory(overrides=["group.initial.rebalance.delay.ms=0"])


def end_offset(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def test_producer_perf_test_sends_exactly_num_records_and_reports_like_kafka(fast_groups):
    broker = fast_groups
    # Kafka's style: several properties after one --producer-props, bootstrap.servers among them.
    r = strom("producer-perf-test", "--topic", "perf", "--num-records", "20000", "--record-size", "100",
              "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}", "acks=all",
              "linger.ms=5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all(WINDOW.match(l) for l in lines[:-1]), r.stdout
    m = TOTAL.match(lines[-1])
    assert m, r.stdout
    count, rate, mb_s, avg, mx, p50, p95, p99, p999 = m.groups()
    assert int(count) == 20000
    # MB is 1024 * 1024 bytes, as Kafka's: the MB/s figure is records/s * 100 B / 2^20.
    assert abs(float(mb_s) - float(rate) * 100 / 1048576) < 0.01 + float(mb_s) * 0.01
    assert int(p50) <= int(p95) <= int(p99) <= int(p999) <= float(mx) + 1
    assert float(avg) <= float(mx)
    assert end_offset(broker.bootstrap, "perf") == (0, 20000)

    # Values: random upper-case letters of exactly --record-size bytes.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check", "auto.offset.reset": "earliest"})
    c.subscribe(["perf"])
    got, deadline = [], time.time() + 15
    while len(got) < 100 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    assert len(got) == 100
    assert all(m.key() is None and len(m.value()) == 100 and re.fullmatch(rb"[A-Z]+", m.value()) for m in got)
    assert len({m.value() for m in got}) == 100  # not one payload sent again and again


def test_payload_monotonic_and_payload_file(fast_groups, tmp_path):
    broker = fast_groups
    bs = ["--bootstrap-server", broker.bootstrap]
    r = strom("producer-perf-test", *bs, "--topic", "mono", "--num-records", "500", "--payload-monotonic",
              "--throughput", "-1")
    assert r.returncode == 0 and TOTAL.match(r.stdout.splitlines()[-1]), (r.stdout, r.stderr)
    f = tmp_path / "payloads.txt"
    f.write_text("alpha\nbeta\ngamma\n")
    r = strom("producer-perf-test", *bs, "--topic", "file", "--num-records", "300", "--payload-file", str(f),
              "--throughput", "-1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"Reading payloads from: {f}" and lines[1] == "Number of messages read: 3", r.stdout
    assert TOTAL.match(lines[-1]) and lines[-1].startswith("300 records sent"), r.stdout
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check", "auto.offset.reset": "earliest"})
    c.subscribe(["mono", "file"])
    got, deadline = {"mono": [], "file": []}, time.time() + 15
    while len(got["mono"]) + len(got["file"]) < 800 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got[m.topic()].append(m.value())
    c.close()
    assert got["mono"] == [str(i).encode() for i in range(500)]
    assert len(got["file"]) == 300 and set(got["file"]) == {b"alpha", b"beta", b"gamma"}


def test_throughput_paces_and_prints_a_line_every_5_s_and_a_dead_broker_is_one_line(broker):
    # The dead-broker runs wait out the tools' 10 s timeout; they run alongside the paced run
    # to keep this file fast.
    dead = f"127.0.0.1:{free_port()}"
    down = [subprocess.Popen([STROM_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in (["producer-perf-test", "--bootstrap-server", dead, "--topic", "t", "--num-records", "10",
                          "--record-size", "10", "--throughput", "-1"],
                         ["consumer-perf-test", "--bootstrap-server", dead, "--topic", "t", "--messages", "10"])]
    down_started = time.time()

    start = time.time()
    r = strom("producer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", "paced",
              "--num-records", "5500", "--record-size", "100", "--throughput", "1000")
    took = time.time() - start
    assert r.returncode == 0, r.stderr
    assert took >= 5.3, took
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout  # one progress line (at 5 s), then the summary
    w = WINDOW.match(lines[0])
    assert w, r.stdout
    assert 4500 <= int(w.group(1)) <= 5500 and 800 <= float(w.group(2)) <= 1200, lines[0]
    t = TOTAL.match(lines[1])
    assert t and int(t.group(1)) == 5500 and float(t.group(2)) <= 1100, lines[1]
    assert end_offset(broker.bootstrap, "paced") == (0, 5500)

    for p in down:
        out, err = p.communicate(timeout=60)
        assert p.returncode != 0 and out == "", (out, err)
        errors = [l for l in err.splitlines() if l.strip()]
        assert len(errors) == 1 and errors[0].startswith("Error: cannot reach the cluster") and dead in errors[0], err
    assert time.time() - down_started < 20


def test_consumer_perf_test_reads_exactly_messages(fast_groups):
    broker = fast_groups
    bs = ["--bootstrap-server", broker.bootstrap]
    r = strom("producer-perf-test", *bs, "--topic", "cperf", "--num-records", "20000", "--record-size", "100",
              "--throughput", "-1")
    assert r.returncode == 0, r.stderr

    r = strom("consumer-perf-test", *bs, "--topic", "cperf", "--messages", "15000", "--group", "cp")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == HEADER, r.stdout
    m = DATA.match(lines[1])
    assert m, r.stdout
    start, end, mb, mb_s, n, n_s, rebalance_ms, fetch_ms, fetch_mb_s, fetch_n_s = m.groups()
    assert int(n) == 15000
    assert mb == f"{15000 * 100 / 1048576:.4f}"
    assert start <= end and int(rebalance_ms) >= 0 and int(fetch_ms) >= 0
    # What the group consumed, exactly: the position it committed on leaving is 15,000.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "cp"})
    assert c.committed([TopicPartition("cperf", 0)], timeout=10)[0].offset == 15000
    c.close()

    # The same group goes on from there; it gives up --timeout ms after the last record, with
    # Kafka's warning, and still reports what it read.
    start_t = time.time()
    r = strom("consumer-perf-test", *bs, "--topic", "cperf", "--messages", "10000", "--group", "cp",
              "--timeout", "1000", "--hide-header")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("WARNING: Exiting before consuming the expected number of "
                                                   "messages: timeout (1000 ms) exceeded."), r.stdout
    m = DATA.match(lines[1])
    assert m and int(m.group(5)) == 5000, r.stdout
    assert time.time() - start_t < 10

    # Detailed stats: Kafka's other header, a line per interval, no summary.
    r = strom("consumer-perf-test", *bs, "--topic", "cperf", "--messages", "20000", "--show-detailed-stats",
              "--reporting-interval", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == HEADER.replace("start.time, end.time", "time, threadId"), r.stdout
    assert len(lines) >= 2 and all(DETAIL.match(l) for l in lines[1:]), r.stdout
    counts = [int(DETAIL.match(l).group(4)) for l in lines[1:]]
    assert counts == sorted(counts) and counts[-1] <= 20000


def test_consumer_perf_test_counts_keys_and_values(fast_groups):
    broker = fast_groups
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(1000):
        p.produce("keyed", key=b"k" * 10, value=b"v" * 90)
    p.produce("keyed", key=None, value=None)  # a tombstone counts as a record of 0 bytes
    assert p.flush(10) == 0
    r = strom("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", "keyed",
              "--messages", "1001", "--hide-header")
    assert r.returncode == 0, r.stderr
    m = DATA.match(r.stdout.strip())
    assert m, r.stdout
    assert int(m.group(5)) == 1001 and m.group(3) == f"{100_000 / 1048576:.4f}", r.stdout

    r = strom("consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", "missing", "--messages", "1")
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_bad_flags_are_clap_errors(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    r = strom("producer-perf-test", *bs, "--topic", "x", "--num-records", "10", "--record-size", "10")
    assert r.returncode == 2 and "--throughput" in r.stderr
    r = strom("producer-perf-test", *bs, "--topic", "x", "--num-records", "10", "--throughput", "-1")
    assert r.returncode == 2 and "--record-size" in r.stderr
    r = strom("producer-perf-test", *bs, "--topic", "x", "--num-records", "10", "--throughput", "-1",
              "--record-size", "10", "--payload-monotonic")
    assert r.returncode == 2 and "cannot be used with" in r.stderr
    r = strom("producer-perf-test", *bs, "--topic", "x", "--num-records", "10", "--throughput", "-1",
              "--record-size", "10", "--producer-props", "acks")
    assert r.returncode == 1 and r.stderr.strip() == "Error: --producer-props expects key=value, got `acks`"
    r = strom("consumer-perf-test", *bs, "--messages", "10")
    assert r.returncode == 2 and "--topic" in r.stderr
