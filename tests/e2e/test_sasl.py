"""SASL/PLAIN on SASL_PLAINTEXT and SASL_SSL listeners, configured as Kafka configures it
(`sasl.enabled.mechanisms`, `listener.name.<listener>.plain.sasl.jaas.config` with
`user_<name>="<password>"`), with confluent-kafka, kafka-python, aiokafka, kafkajs and kcat: the
right password gets in, a wrong one or an unknown user gets SASL_AUTHENTICATION_FAILED, and no
request is served before authentication."""
import asyncio
import shutil
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KPError

from jslib import run_js
from test_tls import api_versions_over_tls, certs, free_port  # noqa: F401 (the certs fixture)

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" '
        'user_admin="admin-secret" user_alice="alice-secret";')


def sasl_broker(broker_factory, *extra, protocol="SASL_PLAINTEXT"):
    port = free_port()
    name = protocol.lower()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,{protocol}://127.0.0.1:{port}",
                                  "sasl.enabled.mechanisms=PLAIN", f"listener.name.{name}.plain.sasl.jaas.config={JAAS}", *extra])
    b.sasl_bootstrap = f"127.0.0.1:{port}"
    return b


def plain(bootstrap, user, password, **more):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": password, **more}


def test_confluent_plain_produce_consume_and_bad_passwords(broker_factory):
    b = sasl_broker(broker_factory)
    p = Producer(plain(b.sasl_bootstrap, "alice", "alice-secret"))
    for i in range(100):
        p.produce("sasl-t", b"v%d" % i)
    assert p.flush(15) == 0
    c = Consumer(plain(b.sasl_bootstrap, "alice", "alice-secret", **{"group.id": "sasl-g", "auto.offset.reset": "earliest"}))
    c.subscribe(["sasl-t"])
    got = []
    while len(got) < 100:
        m = c.poll(15)
        assert m is not None and m.error() is None, m and m.error()
        got.append(m.value())
    c.close()
    assert got == [b"v%d" % i for i in range(100)]
    for user, password in (("alice", "not-alices-pw-7731"), ("mallory", "alice-secret")):
        with pytest.raises(KafkaException) as e:
            AdminClient(plain(b.sasl_bootstrap, user, password)).list_topics(timeout=5)
        assert "Authentication failed" in str(e.value) or e.value.args[0].code() in (-169, -195), e.value
    # The operator sees it (rate-limited), without the password.
    assert b.wait_for_log("authentication failed", timeout=10)
    log = b.log_since_start()
    assert "not-alices-pw-7731" not in log and "alice-secret" not in log


def test_kafka_python_and_aiokafka_plain(broker_factory):
    b = sasl_broker(broker_factory)
    kw = dict(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
              sasl_plain_username="admin", sasl_plain_password="admin-secret")
    p = KafkaProducer(**kw)
    p.send("sasl-kp", b"from kafka-python").get(timeout=15)
    p.close()
    c = KafkaConsumer("sasl-kp", auto_offset_reset="earliest", consumer_timeout_ms=8000, **kw)
    assert [m.value for m in c] == [b"from kafka-python"]
    c.close()
    with pytest.raises(KPError):
        KafkaProducer(**{**kw, "sasl_plain_password": "nope"}, max_block_ms=5000).send("sasl-kp", b"x").get(timeout=5)

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def aio():
        akw = dict(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                   sasl_plain_username="alice", sasl_plain_password="alice-secret")
        prod = AIOKafkaProducer(**akw)
        await prod.start()
        await prod.send_and_wait("sasl-kp", b"from aiokafka")
        await prod.stop()
        cons = AIOKafkaConsumer("sasl-kp", auto_offset_reset="earliest", **akw)
        await cons.start()
        got = [m.value for m in (await cons.getmany(timeout_ms=8000)).get(next(iter(cons.assignment())), [])]
        await cons.stop()
        return got

    assert asyncio.run(aio()) == [b"from kafka-python", b"from aiokafka"]


def test_kafkajs_plain(broker_factory):
    b = sasl_broker(broker_factory)
    proc, lines = run_js("sasl.js", b.sasl_bootstrap, "alice", "alice-secret", "sasl-js", timeout=60)
    assert lines == ["RESULT produced-and-read 3"], (lines, proc.stderr)
    proc, lines = run_js("sasl.js", b.sasl_bootstrap, "alice", "wrong", "sasl-js", timeout=60)
    assert lines == ["RESULT auth-failed"], (lines, proc.stderr)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_plain(broker_factory):
    b = sasl_broker(broker_factory)
    args = ["kcat", "-b", b.sasl_bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret", "-t", "sasl-kc"]
    subprocess.run(args + ["-P"], input="one\ntwo\n", text=True, check=True, timeout=30, capture_output=True)
    out = subprocess.run(args + ["-C", "-e", "-f", "%s\n"], text=True, check=True, timeout=30, capture_output=True).stdout
    assert out.split() == ["one", "two"]


def frame(api_key, version, body=b"", corr=1):
    header = struct.pack(">hhih", api_key, version, corr, 4) + b"test"
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def read_frame(s):
    head = s.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">i", head)
    return s.recv(n, socket.MSG_WAITALL)


def closed(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_nothing_is_served_before_authentication_on_the_wire(broker_factory):
    """A Metadata request before SaslHandshake closes the connection; ApiVersions is answered;
    an unknown mechanism gets UNSUPPORTED_SASL_MECHANISM with the list; a v0 handshake takes a
    bare token; after authentication a second handshake gets ILLEGAL_SASL_STATE."""
    b = sasl_broker(broker_factory)
    host, port = b.sasl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(3, 1, struct.pack(">i", -1)))  # Metadata v1, all topics
        assert closed(s), "Metadata was served before authentication"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(18, 0))
        assert read_frame(s)[4:6] == b"\x00\x00"
        s.sendall(frame(17, 1, struct.pack(">h", 5) + b"OAUTH", corr=2))
        r = read_frame(s)
        assert struct.unpack(">ih", r[:6]) == (2, 33) and b"PLAIN" in r
        s.sendall(frame(17, 0, struct.pack(">h", 5) + b"PLAIN", corr=3))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (3, 0)
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert s.recv(4, socket.MSG_WAITALL) == b"\0\0\0\0"
        s.sendall(frame(17, 1, struct.pack(">h", 5) + b"PLAIN", corr=4))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (4, 34)  # ILLEGAL_SASL_STATE
        s.sendall(frame(3, 1, struct.pack(">i", -1), corr=5))
        assert struct.unpack(">i", read_frame(s)[:4]) == (5,)
    # A v0 handshake with a wrong bare token: closed.
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(17, 0, struct.pack(">h", 5) + b"PLAIN"))
        read_frame(s)
        token = b"\0alice\0wrong"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert closed(s)
    # The plaintext listener beside it answers SaslHandshake with ILLEGAL_SASL_STATE, as Kafka.
    host, port = b.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(17, 1, struct.pack(">h", 5) + b"PLAIN", corr=9))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (9, 34)


def test_sasl_ssl_plain(broker_factory, certs):
    """SASL over TLS: both layers, and the TLS layer alone is not enough."""
    b = sasl_broker(broker_factory, f"ssl.keystore.location={certs.keystore}", protocol="SASL_SSL")
    conf = {**plain(b.sasl_bootstrap, "alice", "alice-secret"), "security.protocol": "SASL_SSL", "ssl.ca.location": certs.ca}
    p = Producer(conf)
    p.produce("sasl-ssl", b"both")
    assert p.flush(15) == 0
    assert AdminClient(conf).list_topics(timeout=10).topics["sasl-ssl"]
    # TLS without SASL: ApiVersions is answered (allowed before authentication), nothing else.
    assert api_versions_over_tls(b.sasl_bootstrap, certs) is not None
    with pytest.raises(KafkaException):
        AdminClient({**conf, "sasl.password": "wrong"}).list_topics(timeout=5)


def authenticate_v1(s, user, password, corr):
    """SaslHandshake v1 (PLAIN) and SaslAuthenticate v1 on socket `s`: (error code, session
    lifetime ms), or None when the connection closed."""
    s.sendall(frame(17, 1, struct.pack(">h", 5) + b"PLAIN", corr=corr))
    r = read_frame(s)
    if r is None:
        return None
    assert struct.unpack(">ih", r[:6]) == (corr, 0), r
    token = b"\0" + user.encode() + b"\0" + password.encode()
    s.sendall(frame(36, 1, struct.pack(">i", len(token)) + token, corr=corr + 1))
    r = read_frame(s)
    if r is None:
        return None
    _, code, msg_len = struct.unpack(">ihh", r[:8])
    rest = r[8 + max(msg_len, 0):]
    (auth_len,) = struct.unpack(">i", rest[:4])
    (lifetime,) = struct.unpack(">q", rest[4 + max(auth_len, 0):][:8])
    return code, lifetime


def test_reauthentication_kip_368(broker_factory, monkeypatch):
    """`connections.max.reauth.ms`: SaslAuthenticate tells the session's lifetime; the client may
    authenticate again on the same connection as the same principal (not as another); a session
    past its lifetime is closed at its next request; librdkafka re-authenticates by itself."""
    monkeypatch.setenv("STROM_LOG", "info,strom_broker::connection=debug")
    b = sasl_broker(broker_factory, "connections.max.reauth.ms=1500")
    host, port = b.sasl_bootstrap.rsplit(":", 1)
    metadata = lambda corr: frame(3, 1, struct.pack(">i", -1), corr=corr)  # noqa: E731
    with socket.create_connection((host, int(port)), timeout=10) as s:
        assert authenticate_v1(s, "alice", "alice-secret", 1) == (0, 1500)
        assert authenticate_v1(s, "alice", "alice-secret", 3) == (0, 1500)
        s.sendall(metadata(5))
        assert struct.unpack(">i", read_frame(s)[:4]) == (5,)
        # Another principal on the same connection: refused, closed.
        r = authenticate_v1(s, "admin", "admin-secret", 6)
        assert r is None or r[0] == 58, r
        assert closed(s)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        assert authenticate_v1(s, "alice", "alice-secret", 1) == (0, 1500)
        time.sleep(2)
        s.sendall(metadata(3))
        assert closed(s), "a request after the session's end was served"
    assert b.wait_for_log("SASL session expired", timeout=10)
    # librdkafka re-authenticates before the end, so its connection is never closed for it.
    before = b.log_since_start()
    expired_before, auths_before = before.count("SASL session expired"), before.count("authenticated")
    p = Producer(plain(b.sasl_bootstrap, "alice", "alice-secret"))
    for i in range(12):
        p.produce("reauth-t", b"v%d" % i)
        assert p.flush(10) == 0
        time.sleep(0.5)
    log = b.log_since_start()
    assert log.count("SASL session expired") == expired_before, "librdkafka's session ran out"
    # Traffic went on for 4 lifetimes on one connection without being closed: it authenticated
    # again (more logins than its connections' first ones).
    assert log.count("authenticated") - auths_before >= 4, "no re-authentication happened"
