"""A listener's keystore altered as a dynamic broker config, as Kafka allows it
(`kafka-configs.sh --entity-type brokers --entity-name 1 --alter --add-config
listener.name.ssl.ssl.keystore.location=...`): checked before it is committed (it must load and
keep the certificate's subject and alternative names), one broker's own (refused at the
cluster's default level), served without a restart, and still served after one. Dynamic configs
of one broker and of the cluster are described with Kafka's sources."""
import subprocess
import time

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from confluent_kafka import KafkaException
import pytest

from conftest import STROM_BIN
from test_tls import certs, free_port, served_certificate  # noqa: F401 (fixture)

BROKER = ConfigResource.Type.BROKER


def alter(admin, name, **configs):
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
    res = ConfigResource(BROKER, name, incremental_configs=entries)
    return list(admin.incremental_alter_configs([res]).values())[0].result(timeout=15)


def describe(admin, name="1"):
    return list(admin.describe_configs([ConfigResource(BROKER, name)]).values())[0].result(timeout=15)


def cluster_default(b, add_config):
    """Alters the cluster's default level with `strom configs` (librdkafka, under confluent-kafka,
    cannot send the empty broker name): the completed process."""
    return subprocess.run([STROM_BIN, "configs", "--bootstrap-server", b.bootstrap, "--entity-type", "brokers", "--entity-default",
                           "--alter", "--add-config", add_config], capture_output=True, text=True, timeout=60)


def source(entry):
    return getattr(entry.source, "value", entry.source)


def wait_served(bootstrap, certs, der):
    deadline = time.time() + 20
    while served_certificate(bootstrap, certs) != der:
        assert time.time() < deadline, "the altered keystore was not served"
        time.sleep(0.5)


def test_a_keystore_altered_as_a_dynamic_config(broker_factory, certs, tmp_path):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}", f"ssl.keystore.location={certs.keystore}"])
    ssl_bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    assert served_certificate(ssl_bootstrap, certs) == certs.der("broker")

    # A new certificate for the same subject and names, in a PKCS12 keystore at another path.
    certs.new_broker_keystore("broker4")
    p12 = certs.pkcs12("broker4", "pw4")
    alter(admin, "1", **{"listener.name.ssl.ssl.keystore.type": "PKCS12", "listener.name.ssl.ssl.keystore.location": p12,
                         "listener.name.ssl.ssl.keystore.password": "pw4"})
    wait_served(ssl_bootstrap, certs, certs.der("broker4"))

    # Refused before anything is committed: a file that is not there, a wrong password, a
    # certificate for another subject; and a keystore at the cluster's default level.
    def refused(name, **configs):
        with pytest.raises(KafkaException) as e:
            alter(admin, name, **configs)
        return str(e.value)
    assert "keystore" in refused("1", **{"listener.name.ssl.ssl.keystore.location": str(tmp_path / "missing.p12")})
    assert "wrong password" in refused("1", **{"listener.name.ssl.ssl.keystore.password": "not-it"})
    other = certs.pkcs12("client", "pw4")  # CN=alice: another identity
    assert "subject" in refused("1", **{"listener.name.ssl.ssl.keystore.location": other})
    r = cluster_default(b, f"ssl.keystore.location={certs.keystore}")
    assert r.returncode != 0 and "default cluster level" in r.stderr, r.stderr
    assert served_certificate(ssl_bootstrap, certs) == certs.der("broker4")
    configs = describe(admin)
    assert source(configs["log.retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value

    # One broker's own value over the cluster's, as Kafka describes them.
    assert cluster_default(b, "log.retention.ms=3600000").returncode == 0
    alter(admin, "1", **{"log.retention.ms": "7200000"})
    entry = describe(admin)["log.retention.ms"]
    assert (entry.value, source(entry)) == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    res = ConfigResource(BROKER, "1", incremental_configs=[ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    list(admin.incremental_alter_configs([res]).values())[0].result(timeout=15)
    entry = describe(admin)["log.retention.ms"]
    assert (entry.value, source(entry)) == ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)

    # The altered keystore outlives a restart: it is served, not server.properties' one.
    b.restart()
    wait_served(ssl_bootstrap, certs, certs.der("broker4"))
    assert served_certificate(ssl_bootstrap, certs) == certs.der("broker4")
