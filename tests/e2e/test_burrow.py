"""LinkedIn's Burrow 1.2.1 (Debian's `burrow`), the consumer-lag monitor, watching a Strom broker.

Burrow keeps its own coordination state in ZooKeeper (Debian's `zookeeper` 3.8, run here
standalone on a free port with its packaged jar), reads the groups' commits itself from
`__consumer_offsets` with its sarama consumer, asks the broker for each partition's end offset
(ListOffsets; v0 with its default client profile), and serves each group's lag over HTTP. Its
client profile's `kafka-version` decides which request versions and message formats that sarama
client uses: the default ("0.8", Fetch v0) and a 2.x value, as Burrow users configure it.
"""
import json
import os
import shutil
import socket
import urllib.request

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from cluster import free_ports
from golib import refusals
from services import Service
from txnlib import create_topics, produce_plain

ZK_JAR = "/usr/share/java/zookeeper.jar"  # its manifest's Class-Path names Debian's other jars

pytestmark = [
    pytest.mark.skipif(shutil.which("Burrow") is None, reason="Burrow is not installed (scripts/test.sh apt-installs burrow as root)"),
    pytest.mark.skipif(not os.path.exists(ZK_JAR) or shutil.which("java") is None,
                       reason="ZooKeeper or java is missing (scripts/test.sh apt-installs zookeeper as root)"),
]


def four_letter(port, word):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(word)
        return s.recv(64)


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory):
    """A standalone ZooKeeper for Burrow's own state; each test gives Burrow its own root path."""
    d = tmp_path_factory.mktemp("zk")
    (port,) = free_ports(1)
    (d / "data").mkdir()
    (d / "zoo.cfg").write_text(f"tickTime=500\ndataDir={d / 'data'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                               "admin.enableServer=false\n4lw.commands.whitelist=ruok\n")
    zk = Service("zookeeper", ["java", "-Xmx128m", "-cp", ZK_JAR, "org.apache.zookeeper.server.ZooKeeperServerMain",
                               str(d / "zoo.cfg")], d / "zk.log").start()
    try:
        zk.wait_until(lambda: four_letter(port, b"ruok") == b"imok", 30, "ZooKeeper answering ruok")
        yield f"127.0.0.1:{port}"
    finally:
        zk.stop()


@pytest.fixture
def broker(broker_factory):
    """A few `__consumer_offsets` partitions instead of 50: Burrow's sarama consumer adds its
    partition consumers one by one, each waiting out the fetch in flight (250 ms max wait), so
    the 44th partition is read some 11 s after start; with 5, within a second or two."""
    return broker_factory(["group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=5"])


def burrow_config(bootstrap, zookeeper, http_port, root, kafka_version):
    profile = f'kafka-version="{kafka_version}"\n' if kafka_version else ""
    servers = json.dumps(bootstrap.split(","))
    # Short refresh intervals so that the lag follows within seconds (production uses minutes).
    return f"""
[general]
pidfile="burrow.pid"

[logging]
level="info"

[zookeeper]
servers=["{zookeeper}"]
timeout=6
root-path="{root}"

[client-profile.strom]
client-id="burrow-e2e"
{profile}
[cluster.strom]
class-name="kafka"
servers={servers}
client-profile="strom"
topic-refresh=2
offset-refresh=1

[consumer.strom]
class-name="kafka"
cluster="strom"
servers={servers}
client-profile="strom"
group-whitelist=""

[httpserver.default]
address="127.0.0.1:{http_port}"

[storage.default]
class-name="inmemory"
workers=2
intervals=10
expire-group=604800
min-distance=1

[evaluator.default]
class-name="caching"
expire-cache=1
"""


@pytest.fixture
def burrow(tmp_path, zookeeper):
    started = []

    def start(bootstrap, kafka_version):
        (port,) = free_ports(1)
        d = tmp_path / f"burrow{len(started)}"
        d.mkdir()
        (d / "burrow.toml").write_text(burrow_config(bootstrap, zookeeper, port, f"/burrow-{d.name}-{os.getpid()}-{id(d)}",
                                                     kafka_version))
        b = Service("Burrow", ["Burrow", "-config-dir", str(d)], d / "burrow.log", cwd=str(d)).start()
        started.append(b)
        b.url = f"http://127.0.0.1:{port}"
        b.wait_until(lambda: get(b.url + "/burrow/admin", raw=True) == "GOOD", 30, "its HTTP server")
        return b

    yield start
    for b in started:
        b.stop()


def get(url, raw=False):
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    return body if raw else json.loads(body)


def commit(bootstrap, group, offsets):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        c.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})
    finally:
        c.close()


def lag_is(b, group, total, per_partition):
    """Burrow's lag endpoint reports `total` and each partition's current lag as given."""
    status = get(f"{b.url}/v3/kafka/strom/consumer/{group}/lag")["status"]
    parts = {(p["topic"], p["partition"]): p["current_lag"] for p in status["partitions"]}
    b.last_status = status
    return status["totallag"] == total and parts == per_partition


@pytest.mark.parametrize("kafka_version", [None, "2.0.0"], ids=["default-profile", "kafka-version-2.0.0"])
def test_burrow_reports_a_groups_lag(broker, burrow, kafka_version):
    bs, topic, group = broker.bootstrap, "burrow-lag", "burrow-group"
    create_topics(bs, {topic: 2})
    produce_plain(bs, topic, [b"x"] * 10, partition=0)
    produce_plain(bs, topic, [b"y"] * 6, partition=1)
    commit(bs, group, {(topic, 0): 4, (topic, 1): 5})
    b = burrow(bs, kafka_version)

    def expect(total, per_partition, what):
        b.last_status = None
        try:
            b.wait_until(lambda: lag_is(b, group, total, per_partition), 30,
                         f"{what}: lag {total} {per_partition} (Burrow's last answer: {b.last_status})")
        except AssertionError as e:
            raise AssertionError(f"{e}\nconnections the broker closed:\n{refusals(broker)}") from None

    expect(7, {(topic, 0): 6, (topic, 1): 1}, "commits read from __consumer_offsets, end offsets from ListOffsets")
    produce_plain(bs, topic, [b"z"] * 5, partition=0)
    expect(12, {(topic, 0): 11, (topic, 1): 1}, "the end offset moved")
    commit(bs, group, {(topic, 0): 15, (topic, 1): 6})
    expect(0, {(topic, 0): 0, (topic, 1): 0}, "the group caught up")
    assert group in get(f"{b.url}/v3/kafka/strom/consumer")["consumers"]
