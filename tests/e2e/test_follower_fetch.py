"""KIP-392, fetching from the closest replica: brokers in racks r1, r2, r3 with
`replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector`, and consumers
with `client.rack`. The leader answers a consumer's fetch with `preferred_read_replica` (no
records), the follower in the consumer's rack serves it up to its high watermark, and when that
follower stops the consumer returns to the leader. Without the selector the leader serves all.

Which broker a confluent-kafka consumer fetches a partition from is librdkafka's own statistic
(`statistics.interval.ms`: per partition `broker`, the one fetched from, and `leader`).
"""
import json
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.old import list_offsets as old_list_offsets
from kafka.protocol.old import offset_for_leader_epoch as old_olfe

from cluster import Cluster, wait_for
from wire import call

SELECTOR = "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"
NOT_LEADER_OR_FOLLOWER = 6
TOPIC = "near"


def racked_cluster(tmp_path, overrides=()):
    c = Cluster(tmp_path, overrides=overrides)
    for node_id, b in c.nodes.items():
        b.overrides.append(f"broker.rack=r{node_id}")
    return c.start()


@pytest.fixture
def selector_cluster(tmp_path):
    c = racked_cluster(tmp_path, [SELECTOR])
    yield c
    c.kill_all()


def create_led_by_1(cluster):
    """`near`, one partition on brokers 1, 2, 3 (1 leads, in r1)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    for f in admin.create_topics([NewTopic(TOPIC, 1, replica_assignment=[[1, 2, 3]])], operation_timeout=15).values():
        f.result()
    assert cluster.wait_for_full_isr(TOPIC, 3)[0].leader == 1


def produce(cluster, values):
    p = Producer({"bootstrap.servers": cluster.bootstrap_live(), "acks": "all"})
    for v in values:
        p.produce(TOPIC, value=v.encode())
    assert p.flush(30) == 0


class Fetching:
    """A confluent-kafka consumer in rack r2 reading `near` from the start, with librdkafka's
    view of which broker it fetches the partition from."""

    def __init__(self, cluster):
        self.where = None  # (broker fetched from, leader), from the latest statistics
        self.lock = threading.Lock()
        self.consumer = Consumer({
            "bootstrap.servers": cluster.bootstrap(),
            "group.id": "near-readers",
            "client.rack": "r2",
            "enable.auto.commit": False,
            "statistics.interval.ms": 100,
            "stats_cb": self.on_stats,
            "topic.metadata.refresh.interval.ms": 1000,
        })
        self.consumer.assign([TopicPartition(TOPIC, 0, 0)])
        self.values = []
        # For each record: the broker librdkafka fetched from when it was delivered.
        self.served_by = []

    def on_stats(self, text):
        p = json.loads(text).get("topics", {}).get(TOPIC, {}).get("partitions", {}).get("0")
        if p:
            with self.lock:
                self.where = (p["broker"], p["leader"])

    def read(self, n, timeout=60):
        deadline = time.time() + timeout
        while len(self.values) < n and time.time() < deadline:
            m = self.consumer.poll(0.2)
            if m is None or m.error():
                continue
            self.values.append(m.value().decode())
            with self.lock:
                self.served_by.append(self.where[0] if self.where else None)
        return self.values

    def wait_fetching_from(self, broker, timeout=30):
        def check():
            self.consumer.poll(0.1)
            with self.lock:
                return self.where if self.where and self.where[0] == broker else None
        return wait_for(f"the consumer fetching from broker {broker}", check, timeout)


def test_a_consumer_in_r2_reads_from_the_follower_there_and_back_from_the_leader_when_it_stops(selector_cluster):
    c = selector_cluster
    create_led_by_1(c)
    first = [f"v{i}" for i in range(200)]
    produce(c, first)
    f = Fetching(c)
    try:
        assert f.read(200) == first
        # The leader sent the consumer to broker 2; what arrives now comes from there.
        assert f.wait_fetching_from(2) == (2, 1)
        second = [f"w{i}" for i in range(200)]
        produce(c, second)
        assert f.read(400) == first + second, "complete and in order"
        assert set(f.served_by[200:]) == {2}, "every record of the second half was fetched from the follower in r2"

        # The follower stops: the consumer returns to the leader and still gets everything.
        c.nodes[2].stop()
        third = [f"x{i}" for i in range(200)]
        produce(c, third)
        assert f.read(600, timeout=90) == first + second + third
        assert f.wait_fetching_from(1)[0] == 1
    finally:
        f.consumer.close()


def test_without_a_selector_the_leader_serves_consumers_of_every_rack(tmp_path):
    c = racked_cluster(tmp_path)
    try:
        create_led_by_1(c)
        values = [f"v{i}" for i in range(100)]
        produce(c, values)
        f = Fetching(c)
        try:
            assert f.read(100) == values
            assert f.wait_fetching_from(1) == (1, 1)
            more = [f"w{i}" for i in range(100)]
            produce(c, more)
            assert f.read(200) == values + more
            # Several statistics intervals (served from poll): a redirect would show by now.
            end = time.time() + 1.5
            while time.time() < end:
                f.consumer.poll(0.1)
            assert f.where == (1, 1)
            assert set(f.served_by[100:]) == {1}
        finally:
            f.consumer.close()
    finally:
        c.kill_all()


def fetch_v11(bootstrap, rack, version=11, offset=0):
    """One consumer Fetch of `near`-0; (error, high watermark, preferred read replica, record bytes)."""
    T, FP = FetchRequest.FetchTopic, FetchRequest.FetchTopic.FetchPartition
    kw = {"rack_id": rack} if version >= 11 else {}
    req = FetchRequest(version=version, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                       isolation_level=0, session_id=0, session_epoch=-1,
                       topics=[T(topic=TOPIC, partitions=[FP(partition=0, current_leader_epoch=-1, fetch_offset=offset,
                                                               last_fetched_epoch=-1, log_start_offset=-1,
                                                               partition_max_bytes=1 << 20)])],
                       forgotten_topics_data=[], **kw)
    resp = call(bootstrap, req)
    [t] = resp.responses
    [p] = t.partitions
    preferred = getattr(p, "preferred_read_replica", None)
    return p.error_code, p.high_watermark, preferred, len(bytes(p.records or b""))


def test_the_wire_answers(selector_cluster):
    c = selector_cluster
    create_led_by_1(c)
    produce(c, [f"v{i}" for i in range(10)])
    leader, follower = c.nodes[1].bootstrap, c.nodes[2].bootstrap
    # The leader sends a consumer in r2 to broker 2, with its offsets and no records, ...
    assert fetch_v11(leader, "r2") == (0, 10, 2, 0)
    # ... serves one in its own rack, one without a rack, one in a rack without replicas.
    for rack in ("r1", "", "r9"):
        err, hw, preferred, size = fetch_v11(leader, rack)
        assert (err, hw, preferred) == (0, 10, -1) and size > 0, rack
    # The follower serves a Fetch v11+ from a consumer (up to its high watermark), ...
    def caught_up():
        err, hw, preferred, size = fetch_v11(follower, "r2")
        return (err, hw, preferred) == (0, 10, -1) and size > 0
    wait_for("the follower's high watermark at 10", caught_up, 10)
    # ... but not an older one (no rack: the consumer reads from leaders only), nor a consumer's
    # ListOffsets or OffsetForLeaderEpoch, which Kafka answers on the leader only.
    assert fetch_v11(follower, None, version=10)[0] == NOT_LEADER_OR_FOLLOWER
    resp = call(follower, old_list_offsets.ListOffsetsRequest_v1(replica_id=-1, topics=[(TOPIC, [(0, -1)])]),
                old_list_offsets.ListOffsetsResponse_v1)
    assert resp.topics[0][1][0][1] == NOT_LEADER_OR_FOLLOWER
    # The debugging replica id (-2) is answered by any replica: the follower's log end.
    resp = call(follower, old_list_offsets.ListOffsetsRequest_v1(replica_id=-2, topics=[(TOPIC, [(0, -1)])]),
                old_list_offsets.ListOffsetsResponse_v1)
    assert resp.topics[0][1][0][1:] == (0, -1, 10), resp.topics
    epoch_end = old_olfe.OffsetForLeaderEpochRequest_v3(replica_id=-1, topics=[(TOPIC, [(0, -1, 0)])])
    assert call(follower, epoch_end, old_olfe.OffsetForLeaderEpochResponse_v3).topics == [(TOPIC, [(NOT_LEADER_OR_FOLLOWER, 0, -1, -1)])]
    assert call(leader, epoch_end, old_olfe.OffsetForLeaderEpochResponse_v3).topics == [(TOPIC, [(0, 0, 0, 10)])]
