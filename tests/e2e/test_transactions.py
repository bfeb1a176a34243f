"""Kafka transactions (KIP-98, KIP-447, KIP-890) with confluent-kafka (librdkafka 2.16) against a
real strom broker.

What a broker must do, as these tests see it through a real client:
- a transaction's records become visible to read_committed readers all at once when it commits,
  never when it aborts; read_uncommitted readers see every record either way; the transaction
  markers (control batches, one offset each) are never delivered as records by either;
- the last stable offset (LSO) stops read_committed readers at the first offset of the oldest
  open transaction, holding back everything after it, even other producers' plain records, and
  ListOffsets(latest) under read_committed answers the LSO;
- a producer that re-initializes a transactional.id fences the previous one (its next operation
  fails with a fatal _FENCED error) and aborts its open transaction;
- a transaction whose producer died is aborted after transaction.timeout.ms;
- offsets sent with send_offsets_to_transaction are committed with the transaction only.

Offsets are asserted exactly where Kafka fixes them: each transaction's end writes one marker
that takes one offset in every partition the transaction wrote to.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from txnlib import (SINGLE_NODE_TXN_OVERRIDES, TXN_TIMEOUT_S, accepted, create_topics, fenced, group_offsets,
                    has_all, list_offsets_latest, poll_for, poll_until, produce_plain, read, reader, summary,
                    txn_produce, txn_producer)

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "txn_child.py")


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(accepted(SINGLE_NODE_TXN_OVERRIDES))


def values(records):
    return [r[3] for r in records]


def offsets(records):
    return [r[2] for r in records]


def vals(prefix, n):
    return [f"{prefix}-{i}".encode() for i in range(n)]


def test_commit_and_abort_as_each_isolation_level_sees_them(txn_broker):
    bs, topic = txn_broker.bootstrap, "tx-basic"
    create_topics(bs, {topic: 1})
    p = txn_producer(bs, "tx-basic")
    committed, everything = [], []
    outcomes = ["commit", "abort", "commit", "abort", "commit"]
    for n, outcome in enumerate(outcomes):
        batch = vals(f"{outcome}{n}", 10)
        p.begin_transaction()
        got = txn_produce(p, topic, batch)
        assert got == list(range(11 * n, 11 * n + 10)), \
            f"transaction {n}: records at {got}; each earlier transaction takes 10 offsets and its marker one"
        if outcome == "commit":
            p.commit_transaction(TXN_TIMEOUT_S)
            committed += batch
        else:
            p.abort_transaction(TXN_TIMEOUT_S)
        everything += batch

    rc = read(bs, [(topic, 0)], "read_committed", has_all(committed[-1]))
    assert values(rc) == committed, f"read_committed must see exactly the committed records, in order; {summary(rc)}"
    ru = read(bs, [(topic, 0)], "read_uncommitted", has_all(everything[-1]))
    assert values(ru) == everything, f"read_uncommitted sees committed and aborted records alike; {summary(ru)}"
    markers = [11 * n + 10 for n in range(len(outcomes))]
    assert not set(offsets(ru)) & set(markers), "a transaction marker was delivered as a record"
    assert offsets(ru) == [o for o in range(11 * len(outcomes)) if o not in markers]
    ends = {(topic, 0): 11 * len(outcomes)}
    assert list_offsets_latest(bs, [(topic, 0)], "read_uncommitted") == ends
    assert list_offsets_latest(bs, [(topic, 0)], "read_committed") == ends, \
        "with no transaction open, the last stable offset is the high watermark"


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_an_open_transaction_holds_back_read_committed_readers(txn_broker, outcome):
    bs, topic = txn_broker.bootstrap, f"tx-open-{outcome}"
    tps = [(topic, 0)]
    create_topics(bs, {topic: 1})
    p = txn_producer(bs, f"tx-open-{outcome}")
    first = vals("first", 5)
    p.begin_transaction()
    txn_produce(p, topic, first)  # 0-4, marker 5
    p.commit_transaction(TXN_TIMEOUT_S)
    p.begin_transaction()
    opened = vals("open", 5)
    assert txn_produce(p, topic, opened) == [6, 7, 8, 9, 10]
    plain = vals("plain", 5)
    assert produce_plain(bs, topic, plain) == [11, 12, 13, 14, 15], "another, non-transactional producer"

    assert list_offsets_latest(bs, tps, "read_uncommitted") == {(topic, 0): 16}
    assert list_offsets_latest(bs, tps, "read_committed") == {(topic, 0): 6}, \
        "ListOffsets(latest, read_committed) must answer the last stable offset: the open transaction's first offset"
    ru = read(bs, tps, "read_uncommitted", has_all(plain[-1]))
    assert values(ru) == first + opened + plain, summary(ru)

    c = reader(bs, "read_committed")
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    try:
        poll_until(c, got, lambda: len(got) >= len(first), 30,
                   lambda: f"read_committed reader did not get the committed records; {summary(got)}")
        poll_for(c, got, 3.0)
        assert values(got) == first, \
            f"while a transaction is open, read_committed readers see nothing from its first offset on; {summary(got)}"

        if outcome == "commit":
            p.commit_transaction(TXN_TIMEOUT_S)
            visible = first + opened + plain
        else:
            p.abort_transaction(TXN_TIMEOUT_S)
            visible = first + plain
        poll_until(c, got, lambda: plain[-1] in values(got), 30,
                   lambda: f"after the {outcome}, the read_committed reader did not move on; {summary(got)}")
        poll_for(c, got, 0.5)
    finally:
        c.close()
    assert values(got) == visible, summary(got)
    assert list_offsets_latest(bs, tps, "read_committed") == {(topic, 0): 17}, \
        f"after the {outcome} (marker at offset 16), the last stable offset is the high watermark"
    assert list_offsets_latest(bs, tps, "read_uncommitted") == {(topic, 0): 17}


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(txn_broker):
    bs, topic = txn_broker.bootstrap, "tx-fence"
    create_topics(bs, {topic: 1})
    p1 = txn_producer(bs, "tx-fence")
    p1.begin_transaction()
    txn_produce(p1, topic, [b"p1-0", b"p1-1"])

    p2 = txn_producer(bs, "tx-fence")  # bumps the epoch; p1's open transaction is aborted
    p2.begin_transaction()
    txn_produce(p2, topic, [b"p2-0", b"p2-1"])
    p2.commit_transaction(TXN_TIMEOUT_S)

    p1.produce(topic, value=b"p1-late", partition=0)
    try:
        p1.flush(30)
    except Exception:  # noqa: BLE001 - librdkafka may raise the fatal error from inside flush's callbacks
        pass
    with pytest.raises(KafkaException) as raised:
        p1.commit_transaction(TXN_TIMEOUT_S)
    err = raised.value.args[0]
    assert err.fatal() and fenced(err), (
        f"expected a fatal _FENCED/PRODUCER_FENCED error, got {err}. (Kafka answers a Produce whose epoch "
        "is stale with INVALID_PRODUCER_EPOCH, which librdkafka turns into a fatal _FENCED; PRODUCER_FENCED on a "
        "Produce only makes the transaction abortable. The coordinator answers PRODUCER_FENCED.)")

    rc = read(bs, [(topic, 0)], "read_committed", has_all(b"p2-1"))
    assert values(rc) == [b"p2-0", b"p2-1"], f"the fenced producer's transaction must be aborted; {summary(rc)}"
    ru = read(bs, [(topic, 0)], "read_uncommitted", has_all(b"p2-1"))
    assert values(ru) == [b"p1-0", b"p1-1", b"p2-0", b"p2-1"], \
        f"the fenced producer's late record must not be written; {summary(ru)}"


def test_a_producer_that_dies_mid_transaction_is_aborted_after_its_timeout(txn_broker):
    bs, topic = txn_broker.bootstrap, "tx-dead"
    tps = [(topic, 0)]
    create_topics(bs, {topic: 1})
    other = txn_producer(bs, "tx-dead-other")
    before = vals("before", 5)
    other.begin_transaction()
    txn_produce(other, topic, before)  # 0-4, marker 5
    other.commit_transaction(TXN_TIMEOUT_S)

    child = subprocess.Popen([sys.executable, CHILD, bs, "tx-dead", topic, "10", "5000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # READY, or nothing when it exits
        ready_at = time.monotonic()
        if not line.startswith("READY"):
            child.wait(timeout=30)
            raise AssertionError(f"the producer process did not start its transaction: {line!r} "
                                 f"exit {child.returncode}; stderr:\n{child.stderr.read()[-3000:]}")
        assert line.split()[1] == "offsets=6-15", line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    after = vals("after", 5)
    assert produce_plain(bs, topic, after) == [16, 17, 18, 19, 20]
    lso = list_offsets_latest(bs, tps, "read_committed")
    if time.monotonic() - ready_at < 2.5:  # well within the 5 s transaction timeout
        assert lso == {(topic, 0): 6}, f"the dead producer's open transaction must hold the LSO at 6: {lso}"

    # The coordinator aborts the transaction after transaction.timeout.ms (5 s); readers move on.
    rc = read(bs, tps, "read_committed", has_all(after[-1]), timeout=60)
    assert values(rc) == before + after, f"the dead producer's records must never be visible; {summary(rc)}"
    ru = read(bs, tps, "read_uncommitted", has_all(after[-1]))
    assert values(ru) == before + vals("dead", 10) + after, summary(ru)
    assert list_offsets_latest(bs, tps, "read_committed") == {(topic, 0): 22}, \
        "after the abort (marker at offset 21) the last stable offset is the high watermark"

    # The transactional.id is usable again.
    p = txn_producer(bs, "tx-dead")
    p.begin_transaction()
    txn_produce(p, topic, [b"again"])
    p.commit_transaction(TXN_TIMEOUT_S)
    rc = read(bs, tps, "read_committed", has_all(b"again"))
    assert values(rc) == before + after + [b"again"], summary(rc)


def test_send_offsets_to_transaction_commits_group_offsets_only_with_the_transaction(txn_broker):
    bs, source, sink, group = txn_broker.bootstrap, "tx-so-in", "tx-so-out", "tx-so-group"
    create_topics(bs, {source: 1, sink: 1})
    produce_plain(bs, source, vals("in", 30))
    conf = {"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest", "session.timeout.ms": 10000}
    c = Consumer(conf)
    c.subscribe([source])
    p = txn_producer(bs, "tx-so")

    def take(n):
        out, deadline = [], time.time() + 30
        while len(out) < n:
            assert time.time() < deadline, f"the group consumer read {len(out)} of {n} records"
            for m in c.consume(num_messages=n - len(out), timeout=0.5):
                if m.error():
                    raise KafkaException(m.error())
                out.append(m)
        return out

    def transform_in_transaction(msgs, outcome):
        p.begin_transaction()
        txn_produce(p, sink, [b"out-" + m.value() for m in msgs])
        positions = c.position(c.assignment())
        assert [(tp.topic, tp.partition, tp.offset) for tp in positions] == [(source, 0, msgs[-1].offset() + 1)]
        p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), TXN_TIMEOUT_S)
        (p.commit_transaction if outcome == "commit" else p.abort_transaction)(TXN_TIMEOUT_S)

    try:
        first = take(10)
        assert [m.offset() for m in first] == list(range(10))
        transform_in_transaction(first, "commit")
        assert group_offsets(bs, group, [(source, 0)]) == {(source, 0): 10}, \
            "a committed transaction commits the offsets sent with it"
        second = take(10)
        transform_in_transaction(second, "abort")
        assert group_offsets(bs, group, [(source, 0)]) == {(source, 0): 10}, \
            "an aborted transaction's offsets must not be committed"
    finally:
        c.close()

    c2 = Consumer(conf)  # a new member resumes after the last committed transaction
    c2.subscribe([source])
    try:
        m = None
        deadline = time.time() + 30
        while m is None and time.time() < deadline:
            m = c2.poll(0.5)
        assert m is not None and not m.error(), f"the group's new member read nothing: {m and m.error()}"
        assert (m.offset(), m.value()) == (10, b"in-10")
    finally:
        c2.close()
    produce_plain(bs, sink, [b"end"])
    rc = read(bs, [(sink, 0)], "read_committed", has_all(b"end"))
    assert values(rc) == [b"out-" + v for v in vals("in", 10)] + [b"end"], summary(rc)


def test_one_transaction_over_several_topics_and_partitions(txn_broker):
    bs = txn_broker.bootstrap
    topics = {"tx-multi-a": 3, "tx-multi-b": 2}
    tps = [(t, p) for t, n in topics.items() for p in range(n)]
    create_topics(bs, topics)
    prod = txn_producer(bs, "tx-multi")
    committed = {tp: [] for tp in tps}
    everything = {tp: [] for tp in tps}

    def write(n, tag):
        prod.begin_transaction()
        errors = []
        for t, part in tps:
            batch = [f"{tag}{n}-{t}-{part}-{i}".encode() for i in range(3)]
            for v in batch:
                prod.produce(t, value=v, partition=part, on_delivery=lambda err, m: err and errors.append(err))
            everything[(t, part)] += batch
            if tag == "commit":
                committed[(t, part)] += batch
        assert prod.flush(30) == 0 and errors == [], errors

    for n, outcome in enumerate(["commit", "abort", "commit"]):
        write(n, outcome)
        (prod.commit_transaction if outcome == "commit" else prod.abort_transaction)(TXN_TIMEOUT_S)
    write(3, "commit")  # open over all five partitions: records at 12-14 in each
    lso = list_offsets_latest(bs, tps, "read_committed")
    assert lso == {tp: 12 for tp in tps}, f"every partition the open transaction wrote to is held at its first offset: {lso}"
    prod.commit_transaction(TXN_TIMEOUT_S)
    assert list_offsets_latest(bs, tps, "read_committed") == {tp: 16 for tp in tps}
    assert list_offsets_latest(bs, tps, "read_uncommitted") == {tp: 16 for tp in tps}

    rc = read(bs, tps, "read_committed", has_all(*[v[-1] for v in committed.values()]))
    ru = read(bs, tps, "read_uncommitted", has_all(*[v[-1] for v in everything.values()]))
    for tp in tps:
        got = [r for r in rc if (r[0], r[1]) == tp]
        assert values(got) == committed[tp], f"{tp} under read_committed: {summary(got)}"
        assert offsets(got) == [0, 1, 2, 8, 9, 10, 12, 13, 14], f"{tp}: markers at 3, 7, 11 (and 15)"
        assert values([r for r in ru if (r[0], r[1]) == tp]) == everything[tp]
