"""A topic's `compression.type` (and the broker's), as Kafka applies it: `producer`, the
default, stores every batch in the codec its producer chose; any codec stores every batch in
that one, recompressed on the leader before the write. Checked in the log files themselves (each
batch's attributes), with the records read back by confluent-kafka and kafka-python."""
import glob
import os
import struct

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import KafkaConsumer, TopicPartition

CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 300


def create(bootstrap, topic, **config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(15)


def produce(bootstrap, topic, codec, start, n=N):
    """`n` keyed records with headers in batches of the producer's `codec` (librdkafka's name)."""
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20})
    for i in range(start, start + n):
        p.produce(topic, value=b"value-%d-" % i + b"x" * 200, key=b"key-%d" % i, headers=[("h", b"%d" % i)])
    assert p.flush(30) == 0


def stored_codecs(broker, topic):
    """The codec of every batch in the partition's log files, in offset order."""
    codecs = []
    for path in sorted(glob.glob(os.path.join(broker.data_dir, f"{topic}-0", "*.log"))):
        data = open(path, "rb").read()
        pos = 0
        while pos + 61 <= len(data):
            length = struct.unpack_from(">i", data, pos + 8)[0]
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            codecs.append(attributes & 7)
            pos += 12 + length
    return codecs


def read_back(bootstrap, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    while len(got) < n:
        m = c.poll(15)
        assert m is not None, f"got {len(got)} of {n}"
        assert m.error() is None, m.error()
        got.append(m)
    c.close()
    assert [m.offset() for m in got] == list(range(n))
    assert [m.key() for m in got] == [b"key-%d" % i for i in range(n)]
    assert [m.value() for m in got] == [b"value-%d-" % i + b"x" * 200 for i in range(n)]
    assert [m.headers() for m in got] == [[("h", b"%d" % i)] for i in range(n)]


@pytest.mark.parametrize("target", list(CODECS))
def test_every_batch_is_stored_in_the_topics_codec(broker, target):
    topic = f"ct-{target}"
    create(broker.bootstrap, topic, **{"compression.type": target})
    # Batches that come in another codec and (for all but uncompressed) in the topic's own.
    produce(broker.bootstrap, topic, "none", 0)
    produce(broker.bootstrap, topic, "gzip" if target != "gzip" else "lz4", N)
    produce(broker.bootstrap, topic, "none" if target == "uncompressed" else target, 2 * N)
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {CODECS[target]}, codecs
    read_back(broker.bootstrap, topic, 3 * N)


def test_producer_keeps_each_batch_as_it_came(broker):
    create(broker.bootstrap, "ct-producer")
    produce(broker.bootstrap, "ct-producer", "gzip", 0)
    produce(broker.bootstrap, "ct-producer", "none", N)
    codecs = stored_codecs(broker, "ct-producer")
    assert codecs[0] == 1 and codecs[-1] == 0 and set(codecs) == {0, 1}, codecs
    read_back(broker.bootstrap, "ct-producer", 2 * N)


def test_the_broker_default_applies_a_topic_override_wins_and_both_change_at_run_time(broker_factory):
    b = broker_factory(overrides=["compression.type=gzip"])
    create(b.bootstrap, "ct-default")
    create(b.bootstrap, "ct-own", **{"compression.type": "producer"})
    for topic in ("ct-default", "ct-own"):
        produce(b.bootstrap, topic, "none", 0)
    assert set(stored_codecs(b, "ct-default")) == {1}
    assert set(stored_codecs(b, "ct-own")) == {0}

    # Altered on the topic (as kafka-configs.sh --alter --entity-type topics does): the next
    # batches follow, those written before stay as they are.
    res = ConfigResource(ConfigResource.Type.TOPIC, "ct-own",
                         incremental_configs=[ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    list(admin.incremental_alter_configs([res]).values())[0].result(15)
    produce(b.bootstrap, "ct-own", "none", N)
    codecs = stored_codecs(b, "ct-own")
    assert codecs[0] == 0 and codecs[-1] == 4 and set(codecs) == {0, 4}, codecs
    read_back(b.bootstrap, "ct-own", 2 * N)

    # kafka-python (its own decoders) reads the broker's gzip.
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    c.assign([TopicPartition("ct-default", 0)])
    values = [m.value for m in c]
    c.close()
    assert values == [b"value-%d-" % i + b"x" * 200 for i in range(N)]


def test_an_invalid_codec_is_refused(broker):
    with pytest.raises(KafkaException) as refused:
        create(broker.bootstrap, "ct-bad", **{"compression.type": "brotli"})
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "compression.type" in refused.value.args[0].str()
