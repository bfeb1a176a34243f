"""SASL/OAUTHBEARER with JWTs checked against a JWKS (Kafka's KIP-768 validator): confluent-kafka,
kafka-python, aiokafka and kafkajs log in with signed tokens (the principal is the `sub` claim,
authorized by ACLs); tokens that are expired, for another audience or issuer, signed by a key not
in the set, unsigned (`alg: none`) or HMAC-signed are refused with RFC 7628's error challenge and
then SASL_AUTHENTICATION_FAILED; a JWKS served over HTTP is refetched when a token names a new
key; a broker whose JWKS cannot be read does not start."""
import asyncio
import http.server
import json
import socket
import struct
import threading
import time

import jwt
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, ResourceType
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kafka import KafkaProducer

from conftest import Broker
from jslib import run_js
from test_acls import AUTHORIZER, allow, create_acls
from test_sasl import closed, frame, read_frame
from test_tls import free_port

ISSUER = "https://idp.strom.test"
AUDIENCE = "strom"


class Keys:
    """Signing keys and their public JWKS (RSA `k1`, EC `k2`)."""

    def __init__(self):
        self.private = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048), "k2": ec.generate_private_key(ec.SECP256R1())}
        self.alg = {"k1": "RS256", "k2": "ES256"}

    def jwks(self, kids=("k1", "k2")):
        keys = []
        for kid in kids:
            algo = jwt.algorithms.RSAAlgorithm if self.alg[kid].startswith("RS") else jwt.algorithms.ECAlgorithm
            jwk = json.loads(algo.to_jwk(self.private[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.alg[kid]})
        return json.dumps({"keys": keys})

    def token(self, sub, kid="k1", lifetime=600, **claims):
        now = int(time.time())
        body = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + lifetime, **claims}
        return jwt.encode(body, self.private[kid], algorithm=self.alg[kid], headers={"kid": kid})


def oauth_broker(broker_factory, jwks_url, *extra):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}",
                                  "sasl.enabled.mechanisms=OAUTHBEARER", f"sasl.oauthbearer.jwks.endpoint.url={jwks_url}",
                                  f"sasl.oauthbearer.expected.audience={AUDIENCE}", f"sasl.oauthbearer.expected.issuer={ISSUER}", *extra])
    b.sasl_bootstrap = f"127.0.0.1:{port}"
    return b


def confluent_conf(b, token, **more):
    return {"bootstrap.servers": b.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: (token, time.time() + 600), **more}


@pytest.fixture
def keys():
    return Keys()


def test_clients_log_in_with_signed_tokens_and_acls_see_the_sub_claim(broker_factory, keys, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(keys.jwks())
    b = oauth_broker(broker_factory, f"file://{jwks}", f"authorizer.class.name={AUTHORIZER}", "super.users=User:admin")
    admin = AdminClient(confluent_conf(b, keys.token("admin")))
    for f in admin.create_topics([NewTopic("tokens", 1, 1)]).values():
        f.result(15)
    create_acls(admin, [allow(ResourceType.TOPIC, "tokens", "User:alice", op) for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)]
                + [allow(ResourceType.GROUP, "*", "User:alice", AclOperation.READ)])

    # confluent-kafka, with an RSA and an EC-signed token.
    for kid in ("k1", "k2"):
        p = Producer(confluent_conf(b, keys.token("alice", kid=kid)))
        for i in range(5):
            p.produce("tokens", f"{kid}-{i}".encode())
        assert p.flush(15) == 0
    c = Consumer(confluent_conf(b, keys.token("alice"), **{"group.id": "oauth", "auto.offset.reset": "earliest"}))
    c.subscribe(["tokens"])
    got = []
    deadline = time.time() + 20
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    c.close()
    assert sorted(got) == sorted([f"k1-{i}" for i in range(5)] + [f"k2-{i}" for i in range(5)])
    # The token's subject is the principal: bob has no ACL.
    errors = []
    p = Producer(confluent_conf(b, keys.token("bob"), **{"message.timeout.ms": 5000}))
    p.produce("tokens", b"x", on_delivery=lambda err, m: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None and errors[0].code() == 29, errors  # TOPIC_AUTHORIZATION_FAILED

    # kafka-python.
    from kafka.net.sasl.oauth import AbstractTokenProvider as KPTokenProvider

    class Provider(KPTokenProvider):
        def token(self):
            return keys.token("alice")

    kp = KafkaProducer(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                       sasl_oauth_token_provider=Provider())
    kp.send("tokens", b"kafka-python").get(timeout=15)
    kp.close()

    # aiokafka.
    from aiokafka import AIOKafkaProducer
    from aiokafka.abc import AbstractTokenProvider

    class AioProvider(AbstractTokenProvider):
        async def token(self):
            return keys.token("alice")

    async def aio():
        p = AIOKafkaProducer(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                             sasl_oauth_token_provider=AioProvider())
        await p.start()
        try:
            await p.send_and_wait("tokens", b"aiokafka")
        finally:
            await p.stop()

    asyncio.run(aio())

    # kafkajs (its token provider returns the token).
    create_acls(admin, [allow(ResourceType.TOPIC, "js-tokens", "User:carol", op) for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE, AclOperation.CREATE)]
                + [allow(ResourceType.GROUP, "*", "User:carol", AclOperation.READ)])
    for f in admin.create_topics([NewTopic("js-tokens", 1, 1)]).values():
        f.result(15)
    proc, lines = run_js("sasl.js", b.sasl_bootstrap, "-", keys.token("carol"), "js-tokens", "oauthbearer", timeout=60)
    assert lines == ["RESULT produced-and-read 3"], proc.stdout + proc.stderr


def authenticate(bootstrap, token_message):
    """SaslHandshake v1 OAUTHBEARER, then SaslAuthenticate v1 with `token_message`: (error code,
    message, server bytes, socket)."""
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(frame(17, 1, struct.pack(">h", 11) + b"OAUTHBEARER", corr=1))
    r = read_frame(s)
    assert struct.unpack(">ih", r[:6]) == (1, 0), r
    return s, sasl_authenticate(s, token_message, 2)


def sasl_authenticate(s, message, corr):
    s.sendall(frame(36, 1, struct.pack(">i", len(message)) + message, corr=corr))
    r = read_frame(s)
    assert r is not None, "closed without an answer"
    _, code, msg_len = struct.unpack(">ihh", r[:8])
    text = r[8:8 + max(msg_len, 0)].decode() if msg_len > 0 else None
    rest = r[8 + max(msg_len, 0):]
    (auth_len,) = struct.unpack(">i", rest[:4])
    return code, text, rest[4:4 + max(auth_len, 0)]


def initial(token):
    return b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"


def test_bad_tokens_get_the_error_challenge_then_fail(broker_factory, keys, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(keys.jwks(kids=("k1",)))
    b = oauth_broker(broker_factory, f"file:{jwks}")
    other = Keys()
    now = int(time.time())
    bad = {
        "expired": keys.token("alice", lifetime=-120),
        "another audience": keys.token("alice", aud="someone-else"),
        "another issuer": keys.token("alice", iss="https://evil.test"),
        "unknown key": keys.token("alice", kid="k2"),
        "forged signature": other.token("alice", kid="k1"),
        "no exp": jwt.encode({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER}, keys.private["k1"], algorithm="RS256", headers={"kid": "k1"}),
        "not valid yet": keys.token("alice", nbf=now + 3600),
        "unsigned": jwt.encode({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600}, None, algorithm="none"),
        "hmac": jwt.encode({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600}, "secret-of-32-bytes-or-more-000000", algorithm="HS256", headers={"kid": "k1"}),
        "not a jwt": "hello",
    }
    for why, token in bad.items():
        s, (code, text, server) = authenticate(b.sasl_bootstrap, initial(token))
        assert (code, json.loads(server)) == (0, {"status": "invalid_token"}), (why, code, text, server)
        code, text, _ = sasl_authenticate(s, b"\x01", 3)
        assert code == 58 and text.startswith("Authentication failed"), (why, code, text)
        assert closed(s), why
        s.close()
    # A malformed client message fails at once.
    s, (code, text, _) = authenticate(b.sasl_bootstrap, b"n,,\x01auth=Basic abc\x01\x01")
    assert code == 58 and "Invalid OAUTHBEARER" in text
    assert closed(s)
    # An authorization id must be the token's principal.
    s, (code, text, _) = authenticate(b.sasl_bootstrap, b"n,a=mallory,\x01auth=Bearer " + keys.token("alice").encode() + b"\x01\x01")
    assert code == 58 and "authorization id (mallory)" in text, text
    # The good token passes, with its subject as authorization id too.
    s, (code, _, server) = authenticate(b.sasl_bootstrap, b"n,a=alice,\x01auth=Bearer " + keys.token("alice").encode() + b"\x01\x01")
    assert (code, server) == (0, b"")
    s.close()
    # librdkafka reports the failure.
    errors = []
    p = Producer(confluent_conf(b, bad["expired"], **{"message.timeout.ms": 4000}))
    p.produce("t", b"x", on_delivery=lambda err, m: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None, errors


class JwksServer:
    """A JWKS over HTTP whose body the test can change."""

    def __init__(self, body):
        self.body = body
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_jwks_over_http_is_refetched_for_a_new_key_and_must_load_at_start(broker_factory, keys, tmp_path):
    server = JwksServer(keys.jwks(kids=("k1",)))
    try:
        b = oauth_broker(broker_factory, server.url)
        s, (code, _, server_bytes) = authenticate(b.sasl_bootstrap, initial(keys.token("alice")))
        assert (code, server_bytes) == (0, b"")
        s.close()
        # The identity provider rotates in k2: the first token naming it is refused (and asks for
        # a refetch), a later one passes once the set was fetched again (at most every 10 s).
        server.body = keys.jwks(kids=("k1", "k2"))
        deadline = time.time() + 30
        passed = False
        while time.time() < deadline and not passed:
            s, (code, _, server_bytes) = authenticate(b.sasl_bootstrap, initial(keys.token("alice", kid="k2")))
            passed = code == 0 and server_bytes == b""
            s.close()
            if not passed:
                time.sleep(1)
        assert passed, "a token signed with the rotated-in key never passed"
    finally:
        server.close()

    # A JWKS that cannot be fetched stops the start, naming the key.
    port = free_port()
    bad = Broker(tmp_path / "bad", [f"listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}", "sasl.enabled.mechanisms=OAUTHBEARER",
                                    f"sasl.oauthbearer.jwks.endpoint.url=http://127.0.0.1:{free_port()}/jwks.json"])
    assert bad.launch().proc.wait(30) != 0
    bad.wait_exited_and_read(30)
    assert "sasl.oauthbearer.jwks.endpoint.url" in bad.log() and "cannot connect" in bad.log(), bad.log()
    # And OAUTHBEARER without a JWKS is refused: Strom never takes unsigned tokens.
    bad = Broker(tmp_path / "bad2", [f"listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}", "sasl.enabled.mechanisms=OAUTHBEARER"])
    assert bad.launch().proc.wait(30) != 0
    bad.wait_exited_and_read(30)
    assert "sasl.oauthbearer.jwks.endpoint.url" in bad.log() and "unsigned" in bad.log(), bad.log()


def test_a_session_ends_with_its_token_under_reauthentication(broker_factory, keys, tmp_path):
    """KIP-368 with OAUTHBEARER, as Kafka: with `connections.max.reauth.ms` set, a session lasts
    the shorter of it and the token's time left (SaslAuthenticate says so), and a request after
    that closes the connection; a token that outlives the setting gets the setting."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(keys.jwks())
    b = oauth_broker(broker_factory, f"file://{jwks}", "connections.max.reauth.ms=60000")

    def session_lifetime(token):
        host, port = b.sasl_bootstrap.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(frame(17, 1, struct.pack(">h", 11) + b"OAUTHBEARER", corr=1))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (1, 0)
        message = initial(token)
        s.sendall(frame(36, 1, struct.pack(">i", len(message)) + message, corr=2))
        r = read_frame(s)
        _, code, msg_len = struct.unpack(">ihh", r[:8])
        rest = r[8 + max(msg_len, 0):]
        (auth_len,) = struct.unpack(">i", rest[:4])
        (ms,) = struct.unpack(">q", rest[4 + max(auth_len, 0):][:8])
        assert code == 0, code
        return s, ms

    s, ms = session_lifetime(keys.token("alice", lifetime=600))
    assert ms == 60000, ms
    s.close()
    s, ms = session_lifetime(keys.token("alice", lifetime=3))
    assert 0 < ms <= 3000, ms
    time.sleep(ms / 1000 + 0.5)
    # A Metadata request after the session ended closes the connection.
    s.sendall(frame(3, 1, b"\xff\xff\xff\xff", corr=3))
    assert read_frame(s) is None, "a request after the token expired was served"
