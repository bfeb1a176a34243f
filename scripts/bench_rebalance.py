#!/usr/bin/env python3
"""Rebalance of a group of 50 members against a real `strom server` (confluent-kafka 2.16 /
librdkafka 2.16), in three modes: classic eager (`partition.assignment.strategy=range`), classic
cooperative (`cooperative-sticky`) and KIP-848 (`group.protocol=consumer`, the broker's default
assignor).

Each repetition starts a new group of N members (threads of this process, each its own librdkafka
client with a poll loop; the callbacks record what each member owns) on a topic of 2*(N+1)
partitions, waits for it to settle, then measures two events:

- join: from the moment the (N+1)th member calls subscribe() until the group is settled again;
- leave: from the moment one of the original members calls close() (a clean leave) until the
  group of the N remaining members is settled again.

"Settled" means: the live members' assignments cover every partition, no partition is owned twice,
every member owns floor(P/n) or ceil(P/n) partitions (all three assignors balance one topic), and
nothing changed for a quiet period (--quiet, longer than the 5 s KIP-848 heartbeat, so that a
reconciliation still to come on a later heartbeat is not mistaken for the end). The figure is the
time of the LAST assignment change before that quiet period: the quiet period itself is not
counted. With 2*(N+1) partitions the join's target is exactly 2 each, so a half-done move cannot
look balanced.

Also counted per event: how many members (other than the one leaving) had partitions revoked, and
how many partitions were revoked in all: eager revokes everything from everyone, incremental
protocols only what moves.

Members learn of a rebalance on their next heartbeat, so the heartbeat intervals bound the
figures: by default each side keeps its own default (librdkafka's classic `heartbeat.interval.ms`
3000; the broker's `group.consumer.heartbeat.interval.ms` 5000, Kafka's). --heartbeat-ms X sets
both to X (the classic client setting; the broker's KIP-848 interval and its minimum) to see what
is left of the protocols once the heartbeat wait is short.

Before each event the driver waits a random 0..--jitter seconds (not counted): members heartbeat
on their own fixed period, so without it every repetition would hit the same heartbeat phase and
the spread would understate the real one.

Usage: python scripts/bench_rebalance.py [--members 50] [--reps 5] [--quiet 6] [--jitter 5] [--heartbeat-ms X]
       [--modes eager,cooperative,consumer]   (STROM_BIN names the binary, default target/release/strom)
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from benchlib import free_port  # noqa: E402

STROM_BIN = os.environ.get("STROM_BIN", "target/release/strom")
TOPIC = "rebalance-bench"

MODES = {
    "eager": {"partition.assignment.strategy": "range"},
    "cooperative": {"partition.assignment.strategy": "cooperative-sticky"},
    "consumer": {"group.protocol": "consumer"},
}


class Board:
    """What every member owns, as the callbacks report it, with the time of the last change."""

    def __init__(self):
        self.lock = threading.Lock()
        self.owned = {}          # member id -> set of partitions
        self.live = set()        # members counted in the group
        self.last_change = time.monotonic()
        self.revokes = []        # (time, member id, number of partitions)

    def change(self, mid, add=(), remove=(), clear=False, revoked=0):
        with self.lock:
            s = self.owned.setdefault(mid, set())
            if clear:
                s.clear()
            s.difference_update(remove)
            s.update(add)
            now = time.monotonic()
            self.last_change = now
            if revoked:
                self.revokes.append((now, mid, revoked))

    def settled_state(self, partitions):
        """(is the state a settled one, time of the last change)."""
        with self.lock:
            live = list(self.live)
            sets = [self.owned.get(m, set()) for m in live]
            last = self.last_change
        if not live:
            return False, last
        total = sum(len(s) for s in sets)
        union = set().union(*sets)
        lo, hi = partitions // len(live), -(-partitions // len(live))
        ok = total == partitions and len(union) == partitions and all(lo <= len(s) <= hi for s in sets)
        return ok, last


class Member(threading.Thread):
    def __init__(self, mid, bootstrap, group, mode, board, heartbeat_ms=None):
        super().__init__(daemon=True)
        self.mid, self.board, self.mode = mid, board, mode
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "latest"}
        conf.update(MODES[mode])
        if heartbeat_ms and mode != "consumer":  # KIP-848 members take the interval from the broker
            conf["heartbeat.interval.ms"] = heartbeat_ms
        self.c = Consumer(conf)
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.error = None

    # The callbacks apply the change themselves (so the Python wrapper does not) and then record
    # it: eager hands over whole assignments, the incremental protocols hand over differences.
    def on_assign(self, c, parts):
        ps = {p.partition for p in parts}
        if self.mode == "eager":
            c.assign(parts)
            self.board.change(self.mid, add=ps, clear=True)
        else:
            c.incremental_assign(parts)
            self.board.change(self.mid, add=ps)

    def on_revoke(self, c, parts):
        ps = {p.partition for p in parts}
        if self.mode == "eager":
            c.unassign()
            self.board.change(self.mid, clear=True, revoked=len(ps))
        else:
            c.incremental_unassign(parts)
            self.board.change(self.mid, remove=ps, revoked=len(ps))

    def run(self):
        try:
            self.c.subscribe([TOPIC], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_revoke)
            while not self.stop.is_set():
                self.c.poll(0.1)
            self.c.close()
        except Exception as e:  # reported by the driver, which then fails the run
            self.error = e
        finally:
            self.closed.set()


def wait_settled(board, partitions, t0, quiet, timeout):
    """Seconds from t0 to the last change before `quiet` seconds of a settled, unchanged state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok, last = board.settled_state(partitions)
        now = time.monotonic()
        if ok and now - last >= quiet:
            # Re-read: a change may have landed between the two reads.
            ok2, last2 = board.settled_state(partitions)
            if ok2 and last2 == last:
                return max(0.0, last - t0)
        time.sleep(0.05)
    raise RuntimeError("the group did not settle within %.0f s" % timeout)


def revoked_since(board, t0, exclude=None):
    with board.lock:
        rs = [(m, n) for t, m, n in board.revokes if t >= t0 and n > 0 and m != exclude]
    return len({m for m, _ in rs}), sum(n for _, n in rs)


def repetition(bootstrap, mode, rep, n, partitions, quiet, timeout, heartbeat_ms, jitter):
    board = Board()
    group = f"rebalance-{mode}-{rep}"
    members = [Member(i, bootstrap, group, mode, board, heartbeat_ms) for i in range(n)]
    with board.lock:
        board.live.update(range(n))
    for m in members:
        m.start()
    try:
        wait_settled(board, partitions, time.monotonic(), quiet, timeout)

        # Join: the (n+1)th member.
        time.sleep(random.uniform(0, jitter))
        newcomer = Member(n, bootstrap, group, mode, board, heartbeat_ms)
        members.append(newcomer)
        with board.lock:
            board.live.add(n)
        t0 = time.monotonic()
        newcomer.start()
        join = wait_settled(board, partitions, t0, quiet, timeout)
        join_members, join_parts = revoked_since(board, t0)

        # Leave: an original member closes cleanly.
        time.sleep(random.uniform(0, jitter))
        leaver = members[0]
        with board.lock:
            board.live.discard(0)
        t0 = time.monotonic()
        leaver.stop.set()
        leave = wait_settled(board, partitions, t0, quiet, timeout)
        leave_members, leave_parts = revoked_since(board, t0, exclude=0)
        for m in members:
            if m.error:
                raise RuntimeError(f"member {m.mid}: {m.error}")
        return join, join_members, join_parts, leave, leave_members, leave_parts
    finally:
        for m in members:
            m.stop.set()
        for m in members:
            m.closed.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quiet", type=float, default=6.0, help="seconds without change that count as settled (not included in the figures)")
    ap.add_argument("--jitter", type=float, default=5.0, help="a random wait of up to this many seconds before each event (not counted)")
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--heartbeat-ms", type=int, default=None, help="classic heartbeat.interval.ms and the broker's KIP-848 heartbeat interval (default: each side's own default)")
    ap.add_argument("--modes", default="eager,cooperative,consumer")
    a = ap.parse_args()
    n = a.members
    partitions = 2 * (n + 1)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    rows = []
    extra = []
    if a.heartbeat_ms:
        extra = ["--override", f"group.consumer.heartbeat.interval.ms={a.heartbeat_ms}",
                 "--override", f"group.consumer.min.heartbeat.interval.ms={a.heartbeat_ms}"]
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([STROM_BIN, "server", "--override", f"log.dirs={d}", "--override", f"listeners=PLAINTEXT://{bootstrap}",
                                 "--override", "http.listeners="] + extra,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline()
            if "is ready" not in line:
                raise SystemExit("strom did not start: " + line)
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, partitions, 1)])[TOPIC].result(30)
            for mode in a.modes.split(","):
                results = []
                for rep in range(a.reps):
                    r = repetition(bootstrap, mode, rep, n, partitions, a.quiet, a.timeout, a.heartbeat_ms, a.jitter)
                    print(f"{mode} rep {rep}: join {r[0]:.2f} s ({r[1]} members / {r[2]} partitions revoked), "
                          f"leave {r[3]:.2f} s ({r[4]} members / {r[5]} partitions revoked)", file=sys.stderr, flush=True)
                    results.append(r)
                med = [statistics.median(col) for col in zip(*results)]
                rng = [(min(col), max(col)) for col in zip(*results)]
                rows.append((mode, med, rng))
        finally:
            proc.terminate()
            proc.wait(30)
    hb = f"heartbeat {a.heartbeat_ms} ms" if a.heartbeat_ms else "default heartbeats (classic 3000 ms, KIP-848 5000 ms)"
    print(f"{n} members (+1 joining), {partitions} partitions, {a.reps} repetitions per mode, {hb}, quiet period {a.quiet:g} s not counted, random wait 0-{a.jitter:g} s before each event; medians (min-max)")
    print("| mode | join: settled after | members revoked | partitions revoked | leave: settled after | members revoked | partitions revoked |")
    print("|---|---|---|---|---|---|---|")
    names = {"eager": "classic eager (range)", "cooperative": "classic cooperative (cooperative-sticky)", "consumer": "KIP-848 (group.protocol=consumer)"}
    for mode, med, rng in rows:
        cells = []
        for i, (v, (lo, hi)) in enumerate(zip(med, rng)):
            cells.append(f"{v:.2f} s ({lo:.2f}-{hi:.2f})" if i in (0, 3) else f"{v:g} ({lo}-{hi})")
        print(f"| {names.get(mode, mode)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
