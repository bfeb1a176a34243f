"""Exactly-once consume-transform-produce through faults: eos_app.py (confluent-kafka, transactions
with send_offsets_to_transaction) transforms a stream while its process, the broker, or the node
coordinating its transactions is SIGKILLed.

Each test: a feeder writes numbered records (checker.encode) at a steady rate to a 3-partition
input topic; eos_app.py transforms each into `out-<input>|<transaction tag>` on the same partition
of the output topic; the fault strikes mid-stream, while a transaction is open; the app is
restarted whenever it dies (a restarted instance fences its predecessor and aborts its open
transaction). Once the group's committed offsets reach the end of the input, the app is stopped,
its transactional.id fenced once more (so that no transaction is left open), and a plain
sentinel record closes each output partition. Both isolation levels then read the output up to
the sentinels, and checker.check_eos states what was delivered:

  in=2400 committed_out=2400 duplicates=0 missing=0 aborted_seen=0 (partial_txns=0 ...)

asserting, for read_committed readers: every input transformed exactly once (no duplicates, none
missing), no record of an aborted transaction visible, every transaction all or nothing, order
kept per partition. The random fault moments come from a seed printed with the summary (set
EOS_SEED to replay one).
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

import wire
from checker import check_eos, encode
from cluster import Cluster
from txnlib import (SINGLE_NODE_TXN_OVERRIDES, accepted, coordinator_probe, create_topics, group_offsets,
                    list_offsets_latest, plain_producer, read, txn_producer)

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "eos_app.py")
INPUT, OUTPUT, GROUP, TXN_ID = "eos-in", "eos-out", "eos-group", "eos-app"
PARTITIONS = 3
RECORDS = 2400       # input records in all
RATE = 200           # input records per second: the stream lasts ~12 s
COMMIT_EVERY = 40
MAX_APP_EXITS = 8    # the app exiting on its own (fatal errors) more often than this fails the test


def wait_until(what, check, timeout, logs=lambda: ""):
    """Polls `check()` until true. An AssertionError from it fails at once (the app cannot go on);
    other errors (a node down, a coordinator moving) are retried until `timeout`."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError:
            raise
        except Exception as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs()}")


def seeded():
    seed = int(os.environ.get("EOS_SEED", time.time_ns() % 1_000_000))
    return seed, random.Random(seed)


class Feeder(threading.Thread):
    """Writes RECORDS input records round robin over the partitions at RATE per second with an
    idempotent acks=all producer, and waits for every acknowledgement.

    Until `released` is set, the last quarter of the input trickles in (one record per TRICKLE_S),
    so that a test whose fault must strike mid-transaction finds the stream still flowing however
    slowly the cluster came up; `release()` lets the rest go at RATE."""

    TRICKLE_S = 0.3

    def __init__(self, bootstrap, hold=False):
        super().__init__(name="eos-feeder", daemon=True)
        self.bootstrap, self.acked, self.errors = bootstrap, [], []
        self.unflushed = None
        self.stopping = threading.Event()  # teardown of a failed test: give up at once
        self.released = threading.Event()
        if not hold:
            self.released.set()

    def release(self):
        self.released.set()

    def run(self):
        p = plain_producer(self.bootstrap, **{"message.timeout.ms": 60000, "request.timeout.ms": 5000})
        start = time.monotonic()
        hold_from = RECORDS * 3 // 4
        for i in range(RECORDS):
            if self.stopping.is_set():
                p.purge()
                return
            part, seq = i % PARTITIONS, i // PARTITIONS
            if i >= hold_from and not self.released.is_set():
                p.poll(self.TRICKLE_S)
                start = time.monotonic() - i / RATE  # once released, on at RATE from here
            while (wait := start + i / RATE - time.monotonic()) > 0:
                p.poll(wait)
            while True:
                try:
                    p.produce(INPUT, value=encode(part, seq), partition=part,
                              on_delivery=lambda err, m: self.errors.append(err) if err else self.acked.append(m.value()))
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        self.unflushed = p.flush(90)


class AppRunner:
    """Starts, kills and restarts eos_app.py processes; one at a time."""

    def __init__(self, tmp_path, bootstrap):
        self.tmp_path, self.bootstrap = tmp_path, bootstrap
        self.journal = str(tmp_path / "journal.txt")
        self.proc, self.logs, self.kills, self.exits = None, [], 0, []

    def start(self):
        log = str(self.tmp_path / f"app-{len(self.logs)}.log")
        self.logs.append(log)
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, APP, "--bootstrap", self.bootstrap, "--input", INPUT, "--output", OUTPUT,
                 "--group", GROUP, "--transactional-id", TXN_ID, "--journal", self.journal,
                 "--commit-every", str(COMMIT_EVERY)], stdout=out, stderr=subprocess.STDOUT)

    def kill(self):
        """SIGKILL; returns whether the instance died inside a transaction (its last journal line
        is `begin`: that transaction can only be aborted)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        return self.in_transaction()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def keep_alive(self):
        """Restarts the app if it exited on its own; fails if that happens too often, or if the
        very first instance never got going (nothing works: say why)."""
        if self.proc.poll() is None:
            return
        self.exits.append(self.proc.returncode)
        if not self.commits():
            raise AssertionError(f"eos_app exited (code {self.proc.returncode}) before committing any transaction; "
                                 f"{coordinator_probe(self.bootstrap, TXN_ID)}\n{self.tail()}")
        assert len(self.exits) <= MAX_APP_EXITS, f"eos_app exited on its own {len(self.exits)} times: {self.exits}\n{self.tail()}"
        self.start()

    def journal_lines(self):
        try:
            with open(self.journal) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def commits(self):
        return sum(1 for l in self.journal_lines() if l.startswith("commit-ok "))

    def in_transaction(self):
        """The running instance has an open transaction with records in it (its last journal line
        is `begin`, and records were consumed since)."""
        lines = self.journal_lines()
        return bool(lines) and lines[-1].startswith("begin ")

    def wait_commits(self, n, timeout=60):
        """Waits until the journal holds `n` commits, keeping the app alive."""
        def enough():
            self.keep_alive()
            return self.commits() >= n
        wait_until(f"{n} committed transactions of eos_app", enough, timeout, self.tail)

    def wait_mid_transaction(self, timeout=30):
        def mid():
            self.keep_alive()
            return self.in_transaction()
        wait_until("eos_app inside a transaction", mid, timeout, self.tail)

    def tail(self, chars=4000):
        out = []
        for log in self.logs[-3:]:
            with open(log) as f:
                out.append(f"--- {os.path.basename(log)} ---\n" + f.read()[-chars:])
        out.append("--- journal (end) ---\n" + "\n".join(self.journal_lines()[-15:]))
        return "\n".join(out)


class Pipeline:
    """One test's feeder, app and final check."""

    def __init__(self, tmp_path, bootstrap, node_logs=lambda: "", hold=False):
        self.bootstrap, self.node_logs = bootstrap, node_logs
        self.feeder = Feeder(bootstrap, hold)
        self.app = AppRunner(tmp_path, bootstrap)
        self.tps = [(INPUT, p) for p in range(PARTITIONS)]

    def start(self):
        self.feeder.start()
        self.app.start()
        self.app.wait_commits(2)
        return self

    def finish(self, seed, fault):
        """Waits for the feeder and for the app to commit the whole input; stops the app; fences
        its transactional.id; closes the output with sentinels; reads and checks."""
        self.feeder.release()
        self.feeder.join(timeout=150)
        assert not self.feeder.is_alive(), "the feeder did not finish"
        assert not self.feeder.errors and self.feeder.unflushed == 0, \
            f"input records not acknowledged: {self.feeder.errors[:5]}, unflushed {self.feeder.unflushed}"
        ends = list_offsets_latest(self.bootstrap, self.tps, "read_uncommitted")

        def done():
            self.app.keep_alive()
            return group_offsets(self.bootstrap, GROUP, self.tps) == ends
        wait_until(f"the group's committed offsets to reach the input's end {ends}", done, 120,
                 lambda: self.app.tail() + self.node_logs())
        self.app.stop()
        fence = txn_producer(self.bootstrap, TXN_ID)  # aborts anything an instance left open
        del fence
        p = plain_producer(self.bootstrap)
        for part in range(PARTITIONS):
            p.produce(OUTPUT, value=b"sentinel", partition=part)
        assert p.flush(30) == 0

        out_tps = [(OUTPUT, part) for part in range(PARTITIONS)]
        until_sentinels = lambda recs: {(t, q) for t, q, _, v in recs if v == b"sentinel"} == set(out_tps)
        committed = read(self.bootstrap, out_tps, "read_committed", until_sentinels, timeout=60)
        uncommitted = read(self.bootstrap, out_tps, "read_uncommitted", until_sentinels, timeout=60)
        inputs = read(self.bootstrap, self.tps, "read_uncommitted",
                      lambda recs: all(any(q == part and o >= ends[(INPUT, part)] - 1 for _, q, o, _ in recs)
                                       for part in range(PARTITIONS) if ends[(INPUT, part)] > 0), timeout=60)
        strip = lambda recs: [(q, o, v) for _, q, o, v in recs if v != b"sentinel"]
        r = check_eos(strip(inputs), strip(committed), strip(uncommitted), self.app.journal_lines())
        print(f"\n{fault} (seed {seed}; app killed {self.app.kills}x, exited on its own {len(self.app.exits)}x)\n"
              f"{r['summary']}")
        msg = f"{r['summary']}\nexamples: {r['examples']}\n{self.app.tail()}"
        assert r["records_in"] == RECORDS, msg
        assert set(self.feeder.acked) <= {v for _, _, v in strip(inputs)}, "an acknowledged input record is missing"
        assert r["duplicates"] == 0, msg
        assert r["missing"] == 0, msg
        assert r["aborted_seen"] == 0, msg
        for k in ("partial_txns", "hidden_committed", "phantom", "reordered", "misplaced", "unexpected"):
            assert r[k] == 0, f"{k}: {msg}"
        assert r["committed_out"] == RECORDS, msg
        return r

    def close(self):
        self.feeder.stopping.set()
        if self.app.proc and self.app.proc.poll() is None:
            self.app.proc.kill()
            self.app.proc.wait(timeout=30)


@pytest.fixture
def pipelines():
    made = []
    yield made
    for p in made:
        p.close()


def test_exactly_once_through_app_crashes(broker_factory, tmp_path, pipelines):
    """The app is SIGKILLed 4 times at random moments mid-stream and restarted each time."""
    broker = broker_factory(accepted(SINGLE_NODE_TXN_OVERRIDES))
    create_topics(broker.bootstrap, {INPUT: PARTITIONS, OUTPUT: PARTITIONS})
    seed, rng = seeded()
    pipe = Pipeline(tmp_path, broker.bootstrap, lambda: "--- broker ---\n" + broker.log()[-4000:])
    pipelines.append(pipe)
    pipe.start()
    struck = 0
    for _ in range(4):
        pipe.app.wait_commits(pipe.app.commits() + 2)  # the new instance got going
        time.sleep(rng.uniform(0.05, 1.0))
        pipe.app.wait_mid_transaction()
        struck += pipe.app.kill()
        pipe.app.start()
    r = pipe.finish(seed, f"eos_app SIGKILLed 4 times, {struck} of them inside a transaction")
    assert struck >= 1, "no kill struck inside a transaction"
    assert r["txns_aborted"] >= struck, f"each transaction left open by a kill is aborted: {r['summary']}"


def test_exactly_once_through_a_broker_crash(broker_factory, tmp_path, pipelines):
    """The single broker is SIGKILLed while the app has a transaction open, and restarted."""
    broker = broker_factory(accepted(SINGLE_NODE_TXN_OVERRIDES))
    create_topics(broker.bootstrap, {INPUT: PARTITIONS, OUTPUT: PARTITIONS})
    seed, rng = seeded()
    pipe = Pipeline(tmp_path, broker.bootstrap, lambda: "--- broker ---\n" + broker.log()[-4000:])
    pipelines.append(pipe)
    pipe.start()
    pipe.app.wait_commits(5)
    time.sleep(rng.uniform(0.0, 0.5))
    pipe.app.wait_mid_transaction()
    broker.kill()
    time.sleep(2)
    broker.start()
    before = pipe.app.commits()
    pipe.app.wait_commits(before + 2, timeout=90)  # transactions go on after the restart
    pipe.finish(seed, "broker SIGKILLed mid-transaction and restarted")


def test_exactly_once_through_the_transaction_coordinators_crash(tmp_path, pipelines):
    """Three nodes; input and output with replication factor 3 and min.insync.replicas=2; the node
    leading the app's __transaction_state partition (its transaction coordinator) is SIGKILLed
    mid-transaction, transactions go on with another coordinator, and the node comes back."""
    c = Cluster(tmp_path, n=3, overrides=accepted([
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.min.isr=2",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    ]))
    try:
        c.start()
        bs = c.bootstrap()
        c.wait_for("3 brokers", lambda: sorted(AdminClient({"bootstrap.servers": bs}).list_topics(timeout=5).brokers)
                   == [1, 2, 3])
        create_topics(bs, {INPUT: PARTITIONS, OUTPUT: PARTITIONS}, rf=3, config={"min.insync.replicas": "2"})
        for t in (INPUT, OUTPUT):
            c.wait_for_full_isr(t, 3)
        seed, rng = seeded()
        node_logs = lambda: "\n".join(f"--- node {i} ---\n" + b.log()[-2500:] for i, b in c.nodes.items())
        pipe = Pipeline(tmp_path, bs, node_logs, hold=True)  # the input flows until the fault
        pipelines.append(pipe)
        pipe.start()
        pipe.app.wait_commits(5)

        def coordinator():
            err, message, node, _, _ = wire.find_coordinator(c.nodes[c.live()[0]].bootstrap, TXN_ID)
            return node if err == 0 and node in c.live() else None
        victim = c.wait_for(f"the transaction coordinator of {TXN_ID!r}", coordinator, 30)
        time.sleep(rng.uniform(0.0, 0.5))
        pipe.app.wait_mid_transaction()
        c.nodes[victim].kill()
        pipe.feeder.release()
        before = pipe.app.commits()
        successor = c.wait_for(f"a new transaction coordinator of {TXN_ID!r} (node {victim} is down)",
                               lambda: (n := coordinator()) not in (None, victim) and n, 60)
        pipe.app.wait_commits(before + 3, timeout=90)  # transactions go on with the new coordinator
        c.nodes[victim].start()
        for t in (INPUT, OUTPUT):
            c.wait_for_full_isr(t, 3, timeout=60)
        pipe.finish(seed, f"transaction coordinator node {victim} SIGKILLed mid-transaction (node {successor} "
                          f"took over) and restarted")
    finally:
        c.kill_all()
