"""Transaction requests on the wire, below any client's retries and caches: each request is
built with kafka-python 3's protocol messages (generated from Kafka's own JSON schemas, every
version) and sent on a fresh socket. Shared by test_txn_errors.py and test_transactions_v2.py
(transactions v2 has no installable client yet).

Retriable coordinator answers (loading, not available, not coordinator, concurrent transactions) are
asked again for a bounded time (`settle`); every other answer goes back to the test.
"""
import itertools
import socket
import struct
import time

from kafka.protocol.admin import DescribeTransactionsRequest
from kafka.protocol.consumer import ListOffsetsRequest
from kafka.protocol.metadata import FindCoordinatorRequest
from kafka.protocol.producer import (AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest,
                                     InitProducerIdRequest, ProduceRequest)
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

# Kafka's error codes (org.apache.kafka.common.protocol.Errors).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_ENOUGH_REPLICAS = 19
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR = 14, 15, 16
ILLEGAL_GENERATION = 22
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
OPERATION_NOT_ATTEMPTED = 55
INVALID_RECORD = 87
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105
TRANSACTION_ABORTABLE = 120
NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

RETRIABLE = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS}
SETTLE_S = 30


def name(code):
    return f"{code} ({NAMES.get(code, '?')})"


_correlation = itertools.count(1000)


def call(bootstrap, request, timeout=15):
    """Sends one request (its version already set) on a new connection; returns the decoded response."""
    corr = next(_correlation)
    request.with_header(correlation_id=corr, client_id="txn-errors")
    raw = request.encode(header=True, framed=True)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(raw)
        size = s.recv(4, socket.MSG_WAITALL)
        assert len(size) == 4, f"{type(request).__name__} v{request.API_VERSION}: the broker closed the connection"
        (n,) = struct.unpack(">i", size)
        data = s.recv(n, socket.MSG_WAITALL)
    response = request.header.get_response_class().decode(data, header=True)
    assert response.header.correlation_id == corr
    return response


def settle(what, ask, code_of):
    """Asks `ask()` again while `code_of(response)` is a retriable coordinator error, for at most
    SETTLE_S seconds; returns the first other response."""
    deadline = time.time() + SETTLE_S
    while True:
        r = ask()
        if code_of(r) not in RETRIABLE:
            return r
        if time.time() > deadline:
            raise AssertionError(f"{what} still answers {name(code_of(r))} after {SETTLE_S} s: {r}")
        time.sleep(0.1)


def retriable_in(codes):
    """The first retriable code among per-partition `codes` (0 if none): `settle`'s code_of."""
    return next((c for c in codes if c in RETRIABLE), NONE)


def find_coordinator(bs, key, key_type=1):
    r = settle(f"FindCoordinator({key_type}, {key!r})",
               lambda: call(bs, FindCoordinatorRequest(version=1, key=key, key_type=key_type)), lambda r: r.error_code)
    return r


def init_pid(bs, txn_id, timeout_ms=60_000, version=4):
    """InitProducerId: (error code, producer id, epoch)."""
    r = settle(f"InitProducerId({txn_id!r})",
               lambda: call(bs, InitProducerIdRequest(version=version, transactional_id=txn_id,
                                                      transaction_timeout_ms=timeout_ms)),
               lambda r: r.error_code)
    return r.error_code, r.producer_id, r.producer_epoch


def begin(bs, txn_id):
    """FindCoordinator then InitProducerId that must succeed: (producer id, epoch)."""
    assert find_coordinator(bs, txn_id).error_code == NONE
    err, pid, epoch = init_pid(bs, txn_id)
    assert err == NONE, f"InitProducerId({txn_id!r}) answered {name(err)}"
    return pid, epoch


def add_partitions(bs, txn_id, pid, epoch, topics, version=3):
    """AddPartitionsToTxn v0-v3; topics {name: [partitions]}. Returns {(topic, partition): error}."""
    T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic

    def ask():
        return call(bs, AddPartitionsToTxnRequest(
            version=version, v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch, v3_and_below_topics=[T(name=t, partitions=ps) for t, ps in topics.items()]))

    def codes(r):
        return {(t.name, p.partition_index): p.partition_error_code
                for t in r.results_by_topic_v3_and_below for p in t.results_by_partition}

    return codes(settle(f"AddPartitionsToTxn v{version}", ask, lambda r: retriable_in(codes(r).values())))


def add_offsets(bs, txn_id, pid, epoch, group):
    return settle("AddOffsetsToTxn", lambda: call(bs, AddOffsetsToTxnRequest(
        version=3, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, group_id=group)),
        lambda r: r.error_code).error_code


def end_txn(bs, txn_id, pid, epoch, commit, version=3):
    return settle(f"EndTxn({'commit' if commit else 'abort'}) v{version}", lambda: call(bs, EndTxnRequest(
        version=version, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit)),
        lambda r: r.error_code).error_code


def describe(bs, txn_id):
    (state,) = call(bs, DescribeTransactionsRequest(version=0, transactional_ids=[txn_id])).transaction_states
    assert state.transactional_id == txn_id
    return state


def produce(bs, topic, partition, batch, txn_id, version=3):
    """Produce (acks=-1) of one batch to one partition: (error code, base offset)."""
    P = ProduceRequest.TopicProduceData.PartitionProduceData
    r = call(bs, ProduceRequest(version=version, transactional_id=txn_id, acks=-1, timeout_ms=10_000,
                                topic_data=[ProduceRequest.TopicProduceData(
                                    name=topic, partition_data=[P(index=partition, records=batch)])]))
    (t,) = r.responses
    (p,) = t.partition_responses
    assert (t.name, p.index) == (topic, partition)
    return p.error_code, p.base_offset


def latest(bs, topic, partition):
    """ListOffsets(latest, read_uncommitted): the high watermark."""
    T = ListOffsetsRequest.ListOffsetsTopic
    r = call(bs, ListOffsetsRequest(version=5, replica_id=-1, isolation_level=0, topics=[T(
        name=topic, partitions=[T.ListOffsetsPartition(partition_index=partition, current_leader_epoch=-1,
                                                       timestamp=-1)])]))
    ((p,),) = [t.partitions for t in r.topics]
    assert p.error_code == NONE, f"ListOffsets {topic}-{partition}: {name(p.error_code)}"
    return p.offset


def batch(pid, epoch, seq, values, transactional=True):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=int(transactional),
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, v in enumerate(values):
        b.append(i, timestamp=now, key=None, value=v, headers=[])
    return bytes(b.build())


def control_batch(pid, epoch, seq, attributes):
    """A batch holding one end-transaction (commit) marker record, as only a coordinator writes them:
    key = (version 0, type 1 COMMIT), value = (version 0, coordinator epoch 0); `attributes` replaces
    the batch's (0x30: control | transactional), with the CRC recomputed."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=1, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    b.append(0, timestamp=int(time.time() * 1000), key=struct.pack(">hh", 0, 1), value=struct.pack(">hi", 0, 0),
             headers=[])
    raw = bytearray(b.build())
    struct.pack_into(">h", raw, DefaultRecordBatchBuilder.ATTRIBUTES_OFFSET, attributes)
    struct.pack_into(">I", raw, DefaultRecordBatchBuilder.CRC_OFFSET,
                     calc_crc32c(bytes(raw[DefaultRecordBatchBuilder.ATTRIBUTES_OFFSET:])))
    return bytes(raw)
