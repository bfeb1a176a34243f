"""`strom consumer-groups` (kafka-consumer-groups.sh) against a real broker and real group
members: list, describe (offsets and lag, members, state) with Kafka's columns, reset offsets
(dry run and execute, refused while the group is active), delete."""
import re
import signal
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import STROM_BIN

GROUP_OVERRIDES = ["group.initial.rebalance.delay.ms=0"]


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def produce(bootstrap, topic, counts):
    p = Producer({"bootstrap.servers": bootstrap})
    for partition, n in counts.items():
        for i in range(n):
            p.produce(topic, value=f"{partition}-{i}".encode(), partition=partition, timestamp=1_000_000 + i)
    assert p.flush(10) == 0


def commit(bootstrap, group, topic, offsets):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    c.close()


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def rows(stdout):
    """The table lines after the header, split on runs of spaces."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    header = next(i for i, l in enumerate(lines) if l.startswith("GROUP"))
    return [re.split(r" +", l.strip()) for l in lines[header + 1:]]


def test_list_describe_reset_delete_an_inactive_group(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    bs = ["--bootstrap-server", b.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "events", "--partitions", "3").returncode == 0
    produce(b.bootstrap, "events", {0: 10, 1: 6, 2: 0})
    commit(b.bootstrap, "billing", "events", {0: 4, 1: 6})
    commit(b.bootstrap, "audit", "events", {0: 10})

    r = strom("consumer-groups", *bs, "--list")
    assert (r.returncode, r.stdout) == (0, "audit\nbilling\n"), r.stderr
    r = strom("consumer-groups", *bs, "--list", "--state")
    assert r.stdout.splitlines() == ["GROUP           STATE", "audit           Empty", "billing         Empty"]

    r = strom("consumer-groups", *bs, "--describe", "--group", "billing")
    assert r.returncode == 0, r.stderr
    assert "Consumer group 'billing' has no active members." in r.stdout
    header = [l for l in r.stdout.splitlines() if l.startswith("GROUP")][0]
    assert header.split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                              "CONSUMER-ID", "HOST", "CLIENT-ID"]
    # Kafka's fixed columns: PARTITION is 10 wide, the offsets and lag 15.
    assert header.startswith("GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG   ")
    assert rows(r.stdout) == [["billing", "events", "0", "4", "10", "6", "-", "-", "-"],
                              ["billing", "events", "1", "6", "6", "0", "-", "-", "-"]]

    # A dry run shows the plan and changes nothing; --execute commits it.
    r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "billing", "--topic", "events", "--to-earliest")
    assert rows(r.stdout) == [["billing", "events", "0", "0"], ["billing", "events", "1", "0"], ["billing", "events", "2", "0"]]
    assert committed(b.bootstrap, "billing", "events", [0, 1]) == {0: 4, 1: 6}
    for args, expected in [
        (["--to-latest"], {0: 10, 1: 6, 2: 0}),
        (["--to-offset", "5"], {0: 5, 1: 5, 2: 0}),       # clamped to each partition's range
        (["--shift-by", "-2"], {0: 3, 1: 3, 2: 0}),
        (["--to-datetime", "1970-01-01T00:16:40.003Z"], {0: 3, 1: 3, 2: 0}),  # 1,000,003 ms
    ]:
        r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "billing", "--topic", "events", *args, "--execute")
        assert r.returncode == 0, (args, r.stderr)
        assert {int(p): int(o) for _, _, p, o in rows(r.stdout)} == expected, args
        assert committed(b.bootstrap, "billing", "events", [0, 1, 2]) == expected, args
    r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "audit", "--topic", "events:0", "--shift-by", "-3", "--execute")
    assert rows(r.stdout) == [["audit", "events", "0", "7"]]

    r = strom("consumer-groups", *bs, "--delete", "--group", "audit")
    assert (r.returncode, r.stdout) == (0, "Deletion of requested consumer groups ('audit') was successful.\n"), r.stderr
    assert strom("consumer-groups", *bs, "--list").stdout == "billing\n"
    r = strom("consumer-groups", *bs, "--describe", "--group", "audit")
    assert r.returncode != 0 and "Consumer group 'audit' does not exist." in r.stderr


def test_describe_and_refusals_while_members_are_active(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    bs = ["--bootstrap-server", b.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "live", "--partitions", "2").returncode == 0
    produce(b.bootstrap, "live", {0: 3, 1: 3})
    member = subprocess.Popen([STROM_BIN, "console-consumer", *bs, "--topic", "live", "--group", "active",
                               "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, r = time.time() + 30, None
        while time.time() < deadline:
            r = strom("consumer-groups", *bs, "--describe", "--group", "active")
            got = rows(r.stdout) if "GROUP" in r.stdout else []
            if len(got) == 2 and all(row[3] == "3" for row in got):
                break
            time.sleep(0.5)
        got = rows(r.stdout)
        assert [row[:6] for row in got] == [["active", "live", "0", "3", "3", "0"], ["active", "live", "1", "3", "3", "0"]], r.stdout
        assert all(row[7] == "/127.0.0.1" and row[8] == "console-consumer" and row[6] != "-" for row in got)

        r = strom("consumer-groups", *bs, "--describe", "--group", "active", "--members", "--verbose")
        header = [l for l in r.stdout.splitlines() if l.startswith("GROUP")][0]
        assert header.split() == ["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
        (m,) = rows(r.stdout)
        assert m[0] == "active" and m[3:] == ["/127.0.0.1", "console-consumer", "2", "live(0,1)"], m

        r = strom("consumer-groups", *bs, "--describe", "--group", "active", "--state")
        assert rows(r.stdout) == [["active", b.bootstrap, "range", "Stable", "1"]], r.stdout

        r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "active", "--topic", "live", "--to-earliest", "--execute")
        assert r.returncode != 0
        assert "can only be reset if the group 'active' is inactive, but the current state is Stable" in r.stderr
        r = strom("consumer-groups", *bs, "--delete", "--group", "active")
        assert r.returncode != 0 and "NON_EMPTY_GROUP" in r.stderr
    finally:
        # SIGTERM, as `kill` does: the console consumer leaves the group cleanly.
        member.send_signal(signal.SIGTERM)
        out, err = member.communicate(timeout=30)
    assert "Processed a total of 6 messages" in err, err
    r = strom("consumer-groups", *bs, "--delete", "--group", "active")
    assert r.returncode == 0, r.stderr


def test_kip848_consumer_groups_are_listed_and_described(broker_factory):
    """Groups of the consumer protocol (KIP-848, librdkafka's `group.protocol=consumer`) beside a
    classic one: `--list --type/--state` name each group's type and state, `--describe` shows
    offsets, lag and owners, `--members --verbose` each member's partitions (together every
    partition, once), `--state` the coordinator, the server-side assignor and the member count;
    once the members leave, the group is Empty and its offsets can be reset."""
    b = broker_factory(GROUP_OVERRIDES)
    bs = ["--bootstrap-server", b.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "kip848", "--partitions", "4").returncode == 0
    produce(b.bootstrap, "kip848", {0: 5, 1: 5, 2: 5, 3: 5})
    commit(b.bootstrap, "old-style", "kip848", {0: 1})
    conf = {"bootstrap.servers": b.bootstrap, "group.id": "new-style", "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    members = [Consumer({**conf, "client.id": f"member-{i}"}) for i in range(2)]
    for c in members:
        c.subscribe(["kip848"])
    try:
        got, deadline = 0, time.time() + 40
        while got < 20 and time.time() < deadline:
            for c in members:
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    got += 1
                    c.commit(message=m, asynchronous=False)
        assert got == 20

        def settled():
            r = strom("consumer-groups", *bs, "--describe", "--group", "new-style", "--members", "--verbose")
            return r if r.returncode == 0 and "GROUP" in r.stdout and len(rows(r.stdout)) == 2 and \
                all(row[5] != "0" for row in rows(r.stdout)) else None
        # librdkafka reconciles a KIP-848 assignment (gives partitions up, takes new ones) in
        # poll(): keep both members polling while waiting.
        deadline, r = time.time() + 60, None
        while time.time() < deadline and not (r := settled()):
            for c in members:
                c.poll(0.2)
        assert r, "the group did not settle with both members holding partitions"
        owned = {}
        for row in rows(r.stdout):
            assert row[0] == "new-style" and row[2] == "-" and row[3] == "/127.0.0.1" and row[4].startswith("member-"), row
            parts = [int(p) for p in re.fullmatch(r"kip848\(([\d,]+)\)", " ".join(row[6:])).group(1).split(",")]
            assert int(row[5]) == len(parts)
            for p in parts:
                assert p not in owned, f"partition {p} owned twice"
                owned[p] = row[1]
        assert sorted(owned) == [0, 1, 2, 3]

        r = strom("consumer-groups", *bs, "--list", "--type", "--state")
        assert r.stdout.splitlines() == ["GROUP           TYPE                 STATE",
                                         "new-style       Consumer             Stable",
                                         "old-style       Classic              Empty"], r.stdout
        assert strom("consumer-groups", *bs, "--list", "--type", "consumer").stdout.splitlines()[1:] == ["new-style       Consumer"]
        r = strom("consumer-groups", *bs, "--describe", "--group", "new-style")
        assert [(row[2], row[3], row[4], row[5], row[6]) for row in rows(r.stdout)] == \
            [(str(p), "5", "5", "0", owned[p]) for p in range(4)], r.stdout
        r = strom("consumer-groups", *bs, "--describe", "--group", "new-style", "--state")
        assert rows(r.stdout) == [["new-style", b.bootstrap, "(1)", "uniform", "Stable", "2"]], r.stdout
        r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "new-style", "--topic", "kip848", "--to-earliest", "--execute")
        assert r.returncode != 0 and "inactive, but the current state is Stable" in r.stderr
    finally:
        for c in members:
            c.close()
    deadline = time.time() + 30
    while "Empty" not in strom("consumer-groups", *bs, "--list", "--state").stdout.split("new-style")[1].split("\n")[0]:
        assert time.time() < deadline, "the group did not become Empty"
        time.sleep(0.5)
    r = strom("consumer-groups", *bs, "--describe", "--group", "new-style")
    assert "Consumer group 'new-style' has no active members." in r.stdout
    r = strom("consumer-groups", *bs, "--reset-offsets", "--group", "new-style", "--topic", "kip848:0", "--to-offset", "2", "--execute")
    assert r.returncode == 0, r.stderr
    assert committed(b.bootstrap, "new-style", "kip848", [0]) == {0: 2}
