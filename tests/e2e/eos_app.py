"""An exactly-once consume-transform-produce application (confluent-kafka), as a user would write
one, for test_exactly_once.py.

It reads INPUT in consumer group GROUP (isolation.level=read_committed, enable.auto.commit=false,
static membership so that a restarted instance takes over its predecessor's partitions at once),
and for each input record writes `out-<input value>|<transaction tag>` to the same partition of
OUTPUT inside a transaction. Every --commit-every records, or when no input came for
--idle-commit-ms, it sends the consumed positions with send_offsets_to_transaction(
consumer.position(...), consumer.consumer_group_metadata()) and commits. Its transactional.id is
fixed, so a restarted instance fences the previous one and aborts whatever transaction it left open.

Errors, as librdkafka classifies them: retriable -> the same call again; abortable -> abort the
transaction and rewind the consumer to the group's committed offsets; fatal (fenced, ...), or
more than MAX_ABORTS_IN_A_ROW aborts without a commit -> exit 3, for whoever runs it to start a
new instance.

The journal (--journal, appended to, one line per event, flushed each time) tells the checker
what became of each transaction (checker.txn_fates):
  init <instance> | begin <tag> | commit-start <tag> <records> | commit-ok <tag> | abort-ok <tag> |
  fatal <tag> <error> | stop <instance>
with tag = <instance>.<n>. SIGTERM: commit what is pending, leave the group, exit 0.
"""
import argparse
import os
import signal
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from checker import out_value
from txnlib import txn_producer

MAX_ABORTS_IN_A_ROW = 20
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}


class App:
    def __init__(self, args):
        self.args = args
        self.instance = uuid.uuid4().hex[:8]
        self.journal = open(args.journal, "a", buffering=1)
        self.stopping = False
        self.tag = None      # the open transaction's tag
        self.pending = 0     # records produced in it
        self.n = 0
        self.aborts_in_a_row = 0  # the app gives up (exit 3) past MAX_ABORTS_IN_A_ROW: no progress
        self.producer = txn_producer(args.bootstrap, args.transactional_id, **{
            "transaction.timeout.ms": args.transaction_timeout_ms,
            "linger.ms": 5,
            # librdkafka 2.16 re-bootstraps when every known broker is down (a single broker
            # killed), and its transaction's TxnOffsetCommit then waits forever on the discarded
            # handle of broker 1 ("Handle is terminating in state INIT"), against Kafka too. The
            # broker-crash test is about the broker, so the client keeps its brokers instead.
            **NO_REBOOTSTRAP,
        })  # init_transactions: fences older instances, aborts their open transaction
        self.note("init", self.instance)
        self.consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "group.instance.id": f"{args.transactional_id}-member",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            **NO_REBOOTSTRAP,
            "heartbeat.interval.ms": 1000,
        })
        self.consumer.subscribe([args.input], on_revoke=self.on_revoke, on_lost=self.on_revoke)

    def note(self, *words):
        self.journal.write(" ".join(str(w) for w in words) + "\n")
        self.journal.flush()

    def fatal(self, err):
        self.note("fatal", self.tag, err.name() if hasattr(err, "name") else err)
        print(f"eos_app {self.instance}: fatal: {err}", file=sys.stderr, flush=True)
        os._exit(3)

    def retrying(self, what, call):
        """Calls `call` until it succeeds; returns False when the transaction must be aborted."""
        while True:
            try:
                call()
                return True
            except KafkaException as e:
                err = e.args[0]
                if err.fatal():
                    self.fatal(err)
                if err.txn_requires_abort():
                    print(f"eos_app {self.instance}: {what}: abortable {err}", file=sys.stderr, flush=True)
                    return False
                if err.retriable():
                    print(f"eos_app {self.instance}: {what}: retrying after {err}", file=sys.stderr, flush=True)
                    time.sleep(0.2)
                    continue
                self.fatal(err)

    def begin(self):
        self.n += 1
        self.tag = f"{self.instance}.{self.n}"
        self.producer.begin_transaction()
        self.note("begin", self.tag)
        self.pending = 0

    def commit(self):
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        self.note("commit-start", self.tag, self.pending)
        ok = self.retrying("send_offsets_to_transaction", lambda: self.producer.send_offsets_to_transaction(
            positions, self.consumer.consumer_group_metadata(), 30))
        ok = ok and self.retrying("commit_transaction", lambda: self.producer.commit_transaction(30))
        if ok:
            self.note("commit-ok", self.tag)
            self.tag = None
            self.aborts_in_a_row = 0
        else:
            self.abort(rewind=True)

    def abort(self, rewind):
        if not self.retrying("abort_transaction", lambda: self.producer.abort_transaction(30)):
            self.fatal("abort_transaction failed with an abortable error")
        self.note("abort-ok", self.tag)
        self.tag = None
        self.aborts_in_a_row += 1
        if self.aborts_in_a_row > MAX_ABORTS_IN_A_ROW:
            self.fatal(f"{self.aborts_in_a_row} transactions aborted in a row")
        if rewind:  # the aborted records' inputs must be read again: back to the committed offsets
            assignment = self.consumer.assignment()
            if assignment:
                for tp in self.consumer.committed(assignment, timeout=30):
                    self.consumer.seek(TopicPartition(tp.topic, tp.partition,
                                                      tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))

    def on_revoke(self, consumer, partitions):
        if self.tag is not None:  # the records in flight came from partitions no longer ours
            self.abort(rewind=False)

    def produce(self, msg):
        while True:
            try:
                self.producer.produce(self.args.output, value=out_value(msg.value(), self.tag),
                                      key=msg.key(), partition=msg.partition())
                return
            except BufferError:
                self.producer.poll(0.1)

    def run(self):
        last_input = time.monotonic()
        while not self.stopping:
            msg = self.consumer.poll(0.1)
            if msg is not None and msg.error():
                if msg.error().fatal():
                    self.fatal(msg.error())
                print(f"eos_app {self.instance}: consumer: {msg.error()}", file=sys.stderr, flush=True)
                continue
            if msg is not None:
                if self.tag is None:
                    self.begin()
                self.produce(msg)
                self.pending += 1
                self.producer.poll(0)
                last_input = time.monotonic()
            idle = self.pending and time.monotonic() - last_input >= self.args.idle_commit_ms / 1000
            if self.tag is not None and (self.pending >= self.args.commit_every or idle):
                self.commit()
        if self.tag is not None:
            if self.pending:
                self.commit()
            else:
                self.abort(rewind=False)
        self.note("stop", self.instance)
        self.consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--transactional-id", required=True)
    ap.add_argument("--journal", required=True)
    ap.add_argument("--commit-every", type=int, default=50)
    ap.add_argument("--idle-commit-ms", type=int, default=300)
    ap.add_argument("--transaction-timeout-ms", type=int, default=10000)
    args = ap.parse_args()
    try:
        app = App(args)
    except AssertionError as e:  # init_transactions failed: say why
        print(f"eos_app: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    signal.signal(signal.SIGTERM, lambda *_: setattr(app, "stopping", True))
    print(f"eos_app {app.instance} running", flush=True)
    app.run()


if __name__ == "__main__":
    main()
