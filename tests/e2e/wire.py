"""Kafka requests built and parsed by hand, for tests that must see the exact bytes a broker
sends (or whether it answers at all), below any client library's retries and caches."""
import socket
import struct


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def frame(api_key, version, body=b"", correlation_id=7, client_id=b"wire-test", flexible=False):
    """A size-prefixed request with header v1 (v2, for flexible versions, adds empty tagged fields)."""
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + (uvarint(0) if flexible else b"") + body
    return struct.pack(">i", len(payload)) + payload


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


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


def metadata(bootstrap, topics, version=4, allow_auto_create=True):
    """Metadata v1 or v4 for `topics` (None: all but internal topics such as __consumer_offsets);
    {topic: (error code, partition count)}."""
    return metadata_with_brokers(bootstrap, topics, version, allow_auto_create)[1]


def metadata_with_brokers(bootstrap, topics, version=4, allow_auto_create=True):
    """The same, with the broker ids the response lists: ([ids], {topic: (error, partitions)})."""
    body = struct.pack(">i", -1) if topics is None else struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics)
    if version >= 4:
        body += struct.pack(">?", allow_auto_create)
    resp = exchange(bootstrap, frame(3, version, body, correlation_id=4242))
    assert resp is not None, "Metadata closed the connection"
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take(">h")
        s = resp[pos:pos + max(n, 0)].decode()
        pos += max(n, 0)
        return s

    assert take(">i") == 4242
    if version >= 3:
        take(">i")  # throttle
    brokers = []
    for _ in range(take(">i")):  # brokers: id, host, port, rack
        brokers.append(take(">i"))
        string(), take(">i"), string()
    if version >= 2:
        string()  # cluster id
    take(">i")  # controller id
    out = {}
    for _ in range(take(">i")):
        err, name, internal = take(">h"), string(), take(">?")
        n = take(">i")
        for _ in range(n):
            take(">hii")  # error, partition, leader
            take(">" + "i" * take(">i"))  # replicas
            take(">" + "i" * take(">i"))  # isr
        if not (internal and topics is None):
            out[name] = (err, n)
    assert pos == len(resp), "trailing bytes after a Metadata response"
    return brokers, out


COORDINATOR_GROUP, COORDINATOR_TRANSACTION = 0, 1


def find_coordinator(bootstrap, key, key_type=COORDINATOR_TRANSACTION):
    """FindCoordinator v1 for one key (key type 0: a group id, 1: a transactional id), asked of the
    broker at `bootstrap` (one host:port). Returns (error code, error message, node id, host, port)."""
    resp = exchange(bootstrap, frame(10, 1, kstr(key) + struct.pack(">b", key_type), correlation_id=1010))
    assert resp is not None, "FindCoordinator closed the connection"
    (corr, _throttle, err) = struct.unpack_from(">iih", resp, 0)
    assert corr == 1010
    pos = 10

    def string():
        nonlocal pos
        (n,) = struct.unpack_from(">h", resp, pos)
        pos += 2
        if n < 0:
            return None
        s = resp[pos:pos + n].decode()
        pos += n
        return s

    message = string()
    (node,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    host = string()
    (port,) = struct.unpack_from(">i", resp, pos)
    return err, message, node, host, port


_corr = iter(range(100, 10**9))


def recv_exactly(s, n):
    """`n` bytes from socket `s`, however the kernel splits them."""
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "the broker closed the connection"
        out += chunk
    return bytes(out)


def call(bootstrap, request, response_class=None):
    """One request built with kafka-python's protocol classes (kafka.protocol.old has every old
    version), on a fresh connection; the decoded answer, as `response_class` or, for the
    new-style classes, the request's own response class."""
    corr = next(_corr)
    request.with_header(correlation_id=corr, client_id="old-versions")
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(request.encode(header=True, framed=True))
        (n,) = struct.unpack(">i", recv_exactly(s, 4))
        data = recv_exactly(s, n)
    response = (response_class or request.header.get_response_class()).decode(data, header=True)
    assert response.header.correlation_id == corr
    return response
