"""Group configs (Kafka 4's config resource GROUP, type 32) end to end: set with `strom configs
--entity-type groups` (IncrementalAlterConfigs), read back by the tool, kafka-python and
confluent-kafka (DescribeConfigs), refused as Kafka refuses them, kept over a restart, and acted
on: a KIP-848 group's session timeout and heartbeat interval, a share group's
`share.auto.offset.reset` and `share.record.lock.duration.ms`.

The broker keeps Kafka's defaults for the values a group may override (a 45 s consumer session,
5 s heartbeats, a 30 s acquisition lock, `share.auto.offset.reset=latest`) and only lowers the
minimums, so a group's own, much shorter values are told apart from the broker's by what the
clients see. Every wait has a deadline; every client is closed and every child killed.
"""
import gc
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType, KafkaAdminClient

import wire
from conftest import STROM_BIN
from test_consumer_group_protocol import _reader, cstr
from test_share_groups import describe_offsets
from wire import exchange, frame, uvarint

OVERRIDES = [
    "group.consumer.min.session.timeout.ms=3000",
    "group.consumer.min.heartbeat.interval.ms=500",
    "group.share.min.session.timeout.ms=3000",
    "group.share.min.heartbeat.interval.ms=500",
    "group.share.min.record.lock.duration.ms=1000",
]

INVALID_CONFIG = 40
INVALID_REQUEST = 42
RETRIABLE_COORDINATOR = {14, 15, 16}


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(OVERRIDES)


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def group_configs(b, group, *args):
    return strom("configs", "--bootstrap-server", b.bootstrap, "--entity-type", "groups", "--entity-name", group, *args)


def set_group(b, group, pairs):
    r = group_configs(b, group, "--alter", "--add-config", pairs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Completed updating config for group {group}."


def make_topic(b, name, partitions=1):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(15)


def produce(b, topic, values):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v.encode())
    assert p.flush(15) == 0


def consumer_heartbeat(bootstrap, group, topic):
    """A joining ConsumerGroupHeartbeat v0: (error code, heartbeat interval), retried while the
    group's coordinator loads."""
    body = cstr(group) + cstr("") + struct.pack(">i", 0) + cstr(None) + cstr(None) + struct.pack(">i", 60000)
    body += uvarint(2) + cstr(topic) + cstr(None) + uvarint(1) + uvarint(0)
    deadline = time.time() + 30
    while wire.find_coordinator(bootstrap, group, wire.COORDINATOR_GROUP)[0] != 0 and time.time() < deadline:
        time.sleep(0.2)
    while True:
        resp = exchange(bootstrap, frame(68, 0, body, correlation_id=68, flexible=True))
        assert resp is not None, "ConsumerGroupHeartbeat closed the connection"
        take, varint, rstr = _reader(resp)
        assert take(">i") == 68
        varint()
        take(">i")
        error = take(">h")
        rstr()
        rstr()
        take(">i")  # member epoch
        interval = take(">i")
        if error not in RETRIABLE_COORDINATOR or time.time() > deadline:
            return error, interval
        time.sleep(0.2)


def incremental_alter(bootstrap, group, ops):
    """IncrementalAlterConfigs v1 of one GROUP resource: (error code, message). `ops` are
    (name, operation, value or None)."""
    configs = b"".join(cstr(n) + struct.pack(">b", op) + cstr(v) + uvarint(0) for n, op, v in ops)
    body = uvarint(2) + struct.pack(">b", 32) + cstr(group) + uvarint(len(ops) + 1) + configs + uvarint(0)
    body += struct.pack(">?", False) + uvarint(0)
    resp = exchange(bootstrap, frame(44, 1, body, correlation_id=44, flexible=True))
    assert resp is not None, "IncrementalAlterConfigs closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 44
    varint()
    take(">i")
    assert varint() == 2
    error = take(">h")
    return error, rstr()


def alter_configs_v0(bootstrap, group, configs):
    """AlterConfigs v0 of one GROUP resource (its whole set): the error code."""
    entries = b"".join(wire.kstr(k) + wire.kstr(v) for k, v in configs.items())
    body = struct.pack(">i", 1) + struct.pack(">b", 32) + wire.kstr(group) + struct.pack(">i", len(configs)) + entries + struct.pack(">?", False)
    resp = exchange(bootstrap, frame(33, 0, body, correlation_id=33))
    assert resp is not None, "AlterConfigs closed the connection"
    (corr, _throttle, n, error) = struct.unpack_from(">iiih", resp)
    assert corr == 33 and n == 1
    return error


CHILD = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
printed = False
while True:
    c.poll(0.1)
    if c.assignment() and not printed:
        print("assigned", flush=True)
        printed = True
"""


def members(admin, group):
    d = admin.describe_consumer_groups([group])[group].result(15)
    return len(d.members)


def test_a_consumer_groups_own_heartbeat_interval_and_session_timeout(gbroker):
    """consumer.heartbeat.interval.ms goes back to the group's members (the broker's 5 s to
    others), and a killed confluent-kafka member is removed after the group's 4 s session
    timeout: well within 30 s, where the broker's 45 s would keep it."""
    make_topic(gbroker, "cgc", 2)
    set_group(gbroker, "fast", "consumer.session.timeout.ms=4000,consumer.heartbeat.interval.ms=700")
    assert consumer_heartbeat(gbroker.bootstrap, "fast", "cgc") == (0, 700)
    assert consumer_heartbeat(gbroker.bootstrap, "other", "cgc") == (0, 5000)
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    # The raw member of "fast" above never heartbeats again: gone after the group's 4 s.
    deadline = time.time() + 30
    while members(admin, "fast") != 0:
        assert time.time() < deadline, "the raw member outlived the group's session timeout"
        time.sleep(0.5)
    child = subprocess.Popen([sys.executable, "-u", "-c", CHILD, gbroker.bootstrap, "fast", "cgc"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "assigned"
        assert members(admin, "fast") == 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        deadline = time.time() + 30
        while members(admin, "fast") != 0:
            assert time.time() < deadline, "the killed member outlived the group's session timeout"
            time.sleep(0.5)
        assert gbroker.wait_for_log("removed a consumer-group member: its session timed out", 10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    # The group's configs deleted: the broker's interval again, from the next heartbeat.
    r = group_configs(gbroker, "fast", "--alter", "--delete-config", "consumer.session.timeout.ms,consumer.heartbeat.interval.ms")
    assert r.returncode == 0, r.stderr
    assert consumer_heartbeat(gbroker.bootstrap, "fast", "cgc") == (0, 5000)


def share_consumer(b, group, topic):
    c = ShareConsumer({"bootstrap.servers": b.bootstrap, "group.id": group, "share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    return c


def test_share_auto_offset_reset_of_one_group(gbroker):
    """The broker starts share groups at the log end (latest); the group "early" has
    share.auto.offset.reset=earliest and reads the records produced before it joined, while
    "late" gets only a record produced after it started reading."""
    make_topic(gbroker, "sq")
    produce(gbroker, "sq", [f"old{i}" for i in range(5)])
    set_group(gbroker, "early", "share.auto.offset.reset=earliest")
    early, late = share_consumer(gbroker, "early", "sq"), share_consumer(gbroker, "late", "sq")
    try:
        got_early, got_late = [], []
        deadline = time.time() + 30
        while len(got_early) < 5 and time.time() < deadline:
            for m in early.poll(0.5):
                assert m.error() is None, m.error()
                got_early.append(m.value().decode())
                early.acknowledge(m, AcknowledgeType.ACCEPT)
            for m in late.poll(0.2):
                assert m.error() is None, m.error()
                got_late.append(m.value().decode())
        assert sorted(got_early) == [f"old{i}" for i in range(5)]
        # "late" starts at the log end (5), the broker's latest: a new record is all it gets.
        deadline = time.time() + 30
        while describe_offsets(gbroker.bootstrap, "late", "sq", [0])[1].get(("sq", 0), (-1, 0))[0] != 5:
            assert time.time() < deadline, "the late group never started reading"
            for m in late.poll(0.2):
                got_late.append(m.value().decode())
        produce(gbroker, "sq", ["new"])
        deadline = time.time() + 30
        while "new" not in got_late and time.time() < deadline:
            for m in late.poll(0.5):
                assert m.error() is None, m.error()
                got_late.append(m.value().decode())
                late.acknowledge(m, AcknowledgeType.ACCEPT)
        assert got_late == ["new"]
    finally:
        early.close()
        late.close()


def test_a_shorter_record_lock_redelivers_sooner(gbroker):
    """A consumer that never acknowledges holds its records for the group's 1.5 s lock, not the
    broker's 30 s: a second consumer of the group gets them again (delivery count 2) well
    within 20 s."""
    make_topic(gbroker, "sl")
    set_group(gbroker, "quick", "share.record.lock.duration.ms=1500,share.auto.offset.reset=earliest")
    produce(gbroker, "sl", [f"l{i}" for i in range(3)])
    holder = share_consumer(gbroker, "quick", "sl")
    try:
        held = []
        deadline = time.time() + 30
        while len(held) < 3 and time.time() < deadline:
            held.extend(m.offset() for m in holder.poll(0.5) if m.error() is None)
        assert sorted(held) == [0, 1, 2]
        second = share_consumer(gbroker, "quick", "sl")
        try:
            again = []
            deadline = time.time() + 20
            while len(again) < 3 and time.time() < deadline:
                for m in second.poll(0.5):
                    assert m.error() is None, m.error()
                    again.append((m.offset(), m.delivery_count()))
                    second.acknowledge(m, AcknowledgeType.ACCEPT)
            assert sorted(again) == [(0, 2), (1, 2), (2, 2)]
        finally:
            second.close()
    finally:
        holder.close()


def test_describe_refusals_and_restart(gbroker):
    """The tool, kafka-python and confluent-kafka read a group's configs; bad values are refused
    with Kafka's errors and messages; the configs survive a restart (the metadata log)."""
    set_group(gbroker, "g1", "consumer.session.timeout.ms=50000,share.auto.offset.reset=earliest")
    r = group_configs(gbroker, "g1", "--describe")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Dynamic configs for group g1 are:",
        "  consumer.session.timeout.ms=50000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000, "
        "DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}",
        "  share.auto.offset.reset=earliest sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:share.auto.offset.reset=earliest, "
        "DEFAULT_CONFIG:share.auto.offset.reset=latest}",
    ]
    r = group_configs(gbroker, "g1", "--describe", "--all")
    assert "  share.record.lock.duration.ms=30000 sensitive=false" in r.stdout
    # A group that has none: every key at the broker's value.
    r = group_configs(gbroker, "never-seen", "--describe", "--all")
    assert "  consumer.heartbeat.interval.ms=5000 sensitive=false synonyms={DEFAULT_CONFIG:group.consumer.heartbeat.interval.ms=5000}" in r.stdout

    kp = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    try:
        got = kp.describe_configs([KpConfigResource(ConfigResourceType.GROUP, "g1")], config_filter="all")
        entries = got["group"]["g1"]
        assert entries["consumer.session.timeout.ms"]["value"] == "50000"
        assert entries["consumer.heartbeat.interval.ms"]["value"] == "5000"
    finally:
        kp.close()

    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    fut = admin.describe_configs([ConfigResource(ResourceType.GROUP, "g1")])
    entries = next(iter(fut.values())).result(15)
    assert entries["share.auto.offset.reset"].value == "earliest"

    # AlterConfigs (the legacy whole-set form) replaces a group's set. (kafka-python's
    # alter_configs reads and merges the current set first, so it is sent raw here.)
    assert alter_configs_v0(gbroker.bootstrap, "g3", {"consumer.session.timeout.ms": "50000"}) == 0
    r = group_configs(gbroker, "g3", "--describe")
    assert [l.split()[0] for l in r.stdout.splitlines()[1:]] == ["consumer.session.timeout.ms=50000"]
    assert alter_configs_v0(gbroker.bootstrap, "g3", {"share.session.timeout.ms": "50000"}) == 0
    r = group_configs(gbroker, "g3", "--describe")
    assert [l.split()[0] for l in r.stdout.splitlines()[1:]] == ["share.session.timeout.ms=50000"]
    assert alter_configs_v0(gbroker.bootstrap, "g3", {"share.session.timeout.ms": "2000"}) == INVALID_CONFIG

    # Refused as Kafka refuses them, nothing stored.
    fails = [
        ("consumer.heartbeat.interval.ms=100", "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms"),
        ("consumer.session.timeout.ms=70000", "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms"),
        ("consumer.session.timeout.ms=abc", "Invalid value abc for configuration consumer.session.timeout.ms: Not a number of type INT"),
        ("share.auto.offset.reset=none", "Invalid value none for configuration share.auto.offset.reset: String must be one of: latest, earliest"),
        ("share.isolation.level=read_committed", "Group config share.isolation.level is not supported"),
        ("session.timeout.ms=5000", "Unknown group config name: session.timeout.ms"),
    ]
    for pairs, message in fails:
        r = group_configs(gbroker, "g1", "--alter", "--add-config", pairs)
        assert r.returncode != 0, pairs
        assert "INVALID_CONFIG" in r.stderr and message in r.stderr, r.stderr
    # The heartbeat must stay below the session timeout (the group's 3 s against its 3 s).
    assert incremental_alter(gbroker.bootstrap, "g2", [("consumer.session.timeout.ms", 0, "3000"), ("consumer.heartbeat.interval.ms", 0, "3000")]) == \
        (INVALID_CONFIG, "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms")
    assert incremental_alter(gbroker.bootstrap, "", [("consumer.session.timeout.ms", 0, "50000")]) == (INVALID_REQUEST, "Default group resources are not allowed.")
    assert incremental_alter(gbroker.bootstrap, "g2", [("consumer.session.timeout.ms", 0, None)]) == \
        (INVALID_CONFIG, "Null value not supported for group configs: consumer.session.timeout.ms")
    r = group_configs(gbroker, "g1", "--alter", "--delete-config", "share.heartbeat.interval.ms")
    assert r.returncode != 0 and "Invalid config(s): share.heartbeat.interval.ms" in r.stderr

    gbroker.restart()
    r = group_configs(gbroker, "g1", "--describe")
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()[1:]] == ["consumer.session.timeout.ms=50000", "share.auto.offset.reset=earliest"]
    assert group_configs(gbroker, "g2", "--describe").stdout.splitlines() == ["Dynamic configs for group g2 are:"]


def describe_group_v0(bootstrap, group):
    """DescribeConfigs v0 of one GROUP resource, asked of one node: (error code, {name: value})."""
    body = struct.pack(">i", 1) + struct.pack(">b", 32) + wire.kstr(group) + struct.pack(">i", -1)
    resp = exchange(bootstrap, frame(32, 0, body, correlation_id=32))
    assert resp is not None, "DescribeConfigs closed the connection"
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take(">h")
        s = resp[pos:pos + max(n, 0)].decode() if n >= 0 else None
        pos += max(n, 0)
        return s

    assert take(">i") == 32
    take(">i")  # throttle
    assert take(">i") == 1
    error = take(">h")
    string()
    assert take(">b") == 32 and string() == group
    out = {}
    for _ in range(max(take(">i"), 0)):
        name, value = string(), string()
        take(">?"), take(">?"), take(">?")
        out[name] = value
    return error, out


def test_group_configs_reach_every_node_of_a_cluster(tmp_path):
    """Set through one node, a group's configs are in every node's metadata (DescribeConfigs of
    each node), and the group's coordinator, wherever it is, tells its members the group's
    heartbeat interval."""
    from cluster import Cluster
    c = Cluster(tmp_path, 3, overrides=OVERRIDES).start()
    try:
        first = c.nodes[1].bootstrap
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        admin.create_topics([NewTopic("cc", 3, 3)])["cc"].result(30)
        groups = [f"spread{i}" for i in range(6)]
        for g in groups:
            assert incremental_alter(first, g, [("consumer.heartbeat.interval.ms", 0, "600")])[0] == 0
        for node in c.nodes.values():
            deadline = time.time() + 15
            while describe_group_v0(node.bootstrap, groups[-1]) != (0, {**describe_group_v0(node.bootstrap, "none")[1], "consumer.heartbeat.interval.ms": "600"}):
                assert time.time() < deadline, f"{node.bootstrap} never saw the group's config"
                time.sleep(0.2)
        coordinators = set()
        for g in groups:
            deadline = time.time() + 30
            while True:
                err, _msg, node_id, host, port = wire.find_coordinator(first, g, wire.COORDINATOR_GROUP)
                if err == 0 or time.time() > deadline:
                    break
                time.sleep(0.2)
            assert err == 0
            coordinators.add(node_id)
            assert consumer_heartbeat(f"{host}:{port}", g, "cc") == (0, 600)
        assert len(coordinators) > 1, "the groups all had one coordinator; the test proves nothing about the others"
    finally:
        c.kill_all()


def test_a_replayed_member_expires_on_its_groups_session_timeout(gbroker):
    """After a restart a member replayed from __consumer_offsets that never heartbeats again is
    removed after its group's 15 s session timeout, not the broker's 45 s."""
    make_topic(gbroker, "cgr", 1)
    set_group(gbroker, "replayed", "consumer.session.timeout.ms=15000")
    assert consumer_heartbeat(gbroker.bootstrap, "replayed", "cgr")[0] == 0
    gbroker.restart()
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})

    def count():
        try:
            return members(admin, "replayed")
        except Exception:  # the coordinator still loading: asked again
            return None

    deadline = time.time() + 15
    while count() is None:
        assert time.time() < deadline, "the group never loaded"
        time.sleep(0.3)
    assert count() == 1, "the member was not replayed"
    deadline = time.time() + 35
    while count() != 0:
        assert time.time() < deadline, "the replayed member outlived its group's session timeout"
        time.sleep(0.5)


def share_join_interval(bootstrap, group, topic):
    """A joining ShareGroupHeartbeat v1: (error code, heartbeat interval), retried while the
    group's coordinator loads."""
    body = cstr(group) + cstr("") + struct.pack(">i", 0) + cstr(None) + uvarint(2) + cstr(topic) + uvarint(0)
    deadline = time.time() + 30
    while wire.find_coordinator(bootstrap, group, wire.COORDINATOR_GROUP)[0] != 0 and time.time() < deadline:
        time.sleep(0.2)
    while True:
        resp = exchange(bootstrap, frame(76, 1, body, correlation_id=76, flexible=True))
        assert resp is not None, "ShareGroupHeartbeat closed the connection"
        take, varint, rstr = _reader(resp)
        assert take(">i") == 76
        varint()
        take(">i")
        error = take(">h")
        rstr()
        rstr()
        take(">i")  # member epoch
        interval = take(">i")
        if error not in RETRIABLE_COORDINATOR or time.time() > deadline:
            return error, interval
        time.sleep(0.2)


def test_a_share_groups_own_heartbeat_interval(gbroker):
    make_topic(gbroker, "sh")
    set_group(gbroker, "beats", "share.heartbeat.interval.ms=800")
    assert share_join_interval(gbroker.bootstrap, "beats", "sh") == (0, 800)
    assert share_join_interval(gbroker.bootstrap, "plain", "sh") == (0, 5000)


def test_describe_without_a_name_shows_every_groups_configs(gbroker):
    """`--entity-type groups --describe` without `--entity-name` describes every group of the
    cluster, as Kafka's tool; `--alter` needs a name."""
    from confluent_kafka import TopicPartition
    make_topic(gbroker, "gc-every")
    for g in ("every-a", "every-b"):
        c = Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": g, "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition("gc-every", 0, 1)], asynchronous=False)
        c.close()
    set_group(gbroker, "every-b", "consumer.heartbeat.interval.ms=4000")
    r = strom("configs", "--bootstrap-server", gbroker.bootstrap, "--entity-type", "groups", "--describe")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Dynamic configs for group every-a are:",
        "Dynamic configs for group every-b are:",
        "  consumer.heartbeat.interval.ms=4000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:consumer.heartbeat.interval.ms=4000, "
        "DEFAULT_CONFIG:group.consumer.heartbeat.interval.ms=5000}",
    ], r.stdout
    r = strom("configs", "--bootstrap-server", gbroker.bootstrap, "--entity-type", "groups", "--alter", "--add-config", "consumer.heartbeat.interval.ms=3000")
    assert r.returncode != 0 and "An entity name must be specified" in r.stderr, r.stderr
