"""confluent-kafka (librdkafka) against a real strom broker."""
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource


def produce(bootstrap, topic, n, **conf):
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or (msg.partition(), msg.offset(), msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    for i in range(n):
        p.produce(topic, key=f"key-{i % 13}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery,
                  headers=[("h", str(i).encode())])
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    return acked


def consume(bootstrap, topic, n, partitions=1, start=OFFSET_BEGINNING, timeout=20):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-manual-assign",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_every_codec(broker, codec):
    topic = f"ck-{codec}"
    acked = produce(broker.bootstrap, topic, 2000, **{"compression.type": codec})
    assert sorted(o for _, o, _ in acked) == list(range(2000))
    got = consume(broker.bootstrap, topic, 2000)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(2000)]
    assert got[5].key() == b"key-5"
    assert got[7].headers() == [("h", b"7")]


def test_keys_spread_over_partitions_and_keep_order(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("ck-parts", num_partitions=4, replication_factor=1)])["ck-parts"].result(10)
    produce(broker.bootstrap, "ck-parts", 4000)
    got = consume(broker.bootstrap, "ck-parts", 4000, partitions=4)
    assert len(got) == 4000
    per_key = {}
    for m in got:
        per_key.setdefault(m.key(), set()).add(m.partition())
        assert m.offset() >= 0
    assert all(len(p) == 1 for p in per_key.values()), "a key must map to exactly one partition"
    assert len({m.partition() for m in got}) > 1
    for part in range(4):
        offs = [m.offset() for m in got if m.partition() == part]
        assert offs == sorted(offs)


def test_idempotent_producer(broker):
    acked = produce(broker.bootstrap, "ck-idem", 5000, **{"enable.idempotence": True, "acks": "all"})
    assert sorted(o for _, o, _ in acked) == list(range(5000))
    got = consume(broker.bootstrap, "ck-idem", 5000)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(5000)]


def test_admin_topics_and_configs(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("ck-admin", 2, 1, config={"segment.bytes": "1048576"})])["ck-admin"].result(10)
    fut = a.create_topics([NewTopic("ck-admin", 2, 1)])["ck-admin"]
    with pytest.raises(KafkaException) as e:
        fut.result(10)
    assert "TOPIC_ALREADY_EXISTS" in str(e.value)
    bad = a.create_topics([NewTopic("bad name!", 1, 1)])["bad name!"]
    with pytest.raises(KafkaException) as e:
        bad.result(10)
    assert "INVALID_TOPIC" in str(e.value) or "TOPIC_EXCEPTION" in str(e.value)
    rf = a.create_topics([NewTopic("ck-rf", 1, 3)])["ck-rf"]
    with pytest.raises(KafkaException) as e:
        rf.result(10)
    assert "REPLICATION_FACTOR" in str(e.value)
    res = ConfigResource("topic", "ck-admin")
    configs = a.describe_configs([res])[res].result(10)
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    a.create_partitions([NewPartitions("ck-admin", 3)])["ck-admin"].result(10)
    md = a.list_topics(timeout=10)
    assert len(md.topics["ck-admin"].partitions) == 3
    a.delete_topics(["ck-admin"])["ck-admin"].result(10)
    assert "ck-admin" not in a.list_topics(timeout=10).topics


def test_sigkill_mid_produce_keeps_every_acked_record(broker):
    """Every record acknowledged before a SIGKILL is there after restart; nothing half-visible."""
    acked = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2, "acks": "all",
                  "message.timeout.ms": 3000, "retries": 0})
    killed = False
    for i in range(200_000):
        try:
            p.produce("ck-crash", value=f"r{i}".encode(),
                      on_delivery=lambda err, m: (not err) and acked.append((m.offset(), m.value())))
        except BufferError:
            p.poll(0.01)
        if i % 500 == 0:
            p.poll(0)
        if not killed and len(acked) > 20_000:
            broker.kill()
            killed = True
            break
    p.flush(10)
    assert killed
    broker.start()
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    low, high = c.get_watermark_offsets(TopicPartition("ck-crash", 0), timeout=10)
    c.close()
    assert low == 0 and high >= len(acked)
    got = consume(broker.bootstrap, "ck-crash", high, timeout=60)
    stored = {m.offset(): m.value() for m in got}
    missing = [o for o, v in acked if stored.get(o) != v]
    print(f"acked {len(acked)}, stored after restart {high}, lost {len(missing)}")
    assert not missing, f"{len(missing)} acknowledged records lost or changed"
    offs = sorted(stored)
    assert offs == list(range(len(offs))), "offsets after recovery must be contiguous"


def test_offsets_for_times(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    base = int(time.time() * 1000) - 50_000
    for i in range(20):
        p.produce("ck-times", value=b"x", timestamp=base + i * 1000)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    found = c.offsets_for_times([TopicPartition("ck-times", 0, base + 7500)], timeout=10)
    assert found[0].offset == 8
    none = c.offsets_for_times([TopicPartition("ck-times", 0, base + 10_000_000)], timeout=10)
    assert none[0].offset == -1  # OFFSET_END: no record that late
    assert c.get_watermark_offsets(TopicPartition("ck-times", 0), timeout=10) == (0, 20)
    c.close()


def test_consume_from_given_offset(broker):
    produce(broker.bootstrap, "ck-seek", 300)
    got = consume(broker.bootstrap, "ck-seek", 50, start=250)
    assert [m.offset() for m in got] == list(range(250, 300))
    assert got[0].value() == b"v250"
