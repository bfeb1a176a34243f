"""KIP-73 replication throttles on a three-node cluster: `strom reassign-partitions --execute
--throttle N` sets the two rates and the topic's throttled-replica lists as Kafka's tool does, the
new replica then copies at no more than N bytes per second (measured from its log on disk: the
rate is asserted, not a duration), the reassignment completes, and `--verify` clears the
throttle.

The rates are Kafka's: measured over `replication.quota.window.num` (11) windows of a second,
so a throttled copy goes in bursts of about ten seconds' worth, and each read may carry up to a
whole fetch (1 MiB) past the bound; the assertions leave room for exactly that."""
import os
import subprocess
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from cluster import Cluster, wait_for
from conftest import STROM_BIN

RATE = 400_000
FETCH = 1 << 20
TOTAL = 12_000_000


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def replica_bytes(c, node_id, topic, partition):
    """Bytes of the replica's segment files on the node's disk (0 before it exists)."""
    d = os.path.join(c.nodes[node_id].data_dir, f"{topic}-{partition}")
    if not os.path.isdir(d):
        return 0
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".log"))


def configs(admin, kind, name):
    r = ConfigResource(kind, name)
    return {k: e.value for k, e in admin.describe_configs([r])[r].result(timeout=15).items()}


def metric(node, name, labels):
    text = urllib.request.urlopen(f"http://{node.http}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_throttled_reassignment_copies_at_the_rate_then_verify_clears_it(tmp_path):
    c = Cluster(tmp_path, 3).start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_live()})
        admin.create_topics([NewTopic("thr", 1, replica_assignment=[[1]])])["thr"].result(timeout=15)
        c.wait_for_full_isr("thr", 1)
        p = Producer({"bootstrap.servers": c.bootstrap_live(), "acks": "all", "linger.ms": 20})
        value = os.urandom(10_000)
        for _ in range(TOTAL // len(value)):
            p.produce("thr", value, partition=0)
            p.poll(0)
        assert p.flush(60) == 0
        total = replica_bytes(c, 1, "thr", 0)
        assert total >= TOTAL

        plan = tmp_path / "plan.json"
        plan.write_text('{"version":1,"partitions":[{"topic":"thr","partition":0,"replicas":[2]}]}')
        started = time.monotonic()
        r = strom("reassign-partitions", "--bootstrap-server", c.bootstrap_live(), "--execute",
                  "--reassignment-json-file", str(plan), "--throttle", str(RATE))
        assert r.returncode == 0, r
        assert "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.\n" in r.stdout
        assert f"The inter-broker throttle limit was set to {RATE} B/s\n" in r.stdout
        assert r.stdout.endswith("Successfully started partition reassignment for thr-0\n"), r.stdout
        # What Kafka's tool sets: the source replica for the leader, the added one for followers.
        topic_configs = configs(admin, ConfigResource.Type.TOPIC, "thr")
        assert topic_configs["leader.replication.throttled.replicas"] == "0:1"
        assert topic_configs["follower.replication.throttled.replicas"] == "0:2"
        for node in (1, 2, 3):
            b = configs(admin, ConfigResource.Type.BROKER, str(node))
            assert b["leader.replication.throttled.rate"] == str(RATE)
            assert b["follower.replication.throttled.rate"] == str(RATE)

        # The copy's progress on node 2's disk, until it has everything.
        samples = []
        deadline = time.time() + 5 * TOTAL / RATE
        while time.time() < deadline:
            samples.append((time.monotonic() - started, replica_bytes(c, 2, "thr", 0)))
            if samples[-1][1] >= total:
                break
            time.sleep(0.25)
        assert samples[-1][1] >= total, f"the copy stalled: {samples[-5:]}"
        # Kafka's rate is measured over the 11 windows of a second that are kept, and never over
        # less than 10 of them; a window is forgotten once 11 s old. So the copy goes in bursts:
        # about ten seconds' worth plus the fetch that crosses the bound, then nothing until that
        # is forgotten. Whatever the bursts, by any moment t the copy has at most t seconds of the
        # rate, one span's allowance and one fetch per span begun: the rate is bounded (by the
        # throttle and a fetch per 11 s). And it is no crawl.
        def allowed(t):
            return RATE * (t + 11) + FETCH * (int(t // 11) + 1)
        for t, b in samples:
            assert b <= allowed(t), f"{b} bytes copied {t:.1f} s into a {RATE} B/s throttle: {samples}"
        took = samples[-1][0]
        assert total / took >= 0.3 * RATE, f"{total} bytes took {took:.1f} s under a {RATE} B/s throttle"
        # Both sides counted the throttled bytes.
        assert metric(c.nodes[1], "strom_replication_throttled_bytes_total", 'side="leader"') >= total - FETCH
        assert metric(c.nodes[2], "strom_replication_throttled_bytes_total", 'side="follower"') >= total - FETCH

        def verified():
            v = strom("reassign-partitions", "--bootstrap-server", c.bootstrap_live(), "--verify", "--reassignment-json-file", str(plan))
            assert v.returncode == 0, v
            return v.stdout if "still in progress" not in v.stdout else None
        out = wait_for("the reassignment to complete", verified, timeout=60)
        assert out == ("Status of partition reassignment:\nReassignment of partition thr-0 is completed.\n\n"
                       "Clearing broker-level throttles on brokers 1,2,3\n"
                       "Clearing topic-level throttles on topic thr\n"), out
        assert c.wait_for_full_isr("thr", 1)[0].replicas == [2]
        topic_configs = configs(admin, ConfigResource.Type.TOPIC, "thr")
        assert topic_configs["leader.replication.throttled.replicas"] == ""
        assert topic_configs["follower.replication.throttled.replicas"] == ""
        b = configs(admin, ConfigResource.Type.BROKER, "1")
        assert b["leader.replication.throttled.rate"] == str(2**63 - 1)
        assert b["follower.replication.throttled.rate"] == str(2**63 - 1)
    finally:
        c.kill_all()


def test_throttled_replica_lists_are_checked_as_kafka_checks_them(tmp_path):
    c = Cluster(tmp_path, 1).start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_live()})
        admin.create_topics([NewTopic("lists", 2, 1, config={"leader.replication.throttled.replicas": "*"})])["lists"].result(timeout=15)
        assert configs(admin, ConfigResource.Type.TOPIC, "lists")["leader.replication.throttled.replicas"] == "*"
        bad = admin.create_topics([NewTopic("bad", 1, 1, config={"follower.replication.throttled.replicas": "0-1"})])["bad"]
        try:
            bad.result(timeout=15)
            raise AssertionError("a malformed throttled-replica list was accepted")
        except Exception as e:  # noqa: BLE001 - the KafkaException carries the broker's error
            assert "INVALID_CONFIG" in str(e) or "partition:brokerId" in str(e), e
        # A topic-only key is no broker config: a broker refuses it in its properties.
        r = strom("server", "--override", "leader.replication.throttled.replicas=*", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                  "--override", f"log.dirs={tmp_path / 'x'}", timeout=30)
        assert r.returncode != 0 and "leader.replication.throttled.replicas" in r.stderr, r
    finally:
        c.kill_all()
