"""ACLs with `authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`, as
Kafka's KRaft authorizer: managed with confluent-kafka's AdminClient and kafka-python's admin,
stored in the metadata log (they survive a restart), and enforced on every API with Kafka's
error codes. Principals come from SASL/PLAIN; `User:admin` is a super user."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

from test_sasl import plain
from test_tls import free_port

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw" '
        'user_admin="admin-pw" user_alice="alice-pw" user_bob="bob-pw" user_carol="carol-pw";')

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def acl_broker(broker_factory, *extra, data_dir=None):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}",
                                  "sasl.enabled.mechanisms=PLAIN", f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
                                  f"authorizer.class.name={AUTHORIZER}", "super.users=User:admin", *extra], data_dir=data_dir)
    b.sasl_bootstrap = f"127.0.0.1:{port}"
    return b


def as_user(b, user, **more):
    return plain(b.sasl_bootstrap, user, f"{user}-pw", **more)


def allow(restype, name, principal, op, pattern=ResourcePatternType.LITERAL, host="*", perm=AclPermissionType.ALLOW):
    return AclBinding(restype, name, pattern, principal, host, op, perm)


def create_acls(admin, bindings):
    for f in admin.create_acls(bindings).values():
        f.result(timeout=15)


def produce_error(b, user, topic, **more):
    """The delivery error of one record produced as `user` (None when it was written)."""
    errors = []
    p = Producer(as_user(b, user, **{"message.timeout.ms": 8000, **more}))
    p.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1
    return errors[0]


def consume(b, user, topic, group, n, timeout=20):
    """Up to `n` values read from the start as `user` in `group`, and the first error seen."""
    c = Consumer(as_user(b, user, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    got, error, deadline = [], None, time.time() + timeout
    while len(got) < n and error is None and time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        if m.error():
            error = m.error()
        else:
            got.append(m.value())
    if got and error is None:
        c.commit(asynchronous=False)
    c.close()
    return got, error


@pytest.fixture
def secured(broker_factory):
    b = acl_broker(broker_factory)
    admin = AdminClient(as_user(b, "admin"))
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("team-a.orders", "team-a.secret", "other", "public")]).values():
        f.result(timeout=15)
    create_acls(admin, [
        # alice: everything under the team-a. prefix, her group.
        allow(ResourceType.TOPIC, "team-a.", "User:alice", AclOperation.ALL, ResourcePatternType.PREFIXED),
        allow(ResourceType.GROUP, "alice-", "User:alice", AclOperation.READ, ResourcePatternType.PREFIXED),
        # ... but never the secret topic: DENY wins over the prefixed ALLOW.
        allow(ResourceType.TOPIC, "team-a.secret", "User:alice", AclOperation.READ, perm=AclPermissionType.DENY),
        allow(ResourceType.TOPIC, "team-a.secret", "User:alice", AclOperation.WRITE, perm=AclPermissionType.DENY),
        # Everyone may read `public` (the wildcard principal), in the public- groups.
        allow(ResourceType.TOPIC, "public", "User:*", AclOperation.READ),
        allow(ResourceType.GROUP, "public-", "User:*", AclOperation.READ, ResourcePatternType.PREFIXED),
    ])
    return b, admin


def test_acls_are_managed_listed_and_deleted_as_kafka(secured):
    b, admin = secured
    every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(every).result(timeout=15)
    assert len(listed) == 6
    alices = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                                  AclOperation.ANY, AclPermissionType.ANY)).result(timeout=15)
    assert len(alices) == 4
    # MATCH: every pattern that applies to the topic `team-a.secret`.
    matching = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, "team-a.secret", ResourcePatternType.MATCH, None, None,
                                                    AclOperation.ANY, AclPermissionType.ANY)).result(timeout=15)
    assert sorted((a.name, a.operation) for a in matching) == [
        ("team-a.", AclOperation.ALL), ("team-a.secret", AclOperation.READ), ("team-a.secret", AclOperation.WRITE)]
    # Bad ACLs are refused with Kafka's INVALID_REQUEST.
    with pytest.raises(KafkaException) as e:
        create_acls(admin, [allow(ResourceType.BROKER, "not-the-cluster", "User:alice", AclOperation.ALTER)])
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST
    # Non-super users may not manage ACLs.
    alice = AdminClient(as_user(b, "alice"))
    with pytest.raises(KafkaException) as e:
        create_acls(alice, [allow(ResourceType.TOPIC, "other", "User:alice", AclOperation.ALL)])
    assert e.value.args[0].code() == CLUSTER_AUTHORIZATION_FAILED
    # (librdkafka hands DescribeAcls' error back as an empty list: kafka-python shows the code,
    # see test_kafka_python_admin_acls.)
    # Delete the DENYs: the filter's result lists what went.
    deny = AclBindingFilter(ResourceType.TOPIC, "team-a.secret", ResourcePatternType.LITERAL, None, None, AclOperation.ANY,
                            AclPermissionType.DENY)
    deleted = admin.delete_acls([deny])[deny].result(timeout=15)
    assert sorted(a.operation for a in deleted) == [AclOperation.READ, AclOperation.WRITE]
    assert admin.delete_acls([deny])[deny].result(timeout=15) == []
    assert len(admin.describe_acls(every).result(timeout=15)) == 4


def test_the_acl_matrix_with_real_clients(secured):
    b, admin = secured
    # Produce: WRITE on the topic.
    assert produce_error(b, "alice", "team-a.orders") is None
    assert produce_error(b, "alice", "team-a.secret").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(b, "alice", "other").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(b, "bob", "team-a.orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Auto-creation needs CREATE: alice has it under her prefix only.
    assert produce_error(b, "alice", "team-a.new") is None
    assert produce_error(b, "bob", "bobs-new-topic").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert "bobs-new-topic" not in admin.list_topics(timeout=10).topics
    assert produce_error(b, "admin", "public") is None
    # Fetch and the group: READ on both; commits are stored.
    assert consume(b, "alice", "team-a.orders", "alice-g", 1) == ([b"x"], None)
    got, err = consume(b, "alice", "team-a.orders", "bobs-group", 1, timeout=10)
    assert got == [] and err is not None and err.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED), err
    # The wildcard principal reads `public` in the public- groups.
    assert consume(b, "bob", "public", "public-bob", 1) == ([b"x"], None)
    c = Consumer(as_user(b, "admin", **{"group.id": "alice-g"}))
    assert c.committed([TopicPartition("team-a.orders", 0)], timeout=10)[0].offset == 1
    c.close()
    # Metadata: only what the principal may describe (ALL and READ imply DESCRIBE; a DENY of
    # READ and WRITE does not deny DESCRIBE, as in Kafka).
    assert set(AdminClient(as_user(b, "alice")).list_topics(timeout=10).topics) == {"team-a.orders", "team-a.secret", "team-a.new", "public"}
    assert set(AdminClient(as_user(b, "carol")).list_topics(timeout=10).topics) == {"public"}
    named = AdminClient(as_user(b, "carol")).list_topics(topic="team-a.orders", timeout=10).topics["team-a.orders"]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Topic admin: alice may create and delete under her prefix, carol nowhere.
    alice = AdminClient(as_user(b, "alice"))
    alice.create_topics([NewTopic("team-a.made", 1, 1)])["team-a.made"].result(timeout=15)
    carol = AdminClient(as_user(b, "carol"))
    with pytest.raises(KafkaException) as e:
        carol.create_topics([NewTopic("carols", 1, 1)])["carols"].result(timeout=15)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        carol.delete_topics(["public"])["public"].result(timeout=15)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    alice.delete_topics(["team-a.made"])["team-a.made"].result(timeout=15)
    # Transactions: WRITE on the transactional id.
    p = Producer(as_user(b, "alice", **{"transactional.id": "alice-tx"}))
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    create_acls(admin, [allow(ResourceType.TRANSACTIONAL_ID, "alice-", "User:alice", AclOperation.WRITE, ResourcePatternType.PREFIXED)])
    p = Producer(as_user(b, "alice", **{"transactional.id": "alice-tx"}))
    p.init_transactions(15)
    p.begin_transaction()
    p.produce("team-a.orders", b"in-txn")
    p.commit_transaction(15)


def test_acls_survive_a_restart_and_anonymous_is_nobody(broker_factory, tmp_path):
    data = tmp_path / "acl-data"
    b = acl_broker(broker_factory, data_dir=data)
    admin = AdminClient(as_user(b, "admin"))
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(timeout=15)
    create_acls(admin, [allow(ResourceType.TOPIC, "kept", "User:bob", AclOperation.WRITE)])
    b.stop()
    b = acl_broker(broker_factory, data_dir=data)
    assert produce_error(b, "bob", "kept") is None
    assert produce_error(b, "carol", "kept").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The PLAINTEXT listener's clients are User:ANONYMOUS: no ACL, no access (Kafka's default).
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 8000})
    p.produce("kept", b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_allow_everyone_if_no_acl_found(broker_factory):
    b = acl_broker(broker_factory, "allow.everyone.if.no.acl.found=true")
    # No ACL names the topic: everyone may use it ...
    assert produce_error(b, "carol", "open-topic") is None
    # ... until one does.
    create_acls(AdminClient(as_user(b, "admin")), [allow(ResourceType.TOPIC, "open-topic", "User:alice", AclOperation.WRITE)])
    assert produce_error(b, "carol", "open-topic").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(b, "alice", "open-topic") is None


def test_kafka_python_admin_acls(secured):
    b, _ = secured
    from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, ResourcePattern, ResourcePatternFilter
    from kafka.admin import ACLResourcePatternType, ResourceType as KResourceType
    k = KafkaAdminClient(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                         sasl_plain_username="admin", sasl_plain_password="admin-pw")
    acl = ACL("User:bob", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW, ResourcePattern(KResourceType.TOPIC, "other"))
    result = k.create_acls([acl])
    assert result["failed"] == [] and len(result["succeeded"]) == 1
    acls, error = k.describe_acls(ACLFilter("User:bob", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                            ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY)))
    assert error.errno == 0 and [(a.principal, a.operation, a.resource_pattern.resource_name) for a in acls] == [
        ("User:bob", ACLOperation.WRITE, "other")]
    k.close()
    assert produce_error(b, "bob", "other") is None
    k = KafkaAdminClient(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                         sasl_plain_username="alice", sasl_plain_password="alice-pw")
    from kafka.errors import ClusterAuthorizationFailedError
    with pytest.raises(ClusterAuthorizationFailedError):
        k.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                  ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY)))
    k.close()


def test_strom_acls_tool_as_kafka_acls_sh(broker_factory, tmp_path):
    """`strom acls` with kafka-acls.sh's flags and output, authenticating with --command-config."""
    import subprocess
    from conftest import STROM_BIN
    b = acl_broker(broker_factory)
    admin = AdminClient(as_user(b, "admin"))
    admin.create_topics([NewTopic("tooled", 1, 1)])["tooled"].result(timeout=15)
    admin_props = tmp_path / "admin.properties"
    admin_props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                           'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw";\n')

    def acls(*args, props=admin_props):
        r = subprocess.run([STROM_BIN, "acls", "--bootstrap-server", b.sasl_bootstrap, "--command-config", str(props), *args],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    code, out = acls("--add", "--allow-principal", "User:bob", "--operation", "Write", "--operation", "Describe", "--topic", "tooled")
    assert code == 0, out
    assert "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=tooled, patternType=LITERAL)`:" in out
    assert "(principal=User:bob, host=*, operation=WRITE, permissionType=ALLOW)" in out
    code, out = acls("--add", "--consumer", "--allow-principal", "User:carol", "--topic", "tooled", "--group", "carols", "--resource-pattern-type", "prefixed")
    assert code == 0, out
    code, out = acls("--list")
    assert code == 0, out
    assert out.count("Current ACLs for resource") == 3, out
    assert "(principal=User:carol, host=*, operation=READ, permissionType=ALLOW)" in out
    code, out = acls("--list", "--principal", "User:bob")
    assert code == 0 and "ACLs for principal `User:bob`" in out and "User:carol" not in out, out
    # The ACLs act: bob writes, carol may not.
    assert produce_error(b, "bob", "tooled") is None
    assert produce_error(b, "carol", "tooled").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    code, out = acls("--remove", "--force", "--allow-principal", "User:bob", "--operation", "Write", "--topic", "tooled")
    assert code == 0, out
    assert produce_error(b, "bob", "tooled").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A principal that may not alter the cluster is told so; a bad password too.
    bob_props = tmp_path / "bob.properties"
    bob_props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=bob\nsasl.password=bob-pw\n")
    code, out = acls("--add", "--allow-principal", "User:bob", "--topic", "x", props=bob_props)
    assert code != 0 and "CLUSTER_AUTHORIZATION_FAILED" in out.upper().replace(" ", "_"), out
    bob_props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=bob\nsasl.password=wrong\n")
    code, out = acls("--list", props=bob_props)
    assert code != 0 and "Authentication failed" in out, out
    code, out = acls("--add", "--topic", "x")
    assert code != 0 and "--allow-principal" in out, out


def test_client_certificate_principals_with_mapping_rules(broker_factory, tmp_path):
    """On an SSL listener with client authentication the principal is the certificate's subject
    (RFC 2253, `OU=test,CN=alice` for `/CN=alice/OU=test`) through ssl.principal.mapping.rules;
    a certificate no rule maps is refused; without a certificate the client is User:ANONYMOUS."""
    from tlscerts import Certs
    from test_tls import ssl_conf
    certs = Certs(tmp_path / "certs")
    port = free_port()
    base = [f"listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{port}", f"ssl.keystore.location={certs.keystore}",
            f"ssl.truststore.location={certs.ca}", f"authorizer.class.name={AUTHORIZER}",
            # The plaintext listener is the operator's here: its clients are User:ANONYMOUS.
            "super.users=User:ANONYMOUS"]
    b = broker_factory(overrides=[*base, "ssl.client.auth=requested", "ssl.principal.mapping.rules=RULE:^OU=test,CN=([a-z]+)$/$1/U,DEFAULT"])
    ssl_bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("certs", 1, 1), NewTopic("other", 1, 1)])["certs"].result(timeout=15)
    create_acls(admin, [allow(ResourceType.TOPIC, "certs", "User:ALICE", AclOperation.WRITE)])

    def produce(conf, topic):
        errors = []
        p = Producer({**conf, "message.timeout.ms": 8000})
        p.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err))
        p.flush(15)
        return errors[0] if errors else "no delivery report"

    alice = ssl_conf(certs, ssl_bootstrap, **{"ssl.certificate.location": certs.client_cert, "ssl.key.location": certs.client_key})
    assert produce(alice, "certs") is None
    assert produce(alice, "other").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # No certificate (requested, not required): User:ANONYMOUS, a super user in this test.
    assert produce(ssl_conf(certs, ssl_bootstrap), "other") is None
    b.stop()
    # A rule set that maps nothing for alice's subject: her connection is refused.
    b = broker_factory(overrides=[*base, "ssl.client.auth=required", "ssl.principal.mapping.rules=RULE:^CN=nobody$/x/"], data_dir=b.data_dir)
    with pytest.raises(KafkaException):
        AdminClient(alice).list_topics(timeout=5)
    assert b.wait_for_log("authentication failed", timeout=10)
