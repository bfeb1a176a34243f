"""A minimal Kafka protocol client for benchmarks that must not be limited by their client: it
sends pre-encoded requests and counts what comes back, with no per-record work. Over TLS it
hands Python's ssl module (OpenSSL) whole requests, which go out as full 16 KiB TLS records.

Requests are the non-flexible versions every broker serves: SaslHandshake v1, SaslAuthenticate
v1, Produce v7 and Fetch v4."""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct

SCRAM_HASH = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
PRODUCE, FETCH, SASL_HANDSHAKE, SASL_AUTHENTICATE = 0, 1, 17, 36


def frame(api_key, version, body, corr, client_id=b"bench"):
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def recv_exactly(sock, n, buf=None):
    """`n` bytes from `sock` (into `buf`, a bytearray of at least n bytes, when given)."""
    out = buf if buf is not None else bytearray(n)
    view, got = memoryview(out), 0
    while got < n:
        r = sock.recv_into(view[got:n])
        if r == 0:
            raise ConnectionError("connection closed")
        got += r
    return view[:n]


def read_frame(sock, buf=None):
    (n,) = struct.unpack(">i", recv_exactly(sock, 4))
    if buf is not None and len(buf) < n:
        buf.extend(bytes(n - len(buf)))
    return recv_exactly(sock, n, buf)


def sasl_authenticate(sock, token, corr):
    """SaslAuthenticate v1: the server's token, or an exception."""
    sock.sendall(frame(SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token, corr))
    r = bytes(read_frame(sock))
    _, code = struct.unpack(">ih", r[:6])
    (mlen,) = struct.unpack(">h", r[6:8])
    pos = 8 + max(mlen, 0)
    (blen,) = struct.unpack(">i", r[pos:pos + 4])
    if code != 0:
        raise RuntimeError(f"authentication failed: error {code}")
    return r[pos + 4:pos + 4 + blen]


class ScramClient:
    """RFC 5802's client side; the salted password is cached per (salt, iterations), as real
    clients may cache it, so that repeated logins cost the broker's side only."""

    def __init__(self, mechanism, user, password):
        self.mechanism, self.user, self.password = mechanism, user, password
        self.algo = SCRAM_HASH[mechanism]
        self.salted = {}

    def handshake(self, sock):
        m = self.mechanism.encode()
        sock.sendall(frame(SASL_HANDSHAKE, 1, struct.pack(">h", len(m)) + m, 1))
        assert struct.unpack(">ih", bytes(read_frame(sock)[:6])) == (1, 0), "SaslHandshake refused"

    def first(self, sock):
        self.bare = f"n={self.user},r={base64.b64encode(os.urandom(18)).decode()}"
        self.server_first = sasl_authenticate(sock, b"n,," + self.bare.encode(), 2).decode()

    def proof(self):
        """The client-final message for the last server-first, and the server-final expected."""
        fields = dict(f.split("=", 1) for f in self.server_first.split(","))
        key = (fields["s"], fields["i"])
        if key not in self.salted:
            self.salted[key] = hashlib.pbkdf2_hmac(self.algo, self.password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        salted = self.salted[key]
        client_key = hmac.new(salted, b"Client Key", self.algo).digest()
        stored = hashlib.new(self.algo, client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        message = f"{self.bare},{self.server_first},{without_proof}".encode()
        proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored, message, self.algo).digest()))
        server_key = hmac.new(salted, b"Server Key", self.algo).digest()
        expected = b"v=" + base64.b64encode(hmac.new(server_key, message, self.algo).digest())
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode(), expected

    def finish(self, sock, final, expected):
        assert sasl_authenticate(sock, final, 3) == expected, "the server's signature does not verify"

    def login(self, sock):
        """The whole exchange on `sock`, checking the server's signature."""
        self.handshake(sock)
        self.first(sock)
        self.finish(sock, *self.proof())


def connect(addr, tls=None, scram=None):
    """A connected socket: plain, or wrapped by `tls` (an ssl.SSLContext), then logged in with
    `scram` (a ScramClient) when given."""
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=addr[0])
    if scram is not None:
        scram.login(sock)
    return sock


class SinkTls:
    """TLS 1.3 through `ssl.MemoryBIO` on a plain socket, so that a benchmark client can stop
    decrypting what the server sends: after the first `skip`, the server's application data is
    read past by TLS record lengths alone (each record carries 17 bytes besides its data: the
    inner content type and the AEAD tag). It stands in for clients on other machines, whose
    decryption does not share this machine's cores; the requests are still encrypted."""

    def __init__(self, addr, ctx):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=addr[0])
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()
        self.raw = None  # the undecrypted bytes, once skipping started
        self.carry = 0  # plaintext bytes of records already passed that belong to the next skip

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 18)
        if not data:
            raise ConnectionError("connection closed")
        self.inc.write(data)

    def sendall(self, data):
        self.tls.write(data)
        self._flush()

    def recv_into(self, view):
        assert self.raw is None, "no decryption after skipping started"
        while True:
            try:
                return self.tls.read(len(view), view)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()

    def skip(self, n):
        """Reads past the next `n` bytes of the server's plaintext without decrypting them."""
        if self.raw is None:
            # What OpenSSL has decrypted and not handed out yet, then the untouched records.
            while self.tls.pending():
                self.carry += len(self.tls.read(self.tls.pending()))
            self.raw, self.pos = bytearray(self.inc.read()), 0
        take = min(n, self.carry)
        self.carry -= take
        n -= take
        while n > 0:
            if len(self.raw) - self.pos < 5 or len(self.raw) - self.pos < 5 + int.from_bytes(self.raw[self.pos + 3:self.pos + 5], "big"):
                del self.raw[:self.pos]
                self.pos = 0
                data = self.sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("connection closed")
                self.raw += data
                continue
            assert self.raw[self.pos] == 23, f"TLS record type {self.raw[self.pos]}, not application data"
            plain = int.from_bytes(self.raw[self.pos + 3:self.pos + 5], "big") - 17
            self.pos += 5 + plain + 17
            take = min(n, plain)
            n -= take
            self.carry += plain - take

    def close(self):
        self.sock.close()


class SinkPlain:
    """The plaintext counterpart of SinkTls: `skip` reads bytes into a scratch buffer unparsed."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.scratch = memoryview(bytearray(1 << 20))

    def sendall(self, data):
        self.sock.sendall(data)

    def recv_into(self, view):
        return self.sock.recv_into(view)

    def skip(self, n):
        while n > 0:
            got = self.sock.recv_into(self.scratch[:min(n, len(self.scratch))])
            if got == 0:
                raise ConnectionError("connection closed")
            n -= got

    def close(self):
        self.sock.close()


def record_batch(records, size):
    """One v2 batch of `records` values of `size` bytes (kafka-python's builder; the broker
    rewrites the base offset, which the CRC does not cover, so the batch can be sent again)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    value = b"x" * size
    for i in range(records):
        b.append(i, timestamp=None, key=None, value=value, headers=[])
    return bytes(b.build())


def kstr(s):
    return struct.pack(">h", len(s)) + s.encode()


def produce_request(topic, partition, batch, corr):
    """Produce v7, acks=1."""
    body = struct.pack(">hhi", -1, 1, 30000) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
    body += struct.pack(">ii", partition, len(batch)) + batch
    return frame(PRODUCE, 7, body, corr)


def produce(sock, topic, batch, requests, window=4):
    """Sends `requests` produce requests of `batch` to partition 0, `window` in flight, and
    checks each answer's error code. The request is built once and only its correlation id
    (bytes 8-11 of the frame) changes: allocating a fresh megabyte per request made the client's
    CPU depend on what the allocator had seen before (4x more after no fetch than after one)."""
    request = bytearray(produce_request(topic, 0, batch, 0))
    sent = done = 0
    while done < requests:
        while sent < requests and sent - done < window:
            struct.pack_into(">i", request, 8, sent)
            sock.sendall(request)
            sent += 1
        r = bytes(read_frame(sock))
        # correlation id, topics[1], name, partitions[1], index, error code
        (nlen,) = struct.unpack(">h", r[8:10])
        (code,) = struct.unpack(">h", r[10 + nlen + 8:10 + nlen + 10])
        assert code == 0, f"produce error {code}"
        done += 1


def fetch_request(topic, offset, max_bytes, corr):
    """Fetch v4 of partition 0 from `offset`, at most `max_bytes`."""
    body = struct.pack(">iiiib", -1, 500, 1, max_bytes, 0) + struct.pack(">i", 1) + kstr(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, max_bytes)
    return frame(FETCH, 4, body, corr)


def fetch(sock, topic, end_offset, batch_len, per_batch, batches_per_fetch=8, window=3, skip=False):
    """Reads partition 0, written as batches of `per_batch` records and `batch_len` bytes each,
    from offset 0 to `end_offset`, with Fetch v4 requests of `batches_per_fetch` whole batches,
    `window` in flight (the offsets to ask for are known from the batch size, so the client
    need not wait for one answer before the next request). Returns the record bytes received;
    checks that each answer ends where the next request starts. With `skip` (`sock` is a
    SinkTls) only the first answer is decrypted and checked; the others, whose sizes follow
    from it, are read past undecrypted."""
    step = batches_per_fetch * per_batch
    offsets = list(range(0, end_offset, step))
    buf = bytearray(batches_per_fetch * batch_len + (1 << 16))
    sent = received = 0
    for i, want in enumerate(offsets):
        while sent < len(offsets) and sent - i < window:
            sock.sendall(fetch_request(topic, offsets[sent], batches_per_fetch * batch_len, sent))
            sent += 1
        batches = min(batches_per_fetch, (end_offset - want + per_batch - 1) // per_batch)
        if skip and i > 0:
            sock.skip(first_size - (batches_per_fetch - batches) * batch_len)
            received += batches * batch_len
            continue
        r = read_frame(sock, buf)
        first_size = 4 + len(r) + (batches_per_fetch - batches) * batch_len
        # correlation id, throttle, topics[1], name, partitions[1], index, error, hw, lso, aborted[], records
        (nlen,) = struct.unpack_from(">h", r, 12)
        pos = 14 + nlen + 4
        _, code, _hw, _lso = struct.unpack_from(">ihqq", r, pos)
        assert code == 0, f"fetch error {code}"
        pos += 22
        (aborted,) = struct.unpack_from(">i", r, pos)
        pos += 4 + max(aborted, 0) * 16
        (rlen,) = struct.unpack_from(">i", r, pos)
        pos += 4
        end = pos + max(rlen, 0)
        received += max(rlen, 0)
        next_offset = want
        while pos + 27 <= end:
            base, blen = struct.unpack_from(">qi", r, pos)
            if pos + 12 + blen > end:
                break  # a partial batch at the end of the response
            (delta,) = struct.unpack_from(">i", r, pos + 23)
            next_offset = base + delta + 1
            pos += 12 + blen
        assert next_offset == min(want + step, end_offset), f"fetch from {want} ended at {next_offset}"
    return received
