"""The core transaction checks (commit, abort, what read_committed and read_uncommitted readers see,
offsets sent with a transaction) with three more real clients: kafka-python 3.0.12, aiokafka
0.14.0 and kafkajs 2.2.4 (Node.js, driven through tests/e2e/js/txn.js). test_transactions.py
holds the thorough checks with confluent-kafka; here each client must do the same job, and a
confluent-kafka read_committed reader double-checks what each one committed.

What each client offers:
- kafka-python: transactional producer (init/begin/commit/abort, send_offsets_to_transaction with
  the consumer's group metadata), read_committed consumer, end_offsets under read_committed
  (ListOffsets with isolation level 1: the last stable offset).
- aiokafka: transactional producer (`async with producer.transaction()`, an exception inside it
  aborts), send_offsets_to_transaction with a group id only (no group metadata: aiokafka sends
  TxnOffsetCommit without generation/member, so KIP-447 fencing of zombies is not exercised),
  read_committed consumer, end_offsets (under the consumer's isolation level).
- kafkajs: transactional producer (`producer.transaction()`, `send`, `sendOffsets`, `commit`,
  `abort`), read_committed consumer (`readUncommitted: false`).
"""
import asyncio
import contextlib
import json
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.structs import OffsetAndMetadata

from jslib import run_js
from txnlib import (INIT_TIMEOUT_S, SINGLE_NODE_TXN_OVERRIDES, accepted, coordinator_probe, create_topics,
                    group_offsets, has_all, produce_plain, read, summary)



@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(accepted(SINGLE_NODE_TXN_OVERRIDES))


def vals(prefix, n):
    return [f"{prefix}-{i}".encode() for i in range(n)]


def values(records):
    return [r[3] for r in records]


# --- kafka-python ------------------------------------------------------------------------------

def kp_producer(bs, txn_id):
    p = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id, max_block_ms=INIT_TIMEOUT_S * 1000,
                      request_timeout_ms=10000)
    try:
        p.init_transactions()
        return p
    except Exception as e:  # KafkaTimeoutError when no coordinator answers, others when refused
        failure = f"kafka-python init_transactions({txn_id!r}) failed: {e!r}; {coordinator_probe(bs, txn_id)}"
    p.close(timeout=5)
    raise AssertionError(failure)


def kp_send(p, topic, batch):
    futures = [p.send(topic, value=v, partition=0) for v in batch]
    p.flush(timeout=30)
    return [f.get(timeout=30).offset for f in futures]


def kp_read(bs, topic, isolation, last, timeout=30, grace=1.0):
    c = KafkaConsumer(bootstrap_servers=bs, isolation_level=isolation, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=10000)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got, deadline, stop_at = [], time.time() + timeout, None
    try:
        while stop_at is None or time.time() < stop_at:
            assert time.time() < deadline, f"kafka-python {isolation} reader did not see {last!r}; got {got[:20]}"
            for recs in c.poll(timeout_ms=200).values():
                got += [(r.offset, r.value) for r in recs]
            if stop_at is None and last in [v for _, v in got]:
                stop_at = time.time() + grace
    finally:
        c.close()
    return got


def kp_end_offset(bs, topic, isolation):
    c = KafkaConsumer(bootstrap_servers=bs, isolation_level=isolation, request_timeout_ms=10000)
    try:
        return c.end_offsets([KTP(topic, 0)])[KTP(topic, 0)]
    finally:
        c.close()


def test_kafka_python_commit_abort_read_committed_and_lso(txn_broker):
    bs, topic = txn_broker.bootstrap, "kp-tx"
    create_topics(bs, {topic: 1})
    p = kp_producer(bs, "kp-tx")
    committed, everything = [], []
    try:
        for n, outcome in enumerate(["commit", "abort", "commit"]):
            batch = vals(f"{outcome}{n}", 10)
            p.begin_transaction()
            assert kp_send(p, topic, batch) == list(range(11 * n, 11 * n + 10))
            p.commit_transaction() if outcome == "commit" else p.abort_transaction()
            everything += batch
            committed += batch if outcome == "commit" else []
        opened = vals("open", 5)
        p.begin_transaction()
        assert kp_send(p, topic, opened) == [33, 34, 35, 36, 37]
        assert kp_end_offset(bs, topic, "read_uncommitted") == 38
        assert kp_end_offset(bs, topic, "read_committed") == 33, \
            "end_offsets under read_committed is the LSO: the open transaction's first offset"
        p.commit_transaction()
        committed += opened
        everything += opened
    finally:
        p.close(timeout=10)
    assert kp_end_offset(bs, topic, "read_committed") == 39
    assert kp_end_offset(bs, topic, "read_uncommitted") == 39

    rc = kp_read(bs, topic, "read_committed", committed[-1])
    assert [v for _, v in rc] == committed, f"kafka-python read_committed: {rc[:20]}"
    ru = kp_read(bs, topic, "read_uncommitted", everything[-1])
    assert [v for _, v in ru] == everything, f"kafka-python read_uncommitted: {ru[:20]}"
    assert not {o for o, _ in ru} & {10, 21, 32, 38}, "a transaction marker was delivered as a record"
    other = read(bs, [(topic, 0)], "read_committed", has_all(committed[-1]))
    assert values(other) == committed, f"confluent-kafka read_committed: {summary(other)}"


def test_kafka_python_send_offsets_to_transaction(txn_broker):
    bs, source, sink, group = txn_broker.bootstrap, "kp-so-in", "kp-so-out", "kp-so-group"
    create_topics(bs, {source: 1, sink: 1})
    produce_plain(bs, source, vals("in", 30))
    p = kp_producer(bs, "kp-so")
    c = KafkaConsumer(source, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                      isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=10,
                      session_timeout_ms=10000, heartbeat_interval_ms=1000, request_timeout_ms=15000)

    def take(n):
        got, deadline = [], time.time() + 30
        while len(got) < n:
            assert time.time() < deadline, f"the group consumer read {len(got)} of {n}"
            for recs in c.poll(timeout_ms=200, max_records=n - len(got)).values():
                got += recs
        return got

    try:
        for outcome in ("commit", "abort"):
            recs = take(10)
            p.begin_transaction()
            kp_send(p, sink, [b"out-" + r.value for r in recs])
            p.send_offsets_to_transaction({KTP(source, 0): OffsetAndMetadata(recs[-1].offset + 1, "", -1)},
                                          c.group_metadata())
            p.commit_transaction() if outcome == "commit" else p.abort_transaction()
            assert group_offsets(bs, group, [(source, 0)]) == {(source, 0): 10}, \
                f"after the {outcome}: the group's offset is the committed transaction's (10)"
    finally:
        c.close(autocommit=False)
        p.close(timeout=10)
    produce_plain(bs, sink, [b"end"])
    rc = read(bs, [(sink, 0)], "read_committed", has_all(b"end"))
    assert values(rc) == [b"out-" + v for v in vals("in", 10)] + [b"end"], summary(rc)


# --- aiokafka ----------------------------------------------------------------------------------

class Abort(Exception):
    """Raised inside `async with producer.transaction()` to make aiokafka abort it."""


async def aio_scenario(bs, topic, source, group):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATP

    p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id="aio-tx", request_timeout_ms=10000)
    try:  # start() finds the transaction coordinator and gets the producer id, retrying forever
        await asyncio.wait_for(p.start(), INIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.stop(), 10)
        raise AssertionError(f"aiokafka's transactional producer did not start in {INIT_TIMEOUT_S} s; "
                             f"{coordinator_probe(bs, 'aio-tx')}") from None
    committed, everything = [], []
    try:
        for n, outcome in enumerate(["commit", "abort", "commit"]):
            batch = vals(f"{outcome}{n}", 10)
            try:
                async with p.transaction():
                    offs = [(await p.send_and_wait(topic, v, partition=0)).offset for v in batch]
                    assert offs == list(range(11 * n, 11 * n + 10)), offs
                    if outcome == "abort":
                        raise Abort()
            except Abort:
                pass
            everything += batch
            committed += batch if outcome == "commit" else []
        for outcome, upto in (("commit", 10), ("abort", 20)):
            try:
                async with p.transaction():
                    await p.send_and_wait(topic, f"offsets-{upto}".encode(), partition=0)
                    await p.send_offsets_to_transaction({ATP(source, 0): upto}, group)
                    if outcome == "abort":
                        raise Abort()
            except Abort:
                pass
        committed.append(b"offsets-10")
        everything += [b"offsets-10", b"offsets-20"]
    finally:
        await p.stop()

    async def read_all(isolation, last):
        c = AIOKafkaConsumer(bootstrap_servers=bs, isolation_level=isolation, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=10000)
        await c.start()
        try:
            tp = ATP(topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            got, deadline, stop_at = [], time.time() + 30, None
            while stop_at is None or time.time() < stop_at:
                assert time.time() < deadline, f"aiokafka {isolation} reader did not see {last!r}; got {got[:20]}"
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got += [(r.offset, r.value) for r in recs]
                if stop_at is None and last in [v for _, v in got]:
                    stop_at = time.time() + 1.0
            end = (await c.end_offsets([tp]))[tp]
            return got, end
        finally:
            await c.stop()

    rc, rc_end = await read_all("read_committed", b"offsets-10")
    ru, ru_end = await read_all("read_uncommitted", b"offsets-20")
    return committed, everything, rc, rc_end, ru, ru_end


def test_aiokafka_commit_abort_read_committed_and_send_offsets(txn_broker):
    bs, topic, source, group = txn_broker.bootstrap, "aio-tx", "aio-in", "aio-group"
    create_topics(bs, {topic: 1, source: 1})
    produce_plain(bs, source, vals("in", 30))
    committed, everything, rc, rc_end, ru, ru_end = asyncio.run(
        asyncio.wait_for(aio_scenario(bs, topic, source, group), 150))
    assert [v for _, v in rc] == committed, f"aiokafka read_committed: {rc[:20]}"
    assert [v for _, v in ru] == everything, f"aiokafka read_uncommitted: {ru[:20]}"
    # 3 x (10 records + marker), then 2 x (1 record + marker)
    assert [o for o, _ in ru] == [o for o in range(33) if o % 11 != 10] + [33, 35], [o for o, _ in ru]
    assert rc_end == ru_end == 37, (rc_end, ru_end)
    assert group_offsets(bs, group, [(source, 0)]) == {(source, 0): 10}, \
        "offsets sent in the committed transaction only"
    other = read(bs, [(topic, 0)], "read_committed", has_all(b"offsets-10"))
    assert values(other) == committed, f"confluent-kafka read_committed: {summary(other)}"


# --- kafkajs -----------------------------------------------------------------------------------

def test_kafkajs_commit_abort_read_committed_and_send_offsets(txn_broker):
    bs, topic, source, group = txn_broker.bootstrap, "js-tx", "js-in", "js-group"
    create_topics(bs, {topic: 1, source: 1})
    produce_plain(bs, source, vals("in", 30))
    proc, out = run_js("txn.js", bs, topic, "js-tx", source, group, timeout=170)
    context = f"exit {proc.returncode}; stdout tail:\n{proc.stdout[-2000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
    assert out and out[-1].startswith("RESULT "), \
        f"kafkajs failed: {out[-1] if out else 'no result'}; {coordinator_probe(bs, 'js-tx')}\n{context}"
    r = json.loads(out[-1][len("RESULT "):])
    # c0 at 0-4 (marker 5), a1 at 6-10 (marker 11), c2 at 12-16 (marker 17), out10 at 18-19 (marker 20),
    # out20 at 21-22 (marker 23)
    assert r["offsets"] == {"c0": [0], "a1": [6], "c2": [12], "out10": [18], "out20": [21]}, r["offsets"]
    committed = [f"c0-{i}" for i in range(5)] + [f"c2-{i}" for i in range(5)]
    assert [v for _, _, v in r["read_committed"]] == committed, f"kafkajs read_committed: {r['read_committed']}"
    assert [v for _, _, v in r["read_uncommitted"]] == committed[:5] + [f"a1-{i}" for i in range(5)] + committed[5:], \
        f"kafkajs read_uncommitted: {r['read_uncommitted']}"
    assert group_offsets(bs, group, [(source, 0)]) == {(source, 0): 10}, \
        "sendOffsets: offset 10 committed with its transaction, offset 20 aborted with its"
    produce_plain(bs, topic, [b"end"])
    rc = read(bs, [(topic, 0)], "read_committed", has_all(b"end"))
    assert values(rc) == [v.encode() for v in committed] + [b"out10-0", b"out10-1", b"end"], summary(rc)
