"""Fetch response size limits, as Kafka applies them (ReplicaManager.readFromLog, KIP-74).

Each partition reads at most min(partition_max_bytes, what is left of the request's max_bytes).
The one exception: the first partition of the response that returns data gets its first batch
whole even when that batch is larger than both limits, so a consumer always makes progress.
Every later partition must fit in what is left, so a response exceeds max_bytes by at most that
one batch. Clients size their receive buffers on this: librdkafka drops the connection on a
response larger than `receive.message.max.bytes` ("Invalid response size").
"""
import logging
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record.default_records import DefaultRecordBatchBuilder

import txnwire
from wire import recv_exactly

VALUE = 100_000
PARTITIONS = 3
BATCHES = 3  # per partition, one ~100 KB record each
# Response framing around the records (headers, per-partition fields) stays far below this.
OVERHEAD = 400


def one_record_batch(i):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 21)
    b.append(0, timestamp=int(time.time() * 1000), key=b"k%d" % i, value=bytes([i % 251]) * VALUE, headers=[])
    return bytes(b.build())


@pytest.fixture
def loaded(broker):
    """A topic of PARTITIONS partitions, each holding BATCHES batches of the same size; returns
    (bootstrap, batch size)."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("limits", PARTITIONS, 1)])["limits"].result(10)
    P = ProduceRequest.TopicProduceData.PartitionProduceData
    size = None
    for p in range(PARTITIONS):
        for i in range(BATCHES):
            batch = one_record_batch(i)
            size = size or len(batch)
            assert len(batch) == size
            r = txnwire.call(broker.bootstrap, ProduceRequest(
                version=7, transactional_id=None, acks=-1, timeout_ms=10_000,
                topic_data=[ProduceRequest.TopicProduceData(name="limits", partition_data=[P(index=p, records=batch)])]))
            assert r.responses[0].partition_responses[0].error_code == 0
    return broker.bootstrap, size


def fetch(bootstrap, wanted, max_bytes, version=11, isolation=0, min_bytes=1, max_wait_ms=0):
    """One Fetch of `wanted` [(partition, offset, partition_max_bytes)] in that order. Returns
    (size of the response frame, {partition: (error, [batch sizes])} in response order)."""
    T, FP = FetchRequest.FetchTopic, FetchRequest.FetchTopic.FetchPartition
    req = FetchRequest(version=version, replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes,
                       max_bytes=max_bytes, isolation_level=isolation, session_id=0, session_epoch=-1,
                       topics=[T(topic="limits", partitions=[
                           FP(partition=p, current_leader_epoch=-1, fetch_offset=o, last_fetched_epoch=-1,
                              log_start_offset=-1, partition_max_bytes=m) for p, o, m in wanted])],
                       forgotten_topics_data=[], rack_id="")
    req.with_header(correlation_id=99, client_id="fetch-limits")
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(req.encode(header=True, framed=True))
        (n,) = struct.unpack(">i", recv_exactly(s, 4))
        data = recv_exactly(s, n)
    resp = req.header.get_response_class().decode(data, header=True)
    out = {}
    for t in resp.responses:
        for p in t.partitions:
            records = bytes(p.records or b"")
            sizes, pos = [], 0
            while pos < len(records):
                (length,) = struct.unpack_from(">i", records, pos + 8)
                sizes.append(12 + length)
                pos += 12 + length
            assert pos == len(records), "a partial batch in the response"
            out[p.partition_index] = (p.error_code, sizes)
    return n, out


def batches(result):
    return {p: len(sizes) for p, (_, sizes) in result.items()}


@pytest.mark.parametrize("version", [4, 11, 12])
def test_later_partitions_fit_in_what_is_left_of_max_bytes(loaded, version):
    bs, b = loaded
    everything = [(p, 0, 10 * b) for p in range(PARTITIONS)]
    # Two batches fit; what is left (half a batch) holds nothing of the next partitions, whose
    # first batch would be larger: they come back empty, not with one batch each.
    n, got = fetch(bs, everything, max_bytes=b * 5 // 2, version=version)
    assert batches(got) == {0: 2, 1: 0, 2: 0}, got
    assert n <= b * 5 // 2 + OVERHEAD
    # Three fit exactly: the whole first partition; nothing fits after it.
    n, got = fetch(bs, everything, max_bytes=3 * b + b // 2, version=version)
    assert batches(got) == {0: 3, 1: 0, 2: 0}, got
    # Room for more: the next partition's batches follow, whole ones only.
    n, got = fetch(bs, everything, max_bytes=5 * b + b // 2, version=version)
    assert batches(got) == {0: 3, 1: 2, 2: 0}, got
    assert n <= 5 * b + b // 2 + OVERHEAD


@pytest.mark.parametrize("version", [4, 12])
def test_only_the_first_non_empty_partition_may_exceed_the_limits(loaded, version):
    bs, b = loaded
    # max_bytes below one batch: the first partition's first batch still comes (KIP-74), the
    # response is then full.
    n, got = fetch(bs, [(p, 0, 10 * b) for p in range(PARTITIONS)], max_bytes=b // 2, version=version)
    assert batches(got) == {0: 1, 1: 0, 2: 0}, got
    assert n <= b + OVERHEAD
    # partition_max_bytes below one batch: only the first partition with data gets one.
    n, got = fetch(bs, [(p, 0, b // 2) for p in range(PARTITIONS)], max_bytes=10 * b, version=version)
    assert batches(got) == {0: 1, 1: 0, 2: 0}, got
    assert n <= b + OVERHEAD
    # A partition with nothing to return (at its log end) or an error does not use up the
    # exception: the next one with data gets it.
    n, got = fetch(bs, [(7, 0, b // 2), (0, BATCHES, b // 2), (1, 0, b // 2), (2, 0, b // 2)],
                   max_bytes=10 * b, version=version)
    assert got[7][0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert batches(got) == {7: 0, 0: 0, 1: 1, 2: 0}, got
    # partition_max_bytes is a limit per partition: each gets what fits in its own.
    n, got = fetch(bs, [(p, 0, b * 3 // 2) for p in range(PARTITIONS)], max_bytes=10 * b, version=version)
    assert batches(got) == {0: 1, 1: 1, 2: 1}, got


def test_read_committed_and_long_poll_obey_the_same_limits(loaded):
    bs, b = loaded
    everything = [(p, 0, 10 * b) for p in range(PARTITIONS)]
    n, got = fetch(bs, everything, max_bytes=b * 5 // 2, isolation=1)
    assert batches(got) == {0: 2, 1: 0, 2: 0}, got
    # min_bytes beyond what max_bytes allows: the fetch waits out max_wait_ms, then answers
    # within the limits all the same.
    start = time.time()
    n, got = fetch(bs, everything, max_bytes=b * 5 // 2, min_bytes=20 * b, max_wait_ms=300)
    assert time.time() - start >= 0.25
    assert batches(got) == {0: 2, 1: 0, 2: 0}, got
    n, got = fetch(bs, [(p, 0, b // 2) for p in range(PARTITIONS)], max_bytes=10 * b, isolation=1,
                   min_bytes=20 * b, max_wait_ms=200)
    assert batches(got) == {0: 1, 1: 0, 2: 0}, got


def test_librdkafka_with_a_1mb_receive_limit_consumes_everything(broker):
    """The reported failure: a librdkafka consumer with fetch.max.bytes and
    receive.message.max.bytes near 1 MB, over partitions holding MBs of ~100 KB records that the
    producer packed into ~1 MB batches. A response over receive.message.max.bytes makes librdkafka
    log "Invalid response size" and drop the connection, and it never gets past that offset."""
    topic, partitions, per_partition = "big-records", 4, 16
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 200, "batch.size": 1_000_000,
                  "message.max.bytes": 1_000_000})
    for i in range(per_partition):
        for part in range(partitions):
            p.produce(topic, value=bytes([i]) * VALUE, partition=part,
                      on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0 and errors == []

    log = logging.getLogger("librdkafka-consumer")
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log.addHandler(Keep())
    log.setLevel(logging.DEBUG)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "big-records", "enable.auto.commit": False,
                  "fetch.max.bytes": 1_000_000, "receive.message.max.bytes": 1_000_512,
                  "logger": log, "error_cb": lambda e: errors.append(e)})
    try:
        c.assign([TopicPartition(topic, part, OFFSET_BEGINNING) for part in range(partitions)])
        got, deadline = {}, time.time() + 30
        while sum(got.values()) < partitions * per_partition and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            assert len(m.value()) == VALUE
            got[m.partition()] = got.get(m.partition(), 0) + 1
    finally:
        c.close()
    bad = [line for line in lines if "Invalid response size" in line]
    assert not bad and not errors, (bad[:3], errors[:3])
    assert got == {part: per_partition for part in range(partitions)}
