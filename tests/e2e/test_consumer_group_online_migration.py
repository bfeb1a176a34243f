"""The online migration between the classic protocol and KIP-848's consumer protocol
(`group.consumer.migration.policy`, Kafka's default `bidirectional`), with confluent-kafka 2.16:
a classic group keeps consuming while its members are replaced by `group.protocol=consumer`
members one by one (the first one converts the group, the classic members stay inside it and
rejoin when their assignment changes), and a consumer group whose consumer-protocol members leave
goes back to a classic group whose members carry on.

At every step the members' own views are checked: no partition owned by two members at once
(checked on every poll round), every partition owned once the group settles, every record read
(none lost), and the committed offsets kept across the changes. All members live in this process
and are polled in turn.
"""
import gc
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "online6"
PARTITIONS = 6
GROUP = "online"


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


class Group:
    """The members of GROUP in this test, polled round-robin; every record read is committed at
    once (synchronously), so a partition's next owner starts where the last one stopped."""

    def __init__(self, bootstrap, assignor):
        self.bootstrap = bootstrap
        self.assignor = assignor
        self.members = {}
        self.read = []
        self.produced = []
        self.failed_commits = 0

    def add(self, name, protocol):
        conf = {"bootstrap.servers": self.bootstrap, "group.id": GROUP, "group.protocol": protocol,
                "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if protocol == "classic":
            conf.update({"partition.assignment.strategy": self.assignor, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
        c = Consumer(conf)
        c.subscribe([TOPIC])
        self.members[name] = c

    def remove(self, name):
        self.members.pop(name).close()

    def produce(self, prefix, n=60):
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        errors = []
        values = [f"{prefix}{i}" for i in range(n)]
        for i, v in enumerate(values):
            p.produce(TOPIC, value=v.encode(), partition=i % PARTITIONS, on_delivery=lambda err, _m: err and errors.append(err))
        assert p.flush(30) == 0 and errors == []
        self.produced += values

    def assignments(self):
        return {n: frozenset(tp.partition for tp in c.assignment()) for n, c in self.members.items()}

    def check_no_partition_twice(self):
        """Members' views are read one after the other, so a partition revoked by one member and
        given to another between two reads would look owned twice: a view that overlaps is read
        again, in the reverse order, and only an overlap seen both times fails."""
        def overlap(snap):
            seen, twice = set(), set()
            for ps in snap.values():
                twice |= seen & ps
                seen |= ps
            return twice
        first = overlap(self.assignments())
        if first:
            again = {n: frozenset(tp.partition for tp in self.members[n].assignment()) for n in reversed(list(self.members))}
            assert not (first & overlap(again)), f"partitions owned by two members at once: {again}"

    def poll_round(self):
        for c in list(self.members.values()):
            m = c.poll(0.02)
            if m is None or m.error():
                continue
            self.read.append(m.value().decode())
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException:
                # A commit refused during a rebalance: the record may be read again, never lost.
                self.failed_commits += 1
        self.check_no_partition_twice()

    def commit_positions(self, deadline):
        """Each member commits its positions (a record whose own commit was refused during a
        rebalance is committed so); False if one was refused again (the caller polls on)."""
        for c in self.members.values():
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    assert time.time() < deadline, f"commits keep failing: {e}"
                    return False
        return True

    def settle(self, timeout=120):
        """Polls until every record produced has been read and every partition is owned by
        exactly one member, every member owning some, unchanged for two seconds: the members'
        assignments."""
        deadline = time.time() + timeout
        last, since = None, None
        while True:
            self.poll_round()
            snap = self.assignments()
            owned = [p for ps in snap.values() for p in ps]
            # Every member has work too (there are more partitions than members): a member that
            # just joined counts only once the others gave partitions up for it.
            complete = sorted(owned) == list(range(PARTITIONS)) and all(snap.values()) and set(self.produced) <= set(self.read)
            if complete and snap == last:
                if time.time() - since > 2 and self.commit_positions(deadline):
                    return snap
            else:
                since = time.time()
            last = snap
            missing = len(set(self.produced) - set(self.read))
            assert time.time() < deadline, f"never settled: assignments {snap}, {missing} records unread"

    def close(self):
        for name in list(self.members):
            self.remove(name)


def group_type(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    return a.describe_consumer_groups([GROUP])[GROUP].result(15).type


def server_assignments(bootstrap):
    """The coordinator's view (ConsumerGroupDescribe): each member's partitions."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    d = a.describe_consumer_groups([GROUP])[GROUP].result(15)
    return {m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members}


def committed(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        return sorted((tp.partition, tp.offset) for tp in c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=15))
    finally:
        c.close()


def start(broker_factory, assignor, overrides=()):
    b = broker_factory(overrides=list(overrides))
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    g = Group(b.bootstrap, assignor)
    g.produce("a")
    for name in ("c1", "c2", "c3"):
        g.add(name, "classic")
    snap = g.settle()
    assert all(snap.values()), f"every classic member owns partitions: {snap}"
    assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
    return b, g


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_classic_members_are_replaced_online_by_consumer_members(broker_factory, assignor):
    b, g = start(broker_factory, assignor)
    try:
        # The first consumer-protocol member converts the group; the classic members stay in it.
        g.remove("c1")
        g.add("k1", "consumer")
        g.produce("b")
        snap = g.settle()
        assert snap["k1"], f"the consumer member got partitions: {snap}"
        assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
        # The coordinator agrees: three members (two classic), each partition assigned once.
        server = server_assignments(b.bootstrap)
        assert len(server) == 3 and sorted(p for ps in server.values() for p in ps) == list(range(PARTITIONS)), server
        assert b.wait_for_log("it becomes a consumer group", 5)
        # Then the rest, one at a time.
        for old, new, prefix in (("c2", "k2", "c"), ("c3", "k3", "d")):
            g.remove(old)
            g.add(new, "consumer")
            g.produce(prefix)
            g.settle()
            assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
        assert sorted(g.members) == ["k1", "k2", "k3"]
        assert set(g.read) == set(g.produced), "every record read, none lost"
        per_partition = len(g.produced) // PARTITIONS
        assert committed(b.bootstrap) == [(p, per_partition) for p in range(PARTITIONS)]
    finally:
        g.close()


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_the_consumer_members_leave_and_the_classic_members_carry_on(broker_factory, assignor):
    b, g = start(broker_factory, assignor)
    try:
        g.remove("c1")
        g.add("k1", "consumer")
        g.produce("b")
        g.settle()
        assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
        # A classic member joins the consumer group (a classic join into a consumer group).
        g.add("c4", "classic")
        g.produce("c")
        snap = g.settle()
        assert snap["c4"], f"the new classic member got partitions: {snap}"
        # The last consumer-protocol member leaves: the group becomes classic again.
        g.remove("k1")
        g.produce("d")
        snap = g.settle()
        assert sorted(snap) == ["c2", "c3", "c4"] and all(snap.values())
        assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
        assert b.wait_for_log("the consumer group becomes a classic group", 5)
        assert set(g.read) == set(g.produced), "every record read, none lost"
        per_partition = len(g.produced) // PARTITIONS
        assert committed(b.bootstrap) == [(p, per_partition) for p in range(PARTITIONS)]
        # The classic group is in the log: after a restart it carries on from its offsets.
        g.close()
        b.restart()
        assert committed(b.bootstrap) == [(p, per_partition) for p in range(PARTITIONS)]
        assert group_type(b.bootstrap) == ConsumerGroupType.CLASSIC
        g.add("c5", "classic")
        g.produce("e")
        g.settle()
        assert set(g.read) == set(g.produced)
    finally:
        g.close()


def member_ids(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    return sorted(m.member_id for m in a.describe_consumer_groups([GROUP])[GROUP].result(15).members)


def test_a_converted_group_and_its_classic_members_survive_a_restart(broker_factory):
    b, g = start(broker_factory, "range")
    try:
        g.remove("c1")
        g.add("k1", "consumer")
        g.produce("b")
        g.settle()
        assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
        before = member_ids(b.bootstrap)
        assert len(before) == 3
        # The group is stored as a consumer group whose classic members come back from the log
        # (their ClassicMemberMetadata): the members carry on under the same member ids (a
        # classic member the coordinator did not know would be told UNKNOWN_MEMBER_ID and
        # rejoin under a new one).
        b.restart()
        g.produce("c")
        g.settle()
        assert group_type(b.bootstrap) == ConsumerGroupType.CONSUMER
        assert member_ids(b.bootstrap) == before
        assert set(g.read) == set(g.produced)
        per_partition = len(g.produced) // PARTITIONS
        assert committed(b.bootstrap) == [(p, per_partition) for p in range(PARTITIONS)]
    finally:
        g.close()
