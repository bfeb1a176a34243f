"""Bad input on the wire, spoken by hand: the broker answers with Kafka's error codes or closes
the one connection, and keeps serving everybody else with their data intact."""
import socket
import struct

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def frame(api_key, version, body=b"", correlation_id=7, client_id=b"wire-test"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def exchange(bootstrap, raw, timeout=5):
    """Sends raw bytes; returns the response payload, or None if the broker closed the connection."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(raw)
        try:
            size = s.recv(4, socket.MSG_WAITALL)
        except ConnectionResetError:
            return None
        if len(size) < 4:
            return None
        (n,) = struct.unpack(">i", size)
        return s.recv(n, socket.MSG_WAITALL)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def record_batch(values):
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 1000, 1000, -1, -1, -1, len(values)) + records
    crc = crc32c(after_crc)
    rest = struct.pack(">ibI", 0, 2, crc) + after_crc  # partitionLeaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(rest)) + rest


def produce_v3(topic, batch, acks=1):
    t = topic.encode()
    body = struct.pack(">hhii", -1, acks, 5000, 1)  # null transactional id, acks, timeout, 1 topic
    body += struct.pack(">h", len(t)) + t + struct.pack(">i", 1)
    body += struct.pack(">ii", 0, len(batch)) + batch
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


def test_api_versions_current_and_unsupported(broker):
    resp = exchange(broker.bootstrap, frame(18, 0))
    corr, err, n = struct.unpack_from(">ihi", resp)
    keys = {struct.unpack_from(">hhh", resp, 10 + 6 * i)[0]: struct.unpack_from(">hhh", resp, 10 + 6 * i)[1:] for i in range(n)}
    assert (corr, err) == (7, 0)
    assert keys[0] == (3, 12) and keys[1] == (4, 12) and 18 in keys
    # KIP-511: an unknown ApiVersions version gets a v0 answer with UNSUPPORTED_VERSION (35).
    resp = exchange(broker.bootstrap, frame(18, 99))
    corr, err, n = struct.unpack_from(">ihi", resp)
    assert (corr, err) == (7, 35) and n == len(keys)


def test_malformed_frames_close_only_their_connection(broker):
    cases = [
        frame(9999, 0),                                   # unknown API key
        frame(0, 99, b"\x00" * 20),                       # Produce version outside what we advertise
        struct.pack(">i", 2**31 - 1) + b"\x00" * 64,      # frame claiming 2 GiB
        struct.pack(">i", -5) + b"\x00" * 8,              # negative size
        struct.pack(">i", 3) + b"abc",                    # smaller than any header
        frame(3, 1, struct.pack(">i", 2**31 - 1)),        # Metadata claiming i32::MAX topics (used to abort)
        frame(0, 3, b"\xff" * 40),                        # Produce body that does not decode
    ]
    for i, raw in enumerate(cases):
        assert exchange(broker.bootstrap, raw) is None, f"case {i} should close the connection"
    for seed in range(5):
        import random
        rnd = random.Random(seed)
        junk = bytes(rnd.randrange(256) for _ in range(200))
        exchange(broker.bootstrap, struct.pack(">i", len(junk)) + junk)
    assert_still_serving(broker)


def test_oversized_frame_against_configured_limit(broker_factory):
    b = broker_factory(["socket.request.max.bytes=1000"])
    assert exchange(b.bootstrap, frame(3, 1, b"\x00" * 2000)) is None
    assert_still_serving(b)


def test_produce_validates_batches(broker):
    KafkaProducer(bootstrap_servers=broker.bootstrap).send("wire", b"first").get(timeout=10)
    good = record_batch([b"hello", b"world"])
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("wire", good)))
    assert (err, base) == (0, 1)
    bad = bytearray(good)
    bad[-3] ^= 0xFF  # inside the value, under the CRC
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", bytes(bad))))
    assert err == 2  # CORRUPT_MESSAGE
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("wire", good[:-4])))
    assert err == 2  # a truncated batch is corrupt too
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("no-such-topic", good)))
    assert err == 3  # UNKNOWN_TOPIC_OR_PARTITION: Produce never auto-creates
    # Nothing was appended by the rejected requests: the next good batch lands right after.
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("wire", good)))
    assert (err, base) == (0, 3)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    c.assign([TopicPartition("wire", 0)])
    assert [m.value for m in c] == [b"first", b"hello", b"world", b"hello", b"world"]
    c.close()


def test_batch_over_max_message_bytes(broker):
    from kafka.admin import KafkaAdminClient, NewTopic
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    a.create_topics([NewTopic("small", 1, 1, topic_configs={"max.message.bytes": "1000"})])
    a.close()
    err, _ = produce_error(exchange(broker.bootstrap, produce_v3("small", record_batch([b"x" * 5000]))))
    assert err == 10  # MESSAGE_TOO_LARGE
    err, base = produce_error(exchange(broker.bootstrap, produce_v3("small", record_batch([b"x" * 100]))))
    assert (err, base) == (0, 0)
