"""PKCS12 keystores and truststores (`ssl.keystore.type=PKCS12`, `ssl.truststore.type=PKCS12`),
as OpenSSL 3 writes them: a broker serves TLS from one, checks client certificates against a
PKCS12 truststore, picks up a replaced store without a restart, and refuses a wrong password or
a legacy-encrypted store at startup, naming the key to fix."""
import os
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from test_tls import api_versions_over_tls, certs, free_port, served_certificate, ssl_conf, start_fails  # noqa: F401 (fixture)


def pkcs12_broker(broker_factory, keystore, *extra):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}", "ssl.keystore.type=PKCS12",
                                  f"ssl.keystore.location={keystore}", "ssl.keystore.password=store-pw", *extra])
    b.ssl_bootstrap = f"127.0.0.1:{port}"
    return b


def test_a_pkcs12_keystore_and_truststore_with_client_certificates(broker_factory, certs):
    """The broker's key and chain from a PKCS12 keystore, client certificates checked against a
    PKCS12 truststore (per listener, as Kafka names it): librdkafka with a trusted client
    certificate produces and consumes, one from another CA is refused; DescribeConfigs hides
    both passwords."""
    keystore = certs.pkcs12("broker", "store-pw")
    truststore = certs.pkcs12_truststore("trust-pw")
    b = pkcs12_broker(broker_factory, keystore, "listener.name.ssl.ssl.truststore.type=PKCS12",
                      f"listener.name.ssl.ssl.truststore.location={truststore}", "listener.name.ssl.ssl.truststore.password=trust-pw",
                      "ssl.client.auth=required")
    assert served_certificate(b.ssl_bootstrap, certs) == certs.der("broker")
    mine = {"ssl.certificate.location": certs.client_cert, "ssl.key.location": certs.client_key}
    p = Producer(ssl_conf(certs, b.ssl_bootstrap, **mine))
    for i in range(100):
        p.produce("p12", b"v%d" % i)
    assert p.flush(30) == 0
    c = Consumer(ssl_conf(certs, b.ssl_bootstrap, **mine, **{"group.id": "p12", "auto.offset.reset": "earliest"}))
    c.subscribe(["p12"])
    got = []
    deadline = time.time() + 30
    while len(got) < 100 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [b"v%d" % i for i in range(100)]
    assert api_versions_over_tls(b.ssl_bootstrap, certs, certs.client_cert, certs.client_key) is not None
    assert api_versions_over_tls(b.ssl_bootstrap, certs, certs.rogue_cert, certs.rogue_key) is None
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    configs = list(admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")]).values())[0].result(timeout=15)
    for k in ("ssl.keystore.password", "listener.name.ssl.ssl.truststore.password"):
        if k in configs:
            assert configs[k].is_sensitive and configs[k].value is None, (k, configs[k].value)
    assert configs["ssl.keystore.type"].value == "PKCS12"


def test_a_replaced_pkcs12_keystore_is_served_without_a_restart(broker_factory, certs, tmp_path):
    """The PKCS12 file is replaced by one holding a new certificate: new connections get it
    within the reload check, with no restart."""
    keystore = tmp_path / "rotating.p12"
    keystore.write_bytes(open(certs.pkcs12("broker", "store-pw"), "rb").read())
    b = pkcs12_broker(broker_factory, keystore)
    assert served_certificate(b.ssl_bootstrap, certs) == certs.der("broker")
    certs.new_broker_keystore("broker3")
    staged = tmp_path / "staged.p12"
    staged.write_bytes(open(certs.pkcs12("broker3", "store-pw"), "rb").read())
    os.replace(staged, keystore)
    deadline = time.time() + 20
    while served_certificate(b.ssl_bootstrap, certs) != certs.der("broker3"):
        assert time.time() < deadline, "the new certificate was not picked up"
        time.sleep(0.5)


def test_pkcs12_refusals_name_the_key(tmp_path, certs):
    """A wrong password, a missing one, a legacy (3DES/RC2, SHA-1) store, JKS: the start stops
    with the key to fix, and the message never echoes a password."""
    keystore = certs.pkcs12("broker", "store-pw")
    base = ["ssl.keystore.type=PKCS12", f"ssl.keystore.location={keystore}"]
    e = start_fails(tmp_path, *base, "ssl.keystore.password=not-it")
    assert "ssl.keystore.location" in e and "wrong password" in e and "not-it" not in e, e
    assert "ssl.keystore.password" in start_fails(tmp_path, *base)
    legacy = certs.pkcs12("broker", "store-pw", legacy=True)
    e = start_fails(tmp_path, "ssl.keystore.type=PKCS12", f"ssl.keystore.location={legacy}", "ssl.keystore.password=store-pw")
    assert "legacy PKCS#12" in e and "openssl pkcs12 -export" in e, e
    e = start_fails(tmp_path, "ssl.keystore.type=JKS", f"ssl.keystore.location={keystore}")
    assert "ssl.keystore.type" in e and "JKS" in e, e
    # A password given to a PEM store means another type was meant.
    e = start_fails(tmp_path, f"ssl.keystore.location={certs.keystore}", "ssl.keystore.password=store-pw")
    assert "ssl.keystore.password" in e and "PKCS12" in e and "store-pw" not in e, e
