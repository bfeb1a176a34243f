"""The HTTP listener: `/metrics` in Prometheus' text format checked by value after known traffic
(records, bytes, requests, a group's lag after a commit at a known offset), `/health` and `/ready`
(through a restart, and 503 while a node cannot register), bad HTTP, and a three-node cluster's
controller and under-replicated partitions. The text format is parsed here, strictly: every
line that is not a comment must be a sample of a family declared by `# TYPE`.
"""
import re
import socket
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, free_ports, wait_for

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
TYPE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")


def parse(text):
    """{(name, frozenset of (label, value)): float}. Fails on any line that is not a sample,
    `# HELP` or `# TYPE`, on a sample whose family has no `# TYPE`, and on a repeated series."""
    families, samples = set(), {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            if m := TYPE.match(line):
                families.add(m.group(1))
            else:
                assert line.startswith("# HELP "), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels, value = m.groups()
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), f"bad labels: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in families or family in families, f"no # TYPE for {name}"
        key = (name, frozenset((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")) for k, v in pairs))
        assert key not in samples, f"series twice: {line!r}"
        samples[key] = float(value)
    return samples


def get(http, path, method="GET"):
    """(status, content type, body) of one request to the broker's HTTP listener."""
    req = urllib.request.Request(f"http://{http}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(http):
    status, ctype, body = get(http, "/metrics")
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return parse(body)


def value(samples, name, **labels):
    """The value of the one series `name` with exactly these labels, or None."""
    return samples.get((name, frozenset(labels.items())))


def series(samples, name):
    return {labels: v for (n, labels), v in samples.items() if n == name}


def create(bootstrap, name, partitions=1, rf=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=10)[name].result(timeout=20)
    return admin


def test_metrics_by_value_after_known_traffic(broker):
    bs, http = broker.bootstrap, broker.http
    assert http, "the ready line names the HTTP listener"
    admin = create(bs, "m")
    # Records stamped a minute ago: the group's lag in seconds is then known to be about 60.
    stamp = int(time.time() * 1000) - 60_000
    producer = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    value_bytes = b"v" * 100
    for i in range(100):
        producer.produce("m", value=value_bytes, key=str(i).encode(), partition=0, timestamp=stamp)
    assert producer.flush(20) == 0

    consumer = Consumer({"bootstrap.servers": bs, "group.id": "g", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["m"])
    got = []
    deadline = time.time() + 30
    while len(got) < 60 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) >= 60
    consumer.commit(offsets=[TopicPartition("m", 0, 60)], asynchronous=False)
    # A refused request: the topic exists.
    try:
        admin.create_topics([NewTopic("m", 1, 1)], operation_timeout=10)["m"].result(timeout=20)
        raise AssertionError("creating an existing topic succeeded")
    except Exception as e:
        assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e), e

    s = scrape(http)
    assert value(s, "strom_topic_messages_in_total", topic="m") == 100
    assert value(s, "strom_topic_bytes_in_total", topic="m") >= 100 * len(value_bytes)
    assert value(s, "strom_topic_bytes_out_total", topic="m") >= 60 * len(value_bytes)
    assert value(s, "strom_partition_high_watermark", topic="m", partition="0") == 100
    assert value(s, "strom_partition_log_size_bytes", topic="m", partition="0") >= 100 * len(value_bytes)
    assert value(s, "strom_consumer_group_lag", group="g", topic="m", partition="0") == 40
    lag_s = value(s, "strom_consumer_group_lag_seconds", group="g", topic="m", partition="0")
    assert lag_s is not None and 59 <= lag_s <= 60 + 120, lag_s
    assert value(s, "strom_consumer_group_members", group="g") == 1
    for api in ("Produce", "Fetch", "OffsetCommit", "JoinGroup", "Metadata"):
        assert value(s, "strom_requests_total", api=api, error="NONE") >= 1, api
        assert value(s, "strom_request_duration_seconds_count", api=api) >= 1, api
        assert value(s, "strom_request_duration_seconds_bucket", api=api, le="+Inf") == value(s, "strom_request_duration_seconds_count", api=api)
    assert value(s, "strom_requests_total", api="CreateTopics", error="TOPIC_ALREADY_EXISTS") == 1
    assert value(s, "strom_controller_active") == 1
    assert value(s, "strom_partitions_under_replicated") == 0
    assert value(s, "strom_partitions_under_min_isr") == 0
    assert value(s, "strom_partitions_offline") == 0
    assert value(s, "strom_connections", listener="PLAINTEXT") >= 2  # the producer's and the consumer's
    assert value(s, "strom_log_dir_free_bytes") > 0
    assert value(s, "strom_metrics_series_dropped") == 0
    assert 0 < time.time() - value(s, "process_start_time_seconds") < 3600
    assert value(s, "process_resident_memory_bytes") > 1_000_000
    assert value(s, "process_open_fds") > 0
    assert value(s, "process_cpu_seconds_total") > 0

    # Everything consumed and committed: no lag, in records or in seconds.
    consumer.commit(offsets=[TopicPartition("m", 0, 100)], asynchronous=False)
    s = scrape(http)
    assert value(s, "strom_consumer_group_lag", group="g", topic="m", partition="0") == 0
    assert value(s, "strom_consumer_group_lag_seconds", group="g", topic="m", partition="0") == 0
    consumer.close()
    producer.produce("m", value=b"x", partition=0)
    assert producer.flush(20) == 0
    s = scrape(http)
    assert value(s, "strom_topic_messages_in_total", topic="m") == 101
    assert value(s, "strom_consumer_group_lag", group="g", topic="m", partition="0") == 1
    assert value(s, "strom_consumer_group_members", group="g") == 0


def test_per_partition_series_stop_at_the_cap(broker_factory):
    b = broker_factory(["metrics.partition.series.max=3"])
    create(b.bootstrap, "wide", partitions=5)
    s = scrape(b.http)
    assert len(series(s, "strom_partition_high_watermark")) == 3
    assert len(series(s, "strom_partition_log_size_bytes")) == 3
    assert value(s, "strom_metrics_series_dropped") == 4  # two partitions, two families
    assert b.wait_for_log("metrics.partition.series.max")
    scrape(b.http)
    assert b.log_since_start().count("metrics.partition.series.max") == 1, "said once"


def test_health_ready_and_bad_http(broker):
    http = broker.http
    assert get(http, "/health")[0] == 200
    assert get(http, "/ready")[0] == 200
    assert get(http, "/nope")[0] == 404
    assert get(http, "/metrics", method="POST")[0] == 405
    host, port = http.rsplit(":", 1)
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
                    b"GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"\x00\xff" * 100 + b"\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(garbage)
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400"), (garbage, answer)
    # The broker is unharmed, and the HTTP side comes back with it after a restart, on its port.
    assert get(http, "/health")[0] == 200
    broker.restart()
    assert broker.http == http
    assert get(http, "/ready")[0] == 200
    assert get(http, "/health") == (200, "text/plain; charset=utf-8", "ok\n")


def test_no_http_listener_when_empty(broker_factory):
    b = broker_factory(["http.listeners="])
    assert b.http is None
    assert " http=" not in "".join(b.log_lines[:1])


def test_cluster_controller_and_under_replicated_partitions(tmp_path):
    c = Cluster(tmp_path, overrides=["replica.lag.time.max.ms=2000"])
    # Node 1 alone cannot register (no quorum): it serves /health, and /ready says 503.
    (port,) = free_ports(1)
    c.nodes[1].overrides.append(f"http.listeners=http://127.0.0.1:{port}")
    c.nodes[1].launch()
    try:
        wait_for("node 1's /health", lambda: get(f"127.0.0.1:{port}", "/health")[0] == 200)
        assert get(f"127.0.0.1:{port}", "/ready")[0] == 503
        c.start(ids=[2, 3])
        c.nodes[1].wait_ready()
        assert get(f"127.0.0.1:{port}", "/ready")[0] == 200
        assert c.nodes[1].http == f"127.0.0.1:{port}"
        create(c.bootstrap(), "r", partitions=3, rf=3)
        c.wait_for_full_isr("r", 3)
        scrapes = lambda ids: {i: scrape(c.nodes[i].http) for i in ids}
        c.wait_for("one active controller", lambda: sum(value(s, "strom_controller_active") for s in scrapes([1, 2, 3]).values()) == 1)
        s = scrapes([1, 2, 3])
        assert sum(value(x, "strom_partitions_under_replicated") for x in s.values()) == 0
        # Every node has a replica of each partition, and reports its high watermark.
        assert all(len([k for k in series(x, "strom_partition_high_watermark") if ("topic", "r") in k]) == 3 for x in s.values())
        victim = 3
        c.nodes[victim].kill()
        c.wait_for("under-replicated partitions reported", lambda: sum(
            value(x, "strom_partitions_under_replicated") for x in scrapes([1, 2]).values()) > 0)
        c.wait_for("one active controller among the live nodes", lambda: sum(
            value(x, "strom_controller_active") for x in scrapes([1, 2]).values()) == 1)
        # Back: the leaders take it into their ISRs again, and count the expansions.
        c.nodes[victim].start()
        c.wait_for_full_isr("r", 3)
        c.wait_for("ISR expansions counted", lambda: sum(
            value(x, "strom_isr_expands_total") or 0 for x in scrapes([1, 2, 3]).values()) >= 1)
        c.wait_for("no under-replicated partitions", lambda: sum(
            value(x, "strom_partitions_under_replicated") for x in scrapes([1, 2, 3]).values()) == 0)
    finally:
        c.kill_all()
