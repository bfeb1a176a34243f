"""KIP-848 consumer groups end to end: confluent-kafka 2.16 (librdkafka 2.16) with
`group.protocol=consumer`, where the broker computes the assignment and members reconcile
through ConsumerGroupHeartbeat; and raw requests for Kafka's exact error codes.

The broker runs with a 6 s consumer session timeout (its minimum lowered to 3 s) and a 1 s
heartbeat interval, so a killed member's partitions move within seconds. Every wait has a
deadline; every client is closed and every child process killed at teardown.
"""
import gc
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from wire import exchange, frame, uvarint

OVERRIDES = [
    "group.consumer.min.session.timeout.ms=3000",
    "group.consumer.session.timeout.ms=6000",
    "group.consumer.min.heartbeat.interval.ms=500",
    "group.consumer.heartbeat.interval.ms=1000",
]
TOPIC = "cg6"
PARTITIONS = 6

# Kafka's error codes.
NONE = 0
UNKNOWN_MEMBER_ID = 25
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113
RETRIABLE_COORDINATOR = {14, 15, 16}  # load in progress, not available, not coordinator


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


@pytest.fixture
def cbroker(broker_factory):
    b = broker_factory(OVERRIDES)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    return b


def consumer_config(bootstrap, group, **extra):
    return {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, **extra}


class Members:
    """Consumers polled in turn from this thread. After every poll, no partition may be in the
    assignment of two members at once (the broker revokes before it reassigns)."""

    def __init__(self, bootstrap, group):
        self.bootstrap, self.group = bootstrap, group
        self.consumers = []
        self.records = []
        self.taken = []

    def add(self):
        c = Consumer(consumer_config(self.bootstrap, self.group))
        # Partitions taken away (revoked, or lost when the member is fenced or forgotten).
        c.subscribe([TOPIC], on_revoke=lambda _c, ps: self.taken.extend(("revoked", p.partition) for p in ps),
                    on_lost=lambda _c, ps: self.taken.extend(("lost", p.partition) for p in ps))
        self.consumers.append(c)
        return c

    def assignments(self):
        return [sorted(tp.partition for tp in c.assignment()) for c in self.consumers]

    def check_exclusive(self):
        seen = {}
        for i, parts in enumerate(self.assignments()):
            for p in parts:
                assert p not in seen, f"partition {p} owned by members {seen[p]} and {i} at once"
                seen[p] = i

    def poll_until(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for c in self.consumers:
                m = c.poll(0.05)
                if m is not None and not m.error():
                    self.records.append((m.partition(), m.offset(), m.value().decode()))
                self.check_exclusive()
            if cond():
                return
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; assignments {self.assignments()}")

    def poll_for(self, seconds):
        """Polls every member for `seconds`, checking after each poll as `poll_until` does."""
        deadline = time.time() + seconds
        self.poll_until(lambda: time.time() >= deadline, seconds + 30, "the end of the polling")

    def balanced(self, n):
        """n members, all six partitions assigned, each member 6/n of them."""
        a = self.assignments()
        return len(a) == n and sorted(p for ps in a for p in ps) == list(range(PARTITIONS)) \
            and all(len(ps) == PARTITIONS // n for ps in a)

    def close(self, c):
        self.consumers.remove(c)
        c.close()

    def close_all(self):
        for c in self.consumers:
            c.close()
        self.consumers = []


def test_members_join_one_by_one_and_leave_cleanly(cbroker):
    ms = Members(cbroker.bootstrap, "join-leave")
    try:
        for n in (1, 2, 3):
            ms.add()
            ms.poll_until(lambda: ms.balanced(n), 60, f"{n} members sharing the six partitions")
        # A clean leave (close sends the leave heartbeat): the others take its partitions, and
        # no session had to time out for that.
        ms.close(ms.consumers[0])
        ms.poll_until(lambda: ms.balanced(2), 60, "two members after a clean leave")
        ms.close(ms.consumers[0])
        ms.poll_until(lambda: ms.balanced(1), 60, "one member after another clean leave")
        assert "session timed out" not in cbroker.log()
    finally:
        ms.close_all()


CHILD = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
last = None
while True:
    c.poll(0.1)
    now = sorted(tp.partition for tp in c.assignment())
    if now != last:
        print("assigned", ",".join(map(str, now)), flush=True)
        last = now
"""


def test_a_killed_member_loses_its_partitions_after_the_session_timeout(cbroker):
    child = subprocess.Popen([sys.executable, "-u", "-c", CHILD, cbroker.bootstrap, "killed", TOPIC],
                             stdout=subprocess.PIPE, text=True)
    ms = Members(cbroker.bootstrap, "killed")
    try:
        child_parts = []

        def read_child():
            line = child.stdout.readline()
            assert line, "the child consumer exited"
            parts = line.split()[1] if len(line.split()) > 1 else ""
            child_parts[:] = [int(p) for p in parts.split(",") if p]
            return len(child_parts) == PARTITIONS

        deadline = time.time() + 60
        while not read_child():
            assert time.time() < deadline, "the child never got the six partitions"
        ms.add()
        # The child gives three up (its next printed line) and the member here takes them.
        ms.poll_until(lambda: len(ms.assignments()[0]) == 3, 60, "the second member's half")
        while len(child_parts) != 3:
            assert time.time() < deadline + 60
            read_child()
        assert set(child_parts).isdisjoint(ms.assignments()[0])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        ms.poll_until(lambda: ms.balanced(1), 60, "the survivor taking the killed member's partitions")
        assert cbroker.wait_for_log("removed a consumer-group member: its session timed out", 10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        ms.close_all()


def produce(bootstrap, values):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    errors = []
    for i, v in enumerate(values):
        p.produce(TOPIC, value=v.encode(), partition=i % PARTITIONS,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0
    assert errors == []


def test_commit_and_resume(cbroker):
    first = [f"a{i}" for i in range(60)]
    produce(cbroker.bootstrap, first)
    ms = Members(cbroker.bootstrap, "resume")
    try:
        c = ms.add()
        ms.poll_until(lambda: len(ms.records) == 60, 60, "the first 60 records")
        assert sorted(v for _, _, v in ms.records) == sorted(first)
        c.commit(asynchronous=False)
        committed = c.committed([tp for tp in c.assignment()], timeout=15)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(p, 10) for p in range(PARTITIONS)]
        ms.close(c)
        second = [f"b{i}" for i in range(60)]
        produce(cbroker.bootstrap, second)
        ms.records = []
        ms.add()
        ms.poll_until(lambda: len(ms.records) >= 60, 60, "the next 60 records")
        # Resumed at the commit: nothing of the first batch again.
        assert sorted(v for _, _, v in ms.records) == sorted(second)
    finally:
        ms.close_all()


def test_describe_and_list_consumer_groups(cbroker):
    ms = Members(cbroker.bootstrap, "described")
    try:
        ms.add()
        ms.add()
        ms.poll_until(lambda: ms.balanced(2), 60, "two members sharing the six partitions")
        a = AdminClient({"bootstrap.servers": cbroker.bootstrap})
        d = a.describe_consumer_groups(["described"])["described"].result(15)
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.state == ConsumerGroupState.STABLE
        assert len(d.members) == 2
        described = sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)
        assert described == list(range(PARTITIONS))
        listed = a.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(15)
        assert [(g.group_id, g.type) for g in listed.valid] == [("described", ConsumerGroupType.CONSUMER)]
        assert a.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(15).valid == []
    finally:
        ms.close_all()


# ------------------------------------------------------------------ raw requests

def _reader(resp):
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def varint():
        nonlocal pos
        n, shift = 0, 0
        while True:
            b = resp[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def cstr():
        nonlocal pos
        n = varint()
        if n == 0:
            return None
        s = resp[pos:pos + n - 1].decode()
        pos += n - 1
        return s

    return take, varint, cstr


def cstr(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def heartbeat(bootstrap, group, member_id, epoch, topics=None, owned=None, rebalance_timeout=-1, assignor=None):
    """ConsumerGroupHeartbeat v0: (error code, member id, member epoch)."""
    body = cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(None) + cstr(None)
    body += struct.pack(">i", rebalance_timeout)
    body += uvarint(0) if topics is None else uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    body += cstr(assignor)
    body += uvarint(0) if owned is None else uvarint(len(owned) + 1)  # only empty lists are sent here
    body += uvarint(0)
    resp = exchange(bootstrap, frame(68, 0, body, correlation_id=68, flexible=True))
    assert resp is not None, "ConsumerGroupHeartbeat closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 68
    varint()  # header tags
    take(">i")  # throttle
    error = take(">h")
    rstr()  # message
    member = rstr()
    return error, member, take(">i")


def offset_commit_v9(bootstrap, group, member_id, epoch, partition, offset):
    """OffsetCommit v9 of one partition of TOPIC: its error code."""
    part = struct.pack(">iqi", partition, offset, -1) + cstr("") + uvarint(0)
    topic = cstr(TOPIC) + uvarint(2) + part + uvarint(0)
    body = cstr(group) + struct.pack(">i", epoch) + cstr(member_id) + cstr(None) + uvarint(2) + topic + uvarint(0)
    resp = exchange(bootstrap, frame(8, 9, body, correlation_id=8, flexible=True))
    assert resp is not None, "OffsetCommit closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 8
    varint()
    take(">i")
    assert varint() == 2 and rstr() == TOPIC
    assert varint() == 2 and take(">i") == partition
    return take(">h")


def join_group_v5(bootstrap, group):
    """A classic JoinGroup v5 with a member id (so it is not answered MEMBER_ID_REQUIRED): its error."""
    body = struct.pack(">h", len(group)) + group.encode() + struct.pack(">ii", 10000, 10000)
    body += struct.pack(">h", 7) + b"classic" + struct.pack(">h", -1)
    body += struct.pack(">h", 8) + b"consumer" + struct.pack(">i", 1)
    body += struct.pack(">h", 5) + b"range" + struct.pack(">i", 0)
    resp = exchange(bootstrap, frame(11, 5, body, correlation_id=11))
    assert resp is not None
    (corr, _throttle, error) = struct.unpack_from(">iih", resp)
    assert corr == 11
    return error


def join_raw(bootstrap, group, member, timeout=60):
    """Joins by heartbeat at epoch 0, retrying while the coordinator loads: (error, member, epoch)."""
    deadline = time.time() + timeout
    while True:
        r = heartbeat(bootstrap, group, member, 0, topics=[TOPIC], owned=[], rebalance_timeout=30000)
        if r[0] not in RETRIABLE_COORDINATOR or time.time() > deadline:
            return r
        time.sleep(0.2)


def beat_raw(bootstrap, group, member, epoch, timeout=60):
    """A heartbeat at `epoch` owning nothing, retrying while the coordinator loads."""
    deadline = time.time() + timeout
    while True:
        r = heartbeat(bootstrap, group, member, epoch, owned=[])
        if r[0] not in RETRIABLE_COORDINATOR or time.time() > deadline:
            return r
        time.sleep(0.2)


@pytest.mark.parametrize("crash", [False, True])
def test_the_group_survives_a_broker_restart(broker_factory, crash):
    """The group's records are in __consumer_offsets: after a clean stop or a SIGKILL the
    restarted coordinator knows the member at its epoch, with its assignment."""
    # A session long enough that the restart cannot expire the member.
    b = broker_factory(OVERRIDES[:1] + ["group.consumer.max.session.timeout.ms=120000", "group.consumer.session.timeout.ms=120000"] + OVERRIDES[2:])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(15)
    # FindCoordinator creates __consumer_offsets (a heartbeat never does, as in Kafka).
    probe = Consumer(consumer_config(b.bootstrap, "restart"))
    probe.subscribe([TOPIC])
    deadline = time.time() + 60
    while not probe.assignment():
        assert time.time() < deadline, "the probe member never got an assignment"
        probe.poll(0.1)
    probe.close()
    assert join_raw(b.bootstrap, "restart", "m1") == (NONE, "m1", 3)  # the probe joined (1) and left (2)
    assert offset_commit_v9(b.bootstrap, "restart", "m1", 3, 2, 42) == NONE
    b.restart(crash=crash)
    assert beat_raw(b.bootstrap, "restart", "m1", 3) == (NONE, "m1", 3)
    assert heartbeat(b.bootstrap, "restart", "m1", 2, owned=[])[0] == FENCED_MEMBER_EPOCH
    d = a.describe_consumer_groups(["restart"])["restart"].result(15)
    assert d.type == ConsumerGroupType.CONSUMER
    assert [(m.member_id, sorted(tp.partition for tp in m.assignment.topic_partitions)) for m in d.members] == [("m1", list(range(PARTITIONS)))]
    # The commit came back too, and the member can go on committing at its epoch.
    assert offset_commit_v9(b.bootstrap, "restart", "m1", 3, 2, 43) == NONE


def test_bad_heartbeats_get_kafkas_errors(cbroker):
    b = cbroker.bootstrap
    # A classic group with a member, which also makes __consumer_offsets exist.
    classic = Consumer({"bootstrap.servers": b, "group.id": "classic-g", "auto.offset.reset": "earliest",
                        "group.protocol": "classic"})
    classic.subscribe([TOPIC])
    try:
        deadline = time.time() + 60
        while not classic.assignment():
            assert time.time() < deadline, "the classic member never got its assignment"
            classic.poll(0.1)
        # Join by heartbeat at epoch 0 (retrying while the coordinator loads).
        while True:
            error, member, epoch = heartbeat(b, "raw", "m1", 0, topics=[TOPIC], owned=[], rebalance_timeout=30000)
            if error not in RETRIABLE_COORDINATOR:
                break
            assert time.time() < deadline
            time.sleep(0.2)
        assert (error, member, epoch) == (NONE, "m1", 1)
        assert heartbeat(b, "raw", "m1", 5)[0] == FENCED_MEMBER_EPOCH
        assert heartbeat(b, "raw", "nobody", 1)[0] == UNKNOWN_MEMBER_ID
        assert heartbeat(b, "", "m1", 1)[0] == INVALID_REQUEST
        assert heartbeat(b, "raw", "m2", 0, topics=[TOPIC], owned=None, rebalance_timeout=30000)[0] == INVALID_REQUEST
        assert heartbeat(b, "raw", "m2", 0, topics=[TOPIC], owned=[], rebalance_timeout=30000, assignor="sticky")[0] == UNSUPPORTED_ASSIGNOR
        # A consumer-protocol member joining the classic group converts it (the online upgrade,
        # `group.consumer.migration.policy=bidirectional` by default; test_consumer_group_migration.py
        # has the refusal when the policy is disabled).
        assert heartbeat(b, "classic-g", "m1", 0, topics=[TOPIC], owned=[], rebalance_timeout=30000)[0] == NONE
        # A classic join into the consumer group whose embedded consumer protocol cannot be read.
        assert join_group_v5(b, "raw") == INCONSISTENT_GROUP_PROTOCOL
        # Offsets are fenced by the member epoch.
        assert offset_commit_v9(b, "raw", "m1", 0, 0, 5) == STALE_MEMBER_EPOCH
        assert offset_commit_v9(b, "raw", "nobody", 1, 0, 5) == UNKNOWN_MEMBER_ID
        assert offset_commit_v9(b, "raw", "m1", 1, 0, 5) == NONE
        # Leaving: epoch -1 comes back, and the member is gone.
        error, _, epoch = heartbeat(b, "raw", "m1", -1)
        assert (error, epoch) == (NONE, -1)
        assert heartbeat(b, "raw", "m1", 1)[0] == UNKNOWN_MEMBER_ID
    finally:
        classic.close()


def test_a_regex_subscription_picks_up_a_new_topic(cbroker):
    a = AdminClient({"bootstrap.servers": cbroker.bootstrap})
    a.create_topics([NewTopic("rx-a", 2, 1)])["rx-a"].result(15)
    c = Consumer(consumer_config(cbroker.bootstrap, "regex"))
    c.subscribe(["^rx-.*"])
    try:
        def assigned():
            return sorted((tp.topic, tp.partition) for tp in c.assignment())

        def poll_until(want, what):
            deadline = time.time() + 60
            while assigned() != want:
                assert time.time() < deadline, f"timed out waiting for {what}; assigned {assigned()}"
                c.poll(0.1)

        poll_until([("rx-a", 0), ("rx-a", 1)], "the matching topic")
        a.create_topics([NewTopic("rx-b", 2, 1)])["rx-b"].result(15)
        poll_until([("rx-a", 0), ("rx-a", 1), ("rx-b", 0), ("rx-b", 1)], "the topic created later")
        d = a.describe_consumer_groups(["regex"])["regex"].result(15)
        assert d.type == ConsumerGroupType.CONSUMER and len(d.members) == 1
    finally:
        c.close()


def java_hash_partition(group, partitions):
    """Kafka's offsets partition of a group: abs(String.hashCode) % partitions."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (h * 31 + int(unit, 16)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def test_a_coordinator_failover_does_not_rebalance_the_group(tmp_path):
    """Three nodes; the node coordinating the group (leading its __consumer_offsets partition) is
    SIGKILLed. The next leader replays the group's records, so the members go on heartbeating at
    their epochs: nobody loses or gives up a partition."""
    from cluster import Cluster
    c = Cluster(tmp_path).start()
    try:
        bs = c.bootstrap()
        a = AdminClient({"bootstrap.servers": bs})
        a.create_topics([NewTopic(TOPIC, PARTITIONS, 3)])[TOPIC].result(15)
        ms = Members(bs, "failover")
        try:
            ms.add()
            ms.add()
            ms.poll_until(lambda: ms.balanced(2), 60, "two members sharing the six partitions")
            c.wait_for_full_isr("__consumer_offsets", 3)
            before = ms.assignments()
            ms.taken.clear()
            index = java_hash_partition("failover", 50)
            coordinator = c.partitions("__consumer_offsets")[index].leader
            c.nodes[coordinator].kill()
            new = c.wait_for_leader("__consumer_offsets", index, not_in=[coordinator])
            assert c.nodes[new].wait_for_log("loaded the groups of an offsets partition", 30)
            # The members find the new coordinator and heartbeat there for a while (the broker's
            # heartbeat interval is 5 s): nothing moves.
            ms.poll_for(15)
            assert ms.taken == [], "the failover took partitions away"
            assert ms.assignments() == before
            live = AdminClient({"bootstrap.servers": c.bootstrap_live()})
            d = live.describe_consumer_groups(["failover"])["failover"].result(30)
            assert d.state == ConsumerGroupState.STABLE and len(d.members) == 2
        finally:
            ms.close_all()
    finally:
        c.kill_all()
