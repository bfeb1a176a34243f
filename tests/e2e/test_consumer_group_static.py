"""KIP-848 static membership end to end: confluent-kafka 2.16 (librdkafka 2.16) consumers with
`group.protocol=consumer` and `group.instance.id`, and raw ConsumerGroupHeartbeats for Kafka's
exact answers (UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID).

A static member that closes leaves with epoch -2: it stays in the group with its partitions
(nobody else gets them) until it comes back with the same instance id, under a new member id,
and gets exactly those partitions again without a rebalance of the others; or until its
session times out. The broker runs with a 10 s session timeout and a 1 s heartbeat interval.
"""
import gc
import struct
import time

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from test_consumer_group_protocol import _reader
from wire import exchange, frame, uvarint

OVERRIDES = [
    "group.consumer.min.session.timeout.ms=3000",
    "group.consumer.session.timeout.ms=10000",
    "group.consumer.min.heartbeat.interval.ms=500",
    "group.consumer.heartbeat.interval.ms=1000",
]
TOPIC = "static6"
PARTITIONS = 6

NONE = 0
UNKNOWN_MEMBER_ID = 25
FENCED_INSTANCE_ID = 82
UNRELEASED_INSTANCE_ID = 111
RETRIABLE_COORDINATOR = {14, 15, 16}


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


@pytest.fixture
def sbroker(broker_factory):
    b = broker_factory(OVERRIDES)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    return b


class Static:
    """A static consumer: its assignment and every partition taken from it (revoked or lost)."""

    def __init__(self, bootstrap, group, instance):
        self.taken = []
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                           "group.instance.id": instance, "auto.offset.reset": "earliest",
                           "enable.auto.commit": False})
        self.c.subscribe([TOPIC], on_revoke=lambda _c, ps: self.taken.extend(p.partition for p in ps),
                         on_lost=lambda _c, ps: self.taken.extend(p.partition for p in ps))

    def parts(self):
        return sorted(tp.partition for tp in self.c.assignment())


def poll_until(consumers, cond, timeout, what):
    """Polls every consumer in turn; after each poll no partition may be owned twice."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for s in consumers:
            s.c.poll(0.05)
            seen = [p for x in consumers for p in x.parts()]
            assert len(seen) == len(set(seen)), f"a partition owned twice: {[x.parts() for x in consumers]}"
        if cond():
            return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; {[s.parts() for s in consumers]}")


def poll_for(consumers, seconds):
    """Polls for `seconds`, checking as `poll_until` does."""
    end = time.time() + seconds
    poll_until(consumers, lambda: time.time() >= end, seconds + 30, "the end of the polling")


def described(bootstrap, group):
    """ConsumerGroupDescribe through the AdminClient: {member id: (instance id, partitions)}."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    d = a.describe_consumer_groups([group])[group].result(15)
    return {m.member_id: (m.group_instance_id, sorted(tp.partition for tp in m.assignment.topic_partitions)) for m in d.members}


def test_a_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance(sbroker):
    a = Static(sbroker.bootstrap, "static", "instance-a")
    b = Static(sbroker.bootstrap, "static", "instance-b")
    a2 = None
    try:
        poll_until([a, b], lambda: len(a.parts()) == 3 and len(b.parts()) == 3, 60, "three partitions each")
        a_parts, b_parts = a.parts(), b.parts()
        old = described(sbroker.bootstrap, "static")
        a_id = next(m for m, (i, _) in old.items() if i == "instance-a")
        b.taken.clear()
        # a closes: librdkafka leaves with epoch -2. a stays a member, with its partitions, and b
        # gets none of them while it keeps heartbeating.
        a.c.close()
        a = None
        poll_for([b], 4)
        assert b.parts() == b_parts and b.taken == []
        now = described(sbroker.bootstrap, "static")
        assert now[a_id] == ("instance-a", a_parts), "the member that left for now is still there with its partitions"
        # The instance comes back (a new process, a new member id): it gets a's partitions.
        a2 = Static(sbroker.bootstrap, "static", "instance-a")
        poll_until([a2, b], lambda: a2.parts() == a_parts, 60, "the returning instance's partitions")
        poll_for([a2, b], 3)
        assert b.parts() == b_parts and b.taken == [], "the other member was rebalanced"
        after = described(sbroker.bootstrap, "static")
        assert sorted(i for i, _ in after.values()) == ["instance-a", "instance-b"]
        assert a_id not in after, "the old member id was replaced"
        assert "session timed out" not in sbroker.log()
    finally:
        for s in (a, b, a2):
            if s is not None:
                s.c.close()


def test_a_static_member_that_does_not_come_back_is_removed_after_its_session(sbroker):
    a = Static(sbroker.bootstrap, "gone", "instance-a")
    b = Static(sbroker.bootstrap, "gone", "instance-b")
    try:
        poll_until([a, b], lambda: len(a.parts()) == 3 and len(b.parts()) == 3, 60, "three partitions each")
        a.c.close()
        a = None
        # After the 10 s session, the member is removed and b takes everything.
        poll_until([b], lambda: len(b.parts()) == PARTITIONS, 60, "b taking the partitions of the member that never came back")
        assert sbroker.wait_for_log("removed a consumer-group member: its session timed out", 10)
        assert list(described(sbroker.bootstrap, "gone").values()) == [("instance-b", list(range(PARTITIONS)))]
    finally:
        for s in (a, b):
            if s is not None:
                s.c.close()


# ------------------------------------------------------------------ raw requests

def cstr(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def heartbeat(bootstrap, group, member_id, epoch, instance, join=False):
    """ConsumerGroupHeartbeat v0 with an instance id: (error code, member id, member epoch)."""
    body = cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(instance) + cstr(None)
    body += struct.pack(">i", 30000 if join else -1)
    body += uvarint(2) + cstr(TOPIC) if join else uvarint(0)
    body += cstr(None)
    body += uvarint(1) if join else uvarint(0)  # owned: empty when joining, else null
    body += uvarint(0)
    resp = exchange(bootstrap, frame(68, 0, body, correlation_id=68, flexible=True))
    assert resp is not None, "ConsumerGroupHeartbeat closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 68
    varint()
    take(">i")
    error = take(">h")
    rstr()
    member = rstr()
    return error, member, take(">i")


def test_instance_ids_get_kafkas_answers(sbroker):
    b = sbroker.bootstrap
    # A librdkafka consumer first: its FindCoordinator creates __consumer_offsets.
    probe = Static(b, "probe", "p")
    try:
        poll_until([probe], lambda: len(probe.parts()) == PARTITIONS, 60, "the probe's assignment")
    finally:
        probe.c.close()
    deadline = time.time() + 60
    while True:
        r = heartbeat(b, "raw-static", "m1", 0, "i1", join=True)
        if r[0] not in RETRIABLE_COORDINATOR or time.time() > deadline:
            break
        time.sleep(0.2)
    assert r == (NONE, "m1", 1)
    # i1 is held by m1: another member cannot join with it, nor heartbeat or leave as it.
    assert heartbeat(b, "raw-static", "m2", 0, "i1", join=True)[0] == UNRELEASED_INSTANCE_ID
    assert heartbeat(b, "raw-static", "m2", 1, "i1")[0] == FENCED_INSTANCE_ID
    assert heartbeat(b, "raw-static", "m2", -2, "i1")[0] == FENCED_INSTANCE_ID
    assert heartbeat(b, "raw-static", "m1", -2, "nobody")[0] == UNKNOWN_MEMBER_ID
    # m1 leaves for now: -2 comes back; then m2 takes its place (and its partitions) at epoch 1.
    assert heartbeat(b, "raw-static", "m1", -2, "i1") == (NONE, "m1", -2)
    assert heartbeat(b, "raw-static", "m2", 0, "i1", join=True) == (NONE, "m2", 1)
    assert described(b, "raw-static") == {"m2": ("i1", list(range(PARTITIONS)))}
    # The old member id is unknown now.
    assert heartbeat(b, "raw-static", "m1", 1, None)[0] == UNKNOWN_MEMBER_ID
