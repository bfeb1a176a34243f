"""Startup configuration errors, and the admin APIs not covered elsewhere: incremental and
broker-level configs, DeleteRecords, DescribeCluster, CreatePartitions errors, retention."""
import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic)
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition as KTopicPartition
from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType

from conftest import STROM_BIN

WEEK_MS = str(7 * 24 * 3600 * 1000)


def start_fails(tmp_path, *overrides, config=None):
    args = [STROM_BIN, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", "http.listeners=",
            "--override", f"log.dirs={tmp_path}/d"]
    if config:
        args += ["--config", str(config)]
    for o in overrides:
        args += ["--override", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert "bootstrap.servers=" not in p.stdout, "a broker that refuses its config must never report ready"
    return p.returncode, p.stderr


def test_unknown_or_bad_config_is_a_startup_error_naming_the_key(tmp_path):
    """Unknown keys (before the data directory is touched), bad values, an override without '=',
    and, in a properties file, unknown keys or the file missing: each stops the start with an
    error naming the key (or the file), without ever reporting ready."""
    code, err = start_fails(tmp_path, "log.retension.ms=5")
    assert code != 0 and "log.retension.ms" in err
    assert not os.path.exists(tmp_path / "d"), "must refuse before touching the data dir"
    for override in ["num.partitions=abc", "num.partitions=0", "auto.create.topics.enable=maybe",
                     "log.segment.bytes=0", "log.cleanup.policy=shred",
                     "log.message.timestamp.type=WallClock", "socket.request.max.bytes=-1", "listeners=garbage"]:
        code, err = start_fails(tmp_path, override)
        assert code != 0 and override.split("=")[0] in err, (override, err[-2000:])
    code, err = start_fails(tmp_path, "num.partitions")
    assert code != 0 and "num.partitions" in err and "key=value" in err
    props = tmp_path / "server.properties"
    props.write_text("num.partitions=2\nlog.retention.hourz=1\n")
    code, err = start_fails(tmp_path, config=props)
    assert code != 0 and "log.retention.hourz" in err
    missing = tmp_path / "no-such.properties"
    code, err = start_fails(tmp_path, config=missing)
    assert code != 0 and str(missing) in err


def test_properties_file_and_ignored_kafka_keys(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# a Kafka-style file\nnum.partitions=3\nnum.network.threads=3\n")
    p = subprocess.Popen([STROM_BIN, "server", "--config", str(props), "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=", "--override", f"log.dirs={tmp_path}/f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "bootstrap.servers=" in line, line
        bootstrap = line.split("bootstrap.servers=")[1].split()[0]
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics("auto3", timeout=10)
        assert len(md.topics["auto3"].partitions) == 3
    finally:
        p.kill()
        p.wait()
        err = p.stderr.read()
    assert err.count("num.network.threads") == 1  # logged once as accepted-but-inert


def test_override_beats_properties_file(tmp_path):
    """A properties file with comments and spaces around '=' sets listeners, log.dirs and
    num.partitions; --override beats the file."""
    props = tmp_path / "server.properties"
    props.write_text("# a comment\n! another comment style\n"
                     f"log.dirs = {tmp_path}/file-dir\nnum.partitions=3\nlisteners=PLAINTEXT://127.0.0.1:0\n")
    p = subprocess.Popen([STROM_BIN, "server", "--config", str(props), "--override", "num.partitions=2",
                          "--override", "http.listeners=", "--override", f"log.dirs={tmp_path}/override-dir"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        assert "bootstrap.servers=127.0.0.1:" in line, line
        bootstrap = line.split("bootstrap.servers=")[1].split()[0]
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics("auto-two", timeout=10)
        assert sorted(md.topics["auto-two"].partitions) == [0, 1]
    finally:
        p.kill()
        p.wait()
    assert os.path.isdir(tmp_path / "override-dir" / "auto-two-0")
    assert not os.path.exists(tmp_path / "file-dir")


def test_incremental_and_broker_configs(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("cfg", 1, 1)])["cfg"].result(10)
    res = ConfigResource("topic", "cfg", incremental_configs=[
        ConfigEntry("retention.ms", "12345", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    got = a.describe_configs([ConfigResource("topic", "cfg")])
    assert list(got.values())[0].result(10)["retention.ms"].value == "12345"
    res = ConfigResource("topic", "cfg", incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(10)
    got = a.describe_configs([ConfigResource("topic", "cfg")])
    assert list(got.values())[0].result(10)["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    bad = ConfigResource("topic", "cfg", incremental_configs=[
        ConfigEntry("retention.mss", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception) as e:
        a.incremental_alter_configs([bad])[bad].result(10)
    assert "INVALID_CONFIG" in str(e.value) or "retention.mss" in str(e.value)
    brk = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([brk])[brk].result(10)
    got = a.describe_configs([ConfigResource("broker", "1")])
    assert list(got.values())[0].result(10)["log.retention.ms"].value == "600000"
    # The topic default follows the dynamic broker default.
    got = a.describe_configs([ConfigResource("topic", "cfg")])
    assert list(got.values())[0].result(10)["retention.ms"].value == "600000"


def describe(a, rtype, name):
    return list(a.describe_configs([ConfigResource(rtype, name)]).values())[0].result(10)


def incremental(a, rtype, name, *ops):
    """ops: (key, value, AlterConfigOpType). None on success, else the KafkaError code."""
    res = ConfigResource(rtype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops])
    try:
        a.incremental_alter_configs([res])[res].result(10)
        return None
    except KafkaException as e:
        return e.args[0].code()


def create(a, *topics, validate_only=False):
    """{name: None or the KafkaError code}."""
    out = {}
    for name, fut in a.create_topics(list(topics), validate_only=validate_only).items():
        try:
            fut.result(10)
            out[name] = None
        except KafkaException as e:
            out[name] = e.args[0].code()
    return out


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_incremental_alter_configs_change_only_the_keys_named(broker):
    """SET and DELETE leave every other topic key alone, DescribeConfigs reports where each value
    comes from, and a change takes effect on the next produce; APPEND and SUBTRACT edit list keys
    (cleanup.policy), starting from the default when unset; APPEND/SUBTRACT on a scalar key are
    refused; kafka-python's incremental=True works."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert create(a, NewTopic("inc", 1, 1, config={"segment.ms": "3600000", "cleanup.policy": "delete"})) == {"inc": None}
    got = describe(a, "topic", "inc")
    assert got["retention.ms"].is_default and got["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert incremental(a, "topic", "inc", ("retention.ms", "12345", AlterConfigOpType.SET),
                       ("max.message.bytes", "500", AlterConfigOpType.SET)) is None
    got = describe(a, "topic", "inc")
    assert got["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and not got["retention.ms"].is_default
    assert (got["retention.ms"].value, got["max.message.bytes"].value, got["segment.ms"].value) == ("12345", "500", "3600000")
    assert incremental(a, "topic", "inc", ("retention.ms", None, AlterConfigOpType.DELETE)) is None
    got = describe(a, "topic", "inc")
    assert got["retention.ms"].value == WEEK_MS and got["retention.ms"].is_default
    assert (got["max.message.bytes"].value, got["segment.ms"].value) == ("500", "3600000")
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "message.max.bytes": 1_000_000})
    p.produce("inc", value=b"x" * 2000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert [e.code() for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE], "max.message.bytes=500 takes effect"
    assert watermarks(broker.bootstrap, "inc") == (0, 0)

    assert incremental(a, "topic", "inc", ("cleanup.policy", "compact", AlterConfigOpType.APPEND)) is None
    assert describe(a, "topic", "inc")["cleanup.policy"].value == "delete,compact"
    assert incremental(a, "topic", "inc", ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)) is None
    assert describe(a, "topic", "inc")["cleanup.policy"].value == "compact"
    # As in Kafka, APPEND to a list key the topic does not set starts from the default.
    assert create(a, NewTopic("inc-default", 1, 1)) == {"inc-default": None}
    assert incremental(a, "topic", "inc-default", ("cleanup.policy", "compact", AlterConfigOpType.APPEND)) is None
    assert describe(a, "topic", "inc-default")["cleanup.policy"].value == "delete,compact"
    # APPEND/SUBTRACT on a scalar key are refused, whether the topic sets it or not.
    for topic, key, value, op in [("inc", "segment.ms", "5", AlterConfigOpType.APPEND),
                                  ("inc", "segment.ms", "3600000", AlterConfigOpType.SUBTRACT),
                                  ("inc-default", "retention.ms", "5", AlterConfigOpType.APPEND)]:
        assert incremental(a, "topic", topic, (key, value, op)) in (KafkaError.INVALID_REQUEST, KafkaError.INVALID_CONFIG), (op, key)
    assert describe(a, "topic", "inc")["segment.ms"].value == "3600000"
    assert describe(a, "topic", "inc-default")["retention.ms"].value == WEEK_MS

    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "inc", configs={"retention.bytes": "99999"})], incremental=True)
    k.close()
    got = describe(a, "topic", "inc")
    assert (got["retention.bytes"].value, got["segment.ms"].value) == ("99999", "3600000")


def test_invalid_config_changes_are_refused_whole(broker):
    """Unknown keys, bad values and bad enum values are INVALID_CONFIG through
    IncrementalAlterConfigs, AlterConfigs and CreateTopics, on topics and the broker; a good
    change next to a bad one is not applied either; an unknown topic is UNKNOWN_TOPIC_OR_PART."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert create(a, NewTopic("inv", 1, 1)) == {"inv": None}
    for key, value in [("retention.ms", "abc"), ("cleanup.policy", "shred")]:
        assert incremental(a, "topic", "inv", (key, value, AlterConfigOpType.SET)) == KafkaError.INVALID_CONFIG, key
    assert incremental(a, "topic", "inv", ("retention.ms", "777", AlterConfigOpType.SET),
                       ("no.such.key", "1", AlterConfigOpType.SET)) == KafkaError.INVALID_CONFIG
    got = describe(a, "topic", "inv")
    assert got["retention.ms"].value == WEEK_MS and got["cleanup.policy"].value == "delete"
    res = ConfigResource("topic", "inv", set_config={"retention.mss": "1"})
    with pytest.raises(KafkaException) as e:
        list(a.alter_configs([res]).values())[0].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "retention.mss" not in describe(a, "topic", "inv")
    assert create(a, NewTopic("inv-created", 1, 1, config={"retention.mss": "1"})) == {"inv-created": KafkaError.INVALID_CONFIG}
    assert "inv-created" not in a.list_topics(timeout=10).topics
    assert incremental(a, "topic", "no-such-topic", ("retention.ms", "1", AlterConfigOpType.SET)) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    # The broker: unknown keys, keys that cannot change at runtime, bad values.
    for key, value in [("log.retension.ms", "1"), ("num.partitions", "4"), ("log.retention.ms", "abc")]:
        assert incremental(a, "broker", "1", (key, value, AlterConfigOpType.SET)) == KafkaError.INVALID_CONFIG, key
    got = describe(a, "broker", "1")
    assert got["num.partitions"].value == "1" and "log.retension.ms" not in got


def test_broker_configs_through_alter_configs_survive_restart(broker):
    """DescribeConfigs(BROKER) reports real values only (a key derived from another, such as
    log.retention.ms from log.retention.hours, is null until set). Legacy AlterConfigs on the
    broker resource sets a dynamic default that topics without their own value inherit (topics
    with one keep it); dynamic broker values survive a restart; DELETE returns to the static
    default."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    got = describe(a, "broker", "1")
    assert {k: v.value for k, v in got.items() if v.value and v.value.startswith("(")} == {}
    assert got["log.retention.ms"].value in (None, WEEK_MS)
    assert create(a, NewTopic("brk", 1, 1), NewTopic("brk-own", 1, 1, config={"retention.ms": "5000"})) == \
        {"brk": None, "brk-own": None}
    res = ConfigResource("broker", "1", set_config={"log.retention.ms": "3600000"})
    list(a.alter_configs([res]).values())[0].result(10)
    got = describe(a, "broker", "1")
    # Single broker: per-broker ("1") and cluster-default ("") values are stored alike.
    assert got["log.retention.ms"].value == "3600000"
    assert got["log.retention.ms"].source in (ConfigSource.DYNAMIC_BROKER_CONFIG.value,
                                              ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert describe(a, "topic", "brk")["retention.ms"].value == "3600000"
    assert describe(a, "topic", "brk-own")["retention.ms"].value == "5000"
    assert incremental(a, "broker", "1", ("message.max.bytes", "200000", AlterConfigOpType.SET)) is None
    broker.stop()
    broker.start()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    got = describe(a, "broker", "1")
    assert (got["log.retention.ms"].value, got["message.max.bytes"].value) == ("3600000", "200000")
    assert describe(a, "topic", "brk")["max.message.bytes"].value == "200000"
    assert incremental(a, "broker", "1", ("log.retention.ms", None, AlterConfigOpType.DELETE)) is None
    assert describe(a, "topic", "brk")["retention.ms"].value == WEEK_MS


def test_delete_records_and_describe_cluster(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce("dr", value=str(i).encode())
    assert p.flush(10) == 0
    fut = a.delete_records([TopicPartition("dr", 0, 40)])
    result = list(fut.values())[0].result(10)
    assert result.low_watermark == 40
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    assert c.get_watermark_offsets(TopicPartition("dr", 0), timeout=10) == (40, 100)
    c.close()
    cluster = a.describe_cluster().result(10)
    assert cluster.cluster_id and len(cluster.nodes) == 1 and cluster.controller.id == 1


def delete_records(a, topic, offset):
    """The new low watermark, or ("error", KafkaError code)."""
    fut = list(a.delete_records([TopicPartition(topic, 0, offset)]).values())[0]
    try:
        return fut.result(10).low_watermark
    except KafkaException as e:
        return ("error", e.args[0].code())


def first_from_beginning(bootstrap, topic):
    """(offset, value) of the first record a consumer gets starting at the low watermark that
    ListOffsets reports (what OFFSET_BEGINNING resolves to, without librdkafka's ~0.5 s reset)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fb", "enable.auto.commit": False})
    try:
        low, _ = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, low)])
        deadline = time.time() + 10
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                return m.offset(), m.value()
    finally:
        c.close()


def test_delete_records_edges_and_restart(broker):
    """After DeleteRecords both clients see the new low watermark (kafka-python's
    seek_to_beginning lands there) and reading starts with the record at it; an offset below it is
    a no-op reporting it; above the high watermark is OFFSET_OUT_OF_RANGE; -1 and the high
    watermark itself empty the log, which goes on at the same offsets; the low watermark survives
    a restart; kafka-python's delete_records works too."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(50):
        p.produce("dre", value=str(i).encode())
    assert p.flush(10) == 0
    assert delete_records(a, "dre", 20) == 20
    assert first_from_beginning(broker.bootstrap, "dre") == (20, b"20")
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = KTopicPartition("dre", 0)
    assert kc.beginning_offsets([tp])[tp] == 20
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    assert kc.position(tp) == 20
    kc.close()
    assert delete_records(a, "dre", 10) == 20
    assert delete_records(a, "dre", 51) == ("error", KafkaError.OFFSET_OUT_OF_RANGE)
    assert watermarks(broker.bootstrap, "dre") == (20, 50)
    broker.stop()
    broker.start()
    assert watermarks(broker.bootstrap, "dre") == (20, 50)
    assert first_from_beginning(broker.bootstrap, "dre") == (20, b"20")
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    k.delete_records({KTopicPartition("dre", 0): 30})
    k.close()
    assert watermarks(broker.bootstrap, "dre") == (30, 50)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert delete_records(a, "dre", -1) == 50
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("dre", value=b"after")
    assert p.flush(10) == 0
    assert watermarks(broker.bootstrap, "dre") == (50, 51)
    assert first_from_beginning(broker.bootstrap, "dre") == (50, b"after")
    assert delete_records(a, "dre", 51) == 51
    assert watermarks(broker.bootstrap, "dre") == (51, 51)


def test_cluster_id_is_stable_and_per_data_dir(broker_factory):
    """DescribeCluster names the one node at the bootstrap address, agrees with Metadata and with
    kafka-python, keeps its cluster id across a restart; another data dir has another id."""
    b = broker_factory()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    cluster = a.describe_cluster().result(10)
    host, port = b.bootstrap.rsplit(":", 1)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, host, int(port))]
    assert a.list_topics(timeout=10).cluster_id == cluster.cluster_id
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    kd = k.describe_cluster()
    k.close()
    assert kd["cluster_id"] == cluster.cluster_id
    assert [(n["broker_id"], n["host"], n["port"]) for n in kd["brokers"]] == [(1, host, int(port))]
    b.stop()
    b.start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    assert a.describe_cluster().result(10).cluster_id == cluster.cluster_id
    other = AdminClient({"bootstrap.servers": broker_factory().bootstrap})
    assert other.describe_cluster().result(10).cluster_id != cluster.cluster_id


def test_partition_count_errors_and_create_partitions_validate_only(broker):
    """CreateTopics with 0 partitions and CreatePartitions to fewer or the same number are
    INVALID_PARTITIONS, an unknown topic UNKNOWN_TOPIC_OR_PART; validate_only grows nothing; the
    partitions a real CreatePartitions adds take records."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert create(a, NewTopic("zero-parts", 0, 1)) == {"zero-parts": KafkaError.INVALID_PARTITIONS}
    assert create(a, NewTopic("cp", 3, 1)) == {"cp": None}

    def grow(topic, total, validate_only=False):
        fut = a.create_partitions([NewPartitions(topic, total)], validate_only=validate_only)[topic]
        try:
            fut.result(10)
            return None
        except KafkaException as e:
            return e.args[0].code()

    assert grow("cp", 2) == KafkaError.INVALID_PARTITIONS
    assert grow("cp", 3) == KafkaError.INVALID_PARTITIONS
    assert grow("no-such", 5) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert grow("cp", 6, validate_only=True) is None
    assert len(a.list_topics("cp", timeout=10).topics["cp"].partitions) == 3
    assert grow("cp", 5) is None
    assert sorted(a.list_topics("cp", timeout=10).topics["cp"].partitions) == [0, 1, 2, 3, 4]
    assert "zero-parts" not in a.list_topics(timeout=10).topics
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("cp", value=b"to-4", partition=4)
    assert p.flush(10) == 0
    assert watermarks(broker.bootstrap, "cp", 4) == (0, 1)


def segments(broker, topic):
    """[(base offset, size in bytes)] of the .log files of partition 0, oldest first."""
    d = os.path.join(broker.data_dir, f"{topic}-0")
    for _ in range(10):
        try:
            return sorted((int(f[:-4]), os.path.getsize(os.path.join(d, f))) for f in os.listdir(d) if f.endswith(".log"))
        except FileNotFoundError:
            continue  # retention deleted a segment between listdir and getsize
    raise AssertionError(f"segments of {d} kept vanishing")


def wait_until(predicate, timeout=15):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.05)
    return predicate()


def size_settled(broker, topic, retention_bytes):
    """Size retention's fixed point: dropping the oldest segment would go below retention.bytes
    (retention may run while records still arrive, so it can take a few passes)."""
    segs = segments(broker, topic)
    return len(segs) == 1 or sum(n for _, n in segs) - segs[0][1] < retention_bytes


def produce_one_batch_each(bootstrap, topic, values, timestamps=None):
    """One record per batch, so small segments fill and roll; returns the acknowledged offsets."""
    offsets = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i, v in enumerate(values):
        kw = {"timestamp": timestamps[i]} if timestamps else {}
        p.produce(topic, value=v, on_delivery=lambda err, msg: offsets.append(None if err else msg.offset()), **kw)
        p.flush(10)
    assert p.flush(10) == 0
    return offsets


def test_time_and_size_retention(broker_factory):
    """Time retention deletes every segment once all records are older than retention.ms, the
    active one too (rolled, leaving an empty segment at the log end, where producing goes on).
    Size retention stops where deleting one more segment would leave less than retention.bytes;
    consumers from the beginning start at the new low watermark, and it survives a restart."""
    b = broker_factory(["log.retention.check.interval.ms=200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = a.create_topics([NewTopic("ret-time", 1, 1, config={"segment.bytes": "2000", "retention.ms": "1000"}),
                               NewTopic("ret-size", 1, 1, config={"segment.bytes": "1000", "retention.bytes": "5000"})])
    for f in futures.values():
        f.result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(200):
        p.produce("ret-time", value=b"x" * 50)
        p.produce("ret-size", value=f"{i:03d}".encode() + b"y" * 47)
        p.flush(10)  # one batch per record, so segments fill and roll
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    deadline = time.time() + 20
    while time.time() < deadline:
        lo_t, hi_t = c.get_watermark_offsets(TopicPartition("ret-time", 0), timeout=10)
        lo_s, hi_s = c.get_watermark_offsets(TopicPartition("ret-size", 0), timeout=10)
        if lo_t == 200 and lo_s > 0 and size_settled(b, "ret-size", 5000):
            break
        time.sleep(0.2)
    c.close()
    assert hi_t == 200 and hi_s == 200, "retention never moves the end of the log"
    assert lo_t == 200, f"time retention left offsets {lo_t}..200"
    assert segments(b, "ret-time") == [(200, 0)]
    assert produce_one_batch_each(b.bootstrap, "ret-time", [b"after"]) == [200]
    assert lo_s > 0, "size retention deleted nothing"
    segs = segments(b, "ret-size")
    total = sum(n for _, n in segs)
    assert 5000 <= total < 5000 + 1000, f"size retention left {total} bytes in {segs}"
    assert all(n <= 1000 for _, n in segs), f"a segment grew past segment.bytes: {segs}"
    lo_s, _ = watermarks(b.bootstrap, "ret-size")
    assert segs[0][0] == lo_s
    assert first_from_beginning(b.bootstrap, "ret-size") == (lo_s, f"{lo_s:03d}".encode() + b"y" * 47)
    b.stop()
    b.start()
    assert watermarks(b.bootstrap, "ret-size") == (lo_s, 200)


RETAINED = [f"r{i:03d}-".encode() + b"x" * 40 for i in range(100)]  # ~110-byte batches


def test_time_retention_keeps_segments_holding_newer_records(broker_factory):
    """Time retention goes by the newest record of a segment: segments of only expired records go,
    the one holding the first unexpired record and all after it stay, and later passes delete
    nothing more."""
    b = broker_factory(["log.retention.check.interval.ms=200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("ret-mixed", 1, 1, config={"segment.bytes": "2000", "retention.ms": "1000"})])["ret-mixed"].result(10)
    now = int(time.time() * 1000)
    # 70 records stamped an hour ago (expired at once), then 30 stamped a minute ahead (kept).
    stamps = [now - 3_600_000] * 70 + [now + 60_000] * 30
    assert produce_one_batch_each(b.bootstrap, "ret-mixed", RETAINED, stamps) == list(range(100))

    def settled():
        segs = segments(b, "ret-mixed")
        return segs[0][0] > 70 or segs[0][0] > 0 and (len(segs) == 1 or segs[1][0] > 70)

    assert wait_until(settled), segments(b, "ret-mixed")
    segs = segments(b, "ret-mixed")
    lo = segs[0][0]
    assert 0 < lo <= 70, f"a segment holding records newer than retention.ms was deleted: {segs}"
    assert len(segs) >= 2, "30 records of ~110 bytes in 2000-byte segments span more than one"
    assert watermarks(b.bootstrap, "ret-mixed") == (lo, 100)
    time.sleep(0.4)  # two more retention passes
    assert segments(b, "ret-mixed")[0][0] == lo and watermarks(b.bootstrap, "ret-mixed") == (lo, 100)
    assert first_from_beginning(b.bootstrap, "ret-mixed") == (lo, RETAINED[lo])


def test_retention_follows_config_changes(broker_factory):
    """With the default retention nothing is deleted however many segments roll; lowering
    retention.bytes, then retention.ms, on the live topic deletes down to them."""
    b = broker_factory(["log.retention.check.interval.ms=200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("ret-dyn", 1, 1, config={"segment.bytes": "1000"})])["ret-dyn"].result(10)
    assert produce_one_batch_each(b.bootstrap, "ret-dyn", RETAINED) == list(range(100))
    segs = segments(b, "ret-dyn")
    assert len(segs) >= 8 and segs[0][0] == 0, segs
    time.sleep(0.4)  # two retention passes
    assert watermarks(b.bootstrap, "ret-dyn") == (0, 100) and segments(b, "ret-dyn")[0][0] == 0

    assert incremental(a, "topic", "ret-dyn", ("retention.bytes", "3000", AlterConfigOpType.SET)) is None
    assert wait_until(lambda: segments(b, "ret-dyn")[0][0] > 0 and size_settled(b, "ret-dyn", 3000)), segments(b, "ret-dyn")
    remaining = segments(b, "ret-dyn")
    assert 3000 <= sum(n for _, n in remaining) < 4000, remaining
    assert watermarks(b.bootstrap, "ret-dyn") == (remaining[0][0], 100)
    assert incremental(a, "topic", "ret-dyn", ("retention.ms", "1000", AlterConfigOpType.SET)) is None
    assert wait_until(lambda: watermarks(b.bootstrap, "ret-dyn") == (100, 100)), segments(b, "ret-dyn")
    assert segments(b, "ret-dyn") == [(100, 0)]
