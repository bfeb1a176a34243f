"""A produce/consume workload for fault-injection tests, and the checker that says what it verified.

`Workload` runs, in background threads, a confluent-kafka producer (acks=all, idempotent) that
writes numbered records to every partition of a topic at a steady rate, and a consumer in a
consumer group that reads them back. Each record's value names its partition and its sequence
number within that partition (`encode`), so the checker can tell which acknowledged record is
missing, read twice, or out of order. `stop()` ends the producer, keeps consuming until every
acknowledged record was read, then reads the whole log once more from offset 0 with a fresh
consumer (the *final read*: what the log holds once the faults are over).

`check()` is the pure part (no broker), unit-tested in test_checker.py. What it counts:

- acked: records the producer's delivery callback reported without error, each with the
  (partition, offset) the broker acknowledged it at.
- read: distinct records the group consumer delivered.
- lost: acknowledged records that the final read no longer finds anywhere (when there was no
  final read: that were never read back). A record the group consumer read and that later
  disappeared from the log (truncated away after it was served) is lost too.
- unread: acknowledged records the group consumer never delivered (it stalled, or skipped
  them); stop() waits for it to reach 0, and tests assert it (consumers continue).
- duplicated = reread + stored_twice:
  - reread: extra deliveries of a record at an offset already delivered (a consumer group
    rebalance or restart re-reads from the last committed offset; harmless, at-least-once);
  - stored_twice: extra offsets at which the same record sits (the log holds it twice: a
    retried produce was appended again; must not happen with an idempotent producer).
- moved: acknowledged records that were read back, but never at the offset they were
  acknowledged at (the broker promised an offset it did not keep). Counted apart from lost
  because the record exists; tests assert it is 0 as well.
- no_offset: acknowledged records whose delivery report carries no offset (None). librdkafka's
  idempotent producer does this when a batch's response was lost but a later batch of the same
  partition was acknowledged: the earlier one is then known to be persisted, at an offset it
  never learned. Such a record is checked for loss like any other, not for its offset.
- divergent: offsets at which different records were read (at different times, or by the group
  consumer and the final read): a reader was served a record that a later leader replaced.
- reordered: within a partition, take every offset at which exactly one record was read (from
  everything read) and whose record sits at that one offset only; in offset order, count the
  places where the sequence number goes backwards. Re-reads after a rebalance thus never count
  as reorderings (order is judged by the offsets records sit at, not by delivery order); a
  record at two offsets is a duplicate (stored_twice), not a reordering.
- misplaced: records read from a partition other than the one their value names.
- unacked_read: records read whose produce was never acknowledged (a produce whose response
  was lost or timed out may still have been written: legitimate, reported for information).

Definitions are per record value; the producer never sends the same value twice.

To see what the workload's consumer does, set CHECKER_RDKAFKA_DEBUG to librdkafka `debug`
contexts (`cgrp,broker`, say): its log goes to stderr, which pytest shows for a failed test.
"""
import os
import threading
import time
from collections import Counter, defaultdict

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

EXAMPLES = 5  # how many examples of each anomaly a report lists


def encode(partition, seq, size=0):
    """A record value naming its partition and its per-partition sequence number, padded to `size`."""
    head = b"%d:%d:" % (partition, seq)
    return head + b"x" * max(0, size - len(head))


def decode(value):
    """(partition, seq) from a value made by `encode`, or None for anything else."""
    try:
        p, seq, _ = value.split(b":", 2)
        return int(p), int(seq)
    except (AttributeError, ValueError):
        return None


def check(acked, reads, final=None, after=None, partitions=None):
    """Compares what was acknowledged with what was read. Pure: no broker, no clock.

    acked: (partition, offset, value) per acknowledged record.
    reads: (partition, offset, value) per record the group consumer delivered, in delivery order.
    final: (partition, offset, value) per record of a last full read of the log, or None.
    after: optional set of values produced after a fault; the report then counts how many of
           them were acknowledged (acked_after) and read (read_after).
    partitions: partition ids to report on even if nothing was seen in them.
    Returns a dict of the counts described in the module docstring, per-partition counts under
    "partitions", a few examples of each anomaly under "examples", and a one-line "summary".
    """
    acked, reads = list(acked), list(reads)
    final_list = None if final is None else list(final)
    everything = reads + (final_list or [])

    ack_at = {}
    for p, o, v in acked:
        ack_at.setdefault(v, (p, o))
    at = defaultdict(set)      # (partition, offset) -> values read there
    where = defaultdict(set)   # value -> (partition, offset) it was read at
    for p, o, v in everything:
        at[(p, o)].add(v)
        where[v].add((p, o))
    live_values = {v for _, _, v in reads}
    live_positions = Counter(reads)
    final_values = None if final_list is None else {v for _, _, v in final_list}

    parts = set(partitions or ()) | {p for p, _ in at} | {p for p, _ in ack_at.values()}
    per = {p: Counter() for p in parts}
    examples = defaultdict(list)

    def count(kind, partition, example, n=1):
        per[partition][kind] += n
        if len(examples[kind]) < EXAMPLES:
            examples[kind].append(example)

    def seq_of(v):
        d = decode(v)
        return d[1] if d else None

    for v, (p, o) in ack_at.items():
        per[p]["acked"] += 1
        if o is None or o < 0:
            per[p]["no_offset"] += 1
        present = (v in final_values) if final_values is not None else (v in live_values)
        if not present:
            count("lost", p, (p, o, seq_of(v)))
        elif o is not None and o >= 0 and (p, o) not in where[v]:
            count("moved", p, (p, o, seq_of(v), sorted(where[v])))
        if v not in live_values:
            per[p]["unread"] += 1
            if present and len(examples["unread"]) < EXAMPLES:
                examples["unread"].append((p, o, seq_of(v)))

    for v in live_values:
        p = next(iter(where[v]))[0]
        per[p]["read"] += 1
    for (p, o, v), n in live_positions.items():
        if n > 1:
            count("reread", p, (p, o, seq_of(v)), n - 1)
    for v, positions in where.items():
        first = min(positions)
        if len(positions) > 1:
            count("stored_twice", first[0], (seq_of(v), sorted(positions)), len(positions) - 1)
        d = decode(v)
        for p, o in positions:
            if d is None or d[0] != p:
                count("misplaced", p, (p, o, v[:32]))
        if v not in ack_at:
            count("unacked_read", first[0], (first[0], first[1], seq_of(v)))
    for (p, o), values in at.items():
        if len(values) > 1:
            count("divergent", p, (p, o, sorted(seq_of(v) for v in values)))

    # Order: by the offsets records sit at, over records read at exactly one offset.
    by_partition = defaultdict(list)
    for (p, o), values in at.items():
        if len(values) == 1:
            (v,) = values
            d = decode(v)
            if len(where[v]) == 1 and d is not None and d[0] == p:
                by_partition[p].append((o, d[1]))
    for p, seqs in by_partition.items():
        seqs.sort()
        for (o1, s1), (o2, s2) in zip(seqs, seqs[1:]):
            if s2 < s1:
                count("reordered", p, (p, o1, s1, o2, s2))

    kinds = ["acked", "read", "lost", "unread", "reread", "stored_twice", "moved", "divergent",
             "reordered", "misplaced", "unacked_read", "no_offset"]
    report = {k: sum(c[k] for c in per.values()) for k in kinds}
    report["duplicated"] = report["reread"] + report["stored_twice"]
    for c in per.values():
        c["duplicated"] = c["reread"] + c["stored_twice"]
    report["partitions"] = {p: {k: per[p][k] for k in kinds + ["duplicated"]} for p in sorted(per)}
    report["examples"] = {k: v for k, v in examples.items() if v}
    report["final_read"] = final_list is not None
    report["final_records"] = len(final_list) if final_list is not None else None
    if after is not None:
        report["acked_after"] = sum(1 for v in ack_at if v in after)
        report["read_after"] = sum(1 for v in live_values if v in after)
    report["summary"] = summarize(report)
    return report


def summarize(r):
    """The one-line summary: the headline figures, then the finer ones."""
    line = (f"acked={r['acked']} read={r['read']} lost={r['lost']} duplicated={r['duplicated']} "
            f"reordered={r['reordered']} moved={r['moved']} divergent={r['divergent']} "
            f"(reread={r['reread']} stored_twice={r['stored_twice']} unread={r['unread']} "
            f"misplaced={r['misplaced']} unacked_read={r['unacked_read']} no_offset={r['no_offset']}")
    for k in ("failed", "final_records", "acked_after", "read_after"):
        if r.get(k) is not None:
            line += f" {k}={r[k]}"
    if r.get("final_read") is False:
        line += " no_final_read"
    elif r.get("final_complete") is False:
        line += " FINAL_READ_INCOMPLETE"
    return line + ")"


def details(r):
    """Multi-line per-partition detail and examples, for test output and assertion messages."""
    lines = []
    for p, c in r["partitions"].items():
        lines.append(f"  partition {p}: " + " ".join(f"{k}={v}" for k, v in c.items() if v or k in ("acked", "read")))
    for k, ex in r["examples"].items():
        lines.append(f"  e.g. {k}: {ex}")
    for k in ("producer_errors", "consumer_errors"):
        if r.get(k):
            lines.append(f"  {k}: {dict(r[k])}")
    return "\n".join(lines)


class Workload:
    """A producer and a group consumer on `topic`, in background threads, recording everything.

    The producer writes `rate` records per second in total, round robin over the partitions,
    each to an explicit partition with a value from `encode(partition, seq)`. It is idempotent
    with acks=all, so retries neither duplicate nor reorder, and its message timeout (30 s) rides
    out a failover. request.timeout.ms and socket.timeout.ms are shortened so that requests to a
    paused broker are abandoned (and retried elsewhere) within seconds rather than a minute.

    Time stamps are `time.monotonic()`; `mark()` returns one, to pass to `report(since=...)`,
    `first_ack_after()` and `acked_on()`.
    """

    def __init__(self, bootstrap, topic, partitions=3, rate=300, value_size=100, group_id=None,
                 producer_config=None, consumer_config=None):
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.rate, self.value_size = rate, value_size
        self.group_id = group_id or f"checker-{topic}"
        self.producer_config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "request.timeout.ms": 5000,
            "socket.timeout.ms": 10000,
            **(producer_config or {}),
        }
        self.consumer_config = {
            "bootstrap.servers": bootstrap,
            "group.id": self.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "socket.timeout.ms": 10000,
            **({"debug": os.environ["CHECKER_RDKAFKA_DEBUG"]} if os.environ.get("CHECKER_RDKAFKA_DEBUG") else {}),
            **(consumer_config or {}),
        }
        self._lock = threading.Lock()
        self._sent = {}        # value -> send time
        self._acked = []       # (partition, offset, value, ack time)
        self._failed = []      # (value, error name)
        self._reads = []       # (partition, offset, value, read time)
        self._read_values = set()
        self._final = None
        self.final_complete = None
        self.producer_errors = Counter()
        self.consumer_errors = Counter()
        self.fatal = None
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._producer_thread = threading.Thread(target=self._produce, name="workload-producer", daemon=True)
        self._consumer_thread = threading.Thread(target=self._consume, name="workload-consumer", daemon=True)
        self.unflushed = None

    # --- running -------------------------------------------------------------------------------

    def start(self):
        self._consumer_thread.start()
        self._producer_thread.start()
        return self

    def _on_error(self, counter, err):
        counter[err.name()] += 1
        if err.fatal() and self.fatal is None:
            self.fatal = err

    def _on_delivery(self, err, msg):
        now = time.monotonic()
        with self._lock:
            if err is None:
                self._acked.append((msg.partition(), msg.offset(), msg.value(), now))
            else:
                self._failed.append((msg.value(), err.name()))
                self.producer_errors["delivery:" + err.name()] += 1

    def _produce(self):
        producer = Producer({**self.producer_config, "error_cb": lambda e: self._on_error(self.producer_errors, e)})
        seqs = [0] * self.partitions
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        i = 0
        while not self._stop_producing.is_set():
            p = i % self.partitions
            value = encode(p, seqs[p], self.value_size)
            try:
                producer.produce(self.topic, value=value, partition=p, on_delivery=self._on_delivery)
            except BufferError:  # local queue full: the cluster is not acknowledging; wait
                producer.poll(0.1)
                continue
            with self._lock:
                self._sent[value] = time.monotonic()
            seqs[p] += 1
            i += 1
            next_at += interval
            while (left := next_at - time.monotonic()) > 0:
                producer.poll(left)
            if left < -1.0:  # after a stall, carry on at the rate rather than in a burst
                next_at = time.monotonic()
            producer.poll(0)
        self.unflushed = producer.flush(self.producer_config["message.timeout.ms"] / 1000 + 10)

    def _consume(self):
        consumer = Consumer({**self.consumer_config, "error_cb": lambda e: self._on_error(self.consumer_errors, e)})
        consumer.subscribe([self.topic])
        try:
            while not self._stop_consuming.is_set():
                m = consumer.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    self.consumer_errors[m.error().name()] += 1
                    continue
                with self._lock:
                    self._reads.append((m.partition(), m.offset(), m.value(), time.monotonic()))
                    self._read_values.add(m.value())
        finally:
            consumer.close()

    def _final_read(self, timeout):
        """Every record of every partition, from offset 0 to the high watermark, with a fresh consumer."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group_id + "-final",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "socket.timeout.ms": 10000})
        records, deadline = [], time.monotonic() + timeout
        try:
            ends = {}
            for p in range(self.partitions):
                while p not in ends:
                    try:
                        ends[p] = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)[1]
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            pending = {p for p, end in ends.items() if end > 0}
            while pending and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= ends[m.partition()]:
                        pending.discard(m.partition())
                    continue
                records.append((m.partition(), m.offset(), m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
            self.final_complete = not pending
        finally:
            consumer.close()
        return records

    # --- observing while it runs ---------------------------------------------------------------

    @staticmethod
    def mark():
        return time.monotonic()

    def acked_count(self):
        with self._lock:
            return len(self._acked)

    def read_count(self):
        with self._lock:
            return len(self._read_values)

    def wait_until_reading(self, n=1, timeout=30):
        """Waits until the consumer has read `n` records (it joined its group and fetches)."""
        deadline = time.monotonic() + timeout
        while self.read_count() < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"the workload's consumer read {self.read_count()} records in {timeout} s "
                                     f"(acked {self.acked_count()}; errors {dict(self.consumer_errors)})")
            time.sleep(0.1)

    def acked_on(self, partition, start, end=float("inf")):
        """Acknowledgements on `partition` that arrived in [start, end): (offset, ack time)."""
        with self._lock:
            return [(o, t) for p, o, _, t in self._acked if p == partition and start <= t < end]

    def first_ack_after(self, t, partition=None):
        """Seconds from `t` to the first acknowledgement of a record sent at or after `t` (on
        `partition` if given), or None. A record sent after a leader died can only be acknowledged
        by its successor, so after a leader's SIGKILL this is the failover time as a client sees it."""
        with self._lock:
            times = [at for p, _, v, at in self._acked
                     if (partition is None or p == partition) and self._sent.get(v, -1) >= t]
        return min(times) - t if times else None

    # --- ending --------------------------------------------------------------------------------

    def stop(self, timeout=30, final_read=True):
        """Stops producing and flushes; keeps consuming until every acknowledged record was read
        (or `timeout` s passed); stops the consumer; then, unless told not to, reads the whole log
        once more (the final read). Returns self."""
        self._stop_producing.set()
        self._producer_thread.join()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(v in self._read_values for _, _, v, _ in self._acked):
                    break
            time.sleep(0.1)
        self._stop_consuming.set()
        self._consumer_thread.join(timeout=30)
        if final_read:
            self._final = self._final_read(timeout=30)
        return self

    def close(self):
        """Teardown: ends both threads whatever state the cluster is in (no flush, no final read)."""
        self._stop_producing.set()
        self._stop_consuming.set()
        for t in (self._producer_thread, self._consumer_thread):
            if t.is_alive():
                t.join(timeout=60)

    def report(self, since=None):
        """check() over everything recorded, plus the producer's side: failed deliveries and errors.
        `since`: a mark(); acked_after/read_after then count records sent at or after it."""
        with self._lock:
            acked = [(p, o, v) for p, o, v, _ in self._acked]
            reads = [(p, o, v) for p, o, v, _ in self._reads]
            after = None if since is None else {v for v, t in self._sent.items() if t >= since}
            failed = len(self._failed)
        r = check(acked, reads, final=self._final, after=after, partitions=range(self.partitions))
        r["failed"] = failed
        r["final_complete"] = self.final_complete
        r["unflushed"] = self.unflushed
        r["producer_errors"] = dict(self.producer_errors)
        r["consumer_errors"] = dict(self.consumer_errors)
        r["fatal"] = None if self.fatal is None else str(self.fatal)
        r["summary"] = summarize(r)
        r["details"] = details(r)
        return r


# --- exactly-once (consume-transform-produce) --------------------------------------------------
#
# eos_app.py reads records `encode(p, seq)` from an input topic and writes, inside transactions,
# `b"out-" + input value + b"|" + tag` to the same partition of an output topic, where tag names
# the transaction (`<instance>.<n>`). It journals each transaction's fate, one line each:
#   begin <tag> | commit-start <tag> <records> | commit-ok <tag> | abort-ok <tag> | fatal <tag> ...
# A transaction is committed if commit-ok was journaled, aborted if abort-ok was, or if
# commit-start never was (commit_transaction was never called, so nothing can have committed
# it), and uncertain when commit-start was the last word (the process died or failed while
# committing: the broker may have committed it or not).

def out_value(input_value, tag):
    return b"out-" + input_value + b"|" + tag.encode()


def parse_out(value):
    """(input value, tag) from an output value, or None."""
    if not isinstance(value, bytes) or not value.startswith(b"out-") or b"|" not in value:
        return None
    head, tag = value[4:].rsplit(b"|", 1)
    return head, tag.decode(errors="replace")


def txn_fates(journal):
    """{tag: "committed" | "aborted" | "uncertain"} from the app's journal lines."""
    words = {}
    for line in journal:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("begin", "commit-start", "commit-ok", "abort-ok"):
            words.setdefault(parts[1], set()).add(parts[0])
    fates = {}
    for tag, w in words.items():
        if "commit-ok" in w:
            fates[tag] = "committed"
        elif "abort-ok" in w or "commit-start" not in w:
            fates[tag] = "aborted"
        else:
            fates[tag] = "uncertain"
    return fates


def check_eos(inputs, committed, uncommitted, journal):
    """What an exactly-once pipeline delivered. Pure: no broker, no clock.

    inputs: (partition, offset, value) of every input record (the whole input log).
    committed: (partition, offset, value) of the output as a read_committed reader read it
        (the whole log, sentinels left out).
    uncommitted: the same as a read_uncommitted reader read it.
    journal: the app's journal lines (see above).

    Counts:
    - records_in: distinct input records; committed_out: records read_committed delivered.
    - duplicates: extra committed outputs for an input already transformed once.
    - missing: input records with no committed output.
    - aborted_seen: committed-view records that belong to an aborted transaction (records a
      read_uncommitted reader sees but that were never committed).
    - partial_txns: transactions of which read_committed sees some records but not all that
      read_uncommitted sees (atomicity); hidden_committed: records of transactions the app saw
      commit that read_committed does not show.
    - phantom: committed-view records that the read_uncommitted reader did not find at that
      offset; reordered: per partition, in offset order, the input sequence going backwards;
      misplaced: output in another partition than its input; unexpected: outputs that are not
      the transform of any input, or whose transaction the journal does not know.
    - not_visible: records the read_uncommitted reader saw that read_committed did not (the
      aborted transactions' records; informational).
    """
    fates = txn_fates(journal)
    input_values = {v for _, _, v in inputs}
    input_at = {v: p for p, _, v in inputs}
    seen_at = {(p, o): v for p, o, v in uncommitted}
    visible = {(p, o) for p, o, _ in committed}
    examples = defaultdict(list)
    counts = Counter()

    def count(kind, example, n=1):
        counts[kind] += n
        if len(examples[kind]) < EXAMPLES:
            examples[kind].append(example)

    per_input = Counter()
    txn_total, txn_visible = Counter(), Counter()
    for p, o, v in uncommitted:
        parsed = parse_out(v)
        if parsed:
            txn_total[parsed[1]] += 1
    by_partition = defaultdict(list)
    for p, o, v in committed:
        parsed = parse_out(v)
        if parsed is None or parsed[0] not in input_values or parsed[1] not in fates:
            count("unexpected", (p, o, v[:48] if isinstance(v, bytes) else v))
            continue
        src, tag = parsed
        per_input[src] += 1
        txn_visible[tag] += 1
        if seen_at.get((p, o)) != v:
            count("phantom", (p, o, tag))
        if fates[tag] == "aborted":
            count("aborted_seen", (p, o, tag))
        if input_at[src] != p:
            count("misplaced", (p, o, src))
        d = decode(src)
        if d is not None:
            by_partition[p].append((o, d[1]))
    for src, n in per_input.items():
        if n > 1:
            count("duplicates", src, n - 1)
    for v in input_values:
        if per_input[v] == 0:
            count("missing", v)
    for tag, total in txn_total.items():
        seen = txn_visible[tag]
        if 0 < seen < total:
            count("partial_txns", (tag, seen, total))
        if fates.get(tag) == "committed" and seen < total:
            count("hidden_committed", (tag, seen, total), total - seen)
    for p, seqs in by_partition.items():
        seqs.sort()
        for (o1, s1), (o2, s2) in zip(seqs, seqs[1:]):
            if s2 < s1:
                count("reordered", (p, o1, s1, o2, s2))
    fate_counts = Counter(fates.values())
    r = {k: counts[k] for k in ("duplicates", "missing", "aborted_seen", "partial_txns", "hidden_committed",
                                "phantom", "reordered", "misplaced", "unexpected")}
    r.update(records_in=len(input_values), committed_out=len(committed), uncommitted_out=len(uncommitted),
             not_visible=sum(1 for p, o, _ in uncommitted if (p, o) not in visible),
             txns_committed=fate_counts["committed"], txns_aborted=fate_counts["aborted"],
             txns_uncertain=fate_counts["uncertain"], examples={k: v for k, v in examples.items() if v})
    r["summary"] = (f"in={r['records_in']} committed_out={r['committed_out']} duplicates={r['duplicates']} "
                    f"missing={r['missing']} aborted_seen={r['aborted_seen']} "
                    f"(partial_txns={r['partial_txns']} hidden_committed={r['hidden_committed']} "
                    f"phantom={r['phantom']} reordered={r['reordered']} misplaced={r['misplaced']} "
                    f"unexpected={r['unexpected']}; uncommitted_out={r['uncommitted_out']} "
                    f"not_visible={r['not_visible']}; txns committed={r['txns_committed']} "
                    f"aborted={r['txns_aborted']} uncertain={r['txns_uncertain']})")
    return r
