"""A fully encrypted and authenticated three-node cluster (issue 15): clients on SASL_SSL with
SCRAM, brokers replicating over their own SASL_SSL listener (logging in to each other with
SCRAM, as Kafka's inter-broker client does), the controller quorum over mutual TLS, and the
StandardAuthorizer. SCRAM users and ACLs created through one node reach every node and survive
a restart of all of them; an acks=all produce with three replicas is consumed by an authorized
user and refused to an unauthorized one; plaintext peers get nothing from the inter-broker and
controller ports. Also: controllers on SASL_SSL with PLAIN, a broker whose inter-broker
password is wrong, and `strom cluster --secured`."""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ElectionType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic, ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from cluster import Cluster, free_port_ranges, free_ports, wait_for
from conftest import STROM_BIN
from test_tls import certs  # noqa: F401 (the certs fixture)

SECURED_EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "cluster-secured")
TOPIC = "secured"


def secured_cluster(tmp_path, certs, keystore=None):
    """The README's secured cluster: each node from examples/cluster-secured/node<i>.properties,
    with only its ports, data directory, certificate paths and timeouts overridden, and the
    brokers' principal no super user (it gets CLUSTER_ACTION by ACL in the test, Kafka's model)."""
    keystore = keystore or certs.node_keystore()
    c = Cluster(tmp_path, 3, overrides=[
        f"ssl.keystore.location={keystore}",
        f"ssl.truststore.location={certs.ca}",
        "super.users=User:admin",
        "offsets.topic.replication.factor=3",
    ])
    c.internal_ports = free_ports(3)
    for i, node in c.nodes.items():
        node.config = os.path.join(SECURED_EXAMPLES, f"node{i}.properties")
        node.overrides.append(f"listeners=CLIENT://127.0.0.1:{c.client_ports[i - 1]},INTERNAL://127.0.0.1:"
                              f"{c.internal_ports[i - 1]},CONTROLLER://127.0.0.1:{c.controller_ports[i - 1]}")
        # The first users of a new cluster, as `kafka-storage format --add-scram`: the brokers'
        # own login and the administrator (written by the node that founds the cluster).
        node.server_args = ["--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret,iterations=4096]",
                            "--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret,iterations=4096]"]
    return c


def replicated_topic(admin, topic):
    """Gives the brokers' principal CLUSTER_ACTION (it is no super user in these clusters: Kafka's
    model), so that followers may fetch, then creates `topic` (a NewTopic)."""
    for f in admin.create_acls([acl(ResourceType.BROKER, "kafka-cluster", "User:broker", AclOperation.CLUSTER_ACTION)]).values():
        assert f.result(timeout=15) is None
    for f in admin.create_topics([topic]).values():
        assert f.result(timeout=15) is None


def conf(bootstrap, certs, user, password=None):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "ssl.ca.location": certs.ca,
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password or f"{user}-secret"}


def acl(restype, name, principal, op):
    return AclBinding(restype, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)


def topics_seen(bootstrap, certs, user):
    """The topics `user` is shown by the node at `bootstrap`: a fresh client's first request goes
    to its bootstrap node, so the login (SCRAM credentials) and the answer (Metadata leaves out
    what the principal may not describe: ACLs) are that node's."""
    md = AdminClient(conf(bootstrap, certs, user)).list_topics(timeout=10)
    return set(md.topics)


def consume(bootstrap, certs, user, n, group="readers"):
    c = Consumer({**conf(bootstrap, certs, user), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([TOPIC])
    got = []
    try:
        while len(got) < n:
            m = c.poll(15)
            assert m is not None, f"{user} got {len(got)} of {n} records"
            if m.error():
                return got, m.error()
            got.append(m.value())
    finally:
        c.close()
    return got, None


def every_node_knows_the_users_and_acls(c, certs):
    for i, node in c.nodes.items():
        # alice may describe the topic (READ implies it); bob has credentials but no ACL.
        wait_for(f"node {i} to show {TOPIC} to alice", lambda: TOPIC in topics_seen(node.bootstrap, certs, "alice"), 20)
        assert TOPIC not in topics_seen(node.bootstrap, certs, "bob"), f"node {i} shows bob a topic he may not describe"


def no_kafka_answer_in_plaintext(port, payload):
    """Sends `payload` in the clear and returns what came back before the port closed: a TLS
    listener answers a plaintext peer with a TLS alert record (content type 21) or nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        data = b""
        try:
            while len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert data == b"" or data[0] == 21, f"a plaintext peer got an answer: {data[:64]!r}"
    return data


def test_a_cluster_secured_end_to_end(tmp_path, certs):
    c = secured_cluster(tmp_path, certs)
    try:
        c.start()
        admin = AdminClient(conf(c.nodes[1].bootstrap, certs, "admin"))
        # Users and ACLs through node 1 only.
        upserts = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), f"{u}-secret".encode())
                   for u in ("alice", "bob")]
        for user, f in admin.alter_user_scram_credentials(upserts).items():
            assert f.result(timeout=15) is None, user
        for f in admin.create_acls([
            acl(ResourceType.BROKER, "kafka-cluster", "User:broker", AclOperation.CLUSTER_ACTION),
            acl(ResourceType.TOPIC, TOPIC, "User:alice", AclOperation.WRITE),
            acl(ResourceType.TOPIC, TOPIC, "User:alice", AclOperation.READ),
            acl(ResourceType.GROUP, "readers", "User:alice", AclOperation.READ),
            acl(ResourceType.GROUP, "readers", "User:bob", AclOperation.READ),
        ]).values():
            assert f.result(timeout=15) is None
        for f in admin.create_topics([NewTopic(TOPIC, 1, 3)]).values():
            assert f.result(timeout=15) is None

        def full_isr():
            md = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
            p = md.partitions[0]
            return md.error is None and len(p.replicas) == 3 and sorted(p.isrs) == sorted(p.replicas) and p.leader > 0
        wait_for("three in-sync replicas, replicated over SASL_SSL", full_isr, 60)
        # Metadata reaches the nodes asynchronously (as in Kafka): once every node shows alice the
        # topic, each has applied the ACLs and users, which came before it in the log.
        every_node_knows_the_users_and_acls(c, certs)

        # acks=all with three replicas and min.insync.replicas=2: acknowledged only once the
        # followers, logged in as User:broker over TLS, have fetched it.
        p = Producer({**conf(c.bootstrap(), certs, "alice"), "acks": "all", "enable.idempotence": True})
        failures = []
        for i in range(20):
            p.produce(TOPIC, b"secret-%d" % i, on_delivery=lambda err, msg: err and failures.append(err))
        assert p.flush(30) == 0 and failures == [], failures
        got, err = consume(c.nodes[2].bootstrap, certs, "alice", 20)
        assert err is None and got == [b"secret-%d" % i for i in range(20)], (got, err)
        # bob logs in (his credentials are good) but may not read the topic.
        got, err = consume(c.nodes[3].bootstrap, certs, "bob", 1, group="readers")
        assert got == [] and err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
        every_node_knows_the_users_and_acls(c, certs)
        # Every replica holds the records: the followers copied them over the INTERNAL listener.
        for i in c.nodes:
            wait_for(f"node {i}'s replica to hold the records", lambda: b"secret-19" in c.replica_log(i, TOPIC, 0), 20)

        admin3 = AdminClient(conf(c.nodes[3].bootstrap, certs, "admin"))
        for f in admin3.create_acls([acl(ResourceType.GROUP, "after-restart", "User:alice", AclOperation.READ)]).values():
            assert f.result(timeout=15) is None

        # A restart of every node: users, ACLs and records come back from the metadata log and
        # the partition logs, and the nodes find each other again over TLS.
        for node in c.nodes.values():
            assert node.stop() == 0
        c.start()
        every_node_knows_the_users_and_acls(c, certs)
        # An ACL made through node 3 before the restart, used at node 1 after it.
        got, err = consume(c.nodes[1].bootstrap, certs, "alice", 20, group="after-restart")
        assert err is None and got == [b"secret-%d" % i for i in range(20)], (got, err)
        p = Producer({**conf(c.bootstrap(), certs, "alice"), "acks": "all"})
        p.produce(TOPIC, b"after-restart")
        assert p.flush(30) == 0
        for node in c.nodes.values():
            assert "broker-secret" not in node.log_since_start() and "admin-secret" not in node.log_since_start()
    finally:
        c.kill_all()


def test_inter_broker_and_controller_ports_refuse_plaintext(tmp_path, certs):
    c = secured_cluster(tmp_path, certs)
    try:
        c.start()
        # A Kafka ApiVersions v0 request in the clear, to the inter-broker and client listeners.
        api_versions = struct.pack(">hhi", 18, 0, 1) + struct.pack(">h", 4) + b"test"
        frame = struct.pack(">i", len(api_versions)) + api_versions
        for port in c.internal_ports + c.client_ports:
            no_kafka_answer_in_plaintext(port, frame)
        # Strom's own controller frame (a Hello probe) in the clear: no JSON comes back.
        hello = json.dumps({"cluster_id": "", "from": 9, "request": "Hello"}).encode()
        for port in c.controller_ports:
            no_kafka_answer_in_plaintext(port, struct.pack(">I", len(hello)) + hello)
        # The controller port speaks TLS: with the CA the handshake verifies its certificate;
        # with a node certificate it completes, without one the server refuses it (mutual TLS).
        ctx = ssl.create_default_context(cafile=certs.ca)
        ctx.load_cert_chain(str(certs.dir / "node.crt"), str(certs.dir / "node.key"))
        with socket.create_connection(("127.0.0.1", c.controller_ports[0]), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(struct.pack(">I", len(hello)) + hello)
                (n,) = struct.unpack(">I", tls.recv(4))
                body = b""
                while len(body) < n:
                    body += tls.recv(n - len(body))
                assert "Hello" in json.loads(body), body
        anonymous = ssl.create_default_context(cafile=certs.ca)
        with socket.create_connection(("127.0.0.1", c.controller_ports[0]), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    # TLS 1.3: the refusal of the missing certificate arrives with the first read.
                    tls.sendall(struct.pack(">I", len(hello)) + hello)
                    if not tls.recv(4):
                        raise ConnectionResetError("closed without an answer")
        # The nodes said why they refused, without a flood.
        assert any(n.wait_for_log("failed its handshake", timeout=10) for n in c.nodes.values())
    finally:
        c.kill_all()


def test_controllers_on_sasl_ssl_log_in_to_each_other_with_plain(tmp_path, certs):
    """A SASL_SSL controller listener (Kafka's `sasl.mechanism.controller.protocol=PLAIN`): the
    quorum forms and serves an acks=all produce; a TLS peer that does not log in gets nothing."""
    c = secured_cluster(tmp_path, certs)
    for node in c.nodes.values():
        node.overrides += [
            "listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL",
            "listener.name.controller.ssl.client.auth=none",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="controller" password="controller-secret" user_controller="controller-secret";',
        ]
    try:
        c.start()
        admin = AdminClient(conf(c.nodes[2].bootstrap, certs, "admin"))
        replicated_topic(admin, NewTopic(TOPIC, 1, 3))
        p = Producer({**conf(c.bootstrap(), certs, "admin"), "acks": "all"})
        p.produce(TOPIC, b"quorum-over-sasl")
        assert p.flush(30) == 0
        hello = json.dumps({"cluster_id": "", "from": 9, "request": "Hello"}).encode()
        no_kafka_answer_in_plaintext(c.controller_ports[0], struct.pack(">I", len(hello)) + hello)
        # TLS without the login: the JSON frame is taken as a login, refused, and closed.
        ctx = ssl.create_default_context(cafile=certs.ca)
        with socket.create_connection(("127.0.0.1", c.controller_ports[1]), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(struct.pack(">I", len(hello)) + hello)
                try:
                    answer = tls.recv(4096)
                except (ssl.SSLError, ConnectionResetError):
                    answer = b""
                assert answer == b"", answer
        assert any(n.wait_for_log("failed its handshake", timeout=10) for n in c.nodes.values())
    finally:
        c.kill_all()


def test_host_names_are_verified_as_ssl_endpoint_identification_algorithm_says(tmp_path, certs):
    """Nodes whose certificates name another host: with Kafka's default (`https`) they refuse
    each other's certificates and say so; with the check turned off (empty) the chain alone is
    verified and the cluster forms and replicates."""
    elsewhere = certs.node_keystore("elsewhere", names="DNS:elsewhere.example")
    c = secured_cluster(tmp_path / "https", certs, keystore=elsewhere)
    try:
        for node in c.nodes.values():
            node.launch()
        # The connecting side names the reason, the accepting side the refusal.
        assert c.nodes[1].wait_for_log('certificate not valid for name "127.0.0.1"', timeout=30), "".join(c.nodes[1].log_lines[-20:])
        assert any(n.wait_for_log("failed its handshake", timeout=10) for n in c.nodes.values())
    finally:
        c.kill_all()
    c = secured_cluster(tmp_path / "off", certs, keystore=elsewhere)
    for node in c.nodes.values():
        node.overrides.append("ssl.endpoint.identification.algorithm=")
    try:
        c.start()
        # The clients do not check host names either here: the certificates name another host.
        client = {"ssl.endpoint.identification.algorithm": "none"}
        admin = AdminClient({**conf(c.nodes[1].bootstrap, certs, "admin"), **client})
        replicated_topic(admin, NewTopic(TOPIC, 1, replica_assignment=[[1, 2, 3]]))
        p = Producer({**conf(c.nodes[1].bootstrap, certs, "admin"), **client, "acks": "all"})
        p.produce(TOPIC, b"any-host")
        assert p.flush(30) == 0
        for i in (2, 3):
            wait_for(f"node {i}'s replica", lambda: b"any-host" in c.replica_log(i, TOPIC, 0), 20)
    finally:
        c.kill_all()


def test_a_broker_with_a_wrong_inter_broker_password_is_refused_and_says_so(tmp_path, certs):
    """Node 3's own login is wrong: the leader refuses it like any client, node 3 copies nothing
    and warns (its operator must fix a credential, not wait for a peer), while nodes 1 and 2
    carry on (acks=all needs two in sync)."""
    c = secured_cluster(tmp_path, certs)
    for node in c.nodes.values():
        # acks=all waits for every in-sync replica: node 3 leaves the ISR after this long.
        node.overrides.append("replica.lag.time.max.ms=3000")
    c.nodes[3].overrides.append("listener.name.internal.scram-sha-512.sasl.jaas.config="
                                'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="wrong";')
    try:
        c.start()
        admin = AdminClient(conf(c.nodes[1].bootstrap, certs, "admin"))
        # Led by node 1, followed by 2 and 3.
        replicated_topic(admin, NewTopic(TOPIC, 1, replica_assignment=[[1, 2, 3]]))
        p = Producer({**conf(c.nodes[1].bootstrap, certs, "admin"), "acks": "all"})
        p.produce(TOPIC, b"only-two")
        assert p.flush(60) == 0
        wait_for("node 2's replica", lambda: b"only-two" in c.replica_log(2, TOPIC, 0), 20)
        assert c.nodes[3].wait_for_log("SASL login as broker failed", timeout=20), "".join(c.nodes[3].log_lines[-30:])
        assert b"only-two" not in c.replica_log(3, TOPIC, 0)
    finally:
        c.kill_all()


def test_strom_cluster_secured_starts_a_cluster_clients_can_use(tmp_path, certs):
    """`strom cluster --secured`: certificates, passwords and the admin's client config made on
    first start; a client with that config produces (acks=all, three replicas) and consumes."""
    base, ibase, cbase = free_port_ranges(3, 3)
    errors = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([STROM_BIN, "cluster", "--secured", "--nodes", "3", "--base-port", str(base),
                             "--inter-broker-base-port", str(ibase), "--controller-base-port", str(cbase),
                             "--http-base-port", "0", "--dir", str(tmp_path / "c")],
                            stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        summary = []
        for line in proc.stdout:
            summary.append(line)
            if line.startswith("Ctrl-C stops every node"):
                break
        errors.seek(0)
        secured = [line for line in summary if line.startswith("Secured: ")]
        assert secured, "no summary; stderr:\n" + errors.read()[-3000:]
        # Keep draining the nodes' output, or they would block on a full pipe.
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        home = os.path.realpath(tmp_path / "c")
        assert secured[0].rstrip().endswith(f"{home}/admin.properties"), secured
        with open(f"{home}/admin.properties") as f:
            client = dict(line.rstrip("\n").split("=", 1) for line in f if line.strip() and not line.startswith("#"))
        assert client["security.protocol"] == "SASL_SSL" and client["sasl.username"] == "admin", client
        assert oct(os.stat(f"{home}/admin.properties").st_mode & 0o777) == "0o600"
        client["bootstrap.servers"] = f"127.0.0.1:{base}"
        p = Producer({**client, "acks": "all"})
        p.produce("dev", b"hello")
        assert p.flush(30) == 0
        c = Consumer({**client, "group.id": "dev", "auto.offset.reset": "earliest"})
        c.subscribe(["dev"])
        m = c.poll(20)
        assert m is not None and m.error() is None and m.value() == b"hello", m and m.error()
        c.close()
        md = AdminClient(client).list_topics("dev", timeout=10).topics["dev"]
        assert len(md.partitions[0].replicas) == 3
        # Plaintext on the inter-broker port gets nothing.
        no_kafka_answer_in_plaintext(ibase, struct.pack(">i", 10) + struct.pack(">hhih", 18, 0, 1, 0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_new_ca_rolled_out_without_restarting_the_nodes(tmp_path, certs):
    """Certificates rotate on the client side of each node too: the keystore and truststore
    files of a running cluster are switched to a new CA (trust both, swap the certificates,
    then trust only the new CA), and a node restarted afterwards is let in by the two others
    only if their own connections to it (controller quorum, follower fetches; mutual TLS on the
    controller port) present and check the new certificates, which they were never restarted to
    read. It must rejoin every ISR."""
    keystore, truststore = tmp_path / "node.pem", tmp_path / "trust.pem"
    keystore.write_text(open(certs.node_keystore()).read())
    truststore.write_text(open(certs.ca).read())
    c = secured_cluster(tmp_path, certs, keystore=str(keystore))
    for node in c.nodes.values():
        node.overrides.append(f"ssl.truststore.location={truststore}")
    try:
        c.start()
        admin = AdminClient(conf(c.nodes[1].bootstrap, certs, "admin"))
        replicated_topic(admin, NewTopic(TOPIC, 3, 3))

        def full_isr(via):
            md = AdminClient(conf(via, certs, "admin")).list_topics(TOPIC, timeout=10).topics[TOPIC]
            return md.error is None and len(md.partitions) == 3 and all(
                sorted(p.isrs) == [1, 2, 3] and p.leader > 0 for p in md.partitions.values())
        wait_for("three in-sync replicas", lambda: full_isr(c.nodes[1].bootstrap), 60)

        # Roll out the new CA by replacing the files in place (each step outlasts the 5 s check).
        new_ca = certs.new_ca("ca2")
        truststore.write_text(open(certs.ca).read() + open(new_ca).read())
        time.sleep(7)
        keystore.write_text(open(certs.node_keystore("node-ca2", ca="ca2")).read())
        time.sleep(7)
        truststore.write_text(open(new_ca).read())
        time.sleep(7)

        # Node 3 comes back trusting and presenting only the new CA's certificates.
        assert c.nodes[3].stop() == 0
        c.start([3])
        ca2_clients = {**conf(c.nodes[1].bootstrap, certs, "admin"), "ssl.ca.location": new_ca}

        def back():
            md = AdminClient(ca2_clients).list_topics(TOPIC, timeout=10).topics[TOPIC]
            return md.error is None and all(sorted(p.isrs) == [1, 2, 3] for p in md.partitions.values())
        wait_for("node 3 back in every ISR, over the new CA", back, 90)
        # And an acks=all produce is replicated by all three.
        p = Producer({**ca2_clients, "bootstrap.servers": c.bootstrap(), "acks": "all"})
        p.produce(TOPIC, b"after-rotation", partition=0)
        assert p.flush(30) == 0
        for i in c.nodes:
            wait_for(f"node {i}'s replica to hold the record", lambda: b"after-rotation" in c.replica_log(i, TOPIC, 0), 20)
    finally:
        c.kill_all()


def test_stores_altered_as_dynamic_configs_reach_the_replication_client(tmp_path, certs):
    """A new CA rolled out on the inter-broker listener through dynamic broker configs
    (`listener.name.internal.ssl.*`, per node, as `kafka-configs.sh --entity-type brokers
    --entity-name <id> --alter` does): the stores a node presents and checks when it connects to
    its peers change with the listener's, as Kafka reconfigures its replica fetchers. After the
    switch every INTERNAL port presents only a certificate of the new CA, so new replication
    connections work only with the altered truststore: node 3 restarted must fetch from the two
    others (its client built from the dynamic configs it stored), and nodes 1 and 2, never
    restarted, must fetch from node 3 once it leads again."""
    c = secured_cluster(tmp_path, certs)
    try:
        c.start()
        admin = AdminClient(conf(c.nodes[1].bootstrap, certs, "admin"))
        replicated_topic(admin, NewTopic(TOPIC, 3, 3))

        def isr_of(via, partitions=None):
            md = AdminClient(conf(via, certs, "admin")).list_topics(TOPIC, timeout=10).topics[TOPIC]
            if md.error is not None or len(md.partitions) != 3:
                return None
            return {p.id: (p.leader, sorted(p.isrs)) for p in md.partitions.values() if partitions is None or p.id in partitions}
        wait_for("three in-sync replicas", lambda: all(isr == [1, 2, 3] for _, isr in (isr_of(c.nodes[1].bootstrap) or {0: (0, [])}).values()), 60)

        new_ca = certs.new_ca("ca2")
        both = tmp_path / "both-cas.pem"
        both.write_text(open(certs.ca).read() + open(new_ca).read())
        # The same subject and names as the node certificate (a dynamic keystore must keep them).
        keystore2 = certs.node_keystore("node-ca2", ca="ca2", cn="node")

        def alter(i, **configs):
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
            res = ConfigResource(ConfigResource.Type.BROKER, str(i), incremental_configs=entries)
            return list(admin.incremental_alter_configs([res]).values())[0].result(timeout=15)

        def alter_every_node(**configs):
            for i in c.nodes:
                alter(i, **configs)
            time.sleep(7)  # outlasts the listeners' 5 s check

        # The controller quorum's stores follow their files only: refused, never stored unused.
        with pytest.raises(KafkaException) as refused:
            alter(1, **{"listener.name.controller.ssl.truststore.location": str(both)})
        assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
        assert "controller listener" in refused.value.args[0].str()
        alter_every_node(**{"listener.name.internal.ssl.truststore.location": str(both)})
        alter_every_node(**{"listener.name.internal.ssl.keystore.location": keystore2})
        alter_every_node(**{"listener.name.internal.ssl.truststore.location": new_ca})

        assert c.nodes[3].stop() == 0
        c.start([3])
        wait_for("node 3 back in every ISR", lambda: all(isr == [1, 2, 3] for _, isr in (isr_of(c.nodes[1].bootstrap) or {0: (0, [])}).values()), 90)

        # Node 3 leads its preferred partitions again: nodes 1 and 2 now connect to it.
        led_by_3 = [p for p, replicas in ((p.id, p.replicas) for p in admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions.values())
                    if replicas[0] == 3]
        assert led_by_3, "no partition prefers node 3"
        for f in admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(TOPIC, p) for p in led_by_3]).result(timeout=30).values():
            assert f is None or f.code() == KafkaError.ELECTION_NOT_NEEDED, f
        p = Producer({**conf(c.bootstrap(), certs, "admin"), "acks": "all"})
        for part in led_by_3:
            wait_for(f"node 3 to lead partition {part} with every replica in sync",
                     lambda: isr_of(c.nodes[1].bootstrap, [part]) == {part: (3, [1, 2, 3])}, 60)
            p.produce(TOPIC, b"after-dynamic-rotation", partition=part)
        assert p.flush(30) == 0
        for i in (1, 2):
            wait_for(f"node {i}'s replica, fetched from node 3, to hold the record",
                     lambda: b"after-dynamic-rotation" in c.replica_log(i, TOPIC, led_by_3[0]), 30)
    finally:
        c.kill_all()
