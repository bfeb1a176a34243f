"""SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (KIP-84, KIP-554), as Kafka serves them: users created with
AlterUserScramCredentials (confluent-kafka's AdminClient, and `strom configs --entity-type users`),
then real clients (confluent-kafka, kafka-python, aiokafka, kafkajs, kcat) produce and consume over
SASL_PLAINTEXT and SASL_SSL; wrong passwords and unknown users get SASL_AUTHENTICATION_FAILED;
credentials are described (mechanisms and iterations only), deleted, and kept across restarts."""
import asyncio
import shutil
import socket
import struct
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KPError

from cluster import Cluster, wait_for
from conftest import STROM_BIN, Broker
from jslib import run_js
from test_sasl import closed, frame, read_frame
from test_tls import certs, free_port  # noqa: F401 (the certs fixture)

MECHS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}
FAILED = "Authentication failed during authentication due to invalid credentials with SASL mechanism"


def scram_broker(broker_factory, *extra, protocol="SASL_PLAINTEXT", data_dir=None):
    port = free_port()
    b = broker_factory(overrides=[f"listeners=PLAINTEXT://127.0.0.1:0,{protocol}://127.0.0.1:{port}",
                                  "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512", *extra], data_dir=data_dir)
    b.sasl_bootstrap = f"127.0.0.1:{port}"
    return b


def add_users(bootstrap, *users, iterations=8192):
    """(user, password, mechanism name) through confluent-kafka's AdminClient over PLAINTEXT."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    alterations = [UserScramCredentialUpsertion(u, ScramCredentialInfo(MECHS[m], iterations), pw.encode()) for u, pw, m in users]
    for user, f in admin.alter_user_scram_credentials(alterations).items():
        assert f.result(timeout=15) is None, user


def scram(bootstrap, mechanism, user, password, protocol="SASL_PLAINTEXT", **more):
    return {"bootstrap.servers": bootstrap, "security.protocol": protocol, "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, **more}


def produce_and_consume(conf, topic, n=50):
    p = Producer(conf)
    for i in range(n):
        p.produce(topic, b"v%d" % i)
    assert p.flush(15) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    while len(got) < n:
        m = c.poll(15)
        assert m is not None and m.error() is None, m and m.error()
        got.append(m.value())
    c.close()
    assert got == [b"v%d" % i for i in range(n)]


def refused(conf):
    """The broker's refusal as the client saw it: the exception, or (when librdkafka reports the
    dropped connection instead) the authentication error it hands to error_cb."""
    errors = []
    admin = AdminClient({**conf, "error_cb": lambda err: errors.append(str(err))})
    with pytest.raises(KafkaException) as e:
        admin.list_topics(timeout=5)
    admin.poll(1)
    return " ".join([str(e.value), *errors])


def test_confluent_both_mechanisms_wrong_password_unknown_user_and_describe(broker_factory):
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("alice", "alice-secret", "SCRAM-SHA-256"), ("bob", "bob-secret", "SCRAM-SHA-512"))
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-256", "alice", "alice-secret"), "scram-256")
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-512", "bob", "bob-secret"), "scram-512")
    for mech, user, pw in (("SCRAM-SHA-256", "alice", "wrong-pw-8812"), ("SCRAM-SHA-256", "mallory", "alice-secret"),
                           ("SCRAM-SHA-512", "alice", "alice-secret")):  # alice has no SHA-512 credential
        msg = refused(scram(b.sasl_bootstrap, mech, user, pw))
        assert FAILED in msg, msg
    assert b.wait_for_log("authentication failed", timeout=10)
    assert "wrong-pw-8812" not in b.log_since_start()
    # Describe: mechanisms and iterations, every user or the ones named; unknown: RESOURCE_NOT_FOUND.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    everyone = admin.describe_user_scram_credentials().result(timeout=10)
    assert sorted(everyone) == ["alice", "bob"]
    infos = everyone["bob"].scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    futs = admin.describe_user_scram_credentials(["alice", "nobody"])
    assert futs["alice"].result(timeout=10).scram_credential_infos[0].mechanism == ScramMechanism.SCRAM_SHA_256
    with pytest.raises(KafkaException) as e:
        futs["nobody"].result(timeout=10)
    assert e.value.args[0].name() == "RESOURCE_NOT_FOUND", e.value


def test_kafkas_errors_for_bad_alterations(broker_factory):
    b = scram_broker(broker_factory)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000)
    f = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("low", info, b"pw")])["low"]
    with pytest.raises(KafkaException) as e:
        f.result(timeout=10)
    assert e.value.args[0].name() == "UNACCEPTABLE_CREDENTIAL" and "Too few iterations" in str(e.value), e.value
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 20000)
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion("high", info, b"pw")])["high"].result(timeout=10)
    assert e.value.args[0].name() == "UNACCEPTABLE_CREDENTIAL" and "Too many iterations" in str(e.value), e.value
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([UserScramCredentialDeletion("ghost", ScramMechanism.SCRAM_SHA_512)])["ghost"].result(timeout=10)
    assert e.value.args[0].name() == "RESOURCE_NOT_FOUND", e.value


def test_delete_then_no_login_and_credentials_survive_a_restart(broker_factory):
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("carol", "carol-secret", "SCRAM-SHA-256"), ("dave", "dave-secret", "SCRAM-SHA-512"))
    b.restart()
    # A clean stop and a crash: the credentials come back from the metadata log.
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-256", "carol", "carol-secret"), "scram-restart")
    b.restart(crash=True)
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-512", "dave", "dave-secret"), "scram-crash")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    f = admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])["carol"]
    assert f.result(timeout=10) is None
    msg = refused(scram(b.sasl_bootstrap, "SCRAM-SHA-256", "carol", "carol-secret"))
    assert FAILED in msg, msg
    assert sorted(admin.describe_user_scram_credentials().result(timeout=10)) == ["dave"]


def test_sasl_ssl_scram(broker_factory, certs):
    b = scram_broker(broker_factory, f"ssl.keystore.location={certs.keystore}", protocol="SASL_SSL")
    add_users(b.bootstrap, ("erin", "erin-secret", "SCRAM-SHA-512"))
    conf = scram(b.sasl_bootstrap, "SCRAM-SHA-512", "erin", "erin-secret", protocol="SASL_SSL", **{"ssl.ca.location": certs.ca})
    produce_and_consume(conf, "scram-ssl")
    assert FAILED in refused({**conf, "sasl.password": "wrong"})


def test_kafka_python_and_aiokafka_scram(broker_factory):
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("frank", "frank-secret", "SCRAM-SHA-256"), ("grace", "grace-secret", "SCRAM-SHA-512"))
    kw = dict(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
              sasl_plain_username="frank", sasl_plain_password="frank-secret")
    p = KafkaProducer(**kw)
    p.send("scram-kp", b"from kafka-python").get(timeout=15)
    p.close()
    c = KafkaConsumer("scram-kp", auto_offset_reset="earliest", consumer_timeout_ms=8000, **kw)
    assert [m.value for m in c] == [b"from kafka-python"]
    c.close()
    with pytest.raises(KPError):
        KafkaProducer(**{**kw, "sasl_plain_password": "nope"}, max_block_ms=5000).send("scram-kp", b"x").get(timeout=5)

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def aio():
        akw = dict(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                   sasl_plain_username="grace", sasl_plain_password="grace-secret")
        prod = AIOKafkaProducer(**akw)
        await prod.start()
        await prod.send_and_wait("scram-kp", b"from aiokafka")
        await prod.stop()
        cons = AIOKafkaConsumer("scram-kp", auto_offset_reset="earliest", **akw)
        await cons.start()
        got = [m.value for m in (await cons.getmany(timeout_ms=8000)).get(next(iter(cons.assignment())), [])]
        await cons.stop()
        return got

    assert asyncio.run(aio()) == [b"from kafka-python", b"from aiokafka"]


def test_kafka_python_over_v0_bare_frames(broker_factory):
    """kafka-python told the broker is 0.10.1 sends SaslHandshake v0 and then the SCRAM messages
    as bare frames, all four of them (client-first, server-first, client-final, server-final)."""
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("olga", "olga-secret", "SCRAM-SHA-512"))
    kw = dict(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
              sasl_plain_username="olga", sasl_plain_password="olga-secret", api_version=(0, 10, 1))
    p = KafkaProducer(**kw)
    p.send("scram-v0", b"bare frames").get(timeout=15)
    p.close()
    c = KafkaConsumer("scram-v0", auto_offset_reset="earliest", consumer_timeout_ms=8000, **kw)
    assert [m.value for m in c] == [b"bare frames"]
    c.close()
    with pytest.raises(KPError):
        KafkaProducer(**{**kw, "sasl_plain_password": "nope"}, max_block_ms=5000).send("scram-v0", b"x").get(timeout=5)


def test_kafkajs_scram(broker_factory):
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("heidi", "heidi-secret", "SCRAM-SHA-256"), ("ivan", "ivan-secret", "SCRAM-SHA-512"))
    for user, mech in (("heidi", "scram-sha-256"), ("ivan", "scram-sha-512")):
        proc, lines = run_js("sasl.js", b.sasl_bootstrap, user, f"{user}-secret", f"scram-js-{user}", mech, timeout=60)
        assert lines == ["RESULT produced-and-read 3"], (lines, proc.stderr)
    proc, lines = run_js("sasl.js", b.sasl_bootstrap, "heidi", "wrong", "scram-js-heidi", "scram-sha-256", timeout=60)
    assert lines == ["RESULT auth-failed"], (lines, proc.stderr)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_scram(broker_factory):
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("judy", "judy-secret", "SCRAM-SHA-512"))
    args = ["kcat", "-b", b.sasl_bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-512",
            "-X", "sasl.username=judy", "-X", "sasl.password=judy-secret", "-t", "scram-kc"]
    subprocess.run(args + ["-P"], input="one\ntwo\n", text=True, check=True, timeout=30, capture_output=True)
    out = subprocess.run(args + ["-C", "-e", "-f", "%s\n"], text=True, check=True, timeout=30, capture_output=True).stdout
    assert out.split() == ["one", "two"]


def test_v0_handshake_bare_frames_and_a_nonce_that_does_not_extend_the_servers(broker_factory):
    """SaslHandshake v0 then bare frames: the server-first comes back as a bare frame; a
    client-final whose nonce is not the server's fails and closes the connection."""
    b = scram_broker(broker_factory)
    add_users(b.bootstrap, ("ken", "ken-secret", "SCRAM-SHA-256"))
    host, port = b.sasl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(17, 0, struct.pack(">h", 13) + b"SCRAM-SHA-256"))
        assert struct.unpack(">h", read_frame(s)[4:6]) == (0,)
        first = b"n,,n=ken,r=clientnonce"
        s.sendall(struct.pack(">i", len(first)) + first)
        (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        server_first = s.recv(n, socket.MSG_WAITALL)
        assert server_first.startswith(b"r=clientnonce") and b",i=8192" in server_first, server_first
        bad = b"c=biws,r=clientnonceX,p=" + b"A" * 44
        s.sendall(struct.pack(">i", len(bad)) + bad)
        assert closed(s)


def strom(*args, timeout=30):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_strom_configs_users_alter_describe_delete(broker_factory):
    """kafka-configs.sh's user commands: --add-config creates credentials (salted by the tool),
    --describe prints Kafka's line, --delete-config removes one mechanism, bad input is refused."""
    b = scram_broker(broker_factory)
    users = ["configs", "--bootstrap-server", b.bootstrap, "--entity-type", "users"]
    # Two mechanisms of one user in one request: Kafka's controller refuses the user as named twice.
    r = strom(*users, "--entity-name", "lena", "--alter", "--add-config",
              "SCRAM-SHA-256=[iterations=8192,password=lena-secret],SCRAM-SHA-512=[password=lena-secret]")
    assert r.returncode != 0 and "DUPLICATE_RESOURCE" in r.stderr, r
    for spec in ("SCRAM-SHA-256=[iterations=8192,password=lena-secret]", "SCRAM-SHA-512=[password=lena-secret]"):
        r = strom(*users, "--entity-name", "lena", "--alter", "--add-config", spec)
        assert (r.returncode, r.stdout, r.stderr) == (0, "Completed updating config for user lena.\n", ""), r.stderr
    r = strom(*users, "--describe")
    assert r.stdout == "SCRAM credential configs for user-principal 'lena' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096\n", r
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-256", "lena", "lena-secret"), "scram-tool-256", n=5)
    produce_and_consume(scram(b.sasl_bootstrap, "SCRAM-SHA-512", "lena", "lena-secret"), "scram-tool-512", n=5)
    r = strom(*users, "--entity-name", "lena", "--alter", "--delete-config", "SCRAM-SHA-512")
    assert r.returncode == 0, r.stderr
    r = strom(*users, "--describe", "--entity-name", "lena")
    assert r.stdout == "SCRAM credential configs for user-principal 'lena' are SCRAM-SHA-256=iterations=8192\n", r
    assert FAILED in refused(scram(b.sasl_bootstrap, "SCRAM-SHA-512", "lena", "lena-secret"))
    # Kafka's refusals: too few iterations (in the tool), a key that is not a mechanism, deleting
    # what does not exist (the broker's RESOURCE_NOT_FOUND).
    for args, needle in ((["--add-config", "SCRAM-SHA-256=[iterations=100,password=x]"], "less than the minimum 4096"),
                         (["--add-config", "retention.ms=5"], "Unexpected config names: retention.ms"),
                         (["--delete-config", "SCRAM-SHA-512"], "RESOURCE_NOT_FOUND")):
        r = strom(*users, "--entity-name", "lena", "--alter", *args)
        assert r.returncode != 0 and needle in r.stderr and r.stdout == "", r
    # Describing an unknown user prints nothing, as Kafka's tool.
    assert strom(*users, "--describe", "--entity-name", "nobody").stdout == ""


def test_add_scram_makes_the_first_user_of_a_new_cluster_only(tmp_path):
    """`strom server --add-scram`, as `kafka-storage format --add-scram`: the user exists from the
    cluster's first start; on a later start with another password the flag is ignored (logged)."""
    port = free_port()
    b = Broker(tmp_path / "data", [f"listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}",
                                   "sasl.enabled.mechanisms=SCRAM-SHA-512"])
    b.server_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret,iterations=8192]"]
    try:
        b.start()
        conf = scram(f"127.0.0.1:{port}", "SCRAM-SHA-512", "admin", "admin-secret")
        produce_and_consume(conf, "scram-bootstrap", n=5)
        assert "admin-secret" not in b.log_since_start()
        b.stop()
        b.server_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=other-secret]"]
        b.start()
        assert b.wait_for_log("--add-scram ignored", timeout=10)
        assert AdminClient(conf).list_topics(timeout=10).topics["scram-bootstrap"]
        assert FAILED in refused({**conf, "sasl.password": "other-secret"})
    finally:
        b.kill()


def test_credentials_reach_every_node_of_a_cluster(tmp_path):
    """Created through one node, a credential lets a client log in at each of three nodes."""
    c = Cluster(tmp_path, 3, overrides=["sasl.enabled.mechanisms=SCRAM-SHA-256",
                                        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"])
    sasl_ports = {}
    for i, node in c.nodes.items():
        sasl_ports[i] = free_port()
        node.overrides.append(f"listeners=PLAINTEXT://127.0.0.1:{c.client_ports[i - 1]},CONTROLLER://127.0.0.1:"
                              f"{c.controller_ports[i - 1]},SASL_PLAINTEXT://127.0.0.1:{sasl_ports[i]}")
    try:
        c.start()
        add_users(c.nodes[2].bootstrap, ("mia", "mia-secret", "SCRAM-SHA-256"))
        for i, port in sasl_ports.items():
            # A client bootstrapped on one node only; its admin request goes to that node.
            conf = scram(f"127.0.0.1:{port}", "SCRAM-SHA-256", "mia", "mia-secret")
            wait_for(f"node {i} accepts mia", lambda: _logs_in(conf), timeout=15)
            assert FAILED in refused({**conf, "sasl.password": "wrong"})
    finally:
        c.kill_all()


def _logs_in(conf):
    try:
        AdminClient(conf).list_topics(timeout=3)
        return True
    except KafkaException:
        return False
