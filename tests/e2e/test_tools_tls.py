"""Strom's tools over TLS and SASL, configured by a `--command-config` file written as for Kafka's
own tools (`security.protocol`, `sasl.mechanism`, `sasl.jaas.config` with ScramLoginModule,
`ssl.truststore.*`, `ssl.keystore.*`, PKCS12 or PEM): the librdkafka-based tools (topics,
console producer and consumer) and those on Strom's own protocol client (log-dirs,
transactions), over SASL_SSL with SCRAM-SHA-512 and over SSL with a client certificate."""
import subprocess

from conftest import STROM_BIN
from test_scram import add_users
from test_tls import certs, free_port  # noqa: F401 (the certs fixture)

SCRAM_JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="ops" password="{pw}";'


def secured_broker(broker_factory, certs):
    sasl_port, ssl_port = free_port(), free_port()
    b = broker_factory(overrides=[
        f"listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512", f"ssl.keystore.location={certs.keystore}",
        f"ssl.truststore.location={certs.ca}", "listener.name.ssl.ssl.client.auth=required"])
    b.sasl_ssl, b.ssl = f"127.0.0.1:{sasl_port}", f"127.0.0.1:{ssl_port}"
    add_users(b.bootstrap, ("ops", "ops-pw", "SCRAM-SHA-512"))
    return b


def properties(path, **props):
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return str(path)


def strom(*args, stdin=None):
    return subprocess.run([STROM_BIN, *args], input=stdin, capture_output=True, text=True, timeout=90)


def test_tools_over_sasl_ssl_with_scram_and_a_pkcs12_truststore(broker_factory, certs, tmp_path):
    b = secured_broker(broker_factory, certs)
    conf = properties(tmp_path / "sasl-ssl.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": SCRAM_JAAS.format(pw="ops-pw"),
        "ssl.truststore.type": "PKCS12", "ssl.truststore.location": certs.pkcs12_truststore("trust-pw"),
        "ssl.truststore.password": "trust-pw"})
    cc = ["--bootstrap-server", b.sasl_ssl, "--command-config", conf]
    r = strom("topics", *cc, "--create", "--topic", "tls-tools", "--partitions", "2")
    assert r.returncode == 0, r.stderr
    assert "tls-tools" in strom("topics", *cc, "--list").stdout
    lines = "".join(f"line-{i}\n" for i in range(20))
    r = strom("console-producer", "--bootstrap-server", b.sasl_ssl, "--producer.config", conf, "--topic", "tls-tools", stdin=lines)
    assert r.returncode == 0, r.stderr
    r = strom("console-consumer", "--bootstrap-server", b.sasl_ssl, "--consumer.config", conf, "--topic", "tls-tools",
              "--from-beginning", "--max-messages", "20", "--timeout-ms", "20000")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(f"line-{i}" for i in range(20))
    # Strom's own protocol client: TLS with rustls, SCRAM with the server's signature checked.
    r = strom("log-dirs", *cc, "--describe")
    assert r.returncode == 0 and "tls-tools-0" in r.stdout, r.stderr
    r = strom("transactions", *cc, "list")
    assert r.returncode == 0 and r.stdout.startswith("TransactionalId"), r.stderr
    # A wrong password fails the login, on both clients, and says so.
    bad = properties(tmp_path / "bad.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": SCRAM_JAAS.format(pw="wrong"),
        "ssl.truststore.location": certs.ca})
    r = strom("log-dirs", "--bootstrap-server", b.sasl_ssl, "--command-config", bad, "--describe")
    assert r.returncode != 0 and "uthentication" in r.stderr, r.stderr
    r = strom("topics", "--bootstrap-server", b.sasl_ssl, "--command-config", bad, "--list")
    assert r.returncode != 0, r.stdout


def test_tools_over_ssl_with_a_client_certificate(broker_factory, certs, tmp_path):
    """The SSL listener requires a client certificate: with a PEM keystore (key and chain in one
    file, KIP-651) both clients get in; without one, neither does."""
    b = secured_broker(broker_factory, certs)
    mine = tmp_path / "client.pem"
    mine.write_text((certs.dir / "client.key").read_text() + (certs.dir / "client.crt").read_text())
    conf = properties(tmp_path / "ssl.properties", **{
        "security.protocol": "SSL", "ssl.truststore.location": certs.ca, "ssl.keystore.type": "PEM", "ssl.keystore.location": str(mine)})
    cc = ["--bootstrap-server", b.ssl, "--command-config", conf]
    r = strom("topics", *cc, "--create", "--topic", "mtls-tools")
    assert r.returncode == 0, r.stderr
    r = strom("log-dirs", *cc, "--describe")
    assert r.returncode == 0 and "mtls-tools-0" in r.stdout, r.stderr
    anonymous = properties(tmp_path / "anon.properties", **{"security.protocol": "SSL", "ssl.truststore.location": certs.ca})
    r = strom("log-dirs", "--bootstrap-server", b.ssl, "--command-config", anonymous, "--describe")
    assert r.returncode != 0, r.stdout
    # Host names are checked (Kafka's default) against the name dialled: the broker's certificate
    # names both 127.0.0.1 and localhost.
    port = b.ssl.rsplit(":", 1)[1]
    r = strom("log-dirs", "--bootstrap-server", f"localhost:{port}", "--command-config", conf, "--describe")
    assert r.returncode == 0, r.stderr
