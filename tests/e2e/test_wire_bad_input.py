"""Bad input on the wire, spoken by hand: the broker answers with Kafka's error codes or closes
the one connection, and keeps serving everybody else with their data intact."""
import os
import random
import socket
import struct
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from wire import exchange, frame, kstr, metadata, uvarint

# Entries ApiVersions must advertise (api_key: (min, max)). A subset: more APIs get added.
ADVERTISED = {
    0: (0, 12),    # Produce
    1: (0, 12),    # Fetch
    2: (0, 8),     # ListOffsets
    3: (0, 12),    # Metadata
    18: (0, 4),    # ApiVersions
    19: (0, 7),    # CreateTopics
    20: (0, 6),    # DeleteTopics
    21: (0, 2),    # DeleteRecords
    22: (0, 5),    # InitProducerId
    32: (0, 4),    # DescribeConfigs
    33: (0, 2),    # AlterConfigs
    37: (0, 3),    # CreatePartitions
    44: (0, 1),    # IncrementalAlterConfigs
    60: (0, 1),    # DescribeCluster
}
INVALID_TOPIC_EXCEPTION, UNKNOWN_TOPIC_OR_PARTITION = 17, 3


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def varint(n):
    """Zigzag, then unsigned: a record field's signed varint."""
    return uvarint((n << 1) ^ (n >> 63))


def record_batch(values):
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 1000, 1000, -1, -1, -1, len(values)) + records
    crc = crc32c(after_crc)
    rest = struct.pack(">ibI", 0, 2, crc) + after_crc  # partitionLeaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(rest)) + rest


def produce_v3(topic, batch, acks=1, partition=0):
    t = topic.encode()
    body = struct.pack(">hhii", -1, acks, 5000, 1)  # null transactional id, acks, timeout, 1 topic
    body += struct.pack(">h", len(t)) + t + struct.pack(">i", 1)
    body += struct.pack(">ii", partition, len(batch)) + batch
    return frame(0, 3, body)


def produce_error(resp):
    """(error_code, base_offset) of the single partition of a Produce v3 response."""
    (n_topics,) = struct.unpack_from(">i", resp, 4)  # after correlation id
    assert n_topics == 1
    (tlen,) = struct.unpack_from(">h", resp, 8)
    pos = 10 + tlen + 4
    _partition, error, base_offset = struct.unpack_from(">ihq", resp, pos)
    return error, base_offset


def assert_still_serving(broker, topic="still-alive"):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    offset = p.send(topic, b"ok").get(timeout=10).offset
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, offset)
    assert next(iter(c)).value == b"ok"
    c.close()
    assert broker.proc.poll() is None, "the broker process must still be running"


def api_versions_v0(resp):
    """(correlation id, error code, {api_key: (min, max)}) of an ApiVersions v0 response."""
    corr, err, n = struct.unpack_from(">ihi", resp)
    keys = {}
    for i in range(n):
        k, lo, hi = struct.unpack_from(">hhh", resp, 10 + 6 * i)
        keys[k] = (lo, hi)
    assert len(resp) == 10 + 6 * n, "trailing bytes after an ApiVersions v0 response"
    return corr, err, keys


def recv_frame(s):
    size = s.recv(4, socket.MSG_WAITALL)
    assert len(size) == 4, "connection closed instead of answering"
    (n,) = struct.unpack(">i", size)
    return s.recv(n, socket.MSG_WAITALL)


def closed_by_broker(s, timeout=3.0):
    """True once the broker closes `s` (EOF or reset) within `timeout`; any response fails."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    assert data == b"", f"expected the connection to be closed, got a response: {data[:64]!r}"
    return True


def test_api_versions_current_and_unsupported(broker):
    """ApiVersions v0 lists (at least) the ranges Strom serves; an unknown ApiVersions version
    (KIP-511) gets a v0 answer with UNSUPPORTED_VERSION and the same list, and the connection stays
    usable for the client's retry with a version it now knows."""
    corr, err, keys = api_versions_v0(exchange(broker.bootstrap, frame(18, 0)))
    assert (corr, err) == (7, 0)
    assert {k: keys.get(k) for k in ADVERTISED} == ADVERTISED
    host, port = broker.bootstrap.rsplit(":", 1)
    for version in (99, 5, 0x7FFF, -1):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(frame(18, version, b"\x00" * 16, correlation_id=987654))
            assert api_versions_v0(recv_frame(s)) == (987654, 35, keys), f"ApiVersions v{version}"
            s.sendall(frame(18, 0, correlation_id=987655))
            assert api_versions_v0(recv_frame(s)) == (987655, 0, keys)


# Each closes its connection (and only it), quickly and without an answer.
CLOSING = {
    "unknown API key": frame(9999, 0),
    "negative API key": frame(-1, 0),
    # A valid CreateDelegationToken v1 body: an API Kafka has and Strom does not serve.
    "unserved API": frame(38, 1, struct.pack(">iq", 0, -1)),
    "Produce v-1, below the lowest": frame(0, -1, b"\x00" * 32),
    "Produce v2, body cut short": frame(0, 2, b"\x00\x01\x00\x00\x13\x88\x00\x00\x00\x05"),
    "Produce v13, above the highest": frame(0, 13, b"\x00" * 32),
    "Produce v99": frame(0, 99, b"\x00" * 20),
    "Metadata v13, above the highest": frame(3, 13, b"\x00" * 32),
    "Fetch v-1, below the lowest": frame(1, -1, b"\x00" * 32),
    "Fetch v3, topic count past the frame": frame(1, 3, b"\xff\xff\xff\xff" + b"\x00" * 12 + b"\x7f\xff\xff\xff"),
    "frame claiming 2 GiB": struct.pack(">i", 2**31 - 1) + b"\x00" * 64,
    "frame one byte over the default 100 MiB limit": struct.pack(">i", 104857601) + b"\x00\x12\x00\x00",
    "negative size": struct.pack(">i", -5) + b"\x00" * 8,
    "i32::MIN size": struct.pack(">i", -(2**31)) + b"\x00" * 16,
    "zero size": struct.pack(">i", 0),
    "smaller than any header": struct.pack(">i", 3) + b"abc",
    "header without client id": struct.pack(">i", 8) + struct.pack(">hhi", 18, 0, 1),
    "client id longer than the frame": struct.pack(">i", 12) + struct.pack(">hhih", 18, 0, 1, 0x7FFF) + b"ab",
    # Counts and lengths far beyond the frame (i32::MAX topics used to abort the process).
    "Metadata v1, i32::MAX topics": frame(3, 1, struct.pack(">i", 2**31 - 1)),
    "Metadata v1, topic name longer than the frame": frame(3, 1, struct.pack(">ih", 1, 0x7FFF) + b"abc"),
    "Metadata v12, huge compact array": frame(3, 12, uvarint(0xFFFFFFFF), flexible=True),
    "Produce v3, i32::MAX topics": frame(0, 3, struct.pack(">hhii", -1, 1, 1000, 2**31 - 1)),
    "Produce v3, records i32::MAX long": frame(0, 3, struct.pack(">hhii", -1, 1, 1000, 1) + kstr("t")
                                                + struct.pack(">iii", 1, 0, 2**31 - 1)),
    "CreateTopics v2, i32::MAX topics": frame(19, 2, struct.pack(">i", 2**31 - 1)),
    "ListOffsets v0, i32::MAX topics": frame(2, 0, struct.pack(">ii", -1, 2**31 - 1)),
    "OffsetCommit v1, i32::MAX partitions": frame(8, 1, kstr("g") + struct.pack(">i", -1) + kstr("") + struct.pack(">i", 1)
                                                  + kstr("t") + struct.pack(">i", 2**31 - 1)),
    "WriteTxnMarkers v0, marker cut short": frame(27, 0, struct.pack(">iqh", 1, 5, 0)),
    "Produce body that does not decode": frame(0, 3, b"\xff" * 40),
}


def test_malformed_frames_close_only_their_connection(broker):
    """Every CLOSING case closes its connection within 2 s without an answer; a frame cut short by
    the client's EOF is closed too; random garbage never takes the broker down; a connection that
    was open all along keeps working, and clients get their data as before."""
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as good:
        good.sendall(frame(18, 0, correlation_id=10))
        assert api_versions_v0(recv_frame(good))[:2] == (10, 0)
        for name, raw in CLOSING.items():
            with socket.create_connection((host, int(port)), timeout=5) as s:
                start = time.monotonic()
                try:
                    s.sendall(raw)
                except (ConnectionResetError, BrokenPipeError):
                    continue  # closed while we were still sending
                assert closed_by_broker(s, timeout=2.0), f"{name}: still open after 2 s"
                assert time.monotonic() - start < 2.0, name
        # The size prefix promises 100 bytes; the client sends 20 and half-closes.
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(struct.pack(">i", 100) + frame(18, 0)[4:] + b"\x00" * 2)
            s.shutdown(socket.SHUT_WR)
            assert closed_by_broker(s), "a frame cut short by EOF must close the connection"
        for seed in range(5):
            rnd = random.Random(seed)
            junk = bytes(rnd.randrange(256) for _ in range(200))
            exchange(broker.bootstrap, struct.pack(">i", len(junk)) + junk)
        good.sendall(frame(18, 0, correlation_id=11))
        assert api_versions_v0(recv_frame(good))[:2] == (11, 0)
    assert_still_serving(broker)


# (api_key, version, flexible): every API, old and flexible encodings.
RANDOM_BODY_TARGETS = [(0, 3, False), (0, 9, True), (1, 12, True), (2, 8, True), (3, 1, False), (3, 12, True),
                       (19, 7, True), (20, 6, True), (21, 2, True), (22, 5, True), (32, 4, True), (33, 2, True),
                       (37, 3, True), (44, 1, True), (60, 1, True), (29, 3, True), (30, 1, False), (31, 2, True), (17, 1, False), (36, 2, True),
                       # Kafka 3.9's old versions, coded by Strom itself (old_versions.rs).
                       (2, 0, False), (8, 0, False), (8, 1, False), (9, 0, False), (19, 0, False), (19, 1, False),
                       (20, 0, False), (23, 0, False), (23, 1, False), (27, 0, False), (32, 0, False),
                       (29, 0, False), (30, 0, False), (31, 0, False)]


def test_random_bodies_behind_valid_headers(broker):
    """Garbage behind a valid header of every served API: if it happens to decode, the answer
    echoes the correlation id; otherwise the connection closes. The broker keeps serving."""
    host, port = broker.bootstrap.rsplit(":", 1)
    for api_key, version, flexible in RANDOM_BODY_TARGETS:
        for seed in range(8):
            rnd = random.Random(seed * 131 + api_key)
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(frame(api_key, version, body, correlation_id=5555 + seed, flexible=flexible))
                try:
                    head = s.recv(8, socket.MSG_WAITALL)
                except ConnectionResetError:
                    head = b""
                if head:
                    assert len(head) == 8, (api_key, version, seed)
                    assert struct.unpack(">ii", head)[1] == 5555 + seed, "response with a wrong correlation id"
    assert_still_serving(broker)


def test_answer_to_an_earlier_pipelined_request_comes_before_the_close(broker):
    """Responses stay in request order: a good request ahead of a bad one on the same connection
    is answered before the connection closes."""
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(frame(18, 0, correlation_id=1) + frame(9999, 0, correlation_id=2))
        assert api_versions_v0(recv_frame(s))[:2] == (1, 0)
        assert closed_by_broker(s)


def test_oversized_frame_against_configured_limit(broker_factory):
    """socket.request.max.bytes is the largest frame served: exactly at it is answered, one byte
    over closes, and a frame announcing more is closed on its size prefix, before its body."""
    b = broker_factory(["socket.request.max.bytes=1000"])
    assert exchange(b.bootstrap, frame(3, 1, b"\x00" * 2000)) is None
    at_limit = frame(18, 0, correlation_id=31, client_id=b"c" * (1000 - 10))
    assert len(at_limit) == 4 + 1000
    assert api_versions_v0(exchange(b.bootstrap, at_limit))[:2] == (31, 0)
    assert exchange(b.bootstrap, frame(18, 0, correlation_id=32, client_id=b"c" * (1001 - 10))) is None
    host, port = b.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(struct.pack(">i", 2000) + frame(3, 1)[4:] + b"\x00" * 80)  # the rest never comes
        assert closed_by_broker(s, timeout=2.0), "the broker waited for the body of an oversized frame"
    assert_still_serving(b)


def test_produce_validates_batches(broker):
    KafkaProducer(bootstrap_servers=broker.bootstrap).send("wire", b"first").get(timeout=10)
    good = record_batch([b"hello", b"world"])
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("wire", good)))
    assert (err, base) == (0, 1)
    # Flipped: a value byte, the CRC field itself (bytes 17..20), the attributes (byte 21 on:
    # the first bytes the CRC covers).
    for pos, mask in ((-3, 0xFF), (20, 0xFF), (22, 0x08)):
        bad = bytearray(good)
        bad[pos] ^= mask
        err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", bytes(bad))))
        assert err == 2, f"byte {pos} flipped"  # CORRUPT_MESSAGE
    # Truncated anywhere, or a whole batch followed by part of a second: corrupt too.
    for cut in (1, 4, 20, len(good) - 61, len(good) - 30):
        err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", good[:-cut])))
        assert err == 2, f"batch cut {cut} bytes short"
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", good + good[:30])))
    assert err == 2, "trailing partial batch"
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("no-such-topic", good)))
    assert err == 3  # UNKNOWN_TOPIC_OR_PARTITION: Produce never auto-creates
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", good, partition=1)))
    assert err == 3  # nor partitions the topic does not have
    # Nothing was appended by the rejected requests: the next good batch lands right after.
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("wire", good)))
    assert (err, base) == (0, 3)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    c.assign([TopicPartition("wire", 0)])
    assert [m.value for _, m in zip(range(5), c)] == [b"first", b"hello", b"world", b"hello", b"world"]
    assert c.end_offsets([TopicPartition("wire", 0)])[TopicPartition("wire", 0)] == 5
    c.close()


def test_batch_over_max_message_bytes(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    a.create_topics([NewTopic("small", 1, 1, topic_configs={"max.message.bytes": "1000"})])
    a.close()
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("small", record_batch([b"x" * 5000]))))
    assert err == 10  # MESSAGE_TOO_LARGE
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("small", record_batch([b"x" * 100]))))
    assert (err, base) == (0, 0)


def test_metadata_refuses_invalid_topic_names_and_creates_nothing(broker):
    """Metadata naming an invalid topic (v4 allowing auto-creation, v1 where creation is implied)
    answers INVALID_TOPIC_EXCEPTION and creates nothing, on disk either ("." and ".." are
    directory names); the longest legal name (249 characters) is auto-created."""
    assert_still_serving(broker, "before")
    before = sorted(os.listdir(broker.data_dir))
    for name in ["bad name!", "slash/in/name", ".", "..", "t" * 250, ""]:
        assert metadata(broker.bootstrap, [name]) == {name: (INVALID_TOPIC_EXCEPTION, 0)}, name
        assert metadata(broker.bootstrap, [name], version=1) == {name: (INVALID_TOPIC_EXCEPTION, 0)}, name
    assert sorted(metadata(broker.bootstrap, None)) == ["before"]
    assert sorted(os.listdir(broker.data_dir)) == before, "nothing may be created on disk"
    assert metadata(broker.bootstrap, ["t" * 249]) == {"t" * 249: (0, 1)}


def test_metadata_auto_creation_follows_the_request_and_the_broker(broker_factory):
    """Metadata v4 with allow_auto_topic_creation=false does not create; true creates with
    num.partitions. With auto.create.topics.enable=false nothing is auto-created (v4 or v1, or by
    a producer's Metadata), invalid names still get INVALID_TOPIC_EXCEPTION, and topics created
    by CreateTopics work."""
    b = broker_factory()
    assert metadata(b.bootstrap, ["not-asked-for"], allow_auto_create=False) == {"not-asked-for": (UNKNOWN_TOPIC_OR_PARTITION, 0)}
    assert "not-asked-for" not in metadata(b.bootstrap, None)
    assert metadata(b.bootstrap, ["not-asked-for"]) == {"not-asked-for": (0, 1)}
    assert metadata(b.bootstrap, None)["not-asked-for"] == (0, 1)

    off = broker_factory(["auto.create.topics.enable=false"])
    assert metadata(off.bootstrap, ["unknown"]) == {"unknown": (UNKNOWN_TOPIC_OR_PARTITION, 0)}
    assert metadata(off.bootstrap, ["unknown"], version=1) == {"unknown": (UNKNOWN_TOPIC_OR_PARTITION, 0)}
    assert metadata(off.bootstrap, ["bad name!"]) == {"bad name!": (INVALID_TOPIC_EXCEPTION, 0)}
    p = KafkaProducer(bootstrap_servers=off.bootstrap, max_block_ms=500)
    with pytest.raises(Exception):
        p.send("unknown", b"x").get(timeout=5)
    p.close(timeout=1)
    assert metadata(off.bootstrap, None) == {}
    a = KafkaAdminClient(bootstrap_servers=off.bootstrap)
    a.create_topics([NewTopic("made-by-admin", 1, 1)])
    a.close()
    assert_still_serving(off, "made-by-admin")
