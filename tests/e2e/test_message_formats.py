"""Message formats v0 and v1 (Kafka before 0.11): produced with Produce v0-2, up-converted to v2
batches on append; fetched with Fetch v0-3, down-converted per request. Real clients (kafka-python
pinned to old broker versions, confluent-kafka for v2) write and read each other's records; raw
requests check Kafka 3.9's answers to bad or unconvertible input."""
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.protocol.old import fetch as old_fetch
from kafka.protocol.old import produce as old_produce
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from wire import call

NONE, CORRUPT_MESSAGE, UNSUPPORTED_VERSION, UNSUPPORTED_COMPRESSION_TYPE, INVALID_RECORD = 0, 2, 35, 76, 87
TS = 1_700_000_000_000
N = 20

# kafka-python's produce and fetch versions for each: (0, 9) Produce v1 / Fetch v1 (format v0),
# (0, 10, 0) v2 / v2 (format v1), (0, 10, 1) v2 / v3, then format v2: (0, 11) v3 / v4-5,
# (1, 0) v5 / v6, (2, 0) v6 / v8.
APIS = [(0, 9), (0, 10, 0), (0, 10, 1), (0, 11), (1, 0), (2, 0)]


def value(i):
    """Compressible, so that librdkafka does not fall back to sending a batch uncompressed."""
    return b"v%d-" % i + b"x" * 100


def codecs(api):
    # Magic 0's LZ4 frame (with old Kafka's broken header checksum) needs kafka-python's xxhash.
    return [None, "gzip", "snappy", "lz4"]


def create(bs, topic, **config):
    a = AdminClient({"bootstrap.servers": bs})
    a.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)


def old_produce_records(bs, topic, api, codec, n=N, first=0):
    p = KafkaProducer(bootstrap_servers=bs, api_version=api, compression_type=codec, linger_ms=20)
    try:
        futures = [p.send(topic, key=b"k%d" % i, value=value(i), partition=0, timestamp_ms=TS + i) for i in range(first, first + n)]
        return [f.get(timeout=10) for f in futures]
    finally:
        p.close()


def old_consume(bs, topic, api, n=N, start=0):
    c = KafkaConsumer(bootstrap_servers=bs, api_version=api, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, start)
        out = []
        for m in c:
            out.append((m.offset, m.key, m.value, m.timestamp))
            if len(out) == n:
                break
        return out
    finally:
        c.close()


def v2_consume(bs, topic, n=N, timeout=20):
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False})
    c.assign([CTopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    try:
        while len(out) < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append((m.offset(), m.key(), m.value(), m.timestamp()[1]))
    finally:
        c.close()
    return out


def v2_produce(bs, topic, codec, n=N, base_ts=TS, first=0):
    p = Producer({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 20})
    for i in range(first, first + n):
        p.produce(topic, key=b"k%d" % i, value=value(i), partition=0, timestamp=base_ts + i, headers=[("h", b"x")])
    assert p.flush(20) == 0


def expected(n=N, timestamps=True, first=0):
    return [(i, b"k%d" % i, value(i), TS + i if timestamps else None) for i in range(first, first + n)]


@pytest.mark.parametrize("api", APIS, ids=lambda a: ".".join(map(str, a)))
def test_old_clients_write_and_read_each_codec(broker, api):
    """Each codec the client speaks at that version: offsets assigned by the broker, records and
    timestamps (none in format v0) read back by the same client and by a v2 client."""
    bs = broker.bootstrap
    for codec in codecs(api):
        topic = f"mf-{'-'.join(map(str, api))}-{codec}"
        sent = old_produce_records(bs, topic, api, codec)
        assert [m.offset for m in sent] == list(range(N)), (codec, sent)
        # A second request continues the offsets: each batch is placed where the log ends.
        assert [m.offset for m in old_produce_records(bs, topic, api, codec, n=2, first=N)] == [N, N + 1]
        has_ts = api >= (0, 10)
        assert old_consume(bs, topic, api, N + 2) == expected(N + 2, has_ts), codec
        # Kafka gives format v0's records NO_TIMESTAMP (-1), which librdkafka shows as such.
        assert v2_consume(bs, topic, N + 2) == [(o, k, v, ts if has_ts else -1) for o, k, v, ts in expected(N + 2)], codec


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_old_consumers_read_what_v2_producers_wrote(broker, codec):
    """confluent-kafka's v2 batches (with headers, which the old formats drop) down-converted for
    each old fetch version; a consumer starting inside a batch gets the records from there on."""
    bs = broker.bootstrap
    topic = f"mf-v2-{codec}"
    v2_produce(bs, topic, codec)
    # Each batch stays in its codec, wrapped as one compressed message.
    codec_id = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3}[codec]
    for version in (1, 3):
        batches = MemoryRecords(fetch_raw(bs, topic, version=version)[2])
        while (batch := batches.next_batch()) is not None:
            assert batch.compression_type == codec_id, (version, batch)
    for api in [(0, 9), (0, 10, 0), (0, 10, 1)]:
        assert old_consume(bs, topic, api) == expected(timestamps=api >= (0, 10)), api
        assert old_consume(bs, topic, api, n=N - 7, start=7) == expected(N - 7, api >= (0, 10), first=7), api


def test_log_append_time_stamps_old_formats(broker):
    """Under LogAppendTime the broker's clock stamps records of every format, and Produce v2
    answers with it."""
    bs = broker.bootstrap
    create(bs, "mf-lat", **{"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    sent = old_produce_records(bs, "mf-lat", (0, 10, 1), "gzip", n=3) + old_produce_records(bs, "mf-lat", (0, 9), None, n=2)
    after = int(time.time() * 1000)
    # kafka-python takes the response's log_append_time (Produce v2) as the record's timestamp.
    assert all(before <= m.timestamp <= after for m in sent[:3]), sent
    got = old_consume(bs, "mf-lat", (0, 10, 1), n=5)
    assert [o for o, *_ in got] == list(range(5))
    assert all(before <= ts <= after for *_, ts in got), got
    assert all(before <= ts <= after for *_, ts in v2_consume(bs, "mf-lat", n=5))


def produce_v2_raw(bs, topic, records, version=2):
    r = call(bs, getattr(old_produce, f"ProduceRequest_v{version}")(acks=1, timeout_ms=5000, topic_data=[(topic, [(0, records)])]),
             getattr(old_produce, f"ProduceResponse_v{version}"))
    [(_t, [(_p, error, base_offset, *_)])] = r.responses
    return error, base_offset


def message_set(magic=1, codec=0, values=(b"a", b"b")):
    b = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=TS, key=None, value=v)
    return bytes(b.build())


def fetch_raw(bs, topic, version=2, offset=0, partition_max_bytes=1 << 20):
    args = dict(replica_id=-1, max_wait_ms=0, min_bytes=0, topics=[(topic, [(0, offset, partition_max_bytes)])])
    if version >= 3:
        args["max_bytes"] = 1 << 20
    r = call(bs, getattr(old_fetch, f"FetchRequest_v{version}")(**args), getattr(old_fetch, f"FetchResponse_v{version}"))
    [(_t, [(_p, error, high_watermark, records)])] = r.responses
    return error, high_watermark, records


def offsets_in(records):
    out = []
    batches = MemoryRecords(records)
    while (batch := batches.next_batch()) is not None:
        out += [r.offset for r in batch]
    return out


def test_bad_old_message_sets_are_refused_and_not_stored(broker):
    """Kafka 3.9's answers: CORRUPT_MESSAGE for a bad CRC, a truncated set or a size past the
    request; INVALID_RECORD for what is well formed but not allowed (a wrapper inside a wrapper,
    two wrappers, format v1 in Produce v3). Nothing of it reaches the log."""
    bs = broker.bootstrap
    create(bs, "mf-bad")
    good = message_set()
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 1
    huge = bytearray(good)
    huge[8:12] = struct.pack(">i", 0x7FFFFFF0)
    gzip_set = message_set(codec=1)
    # A gzip wrapper whose inner message set is itself a gzip wrapper (kafka-python's builder
    # compresses whatever its buffer holds).
    b = LegacyRecordBatchBuilder(magic=1, compression_type=1, batch_size=1 << 20)
    b._buffer = bytearray(gzip_set)
    b._maybe_compress()
    nested_wrapper = bytes(b._buffer)
    cases = [
        (bytes(bad_crc), CORRUPT_MESSAGE),
        (good[:-3], CORRUPT_MESSAGE),
        (bytes(huge), CORRUPT_MESSAGE),
        (nested_wrapper, INVALID_RECORD),
        (gzip_set + gzip_set, INVALID_RECORD),
    ]
    for records, code in cases:
        assert produce_v2_raw(bs, "mf-bad", records) == (code, -1), (records.hex(), code)
    assert produce_v2_raw(bs, "mf-bad", good, version=3)[0] == INVALID_RECORD
    assert fetch_raw(bs, "mf-bad")[:2] == (NONE, 0), "nothing was stored"
    # The good set is stored, at offset 0.
    assert produce_v2_raw(bs, "mf-bad", good) == (NONE, 0)
    error, hw, records = fetch_raw(bs, "mf-bad")
    assert (error, hw, offsets_in(records)) == (NONE, 2, [0, 1])


def test_produce_v0_2_takes_v2_batches_as_kafka_3_9_does(broker):
    """Kafka checks the magic of produced records only from Produce v3 on: a v2 batch in Produce
    v0-2 is stored as it is, and fetched back by an old consumer in its format."""
    bs = broker.bootstrap
    create(bs, "mf-v2-in-old")
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1, producer_epoch=-1,
                                  base_sequence=-1, batch_size=1 << 20)
    b.append(0, timestamp=TS, key=b"k", value=b"v2 in v0", headers=[])
    for version in range(3):
        assert produce_v2_raw(bs, "mf-v2-in-old", bytes(b.build()), version=version) == (NONE, version)
    error, hw, records = fetch_raw(bs, "mf-v2-in-old", version=2)
    assert (error, hw, offsets_in(records)) == (NONE, 3, [0, 1, 2])


def test_old_formats_follow_the_topic_rules(broker):
    """Up-converted records are checked one by one as any produced batch: a compacted topic
    refuses a record without a key (INVALID_RECORD) and keeps nothing of the request."""
    bs = broker.bootstrap
    create(bs, "mf-compact", **{"cleanup.policy": "compact"})
    b = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    b.append(0, timestamp=TS, key=b"k", value=b"v")
    b.append(1, timestamp=TS, key=None, value=b"no key")
    assert produce_v2_raw(bs, "mf-compact", bytes(b.build())) == (INVALID_RECORD, -1)
    assert fetch_raw(bs, "mf-compact")[:2] == (NONE, 0)


def test_zstd_is_not_down_converted(broker):
    """zstd has no format v0/v1: a fetch that starts at a zstd batch gets
    UNSUPPORTED_COMPRESSION_TYPE; one that starts before it gets the batches before it."""
    bs = broker.bootstrap
    v2_produce(bs, "mf-zstd", "gzip", n=3)
    v2_produce(bs, "mf-zstd", "zstd", n=3, first=3)
    error, _hw, records = fetch_raw(bs, "mf-zstd", version=3)
    assert (error, offsets_in(records)) == (NONE, [0, 1, 2])
    assert fetch_raw(bs, "mf-zstd", version=3, offset=3)[0] == UNSUPPORTED_COMPRESSION_TYPE
    assert fetch_raw(bs, "mf-zstd", version=1, offset=3)[0] == UNSUPPORTED_COMPRESSION_TYPE


def test_down_conversion_can_be_disabled(broker):
    """message.downconversion.enable=false: old consumers get UNSUPPORTED_VERSION."""
    bs = broker.bootstrap
    create(bs, "mf-nodown", **{"message.downconversion.enable": "false"})
    v2_produce(bs, "mf-nodown", "none", n=2)
    assert fetch_raw(bs, "mf-nodown", version=2)[0] == UNSUPPORTED_VERSION
    assert len(v2_consume(bs, "mf-nodown", n=2)) == 2


def v2_batches(bs, topic):
    """{first offset: record count} of each stored batch (Fetch v4: format v2, as stored)."""
    r = call(bs, old_fetch.FetchRequest_v4(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 24, isolation_level=0,
                                           topics=[(topic, [(0, 0, 1 << 24)])]), old_fetch.FetchResponse_v4)
    [(_t, [(_p, error, _hw, _lso, _aborted, records)])] = r.responses
    assert error == NONE
    out, batches = {}, MemoryRecords(records)
    while (batch := batches.next_batch()) is not None:
        offsets = [rec.offset for rec in batch]
        out[offsets[0]] = len(offsets)
    return out


def test_down_conversion_stays_within_the_fetch_size(broker):
    """Format v1 is larger than v2 for small records, so what fits the fetch size in v2 may not
    fit once converted: the whole messages that fit are returned (from v3 on the first batch
    always whole), and the next fetch goes on from there."""
    bs = broker.bootstrap
    for i in range(4):
        v2_produce(bs, "mf-size", "none", n=50, first=50 * i)
    batches = v2_batches(bs, "mf-size")
    assert sum(batches.values()) == 200
    for limit, version in [(1 << 20, 2), (15000, 3), (100, 3)]:
        got, offset, fetches = [], 0, 0
        while offset < 200:
            error, _hw, records = fetch_raw(bs, "mf-size", version=version, offset=offset, partition_max_bytes=limit)
            fetches += 1
            assert error == NONE
            part = offsets_in(records)
            assert part and part == list(range(offset, offset + len(part))), part
            # Within the v2 bytes read (at most the limit), or one whole batch past it.
            assert len(records) <= limit or batches.get(offset) == len(part), (limit, offset, len(records), len(part))
            got += part
            offset = part[-1] + 1
        assert got == list(range(200)), limit
        assert fetches > 1, "the conversion outgrew the v2 bytes read"
    # Fetch v0-2 limits are hard, as in Kafka 3.9: a first batch larger than the limit is not
    # sent (v3 sends it whole).
    assert fetch_raw(bs, "mf-size", version=2, partition_max_bytes=100)[::2] == (NONE, b"")
    assert len(offsets_in(fetch_raw(bs, "mf-size", version=3, partition_max_bytes=100)[2])) == batches[0]


def test_message_format_version_is_accepted_as_kafka_3_9_does(broker):
    """message.format.version: deprecated, ignored, any Kafka version accepted, others refused."""
    bs = broker.bootstrap
    a = AdminClient({"bootstrap.servers": bs})
    a.create_topics([NewTopic("mf-fmt", 1, 1, config={"message.format.version": "0.10.2"})])["mf-fmt"].result(10)
    with pytest.raises(KafkaException, match="not a valid version"):
        a.create_topics([NewTopic("mf-fmt-bad", 1, 1, config={"message.format.version": "0.7"})])["mf-fmt-bad"].result(10)
    # Ignored: v2 records are stored and served as v2.
    v2_produce(bs, "mf-fmt", "none", n=3)
    assert v2_consume(bs, "mf-fmt", n=3) == [(o, k, v, ts) for o, k, v, ts in expected(3)]
