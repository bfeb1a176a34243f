"""The `strom` command-line tools (Kafka's kafka-*.sh) against a real broker: output formats
pinned, exit codes, and records typed into console-producer read back by console-consumer and
by other clients."""
import base64
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import time

from kafka.partitioner.default import murmur2
from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from conftest import STROM_BIN


def strom(*args, input=None, timeout=60):
    return subprocess.run([STROM_BIN, *args], input=input, capture_output=True, text=True, timeout=timeout)


def java_topic_id(broker, topic):
    """The topic's id as Kafka's tools print it (Java's Uuid.toString: URL-safe base64, unpadded),
    from confluent-kafka's DescribeTopics (whose own str() uses the standard alphabet)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    uuid = admin.describe_topics(TopicCollection([topic]))[topic].result(10).topic_id
    raw = struct.pack(">qq", uuid.get_most_significant_bits(), uuid.get_least_significant_bits())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def broker_error(future):
    """The error an admin request got, as librdkafka hands it on: (Kafka's code, the broker's message)."""
    try:
        future.result(10)
    except KafkaException as e:
        return e.args[0].code(), e.args[0].str()
    raise AssertionError("the request succeeded")


def test_topics_create_list_describe_alter_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    r = strom("topics", *bs, "--create", "--topic", "orders", "--partitions", "3", "--replication-factor", "1",
              "--config", "retention.ms=3600000", "--config", "cleanup.policy=compact")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Created topic orders.\n", "")
    r = strom("topics", *bs, "--create", "--topic", "orders", "--partitions", "3")
    assert r.returncode != 0 and "TOPIC_ALREADY_EXISTS" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert strom("topics", *bs, "--create", "--topic", "orders", "--if-not-exists").returncode == 0
    assert strom("topics", *bs, "--create", "--topic", "audit").returncode == 0
    r = strom("topics", *bs, "--list")
    assert (r.returncode, r.stdout) == (0, "audit\norders\n")
    r = strom("topics", *bs, "--describe", "--topic", "orders")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        f"Topic: orders\tTopicId: {java_topic_id(broker, 'orders')}\tPartitionCount: 3\tReplicationFactor: 1\t"
        "Configs: cleanup.policy=compact,retention.ms=3600000\n"
        "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n"
        "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n"
        "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1\n"), r.stdout
    assert strom("topics", *bs, "--alter", "--topic", "orders", "--partitions", "5").returncode == 0
    r = strom("topics", *bs, "--describe", "--topic", "orders")
    assert "PartitionCount: 5" in r.stdout and r.stdout.count("\tPartition: ") == 5
    r = strom("topics", *bs, "--alter", "--topic", "orders", "--partitions", "2")
    assert r.returncode != 0 and "INVALID_PARTITIONS" in r.stderr, r.stderr
    assert strom("topics", *bs, "--delete", "--topic", "audit").returncode == 0
    assert strom("topics", *bs, "--list").stdout == "orders\n"
    r = strom("topics", *bs, "--delete", "--topic", "audit")
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PART" in r.stderr, r.stderr
    assert strom("topics", *bs, "--delete", "--topic", "audit", "--if-exists").returncode == 0
    r = strom("topics", *bs, "--describe", "--topic", "nope")
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_console_producer_to_console_consumer_with_keys_and_headers(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "lines", "--partitions", "4").returncode == 0
    keys = [f"user-{i}" for i in range(12)]
    lines = "".join(f"{k}:hello {i}\n" for i, k in enumerate(keys)) + "no separator here\n" + "last:one\n"
    r = strom("console-producer", *bs, "--topic", "lines", "--property", "parse.key=true",
              "--property", "key.separator=:", input=lines)
    # The bad line is named and skipped, the rest is sent, and the exit code says so.
    assert r.returncode != 0
    assert "line 13" in r.stderr and "no separator here" in r.stderr, r.stderr
    r = strom("console-consumer", *bs, "--topic", "lines", "--from-beginning", "--max-messages", "13",
              "--timeout-ms", "10000", "--property", "print.key=true", "--property", "print.partition=true",
              "--property", "print.offset=true", "--property", "key.separator=|")
    assert r.returncode == 0, r.stderr
    assert "Processed a total of 13 messages" in r.stderr
    got = [line.split("|") for line in r.stdout.splitlines()]
    assert len(got) == 13
    by_key = {k: (int(p.split(":")[1]), v) for p, o, k, v in got}
    for i, k in enumerate(keys + ["last"]):
        # Java's partitioner: murmur2 of the key bytes, positive, modulo the partition count.
        expected = (murmur2(k.encode()) & 0x7FFFFFFF) % 4
        value = f"hello {i}" if k != "last" else "one"
        assert by_key[k] == (expected, value), (k, by_key[k], expected)
    # Offsets are per partition and contiguous from 0.
    for p in range(4):
        offs = sorted(int(o.split(":")[1]) for part, o, _, _ in got if part == f"Partition:{p}")
        assert offs == list(range(len(offs)))

    # Headers and null markers, read back by confluent-kafka.
    r = strom("console-producer", *bs, "--topic", "lines", "--property", "parse.headers=true",
              "--property", "parse.key=true", "--property", "null.marker=NULL",
              input="h1:a,h2:b\tk\tv\nh3:NULL\tNULL\tNULL\n")
    assert r.returncode == 0, r.stderr
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check", "auto.offset.reset": "earliest"})
    c.subscribe(["lines"])
    seen, deadline = [], time.time() + 20
    while len(seen) < 15 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m)
    c.close()
    extra = [m for m in seen if m.headers()]
    got = {(m.key(), m.value(), tuple(m.headers())) for m in extra}
    assert got == {(None, None, (("h3", None),)), (b"k", b"v", (("h1", b"a"), ("h2", b"b")))}, got


def test_console_consumer_group_commits_and_partition_offset(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("cc", value=f"v{i}".encode(), partition=0)
    assert p.flush(10) == 0
    r = strom("console-consumer", *bs, "--topic", "cc", "--group", "cg", "--from-beginning", "--max-messages", "4")
    assert (r.returncode, r.stdout) == (0, "v0\nv1\nv2\nv3\n"), r.stderr
    # The group's position was committed on exit: the next run continues after v3.
    r = strom("console-consumer", *bs, "--topic", "cc", "--group", "cg", "--max-messages", "2")
    assert (r.returncode, r.stdout) == (0, "v4\nv5\n"), r.stderr
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "cg"})
    assert c.committed([TopicPartition("cc", 0)], timeout=10)[0].offset == 6
    c.close()
    r = strom("console-consumer", *bs, "--topic", "cc", "--partition", "0", "--offset", "7", "--timeout-ms", "3000",
              "--property", "print.offset=true", "--property", "print.timestamp=true")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(o, v) for _, o, v in rows] == [("Offset:7", "v7"), ("Offset:8", "v8"), ("Offset:9", "v9")]
    assert all(ts.startswith("CreateTime:") for ts, _, _ in rows)
    # A topic that does not exist is waited for (here until --timeout-ms), and not created.
    r = strom("console-consumer", *bs, "--topic", "missing", "--timeout-ms", "1000")
    assert r.returncode == 0, r.stderr
    assert "{missing=UNKNOWN_TOPIC_OR_PARTITION}" in r.stderr and "Processed a total of 0 messages" in r.stderr, r.stderr
    assert "missing" not in strom("topics", *bs, "--list").stdout


def test_get_offsets(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "go", "--partitions", "2").returncode == 0
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce("go", value=b"x", partition=0, timestamp=1_000 + i)
    p.produce("go", value=b"y", partition=1, timestamp=5_000)
    assert p.flush(10) == 0
    assert strom("get-offsets", *bs, "--topic", "go").stdout == "go:0:5\ngo:1:1\n"
    assert strom("get-offsets", *bs, "--topic", "go", "--time", "-2").stdout == "go:0:0\ngo:1:0\n"
    assert strom("get-offsets", *bs, "--topic", "go", "--time", "1003", "--partitions", "0").stdout == "go:0:3\n"
    r = strom("get-offsets", *bs, "--topic", "nope")
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_a_broker_that_is_down_is_one_line_and_a_nonzero_exit(broker):
    port = broker.bootstrap.rsplit(":", 1)[1]
    broker.stop()
    start = time.time()
    r = strom("topics", "--bootstrap-server", f"127.0.0.1:{port}", "--list", timeout=60)
    assert r.returncode != 0
    assert time.time() - start < 30
    lines = [l for l in r.stderr.splitlines() if l.startswith("Error")]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], r.stderr
    assert "backtrace" not in r.stderr.lower() and "panicked" not in r.stderr
    r = strom("topics", "--bootstrap-server", f"127.0.0.1:{port}", "--no-such-flag")
    assert r.returncode != 0 and "--no-such-flag" in r.stderr


def test_admin_errors_show_kafkas_error_name_and_the_brokers_message(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert strom("topics", *bs, "--create", "--topic", "two", "--partitions", "2").returncode == 0
    # Each refusal as confluent-kafka gets it from the broker, and as `strom topics` prints it.
    cases = [
        (["--create", "--topic", "bad/name"], "INVALID_TOPIC_EXCEPTION",
         admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"]),
        (["--create", "--topic", "two"], "TOPIC_ALREADY_EXISTS", admin.create_topics([NewTopic("two", 1, 1)])["two"]),
        (["--create", "--topic", "cfg", "--config", "retention.ms=abc"], "INVALID_CONFIG",
         admin.create_topics([NewTopic("cfg", 1, 1, config={"retention.ms": "abc"})])["cfg"]),
        (["--alter", "--topic", "two", "--partitions", "1"], "INVALID_PARTITIONS",
         admin.create_partitions([NewPartitions("two", 1)])["two"]),
    ]
    for args, name, future in cases:
        _, message = broker_error(future)
        r = strom("topics", *bs, *args)
        assert r.returncode != 0 and r.stdout == "", (args, r.stdout)
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, (args, r.stderr)
        assert f"{name}: {message}" in r.stderr, (args, r.stderr, message)
    # The broker's message says why, beyond the code: the illegal name, the bad value.
    assert '"bad/name"' in broker_error(admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"])[1]
    # DeleteGroups carries no message: the code's description stands in, after Kafka's name.
    r = strom("consumer-groups", *bs, "--delete", "--group", "nope")
    assert r.returncode != 0 and re.search(r"GROUP_ID_NOT_FOUND: \w", r.stderr), r.stderr


def write_into_a_closed_pipe(*args):
    """Runs strom with its stdout a pipe nobody reads any more (as `strom ... | head -1` after head exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([STROM_BIN, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_ends_quietly(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "piped").returncode == 0
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(3):
        p.produce("piped", value=f"v{i}".encode())
    assert p.flush(10) == 0
    for args in (["server", "--help-config"], ["topics", *bs, "--list"], ["topics", *bs, "--describe"],
                 ["get-offsets", *bs, "--topic", "piped"]):
        r = write_into_a_closed_pipe(*args)
        # As `cat` or `ls`: ended by SIGPIPE, nothing said, no panic.
        assert (r.returncode, r.stderr) == (-signal.SIGPIPE, ""), (args, r.returncode, r.stderr)
    # console-consumer closes cleanly instead, as Kafka's does when stdout fails: position
    # committed, group left, exit status 0.
    r = write_into_a_closed_pipe("console-consumer", *bs, "--topic", "piped", "--group", "piped",
                                 "--from-beginning", "--max-messages", "3")
    assert r.returncode == 0 and "panicked" not in r.stderr, r.stderr
    # It stops at the first write that fails: how many records it had passed on by then depends
    # on how they arrived, and exactly those are committed.
    m = re.fullmatch(r"Processed a total of ([1-3]) messages\n", r.stderr)
    assert m, r.stderr
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "piped"})
    assert c.committed([TopicPartition("piped", 0)], timeout=10)[0].offset == int(m[1])
    c.close()


def test_console_consumer_waits_for_a_topic_created_after_it_started(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    proc = subprocess.Popen([STROM_BIN, "console-consumer", *bs, "--topic", "later", "--from-beginning",
                             "--max-messages", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Kafka's consumer warns that the topic is unknown, and keeps waiting.
        warning = proc.stderr.readline()
        assert "{later=UNKNOWN_TOPIC_OR_PARTITION}" in warning, warning + proc.stderr.read()
        assert proc.poll() is None
        # Waiting did not create the topic; creating it now is what the consumer waits for.
        assert "later" not in strom("topics", *bs, "--list").stdout.split()
        assert strom("topics", *bs, "--create", "--topic", "later", "--partitions", "2").returncode == 0
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for v in (b"x", b"y"):
            p.produce("later", value=v, partition=1)
        assert p.flush(10) == 0
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, "x\ny\n"), err
    assert err.endswith("Processed a total of 2 messages\n"), err


def read_terminal_until(fd, wanted):
    """What a pseudo-terminal shows, up to and including `wanted` (the guard only stops a hang)."""
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"the terminal never showed {wanted!r}; it showed {seen!r}"
        seen += os.read(fd, 1024)
    return seen


def test_console_producer_prompts_only_at_a_terminal(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "typed").returncode == 0
    # Piped input: no prompt, nothing on stdout.
    r = strom("console-producer", *bs, "--topic", "typed", input="one\n")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    # A person at a terminal: Kafka's `>` before each line.
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([STROM_BIN, "console-producer", *bs, "--topic", "typed"],
                            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    try:
        assert read_terminal_until(controller, b">") == b">"
        os.write(controller, b"two\n")
        read_terminal_until(controller, b"two\r\n>")  # the terminal's echo, then the next prompt
        os.write(controller, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    r = strom("console-consumer", *bs, "--topic", "typed", "--from-beginning", "--max-messages", "2")
    assert (r.returncode, r.stdout) == (0, "one\ntwo\n"), r.stderr


def test_strom_cluster_writes_each_nodes_config_and_says_how_to_restart_a_node(tmp_path):
    from cluster import free_port_ranges
    base, cbase, hbase = free_port_ranges(3, 2)
    errors = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([STROM_BIN, "cluster", "--nodes", "2", "--base-port", str(base),
                             "--controller-base-port", str(cbase), "--http-base-port", str(hbase), "--dir", str(tmp_path / "c"),
                             "--override", "broker.session.timeout.ms=3000"],
                            stdout=subprocess.PIPE, stderr=errors, text=True)
    restarted = None
    try:
        nodes, hint = {}, None
        for line in proc.stdout:
            if m := re.match(r"^  node (\d): pid (\d+), data in (\S+), config (\S+), metrics at (\S+)$", line):
                nodes[int(m[1])] = (int(m[2]), m[3], m[4])
                assert m[5] == f"http://127.0.0.1:{hbase + int(m[1]) - 1}/metrics", line
            if line.startswith("To start a stopped node again, by hand: "):
                hint = line
                break
        errors.seek(0)
        assert len(nodes) == 2 and hint, "no summary; stderr:\n" + errors.read()[-3000:]
        home = os.path.realpath(tmp_path / "c")
        for node, (_, data, config) in nodes.items():
            assert (data, config) == (f"{home}/node{node}", f"{home}/node{node}.properties")
            with open(config) as f:
                props = dict(line.rstrip("\n").split("=", 1) for line in f if line.strip() and not line.startswith("#"))
            assert props == {
                "node.id": str(node),
                "listeners": f"PLAINTEXT://127.0.0.1:{base + node - 1},CONTROLLER://127.0.0.1:{cbase + node - 1}",
                "controller.quorum.voters": f"1@127.0.0.1:{cbase},2@127.0.0.1:{cbase + 1}",
                "http.listeners": f"http://127.0.0.1:{hbase + node - 1}",
                "log.dirs": data,
                "default.replication.factor": "2",
                "min.insync.replicas": "1",
                "broker.session.timeout.ms": "3000",
            }, props
        # A crash: nothing restarts the node, but the cluster says how to.
        os.kill(nodes[2][0], signal.SIGKILL)
        for line in proc.stdout:
            if line.startswith("[node 2] exited"):
                break
        assert "SIGKILL" in line and "To start it again" in line, line
        command = shlex.split(line.split("in a terminal of its own: ", 1)[1])
        assert os.path.samefile(command[0], STROM_BIN) and command[1:] == ["server", "--config", nodes[2][2]]
        restarted = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = restarted.stdout.readline()
        assert f"broker 2 is ready: bootstrap.servers=127.0.0.1:{base + 1} http=http://127.0.0.1:{hbase + 1} " in ready, ready
    finally:
        if restarted is not None:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # Node 2 was reported when it died; the one stopped now is node 1.
    assert "[node 1] stopped (exit status: 0)" in out and "[node 2] stopped" not in out, out
