"""Moving a group between the classic protocol and KIP-848's consumer protocol offline, as Kafka
allows it whatever `group.consumer.migration.policy` says: once every member of one kind has
left, a member of the other kind takes the group id over, and the committed offsets carry over
(confluent-kafka 2.16 with `group.protocol=classic` and `=consumer`). With the policy `disabled`
a group with members keeps its protocol: a ConsumerGroupHeartbeat into a classic group with
members is refused GROUP_ID_NOT_FOUND, Kafka's answer. (With Kafka's default, `bidirectional`,
the group converts online: test_consumer_group_online_migration.py.) A classic JoinGroup into a
consumer group with members is taken inside it whatever the policy, as in Kafka, when its
embedded consumer protocol can be read; one that cannot is refused INCONSISTENT_GROUP_PROTOCOL.
"""
import gc
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_consumer_group_protocol import GROUP_ID_NOT_FOUND, INCONSISTENT_GROUP_PROTOCOL, heartbeat, join_group_v5

TOPIC = "mig6"
PARTITIONS = 6
GROUP = "migrating"


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


def produce(bootstrap, prefix, n):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    errors = []
    values = [f"{prefix}{i}" for i in range(n)]
    for i, v in enumerate(values):
        p.produce(TOPIC, value=v.encode(), partition=i % PARTITIONS, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0 and errors == []
    return values


def consume(bootstrap, protocol, want):
    """One member of `protocol` reads until it has len(want) records (and then a second more, to
    see nothing else comes), commits, and leaves. Returns the values read."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "group.protocol": protocol,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([TOPIC])
    got = []
    try:
        deadline = time.time() + 60
        while len(got) < len(want):
            assert time.time() < deadline, f"{protocol}: read {len(got)} of {len(want)}"
            m = c.poll(0.1)
            if m is not None and not m.error():
                got.append(m.value().decode())
        end = time.time() + 1
        while time.time() < end:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got.append(m.value().decode())
        c.commit(asynchronous=False)
        return got
    finally:
        c.close()


def group_type(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    return a.describe_consumer_groups([GROUP])[GROUP].result(15).type


def committed(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        return sorted((tp.partition, tp.offset) for tp in c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=15))
    finally:
        c.close()


def test_a_group_moves_between_the_protocols_offline_and_keeps_its_offsets(broker_factory):
    b = broker_factory()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    first = produce(b.bootstrap, "a", 60)
    assert sorted(consume(b.bootstrap, "classic", first)) == sorted(first)
    assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
    # Upgrade: the classic members are gone; a consumer-protocol member resumes at their commits.
    second = produce(b.bootstrap, "b", 60)
    assert sorted(consume(b.bootstrap, "consumer", second)) == sorted(second)
    assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
    # Downgrade: the consumer group is empty; a classic member takes over, at those commits.
    third = produce(b.bootstrap, "c", 60)
    assert sorted(consume(b.bootstrap, "classic", third)) == sorted(third)
    assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
    assert committed(b.bootstrap) == [(p, 30) for p in range(PARTITIONS)]
    # The log agrees: after a restart the group is classic, with the same offsets.
    b.restart()
    assert committed(b.bootstrap) == [(p, 30) for p in range(PARTITIONS)]
    assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
    fourth = produce(b.bootstrap, "d", 60)
    assert sorted(consume(b.bootstrap, "consumer", fourth)) == sorted(fourth)


def test_with_the_policy_disabled_a_group_with_members_keeps_its_protocol(broker_factory):
    b = broker_factory(overrides=["group.consumer.migration.policy=disabled"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    for protocol in ("classic", "consumer", "classic"):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP, "group.protocol": protocol,
                      "auto.offset.reset": "earliest"})
        c.subscribe([TOPIC])
        try:
            deadline = time.time() + 60
            while not c.assignment():
                assert time.time() < deadline, f"the {protocol} member never got an assignment"
                c.poll(0.1)
            if protocol == "classic":
                r = heartbeat(b.bootstrap, GROUP, "intruder", 0, topics=[TOPIC], owned=[], rebalance_timeout=30000)
                assert r[0] == GROUP_ID_NOT_FOUND
            else:
                assert join_group_v5(b.bootstrap, GROUP) == INCONSISTENT_GROUP_PROTOCOL
            assert group_type(b.bootstrap) == (ConsumerGroupType.CLASSIC if protocol == "classic" else ConsumerGroupType.CONSUMER)
        finally:
            c.close()
