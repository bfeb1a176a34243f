"""TLS listeners (`SSL://`, or any name mapped to SSL), served by rustls, with real clients:
confluent-kafka (librdkafka's OpenSSL), kafka-python (Python's ssl), kcat. A plaintext listener
beside it keeps working; a client is always sent to the brokers' endpoints of the listener it
came through; client certificates are checked when asked for; a bad keystore stops the start."""
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

from conftest import STROM_BIN
from tlscerts import Certs
from cluster import free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/test.sh installs it as root): no test certificates")
    return Certs(tmp_path_factory.mktemp("certs"))


def tls_broker(broker_factory, certs, *extra, listener="SSL"):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,{listener}://127.0.0.1:{port}",
                                  f"ssl.keystore.location={certs.keystore}", *extra])
    b.ssl_bootstrap = f"127.0.0.1:{port}"
    return b


def ssl_conf(certs, bootstrap, **more):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": certs.ca, **more}


def test_confluent_round_trip_over_tls_with_a_group(broker_factory, certs):
    """2,000 records of 1 KiB through TLS both ways (the fetch path reads segment bytes into a
    buffer for encryption instead of sendfile), consumed in a group that commits; the plaintext
    listener beside it reads the same records."""
    b = tls_broker(broker_factory, certs)
    p = Producer(ssl_conf(certs, b.ssl_bootstrap, **{"linger.ms": 5}))
    values = [(b"%05d" % i) * 205 for i in range(2000)]
    for v in values:
        p.produce("tls-t", v)
    assert p.flush(30) == 0
    c = Consumer(ssl_conf(certs, b.ssl_bootstrap, **{"group.id": "tls-g", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe(["tls-t"])
    got = []
    while len(got) < len(values):
        m = c.poll(15)
        assert m is not None, f"stalled after {len(got)} records"
        assert m.error() is None, m.error()
        got.append(m.value())
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition("tls-t", 0)], timeout=10)
    c.close()
    assert got == values
    assert committed[0].offset == len(values)
    plain = KafkaConsumer("tls-t", bootstrap_servers=b.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    assert sum(1 for _ in plain) == len(values)
    plain.close()
    # The broker said whether the kernel could take the encryption over (kTLS), and that it
    # encrypts in user space.
    assert "kernel TLS is" in b.log_since_start() and "encrypt in user space" in b.log_since_start()


def test_kafka_python_over_tls_is_sent_to_tls_endpoints(broker_factory, certs):
    """Metadata answers with the endpoints of the listener the client came through: a client
    bootstrapped on the SSL port must be handed SSL ports (the plaintext one is listed first), or
    its next connection would be TLS against plaintext."""
    b = tls_broker(broker_factory, certs)
    kw = dict(bootstrap_servers=b.ssl_bootstrap, security_protocol="SSL", ssl_cafile=certs.ca)
    p = KafkaProducer(**kw)
    p.send("tls-kp", b"over tls").get(timeout=15)
    p.close()
    c = KafkaConsumer("tls-kp", auto_offset_reset="earliest", consumer_timeout_ms=8000, **kw)
    assert [m.value for m in c] == [b"over tls"]
    brokers = c._client.cluster.brokers()
    c.close()
    assert {f"{br.host}:{br.port}" for br in brokers} == {b.ssl_bootstrap}


def negotiated_cipher(bootstrap, certs):
    host, port = bootstrap.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=certs.ca)
    with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
        return s.cipher()[0]


def test_the_brokers_cipher_order_decides(broker_factory, certs):
    """Python's ssl, like OpenSSL and Java, lists AES-256-GCM first; Strom prefers AES-128-GCM
    unless ssl.cipher.suites gives an order, which then decides."""
    assert negotiated_cipher(tls_broker(broker_factory, certs).ssl_bootstrap, certs) == "TLS_AES_128_GCM_SHA256"
    b = tls_broker(broker_factory, certs, "ssl.cipher.suites=TLS_CHACHA20_POLY1305_SHA256,TLS_AES_128_GCM_SHA256")
    assert negotiated_cipher(b.ssl_bootstrap, certs) == "TLS_CHACHA20_POLY1305_SHA256"


def test_client_certificates_when_required(broker_factory, certs):
    """ssl.client.auth=required: a client with a certificate from the trusted CA works; one
    without a certificate, or with one from another CA, fails its handshake and gets nothing."""
    b = tls_broker(broker_factory, certs, f"ssl.truststore.location={certs.ca}", "ssl.client.auth=required")
    good = AdminClient(ssl_conf(certs, b.ssl_bootstrap, **{"ssl.certificate.location": certs.client_cert,
                                                            "ssl.key.location": certs.client_key}))
    assert good.list_topics(timeout=15).brokers
    for extra in ({}, {"ssl.certificate.location": certs.rogue_cert, "ssl.key.location": certs.rogue_key}):
        bad = AdminClient(ssl_conf(certs, b.ssl_bootstrap, **extra))
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=4)
    assert b.running


def api_versions_over_tls(bootstrap, certs, cert=None, key=None):
    """An ApiVersions v0 over TLS with Python's ssl (which presents a configured certificate
    whatever CAs the server names, unlike librdkafka): the response bytes, or None when the
    broker refused the handshake or closed the connection."""
    host, port = bootstrap.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=certs.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(bytes.fromhex("0000000e0012000000000007000474657374"))
            data = s.recv(4096)
            return data or None
    except (ssl.SSLError, ConnectionError):
        return None


def test_client_certificates_when_requested(broker_factory, certs):
    """ssl.client.auth=requested: no certificate is fine, a trusted one is fine, but one that is
    presented must be trusted."""
    b = tls_broker(broker_factory, certs, f"ssl.truststore.location={certs.ca}", "ssl.client.auth=requested")
    assert AdminClient(ssl_conf(certs, b.ssl_bootstrap)).list_topics(timeout=15).brokers
    assert api_versions_over_tls(b.ssl_bootstrap, certs) is not None
    assert api_versions_over_tls(b.ssl_bootstrap, certs, certs.client_cert, certs.client_key) is not None
    assert api_versions_over_tls(b.ssl_bootstrap, certs, certs.rogue_cert, certs.rogue_key) is None
    assert b.running


def test_a_stalled_handshake_is_dropped(broker_factory, certs):
    """A client that connects and never says hello is disconnected after the 10 s handshake
    timeout instead of holding a socket forever."""
    b = tls_broker(broker_factory, certs)
    host, port = b.ssl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        t0 = time.time()
        assert s.recv(100) == b""
        assert time.time() - t0 > 8, "closed before the handshake timeout"
    assert api_versions_over_tls(b.ssl_bootstrap, certs) is not None


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_over_tls(broker_factory, certs):
    b = tls_broker(broker_factory, certs)
    args = ["kcat", "-b", b.ssl_bootstrap, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs.ca}", "-t", "tls-kc"]
    subprocess.run(args + ["-P"], input="one\ntwo\n", text=True, check=True, timeout=30, capture_output=True)
    out = subprocess.run(args + ["-C", "-e", "-f", "%s\n"], text=True, check=True, timeout=30, capture_output=True).stdout
    assert out.split() == ["one", "two"]


def served_certificate(bootstrap, certs):
    host, port = bootstrap.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=certs.ca)
    with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
        return s.getpeercert(binary_form=True)


def test_certificates_rotate_without_a_restart(broker_factory, certs, tmp_path):
    """The keystore file is replaced: new connections get the new certificate within the reload
    check (5 s), without a restart and without dropping the open connection. A replacement that
    does not load (a key that is not the certificate's) is refused and the last good one stays."""
    keystore = tmp_path / "rotating.pem"
    keystore.write_text((certs.dir / "broker.pem").read_text())
    b = tls_broker(broker_factory, certs, f"ssl.keystore.location={keystore}")
    assert served_certificate(b.ssl_bootstrap, certs) == certs.der("broker")
    p = Producer(ssl_conf(certs, b.ssl_bootstrap))
    p.produce("rot", b"before")
    assert p.flush(15) == 0

    # Write the new keystore beside and rename it over the old one, as tools that rotate do.
    staged = tmp_path / "staged.pem"
    staged.write_text(certs.new_broker_keystore("broker2"))
    os.replace(staged, keystore)
    deadline = time.time() + 20
    while served_certificate(b.ssl_bootstrap, certs) != certs.der("broker2"):
        assert time.time() < deadline, "the new certificate was not picked up"
        time.sleep(0.5)
    p.produce("rot", b"after")  # the producer's connection from before the rotation
    assert p.flush(15) == 0

    bad = (certs.dir / "client.key").read_text() + (certs.dir / "broker2.crt").read_text()
    keystore.write_text(bad)
    assert b.wait_for_log("do not load", timeout=20)
    assert served_certificate(b.ssl_bootstrap, certs) == certs.der("broker2")


def start_fails(tmp_path, *overrides):
    args = [STROM_BIN, "server", "--override", f"log.dirs={tmp_path}/d", "--override", f"listeners=SSL://127.0.0.1:{free_port()}",
            "--override", "http.listeners="]
    for o in overrides:
        args += ["--override", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert "bootstrap.servers=" not in p.stdout and p.returncode != 0
    return p.stderr


def test_a_bad_keystore_stops_the_start_naming_the_key(tmp_path, certs):
    """Missing file, a file without a key, a key that is not the certificate's, an encrypted key:
    each stops the start with the key to fix, before any port opens."""
    assert "ssl.keystore.location" in start_fails(tmp_path, f"ssl.keystore.location={tmp_path}/missing.pem")
    assert "no usable private key" in start_fails(tmp_path, f"ssl.keystore.location={certs.dir}/broker.crt")
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_text((certs.dir / "client.key").read_text() + (certs.dir / "broker.crt").read_text())
    assert "do not go together" in start_fails(tmp_path, f"ssl.keystore.location={mismatched}")
    subprocess.run(["openssl", "pkcs8", "-topk8", "-in", f"{certs.dir}/broker.key", "-out", f"{tmp_path}/enc.key",
                    "-passout", "pass:secret"], check=True, capture_output=True)
    enc = tmp_path / "enc.pem"
    enc.write_text((tmp_path / "enc.key").read_text() + (certs.dir / "broker.crt").read_text())
    assert "encrypted: set ssl.key.password" in start_fails(tmp_path, f"ssl.keystore.location={enc}")
    assert "ssl.key.password" in start_fails(tmp_path, f"ssl.keystore.location={enc}", "ssl.key.password=wrong")
    assert "ssl.cipher.suites" in start_fails(tmp_path, f"ssl.keystore.location={certs.keystore}", "ssl.cipher.suites=TLS_NOT_A_SUITE")


def test_an_encrypted_key_with_its_password(broker_factory, certs, tmp_path):
    """An encrypted PKCS#8 key (openssl's PBES2 with AES-256-CBC, and scrypt) serves with
    `ssl.key.password`, in a PEM keystore file and inline (KIP-651); DescribeConfigs never shows
    the password or the key."""
    for extra in (["-v2", "aes-256-cbc"], ["-scrypt"]):
        subprocess.run(["openssl", "pkcs8", "-topk8", "-in", f"{certs.dir}/broker.key", "-out", f"{tmp_path}/enc.key",
                        "-passout", "pass:s3cret", *extra], check=True, capture_output=True)
        enc = tmp_path / "enc.pem"
        enc.write_text((tmp_path / "enc.key").read_text() + (certs.dir / "broker.crt").read_text())
        b = tls_broker(broker_factory, certs, f"ssl.keystore.location={enc}", "ssl.key.password=s3cret")
        assert api_versions_over_tls(b.ssl_bootstrap, certs) is not None, extra
        b.kill()
    key_text = (tmp_path / "enc.key").read_text()
    chain = (certs.dir / "broker.crt").read_text()
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}", f"ssl.keystore.certificate.chain={chain}",
                                  f"ssl.keystore.key={key_text}", "ssl.key.password=s3cret"])
    assert api_versions_over_tls(f"127.0.0.1:{port}", certs) is not None
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    got = admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")])
    configs = list(got.values())[0].result(timeout=15)
    for k in ("ssl.key.password", "ssl.keystore.key", "ssl.keystore.certificate.chain"):
        assert configs[k].is_sensitive and configs[k].value is None, (k, configs[k].value)
