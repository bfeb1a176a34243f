"""Security as configured, never less. Strom serves PLAINTEXT, SSL and SASL (PLAIN) listeners so
far (other mechanisms, ACLs and quotas are still to come, issue 15), so an SSL listener without
its keystore, a SASL listener without a served mechanism or its users, or a Kafka security key
Strom does not act on stops the start with an error saying so, instead of serving less than the
operator asked for. The ACL APIs answer as Kafka without an authorizer: SECURITY_DISABLED. TLS
and SASL themselves are tested in test_tls.py and test_sasl.py."""
import socket
import subprocess

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePatternFilter,
                         ResourceType as KResourceType)
from kafka.errors import SecurityDisabledError
from kafka.protocol.old import admin as old_admin

from conftest import STROM_BIN
from test_old_versions import call
from cluster import free_port

SECURITY_DISABLED = 54


def start_fails(tmp_path, *overrides):
    args = [STROM_BIN, "server", "--override", f"log.dirs={tmp_path}/d", "--override", "http.listeners="]
    for o in overrides:
        args += ["--override", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert "bootstrap.servers=" not in p.stdout, "a broker that refuses its config must never report ready"
    assert p.returncode != 0
    return p.stderr


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("listeners,protocol_map,reason", [
    ("SSL://127.0.0.1:{p}", None, "needs a keystore"),
    ("EXTERNAL://127.0.0.1:{p}", "EXTERNAL:SSL", "needs a keystore"),
    # Kafka's default mechanism is GSSAPI (Kerberos), which Strom does not serve.
    ("SASL_PLAINTEXT://127.0.0.1:{p}", None, "`GSSAPI` is not served yet"),
    ("sasl_ssl://127.0.0.1:{p}", None, "needs a keystore"),
    # A secured listener beside a plaintext one: the plaintext one must not start either.
    ("PLAINTEXT://127.0.0.1:{q},SECURE://127.0.0.1:{p}", "PLAINTEXT:PLAINTEXT,SECURE:SASL_PLAINTEXT", "`GSSAPI` is not served yet"),
])
def test_a_listener_asking_for_tls_or_sasl_never_serves_plaintext(tmp_path, listeners, protocol_map, reason):
    """The bug this replaces: `listeners=SSL://...` started and served plaintext Kafka."""
    p, q = free_port(), free_port()
    overrides = [f"listeners={listeners.format(p=p, q=q)}"]
    if protocol_map:
        overrides.append(f"listener.security.protocol.map={protocol_map}")
    err = start_fails(tmp_path, *overrides)
    assert reason in err, err
    assert not listening(p) and not listening(q)


def test_plain_without_users_is_refused(tmp_path):
    err = start_fails(tmp_path, f"listeners=SASL_PLAINTEXT://127.0.0.1:{free_port()}", "sasl.enabled.mechanisms=PLAIN")
    assert "listener.name.sasl_plaintext.plain.sasl.jaas.config" in err, err


def test_unmapped_listener_name_is_refused_as_kafka_does(tmp_path):
    err = start_fails(tmp_path, f"listeners=EXTERNAL://127.0.0.1:{free_port()}")
    assert "no security protocol defined for listener EXTERNAL" in err, err


@pytest.mark.parametrize("key", ["sasl.login.callback.handler.class", "ssl.keymanager.algorithm",
                                 "sasl.jaas.config",
                                 "listener.name.plaintext.ssl.engine.factory.class",
                                 "listener.name.sasl_plaintext.gssapi.sasl.jaas.config"])
def test_security_keys_are_refused_as_not_yet_supported(tmp_path, key):
    """Kafka's own security keys are not typos: the error says Strom does not act on them yet."""
    err = start_fails(tmp_path, "listeners=PLAINTEXT://127.0.0.1:0", f"{key}=/some/value")
    assert key in err and "security" in err and "spelling" not in err, err


@pytest.mark.parametrize("key,value,says", [
    ("authorizer.class.name", "kafka.security.authorizer.AclAuthorizer", "ZooKeeper"),
    ("authorizer.class.name", "com.example.Custom", "not a JVM"),
    ("super.users", "admin", "User:<name>"),
])
def test_authorizer_settings_are_checked(tmp_path, key, value, says):
    """The authorizer's keys are served now: a value Strom cannot act on stops the start, naming the key."""
    err = start_fails(tmp_path, "listeners=PLAINTEXT://127.0.0.1:0", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                      f"{key}={value}")
    assert key in err and says in err, err


def test_custom_listener_mapped_to_plaintext_serves_real_clients(broker_factory):
    """`listener.security.protocol.map` is honoured: a custom name mapped to PLAINTEXT serves;
    so does a stock server.properties line that asks for no security."""
    b = broker_factory(overrides=["listeners=CLIENTS://127.0.0.1:0", "listener.security.protocol.map=CLIENTS:PLAINTEXT",
                                  "security.inter.broker.protocol=PLAINTEXT"])
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    p.send("mapped", b"hello").get(timeout=10)
    p.close()
    c = KafkaConsumer("mapped", bootstrap_servers=b.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    assert [m.value for m in c] == [b"hello"]
    c.close()


def test_acl_apis_answer_security_disabled(broker):
    """confluent-kafka's AdminClient (v2-3 of the ACL APIs) gets Kafka's SECURITY_DISABLED for
    create and delete, kafka-python's for describe, not a closed connection. (librdkafka drops
    DescribeAcls' top-level error and reports an empty list, against Kafka as against Strom.)"""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    filt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    for f in [a.create_acls([binding])[binding], a.delete_acls([filt])[filt]]:
        with pytest.raises(KafkaException) as e:
            f.result(timeout=15)
        assert e.value.args[0].code() == SECURITY_DISABLED, e.value
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        kfilter = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                            resource_pattern=ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY))
        with pytest.raises(SecurityDisabledError):
            k.describe_acls(kfilter)
    finally:
        k.close()


def test_acl_apis_v0_and_v1_on_the_wire(broker):
    """The versions Kafka 3.9 served and kafka-protocol does not code (v0), and v1, with
    kafka-python's classes: every creation and filter gets SECURITY_DISABLED and a message."""
    bs = broker.bootstrap
    for v in (0, 1):
        pattern = () if v == 0 else (3,)
        r = call(bs, old_admin.DescribeAclsRequest[v](2, "t", *pattern, None, None, 1, 1), old_admin.DescribeAclsResponse[v])
        assert (r.error_code, r.error_message, r.resources) == (SECURITY_DISABLED, "No Authorizer is configured on the broker", [])
        creations = [(2, "t", *pattern, "User:a", "*", 3, 3), (3, "g", *pattern, "User:b", "*", 3, 3)]
        r = call(bs, old_admin.CreateAclsRequest[v](creations), old_admin.CreateAclsResponse[v])
        assert r.results == [(SECURITY_DISABLED, "No Authorizer is configured.")] * 2
        filters = [(1, None, *pattern, None, None, 1, 1)]
        r = call(bs, old_admin.DeleteAclsRequest[v](filters), old_admin.DeleteAclsResponse[v])
        assert r.filter_results == [(SECURITY_DISABLED, "No Authorizer is configured.", [])]
