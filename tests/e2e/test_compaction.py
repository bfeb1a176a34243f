"""Log compaction with a real client: the latest value per key survives at its original offset,
tombstones go after delete.retention.ms, and all of it holds across a restart."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic


def read_all(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.time() + 10
    while (not out or out[-1].offset() < high - 1) and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out, high


def test_compaction_keeps_latest_per_key_across_restart(broker_factory):
    b = broker_factory(["log.cleaner.backoff.ms=200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("compacted", 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "1000", "delete.retention.ms": "0"})])["compacted"].result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    latest = {}
    offset = 0
    p.produce("compacted", key=b"gone", value=b"soon deleted")
    p.produce("compacted", key=b"gone", value=None)  # tombstone
    p.flush(10)
    offset = 2
    for rnd in range(20):
        for k in range(10):
            key = f"k{k}".encode()
            p.produce("compacted", key=key, value=f"{k}-{rnd}".encode())
            p.flush(10)  # one batch per record: segments fill and roll
            latest[key] = (offset, f"{k}-{rnd}".encode())
            offset += 1
    deadline = time.time() + 20
    while time.time() < deadline:
        got, high = read_all(b.bootstrap, "compacted")
        if len(got) < 100 and not any(m.key() == b"gone" for m in got):
            break
        time.sleep(0.3)
    assert high == 202, "compaction never moves the end of the log"
    assert len(got) < 100, f"the cleaner left {len(got)} of 202 records"
    assert not any(m.key() == b"gone" for m in got), "the tombstone and the value it deletes must be gone"
    offsets = [m.offset() for m in got]
    assert offsets == sorted(offsets), "order is kept"
    for key, (off, value) in latest.items():
        assert (off, value) in [(m.offset(), m.value()) for m in got if m.key() == key], f"latest {key} lost"
    # The cleaner may still be installing the rest of its pass: wait until two reads agree.
    before = [(m.offset(), m.key(), m.value()) for m in got]
    deadline = time.time() + 10
    while time.time() < deadline:
        time.sleep(0.5)
        again = [(m.offset(), m.key(), m.value()) for m in read_all(b.bootstrap, "compacted")[0]]
        if again == before:
            break
        before = again
    b.stop()
    b.start()
    got, high = read_all(b.bootstrap, "compacted")
    assert high == 202
    assert [(m.offset(), m.key(), m.value()) for m in got] == before


def test_compacted_topic_refuses_records_without_a_key(broker):
    """Kafka's rule: a compacted topic answers INVALID_RECORD (87) to a record without a key,
    compressed or not, and stores nothing of it; keyed records and tombstones still go in."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("keyed-only", 1, 1, config={"cleanup.policy": "compact"})])["keyed-only"].result(10)
    errors = []
    for codec in ("none", "gzip", "lz4", "zstd"):
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 0,
                      "message.send.max.retries": 0})
        # Compressible: librdkafka sends a batch uncompressed when the codec would not shrink it.
        p.produce("keyed-only", value=b"no key " * 100, on_delivery=lambda err, msg: errors.append(err))
        p.flush(10)
        p.produce("keyed-only", key=b"k-" + codec.encode(), value=b"v", on_delivery=lambda err, msg: errors.append(err))
        p.produce("keyed-only", key=b"t-" + codec.encode(), value=None, on_delivery=lambda err, msg: errors.append(err))
        p.flush(10)
    assert [e.code() if e else None for e in errors] == [87, None, None] * 4, errors
    got, high = read_all(broker.bootstrap, "keyed-only")
    assert high == 8
    assert all(m.key() for m in got)
