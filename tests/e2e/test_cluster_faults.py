"""Faults injected into a replicated cluster while real clients produce and consume.

Every test: a cluster of separate `strom server` processes on loopback (three nodes, five in
one test), started as the README's three-node example (examples/cluster/node<i>.properties,
only ports, data directories and timeouts overridden), a topic of 3 partitions created with the
broker defaults those files set (replication factor 3, min.insync.replicas=2), and a
`checker.Workload`: an idempotent acks=all producer writing numbered records at a steady rate
and a consumer group reading them. After ~3 s of traffic the fault is injected, traffic goes on
through it, failed nodes come back where the scenario says so, and once every partition has
its three replicas in sync again the workload stops and the checker compares what was
acknowledged with what was read:

- no acknowledged record is lost, moved to another offset, or replaced at its offset;
- per-partition order is kept; duplicates in the log are counted (re-reads by the group are
  at-least-once and allowed);
- the consumer read records produced after the fault and caught up with every acknowledged one
  (consumers continue), and records were acknowledged after the fault (producers continue);
- a partition whose leader died or froze has a new leader, agreed on by every live node, within
  a few seconds (a generous bound; the leader-kill test prints the failover time as a client
  sees it, a figure, not an assertion);
- afterwards the replicas of each partition hold byte-identical logs (a follower in the ISR
  that lacked the leader's data would lose records at the next failover).

The summary line each test prints (pytest -s) says what was verified, e.g.
`acked=2814 read=2814 lost=0 duplicated=0 reordered=0 moved=0 divergent=0 (...)`.
"""
import os
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, TopicPartition

from checker import Workload
from cluster import Cluster

TOPIC = "faults"
PARTITIONS = 3
RF = 3
SESSION_TIMEOUT_S = 3.0  # broker.session.timeout.ms in cluster.py
RATE = 300           # records/s, over all partitions
WARMUP_S = 3         # traffic before the fault
MIN_ACKED = 500      # a run that acknowledged less than this did not really test anything
NEW_LEADER_WITHIN_S = 15


class Scenario:
    """One test's cluster and workload; teardown stops the workload, then every process."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.cluster = None
        self.workload = None

    def start(self, n=3):
        """Starts the cluster, creates the topic, waits for its full ISR, starts the workload and
        lets it run WARMUP_S. Returns (cluster, workload)."""
        c = self.cluster = Cluster(self.tmp_path, n=n, readme_configs=True).start()
        bs = c.bootstrap()
        c.wait_for(f"{n} brokers", lambda: sorted(AdminClient({"bootstrap.servers": bs}).list_topics(timeout=5).brokers)
                   == list(range(1, n + 1)))
        admin = AdminClient({"bootstrap.servers": bs})
        # No replication factor or min.insync.replicas: the README's config files set them.
        f = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS)], operation_timeout=10)
        f[TOPIC].result(timeout=20)
        c.wait_for_full_isr(TOPIC, RF)  # checks the replication factor, too
        w = self.workload = Workload(bs, TOPIC, partitions=PARTITIONS, rate=RATE).start()
        w.wait_until_reading()
        time.sleep(WARMUP_S)
        return c, w

    def finish(self, fault_at):
        """Waits for the full ISR, stops the workload, checks, prints and asserts. Returns the report."""
        c, w = self.cluster, self.workload
        c.wait_for_full_isr(TOPIC, RF, timeout=30)
        w.stop()
        r = w.report(since=fault_at)
        print(f"\n{r['summary']}\n{r['details']}")
        msg = f"{r['summary']}\n{r['details']}\n{self.node_logs()}"
        assert r["fatal"] is None, f"the producer hit a fatal error: {r['fatal']}\n{msg}"
        assert r["acked"] >= MIN_ACKED, msg
        assert r["final_complete"], "the final read did not reach the high watermark of every partition\n" + msg
        assert r["lost"] == 0, msg
        assert r["moved"] == 0 and r["divergent"] == 0, msg
        assert r["reordered"] == 0, msg
        assert r["stored_twice"] == 0, "an idempotent producer's record is in the log twice\n" + msg
        assert r["acked_after"] > 0, "nothing acknowledged after the fault (producers continue)\n" + msg
        assert r["read_after"] > 0 and r["unread"] == 0, "the consumer did not catch up (consumers continue)\n" + msg
        self.assert_replicas_identical()
        return r

    def node_logs(self, chars=6000):
        """The end of each node's log, without the per-partition noise, for a failure message."""
        noise = ("openraft", "opened partition", "loaded the groups", "leading topic=__consumer",
                 "no longer coordinating", "ISR changed topic=__consumer")
        return "\n".join(f"--- node {i} ---\n" + "".join(l for l in b.log_lines if not any(n in l for n in noise))[-chars:]
                         for i, b in self.cluster.nodes.items())

    def assert_replicas_identical(self, timeout=15):
        c = self.cluster
        state = c.partitions(TOPIC)

        def identical():
            return all(len({c.replica_log(n, TOPIC, p) for n in s.replicas}) == 1 for p, s in state.items())
        try:
            c.wait_for("identical replica logs", identical, timeout)
        except AssertionError:
            sizes = {p: {n: len(c.replica_log(n, TOPIC, p)) for n in s.replicas} for p, s in state.items()}
            raise AssertionError(f"replica logs differ after the ISR was full again; bytes per node: {sizes}") from None

    def close(self):
        if self.workload:
            self.workload.close()
        if self.cluster:
            self.cluster.kill_all()


@pytest.fixture
def scenario(tmp_path):
    s = Scenario(tmp_path)
    yield s
    s.close()


def not_controller(c, candidates):
    """The first of `candidates` that is not the active controller (a fault on one role at a time)."""
    ctrl = c.active_controller()
    return next((n for n in candidates if n != ctrl), candidates[0])


def test_sigkill_of_a_partition_leader(scenario):
    c, w = scenario.start()
    old = c.leader(TOPIC, 0)
    c.nodes[old].kill()
    killed = w.mark()
    new = c.wait_for_leader(TOPIC, 0, not_in=[old], timeout=NEW_LEADER_WITHIN_S)
    elected = time.monotonic() - killed
    time.sleep(5)
    failover = w.first_ack_after(killed, partition=0)
    print(f"\nleader {old} of {TOPIC}-0 SIGKILLed: node {new} leads after {elected:.2f} s (Metadata), "
          f"first acknowledged produce on it after {failover if failover is None else round(failover, 2)} s")
    assert failover is not None and failover < 30, f"no produce to {TOPIC}-0 acknowledged after the kill"
    c.nodes[old].start()
    scenario.finish(killed)


def test_sigkill_of_a_follower(scenario):
    c, w = scenario.start()
    s = c.partitions(TOPIC)[0]
    follower = not_controller(c, [n for n in s.replicas if n != s.leader])
    c.nodes[follower].kill()
    killed = w.mark()
    # The leader stays; the dead follower leaves the ISR (fenced after the session timeout), so
    # acks=all goes on with the two that remain (min.insync.replicas=2).
    c.wait_for(f"{follower} out of the ISR of {TOPIC}-0", lambda: follower not in c.partitions(TOPIC)[0].isr,
               timeout=NEW_LEADER_WITHIN_S)
    assert c.leader(TOPIC, 0) == s.leader
    time.sleep(4)
    assert w.acked_on(0, killed + SESSION_TIMEOUT_S + 1), "no acks on partition 0 with 2 of 3 replicas in sync"
    c.nodes[follower].start()
    scenario.finish(killed)


def test_sigkill_of_the_active_controller(scenario):
    c, w = scenario.start()
    old = c.wait_for("an active controller", c.active_controller)
    c.nodes[old].kill()
    killed = w.mark()
    c.wait_for("a new active controller", lambda: (n := c.active_controller()) not in (None, old) and n,
               timeout=NEW_LEADER_WITHIN_S)
    # It led partitions too: they fail over (and the group coordinator, if it was there, moves).
    for p, s in c.partitions(TOPIC).items():
        if s.leader in (old, -1):
            c.wait_for_leader(TOPIC, p, not_in=[old], timeout=NEW_LEADER_WITHIN_S)
    time.sleep(3)
    c.nodes[old].start()
    scenario.finish(killed)


@pytest.mark.parametrize("role", ["leader", "controller"])
def test_sigstop_then_sigcont_of_a_partition_leader(scenario, role):
    """A frozen leader (longer than the session timeout) is replaced; when it thaws it still
    believes it leads for a moment and must not acknowledge anything alone, then it follows.
    As `controller`, the frozen node is also the active controller: its successor must not
    fence the live brokers whose heartbeats were stuck on it, and when it thaws its stale view
    of who is alive must not fence anyone either."""
    c, w = scenario.start()
    ctrl = c.active_controller()
    parts = c.partitions(TOPIC)
    pick = (lambda s: s.leader == ctrl) if role == "controller" else (lambda s: s.leader != ctrl)
    index = next(p for p, s in parts.items() if pick(s))  # leaders are spread: one of each exists
    old = c.leader(TOPIC, index)
    c.nodes[old].pause()
    paused = w.mark()
    new = c.wait_for_leader(TOPIC, index, not_in=[old], timeout=NEW_LEADER_WITHIN_S)
    time.sleep(max(0.0, paused + SESSION_TIMEOUT_S + 2 - time.monotonic()))
    print(f"\nleader {old} of {TOPIC}-{index} ({role}) paused {time.monotonic() - paused:.1f} s; node {new} took over")
    c.nodes[old].resume()
    time.sleep(4)
    scenario.finish(paused)


def test_full_cluster_restart(scenario):
    """Every node SIGKILLed at once, then all started again: acknowledged records were in at
    least two replicas' page cache, and survive."""
    c, w = scenario.start()
    c.kill_all()
    killed = w.mark()
    time.sleep(1)
    c.start()
    for p in range(PARTITIONS):
        c.wait_for_leader(TOPIC, p, timeout=NEW_LEADER_WITHIN_S + 10)
    time.sleep(5)
    scenario.finish(killed)


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_a_broker_whose_disk_was_wiped_rejoins_empty_and_catches_up(scenario, role):
    """A node is SIGKILLed, its data directory removed, and it is started again at once (within
    the session timeout, so the controller may not have fenced it yet). Empty, it must not lead
    nor count as in sync until it has fetched everything again; then it rejoins every ISR and its
    logs equal the leaders'. The active controller is left alone (a wiped voter is covered by
    test_cluster.py)."""
    c, w = scenario.start()
    state = c.partitions(TOPIC)
    if role == "leader":
        # Each node leads one of the three partitions: wipe a leader that is not the controller.
        victim = not_controller(c, [s.leader for s in state.values()])
    else:
        s = state[0]
        victim = not_controller(c, [n for n in s.replicas if n != s.leader])
    c.nodes[victim].kill()
    c.nodes[victim].wipe()
    wiped = w.mark()
    c.nodes[victim].start()
    # No wait for another leader here: once caught up, the node may rightly lead again (its
    # preferred partitions) before a poll would see the interim leader. Had it led while empty,
    # the checker finds the records it did not have lost or replaced.
    time.sleep(6)
    r = scenario.finish(wiped)
    assert sum(len(c.replica_log(victim, TOPIC, p)) for p in range(PARTITIONS)) > 0, r["summary"]


def test_five_brokers_lose_two_replicas_of_a_partition_one_after_another(scenario):
    """Five nodes (a quorum of five survives two losses). Partition 0's leader is SIGKILLed,
    then its successor: one replica of three is left, so with min.insync.replicas=2 that
    partition refuses acks=all (NOT_ENOUGH_REPLICAS, which the producer retries) and nothing may
    be acknowledged on it until a second replica is back; then both return and catch up."""
    c, w = scenario.start(n=5)
    first = c.leader(TOPIC, 0)
    c.nodes[first].kill()
    first_at = w.mark()
    second = c.wait_for_leader(TOPIC, 0, not_in=[first], timeout=NEW_LEADER_WITHIN_S)
    time.sleep(2)
    c.nodes[second].kill()
    second_at = w.mark()
    last = c.wait_for_leader(TOPIC, 0, not_in=[first, second], timeout=NEW_LEADER_WITHIN_S)
    assert last in c.partitions(TOPIC)[0].replicas
    time.sleep(3)
    back_at = w.mark()
    alone = w.acked_on(0, second_at + 1.0, back_at)
    assert not alone, f"{len(alone)} records acknowledged on {TOPIC}-0 with only node {last} alive, e.g. {alone[:3]}"
    c.start([first, second])
    scenario.finish(first_at)


def test_a_partition_moves_to_other_brokers_while_traffic_flows(scenario):
    """AlterPartitionReassignments (kafka-python's admin client, as kafka-reassign-partitions.sh
    would send it): partition 0 moves off its leader onto the fourth broker under acks=all
    traffic; the new replica catches up, the old leader hands over and drops its copy."""
    c, w = scenario.start(n=4)
    s = c.partitions(TOPIC)[0]
    spare = next(n for n in c.nodes if n not in s.replicas)
    target = [spare] + [r for r in s.replicas if r != s.leader]
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap())
    try:
        moved = w.mark()
        tp = TopicPartition(TOPIC, 0)
        assert admin.alter_partition_reassignments({tp: target}) == {tp: None}
        c.wait_for("the reassignment to complete",
                   lambda: not admin.list_partition_reassignments()
                   and sorted(c.partitions(TOPIC)[0].replicas) == sorted(target), timeout=30)
        assert c.wait_for_leader(TOPIC, 0, not_in=[s.leader]) in target
        c.wait_for(f"node {s.leader} to delete its copy",
                   lambda: not os.path.isdir(os.path.join(c.nodes[s.leader].data_dir, f"{TOPIC}-0")))
        time.sleep(2)
        # Cancelling when nothing moves is Kafka's NO_REASSIGNMENT_IN_PROGRESS.
        err = admin.alter_partition_reassignments({tp: None})[tp]
        assert err is not None and err.__name__ == "NoReassignmentInProgressError", err
    finally:
        admin.close()
    scenario.finish(moved)
