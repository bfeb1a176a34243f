"""Consumer groups end to end: Kafka's classic group protocol (FindCoordinator, JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, OffsetCommit/OffsetFetch, the group admin APIs) with real
clients, and committed offsets in `__consumer_offsets` across restarts and crashes.

The three tutorial experiments run the programs in examples/ as subprocesses, so the examples are
tested too. Every subprocess is killed by PID at teardown; every client is closed; every wait has a
deadline. Members use session.timeout.ms=6000 (the broker's group.min.session.timeout.ms) and a
1 s heartbeat, and the broker runs with group.initial.rebalance.delay.ms=0, so that a rebalance
takes about a heartbeat.
"""
import gc
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer, TopicPartition as CTP)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, OffsetAndMetadata, TopicPartition
from kafka import errors as kerr

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
SESSION_MS = 6000
HEARTBEAT_MS = 1000
GROUP_OVERRIDES = ["group.initial.rebalance.delay.ms=0"]
EXAMPLE_TIMEOUTS = ["--session-timeout-ms", str(SESSION_MS), "--heartbeat-interval-ms", str(HEARTBEAT_MS)]

SENT = re.compile(r"^sent partition=(\d+) offset=(\d+) value=(.*)$")
RECEIVED = re.compile(r"^received partition=(\d+) offset=(\d+) value=(.*)$")
ASSIGNED = re.compile(r"^assigned partitions \[(.*)\]$")
REVOKED = re.compile(r"^revoked partitions \[(.*)\]$")


def wait_until(cond, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(interval)
    if not cond():
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ------------------------------------------------------------------ example programs as processes

class Example:
    """One run of an examples/ program; stdout and stderr are collected line by line."""

    def __init__(self, script, args):
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(EXAMPLES, script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _parse(self, regex):
        out = []
        for line in list(self.lines):
            m = regex.match(line)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return out

    def sent(self):
        return self._parse(SENT)

    def received(self):
        return self._parse(RECEIVED)

    def assignment(self):
        """The partitions held now, from the assigned/revoked lines (None before the first)."""
        held = None
        for line in list(self.lines):
            m = ASSIGNED.match(line)
            if m:
                held = {int(p) for p in m.group(1).split(",") if p.strip()}
                continue
            m = REVOKED.match(line)
            if m and held is not None:
                held -= {int(p) for p in m.group(1).split(",") if p.strip()}
        return held

    def assignment_count(self):
        return sum(1 for line in list(self.lines) if ASSIGNED.match(line))

    def wait_received(self, n, timeout=30):
        wait_until(lambda: len(self.received()) >= n or self.proc.poll() is not None, timeout,
                   f"{self.script} to receive {n} messages")
        assert len(self.received()) >= n, self.describe()

    def wait_assignment(self, partitions, timeout=30):
        wait_until(lambda: self.assignment() == set(partitions) or self.proc.poll() is not None, timeout,
                   f"{self.script} to hold {sorted(partitions)}")
        assert self.assignment() == set(partitions), self.describe()

    def interrupt(self, timeout=20):
        """Ctrl-C, then wait for the program to finish by itself."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return rc

    def wait(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def describe(self):
        return f"{self.script} (rc={self.proc.poll()}) output:\n" + "\n".join(self.lines[-60:])


@pytest.fixture
def run():
    """Starts examples/ programs; kills every one still running at teardown (by PID)."""
    started = []

    def start(script, *args):
        e = Example(script, [str(a) for a in args])
        started.append(e)
        return e

    yield start
    for e in started:
        e.kill()


@pytest.fixture(autouse=True)
def _release_clients(broker_factory):
    """confluent-kafka's AdminClient has no close(): its handle goes when Python collects it.
    Collect before the brokers stop, so that no handle lingers, reconnecting to a dead port."""
    yield
    gc.collect()


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(GROUP_OVERRIDES)


def produce_with_example(run, bootstrap, count, start=0, topic="test", interval=0, keyed=True):
    p = run("producer.py", "--bootstrap-server", bootstrap, "--topic", topic, "--count", count,
            "--start", start, "--interval", interval, *(["--keyed"] if keyed else []))
    assert p.wait(timeout=60) == 0, p.describe()
    sent = p.sent()
    assert len(sent) == count, p.describe()
    return sent


def consumer_example(run, bootstrap, group, *extra, topic="test"):
    return run("consumer.py", "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
               *EXAMPLE_TIMEOUTS, *extra)


def by_partition(records):
    out = {}
    for p, o, v in records:
        out.setdefault(p, []).append((o, v))
    return out


# ------------------------------------------------------------------ in-process clients

def create_topic(bootstrap, name, partitions, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(15)


def produce(bootstrap, topic, items):
    """items: (partition, value) pairs. Returns the acknowledged (partition, offset, value)."""
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or (msg.partition(), msg.offset(), msg.value().decode()))

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, value in items:
        p.produce(topic, value=value.encode(), partition=partition, on_delivery=on_delivery)
    assert p.flush(30) == 0
    assert errors == []
    return sorted(acked)


def kadmin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap)


RETRIABLE_COORDINATOR_ERRORS = (kerr.CoordinatorLoadInProgressError, kerr.CoordinatorNotAvailableError,
                                kerr.NotCoordinatorError)


def committed_offsets(bootstrap, group, timeout=15):
    """OffsetFetch for every committed partition of the group: {(topic, partition): offset}.
    Retries while the coordinator is still loading (after a broker start), as clients do."""
    a = kadmin(bootstrap)
    deadline = time.time() + timeout
    try:
        while True:
            try:
                got = a.list_group_offsets(group)[group]
                break
            except RETRIABLE_COORDINATOR_ERRORS:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        a.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in got.items() if om.offset >= 0}


class Member:
    """A confluent-kafka group member polled by the test's thread, recording its rebalances."""

    def __init__(self, bootstrap, group, topics, **conf):
        self.events = []
        self.assigned = set()
        self.records = []
        self.errors = []
        self.closed = False
        self.c = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group,
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
            "auto.offset.reset": "earliest", "enable.partition.eof": False, **conf})
        self.c.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, _c, parts):
        ps = {p.partition for p in parts}
        self.events.append(("assign", sorted(ps)))
        self.assigned |= ps

    def _on_revoke(self, _c, parts):
        ps = {p.partition for p in parts}
        self.events.append(("revoke", sorted(ps)))
        self.assigned -= ps

    def poll(self, timeout=0.05):
        m = self.c.poll(timeout)
        if m is not None:
            if m.error():
                if m.error().fatal():
                    raise KafkaException(m.error())
                self.errors.append(m.error())
            else:
                self.records.append((m.partition(), m.offset(), m.value().decode()))

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()


@pytest.fixture
def members():
    """Makes Members; closes every one at teardown."""
    made = []

    def make(*args, **kw):
        m = Member(*args, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        try:
            m.close()
        except Exception:
            pass


def poll_until(ms, cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in ms:
            if not m.closed:
                m.poll(0.05)
        if cond():
            return
    state = [(sorted(m.assigned), m.events[-4:], len(m.records), [str(e) for e in m.errors[-3:]]) for m in ms]
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; members: {state}")


def poll_for(ms, seconds):
    """Keeps polling (heartbeats, callbacks, records) for a while."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for m in ms:
            if not m.closed:
                m.poll(0.05)


def describe_group(bootstrap, group):
    a = AdminClient({"bootstrap.servers": bootstrap})
    return a.describe_consumer_groups([group], request_timeout=10)[group].result(15)


# ------------------------------------------------------------------ raw protocol

def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _nstr(s):
    return struct.pack(">h", -1) if s is None else _str(s)


def _bytes(b):
    return struct.pack(">i", len(b)) + b


class Reader:
    def __init__(self, data):
        self.d, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def str(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes(self):
        n = self.i32()
        if n < 0:
            return None
        b = self.d[self.pos:self.pos + n]
        self.pos += n
        return b

    def array(self, item):
        return [item() for _ in range(self.i32())]


# ConsumerProtocolSubscription v0: no topics, null user data.
EMPTY_SUBSCRIPTION = struct.pack(">hii", 0, 0, -1)


class Wire:
    """One connection speaking non-flexible request versions by hand."""

    def __init__(self, bootstrap, timeout=15):
        host, port = bootstrap.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.corr = 0

    def call(self, api_key, version, body):
        self.corr += 1
        client = b"groups-wire"
        payload = struct.pack(">hhih", api_key, version, self.corr, len(client)) + client + body
        self.s.sendall(struct.pack(">i", len(payload)) + payload)
        head = self.s.recv(4, socket.MSG_WAITALL)
        assert len(head) == 4, "the broker closed the connection"
        (n,) = struct.unpack(">i", head)
        data = self.s.recv(n, socket.MSG_WAITALL)
        r = Reader(data)
        assert r.i32() == self.corr
        return r

    def close(self):
        self.s.close()

    def api_versions(self):
        r = self.call(18, 0, b"")
        assert r.i16() == 0
        return {k: (lo, hi) for k, lo, hi in r.array(lambda: r.take(">hhh"))}

    def join_v5(self, group, member_id="", session_ms=SESSION_MS, rebalance_ms=10000, instance_id=None,
                protocol_type="consumer", protocols=(("range", EMPTY_SUBSCRIPTION),)):
        body = _str(group) + struct.pack(">ii", session_ms, rebalance_ms) + _str(member_id) + _nstr(instance_id)
        body += _str(protocol_type) + struct.pack(">i", len(protocols))
        for name, meta in protocols:
            body += _str(name) + _bytes(meta)
        r = self.call(11, 5, body)
        r.i32()  # throttle
        out = {"error": r.i16(), "generation": r.i32(), "protocol": r.str(), "leader": r.str(), "member_id": r.str()}
        out["members"] = r.array(lambda: (r.str(), r.str(), r.bytes()))
        return out

    def join_v3(self, group, member_id="", session_ms=SESSION_MS, protocol_type="consumer"):
        body = _str(group) + struct.pack(">ii", session_ms, 10000) + _str(member_id) + _str(protocol_type)
        body += struct.pack(">i", 1) + _str("range") + _bytes(EMPTY_SUBSCRIPTION)
        r = self.call(11, 3, body)
        r.i32()
        out = {"error": r.i16(), "generation": r.i32(), "protocol": r.str(), "leader": r.str(), "member_id": r.str()}
        out["members"] = r.array(lambda: (r.str(), r.bytes()))
        return out

    def sync_v3(self, group, generation, member_id, assignments=(), instance_id=None):
        body = _str(group) + struct.pack(">i", generation) + _str(member_id) + _nstr(instance_id)
        body += struct.pack(">i", len(assignments))
        for mid, a in assignments:
            body += _str(mid) + _bytes(a)
        r = self.call(14, 3, body)
        r.i32()
        return r.i16(), r.bytes()

    def heartbeat_v3(self, group, generation, member_id, instance_id=None):
        r = self.call(12, 3, _str(group) + struct.pack(">i", generation) + _str(member_id) + _nstr(instance_id))
        r.i32()
        return r.i16()

    def leave_v1(self, group, member_id):
        r = self.call(13, 1, _str(group) + _str(member_id))
        r.i32()
        return r.i16()

    def commit_v2(self, group, generation, member_id, topic, partition, offset):
        body = _str(group) + struct.pack(">i", generation) + _str(member_id) + struct.pack(">q", -1)
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", 1)
        body += struct.pack(">iq", partition, offset) + _nstr("")
        r = self.call(8, 2, body)
        topics = r.array(lambda: (r.str(), r.array(lambda: r.take(">ih"))))
        return topics[0][1][0][1]

    def find_coordinator_v1(self, group):
        r = self.call(10, 1, _str(group) + struct.pack(">b", 0))
        r.i32()
        return {"error": r.i16(), "message": r.str(), "node_id": r.i32(), "host": r.str(), "port": r.i32()}


def client_generation(consumer):
    """The generation a confluent-kafka member believes it is in: librdkafka's serialised group
    metadata is b"CGMDv2:" followed by the generation id (native int32)."""
    md = consumer.consumer_group_metadata()
    assert md[:7] == b"CGMDv2:", md
    return struct.unpack_from("=i", md, 7)[0]


def heartbeat(bootstrap, group, generation, member_id, instance_id=None):
    w = Wire(bootstrap)
    try:
        return w.heartbeat_v3(group, generation, member_id, instance_id)
    finally:
        w.close()


# ================================================================== the tutorial experiments

def test_experiment1_one_producer_one_consumer(gbroker, run):
    """Experiment 1: what the producer wrote, the consumer prints, in order, with its offsets;
    also messages produced while the consumer is listening."""
    bs = gbroker.bootstrap
    before = produce_with_example(run, bs, 5, keyed=False)  # auto-creates `test` (1 partition)
    assert [(p, o) for p, o, _ in before] == [(0, i) for i in range(5)]
    c = consumer_example(run, bs, "exp1", "--auto-offset-reset", "earliest")
    c.wait_received(5)
    assert c.received() == before
    assert c.assignment() == {0}
    live = produce_with_example(run, bs, 5, start=5, interval=0.05, keyed=False)
    c.wait_received(10)
    assert c.received() == before + live
    assert [v for _, _, v in c.received()] == [f"message {i}" for i in range(10)]
    assert c.interrupt() == 0, c.describe()
    assert c.lines[-1] == "closed", c.describe()
    # The default --commit auto committed the position on close.
    assert committed_offsets(bs, "exp1") == {("test", 0): 10}


@pytest.mark.parametrize("stop", ["sigint", "sigkill"])
def test_experiment2_group_failover(gbroker, run, stop):
    """Experiment 2: two consumers of one group share a 2-partition topic, one partition each.
    Stopped with Ctrl-C the consumer leaves the group and the survivor takes over at once; killed
    with SIGKILL, only after the session timeout. Offsets were committed after each message, so
    the survivor continues exactly where the stopped one left off."""
    bs = gbroker.bootstrap
    t = run("create_topic.py", "--bootstrap-server", bs, "--topic", "test", "--partitions", 2)
    assert t.wait(30) == 0, t.describe()
    assert "created topic test with 2 partitions" in t.lines, t.describe()

    a = consumer_example(run, bs, "exp2", "--auto-offset-reset", "earliest", "--commit", "each")
    a.wait_assignment({0, 1})
    b = consumer_example(run, bs, "exp2", "--auto-offset-reset", "earliest", "--commit", "each")
    wait_until(lambda: a.assignment() is not None and b.assignment() is not None
               and len(a.assignment()) == 1 and a.assignment() | b.assignment() == {0, 1},
               30, "one partition each")
    (pa,), (pb,) = a.assignment(), b.assignment()

    sent = produce_with_example(run, bs, 20)
    parts = by_partition(sent)
    assert set(parts) == {0, 1}
    wait_until(lambda: len(a.received()) + len(b.received()) >= 20, 30, "both consumers to get their share")
    assert by_partition(a.received()) == {pa: parts[pa]}, a.describe()
    assert by_partition(b.received()) == {pb: parts[pb]}, b.describe()
    # Every message was committed before we stop anyone.
    expected = {("test", p): recs[-1][0] + 1 for p, recs in parts.items()}
    wait_until(lambda: committed_offsets(bs, "exp2") == expected, 10, f"commits {expected}", interval=0.3)

    b_seen = len(b.received())
    assignments_before = b.assignment_count()
    t0 = time.time()
    if stop == "sigint":
        assert a.interrupt() == 0, a.describe()
        assert a.lines[-1] == "closed", a.describe()
    else:
        a.kill()
    b.wait_assignment({0, 1}, timeout=30)
    took = time.time() - t0
    assert b.assignment_count() > assignments_before
    if stop == "sigint":
        # LeaveGroup: b hears of the rebalance at its next heartbeat, long before a session timeout.
        assert took < SESSION_MS / 1000 - 0.5, f"takeover after a clean close took {took:.1f}s"
    else:
        # No LeaveGroup: a's membership lasts until its session expires.
        assert took >= SESSION_MS / 1000 - HEARTBEAT_MS / 1000 - 1.0, f"takeover after SIGKILL took only {took:.1f}s"
        assert took < SESSION_MS / 1000 + 10

    more = produce_with_example(run, bs, 10, start=20)
    wait_until(lambda: len(b.received()) >= b_seen + 10, 30, "the survivor to receive the new messages")
    time.sleep(0.5)
    # Exactly the new messages, on both partitions: nothing of a's partition is read twice or skipped.
    assert by_partition(b.received()[b_seen:]) == by_partition(more), b.describe()
    assert b.interrupt() == 0


def test_experiment3_commit_each_resumes_never_commit_restarts(gbroker, run):
    """Experiment 3: a consumer committing after each message is Ctrl-C'd in the middle of a
    stream and restarted: it continues at the first message it did not print. A consumer that
    never commits starts from its auto_offset_reset position on every run."""
    bs = gbroker.bootstrap
    t = run("create_topic.py", "--bootstrap-server", bs, "--topic", "test", "--partitions", 1)
    assert t.wait(30) == 0, t.describe()
    producer = run("producer.py", "--bootstrap-server", bs, "--count", 40, "--interval", 0.05)
    c1 = consumer_example(run, bs, "exp3-each", "--auto-offset-reset", "earliest", "--commit", "each")
    c1.wait_received(10)
    assert c1.interrupt() == 0, c1.describe()
    first = c1.received()
    last = first[-1][1]
    assert [o for _, o, _ in first] == list(range(last + 1)), "no gap, no repeat"
    assert producer.wait(60) == 0, producer.describe()
    sent = producer.sent()
    assert [(p, o) for p, o, _ in sent] == [(0, i) for i in range(40)]
    assert first == sent[:last + 1]
    assert committed_offsets(bs, "exp3-each") == {("test", 0): last + 1}

    c2 = consumer_example(run, bs, "exp3-each", "--auto-offset-reset", "earliest", "--commit", "each")
    c2.wait_received(40 - (last + 1))
    time.sleep(0.3)
    assert c2.received() == sent[last + 1:], c2.describe()
    assert c2.interrupt() == 0
    assert committed_offsets(bs, "exp3-each") == {("test", 0): 40}

    for _ in range(2):
        n = consumer_example(run, bs, "exp3-never", "--auto-offset-reset", "earliest", "--commit", "never")
        n.wait_received(40)
        assert n.received() == sent, n.describe()
        assert n.interrupt() == 0
    assert committed_offsets(bs, "exp3-never") == {}

    # With latest, a consumer without commits only sees what is produced after it started.
    latest = consumer_example(run, bs, "exp3-latest", "--auto-offset-reset", "latest", "--commit", "never")
    latest.wait_assignment({0})
    time.sleep(1.5)  # its position is looked up right after the assignment
    new = produce_with_example(run, bs, 3, start=40, keyed=False)
    latest.wait_received(3)
    assert latest.received() == new, latest.describe()
    assert latest.interrupt() == 0


# ================================================================== more group behaviour

def test_two_groups_each_receive_every_record(gbroker, run):
    bs = gbroker.bootstrap
    create_topic(bs, "shared", 2)
    g1 = [consumer_example(run, bs, "g1", "--auto-offset-reset", "earliest", topic="shared") for _ in range(2)]
    g2 = consumer_example(run, bs, "g2", "--auto-offset-reset", "earliest", topic="shared")
    wait_until(lambda: all(c.assignment() is not None for c in g1)
               and sorted(len(c.assignment()) for c in g1) == [1, 1]
               and g1[0].assignment() | g1[1].assignment() == {0, 1}, 30, "g1 to split the partitions")
    g2.wait_assignment({0, 1})
    sent = produce_with_example(run, bs, 30, topic="shared")
    wait_until(lambda: sum(len(c.received()) for c in g1) >= 30 and len(g2.received()) >= 30, 30, "both groups")
    time.sleep(0.3)
    got1 = g1[0].received() + g1[1].received()
    assert sorted(got1) == sorted(sent), "group g1 together: every record exactly once"
    assert not set(by_partition(g1[0].received())) & set(by_partition(g1[1].received()))
    assert sorted(g2.received()) == sorted(sent), "group g2: every record exactly once"
    for c in g1 + [g2]:
        assert c.interrupt() == 0, c.describe()
    ends = {("shared", p): recs[-1][0] + 1 for p, recs in by_partition(sent).items()}
    assert committed_offsets(bs, "g1") == ends
    assert committed_offsets(bs, "g2") == ends


def test_idle_fourth_member_takes_over(gbroker, members):
    """4 members on 3 partitions: one is idle; when a member with a partition leaves, the idle one
    gets a partition, and records go to the partition's owner only."""
    bs = gbroker.bootstrap
    create_topic(bs, "four", 3)
    ms = [members(bs, "four", ["four"], **{"client.id": f"m{i}"}) for i in range(4)]

    admin = AdminClient({"bootstrap.servers": bs})

    def settled(group):
        """Every member has joined (had an assignment, maybe empty), the partitions are spread one
        per member, and the coordinator agrees: Stable, with this many members."""
        if not (all(m.events for m in group)
                and sorted(len(m.assigned) for m in group) == [0] * (len(group) - 3) + [1, 1, 1]
                and set().union(*(m.assigned for m in group)) == {0, 1, 2}):
            return False
        d = admin.describe_consumer_groups(["four"], request_timeout=10)["four"].result(15)
        return d.state == ConsumerGroupState.STABLE and len(d.members) == len(group)

    poll_until(ms, lambda: settled(ms), 40, "3 members with a partition and 1 idle")
    idle = next(m for m in ms if not m.assigned)
    victim = next(m for m in ms if m.assigned)
    victim.close()
    rest = [m for m in ms if m is not victim]
    poll_until(rest, lambda: settled(rest), 30, "the idle member to take over")
    assert len(idle.assigned) == 1
    for m in rest:
        m.records.clear()
    sent = produce(bs, "four", [(i % 3, f"r{i}") for i in range(30)])
    poll_until(rest, lambda: sum(len(m.records) for m in rest) >= 30, 30, "the records")
    poll_for(rest, 0.3)
    for m in rest:
        (p,) = m.assigned
        assert sorted(m.records) == [r for r in sent if r[0] == p]


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart(broker_factory, run, crash):
    """What OffsetCommit acknowledged is exactly what OffsetFetch returns after a clean restart or
    a crash, and a consumer resumes there. A member that stays up across the restart goes on
    consuming without reading anything twice."""
    b = broker_factory(GROUP_OVERRIDES)
    bs = b.bootstrap
    create_topic(bs, "durable", 3)
    sent = produce(bs, "durable", [(p, f"p{p}-{i}") for p in range(3) for i in range(10)])

    live = consumer_example(run, bs, "durable-live", "--auto-offset-reset", "earliest", "--commit", "each",
                            topic="durable")
    c = Consumer({"bootstrap.servers": bs, "group.id": "durable", "enable.auto.commit": False,
                  "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS})
    try:
        c.assign([CTP("durable", p) for p in range(3)])
        acked = {}
        for offsets in ([CTP("durable", 0, 4), CTP("durable", 1, 7), CTP("durable", 2, 10)], [CTP("durable", 0, 5)]):
            result = c.commit(offsets=offsets, asynchronous=False)
            assert all(tp.error is None for tp in result), result
            acked.update({tp.partition: tp.offset for tp in result})
        assert acked == {0: 5, 1: 7, 2: 10}
    finally:
        c.close()
    live.wait_received(30)
    wait_until(lambda: committed_offsets(bs, "durable-live") == {("durable", p): 10 for p in range(3)}, 10,
               "the live member's commits", interval=0.3)

    b.restart(crash=crash)
    assert committed_offsets(bs, "durable") == {("durable", p): o for p, o in acked.items()}
    a = AdminClient({"bootstrap.servers": bs})
    listed = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("durable")])["durable"].result(15)
    assert sorted((tp.partition, tp.offset) for tp in listed.topic_partitions) == sorted(acked.items())

    c = Consumer({"bootstrap.servers": bs, "group.id": "durable", "enable.auto.commit": False,
                  "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        got = c.committed([CTP("durable", p) for p in range(3)], timeout=15)
        assert sorted((tp.partition, tp.offset) for tp in got) == sorted(acked.items())
        c.subscribe(["durable"])
        more = produce(bs, "durable", [(p, f"after-{p}") for p in range(3)])
        want = sorted([r for r in sent if r[1] >= acked[r[0]]] + more)
        records, deadline = [], time.time() + 30
        while len(records) < len(want) and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                records.append((m.partition(), m.offset(), m.value().decode()))
        assert sorted(records) == want, "resumes exactly at the committed offsets"
    finally:
        c.close()

    live.wait_received(33, timeout=40)
    time.sleep(0.5)
    assert sorted(live.received()) == sorted(sent + more), live.describe()
    assert live.interrupt() == 0, live.describe()


def test_static_member_restart_without_rebalance(gbroker, members):
    """group.instance.id (KIP-345): a static member that closes and comes back within the session
    timeout gets its partition back, and the group does not rebalance: the other member sees no
    revoke, and the generation the coordinator accepts stays the same. Gone for longer than the
    session timeout, it is removed and the other member gets everything."""
    bs = gbroker.bootstrap
    create_topic(bs, "static", 2)
    a = members(bs, "static", ["static"], **{"group.instance.id": "a", "client.id": "static-a"})
    b = members(bs, "static", ["static"], **{"group.instance.id": "b", "client.id": "static-b"})
    poll_until([a, b], lambda: len(a.assigned) == 1 and a.assigned | b.assigned == {0, 1}, 40, "one partition each")
    poll_for([a, b], 1.5)
    gen = client_generation(b.c)
    assert client_generation(a.c) == gen
    # The coordinator agrees: a Heartbeat at this generation is accepted, any other is not.
    assert heartbeat(bs, "static", gen, b.c.memberid(), "b") == 0
    assert heartbeat(bs, "static", gen + 1, b.c.memberid(), "b") == 22
    a_partitions, a_member = set(a.assigned), a.c.memberid()
    b_events = list(b.events)

    a.close()  # a static member sends no LeaveGroup
    d = describe_group(bs, "static")
    assert d.state == ConsumerGroupState.STABLE
    assert sorted(m.group_instance_id for m in d.members) == ["a", "b"]

    a2 = members(bs, "static", ["static"], **{"group.instance.id": "a", "client.id": "static-a"})
    poll_until([a2, b], lambda: a2.assigned, SESSION_MS / 1000 - 1, "the restarted static member's assignment")
    assert a2.assigned == a_partitions
    assert a2.c.memberid() != a_member, "a rejoining static member gets a new member id"
    poll_for([a2, b], 3)  # b heartbeats every second: a rebalance would reach it
    assert b.events == b_events, "the other member saw a rebalance"
    assert client_generation(b.c) == gen and client_generation(a2.c) == gen, "the generation moved on"
    assert heartbeat(bs, "static", gen, b.c.memberid(), "b") == 0
    assert heartbeat(bs, "static", gen, a2.c.memberid(), "a") == 0
    assert heartbeat(bs, "static", gen, a_member, "a") == 82, "the old member id is fenced (FENCED_INSTANCE_ID)"
    d = describe_group(bs, "static")
    assert d.state == ConsumerGroupState.STABLE
    by_instance = {m.group_instance_id: m for m in d.members}
    assert by_instance["a"].member_id == a2.c.memberid()
    assert {tp.partition for tp in by_instance["a"].assignment.topic_partitions} == a_partitions

    a2.close()
    t0 = time.time()
    poll_until([b], lambda: b.assigned == {0, 1}, SESSION_MS / 1000 + 15, "b to get a's partition after a's session")
    took = time.time() - t0
    assert took >= SESSION_MS / 1000 - HEARTBEAT_MS / 1000 - 1.0, f"static member removed after {took:.1f}s"


def test_cooperative_sticky_assignment(gbroker, members):
    """partition.assignment.strategy=cooperative-sticky: a joining member takes half the partitions
    and the first member gives up only those (incremental revoke), keeping the rest throughout;
    when the second leaves, the first gets them back."""
    bs = gbroker.bootstrap
    create_topic(bs, "coop", 4)
    first = produce(bs, "coop", [(i % 4, f"first-{i}") for i in range(40)])
    conf = {"partition.assignment.strategy": "cooperative-sticky", "enable.auto.commit": False}
    a = members(bs, "coop", ["coop"], **conf)
    poll_until([a], lambda: a.assigned == {0, 1, 2, 3} and len(a.records) >= 40, 30, "a to own and read everything")
    assert sorted(a.records) == first
    assert all(tp.error is None for tp in a.c.commit(asynchronous=False))
    a.events.clear()

    b = members(bs, "coop", ["coop"], **conf)
    poll_until([a, b], lambda: len(a.assigned) == 2 and len(b.assigned) == 2 and a.assigned | b.assigned == {0, 1, 2, 3},
               40, "two partitions each")
    revoked = [set(ps) for kind, ps in a.events if kind == "revoke"]
    assert revoked == [b.assigned], f"a revoked only what b got: {a.events}"
    # Incremental: a is never handed partitions again (empty assigns are the protocol's follow-up
    # rounds; under load librdkafka may run more than one).
    assert all(ps == [] for kind, ps in a.events if kind == "assign"), f"a kept its partitions: {a.events}"

    second = produce(bs, "coop", [(i % 4, f"second-{i}") for i in range(40)])
    poll_until([a, b], lambda: len(a.records) >= 40 + 20 and len(b.records) >= 20, 30, "the second batch")
    poll_for([a, b], 0.3)
    assert sorted(a.records[40:]) == [r for r in second if r[0] in a.assigned]
    assert sorted(b.records) == [r for r in second if r[0] in b.assigned], "b starts at a's commits"

    b_parts = set(b.assigned)
    b.close()
    poll_until([a], lambda: a.assigned == {0, 1, 2, 3}, 30, "a to get b's partitions back")
    assert ("assign", sorted(b_parts)) in a.events, a.events


def test_admin_group_operations(gbroker, members):
    """ListGroups, DescribeGroups, DeleteGroups (NON_EMPTY_GROUP while a member is active),
    OffsetFetch for a group, OffsetCommit from an admin (UNKNOWN_MEMBER_ID for a group with
    members) and OffsetDelete (GROUP_SUBSCRIBED_TO_TOPIC while subscribed)."""
    bs = gbroker.bootstrap
    create_topic(bs, "adm", 2)
    produce(bs, "adm", [(p, f"v{p}-{i}") for p in range(2) for i in range(10)])
    m = members(bs, "adm-active", ["adm"], **{"client.id": "adm-client", "enable.auto.commit": False})
    poll_until([m], lambda: m.assigned == {0, 1} and len(m.records) >= 20, 30, "the member to read everything")
    assert all(tp.error is None for tp in m.c.commit(asynchronous=False))
    a = AdminClient({"bootstrap.servers": bs})
    ka = kadmin(bs)
    try:
        # A group that only has offsets (an admin commit to an unknown group, generation -1).
        r = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-offsets-only", [CTP("adm", 0, 3)])])
        done = r["adm-offsets-only"].result(15)
        assert [(tp.partition, tp.offset, tp.error) for tp in done.topic_partitions] == [(0, 3, None)]

        listed = a.list_consumer_groups(request_timeout=10).result(15)
        states = {g.group_id: g.state for g in listed.valid}
        assert states.get("adm-active") == ConsumerGroupState.STABLE, states
        assert states.get("adm-offsets-only") == ConsumerGroupState.EMPTY, states
        stable_only = a.list_consumer_groups(request_timeout=10, states={ConsumerGroupState.STABLE}).result(15)
        assert "adm-active" in {g.group_id for g in stable_only.valid}
        assert "adm-offsets-only" not in {g.group_id for g in stable_only.valid}

        d = a.describe_consumer_groups(["adm-active"], request_timeout=10)["adm-active"].result(15)
        assert d.state == ConsumerGroupState.STABLE
        assert d.partition_assignor == "range"
        assert not d.is_simple_consumer_group
        assert len(d.members) == 1
        (md,) = d.members
        assert md.client_id == "adm-client" and md.member_id == m.c.memberid()
        assert md.host, "client host is reported"
        assert sorted((tp.topic, tp.partition) for tp in md.assignment.topic_partitions) == [("adm", 0), ("adm", 1)]

        raw = ka.describe_groups(["adm-active"])["adm-active"]
        assert raw["group_state"] == "Stable" and raw["protocol_type"] == "consumer" and raw["protocol_data"] == "range"

        offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-active")])["adm-active"].result(15)
        assert sorted((tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions) == [("adm", 0, 10), ("adm", 1, 10)]

        with pytest.raises(KafkaException) as e:
            a.delete_consumer_groups(["adm-active"], request_timeout=10)["adm-active"].result(15)
        assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP

        # Admin commits to a group with members are refused (Kafka: UNKNOWN_MEMBER_ID).
        r = ka.alter_group_offsets("adm-active", {TopicPartition("adm", 0): OffsetAndMetadata(offset=1, metadata="", leader_epoch=-1)})
        assert r == {TopicPartition("adm", 0): kerr.UnknownMemberIdError}
        # Offsets of a subscribed topic cannot be deleted while the group has members.
        r = ka.delete_group_offsets("adm-active", [TopicPartition("adm", 1)])
        assert r == {TopicPartition("adm", 1): kerr.GroupSubscribedToTopicError}
        assert committed_offsets(bs, "adm-active") == {("adm", 0): 10, ("adm", 1): 10}

        m.close()
        wait_until(lambda: describe_group(bs, "adm-active").state == ConsumerGroupState.EMPTY, 10, "the group to be Empty")
        d = describe_group(bs, "adm-active")
        assert d.members == []

        r = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-active", [CTP("adm", 0, 3)])])
        done = r["adm-active"].result(15)
        assert [(tp.partition, tp.offset, tp.error) for tp in done.topic_partitions] == [(0, 3, None)]
        r = ka.delete_group_offsets("adm-active", [TopicPartition("adm", 1)])
        assert r == {TopicPartition("adm", 1): kerr.NoError}
        assert committed_offsets(bs, "adm-active") == {("adm", 0): 3}

        a.delete_consumer_groups(["adm-active"], request_timeout=10)["adm-active"].result(15)
        listed = a.list_consumer_groups(request_timeout=10).result(15)
        assert "adm-active" not in {g.group_id for g in listed.valid}
        assert committed_offsets(bs, "adm-active") == {}
        with pytest.raises(KafkaException) as e:
            a.delete_consumer_groups(["adm-active"], request_timeout=10)["adm-active"].result(15)
        assert e.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
        with pytest.raises(kerr.GroupIdNotFoundError):
            ka.delete_group_offsets("never-existed", [TopicPartition("adm", 0)])
    finally:
        ka.close()


# ================================================================== bad input on the wire

def test_group_protocol_errors_on_the_wire(gbroker):
    bs = gbroker.bootstrap
    create_topic(bs, "raw-topic", 1)
    w = Wire(bs)
    w2 = Wire(bs)
    try:
        versions = w.api_versions()
        for key, version in [(8, 2), (10, 1), (11, 3), (11, 5), (12, 3), (13, 1), (14, 3)]:
            assert key in versions and versions[key][0] <= version <= versions[key][1], \
                f"API {key} v{version} not advertised: {versions.get(key)}"

        fc = w.find_coordinator_v1("raw")
        assert (fc["error"], fc["node_id"]) == (0, 1)
        assert f"{fc['host']}:{fc['port']}" == bs

        assert w.join_v5("")["error"] == 24  # INVALID_GROUP_ID
        assert w.join_v5("raw", session_ms=SESSION_MS - 1)["error"] == 26  # INVALID_SESSION_TIMEOUT
        assert w.join_v5("raw", session_ms=1_800_001)["error"] == 26  # above group.max.session.timeout.ms
        assert w.join_v5("raw-empty-type", protocol_type="")["error"] == 23  # INCONSISTENT_GROUP_PROTOCOL
        assert w.join_v5("raw-no-protocols", protocols=())["error"] == 23
        assert w.join_v5("raw", member_id="made-up")["error"] == 25  # UNKNOWN_MEMBER_ID: no such group

        # v4+: a new member first gets MEMBER_ID_REQUIRED (79) with its id, and joins with it.
        first = w.join_v5("raw")
        assert first["error"] == 79 and first["member_id"] and first["generation"] == -1
        member = first["member_id"]
        joined = w.join_v5("raw", member_id=member)
        assert joined["error"] == 0, joined
        gen = joined["generation"]
        assert gen >= 1 and joined["leader"] == member and joined["member_id"] == member
        assert joined["protocol"] == "range"
        assert [m[0] for m in joined["members"]] == [member], "the leader gets the member list"

        assert w.sync_v3("raw", gen + 1, member)[0] == 22  # ILLEGAL_GENERATION
        assert w.sync_v3("raw", gen, "nobody")[0] == 25
        err, assignment = w.sync_v3("raw", gen, member, [(member, b"assignment-bytes")])
        assert (err, assignment) == (0, b"assignment-bytes")

        assert w.heartbeat_v3("raw", gen, member) == 0
        assert w.heartbeat_v3("raw", gen + 1, member) == 22  # ILLEGAL_GENERATION
        assert w.heartbeat_v3("raw", gen - 1, member) == 22
        assert w.heartbeat_v3("raw", gen, "nobody") == 25  # UNKNOWN_MEMBER_ID
        assert w.heartbeat_v3("", gen, member) == 24

        # Another protocol type, or no protocol in common with the members: refused (23).
        assert w2.join_v5("raw", protocol_type="connect")["error"] == 23
        assert w2.join_v5("raw", protocols=(("roundrobin", EMPTY_SUBSCRIPTION),))["error"] == 23

        # A zombie cannot commit: stale generation, unknown member. A topic that does not exist
        # is refused per partition (Kafka checks it first).
        assert w.commit_v2("raw", gen, member, "no-such-topic", 0, 5) == 3  # UNKNOWN_TOPIC_OR_PARTITION
        assert w.commit_v2("raw", gen + 1, member, "raw-topic", 0, 5) == 22
        assert w.commit_v2("raw", gen, "nobody", "raw-topic", 0, 5) == 25
        assert w.commit_v2("raw", gen, member, "raw-topic", 0, 5) == 0
        assert committed_offsets(bs, "raw") == {("raw-topic", 0): 5}

        # JoinGroup v3 and older never ask for a member id: the join completes at once.
        old = w2.join_v3("raw-old")
        assert old["error"] == 0 and old["member_id"] and old["leader"] == old["member_id"], old

        assert w.leave_v1("raw", "nobody") == 25
        assert w.leave_v1("raw", member) == 0
        assert w.heartbeat_v3("raw", gen, member) == 25, "a member that left is unknown"
        d = describe_group(bs, "raw")
        assert d.state == ConsumerGroupState.EMPTY and d.members == []
    finally:
        w.close()
        w2.close()
    assert gbroker.proc.poll() is None


# ================================================================== __consumer_offsets

def offsets_topic_log_bytes(data_dir):
    total, segments = 0, 0
    for d in os.listdir(data_dir):
        if d.startswith("__consumer_offsets-"):
            for f in os.listdir(os.path.join(data_dir, d)):
                if f.endswith(".log"):
                    total += os.path.getsize(os.path.join(data_dir, d, f))
                    segments += 1
    return total, segments


def offsets_topic_ends(bootstrap, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "enable.auto.commit": False})
    try:
        return [c.get_watermark_offsets(CTP("__consumer_offsets", p), timeout=10)[1] for p in range(partitions)]
    finally:
        c.close()


def test_offsets_topic_is_compacted(broker_factory):
    """Thousands of commits of one partition: __consumer_offsets is compacted down to about the
    latest record per key, and the latest commit is what a restarted broker serves."""
    b = broker_factory(GROUP_OVERRIDES + ["log.cleaner.backoff.ms=200", "offsets.topic.segment.bytes=4096"])
    bs = b.bootstrap
    create_topic(bs, "hot", 1)
    n = 3000
    c = Consumer({"bootstrap.servers": bs, "group.id": "hot-committer", "enable.auto.commit": False})
    try:
        for i in range(1, n + 1):
            (tp,) = c.commit(offsets=[CTP("hot", 0, i)], asynchronous=False)
            assert tp.error is None, tp
    finally:
        c.close()
    dirs = [d for d in os.listdir(b.data_dir) if d.startswith("__consumer_offsets-")]
    assert dirs, f"no __consumer_offsets partition in {os.listdir(b.data_dir)}"
    # Every commit was appended (compaction never moves the end of a log): uncompacted, that is
    # well over 100 kB.
    assert sum(offsets_topic_ends(bs, len(dirs))) >= n
    limit = 32 * 1024
    wait_until(lambda: offsets_topic_log_bytes(b.data_dir)[0] < limit, 30,
               f"__consumer_offsets to be compacted below {limit} bytes")
    assert committed_offsets(bs, "hot-committer") == {("hot", 0): n}
    b.restart()
    assert committed_offsets(bs, "hot-committer") == {("hot", 0): n}
    size, segments = offsets_topic_log_bytes(b.data_dir)
    assert size < limit, (size, segments)
    assert sum(offsets_topic_ends(bs, len(dirs))) >= n


# ================================================================== coordinator start-up

def java_string_hash(s):
    h = 0
    for unit in struct.unpack(f">{len(s.encode('utf-16-be')) // 2}H", s.encode("utf-16-be")):
        h = (h * 31 + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group, partitions=50):
    """Kafka's partitionFor: Utils.abs(groupId.hashCode) % offsets.topic.num.partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def test_group_requests_right_after_offsets_topic_creation(broker_factory):
    """The first FindCoordinator creates __consumer_offsets. A coordinator that answers a
    JoinGroup without error can also write the group's SyncGroup: until it can, Kafka answers
    COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR, which clients
    retry. Here a second client asks for a coordinator while the first one's FindCoordinator is
    still creating the topic (as two consumers starting together do)."""
    group = next(f"early-{i}" for i in range(1000) if offsets_partition(f"early-{i}") == 49)
    failures = []
    for delay_ms in range(2, 42, 2):  # the window is a few ms wide; stop at the first hit
        if failures:
            break
        b = broker_factory(GROUP_OVERRIDES)
        creator, w = Wire(b.bootstrap), Wire(b.bootstrap)
        try:
            t = threading.Thread(target=creator.find_coordinator_v1, args=("someone-else",))
            t.start()
            time.sleep(delay_ms / 1000)
            deadline = time.time() + 10
            while w.find_coordinator_v1(group)["error"] == 15 and time.time() < deadline:
                time.sleep(0.01)
            while True:
                j = w.join_v5(group, instance_id="early")
                if j["error"] not in (14, 15, 16) or time.time() > deadline:
                    break
                time.sleep(0.01)
            assert j["error"] == 0, j
            err, _ = w.sync_v3(group, j["generation"], j["member_id"], [(j["member_id"], b"a")], instance_id="early")
            if err != 0:
                failures.append((delay_ms, j["generation"], err))
            t.join(10)
        finally:
            creator.close()
            w.close()
            b.kill()
    assert failures == [], f"SyncGroup failed right after a successful JoinGroup (delay ms, generation, error): {failures}"
