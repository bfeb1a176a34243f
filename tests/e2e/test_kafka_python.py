"""kafka-python (pure Python client) against a real strom broker."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError


def consume_all(bootstrap, topic, expected, **kw):
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, group_id=None, consumer_timeout_ms=10000, **kw)
    c.subscribe([topic])
    out = []
    for m in c:
        out.append(m)
        if len(out) >= expected:
            break
    c.close()
    return out


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_every_codec(broker, codec):
    topic = f"kp-{codec or 'none'}"
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=5)
    futures = [p.send(topic, key=(f"k{i % 7}".encode() if i % 2 else None), value=f"value-{i}".encode())
               for i in range(500)]
    p.flush()
    offsets = [f.get(timeout=10).offset for f in futures]
    assert sorted(offsets) == list(range(500))
    p.close()
    got = consume_all(broker.bootstrap, topic, 500)
    assert [m.value for m in got] == [f"value-{i}".encode() for i in range(500)]
    assert [m.offset for m in got] == list(range(500))
    assert got[1].key == b"k1" and got[0].key is None


def test_consume_from_given_offset(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(50):
        p.send("kp-seek", value=str(i).encode())
    p.flush()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, consumer_timeout_ms=10000)
    tp = TopicPartition("kp-seek", 0)
    c.assign([tp])
    c.seek(tp, 42)
    vals = [int(m.value) for _, m in zip(range(8), c)]
    assert vals == list(range(42, 50))
    c.close()


def test_offsets_for_times_and_ends(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    base = int(time.time() * 1000) - 100_000
    for i in range(10):
        p.send("kp-times", value=b"x", timestamp_ms=base + i * 1000)
    p.flush()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = TopicPartition("kp-times", 0)
    found = c.offsets_for_times({tp: base + 4500})[tp]
    assert found.offset == 5 and found.timestamp == base + 5000
    assert c.offsets_for_times({tp: base + 999_999})[tp] is None
    assert c.beginning_offsets([tp])[tp] == 0
    assert c.end_offsets([tp])[tp] == 10
    c.close()


def test_admin_create_describe_alter_delete(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    a.create_topics([NewTopic("kp-admin", 3, 1, topic_configs={"retention.ms": "60000"})])
    with pytest.raises(TopicAlreadyExistsError):
        a.create_topics([NewTopic("kp-admin", 3, 1)])
    assert "kp-admin" in a.list_topics()
    desc = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin")])
    text = repr(desc)
    assert "retention.ms" in text and "60000" in text
    a.create_partitions({"kp-admin": NewPartitions(5)})
    meta = a.describe_topics(["kp-admin"])
    assert len(meta[0]["partitions"]) == 5
    a.delete_topics(["kp-admin"])
    deadline = time.time() + 10
    while "kp-admin" in a.list_topics() and time.time() < deadline:
        time.sleep(0.2)
    assert "kp-admin" not in a.list_topics()
    a.close()


def test_idempotent_producer(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    futures = [p.send("kp-idem", value=str(i).encode()) for i in range(200)]
    p.flush()
    assert sorted(f.get(timeout=10).offset for f in futures) == list(range(200))
    p.close()
    got = consume_all(broker.bootstrap, "kp-idem", 200)
    assert [int(m.value) for m in got] == list(range(200))


def test_data_survives_clean_restart(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(100):
        p.send("kp-restart", value=str(i).encode())
    p.flush()
    p.close()
    assert broker.stop() == 0
    broker.start()
    # A clean stop marks every log clean: the restart trusts it and does not scan.
    assert broker.wait_for_log("clean=true"), broker.log_since_start()
    assert "clean=false" not in broker.log_since_start() and "truncating" not in broker.log_since_start()
    got = consume_all(broker.bootstrap, "kp-restart", 100)
    assert [int(m.value) for m in got] == list(range(100))
    # and it keeps accepting writes after the restart, at the right offsets
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.send("kp-restart", value=b"after").get(timeout=10).offset == 100
    p.close()


def test_sigkill_mid_produce_keeps_every_acked_record(broker):
    """kafka-python's view of a crash: every acknowledged send is readable after restart."""
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=2, retries=0,
                      request_timeout_ms=3000, max_block_ms=3000)
    acked = []
    futures = []
    for i in range(30000):
        f = p.send("kp-crash", value=f"r{i}".encode())
        futures.append((i, f))
        if i == 15000:
            # Make sure a good share is acknowledged, then crash the broker under load.
            for _, g in futures[:10000]:
                g.get(timeout=10)
            broker.kill()
            break
    for i, f in futures:
        try:
            acked.append((f.get(timeout=10).offset, f"r{i}".encode()))
        except Exception:
            pass
    p.close(timeout=5)
    assert len(acked) >= 10000
    broker.start()
    assert broker.wait_for_log("clean=false"), "a crashed broker must recover its logs"
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = TopicPartition("kp-crash", 0)
    high = c.end_offsets([tp])[tp]
    c.close()
    got = {m.offset: m.value for m in consume_all(broker.bootstrap, "kp-crash", high)}
    lost = [o for o, v in acked if got.get(o) != v]
    print(f"acked {len(acked)}, stored after restart {high}, lost {len(lost)}")
    assert not lost
    assert sorted(got) == list(range(high))
