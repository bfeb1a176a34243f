"""Coordinator failover on three nodes, for both kinds of group that keep server-side state:
a KIP-848 consumer group (`group.protocol=consumer`, confluent-kafka 2.16) and a KIP-932 share
group (confluent_kafka.ShareConsumer), two members each, consuming one topic of three
partitions replicated on all three nodes.

The two group ids are chosen so that one node coordinates both (FindCoordinator says which);
that node is SIGKILLed while both groups consume, and it also leads a partition of the topic,
so share partitions change leader too. Both groups must carry on with the new coordinator:

- the consumer group delivers every record, and never one below an offset it committed
  successfully (so no committed offset was lost and no partition was consumed by two members
  at once past a commit);
- the share group delivers every record, and never again one whose acknowledgement the broker
  confirmed (commit_sync's per-partition result).

Every wait has a deadline; the cluster and the clients are stopped at teardown.
"""
import gc
import time

import pytest
from confluent_kafka import Consumer, Producer, ShareConsumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import wire
from cluster import Cluster

TOPIC = "failover"
PARTITIONS = 3
SHARE_OVERRIDES = [
    "share.auto.offset.reset=earliest",
    "group.share.min.record.lock.duration.ms=1000",
    "group.share.record.lock.duration.ms=5000",
    "group.share.min.session.timeout.ms=3000",
    "group.share.session.timeout.ms=10000",
    "group.share.min.heartbeat.interval.ms=500",
    "group.share.heartbeat.interval.ms=1000",
    "offsets.topic.num.partitions=6",
]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, overrides=SHARE_OVERRIDES).start()
    yield c
    gc.collect()
    c.kill_all()


def coordinator_of(c, group):
    """The node FindCoordinator names for `group`, asked of a live node; None while there is none."""
    err, _msg, node, _host, _port = wire.find_coordinator(c.nodes[c.live()[0]].bootstrap, group, key_type=0)
    return node if err == 0 and node in c.live() else None


def produce(bootstrap, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(TOPIC, value=v.encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0


class Groups:
    """Both groups' members, polled in turn from one thread, with what each delivered."""

    def __init__(self, bootstrap, cg, sg):
        common = {"bootstrap.servers": bootstrap}
        self.consumers = [Consumer({**common, "group.id": cg, "group.protocol": "consumer", "enable.auto.commit": False,
                                    "auto.offset.reset": "earliest"}) for _ in range(2)]
        self.shares = [ShareConsumer({**common, "group.id": sg, "share.acknowledgement.mode": "explicit"}) for _ in range(2)]
        for x in self.consumers + self.shares:
            x.subscribe([TOPIC])
        self.cg_values, self.sg_values = [], []
        self.committed = {}  # partition -> the offset committed successfully
        self.acknowledged = set()  # (partition, offset) whose acknowledgement the broker confirmed
        self.violations = []

    def poll_once(self):
        for c in self.consumers:
            msgs = [m for m in c.consume(200, 0.1) if m.error() is None]
            last = {}
            for m in msgs:
                p, o = m.partition(), m.offset()
                if o < self.committed.get(p, 0):
                    self.violations.append(f"consumer group: {p}@{o} delivered again below the committed {self.committed[p]}")
                self.cg_values.append(m.value().decode())
                last[p] = max(last.get(p, -1), o)
            if not last:
                continue
            try:
                done = c.commit(offsets=[TopicPartition(TOPIC, p, o + 1) for p, o in last.items()], asynchronous=False)
            except Exception:  # a commit that failed may be delivered again: that is allowed
                continue
            for tp in done:
                if tp.error is None:
                    self.committed[tp.partition] = max(self.committed.get(tp.partition, 0), tp.offset)
        for s in self.shares:
            msgs = [m for m in s.poll(0.1) if m.error() is None]
            for m in msgs:
                if (m.partition(), m.offset()) in self.acknowledged:
                    self.violations.append(f"share group: {m.partition()}@{m.offset()} delivered again after its acknowledgement")
                self.sg_values.append(m.value().decode())
                s.acknowledge(m)
            if msgs:
                try:
                    results = s.commit_sync(15)
                except Exception:
                    continue
                ok = {tp.partition for tp, err in results.items() if err is None}
                self.acknowledged.update((m.partition(), m.offset()) for m in msgs if m.partition() in ok)

    def poll_until(self, values, timeout):
        want = set(values)
        deadline = time.time() + timeout
        while time.time() < deadline and not (want <= set(self.cg_values) and want <= set(self.sg_values)):
            self.poll_once()
        return want - set(self.cg_values), want - set(self.sg_values)

    def close(self):
        for x in self.consumers + self.shares:
            try:
                x.close()
            except Exception:
                pass


def test_both_groups_survive_their_coordinators_crash(cluster):
    c = cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap()})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)])[TOPIC].result(30)
    c.wait_for_full_isr(TOPIC, 3)
    cg = "failover-consumers"
    victim = c.wait_for(f"the coordinator of {cg}", lambda: coordinator_of(c, cg), 60)
    # A share group id coordinated by the same node.
    sg = next(f"failover-share-{i}" for i in range(200) if c.wait_for("a coordinator", lambda i=i: coordinator_of(c, f"failover-share-{i}"), 30) == victim)
    leaders = {p: s.leader for p, s in c.wait_for_full_isr(TOPIC, 3).items()}
    assert victim in leaders.values(), f"the victim {victim} should lead a partition too: {leaders}"

    groups = Groups(c.bootstrap(), cg, sg)
    try:
        before = [f"a{i}" for i in range(300)]
        produce(c.bootstrap(), before)
        missing = groups.poll_until(before, 90)
        assert missing == (set(), set()), f"before the crash, not delivered (consumer group, share group): {missing}"
        # A few records in flight for both groups when the coordinator dies.
        produce(c.bootstrap(), [f"m{i}" for i in range(30)])
        groups.poll_once()

        c.nodes[victim].kill()
        successor = c.wait_for(f"a new coordinator of {cg} and {sg} (node {victim} is down)",
                               lambda: (a := coordinator_of(c, cg)) not in (None, victim) and a == coordinator_of(c, sg) and a, 60)
        assert successor != victim
        after = [f"b{i}" for i in range(300)]
        produce(c.bootstrap(exclude=[victim]), after)
        everything = before + [f"m{i}" for i in range(30)] + after
        missing = groups.poll_until(everything, 120)
        assert missing == (set(), set()), f"after the failover, not delivered (consumer group, share group): {missing}\n" + \
            "\n".join(f"--- node {i} ---\n" + b.log()[-3000:] for i, b in c.nodes.items())
        # A little longer: anything delivered again would show now.
        end = time.time() + 5
        while time.time() < end:
            groups.poll_once()
        assert groups.violations == [], groups.violations
        assert groups.acknowledged, "the share group's acknowledgements were confirmed"
    finally:
        groups.close()


def test_a_share_partition_moves_with_its_leadership(cluster, tmp_path):
    """Leadership of a partition moves to another node while the old leader stays up (a replica
    reorder, then a preferred election): the old leader drops its share partition, the new
    one loads it from the group's coordinator, and the share consumer carries on from there
    with nothing it acknowledged delivered again."""
    import json
    import subprocess
    from conftest import STROM_BIN
    c = cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap()})
    admin.create_topics([NewTopic("moving", 1, replica_assignment=[[1, 2, 3]])])["moving"].result(30)
    c.wait_for_full_isr("moving", 3)
    assert c.leader("moving", 0) == 1
    consumer = ShareConsumer({"bootstrap.servers": c.bootstrap(), "group.id": "mover", "share.acknowledgement.mode": "explicit"})
    consumer.subscribe(["moving"])
    acknowledged, seen, violations = set(), [], []

    def poll_until(values, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not set(values) <= set(seen):
            msgs = [m for m in consumer.poll(0.2) if m.error() is None]
            for m in msgs:
                if m.offset() in acknowledged:
                    violations.append(f"offset {m.offset()} delivered again after its acknowledgement")
                seen.append(m.value().decode())
                consumer.acknowledge(m)
            if msgs:
                try:
                    results = consumer.commit_sync(15)
                except Exception:
                    continue
                if all(err is None for err in results.values()):
                    acknowledged.update(m.offset() for m in msgs)
        return set(values) - set(seen)

    def send(values):
        p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 5})
        for v in values:
            p.produce("moving", value=v.encode(), partition=0)
        assert p.flush(30) == 0

    def strom(*args):
        r = subprocess.run([STROM_BIN, *args, "--bootstrap-server", c.bootstrap()], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        return r

    try:
        before = [f"a{i}" for i in range(100)]
        send(before)
        assert poll_until(before, 60) == set()
        plan = tmp_path / "reorder.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moving", "partition": 0, "replicas": [2, 1, 3]}]}))
        strom("reassign-partitions", "--execute", "--reassignment-json-file", str(plan))
        c.wait_for("the new replica order", lambda: c.partitions("moving")[0].replicas == [2, 1, 3], 30)
        strom("leader-election", "--election-type", "preferred", "--topic", "moving", "--partition", "0")
        c.wait_for("node 2 leads moving-0", lambda: c.leader("moving", 0) == 2, 30)
        assert c.nodes[1].wait_for_log("dropped a share partition no longer led here", 15), c.nodes[1].log()[-3000:]
        after = [f"b{i}" for i in range(100)]
        send(after)
        assert poll_until(before + after, 90) == set(), c.nodes[2].log()[-3000:]
        end = time.time() + 3
        while time.time() < end:
            poll_until(["never"], 0.5)
        assert violations == [], violations
        assert acknowledged
    finally:
        consumer.close()
