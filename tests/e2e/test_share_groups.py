"""KIP-932 share groups (queues) end to end: confluent-kafka 2.16's ShareConsumer (librdkafka
2.16) against one broker, and raw requests for Kafka's exact error codes.

The broker runs with `share.auto.offset.reset=earliest`, a 3 s acquisition lock (its minimum
lowered to 1 s), a delivery-count limit of 3 and a 6 s share session timeout, so expiry and
archiving happen within seconds. Every wait has a deadline; every consumer is closed and every
child process killed at teardown.
"""
import gc
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from test_consumer_group_protocol import _reader, cstr, heartbeat as consumer_heartbeat, join_group_v5
import wire
from wire import exchange, frame, uvarint

OVERRIDES = [
    "share.auto.offset.reset=earliest",
    "group.share.min.record.lock.duration.ms=1000",
    "group.share.record.lock.duration.ms=3000",
    "group.share.delivery.count.limit=3",
    "group.share.min.session.timeout.ms=3000",
    "group.share.session.timeout.ms=6000",
    "group.share.min.heartbeat.interval.ms=500",
    "group.share.heartbeat.interval.ms=1000",
]

# Kafka's error codes.
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
INVALID_RECORD_STATE = 121
SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
RETRIABLE_COORDINATOR = {14, 15, 16}


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


@pytest.fixture
def sbroker(broker_factory):
    return broker_factory(OVERRIDES)


def make_topic(b, name, values):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, 1, 1)])[name].result(15)
    produce(b, name, values)


def produce(b, topic, values):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v.encode())
    assert p.flush(15) == 0


def share_consumer(b, group, topic, explicit=False, **extra):
    c = ShareConsumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit" if explicit else "implicit", **extra})
    c.subscribe([topic])
    return c


def poll_until(consumers_msgs, deadline, stop):
    """Polls `consumer` (explicit mode) until `stop(collected)` or the deadline; returns messages."""
    c, out = consumers_msgs
    while time.time() < deadline and not stop(out):
        for m in c.poll(0.5):
            assert m.error() is None, m.error()
            out.append(m)
    return out


# ------------------------------------------------------------------ client tests

def test_three_consumers_split_one_partition(sbroker):
    """Three share consumers on a one-partition topic: every record is delivered, to exactly one
    of them, once (they acknowledge well within the lock), and each gets a share of the work."""
    values = [f"r{i}" for i in range(600)]
    make_topic(sbroker, "q3", values)
    seen = []  # (consumer, value, delivery count)
    lock = threading.Lock()
    done = threading.Event()
    errors = []

    def run(i):
        c = share_consumer(sbroker, "split", "q3", **{"max.poll.records": "20"})
        try:
            deadline = time.time() + 60
            while not done.is_set() and time.time() < deadline:
                for m in c.poll(0.3):
                    if m.error():
                        errors.append(str(m.error()))
                        continue
                    with lock:
                        seen.append((i, m.value().decode(), m.delivery_count()))
                        if len({v for _, v, _ in seen}) == len(values):
                            done.set()
            # Implicit mode accepts a poll's records at the next poll or commit; librdkafka's
            # close alone releases them.
            c.commit_sync(10)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    got = [v for _, v, _ in seen]
    assert sorted(got) == sorted(values), "every record delivered, none twice"
    assert all(dc == 1 for _, _, dc in seen)
    by_consumer = {i: sum(1 for c, _, _ in seen if c == i) for i in range(3)}
    assert all(n > 0 for n in by_consumer.values()), by_consumer


def test_release_redelivers_and_reject_never(sbroker):
    make_topic(sbroker, "qr", [f"v{i}" for i in range(10)])
    c = share_consumer(sbroker, "rel", "qr", explicit=True)
    try:
        first = poll_until((c, []), time.time() + 20, lambda out: len(out) >= 10)
        assert sorted(m.offset() for m in first) == list(range(10))
        for m in first:
            c.acknowledge(m, AcknowledgeType.RELEASE if m.offset() % 2 == 0 else AcknowledgeType.REJECT)
        c.commit_sync(10)
        again = []
        deadline = time.time() + 8
        while time.time() < deadline:
            for m in c.poll(0.5):
                assert m.error() is None
                again.append((m.offset(), m.delivery_count()))
                c.acknowledge(m, AcknowledgeType.ACCEPT)
            c.commit_sync(10)
        assert sorted(o for o, _ in again) == [0, 2, 4, 6, 8], "released come back once (then accepted); rejected never"
        assert all(dc == 2 for _, dc in again)
    finally:
        c.close()


def test_delivery_count_limit_archives(sbroker):
    """A record released every time is delivered `group.share.delivery.count.limit` (3) times,
    then archived: the queue moves on without it."""
    make_topic(sbroker, "qd", ["poison"])
    c = share_consumer(sbroker, "dl", "qd", explicit=True)
    try:
        counts = []
        deadline = time.time() + 20
        while time.time() < deadline and len(counts) < 3:
            for m in c.poll(0.5):
                counts.append(m.delivery_count())
                c.acknowledge(m, AcknowledgeType.RELEASE)
            c.commit_sync(10)
        assert counts == [1, 2, 3]
        produce(sbroker, "qd", ["next"])
        later = []
        deadline = time.time() + 6
        while time.time() < deadline:
            for m in c.poll(0.5):
                later.append((m.offset(), m.value()))
                c.acknowledge(m)
            c.commit_sync(10)
        assert later == [(1, b"next")], "the archived record never again; the next one arrives"
    finally:
        c.close()


CHILD = r"""
import json, sys, time
from confluent_kafka import ShareConsumer
bootstrap, group, topic, accept = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "share.acknowledgement.mode": "explicit"})
c.subscribe([topic])
held = []
deadline = time.time() + 30
while not held and time.time() < deadline:
    held = [m for m in c.poll(0.5) if m.error() is None]
# Accept the first `accept` records (committed to the broker), hold the rest unacknowledged.
for m in held[:accept]:
    c.acknowledge(m)
if accept:
    c.commit_sync(10)
print(json.dumps([m.offset() for m in held]), flush=True)
time.sleep(120)
"""


def start_child(b, group, topic, accept):
    p = subprocess.Popen([sys.executable, "-c", CHILD, b.bootstrap, group, topic, str(accept)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line, "the child consumer got nothing"
    return p, json.loads(line)


def test_killed_consumer_records_are_redelivered_after_the_lock(sbroker):
    make_topic(sbroker, "qk", [f"k{i}" for i in range(5)])
    child, held = start_child(sbroker, "kill", "qk", accept=0)
    try:
        assert sorted(held) == list(range(5))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        c = share_consumer(sbroker, "kill", "qk", explicit=True)
        try:
            got = poll_until((c, []), time.time() + 20, lambda out: len(out) >= 5)
            assert sorted((m.offset(), m.delivery_count()) for m in got) == [(o, 2) for o in range(5)]
            for m in got:
                c.acknowledge(m)
            c.commit_sync(10)
        finally:
            c.close()
    finally:
        child.kill()


def test_broker_killed_and_restarted(sbroker):
    """The broker is SIGKILLed while a consumer has accepted half of the records and holds the
    other half: after the restart the accepted ones are never delivered again and the held
    ones are (their acquisition ended with the broker), with their delivery counts kept."""
    make_topic(sbroker, "qb", [f"b{i}" for i in range(10)])
    child, held = start_child(sbroker, "restart", "qb", accept=5)
    try:
        assert len(held) == 10
        accepted = set(sorted(held)[:5])
        sbroker.restart(crash=True)
    finally:
        child.kill()
        child.wait(10)
    produce(sbroker, "qb", ["after"])
    c = share_consumer(sbroker, "restart", "qb", explicit=True)
    try:
        got = []
        deadline = time.time() + 30
        # Until the six come, then a few more seconds: nothing accepted may come back.
        while time.time() < deadline:
            for m in c.poll(0.5):
                assert m.error() is None, m.error()
                got.append((m.offset(), m.delivery_count()))
                c.acknowledge(m)
            c.commit_sync(10)
            if len(got) >= 6:
                deadline = min(deadline, time.time() + 3)
        assert sorted(got) == sorted((o, 2 if o < 10 else 1) for o in set(range(11)) - accepted)
    finally:
        c.close()


# ------------------------------------------------------------------ raw requests

def share_heartbeat(bootstrap, group, member_id, epoch, topics=None):
    """ShareGroupHeartbeat v1: (error code, member id, member epoch, assignment or None)."""
    body = cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(None)
    body += uvarint(0) if topics is None else uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    body += uvarint(0)
    resp = exchange(bootstrap, frame(76, 1, body, correlation_id=76, flexible=True))
    assert resp is not None, "ShareGroupHeartbeat closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 76
    varint()
    take(">i")
    error = take(">h")
    rstr()
    member = rstr()
    return error, member, take(">i")


def join_share(bootstrap, group, member, topic, timeout=60):
    """Joins at epoch 0 once the group's coordinator is ready (FindCoordinator creates the
    offsets topic, as for any group)."""
    deadline = time.time() + timeout
    while wire.find_coordinator(bootstrap, group, wire.COORDINATOR_GROUP)[0] != 0 and time.time() < deadline:
        time.sleep(0.2)
    while True:
        r = share_heartbeat(bootstrap, group, member, 0, topics=[topic])
        if r[0] not in RETRIABLE_COORDINATOR or time.time() > deadline:
            return r
        time.sleep(0.2)


def ack_batches(batches):
    return uvarint(len(batches) + 1) + b"".join(struct.pack(">qq", f, l) + uvarint(2) + struct.pack(">b", t) + uvarint(0) for f, l, t in batches)


def share_fetch(bootstrap, group, member, epoch, topic_id, acks=(), fetch=True):
    """ShareFetch v1 of partition 0 (no wait): (top error, [(first, last, delivery count)], ack error)."""
    part = struct.pack(">i", 0) + ack_batches(list(acks)) + uvarint(0)
    topics = uvarint(2) + topic_id.bytes + uvarint(2) + part + uvarint(0) if fetch or acks else uvarint(1)
    body = cstr(group) + cstr(member) + struct.pack(">iiiiii", epoch, 0, 1, 1 << 20, 500, 500) + topics + uvarint(1) + uvarint(0)
    resp = exchange(bootstrap, frame(78, 1, body, correlation_id=78, flexible=True))
    assert resp is not None, "ShareFetch closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 78
    varint()
    take(">i")
    error = take(">h")
    rstr()
    take(">i")  # acquisition lock timeout
    acquired, ack_error = [], 0
    for _ in range(max(varint() - 1, 0)):
        take(">q"), take(">q")  # topic id
        for _ in range(max(varint() - 1, 0)):
            take(">i")
            take(">h")
            rstr()
            ack_error = take(">h")
            rstr()
            take(">i"), take(">i"), varint()  # current leader
            n = varint()
            for _ in range(max(n - 1, 0)):
                take(">B")
            for _ in range(max(varint() - 1, 0)):
                acquired.append((take(">q"), take(">q"), take(">h")))
                varint()
            varint()
        varint()
    return error, acquired, ack_error


def share_acknowledge(bootstrap, group, member, epoch, topic_id, batches):
    """ShareAcknowledge v1 of partition 0: (top error, partition error)."""
    part = struct.pack(">i", 0) + ack_batches(batches) + uvarint(0)
    body = cstr(group) + cstr(member) + struct.pack(">i", epoch) + uvarint(2) + topic_id.bytes + uvarint(2) + part + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(79, 1, body, correlation_id=79, flexible=True))
    assert resp is not None, "ShareAcknowledge closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 79
    varint()
    take(">i")
    error = take(">h")
    rstr()
    part_error = None
    for _ in range(max(varint() - 1, 0)):
        take(">q"), take(">q")
        for _ in range(max(varint() - 1, 0)):
            take(">i")
            part_error = take(">h")
            break
        break
    return error, part_error


def topic_id_of(b, name):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    from confluent_kafka import TopicCollection
    d = a.describe_topics(TopicCollection([name]))[name].result(15)
    return uuid.UUID(bytes=bytes(d.topic_id.get_most_significant_bits().to_bytes(8, "big", signed=True)
                                 + d.topic_id.get_least_significant_bits().to_bytes(8, "big", signed=True)))


def test_kafkas_error_codes(sbroker):
    make_topic(sbroker, "qe", [f"e{i}" for i in range(4)])
    bs = sbroker.bootstrap
    tid = topic_id_of(sbroker, "qe")
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    err, member, epoch = join_share(bs, "raw", a, "qe")
    assert (err, member) == (0, a) and epoch > 0
    assert share_heartbeat(bs, "raw", a, epoch + 5)[0] == FENCED_MEMBER_EPOCH
    assert share_heartbeat(bs, "raw", "nobody", 1)[0] == UNKNOWN_MEMBER_ID
    assert share_heartbeat(bs, "raw", a, -7)[0] == INVALID_REQUEST
    assert share_heartbeat(bs, "raw", b, 0)[0] == INVALID_REQUEST, "a join must subscribe"
    assert join_share(bs, "raw", b, "qe")[0] == 0
    # Other protocols on a share group's id, and a share heartbeat on a consumer group's.
    assert join_group_v5(bs, "raw") == INCONSISTENT_GROUP_PROTOCOL
    assert consumer_heartbeat(bs, "raw", "m", 0, topics=["qe"], owned=[], rebalance_timeout=30000)[0] == GROUP_ID_NOT_FOUND
    assert consumer_heartbeat(bs, "cg", "m", 0, topics=["qe"], owned=[], rebalance_timeout=30000)[0] == 0
    assert share_heartbeat(bs, "cg", a, 0, topics=["qe"])[0] == GROUP_ID_NOT_FOUND
    # Share sessions: acknowledgements need one, at the right epoch.
    assert share_acknowledge(bs, "raw", a, 1, tid, [(0, 0, 1)])[0] == SHARE_SESSION_NOT_FOUND
    err, acquired, _ = share_fetch(bs, "raw", a, 0, tid)
    assert err == 0 and acquired == [(0, 3, 1)]
    assert share_fetch(bs, "raw", b, 0, tid)[:2] == (0, []), "all four are a's"
    assert share_acknowledge(bs, "raw", b, 0, tid, [(0, 0, 1)])[0] == INVALID_SHARE_SESSION_EPOCH
    assert share_acknowledge(bs, "raw", b, 1, tid, [(0, 0, 1)]) == (0, INVALID_RECORD_STATE), "b does not hold offset 0"
    assert share_acknowledge(bs, "raw", a, 5, tid, [(0, 0, 1)])[0] == INVALID_SHARE_SESSION_EPOCH
    assert share_acknowledge(bs, "raw", a, 1, tid, [(0, 0, 1)]) == (0, 0)
    assert share_acknowledge(bs, "raw", a, 2, tid, [(0, 0, 1)]) == (0, INVALID_RECORD_STATE), "already accepted"
    # Release 1, then b can have it (delivery 2); a closes its session, releasing 2 and 3.
    assert share_acknowledge(bs, "raw", a, 3, tid, [(1, 1, 2)]) == (0, 0)
    assert share_fetch(bs, "raw", a, -1, tid, fetch=False)[0] == 0
    err, acquired, _ = share_fetch(bs, "raw", b, 2, tid)
    assert err == 0 and acquired == [(1, 3, 2)]
    assert share_heartbeat(bs, "raw", a, -1)[:3] == (0, a, -1)


def describe_offsets(bootstrap, group, topic=None, partitions=()):
    """DescribeShareGroupOffsets v0 of one group: (group error, {(topic, partition): (start, error)})."""
    topics = uvarint(0) if topic is None else uvarint(2) + cstr(topic) + uvarint(len(partitions) + 1) + b"".join(struct.pack(">i", p) for p in partitions) + uvarint(0)
    body = uvarint(2) + cstr(group) + topics + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(90, 0, body, correlation_id=90, flexible=True))
    assert resp is not None
    take, varint, rstr = _reader(resp)
    assert take(">i") == 90
    varint()
    take(">i")
    assert varint() == 2
    rstr()
    out = {}
    for _ in range(max(varint() - 1, 0)):
        name = rstr()
        take(">q"), take(">q")
        for _ in range(max(varint() - 1, 0)):
            p, start, _epoch, err = take(">i"), take(">q"), take(">i"), take(">h")
            rstr(), varint()
            out[(name, p)] = (start, err)
        varint()
    return take(">h"), out


def alter_offsets(bootstrap, group, topic, partition, start):
    """AlterShareGroupOffsets v0 of one partition: (top error, partition error)."""
    part = struct.pack(">iq", partition, start) + uvarint(0)
    body = cstr(group) + uvarint(2) + cstr(topic) + uvarint(2) + part + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(91, 0, body, correlation_id=91, flexible=True))
    assert resp is not None
    take, varint, rstr = _reader(resp)
    assert take(">i") == 91
    varint()
    take(">i")
    top = take(">h")
    rstr()
    part_error = None
    if varint() > 1:
        rstr(), take(">q"), take(">q")
        if varint() > 1:
            take(">i")
            part_error = take(">h")
    return top, part_error


def delete_offsets(bootstrap, group, topic):
    """DeleteShareGroupOffsets v0 of one topic: (top error, topic error)."""
    body = cstr(group) + uvarint(2) + cstr(topic) + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(92, 0, body, correlation_id=92, flexible=True))
    assert resp is not None
    take, varint, rstr = _reader(resp)
    assert take(">i") == 92
    varint()
    take(">i")
    top = take(">h")
    rstr()
    topic_error = None
    if varint() > 1:
        rstr(), take(">q"), take(">q")
        topic_error = take(">h")
    return top, topic_error


def delete_group(bootstrap, group):
    """DeleteGroups v0 of one group: its error code."""
    resp = exchange(bootstrap, frame(42, 0, struct.pack(">i", 1) + wire.kstr(group), correlation_id=42))
    assert resp is not None
    (corr, _throttle, n) = struct.unpack_from(">iii", resp)
    assert corr == 42 and n == 1
    (glen,) = struct.unpack_from(">h", resp, 12)
    return struct.unpack_from(">h", resp, 14 + glen)[0]


NON_EMPTY_GROUP = 68


def test_share_group_offsets_and_delete(sbroker):
    """DescribeShareGroupOffsets shows the start offset (the first unfinished record);
    AlterShareGroupOffsets moves it and DeleteShareGroupOffsets / DeleteGroups drop the state,
    only while the group has no members."""
    make_topic(sbroker, "qo", [f"o{i}" for i in range(10)])
    bs = sbroker.bootstrap
    tid = topic_id_of(sbroker, "qo")
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert join_share(bs, "offs", a, "qo")[0] == 0
    assert share_fetch(bs, "offs", a, 0, tid)[1] == [(0, 9, 1)]
    assert share_acknowledge(bs, "offs", a, 1, tid, [(0, 3, 1)]) == (0, 0)
    assert describe_offsets(bs, "offs") == (0, {("qo", 0): (4, 0)})
    assert describe_offsets(bs, "offs", "qo", [0, 5])[1] == {("qo", 0): (4, 0), ("qo", 5): (-1, 3)}
    assert alter_offsets(bs, "offs", "qo", 0, 8) == (0, NON_EMPTY_GROUP)
    assert delete_offsets(bs, "offs", "qo")[0] == NON_EMPTY_GROUP
    assert delete_group(bs, "offs") == NON_EMPTY_GROUP
    assert share_heartbeat(bs, "offs", a, -1)[0] == 0
    assert alter_offsets(bs, "offs", "qo", 0, 8) == (0, 0)
    assert describe_offsets(bs, "offs")[1] == {("qo", 0): (8, 0)}
    assert join_share(bs, "offs", b, "qo")[0] == 0
    assert share_fetch(bs, "offs", b, 0, tid)[1] == [(8, 9, 1)], "from the altered start"
    assert share_fetch(bs, "offs", b, -1, tid, fetch=False)[0] == 0
    assert share_heartbeat(bs, "offs", b, -1)[0] == 0
    assert delete_offsets(bs, "offs", "qo") == (0, 0)
    assert describe_offsets(bs, "offs") == (0, {})
    assert delete_group(bs, "offs") == 0
    assert delete_group(bs, "offs") == GROUP_ID_NOT_FOUND


def strom(*args, timeout=60):
    from conftest import STROM_BIN
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def rows(out):
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_strom_share_groups_tool(sbroker):
    """`strom share-groups` as kafka-share-groups.sh: --list, --describe (offsets, --state,
    --members), --reset-offsets (dry run, then --execute), --delete-offsets, --delete."""
    make_topic(sbroker, "qt", [f"t{i}" for i in range(6)])
    bs = sbroker.bootstrap
    tid = topic_id_of(sbroker, "qt")
    a = str(uuid.uuid4())
    assert join_share(bs, "tool", a, "qt")[0] == 0
    assert share_fetch(bs, "tool", a, 0, tid)[1] == [(0, 5, 1)]
    assert share_acknowledge(bs, "tool", a, 1, tid, [(0, 1, 1)]) == (0, 0)
    r = strom("share-groups", "--bootstrap-server", bs, "--list")
    assert r.returncode == 0 and r.stdout.split() == ["tool"], r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--describe", "--group", "tool")
    assert r.returncode == 0 and rows(r.stdout) == [["tool", "qt", "0", "2"]], r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--describe", "--group", "tool", "--state")
    assert r.returncode == 0 and rows(r.stdout)[0][-2:] == ["Stable", "1"], r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--describe", "--group", "tool", "--members")
    assert r.returncode == 0 and rows(r.stdout)[0][1] == a and rows(r.stdout)[0][-2:] == ["1", "qt:0"], r.stdout
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "tool", "--topic", "qt", "--to-latest", "--execute")
    assert r.returncode != 0 and "NON_EMPTY_GROUP" in r.stderr, r.stdout + r.stderr
    assert share_fetch(bs, "tool", a, -1, tid, fetch=False)[0] == 0
    assert share_heartbeat(bs, "tool", a, -1)[0] == 0
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "tool", "--topic", "qt", "--to-latest")
    assert r.returncode == 0 and rows(r.stdout) == [["tool", "qt", "0", "6"]], r.stdout + r.stderr
    assert describe_offsets(bs, "tool")[1] == {("qt", 0): (2, 0)}, "a dry run changes nothing"
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "tool", "--topic", "qt", "--to-earliest", "--execute")
    assert r.returncode == 0 and rows(r.stdout) == [["tool", "qt", "0", "0"]], r.stdout + r.stderr
    assert describe_offsets(bs, "tool")[1] == {("qt", 0): (0, 0)}
    r = strom("share-groups", "--bootstrap-server", bs, "--delete-offsets", "--group", "tool", "--topic", "qt")
    assert r.returncode == 0 and rows(r.stdout) == [["qt", "Successful"]], r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--delete", "--group", "tool")
    assert r.returncode == 0 and "was successful" in r.stdout, r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--list")
    assert r.returncode == 0 and r.stdout.split() == [], r.stdout


def test_strom_share_groups_tool_all_groups_verbose_and_datetime(sbroker):
    """The rest of kafka-share-groups.sh's flags: --describe --all-groups with --verbose (the
    group's and each member's epochs), --reset-offsets --all-topics (only the topics the group
    has start offsets for), --to-datetime (the first record at or after that time; the end
    when none is), --delete-offsets of several --topic, and --delete --all-groups."""
    make_topic(sbroker, "qa", ["a0", "a1", "a2"])
    make_topic(sbroker, "qb", ["b0"])
    make_topic(sbroker, "qc", ["c0"])
    bs = sbroker.bootstrap
    members = {}
    for group, topic in (("ga", "qa"), ("gb", "qb")):
        m = str(uuid.uuid4())
        err, _, epoch = join_share(bs, group, m, topic)
        assert err == 0
        tid = topic_id_of(sbroker, topic)
        assert share_fetch(bs, group, m, 0, tid)[1], "the member got records"
        members[group] = (m, epoch)
    r = strom("share-groups", "--bootstrap-server", bs, "--describe", "--all-groups", "--state", "--verbose")
    assert r.returncode == 0, r.stderr
    tables = [t for t in r.stdout.strip().split("\n\n")]
    assert len(tables) == 2, r.stdout
    assert tables[0].splitlines()[0].split()[:3] == ["GROUP", "COORDINATOR", "(ID)"] and "GROUP-EPOCH" in tables[0] and "ASSIGNMENT-EPOCH" in tables[0]
    state_rows = {rows(t)[0][0]: rows(t)[0] for t in tables}
    assert sorted(state_rows) == ["ga", "gb"]
    for row in state_rows.values():
        # GROUP, host:port, (id), STATE, GROUP-EPOCH, ASSIGNMENT-EPOCH, #MEMBERS
        assert row[3] == "Stable" and int(row[4]) >= 1 and int(row[5]) == int(row[4]) and row[6] == "1", row
    r = strom("share-groups", "--bootstrap-server", bs, "--describe", "--group", "ga", "--members", "--verbose")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[5] == "MEMBER-EPOCH", r.stdout
    (row,) = rows(r.stdout)
    assert row[1] == members["ga"][0] and int(row[5]) == members["ga"][1] and row[-1] == "qa:0", row
    for group, (m, epoch) in members.items():
        assert share_heartbeat(bs, group, m, -1)[0] == 0

    # ga has start offsets for qa only: --all-topics resets that one.
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "ga", "--all-topics", "--to-latest", "--execute")
    assert r.returncode == 0 and rows(r.stdout) == [["ga", "qa", "0", "3"]], r.stdout + r.stderr
    time.sleep(0.05)
    marker_ms = int(time.time() * 1000)
    time.sleep(0.05)
    produce(sbroker, "qa", ["a3", "a4"])
    marker = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(marker_ms / 1000)) + f".{marker_ms % 1000:03d}Z"
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "ga", "--topic", "qa", "--to-datetime", marker, "--execute")
    assert r.returncode == 0 and rows(r.stdout) == [["ga", "qa", "0", "3"]], r.stdout + r.stderr
    assert describe_offsets(bs, "ga")[1] == {("qa", 0): (3, 0)}
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "ga", "--topic", "qa", "--to-datetime", "2999-01-01T00:00:00.000")
    assert r.returncode == 0 and rows(r.stdout) == [["ga", "qa", "0", "5"]], "no record that late: the end (dry run) " + r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "ga", "--topic", "qa", "--to-datetime", "yesterday")
    assert r.returncode != 0 and "--to-datetime must look like" in r.stderr, r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", "ga", "--topic", "qc", "--to-earliest", "--execute")
    assert r.returncode == 0 and rows(r.stdout) == [["ga", "qc", "0", "0"]], r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--delete-offsets", "--group", "ga", "--topic", "qa", "--topic", "qc")
    assert r.returncode == 0 and sorted(rows(r.stdout)) == [["qa", "Successful"], ["qc", "Successful"]], r.stdout + r.stderr
    assert describe_offsets(bs, "ga")[1] == {}

    r = strom("share-groups", "--bootstrap-server", bs, "--delete", "--all-groups")
    assert r.returncode == 0 and r.stdout.count("was successful") == 2, r.stdout + r.stderr
    r = strom("share-groups", "--bootstrap-server", bs, "--list")
    assert r.returncode == 0 and r.stdout.split() == [], r.stdout


def test_membership_survives_a_restart(sbroker):
    """Members and epochs are stored (Kafka's ShareGroup* records): after a crash and restart the
    coordinator answers a member's heartbeat at its epoch instead of UNKNOWN_MEMBER_ID; one that
    left stays gone."""
    make_topic(sbroker, "qm", ["m0"])
    bs = sbroker.bootstrap
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    err, _, _ = join_share(bs, "members", a, "qm")
    assert err == 0
    err, _, epoch_b = join_share(bs, "members", b, "qm")
    assert err == 0
    err, _, epoch_a = share_heartbeat(bs, "members", a, 1)
    assert (err, epoch_a) == (0, epoch_b), "a catches up with the group epoch"
    assert share_heartbeat(bs, "members", b, -1)[0] == 0
    err, _, epoch_a = share_heartbeat(bs, "members", a, epoch_a)
    assert err == 0
    sbroker.restart(crash=True)
    bs = sbroker.bootstrap
    deadline = time.time() + 30
    while True:
        err, member, epoch = share_heartbeat(bs, "members", a, epoch_a)
        if err not in RETRIABLE_COORDINATOR or time.time() > deadline:
            break
        time.sleep(0.2)
    assert (err, member, epoch) == (0, a, epoch_a), "the member goes on at its epoch"
    assert share_heartbeat(bs, "members", b, epoch_b)[0] == UNKNOWN_MEMBER_ID, "the member that left is gone"


# ------------------------------------------------------------------ the share-state owner's APIs

FENCED_LEADER_EPOCH = 74
FENCED_STATE_EPOCH = 124


def read_state(bootstrap, group, topic_id, partition, leader_epoch):
    """ReadShareGroupState v0 (a partition leader to the group's coordinator): (error code,
    state epoch, start offset, [(first, last, delivery state, delivery count)])."""
    body = cstr(group) + uvarint(2) + topic_id.bytes + uvarint(2) + struct.pack(">ii", partition, leader_epoch) + uvarint(0) + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(84, 0, body, correlation_id=84, flexible=True))
    assert resp is not None, "ReadShareGroupState closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 84
    varint()
    assert varint() == 2 and take(">16s") == topic_id.bytes and varint() == 2
    assert take(">i") == partition
    error = take(">h")
    rstr()
    state_epoch, start = take(">i"), take(">q")
    batches = [(take(">q"), take(">q"), take(">b"), take(">h"), varint())[:4] for _ in range(varint() - 1)]
    return error, state_epoch, start, batches


def write_state(bootstrap, group, topic_id, partition, leader_epoch, state_epoch, start, batches):
    """WriteShareGroupState v0: the partition's error code."""
    encoded = uvarint(len(batches) + 1) + b"".join(struct.pack(">qqbh", *b) + uvarint(0) for b in batches)
    body = cstr(group) + uvarint(2) + topic_id.bytes + uvarint(2) + struct.pack(">iiiq", partition, state_epoch, leader_epoch, start) + encoded + uvarint(0) + uvarint(0) + uvarint(0)
    resp = exchange(bootstrap, frame(85, 0, body, correlation_id=85, flexible=True))
    assert resp is not None, "WriteShareGroupState closed the connection"
    take, varint, rstr = _reader(resp)
    assert take(">i") == 85
    varint()
    assert varint() == 2 and take(">16s") == topic_id.bytes and varint() == 2
    assert take(">i") == partition
    return take(">h")


def test_state_owner_fences_stale_leaders(sbroker):
    """The group's coordinator, as the owner of share-partition state, answers a partition
    leader's reads and writes as Kafka's share coordinator: a state never written has start
    offset -1; a leader older than the last one to read or write is FENCED_LEADER_EPOCH (also
    after a crash and restart: the epoch is stored with the state), a stale state epoch
    FENCED_STATE_EPOCH, malformed state batches INVALID_REQUEST."""
    bs = sbroker.bootstrap
    deadline = time.time() + 30
    while wire.find_coordinator(bs, "fence", wire.COORDINATOR_GROUP)[0] != 0 and time.time() < deadline:
        time.sleep(0.2)
    tid = uuid.uuid4()
    while (r := read_state(bs, "fence", tid, 0, 5))[0] in RETRIABLE_COORDINATOR and time.time() < deadline:
        time.sleep(0.2)
    assert r == (0, 0, -1, [])
    assert write_state(bs, "fence", tid, 0, 5, 0, 3, [(3, 4, 2, 1), (5, 6, 0, 2)]) == 0
    assert read_state(bs, "fence", tid, 0, 5) == (0, 0, 5, [(5, 6, 0, 2)]), "finished records 3 and 4 are gone"
    assert read_state(bs, "fence", tid, 0, 6)[0] == 0, "a new leader"
    assert write_state(bs, "fence", tid, 0, 5, 0, 5, [(5, 6, 0, 3)]) == FENCED_LEADER_EPOCH
    assert read_state(bs, "fence", tid, 0, 5)[0] == FENCED_LEADER_EPOCH
    assert write_state(bs, "fence", tid, 0, 6, 1, 5, [(5, 6, 0, 3)]) == FENCED_STATE_EPOCH
    assert write_state(bs, "fence", tid, 0, 6, 0, 5, [(5, 6, 0, 1), (6, 7, 0, 1)]) == INVALID_REQUEST
    sbroker.restart(crash=True)
    bs = sbroker.bootstrap
    deadline = time.time() + 30
    while (r := write_state(bs, "fence", tid, 0, 5, 0, 5, [(5, 6, 0, 3)])) in RETRIABLE_COORDINATOR and time.time() < deadline:
        time.sleep(0.2)
    assert r == FENCED_LEADER_EPOCH, "still fenced after the restart"
    assert read_state(bs, "fence", tid, 0, 6) == (0, 0, 5, [(5, 6, 0, 2)])
