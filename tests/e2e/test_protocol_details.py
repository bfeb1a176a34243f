"""Protocol details from the broker-core issue that the client suites do not otherwise touch."""
import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic as KNewTopic


def read_all(bootstrap, topic, n, timeout=10):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out


def test_acks_zero_gets_no_response_but_is_stored(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=0)
    for i in range(100):
        p.send("acks0", value=str(i).encode())
    p.flush()
    p.close()
    got = read_all(broker.bootstrap, "acks0", 100)
    assert [int(m.value()) for m in got] == list(range(100))


def test_null_keys_with_confluent(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("nokeys", value=str(i).encode())
    assert p.flush(10) == 0
    got = read_all(broker.bootstrap, "nokeys", 10)
    assert [m.key() for m in got] == [None] * 10


def test_validate_only_creates_nothing(broker):
    """CreateTopics with validate_only creates nothing, in Metadata or on disk, yet validates:
    a bad config and an existing name are refused as they would be for real."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("dry", 2, 1, config={"retention.ms": "1000"})], validate_only=True)["dry"].result(10)
    assert "dry" not in a.list_topics(timeout=10).topics
    assert not any(d.startswith("dry") for d in os.listdir(broker.data_dir))
    a.create_topics([NewTopic("exists", 1, 1)])["exists"].result(10)
    for topic, code in [(NewTopic("dry-bad", 1, 1, config={"retention.mss": "1"}), KafkaError.INVALID_CONFIG),
                        (NewTopic("exists", 1, 1), KafkaError.TOPIC_ALREADY_EXISTS)]:
        with pytest.raises(KafkaException) as e:
            a.create_topics([topic], validate_only=True)[topic.topic].result(10)
        assert e.value.args[0].code() == code, topic.topic
    assert "dry-bad" not in a.list_topics(timeout=10).topics


def test_legacy_alter_configs_replace_the_whole_set(broker):
    from confluent_kafka.admin import ConfigResource as CResource
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("legacy", 1, 1, config={"retention.bytes": "123456"})])["legacy"].result(10)
    res = CResource("topic", "legacy", set_config={"segment.ms": "3600000"})
    list(a.alter_configs([res]).values())[0].result(10)
    configs = list(a.describe_configs([CResource("topic", "legacy")]).values())[0].result(10)
    assert configs["segment.ms"].value == "3600000"
    # AlterConfigs (unlike IncrementalAlterConfigs) resets every key it does not name.
    assert configs["retention.bytes"].value == "-1"
    # kafka-python knows this and re-sends the other keys it set: the set survives there.
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    k.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "legacy", configs={"retention.ms": "7200000"})], incremental=False)
    text = repr(k.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "legacy")]))
    assert "7200000" in text and "3600000" in text
    k.close()


def test_log_append_time(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("lat", 1, 1, config={"message.timestamp.type": "LogAppendTime"})])["lat"].result(10)
    before = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("lat", value=b"x", timestamp=1000)  # the producer's timestamp is replaced
    assert p.flush(10) == 0
    (m,) = read_all(broker.bootstrap, "lat", 1)
    ts_type, ts = m.timestamp()
    assert ts_type == 2  # TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= int(time.time() * 1000) + 1000


def test_max_timestamp_lookup(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    base = int(time.time() * 1000) - 10_000
    for i, dt in enumerate([5, 9, 1, 7]):
        p.send("maxts", value=str(i).encode(), timestamp_ms=base + dt * 100)
        p.flush()
    p.close()
    # ListOffsets with timestamp -3 (MAX_TIMESTAMP, KIP-734) through confluent's admin client.
    from confluent_kafka.admin import OffsetSpec
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futs = a.list_offsets({TopicPartition("maxts", 0): OffsetSpec.max_timestamp()})
    info = list(futs.values())[0].result(10)
    assert (info.offset, info.timestamp) == (1, base + 900)
    futs = a.list_offsets({TopicPartition("maxts", 0): OffsetSpec.earliest()})
    assert list(futs.values())[0].result(10).offset == 0


def test_describe_configs_with_an_empty_key_list_returns_every_config(broker):
    """Kafka's ConfigHelper reads an empty configuration_keys list as it reads a null one: every
    config of the resource (kafka-protocol's default for the field is the empty list)."""
    import struct
    import wire
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("dc-empty", 1, 1)])["dc-empty"].result(15)

    def count(keys):
        # DescribeConfigs v1: one TOPIC (2) resource; keys None (null), [] or a list.
        key_bytes = struct.pack(">i", -1) if keys is None else struct.pack(">i", len(keys)) + b"".join(wire.kstr(k) for k in keys)
        body = struct.pack(">i", 1) + struct.pack(">b", 2) + wire.kstr("dc-empty") + key_bytes + struct.pack(">b", 0)
        r = wire.exchange(broker.bootstrap, wire.frame(32, 1, body))
        assert r is not None
        pos = 4 + 4 + 4  # correlation id, throttle, results count
        code, mlen = struct.unpack_from(">hh", r, pos)
        assert code == 0
        pos += 4 + max(mlen, 0) + 1
        (nlen,) = struct.unpack_from(">h", r, pos)
        (n,) = struct.unpack_from(">i", r, pos + 2 + nlen)
        return n

    every = count(None)
    assert every > 10, every
    assert count([]) == every
    assert count(["cleanup.policy", "retention.ms"]) == 2
