"""Explicit replica assignments on a three-node cluster: CreateTopics and CreatePartitions with
`assignments` naming any registered brokers, Kafka's refusals of bad ones (codes and messages
of its controller, ReplicationControlManager), and `strom topics --replica-assignment`.
"""
import itertools
import socket
import struct

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka.protocol.old import admin as old_admin

from cluster import Cluster
from test_cli import strom

INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("placement")).start()
    yield c
    c.kill_all()


def replicas(cluster, topic, partitions):
    """{partition: replicas} once every node agrees and every replica is in sync."""
    states = cluster.wait_for_full_isr(topic, len(cluster.partitions(topic)[0].replicas))
    assert len(states) == partitions, states
    return {p: s.replicas for p, s in states.items()}, {p: s.leader for p, s in states.items()}


_corr = itertools.count(1)


def call(bs, request, response_class):
    corr = next(_corr)
    request.with_header(correlation_id=corr, client_id="placement")
    host, port = bs.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(request.encode(header=True, framed=True))
        (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        data = s.recv(n, socket.MSG_WAITALL)
    return response_class.decode(data, header=True)


def create_v1(bs, name, num_partitions, replication_factor, assignments):
    """CreateTopics v1 as sent, so that shapes no client library sends reach the broker; the
    topic's (error code, message)."""
    req = old_admin.CreateTopicsRequest_v1(
        create_topic_requests=[(name, num_partitions, replication_factor, list(assignments.items()), [])],
        timeout=10000, validate_only=False)
    [(got, code, message)] = call(bs, req, old_admin.CreateTopicsResponse_v1).topics
    assert got == name
    return code, message


def test_create_topics_and_partitions_with_assignments_over_other_brokers(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    for f in admin.create_topics([NewTopic("assigned", 3, replica_assignment=[[2, 3], [3, 1], [1, 2]])], operation_timeout=15).values():
        f.result()
    placed, leaders = replicas(cluster, "assigned", 3)
    assert placed == {0: [2, 3], 1: [3, 1], 2: [1, 2]}
    assert leaders == {0: 2, 1: 3, 2: 1}, "the first replica leads"

    for f in admin.create_partitions([NewPartitions("assigned", 5, replica_assignment=[[3, 2], [2, 1]])], operation_timeout=15).values():
        f.result()
    placed, leaders = replicas(cluster, "assigned", 5)
    assert (placed[3], placed[4]) == ([3, 2], [2, 1])
    assert (leaders[3], leaders[4]) == (3, 2)

    # Two assignments for three new partitions: Kafka's count check.
    with pytest.raises(KafkaException) as e:
        for f in admin.create_partitions([NewPartitions("assigned", 8, replica_assignment=[[1, 2], [2, 3]])], operation_timeout=15).values():
            f.result()
    err = e.value.args[0]
    assert err.code() == INVALID_REPLICA_ASSIGNMENT
    assert err.str() == "Attempted to add 3 additional partition(s), but only 2 assignment(s) were specified."
    # A new partition with another replication factor than the topic's.
    with pytest.raises(KafkaException) as e:
        for f in admin.create_partitions([NewPartitions("assigned", 6, replica_assignment=[[1]])], operation_timeout=15).values():
            f.result()
    assert e.value.args[0].code() == INVALID_REPLICA_ASSIGNMENT
    assert len(cluster.partitions("assigned")) == 5

    # A broker of the assignment that is not registered, through confluent-kafka.
    with pytest.raises(KafkaException) as e:
        for f in admin.create_topics([NewTopic("unknown-broker", 1, replica_assignment=[[1, 9]])], operation_timeout=15).values():
            f.result()
    err = e.value.args[0]
    assert (err.code(), err.str()) == (INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes broker 9, but no such broker is registered.")


@pytest.mark.parametrize("num_partitions, replication_factor, assignments, code, message", [
    (-1, -1, {0: [1, 1]}, INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes the broker 1 more than once."),
    (-1, -1, {0: [1, 2], 1: [3]}, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."),
    (-1, -1, {0: [1], 2: [2]}, INVALID_REPLICA_ASSIGNMENT, "partitions should be a consecutive 0-based integer sequence"),
    (-1, -1, {0: []}, INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes an empty replica list."),
    (2, -1, {0: [1], 1: [2]}, INVALID_REQUEST, "A manual partition assignment was specified, but numPartitions was not set to -1."),
    (-1, 1, {0: [1]}, INVALID_REQUEST, "A manual partition assignment was specified, but replication factor was not set to -1."),
])
def test_bad_assignments_are_refused_with_kafkas_codes(cluster, num_partitions, replication_factor, assignments, code, message):
    bs = cluster.nodes[1].bootstrap
    assert create_v1(bs, "bad", num_partitions, replication_factor, assignments) == (code, message)
    assert "bad" not in AdminClient({"bootstrap.servers": bs}).list_topics(timeout=5).topics


def test_strom_topics_replica_assignment(cluster):
    bs = cluster.bootstrap()
    r = strom("topics", "--bootstrap-server", bs, "--create", "--topic", "cli-assigned", "--replica-assignment", "3:1,1:2")
    assert r.returncode == 0, r.stderr
    placed, _ = replicas(cluster, "cli-assigned", 2)
    assert placed == {0: [3, 1], 1: [1, 2]}
    # --alter lists every partition, as kafka-topics.sh does; the existing ones are skipped.
    r = strom("topics", "--bootstrap-server", bs, "--alter", "--topic", "cli-assigned", "--partitions", "3", "--replica-assignment", "3:1,1:2,2:3")
    assert r.returncode == 0, r.stderr
    placed, _ = replicas(cluster, "cli-assigned", 3)
    assert placed == {0: [3, 1], 1: [1, 2], 2: [2, 3]}
    r = strom("topics", "--bootstrap-server", bs, "--create", "--topic", "cli-bad", "--replica-assignment", "1:7")
    assert r.returncode != 0
    assert "INVALID_REPLICA_ASSIGNMENT" in r.stderr and "broker 7" in r.stderr, r.stderr
    r = strom("topics", "--bootstrap-server", bs, "--create", "--topic", "cli-bad", "--replica-assignment", "1:2", "--partitions", "2")
    assert r.returncode != 0 and "can't be used with" in r.stderr, r.stderr
