"""Produce names each refused record (KIP-467), as Kafka does: a compacted topic refuses a batch
holding records without a key with INVALID_RECORD, a topic with timestamp bounds
(`message.timestamp.before.max.ms` / `after.max.ms`) one holding a record outside them with
INVALID_TIMESTAMP, and from Produce v8 on the partition's response lists each refused record
(`record_errors`: its index in the batch and Kafka's message) and sums them up in
`error_message`. Nothing of the batch is written.

What a client does with the list is its own affair. librdkafka 2.16 fails the whole batch all
the same, but tells the records apart: the listed ones with INVALID_RECORD, their batch mates
with the local error _INVALID_DIFFERENT_RECORD (-138, "an invalid record in the same batch
caused the failure of this message too"); it retries none of them. With more than one listed
record it reports them INVALID_RECORD whatever the partition's error (timestamps included).
"""
import re
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.producer import ProduceRequest
from kafka.record.default_records import DefaultRecordBatchBuilder

import txnwire

INVALID_TIMESTAMP, INVALID_RECORD = 32, 87
HOUR = 3_600_000


def compacted_topic(bootstrap, name):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result(10)


def batch(keys, compression=0, timestamps=None):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, k in enumerate(keys):
        b.append(i, timestamp=timestamps[i] if timestamps else now, key=k, value=b"v%d" % i, headers=[])
    return bytes(b.build())


def produce(bs, topic, records, version):
    P = ProduceRequest.TopicProduceData.PartitionProduceData
    r = txnwire.call(bs, ProduceRequest(version=version, transactional_id=None, acks=-1, timeout_ms=10_000,
                                        topic_data=[ProduceRequest.TopicProduceData(
                                            name=topic, partition_data=[P(index=0, records=records)])]))
    ((p,),) = [t.partition_responses for t in r.responses]
    return p


@pytest.mark.parametrize("compression", [0, 1], ids=["none", "gzip"])
def test_record_errors_name_each_keyless_record(broker, compression):
    bs, topic = broker.bootstrap, "named-errors"
    compacted_topic(bs, topic)
    keys = [None if i in (2, 5, 9, 11) else b"k%d" % i for i in range(12)]
    one = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    for version in (8, 9, 12):
        p = produce(bs, topic, batch(keys, compression), version)
        assert p.error_code == INVALID_RECORD
        assert [(e.batch_index, e.batch_index_error_message) for e in p.record_errors] == \
            [(2, one), (5, one), (9, one), (11, one)], f"v{version}"
        # Kafka's summary (RecordValidationException): the count, then the first three.
        assert p.error_message == (
            "One or more records have been rejected due to 4 record errors in total, and only showing the "
            f"first three errors at most: [RecordError(batchIndex=2, message='{one}'), "
            f"RecordError(batchIndex=5, message='{one}'), RecordError(batchIndex=9, message='{one}')]"), f"v{version}"
        assert (p.base_offset, p.log_start_offset) == (-1, -1)
    # Before v8 the response has no room for them: the error code alone.
    for version in (3, 7):
        p = produce(bs, topic, batch(keys, compression), version)
        assert p.error_code == INVALID_RECORD, f"v{version}"
    # A batch with every record keyed goes in; nothing of the refused ones did.
    p = produce(bs, topic, batch([b"a", b"b"], compression), 9)
    assert (p.error_code, p.base_offset, p.record_errors, p.error_message) == (0, 0, [], None)
    assert txnwire.latest(bs, topic, 0) == 2


def test_librdkafka_fails_only_the_keyless_records_as_invalid(broker):
    """100 records in one batch to a compacted topic, 10 of them without a key: the 10 are
    reported INVALID_RECORD, the other 90 _INVALID_DIFFERENT_RECORD (failed only because they
    shared the batch), which is what librdkafka reports against Kafka. Without record_errors
    librdkafka reports all 100 as INVALID_RECORD."""
    bs, topic = broker.bootstrap, "keyless-ten"
    compacted_topic(bs, topic)
    reports = {}
    p = Producer({"bootstrap.servers": bs, "linger.ms": 1000, "batch.num.messages": 1000})
    p.list_topics(topic, timeout=10)  # metadata first, so the hundred records leave in one batch
    keyless = {i for i in range(100) if i % 10 == 3}
    for i in range(100):
        p.produce(topic, key=None if i in keyless else b"k%d" % i, value=b"v%d" % i, partition=0,
                  on_delivery=lambda err, msg, i=i: reports.__setitem__(i, err))
    assert p.flush(30) == 0
    assert len(reports) == 100
    invalid = {i for i, e in reports.items() if e and e.code() == KafkaError.INVALID_RECORD}
    collateral = {i for i, e in reports.items() if e and e.code() == KafkaError._INVALID_DIFFERENT_RECORD}
    assert invalid == keyless, sorted(invalid)
    assert collateral == set(range(100)) - keyless, {i: reports[i] for i in sorted(set(range(100)) - collateral)[:5]}
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0), "nothing was written"
    finally:
        c.close()


def bounded_topic(bootstrap, name):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, 1, 1, config={"message.timestamp.before.max.ms": str(HOUR),
                                                   "message.timestamp.after.max.ms": str(HOUR)})])[name].result(10)


@pytest.mark.parametrize("compression", [0, 1], ids=["none", "gzip"])
def test_record_errors_name_each_record_with_a_timestamp_out_of_bounds(broker, compression):
    bs, topic = broker.bootstrap, "ts-bounds"
    bounded_topic(bs, topic)
    now = int(time.time() * 1000)
    stamps = [now, now - 2 * HOUR, now + 2 * HOUR, now - HOUR // 2, now + HOUR // 2, now - 3 * HOUR]
    p = produce(bs, topic, batch([b"k"] * len(stamps), compression, stamps), 9)
    assert p.error_code == INVALID_TIMESTAMP
    assert p.error_message == "One or more records have been rejected due to invalid timestamp"
    assert [e.batch_index for e in p.record_errors] == [1, 2, 5]
    for e in p.record_errors:
        m = re.fullmatch(r"Timestamp (-?\d+) of message with offset (\d+) is out of range\. "
                         r"The timestamp should be within \[(-?\d+), (-?\d+)\]", e.batch_index_error_message)
        assert m, e.batch_index_error_message
        ts, offset, earliest, latest = map(int, m.groups())
        assert (ts, offset) == (stamps[e.batch_index], e.batch_index)
        assert latest - earliest == 2 * HOUR and abs(earliest + HOUR - now) < 60_000
    assert txnwire.latest(bs, topic, 0) == 0, "nothing was written"
    p = produce(bs, topic, batch([b"k"] * 3, compression, [now, now - HOUR // 2, now + HOUR // 2]), 9)
    assert (p.error_code, p.base_offset) == (0, 0)


def test_librdkafka_fails_records_with_timestamps_out_of_bounds(broker):
    """librdkafka lists the refused records as INVALID_RECORD (it uses that code for every listed
    record once there are several), their batch mates as _INVALID_DIFFERENT_RECORD."""
    bs, topic = broker.bootstrap, "ts-ten"
    bounded_topic(bs, topic)
    reports = {}
    p = Producer({"bootstrap.servers": bs, "linger.ms": 1000, "batch.num.messages": 1000})
    p.list_topics(topic, timeout=10)  # metadata first, so the ten records leave in one batch
    now = int(time.time() * 1000)
    stale = {4, 7}
    for i in range(10):
        p.produce(topic, key=b"k", value=b"v%d" % i, partition=0, timestamp=now - 2 * HOUR if i in stale else now,
                  on_delivery=lambda err, msg, i=i: reports.__setitem__(i, err))
    assert p.flush(30) == 0
    codes = {i: e.code() if e else None for i, e in sorted(reports.items())}
    assert codes == {i: KafkaError.INVALID_RECORD if i in stale else KafkaError._INVALID_DIFFERENT_RECORD
                     for i in range(10)}, codes
