"""Helpers shared by the transaction tests (test_transactions*.py, test_exactly_once.py).

Readers here never rely on a client's end-of-partition event: how librdkafka reports EOF under
read_committed near control records is a client detail. Instead, every test ends each partition
with a record it knows must become visible (a committed transaction, or a plain record written
after everything else), and reads until it has seen it; anything that should not be visible
(aborted records sit before that point in offset order) has been delivered by then if a broker
leaked it. A short grace period after that catches stragglers.
"""
import subprocess
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

import wire
from conftest import STROM_BIN

INIT_TIMEOUT_S = 30  # init_transactions: FindCoordinator(transaction) + InitProducerId
TXN_TIMEOUT_S = 60   # commit/abort/send_offsets

# Broker settings for transaction tests. A key this binary does not know yet (it refuses unknown
# keys at start) is left out by `accepted()`, so that today's broker still starts and the tests
# fail where transactions are missing, not at start-up.
SINGLE_NODE_TXN_OVERRIDES = [
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    # Kafka's default is 10 s; a dead producer's transaction is then aborted within about
    # transaction.timeout.ms + 0.5 s.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    "group.initial.rebalance.delay.ms=0",
]

_help = None
# Keys Kafka has that Strom accepts without acting on them (crates/config/src/keys.rs
# IGNORED_KAFKA_KEYS); `--help-config` lists only the keys Strom acts on.
_ACCEPTED_WITHOUT_HELP = {"transaction.state.log.replication.factor", "transaction.state.log.min.isr"}


def accepted(overrides):
    """The overrides whose key this strom binary accepts (`strom server --help-config` lists every
    key it acts on); the others are dropped with a note on stdout."""
    global _help
    if _help is None:
        _help = subprocess.run([STROM_BIN, "server", "--help-config"], capture_output=True, text=True,
                               timeout=30).stdout
    known = {line.split()[0] for line in _help.splitlines() if line.strip()} | _ACCEPTED_WITHOUT_HELP
    keep = []
    for o in overrides:
        key = o.split("=", 1)[0]
        if key in known:
            keep.append(o)
        else:
            print(f"note: {STROM_BIN} does not know `{key}` yet; started without it")
    return keep


def create_topics(bootstrap, topics, rf=1, config=None):
    """topics: {name: partitions}. Waits until each exists."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(t, num_partitions=n, replication_factor=rf, config=config or {})
                          for t, n in topics.items()], operation_timeout=20)
    for t, f in fs.items():
        f.result(timeout=30)


def txn_producer(bootstrap, txn_id, **conf):
    """A confluent-kafka transactional producer, initialized (init_transactions done).

    Raises AssertionError naming the client's error when init_transactions fails: that is the
    first step a broker without transactions fails (no transaction coordinator, or a refused
    transactional InitProducerId)."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                  "error_cb": errors.append, **conf})
    try:
        p.init_transactions(INIT_TIMEOUT_S)
        return p
    except KafkaException as e:
        failure = (f"init_transactions for transactional.id={txn_id!r} failed: {e.args[0]}; "
                   f"client errors: {[str(x) for x in errors][:5]}; {coordinator_probe(bootstrap, txn_id)}")
    del p  # the failed test's traceback must not keep the client (and its reconnect logging) alive
    raise AssertionError(failure)


def coordinator_probe(bootstrap, txn_id):
    """What FindCoordinator(transaction) answers for `txn_id`, as text for a failure message."""
    try:
        err, message, node, host, port = wire.find_coordinator(bootstrap.split(",")[0], txn_id)
    except Exception as e:  # the broker may be down: say so rather than hide the first error
        return f"FindCoordinator(transaction, {txn_id!r}) could not be asked: {e!r}"
    if err:
        return f"FindCoordinator(transaction, {txn_id!r}) answers error {err} ({message!r})"
    return f"FindCoordinator(transaction, {txn_id!r}) answers node {node} at {host}:{port}"


def plain_producer(bootstrap, **conf):
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                     "enable.idempotence": True, **conf})


def produce_plain(bootstrap, topic, values, partition=0):
    """Writes `values` with a non-transactional idempotent producer; returns their offsets."""
    offsets, errors = [], []
    p = plain_producer(bootstrap)
    for v in values:
        p.produce(topic, value=v, partition=partition,
                  on_delivery=lambda err, m: errors.append(err) if err else offsets.append(m.offset()))
    assert p.flush(30) == 0 and errors == [], f"plain produce to {topic}-{partition} failed: {errors}"
    return sorted(offsets)


def txn_produce(p, topic, values, partition=0):
    """Produces `values` inside the producer's open transaction and waits for their acknowledgements;
    returns their offsets."""
    offsets, errors = [], []
    for v in values:
        p.produce(topic, value=v, partition=partition,
                  on_delivery=lambda err, m: errors.append(err) if err else offsets.append(m.offset()))
    assert p.flush(30) == 0 and errors == [], f"transactional produce to {topic}-{partition} failed: {errors}"
    return sorted(offsets)


def reader(bootstrap, isolation, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-test-reader", "enable.auto.commit": False,
                     "isolation.level": isolation, "enable.partition.eof": False, **conf})


def read(bootstrap, tps, isolation, until, timeout=30, grace=1.0):
    """Reads partitions `tps` ([(topic, partition)]) from the beginning with `isolation`
    ("read_committed" or "read_uncommitted") until `until(records)` is true, then `grace` seconds
    more. Returns [(topic, partition, offset, value)] in delivery order. Fails, showing what was
    read, if `until` does not become true within `timeout` s."""
    c = reader(bootstrap, isolation)
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
    out = []
    try:
        poll_until(c, out, lambda: until(out), timeout,
                   lambda: f"{isolation} reader of {tps}: condition not met in {timeout} s; read {summary(out)}")
        poll_for(c, out, grace)
    finally:
        c.close()
    return out


def poll_until(c, out, cond, timeout, message):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(message())
        _poll_one(c, out, 0.2)


def poll_for(c, out, seconds):
    end = time.time() + seconds
    while time.time() < end:
        _poll_one(c, out, min(0.2, max(0.01, end - time.time())))


def _poll_one(c, out, timeout):
    m = c.poll(timeout)
    if m is None:
        return
    if m.error():
        if m.error().code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            return  # a connection dropped (a node restarting): the client reconnects by itself
        raise KafkaException(m.error())
    out.append((m.topic(), m.partition(), m.offset(), m.value()))


def has_all(*values):
    """An `until` for `read`: every one of `values` was read."""
    want = set(values)
    return lambda recs: want <= {r[3] for r in recs}


def summary(records, n=12):
    vals = [(t, p, o, v) for t, p, o, v in records]
    return f"{len(vals)} records: {vals[:n]}{' ...' if len(vals) > n else ''}"


def list_offsets_latest(bootstrap, tps, isolation):
    """ListOffsets(latest) through confluent-kafka's AdminClient.list_offsets, with
    IsolationLevel.READ_COMMITTED (the last stable offset) or READ_UNCOMMITTED (the high
    watermark). {(topic, partition): offset}."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    level = IsolationLevel.READ_COMMITTED if isolation == "read_committed" else IsolationLevel.READ_UNCOMMITTED
    fs = a.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in tps}, isolation_level=level,
                        request_timeout=15)
    return {(tp.topic, tp.partition): f.result(timeout=20).offset for tp, f in fs.items()}


def group_offsets(bootstrap, group, tps, timeout=30):
    """The group's committed offsets ({(topic, partition): offset}; -1001 when none), fetched with
    require_stable: while an offset commit is pending in a transaction the broker answers
    UNSTABLE_OFFSET_COMMIT for that partition, and this asks again (up to `timeout` s), so what it
    returns is the offset as of the last completed transaction, never a pending one."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = AdminClient({"bootstrap.servers": bootstrap})
    deadline, last = time.time() + timeout, None
    while True:
        try:
            fs = a.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])],
                require_stable=True, request_timeout=10)
            res = fs[group].result(timeout=15)
            last = {(tp.topic, tp.partition): tp.error for tp in res.topic_partitions if tp.error}
            if not last:
                return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}
        except KafkaException as e:  # e.g. the coordinator is loading or moving
            last = e
        if time.time() > deadline:
            raise AssertionError(f"OffsetFetch(require_stable) for group {group!r} kept failing for {timeout} s: {last}")
        time.sleep(0.2)


def fenced(err):
    """Whether a confluent-kafka KafkaError says this producer was fenced by a newer one."""
    return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)

