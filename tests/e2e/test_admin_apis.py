"""The operators' admin APIs on one broker, with kafka-python's admin client (it has all four),
raw frames where an exact answer matters, and Strom's tools (Kafka's kafka-log-dirs.sh,
kafka-leader-election.sh, kafka-metadata-quorum.sh): DescribeLogDirs, ElectLeaders,
DescribeTopicPartitions (paging with its cursor) and DescribeQuorum, Kafka's error codes for bad
input, and CLUSTER/TOPIC_AUTHORIZATION_FAILED under an authorizer. Three-node cases (elections
that move leaders, reassignment, the quorum's followers) are in test_admin_cluster.py."""
import json
import os
import struct
import subprocess

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import DescribeLogDirsRequest, ElectLeadersRequest

from conftest import STROM_BIN
from wire import call, exchange, frame, kstr

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
INVALID_REQUEST = 42
ELECTION_NOT_NEEDED = 84


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def create(b, name, partitions, records_on_0=0):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)
    if records_on_0:
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(records_on_0):
            p.produce(name, b"v%d" % i, partition=0)
        assert p.flush(15) == 0


def log_bytes(b, topic, partition):
    d = os.path.join(b.data_dir, f"{topic}-{partition}")
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".log"))


def test_describe_log_dirs_reports_each_replicas_size_and_the_disk(broker):
    create(broker, "ld", 2, records_on_0=50)
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    [answer] = k.describe_log_dirs()
    assert answer["broker"] == 1
    [d] = answer["log_dirs"]
    assert d["error_code"] == 0 and d["log_dir"] == os.path.abspath(broker.data_dir)
    ld = {p["partition_index"]: p for t in d["topics"] if t["name"] == "ld" for p in t["partitions"]}
    assert sorted(ld) == [0, 1]
    assert ld[0]["partition_size"] == log_bytes(broker, "ld", 0) > 0
    assert ld[1]["partition_size"] == 0
    assert all(p["offset_lag"] == 0 and not p["is_future_key"] for p in ld.values())
    st = os.statvfs(broker.data_dir)
    assert d["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 < d["usable_bytes"] <= d["total_bytes"]
    # Named partitions only; one this broker does not host is left out, as Kafka leaves it out.
    [answer] = k.describe_log_dirs(topic_partitions={"ld": [1, 7]})
    [d] = answer["log_dirs"]
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in d["topics"]] == [("ld", [1])]
    k.close()


def test_describe_log_dirs_v0_as_kafka_3_9_serves_it(broker):
    create(broker, "ld0", 1, records_on_0=3)
    # v0: topics (nullable array, null = all); answer: throttle, results [error, dir, topics
    # [name, partitions [index, size, lag, is_future]]].
    body = exchange(broker.bootstrap, frame(35, 0, struct.pack(">i", -1)))
    assert body is not None
    pos = 4 + 4  # correlation id, throttle time

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, body, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take(">h")
        s = body[pos:pos + n].decode()
        pos += n
        return s

    assert take(">i") == 1
    assert take(">h") == 0
    assert string() == os.path.abspath(broker.data_dir)
    found = {}
    for _ in range(take(">i")):
        name = string()
        for _ in range(take(">i")):
            index, size, lag, future = take(">iqq?")
            found[(name, index)] = (size, lag, future)
    assert found[("ld0", 0)] == (log_bytes(broker, "ld0", 0), 0, False)
    assert pos == len(body)


def test_log_dirs_tool_prints_kafkas_json(broker):
    create(broker, "tool-a", 2, records_on_0=5)
    create(broker, "tool-b", 1)
    r = strom("log-dirs", "--describe", "--bootstrap-server", broker.bootstrap, "--topic-list", "tool-a")
    assert r.returncode == 0 and r.stderr == "", r
    lines = r.stdout.splitlines()
    assert lines[:2] == ["Querying brokers for log directories information", "Received log directory information from brokers 1"]
    assert len(lines) == 3 and lines[2].startswith('{"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"tool-a-0","size":')
    out = json.loads(lines[2])
    assert out["version"] == 1
    [d] = out["brokers"][0]["logDirs"]
    assert d["error"] is None and d["logDir"] == os.path.abspath(broker.data_dir)
    assert [(p["partition"], p["size"], p["offsetLag"], p["isFuture"]) for p in d["partitions"]] == [
        ("tool-a-0", log_bytes(broker, "tool-a", 0), 0, False), ("tool-a-1", 0, 0, False)]
    r = strom("log-dirs", "--describe", "--bootstrap-server", broker.bootstrap, "--broker-list", "1,7")
    assert r.returncode == 1
    assert "The given brokers do not exist from --broker-list: 7. Current existent brokers: 1" in r.stderr, r


def test_describe_topic_partitions_pages_with_its_cursor(broker):
    create(broker, "dtp-a", 3)
    create(broker, "dtp-b", 2)
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    ids = {t["name"]: t["topic_id"] for t in k.describe_topics(["dtp-a", "dtp-b"])}
    assert sorted(ids) == ["dtp-a", "dtp-b"] and None not in ids.values()
    ids = {name: str(i) for name, i in ids.items()}
    pages, cursor = [], None
    while True:
        r = k.describe_topic_partitions(["dtp-b", "dtp-a"], response_partition_limit=2, cursor=cursor)
        pages.append([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in r["topics"]])
        for t in r["topics"]:
            assert t["error_code"] == 0 and not t["is_internal"]
            assert str(t["topic_id"]) == ids[t["name"]]
            for p in t["partitions"]:
                assert (p["leader_id"], p["replica_nodes"], p["isr_nodes"], p["offline_replicas"]) == (1, [1], [1], [])
        cursor = r["next_cursor"]
        if cursor is None:
            break
    # Sorted by name, two partitions a page, the cursor naming where the next page starts.
    assert pages == [[("dtp-a", [0, 1])], [("dtp-a", [2]), ("dtp-b", [0])], [("dtp-b", [1])]]
    # No topics named: every topic.
    names = [t["name"] for t in k.describe_topic_partitions([])["topics"]]
    assert "dtp-a" in names and "dtp-b" in names and names == sorted(names)
    # Unknown and illegal names, each with Kafka's code.
    r = k.describe_topic_partitions(["dtp-missing", "a/b"])
    assert sorted((t["name"], t["error_code"]) for t in r["topics"]) == [
        ("a/b", INVALID_TOPIC_EXCEPTION), ("dtp-missing", UNKNOWN_TOPIC_OR_PARTITION)]
    # A cursor outside the named topics, or at a negative partition: INVALID_REQUEST for each.
    for cursor in ({"topic_name": "dtp-zzz", "partition_index": 0}, {"topic_name": "dtp-a", "partition_index": -1}):
        r = k.describe_topic_partitions(["dtp-a", "dtp-b"], cursor=cursor)
        assert [(t["name"], t["error_code"], t["partitions"]) for t in r["topics"]] == [
            ("dtp-a", INVALID_REQUEST, []), ("dtp-b", INVALID_REQUEST, [])], cursor
    k.close()


def test_describe_quorum_of_a_single_node(broker):
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    q = k.describe_metadata_quorum()
    [t] = q["topics"]
    assert t["topic_name"] == "__cluster_metadata"
    [p] = t["partitions"]
    assert p["error"] is None and p["leader_id"] == 1 and p["leader_epoch"] >= 1
    [v] = p["current_voters"]
    assert v["replica_id"] == 1 and v["log_end_offset"] >= p["high_watermark"] > 0
    assert v["last_fetch_timestamp"] > 0 and p["observers"] == []
    # Another partition than the metadata log's: UNKNOWN_TOPIC_OR_PARTITION, as Kafka's Raft client.
    other = k._manager.run(k._async_describe_quorum, "not-metadata", 0)
    assert "UnknownTopicOrPartition" in other["topics"][0]["partitions"][0]["error"]
    k.close()
    r = strom("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--status")
    assert r.returncode == 0 and r.stderr == "", r
    fields = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert list(fields) == ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag",
                            "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"]
    assert fields["LeaderId"].strip() == "1" and fields["MaxFollowerLag"].strip() == "0"
    assert fields["CurrentVoters"].strip() == '[{"id": 1, "directoryId": null}]'
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert fields["ClusterId"].strip() == admin.describe_cluster().result(15).cluster_id
    r = strom("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--replication")
    rows = [[c.strip() for c in line.split("\t")[:-1]] for line in r.stdout.splitlines()]
    assert rows[0] == ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]
    assert len(rows) == 2 and rows[1][0] == "1" and rows[1][3] == "0" and rows[1][6] == "Leader"
    r = strom("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--status", "--replication")
    assert r.returncode == 1 and "Only one of --status or --replication" in r.stderr


def test_elect_leaders_on_one_node_needs_no_election_and_refuses_bad_input(broker):
    create(broker, "el", 2)
    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    r = k.elect_leaders(0, {"el": [0, 1], "el-missing": [0]}, raise_errors=False)
    got = {(t.topic, p.partition_id): (p.error_code, p.error_message) for t in r.replica_election_results for p in t.partition_result}
    assert got == {("el", 0): (ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."),
                   ("el", 1): (ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."),
                   ("el-missing", 0): (UNKNOWN_TOPIC_OR_PARTITION, "No such topic as el-missing")}
    k.close()
    # All partitions (null): every topic is listed, the partitions needing no election left out,
    # as Kafka's controller answers.
    r = call(broker.bootstrap, ElectLeadersRequest(version=2, election_type=1, topic_partitions=None, timeout_ms=5000))
    assert r.error_code == 0
    assert [(t.topic, t.partition_result) for t in r.replica_election_results] == [("el", [])]
    # An election type Kafka does not know: INVALID_REQUEST at the top and for each partition
    # (ElectLeaders v1: election_type int8, topic_partitions [topic, partitions [int32]], timeout).
    body = struct.pack(">b", 7) + struct.pack(">i", 1) + kstr("el") + struct.pack(">ii", 1, 0) + struct.pack(">i", 5000)
    resp = exchange(broker.bootstrap, frame(43, 1, body))
    throttle, error, n_topics = struct.unpack_from(">ihi", resp, 4)
    assert (error, n_topics) == (INVALID_REQUEST, 1)
    # The tool, as kafka-leader-election.sh words it.
    r = strom("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "preferred", "--topic", "el", "--partition", "0")
    assert (r.returncode, r.stdout) == (0, "Valid replica already elected for partitions el-0\n"), r
    r = strom("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "preferred", "--all-topic-partitions")
    assert (r.returncode, r.stdout) == (0, ""), r
    r = strom("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "unclean", "--topic", "nope", "--partition", "3")
    assert r.returncode == 1
    assert r.stdout == "Error completing leader election (UNCLEAN) for partition: nope-3: UNKNOWN_TOPIC_OR_PARTITION: No such topic as nope\n"
    assert "1 replica(s) could not be elected" in r.stderr
    for args, message in [(["--topic", "el"], "Missing required option(s): partition"),
                          (["--topic", "el", "--partition", "0", "--all-topic-partitions"], "One and only one of the following options is required"),
                          (["--partition", "0", "--all-topic-partitions"], "Option partition is only allowed if topic is used")]:
        r = strom("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "preferred", *args)
        assert r.returncode != 0 and message in r.stderr, (args, r)


def test_the_operators_apis_need_kafkas_permissions(broker_factory):
    from test_acls import acl_broker
    b = acl_broker(broker_factory)
    admin = AdminClient({"bootstrap.servers": b.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                         "sasl.username": "admin", "sasl.password": "admin-pw"})
    admin.create_topics([NewTopic("secret", 1, 1)])["secret"].result(15)
    k = KafkaAdminClient(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                         sasl_plain_username="alice", sasl_plain_password="alice-pw")
    from kafka.errors import ClusterAuthorizationFailedError
    # DescribeLogDirs and DescribeQuorum need DESCRIBE on the cluster, ElectLeaders ALTER.
    assert k.describe_log_dirs() == [{"broker": 1, "log_dirs": []}]
    r = call(b.bootstrap, DescribeLogDirsRequest(version=4, topics=None))  # User:ANONYMOUS
    assert (r.error_code, r.results) == (CLUSTER_AUTHORIZATION_FAILED, [])
    with pytest.raises(ClusterAuthorizationFailedError):
        k.describe_metadata_quorum()
    r = k.elect_leaders(0, {"secret": [0]}, raise_errors=False)
    assert r.error_code == CLUSTER_AUTHORIZATION_FAILED
    assert [p.error_code for t in r.replica_election_results for p in t.partition_result] == [CLUSTER_AUTHORIZATION_FAILED]
    # A topic alice may not describe: refused by name, left out of the all-topics listing.
    r = k.describe_topic_partitions(["secret"])
    assert [(t["name"], t["error_code"], t["topic_id"]) for t in r["topics"]] == [("secret", TOPIC_AUTHORIZATION_FAILED, None)]
    assert "secret" not in [t["name"] for t in k.describe_topic_partitions([])["topics"]]
    k.close()
