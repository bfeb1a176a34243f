"""Three `strom server` processes as one cluster: the controller quorum (Raft), broker
registration and fencing, partition placement, clients routed to partition leaders, and group
coordination on a replicated `__consumer_offsets`. Faults under a steady replicated workload
are in test_cluster_faults.py.
"""
import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, OffsetAndMetadata
from kafka import TopicPartition as KTopicPartition
from kafka.errors import KafkaTimeoutError

from cluster import Cluster
from conftest import STROM_BIN
from wire import exchange, frame, metadata_with_brokers


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path).start()
    yield c
    c.kill_all()


def metadata(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)


def brokers_seen(bootstrap):
    return sorted(metadata(bootstrap).brokers)


def create(bootstrap, name, partitions, rf=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    f = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=10)
    return f[name].result(timeout=20)


def leaders(bootstrap, topic):
    t = metadata(bootstrap).topics[topic]
    return {p.id: p.leader for p in t.partitions.values()}


def test_three_nodes_form_one_cluster_and_every_node_tells_the_same_story(cluster):
    for node in cluster.nodes.values():
        cluster.wait_for(f"3 brokers seen through {node.bootstrap}", lambda: brokers_seen(node.bootstrap) == [1, 2, 3])
    views = [metadata(n.bootstrap) for n in cluster.nodes.values()]
    assert len({m.cluster_id for m in views}) == 1 and len(views[0].cluster_id) == 22
    # Admin requests go to whichever broker answered (it forwards through the metadata log).
    assert all(m.controller_id in (1, 2, 3) for m in views)
    assert cluster.active_controller() in (1, 2, 3)
    # Each node formatted its own directory and wrote the cluster id it learned.
    for node_id, node in cluster.nodes.items():
        props = dict(l.split("=", 1) for l in open(f"{node.data_dir}/meta.properties").read().split())
        assert props["node.id"] == str(node_id)
        assert props["cluster.id"] == views[0].cluster_id


def test_partitions_spread_over_the_brokers_and_clients_reach_each_leader(cluster):
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    create(cluster.nodes[2].bootstrap, "spread", 6)
    by_leader = {}
    for p, leader in leaders(bs, "spread").items():
        by_leader.setdefault(leader, []).append(p)
    assert sorted(len(v) for v in by_leader.values()) == [2, 2, 2], by_leader

    producer = Producer({"bootstrap.servers": cluster.nodes[1].bootstrap, "acks": "all", "linger.ms": 5})
    sent = {p: [] for p in range(6)}
    for i in range(600):
        value = f"m{i}".encode()
        producer.produce("spread", value=value, partition=i % 6)
        sent[i % 6].append(value)
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": cluster.nodes[3].bootstrap, "group.id": "spread-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition("spread", p, 0) for p in range(6)])
    got = {p: [] for p in range(6)}
    deadline = time.time() + 30
    while sum(map(len, got.values())) < 600 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got[m.partition()].append(m.value())
    consumer.close()
    assert got == sent


def test_replication_factor_is_checked_against_the_live_brokers(cluster):
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    with pytest.raises(KafkaException) as e:
        create(bs, "too-many", 1, rf=4)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value) and "only 3 broker(s)" in str(e.value)
    create(bs, "replicated", 2, rf=3)
    parts = metadata(bs).topics["replicated"].partitions.values()
    assert all(sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3] for p in parts)
    # With a broker gone (fenced), three replicas cannot be placed any more.
    cluster.nodes[3].kill()
    bs = cluster.bootstrap(exclude=(3,))
    cluster.wait_for("broker 3 fenced", lambda: brokers_seen(bs) == [1, 2])
    with pytest.raises(KafkaException) as e:
        create(bs, "replicated-too", 1, rf=3)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value) and "only 2 broker(s)" in str(e.value)


def test_a_killed_broker_is_fenced_and_leads_again_after_its_restart(cluster):
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    create(bs, "fence", 3)
    before = leaders(bs, "fence")
    controller = cluster.wait_for("an active controller", cluster.active_controller)
    victim = next(i for i in (1, 2, 3) if i != controller)
    led = [p for p, l in before.items() if l == victim]
    assert led, before
    cluster.nodes[victim].kill()
    others = cluster.bootstrap(exclude=[victim])
    cluster.wait_for(f"broker {victim} fenced", lambda: brokers_seen(others) == sorted({1, 2, 3} - {victim}))
    # RF=1: nobody else has the data, so its partitions are leaderless (not handed to a replica
    # without the records), and clients get LEADER_NOT_AVAILABLE for them.
    assert all(leaders(others, "fence")[p] == -1 for p in led)
    cluster.nodes[victim].start()
    cluster.wait_for("leaders restored", lambda: leaders(bs, "fence") == before)


def test_leadership_returns_to_the_preferred_replicas_once_a_restarted_broker_is_in_sync(tmp_path):
    c = Cluster(tmp_path, overrides=["leader.imbalance.check.interval.seconds=1"]).start()
    try:
        bs = c.bootstrap()
        c.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
        create(bs, "balanced", 3, rf=3)
        c.wait_for_full_isr("balanced", 3)
        preferred = {p.id: p.replicas[0] for p in metadata(bs).topics["balanced"].partitions.values()}
        assert sorted(preferred.values()) == [1, 2, 3], preferred
        assert leaders(bs, "balanced") == preferred
        victim = preferred[0]
        c.nodes[victim].kill()
        others = c.bootstrap(exclude=[victim])
        c.wait_for(f"partition 0 led elsewhere", lambda: leaders(others, "balanced")[0] not in (-1, victim))
        c.nodes[victim].start()
        # The restarted broker leads nothing until it has caught up and is back in the ISR;
        # then the controller's rebalance hands partition 0 back to it.
        c.wait_for_full_isr("balanced", 3)
        c.wait_for("preferred leaders restored", lambda: leaders(bs, "balanced") == preferred)
    finally:
        c.kill_all()


def test_the_cluster_survives_the_loss_of_its_active_controller(cluster):
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    old = cluster.wait_for("an active controller", cluster.active_controller)
    cluster.nodes[old].kill()
    others = cluster.bootstrap(exclude=[old])
    new = cluster.wait_for("a new active controller", lambda: (c := cluster.active_controller()) not in (old, None) and c)
    assert new != old
    # Until its session times out the old controller is still a registered broker, and new
    # partitions could be placed on it (as in Kafka); wait for its fencing.
    cluster.wait_for(f"broker {old} fenced", lambda: brokers_seen(others) == sorted({1, 2, 3} - {old}))
    create(others, "after-failover", 2)
    assert set(leaders(others, "after-failover").values()) <= {1, 2, 3} - {old}
    # The old controller rejoins as a follower and catches up with what changed meanwhile.
    cluster.nodes[old].start()
    cluster.wait_for("the old controller sees the new topic",
                     lambda: "after-failover" in metadata(cluster.nodes[old].bootstrap).topics)


def test_a_consumer_group_finds_its_coordinator_on_any_node(cluster):
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    create(bs, "grouped", 3)
    producer = Producer({"bootstrap.servers": bs})
    for i in range(30):
        producer.produce("grouped", value=b"v%d" % i, partition=i % 3)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": cluster.nodes[1].bootstrap, "group.id": "g-cluster",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["grouped"])
    n = 0
    deadline = time.time() + 60
    while n < 30 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            n += 1
    assert n == 30
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition("grouped", p) for p in range(3)], timeout=10)
    consumer.close()
    assert sorted(tp.offset for tp in committed) == [10, 10, 10]


def java_hash_partition(group, partitions):
    """Kafka's offsets partition of a group: abs(String.hashCode) % partitions."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (h * 31 + int(unit, 16)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def test_an_offset_commit_is_acknowledged_only_once_the_offsets_partitions_followers_have_it(tmp_path):
    """As a produce with acks=all: with both followers of the group's offsets partition frozen,
    the coordinator cannot get its commit record replicated, so the commit is not acknowledged;
    once they thaw it is, and it survives the SIGKILL of the coordinator."""
    c = Cluster(tmp_path, overrides=["min.insync.replicas=2"]).start()
    try:
        bs = c.bootstrap()
        c.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
        create(bs, "committed", 1, rf=3)
        group = "g-replicated-commit"
        tp = KTopicPartition("committed", 0)

        def consumer():
            return KafkaConsumer(bootstrap_servers=c.bootstrap_live(), group_id=group, enable_auto_commit=False)

        first = consumer()
        first.commit({tp: OffsetAndMetadata(1, "", -1)}, timeout_ms=30000)  # creates and loads __consumer_offsets
        first.close()
        c.wait_for_full_isr("__consumer_offsets", 3)
        index = java_hash_partition(group, 50)
        s = c.partitions("__consumer_offsets")[index]
        followers = [n for n in s.replicas if n != s.leader]
        coordinator = consumer()
        assert coordinator.committed(tp) == 1
        for n in followers:
            c.nodes[n].pause()
        with pytest.raises(KafkaTimeoutError):
            coordinator.commit({tp: OffsetAndMetadata(2, "", -1)}, timeout_ms=4000)
        # Not replicated, so not committed: OffsetFetch does not show it, then or after the
        # coordinator's wait (offsets.commit.timeout.ms) gives up on it.
        assert coordinator.committed(tp) == 1, "OffsetFetch showed a commit that is not replicated"
        for n in followers:
            c.nodes[n].resume()
        c.wait_for_full_isr("__consumer_offsets", 3, timeout=30)
        coordinator.commit({tp: OffsetAndMetadata(3, "", -1)}, timeout_ms=30000)
        coordinator.close()
        c.nodes[s.leader].kill()
        c.wait_for_leader("__consumer_offsets", index, not_in=[s.leader])
        after = consumer()
        try:
            assert after.committed(tp) == 3, "the acknowledged commit is on the new coordinator"
        finally:
            after.close()
    finally:
        c.kill_all()


def run_server(tmp_path, *overrides):
    args = [STROM_BIN, "server", "--override", f"log.dirs={tmp_path}/d", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
            "--override", "http.listeners="]
    for o in overrides:
        args += ["--override", o]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("overrides,message", [
    (["controller.quorum.voters=1@127.0.0.1:1,1@127.0.0.1:2"], "node id 1 appears twice"),
    (["node.id=5", "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2"], "not among the voters"),
    (["controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2"], "controller.listener.names"),
    (["process.roles=broker"], "process.roles"),
])
def test_bad_cluster_configs_stop_the_start_with_a_message_naming_the_key(tmp_path, overrides, message):
    r = run_server(tmp_path, *overrides)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_a_node_whose_quorum_is_unreachable_says_which_voters_and_serves_no_client(tmp_path):
    """Only node 1 of three is started: it cannot found or join a cluster alone, so it keeps
    trying (the others may be on their way, as on a cluster's first start) and says which voters
    it cannot reach. Its client port takes connections but answers nothing until it belongs to
    a cluster: an answer from a node that knows no brokers would mislead the client."""
    c = Cluster(tmp_path)
    node = c.nodes[1].launch()
    try:
        assert node.wait_for_log("waiting for a majority of controller.quorum.voters", timeout=20), node.log()
        log = node.log_since_start()
        for i in (2, 3):
            assert f"{i}@127.0.0.1:{c.controller_ports[i - 1]}" in log, log
        with pytest.raises(TimeoutError):
            exchange(node.bootstrap, frame(18, 0), timeout=1)  # ApiVersions v0
        assert node.running, "the node gave up instead of waiting for its voters"
    finally:
        c.kill_all()


def test_a_data_directory_belongs_to_one_node_id(tmp_path, broker_factory):
    b = broker_factory(data_dir=tmp_path / "d")
    b.stop()
    r = run_server(tmp_path, "node.id=7")
    assert r.returncode != 0
    assert "node.id=1" in r.stderr and "node.id=7" in r.stderr, r.stderr


def test_a_node_whose_disk_was_wiped_rejoins_the_cluster_empty(cluster, tmp_path):
    """The node formats itself again, learns the cluster from the others (it does not found a new
    one: the other voters already have a cluster), and serves again."""
    import shutil
    bs = cluster.bootstrap()
    cluster.wait_for("3 brokers", lambda: brokers_seen(bs) == [1, 2, 3])
    create(bs, "before-wipe", 3)
    cluster_id = metadata(bs).cluster_id
    victim = next(i for i in (1, 2, 3) if i != cluster.active_controller())
    cluster.nodes[victim].kill()
    shutil.rmtree(cluster.nodes[victim].data_dir)
    # Every Metadata answer the node gives, from the first instant it could take a connection,
    # must already know the cluster: from an empty image it would list no brokers and no topics,
    # and librdkafka drops the brokers a Metadata response leaves out (a consumer whose
    # coordinator was dropped never found one again).
    answers, ready = [], threading.Event()

    def probe():
        while not (ready.is_set() and answers):
            try:
                answers.append(metadata_with_brokers(cluster.nodes[victim].bootstrap, None, version=1))
            except OSError:  # not listening yet, or no answer within the timeout
                time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    cluster.nodes[victim].start()
    ready.set()
    prober.join(timeout=30)
    assert answers, "the wiped node never answered Metadata"
    uninformed = [a for a in answers if sorted(a[0]) != [1, 2, 3] or "before-wipe" not in a[1]]
    assert not uninformed, f"{len(uninformed)} of {len(answers)} answers from a node that did not know the cluster yet, e.g. {uninformed[0]}"
    assert cluster.nodes[victim].wait_for_log("joining the existing cluster", timeout=20), cluster.nodes[victim].log()
    node_bs = cluster.nodes[victim].bootstrap
    cluster.wait_for("the wiped node to know the cluster's topics",
                     lambda: "before-wipe" in metadata(node_bs).topics and metadata(node_bs).cluster_id == cluster_id)
    props = dict(l.split("=", 1) for l in open(f"{cluster.nodes[victim].data_dir}/meta.properties").read().split())
    assert props["cluster.id"] == cluster_id
    # It takes part again: the quorum survives losing one of the other two.
    other = next(i for i in (1, 2, 3) if i != victim)
    cluster.nodes[other].kill()
    survivors = cluster.bootstrap(exclude=[other])
    cluster.wait_for("a topic created with the wiped node in the quorum",
                     lambda: create(survivors, "after-wipe", 1) is None)


def test_a_node_with_another_clusters_data_directory_refuses_to_start(tmp_path, broker_factory):
    # A single-node cluster's directory, node id 2, then started as node 2 of a three-node quorum.
    b = broker_factory(overrides=["node.id=2"], data_dir=tmp_path / "d")
    b.stop()
    r = run_server(tmp_path, "node.id=2", "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
                   "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3")
    assert r.returncode != 0
    assert "belongs to a quorum of voters [2]" in r.stderr and "controller.quorum.voters" in r.stderr, r.stderr


def test_strom_cluster_starts_a_local_cluster_in_one_command_and_stops_it(tmp_path):
    import re
    import signal
    from cluster import free_port_ranges, wait_for
    base, cbase, hbase = free_port_ranges(3, 3)
    errors = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([STROM_BIN, "cluster", "--nodes", "3", "--base-port", str(base),
                             "--controller-base-port", str(cbase), "--http-base-port", str(hbase), "--dir", str(tmp_path / "c"),
                             "--override", "broker.session.timeout.ms=3000"],
                            stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        bootstrap, pids = None, []
        deadline = time.time() + 30
        while time.time() < deadline and len(pids) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"^Strom cluster of 3 nodes is ready: bootstrap\.servers=(\S+)", line):
                bootstrap = m.group(1)
            if m := re.search(r"^  node \d: pid (\d+)", line):
                pids.append(int(m.group(1)))
        errors.seek(0)
        assert bootstrap and len(pids) == 3, "no ready line; stderr:\n" + errors.read()[-3000:]
        assert bootstrap == ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        wait_for("3 brokers", lambda: brokers_seen(bootstrap) == [1, 2, 3])
        create(bootstrap, "dev", 3)
        assert sorted(leaders(bootstrap, "dev").values()) == [1, 2, 3]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.count("stopped (exit status: 0)") == 3, out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
