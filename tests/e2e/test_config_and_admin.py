"""Startup configuration errors, and the admin APIs not covered elsewhere: incremental and
broker-level configs, DeleteRecords, DescribeCluster, retention."""
import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from conftest import STROM_BIN


def start_fails(tmp_path, *overrides):
    args = [STROM_BIN, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
            "--override", f"log.dirs={tmp_path}/d"]
    for o in overrides:
        args += ["--override", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def test_unknown_or_bad_config_is_a_startup_error_naming_the_key(tmp_path):
    code, err = start_fails(tmp_path, "log.retension.ms=5")
    assert code != 0 and "log.retension.ms" in err
    code, err = start_fails(tmp_path, "num.partitions=abc")
    assert code != 0 and "num.partitions" in err


def test_properties_file_and_ignored_kafka_keys(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# a Kafka-style file\nnum.partitions=3\nnum.network.threads=3\n")
    p = subprocess.Popen([STROM_BIN, "server", "--config", str(props), "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", f"log.dirs={tmp_path}/f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    assert "num.network.threads" in err  # logged once as accepted-but-inert


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


def test_time_and_size_retention(broker_factory):
    b = broker_factory(["log.retention.check.interval.ms=200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = a.create_topics([NewTopic("ret-time", 1, 1, config={"segment.bytes": "2000", "retention.ms": "1000"}),
                               NewTopic("ret-size", 1, 1, config={"segment.bytes": "1000", "retention.bytes": "5000"})])
    for f in futures.values():
        f.result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(200):
        p.produce("ret-time", value=b"x" * 50)
        p.produce("ret-size", value=b"y" * 50)
        p.flush(10)  # one batch per record, so segments fill and roll
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    deadline = time.time() + 20
    while time.time() < deadline:
        lo_t, hi_t = c.get_watermark_offsets(TopicPartition("ret-time", 0), timeout=10)
        lo_s, hi_s = c.get_watermark_offsets(TopicPartition("ret-size", 0), timeout=10)
        if lo_t > 0 and lo_s > 0:
            break
        time.sleep(0.2)
    c.close()
    assert hi_t == 200 and hi_s == 200, "retention never moves the end of the log"
    assert lo_t > 0, "time retention deleted nothing"
    assert lo_s > 0, "size retention deleted nothing"
    seg_dir = os.path.join(b.data_dir, "ret-size-0")
    logs = [f for f in os.listdir(seg_dir) if f.endswith(".log")]
    total = sum(os.path.getsize(os.path.join(seg_dir, f)) for f in logs)
    assert total <= 5000 + 1000, f"size retention left {total} bytes in {len(logs)} segments"
