"""The operators' admin APIs and tools on a three-node cluster: preferred and unclean leader
elections (confluent-kafka's AdminClient.elect_leaders and `strom leader-election`), partition
reassignment with Kafka's JSON files (`strom reassign-partitions --generate/--execute/--verify/
--list/--cancel`), the controller quorum from any node (`strom metadata-quorum`, kafka-python's
describe_metadata_quorum) and every broker's log directory (`strom log-dirs`)."""
import json
import os
import re
import subprocess
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, ElectionType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

from cluster import Cluster, wait_for
from conftest import STROM_BIN


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def create(c, name, assignment, **configs):
    admin = AdminClient({"bootstrap.servers": c.bootstrap_live()})
    admin.create_topics([NewTopic(name, len(assignment), replica_assignment=assignment, config=configs)])[name].result(timeout=15)


def produce(c, topic, values, partition=0):
    p = Producer({"bootstrap.servers": c.bootstrap_live(), "acks": "all"})
    for v in values:
        p.produce(topic, v, partition=partition)
    assert p.flush(20) == 0


def consume_all(c, topic, partitions, n, timeout=30):
    """Every record of the topic's partitions, read by assignment (no group: a group's
    coordinator may be out of reach in these tests)."""
    cons = Consumer({"bootstrap.servers": c.bootstrap_live(), "group.id": "unused", "enable.auto.commit": False})
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = cons.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    # A little longer: nothing beyond the n expected may arrive.
    end = time.time() + 1
    while time.time() < end:
        m = cons.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
    cons.close()
    return got


def test_preferred_elections_give_the_first_replica_its_leadership_back(tmp_path):
    c = Cluster(tmp_path, 3).start()
    try:
        create(c, "pref", [[1, 2, 3], [1, 3, 2]])
        c.wait_for_full_isr("pref", 3)
        assert c.leader("pref", 0) == 1 and c.leader("pref", 1) == 1
        # A clean stop hands node 1's leadership over; back and in sync, it does not lead (the
        # periodic rebalance is 300 s away).
        c.nodes[1].stop()
        c.wait_for_leader("pref", 0, not_in=[1])
        c.nodes[1].start()
        c.wait_for_full_isr("pref", 3)
        assert c.leader("pref", 0) != 1 and c.leader("pref", 1) != 1
        admin = AdminClient({"bootstrap.servers": c.bootstrap_live()})
        result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(timeout=20)
        assert {(tp.topic, tp.partition): err for tp, err in result.items()} == {("pref", 0): None}
        c.wait_for("node 1 leads pref-0 on every node", lambda: all(v[0].leader == 1 for v in c.views("pref").values()))
        # The tool, for every partition that needs it: only pref-1 does now.
        r = strom("leader-election", "--bootstrap-server", c.bootstrap_live(), "--election-type", "preferred", "--all-topic-partitions")
        assert (r.returncode, r.stdout) == (0, "Successfully completed leader election (PREFERRED) for partitions pref-1\n"), r
        c.wait_for("node 1 leads pref-1", lambda: c.leader("pref", 1) == 1)
        election = tmp_path / "election.json"
        election.write_text(json.dumps({"partitions": [{"topic": "pref", "partition": 0}, {"topic": "pref", "partition": 1}]}))
        r = strom("leader-election", "--bootstrap-server", c.bootstrap_live(), "--election-type", "PREFERRED", "--path-to-json-file", str(election))
        assert (r.returncode, r.stdout) == (0, "Valid replica already elected for partitions pref-0, pref-1\n"), r
    finally:
        c.kill_all()


def test_an_unclean_election_brings_back_a_partition_whose_isr_is_gone(tmp_path):
    c = Cluster(tmp_path, 3).start()
    try:
        create(c, "unc", [[2, 3]], **{"min.insync.replicas": "1"})
        c.wait_for_full_isr("unc", 2)
        produce(c, "unc", [b"both-%d" % i for i in range(10)])
        c.nodes[3].stop()  # leaves the ISR
        c.wait_for("3 out of the ISR", lambda: c.partitions("unc")[0].isr == [2])
        produce(c, "unc", [b"only-2-%d" % i for i in range(10)])
        c.nodes[2].kill()
        c.nodes[3].start()
        # Node 2, the last in-sync replica, is fenced: no leader, and 3 may not lead cleanly.
        c.wait_for("no leader for unc-0", lambda: c.partitions("unc")[0].leader == -1)
        bs = c.bootstrap_live()
        r = strom("leader-election", "--bootstrap-server", bs, "--election-type", "preferred", "--topic", "unc", "--partition", "0")
        assert r.returncode == 1, r
        assert r.stdout == ("Error completing leader election (PREFERRED) for partition: unc-0: "
                            "PREFERRED_LEADER_NOT_AVAILABLE: The preferred leader was not available.\n"), r
        r = strom("leader-election", "--bootstrap-server", bs, "--election-type", "unclean", "--topic", "unc", "--partition", "0")
        assert (r.returncode, r.stdout) == (0, "Successfully completed leader election (UNCLEAN) for partitions unc-0\n"), r
        state = c.wait_for("3 leads unc-0 alone", lambda: (s := c.partitions("unc")[0]).leader == 3 and s.isr == [3] and s)
        assert state.replicas == [2, 3]
        # What only node 2 had is lost, as an unclean election loses it; the rest is served.
        assert sorted(consume_all(c, "unc", 1, 10)) == sorted(b"both-%d" % i for i in range(10))
        r = strom("leader-election", "--bootstrap-server", bs, "--election-type", "unclean", "--topic", "unc", "--partition", "0")
        assert (r.returncode, r.stdout) == (0, "Valid replica already elected for partitions unc-0\n"), r
    finally:
        c.kill_all()


def reassign(c, *args):
    return strom("reassign-partitions", "--bootstrap-server", c.bootstrap_live(), *args)


def test_reassign_partitions_generates_executes_verifies_and_cancels(tmp_path):
    # A long session: a paused broker stays registered and unfenced (a valid target) below.
    c = Cluster(tmp_path, 3, overrides=["broker.session.timeout.ms=60000"]).start()
    try:
        create(c, "mv", [[1, 2], [2, 1]])
        c.wait_for_full_isr("mv", 2)
        values = [b"r%d" % i for i in range(20)]
        produce(c, "mv", values[:10], partition=0)
        produce(c, "mv", values[10:], partition=1)
        topics = tmp_path / "topics.json"
        topics.write_text('{"topics": [{"topic": "mv"}], "version": 1}')
        r = reassign(c, "--generate", "--topics-to-move-json-file", str(topics), "--broker-list", "2,3")
        assert r.returncode == 0 and r.stderr == "", r
        lines = r.stdout.splitlines()
        assert lines[0] == "Current partition replica assignment" and lines[2] == "" and lines[3] == "Proposed partition reassignment configuration"
        current = ('{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},'
                   '{"topic":"mv","partition":1,"replicas":[2,1],"log_dirs":["any","any"]}]}')
        assert lines[1] == current
        proposed = json.loads(lines[4])
        assert [(p["topic"], p["partition"]) for p in proposed["partitions"]] == [("mv", 0), ("mv", 1)]
        assert all(sorted(p["replicas"]) == [2, 3] for p in proposed["partitions"]), proposed
        plan = tmp_path / "plan.json"
        plan.write_text(lines[4])

        r = reassign(c, "--execute", "--reassignment-json-file", str(plan), "--throttle", "1000000")
        assert r.returncode == 0, r
        assert r.stdout.startswith(f"Current partition replica assignment\n\n{current}\n\n"
                                   "Save this to use as the --reassignment-json-file option during rollback\n"), r.stdout
        # The throttle is set as Kafka's tool sets it (test_replication_throttle.py measures it).
        assert "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.\n" in r.stdout
        assert "The inter-broker throttle limit was set to 1000000 B/s\n" in r.stdout
        assert r.stdout.endswith("Successfully started partition reassignments for mv-0,mv-1\n"), r.stdout

        def verified():
            v = reassign(c, "--verify", "--reassignment-json-file", str(plan))
            assert v.returncode == 0, v
            return v.stdout if "still in progress" not in v.stdout else None
        out = wait_for("the reassignment to complete", verified, timeout=60)
        assert out == ("Status of partition reassignment:\nReassignment of partition mv-0 is completed.\n"
                       "Reassignment of partition mv-1 is completed.\n\n"
                       "Clearing broker-level throttles on brokers 1,2,3\nClearing topic-level throttles on topic mv\n"), out
        parts = c.wait_for_full_isr("mv", 2)
        assert {i: p.replicas for i, p in parts.items()} == {p["partition"]: p["replicas"] for p in proposed["partitions"]}
        assert sorted(consume_all(c, "mv", 2, 20)) == sorted(values)
        assert reassign(c, "--list").stdout == "No partition reassignments found.\n"

        # A move onto a frozen broker cannot finish: listed, verified as in progress, refused a
        # second --execute without --additional, then cancelled.
        c.nodes[1].pause()
        stuck = tmp_path / "stuck.json"
        stuck.write_text('{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[1,2]}]}')
        r = reassign(c, "--execute", "--reassignment-json-file", str(stuck))
        assert r.returncode == 0 and r.stdout.endswith("Successfully started partition reassignment for mv-0\n"), r
        listed = reassign(c, "--list").stdout
        assert re.fullmatch(r"Current partition reassignments:\nmv-0: replicas: [123],[123],[123]\. adding: 1\. removing: 3\.\n", listed), listed
        r = reassign(c, "--execute", "--reassignment-json-file", str(stuck))
        assert r.returncode == 1 and "Cannot execute because there is an existing partition assignment." in r.stderr, r
        r = reassign(c, "--verify", "--reassignment-json-file", str(stuck))
        assert r.stdout == "Status of partition reassignment:\nReassignment of partition mv-0 is still in progress.\n\n", r
        r = reassign(c, "--cancel", "--reassignment-json-file", str(stuck))
        # As Kafka's tool prints it: the throttles are cleared right after the unterminated line.
        clearing = "Clearing broker-level throttles on brokers 1,2,3\nClearing topic-level throttles on topic mv\n"
        assert (r.returncode, r.stdout) == (0, "Successfully cancelled partition reassignment for: mv-0\n"
                                               "None of the specified partition moves are active." + clearing), r
        r = reassign(c, "--verify", "--reassignment-json-file", str(stuck))
        before = ",".join(map(str, proposed["partitions"][0]["replicas"]))
        assert re.fullmatch(r"Status of partition reassignment:\nThere is no active reassignment of partition mv-0, "
                            r"but replica set is [23],[23] rather than 1,2\.\n\n" + re.escape(clearing), r.stdout), r
        assert sorted(r.stdout.split("replica set is ")[1].split(" ")[0].split(",")) == sorted(before.split(","))
        r = reassign(c, "--cancel", "--reassignment-json-file", str(stuck))
        assert r.stdout == "None of the specified partition reassignments are active.\nNone of the specified partition moves are active." + clearing

        # Bad files: Kafka's checks, before anything is sent.
        bad = tmp_path / "bad.json"
        for text, message in [('{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[9,2]}]}', "Unknown broker id 9"),
                              ('{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[2,2]}]}',
                               "Partition replica lists may not contain duplicate entries: mv-0 contains multiple entries for 2"),
                              ('{"version":1,"partitions":[]}', "Partition reassignment list cannot be empty"),
                              ('{"version":1,"partitions":[{"topic":"mv","partition":7,"replicas":[2,3]}]}', "Unable to find partition: mv-7")]:
            bad.write_text(text)
            r = reassign(c, "--execute", "--reassignment-json-file", str(bad))
            assert r.returncode == 1 and message in r.stderr, (text, r)
    finally:
        c.kill_all()


def test_quorum_and_log_dirs_from_any_node(tmp_path):
    c = Cluster(tmp_path, 3).start()
    try:
        create(c, "q", [[1, 2, 3]])
        c.wait_for_full_isr("q", 3)
        active = c.wait_for("an active controller", c.active_controller)
        follower = next(i for i in c.nodes if i != active)
        via = c.nodes[follower].bootstrap

        def status():
            r = strom("metadata-quorum", "--bootstrap-server", via, "describe", "--status")
            assert r.returncode == 0 and r.stderr == "", r
            return dict((k, v.strip()) for k, v in (line.split(":", 1) for line in r.stdout.splitlines()))
        s = status()
        assert s["LeaderId"] == str(active)
        voters = [(v["id"], v["directoryId"], v["endpoints"]) for v in json.loads(s["CurrentVoters"])]
        assert voters == [(i, None, [f"CONTROLLER://127.0.0.1:{c.controller_ports[i - 1]}"]) for i in (1, 2, 3)]
        assert s["CurrentObservers"] == "[]" and int(s["HighWatermark"]) > 0

        def table():
            r = strom("metadata-quorum", "--bootstrap-server", via, "describe", "--replication")
            assert r.returncode == 0, r
            return [[cell.strip() for cell in line.split("\t")[:-1]] for line in r.stdout.splitlines()]

        def replication():
            rows = table()
            # Every voter heard from and caught up (the quorum is idle, so this settles).
            return rows if all(row[4] != "-1" and row[5] != "-1" and row[3] == "0" for row in rows[1:]) else None
        rows = wait_for("every voter caught up", replication, timeout=20)
        assert rows[0] == ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]
        assert [(r[0], r[6]) for r in rows[1:]] == [(str(active), "Leader")] + [(str(i), "Follower") for i in (1, 2, 3) if i != active]
        assert len({r[2] for r in rows[1:]}) == 1
        # kafka-python's admin client, through a follower too.
        k = KafkaAdminClient(bootstrap_servers=via)
        p = k.describe_metadata_quorum()["topics"][0]["partitions"][0]
        assert p["leader_id"] == active and sorted(v["replica_id"] for v in p["current_voters"]) == [1, 2, 3]
        k.close()

        r = strom("log-dirs", "--describe", "--bootstrap-server", c.bootstrap_live(), "--topic-list", "q")
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert lines[1] == "Received log directory information from brokers 1,2,3"
        brokers = json.loads(lines[2])["brokers"]
        assert [b["broker"] for b in brokers] == [1, 2, 3]
        for b in brokers:
            [d] = b["logDirs"]
            assert d["logDir"] == os.path.abspath(c.nodes[b["broker"]].data_dir)
            assert [p["partition"] for p in d["partitions"]] == ["q-0"]
        r = strom("log-dirs", "--describe", "--bootstrap-server", c.bootstrap_live(), "--broker-list", "2")
        assert r.stdout.splitlines()[1] == "Received log directory information from brokers 2"
        assert [b["broker"] for b in json.loads(r.stdout.splitlines()[2])["brokers"]] == [2]

        # A voter that stops: the log moves on without it, so it lags, and its last contact
        # and last caught-up time stay where they were.
        other = next(i for i in c.nodes if i not in (active, follower))
        c.nodes[other].kill()
        def row_of(rows):
            return next(r for r in rows if r[0] == str(other))
        before = row_of(replication())
        create(c, "q2", [[active]])  # a metadata change the stopped voter does not get
        after = wait_for("the stopped voter to lag", lambda: (row := row_of(table())) and int(row[3]) > 0 and row, timeout=20)
        assert after[4:6] == before[4:6] and after[6] == "Follower"
        s = status()
        assert int(s["MaxFollowerLag"]) > 0 and int(s["MaxFollowerLagTimeMs"]) > 0
    finally:
        c.kill_all()
