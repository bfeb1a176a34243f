"""Kafka 3.9's request versions that Kafka 4.0 dropped (KIP-896) and deployed clients still send:
Burrow's ListOffsets v0, sarama's OffsetCommit v1 and DescribeConfigs v0, kafka-python with an
old `api_version`. Each is sent on the wire with kafka-python's hand-written classes for the old
versions (`kafka.protocol.old`) and its answer checked against what Kafka 3.9 (KRaft) answers;
then real clients pinned to old broker versions use them. Produce v0-2 and Fetch v0-3 carry
message formats v0/v1 (test_message_formats.py tests the conversion itself)."""
import struct
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.protocol.old import admin as old_admin
from kafka.protocol.old import commit as old_commit
from kafka.protocol.old import fetch as old_fetch
from kafka.protocol.old import produce as old_produce
from kafka.protocol.old import list_offsets as old_list_offsets
from kafka.protocol.old import offset_for_leader_epoch as old_olfe
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.structs import OffsetAndMetadata

import wire
from wire import call, exchange, frame, kstr

# What ApiVersions must advertise, exactly: Kafka 3.9's lowest versions, Strom's highest.
ADVERTISED = {
    0: (0, 12),    # Produce: v0-2 carry message formats v0/v1
    1: (0, 12),    # Fetch: v0-3 likewise
    2: (0, 8),     # ListOffsets
    3: (0, 12),    # Metadata
    8: (0, 9),     # OffsetCommit
    9: (0, 9),     # OffsetFetch
    10: (0, 5),    # FindCoordinator
    11: (0, 9),    # JoinGroup
    12: (0, 4),    # Heartbeat
    13: (0, 5),    # LeaveGroup
    14: (0, 5),    # SyncGroup
    15: (0, 5),    # DescribeGroups
    16: (0, 5),    # ListGroups
    18: (0, 4),    # ApiVersions
    19: (0, 7),    # CreateTopics
    20: (0, 6),    # DeleteTopics
    21: (0, 2),    # DeleteRecords
    22: (0, 5),    # InitProducerId
    23: (0, 4),    # OffsetForLeaderEpoch
    24: (0, 5),    # AddPartitionsToTxn
    25: (0, 4),    # AddOffsetsToTxn
    26: (0, 5),    # EndTxn
    27: (0, 1),    # WriteTxnMarkers
    28: (0, 5),    # TxnOffsetCommit
    32: (0, 4),    # DescribeConfigs
    33: (0, 2),    # AlterConfigs
    37: (0, 3),    # CreatePartitions
    42: (0, 2),    # DeleteGroups
    44: (0, 1),    # IncrementalAlterConfigs
    45: (0, 1),    # AlterPartitionReassignments
    46: (0, 0),    # ListPartitionReassignments
    47: (0, 0),    # OffsetDelete
    60: (0, 1),    # DescribeCluster
    61: (0, 0),    # DescribeProducers
    65: (0, 0),    # DescribeTransactions
    66: (0, 1),    # ListTransactions
    68: (0, 1),    # ConsumerGroupHeartbeat (KIP-848; v1 is Kafka 4's, which librdkafka 2.16 sends)
    69: (0, 1),    # ConsumerGroupDescribe
    17: (0, 1),    # SaslHandshake
    36: (0, 2),    # SaslAuthenticate
    29: (0, 3),    # DescribeAcls (SECURITY_DISABLED without an authorizer)
    30: (0, 3),    # CreateAcls
    31: (0, 3),    # DeleteAcls
    48: (0, 1),    # DescribeClientQuotas
    49: (0, 1),    # AlterClientQuotas
    50: (0, 0),    # DescribeUserScramCredentials
    51: (0, 0),    # AlterUserScramCredentials
    35: (0, 4),    # DescribeLogDirs (v0 as v1: test_admin_apis.py)
    43: (0, 2),    # ElectLeaders
    55: (0, 2),    # DescribeQuorum
    75: (0, 0),    # DescribeTopicPartitions
    76: (1, 1),    # ShareGroupHeartbeat (KIP-932; v1 is Kafka 4.1's, which librdkafka 2.16 sends)
    77: (1, 1),    # ShareGroupDescribe
    78: (1, 1),    # ShareFetch
    79: (1, 1),    # ShareAcknowledge
    90: (0, 0),    # DescribeShareGroupOffsets
    91: (0, 0),    # AlterShareGroupOffsets
    92: (0, 0),    # DeleteShareGroupOffsets
    84: (0, 0),    # ReadShareGroupState (between brokers: a share partition's leader and its owner)
    85: (0, 0),    # WriteShareGroupState
}
# The versions this work added; test_every_new_version_answers sends each of them.
NEW_VERSIONS = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3),
                (2, 0), (8, 0), (8, 1), (9, 0), (19, 0), (19, 1), (20, 0), (23, 0), (23, 1), (27, 0), (32, 0)}

NONE, UNKNOWN_SERVER_ERROR, UNKNOWN_TOPIC_OR_PARTITION = 0, -1, 3
UNSUPPORTED_VERSION, TOPIC_ALREADY_EXISTS = 35, 36
COORDINATOR_RETRIABLE = (14, 15, 16)  # load in progress, not available, not coordinator


def api_versions(bs):
    resp = exchange(bs, frame(18, 0))
    _corr_id, err, n = struct.unpack_from(">ihi", resp)
    assert err == 0
    return {k: (lo, hi) for k, lo, hi in (struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(n))}


def produce(bs, topic, values, partition=0):
    p = KafkaProducer(bootstrap_servers=bs)
    for v in values:
        p.send(topic, v, partition=partition).get(timeout=10)
    p.close()


def list_offsets_v0(bs, topic, partition, timestamp, max_num_offsets, replica_id=-1):
    r = call(bs, old_list_offsets.ListOffsetsRequest_v0(replica_id=replica_id, topics=[(topic, [(partition, timestamp, max_num_offsets)])]),
             old_list_offsets.ListOffsetsResponse_v0)
    [(name, [(index, error, offsets)])] = r.topics
    assert (name, index) == (topic, partition)
    return error, offsets


def commit_v1(bs, group, topic, entries, generation=-1, member=""):
    """entries: [(partition, offset, commit_timestamp, metadata)] -> {partition: error}. As a
    client does: FindCoordinator first (it creates the offsets topic on first use; before that a
    broker is nobody's coordinator), then asked again while the coordinator is still loading."""
    wire.find_coordinator(bs, group, wire.COORDINATOR_GROUP)
    deadline = time.time() + 20
    while True:
        r = call(bs, old_commit.OffsetCommitRequest_v1(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
                                                      topics=[(topic, list(entries))]), old_commit.OffsetCommitResponse_v1)
        errors = {p: e for _t, parts in r.topics for p, e in parts}
        if not set(errors.values()) & set(COORDINATOR_RETRIABLE) or time.time() > deadline:
            return errors
        time.sleep(0.2)


def fetch_offsets(bs, group, topic, partitions, version=1):
    req = (old_commit.OffsetFetchRequest_v1 if version == 1 else old_commit.OffsetFetchRequest_v0)(group_id=group, topics=[(topic, partitions)])
    resp_class = old_commit.OffsetFetchResponse_v1 if version == 1 else old_commit.OffsetFetchResponse_v0
    r = call(bs, req, resp_class)
    return {p: (offset, meta, err) for _t, parts in r.topics for p, offset, meta, err in parts}


def test_api_versions_advertise_kafka_3_9_ranges(broker):
    """ApiVersions lists exactly the served ranges: down to Kafka 3.9's v0s, Produce and Fetch
    excepted."""
    assert api_versions(broker.bootstrap) == ADVERTISED


def test_every_new_version_answers(broker):
    """Every version this work added is sent with a meaningful request and its answer checked."""
    bs = broker.bootstrap
    produce(bs, "old-t", [b"a", b"b", b"c"])
    sent = set()

    # ListOffsets v0: Kafka's segment-boundary offsets, newest first.
    assert list_offsets_v0(bs, "old-t", 0, -1, 10) == (NONE, [3, 0])
    sent.add((2, 0))

    # CreateTopics v0 (no validate_only, no error message) and v1 (both).
    r = call(bs, old_admin.CreateTopicsRequest_v0(create_topic_requests=[("old-c0", 2, 1, [], [])], timeout=10000),
             old_admin.CreateTopicsResponse_v0)
    assert r.topics == [("old-c0", NONE)]
    r = call(bs, old_admin.CreateTopicsRequest_v0(create_topic_requests=[("old-c0", 2, 1, [], [])], timeout=10000),
             old_admin.CreateTopicsResponse_v0)
    assert r.topics == [("old-c0", TOPIC_ALREADY_EXISTS)]
    sent.add((19, 0))
    r = call(bs, old_admin.CreateTopicsRequest_v1(create_topic_requests=[("old-c1", 1, 1, [], [("retention.ms", "12345")])],
                                                  timeout=10000, validate_only=True), old_admin.CreateTopicsResponse_v1)
    assert r.topics == [("old-c1", NONE, None)]
    r = call(bs, old_admin.CreateTopicsRequest_v1(create_topic_requests=[("old-c0", 1, 1, [], [])], timeout=10000, validate_only=False),
             old_admin.CreateTopicsResponse_v1)
    [(name, err, message)] = r.topics
    assert (name, err) == ("old-c0", TOPIC_ALREADY_EXISTS) and message, r
    sent.add((19, 1))
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        topics = set(a.list_topics())
        assert "old-c0" in topics and "old-c1" not in topics, "validate_only created the topic"
    finally:
        a.close()

    # DeleteTopics v0: no throttle time in the answer.
    r = call(bs, old_admin.DeleteTopicsRequest_v0(topics=["old-c0", "old-never"], timeout=10000), old_admin.DeleteTopicsResponse_v0)
    assert sorted(r.topic_error_codes) == [("old-c0", NONE), ("old-never", UNKNOWN_TOPIC_OR_PARTITION)]
    sent.add((20, 0))

    # DescribeConfigs v0: is_default instead of the config source.
    r = call(bs, old_admin.DescribeConfigsRequest_v0(resources=[(2, "old-t", None), (2, "old-never", None)]),
             old_admin.DescribeConfigsResponse_v0)
    [found, missing] = r.resources
    assert found[0] == NONE and (found[2], found[3]) == (2, "old-t")
    entries = {name: (value, read_only, is_default, sensitive) for name, value, read_only, is_default, sensitive in found[4]}
    assert entries["cleanup.policy"] == ("delete", False, True, False)
    assert (missing[0], missing[3], missing[4]) == (UNKNOWN_TOPIC_OR_PARTITION, "old-never", [])
    sent.add((32, 0))

    # OffsetCommit v0 stored in ZooKeeper: a KRaft broker refuses it on every partition once
    # any exists, and reports the unknown ones when none does.
    r = call(bs, old_commit.OffsetCommitRequest_v0(group_id="old-g", topics=[("old-t", [(0, 1, ""), (5, 1, "")])]),
             old_commit.OffsetCommitResponse_v0)
    assert r.topics == [("old-t", [(0, UNSUPPORTED_VERSION), (5, UNSUPPORTED_VERSION)])]
    r = call(bs, old_commit.OffsetCommitRequest_v0(group_id="old-g", topics=[("old-never", [(0, 1, "")])]),
             old_commit.OffsetCommitResponse_v0)
    assert r.topics == [("old-never", [(0, UNKNOWN_TOPIC_OR_PARTITION)])]
    sent.add((8, 0))

    # OffsetCommit v1 (to Kafka), read back with OffsetFetch v1; OffsetFetch v0 (ZooKeeper) is
    # refused per partition.
    assert commit_v1(bs, "old-g", "old-t", [(0, 2, -1, "m")]) == {0: NONE}
    sent.add((8, 1))
    assert fetch_offsets(bs, "old-g", "old-t", [0]) == {0: (2, "m", NONE)}
    assert fetch_offsets(bs, "old-g", "old-t", [0, 1], version=0) == {0: (-1, "", UNSUPPORTED_VERSION), 1: (-1, "", UNSUPPORTED_VERSION)}
    sent.add((9, 0))

    # OffsetForLeaderEpoch v0 (end offset only) and v1 (with its epoch): the current epoch ends
    # at the log end.
    r = call(bs, old_olfe.OffsetForLeaderEpochRequest_v1(topics=[("old-t", [(0, 0), (9, 0)])]), old_olfe.OffsetForLeaderEpochResponse_v1)
    [(_t, parts)] = r.topics
    assert parts == [(NONE, 0, 0, 3), (UNKNOWN_TOPIC_OR_PARTITION, 9, -1, -1)], parts
    sent.add((23, 1))
    r = call(bs, old_olfe.OffsetForLeaderEpochRequest_v0(topics=[("old-t", [(0, 0)])]), old_olfe.OffsetForLeaderEpochResponse_v0)
    assert r.topics == [("old-t", [(NONE, 0, 3)])]
    sent.add((23, 0))

    # WriteTxnMarkers v0 (kafka-python has no class for it): an abort marker lands as one
    # control record; an unknown partition is refused.
    body = struct.pack(">i", 1) + struct.pack(">qh?", 4242, 0, False) + struct.pack(">i", 2)
    body += kstr("old-t") + struct.pack(">ii", 1, 0) + kstr("old-never") + struct.pack(">ii", 1, 0)
    body += struct.pack(">i", 0)  # coordinator epoch
    resp = exchange(bs, frame(27, 0, body, correlation_id=77))
    assert resp is not None, "WriteTxnMarkers v0 closed the connection"
    expected = struct.pack(">ii", 77, 1) + struct.pack(">qi", 4242, 2)
    expected += kstr("old-t") + struct.pack(">iih", 1, 0, NONE) + kstr("old-never") + struct.pack(">iih", 1, 0, UNKNOWN_TOPIC_OR_PARTITION)
    assert resp == expected
    assert list_offsets_v0(bs, "old-t", 0, -1, 1) == (NONE, [4]), "the marker takes an offset"
    sent.add((27, 0))

    # Produce v0 and v1 carry message format v0 (no timestamps), v2 format v1; the answers grow
    # a throttle time (v1) and the log append time (v2, -1 under CreateTime).
    for version, magic, value in [(0, 0, b"p0"), (1, 0, b"p1"), (2, 1, b"p2")]:
        builder = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
        builder.append(0, timestamp=1_600_000_000_000, key=b"k", value=value)
        request = getattr(old_produce, f"ProduceRequest_v{version}")(acks=1, timeout_ms=5000, topic_data=[("old-t", [(0, bytes(builder.build()))])])
        r = call(bs, request, getattr(old_produce, f"ProduceResponse_v{version}"))
        expected = (0, NONE, 4 + version) + ((-1,) if version == 2 else ())
        assert r.responses == [("old-t", [expected])], (version, r)
        assert version == 0 or r.throttle_time_ms == 0
        sent.add((0, version))

    # Fetch v0-1 answer format v0, v2-3 format v1 (timestamps), v3 within max_bytes: the
    # producer's three values, the abort marker left out, and what the old producers wrote.
    for version in range(4):
        args = dict(replica_id=-1, max_wait_ms=0, min_bytes=0, topics=[("old-t", [(0, 0, 1 << 20)])])
        if version == 3:
            args["max_bytes"] = 1 << 20
        r = call(bs, getattr(old_fetch, f"FetchRequest_v{version}")(**args), getattr(old_fetch, f"FetchResponse_v{version}"))
        [(_t, [(index, error, high_watermark, records)])] = r.responses
        assert (index, error, high_watermark) == (0, NONE, 7), (version, r)
        got = []
        batches = MemoryRecords(records)
        while (batch := batches.next_batch()) is not None:
            assert batch.magic == (0 if version < 2 else 1), version
            got += [(rec.offset, rec.value, rec.timestamp) for rec in batch]
        assert [(o, v) for o, v, _ts in got] == [(0, b"a"), (1, b"b"), (2, b"c"), (4, b"p0"), (5, b"p1"), (6, b"p2")], (version, got)
        if version >= 2:
            assert [ts for _o, _v, ts in got][3:] == [-1, -1, 1_600_000_000_000], got
        sent.add((1, version))

    assert sent == NEW_VERSIONS
    assert all(ADVERTISED[k][0] <= v <= ADVERTISED[k][1] for k, v in NEW_VERSIONS)


def test_list_offsets_v0_as_kafka_3_9(broker_factory):
    """ListOffsets v0 answers from segment boundaries (Kafka's `legacyFetchOffsetsBefore`):
    latest and earliest, up to max_num_offsets of them, times compared with segment mtimes, and
    a consumer held at the high watermark."""
    b = broker_factory(["log.segment.bytes=1024"])
    bs = b.bootstrap
    produce(bs, "lo0", [b"x" * 300 for _ in range(10)])
    error, offsets = list_offsets_v0(bs, "lo0", 0, -1, 100)
    assert error == NONE
    # Several segments: the log end first, then every segment base down to 0.
    assert offsets[0] == 10 and offsets[-1] == 0 and len(offsets) > 2, offsets
    assert offsets == sorted(offsets, reverse=True)
    assert list_offsets_v0(bs, "lo0", 0, -1, 1) == (NONE, [10])
    assert list_offsets_v0(bs, "lo0", 0, -2, 5) == (NONE, [0])
    assert list_offsets_v0(bs, "lo0", 0, -1, 0) == (NONE, [])
    # A time before every segment was written: nothing; far in the future: everything.
    assert list_offsets_v0(bs, "lo0", 0, 1000, 100) == (NONE, [])
    assert list_offsets_v0(bs, "lo0", 0, 2**62, 100) == (NONE, offsets)
    # v0 knows no other negative timestamp (max timestamp, -3, came with v7).
    assert list_offsets_v0(bs, "lo0", 0, -3, 1) == (UNSUPPORTED_VERSION, [])
    assert list_offsets_v0(bs, "lo0", 0, -1, -1) == (UNKNOWN_SERVER_ERROR, [])
    assert list_offsets_v0(bs, "lo0", 7, -1, 1) == (UNKNOWN_TOPIC_OR_PARTITION, [])
    assert list_offsets_v0(bs, "nope-lo0", 0, -1, 1) == (UNKNOWN_TOPIC_OR_PARTITION, [])


def test_offset_commit_v1_commit_timestamp_drives_expiry(broker_factory):
    """OffsetCommit v1 names each partition's commit time (-1: now). Offsets expire by it: a
    commit stamped in 1970 is gone at the next expiry check, one stamped now stays."""
    b = broker_factory(["offsets.retention.minutes=1", "offsets.retention.check.interval.ms=300"])
    bs = b.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics([NewTopic("ts-t", 2, 1)])
    finally:
        a.close()
    assert commit_v1(bs, "ts-g", "ts-t", [(0, 5, 1000, "old"), (1, 6, -1, "new")]) == {0: NONE, 1: NONE}
    deadline = time.time() + 20
    while time.time() < deadline:
        got = fetch_offsets(bs, "ts-g", "ts-t", [0, 1])
        if got[0][0] == -1:
            break
        time.sleep(0.2)
    assert got == {0: (-1, "", NONE), 1: (6, "new", NONE)}, got


def test_describe_configs_v0_is_default(broker):
    """DescribeConfigs v0 flags what is not set (is_default): the override is not a default, the
    rest are; kafka-python pinned to a 1.0 broker reads it and keeps only the override. (Kafka
    0.11-2.6 answered so; 2.7-3.9 always send false, a regression Strom does not copy.)"""
    bs = broker.bootstrap
    a = KafkaAdminClient(bootstrap_servers=bs)
    try:
        a.create_topics([NewTopic("dc0", 1, 1, topic_configs={"retention.ms": "12345"})])
    finally:
        a.close()
    r = call(bs, old_admin.DescribeConfigsRequest_v0(resources=[(2, "dc0", ["retention.ms", "segment.bytes"])]),
             old_admin.DescribeConfigsResponse_v0)
    [(err, _msg, _type, name, entries)] = r.resources
    assert (err, name) == (NONE, "dc0")
    assert sorted(entries) == [("retention.ms", "12345", False, False, False), ("segment.bytes", "1073741824", False, True, False)]
    # kafka-python 3 with api_version=(1, 0) speaks DescribeConfigs v0 and keeps the non-defaults.
    old = KafkaAdminClient(bootstrap_servers=bs, api_version=(1, 0))
    try:
        got = old.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "dc0")])
    finally:
        old.close()
    entries = got["topic"]["dc0"]
    assert set(entries) == {"retention.ms"}, got
    assert (entries["retention.ms"]["value"], entries["retention.ms"]["is_default"]) == ("12345", False), got


def test_kafka_python_speaking_0_8_2(broker):
    """kafka-python pinned to a 0.8.2 broker: ListOffsets v0 for the ends of the log, OffsetCommit
    v1 and OffsetFetch v1 for a standalone consumer's position, read back after a restart of the
    consumer (what a restarted sarama group needs)."""
    bs = broker.bootstrap
    produce(bs, "kp082", [b"%d" % i for i in range(5)])
    tp = TopicPartition("kp082", 0)
    c = KafkaConsumer(bootstrap_servers=bs, api_version=(0, 8, 2), group_id="kp082-g", enable_auto_commit=False)
    try:
        c.assign([tp])
        assert c.end_offsets([tp]) == {tp: 5}
        assert c.beginning_offsets([tp]) == {tp: 0}
        c.commit({tp: OffsetAndMetadata(3, "meta", -1)})
    finally:
        c.close()
    c = KafkaConsumer(bootstrap_servers=bs, api_version=(0, 8, 2), group_id="kp082-g", enable_auto_commit=False)
    try:
        c.assign([tp])
        assert c.committed(tp) == 3
    finally:
        c.close()
    assert fetch_offsets(bs, "kp082-g", "kp082", [0]) == {0: (3, "meta", NONE)}
