"""Transactions v2 (KIP-890 part 2) on the wire, as a Kafka 4 producer speaks them.

No client installable here speaks transactions v2 yet (librdkafka 2.16, kafka-python, aiokafka and
kafkajs all use v1, which the other transaction tests cover), so these tests send the requests a
Java 4.x producer sends once ApiVersions finalizes `transaction.version` at 2:

- no AddPartitionsToTxn: Produce v12 makes the partition leader add the partition to the
  transaction, asking the coordinator (here or on another broker) with AddPartitionsToTxn v5;
- no AddOffsetsToTxn: TxnOffsetCommit v5 makes the group coordinator add the offsets partition;
- EndTxn v5 bumps the producer epoch at every commit and abort and answers the epoch to go on with,
  so a late batch of an ended transaction is fenced instead of opening a hanging one.

Records are checked with real clients: confluent-kafka read_committed and read_uncommitted
consumers, its AdminClient for the group's offsets, and kafka-python's describe_features.
"""
import pytest
from kafka.admin import KafkaAdminClient
from kafka.protocol.producer import EndTxnRequest, TxnOffsetCommitRequest

from cluster import Cluster
from conftest import Broker
from txnlib import (SINGLE_NODE_TXN_OVERRIDES, accepted, create_topics, group_offsets, has_all,
                    list_offsets_latest, read)
from txnwire import (INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, NONE, PRODUCER_FENCED, TRANSACTION_ABORTABLE,
                     batch, begin, call, describe, find_coordinator, name, produce, retriable_in, settle)

NOT_ENOUGH_REPLICAS = 19  # a partition leader's "retry": the coordinator is between two states


@pytest.fixture(scope="module")
def bs(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("txn-v2"), accepted(SINGLE_NODE_TXN_OVERRIDES))
    b.start()
    yield b.bootstrap
    b.kill()


def end_txn_v5(bs, txn_id, pid, epoch, commit):
    """EndTxn v5: (error code, producer id, epoch) - the id and epoch to go on with."""
    r = settle(f"EndTxn v5 ({'commit' if commit else 'abort'})", lambda: call(bs, EndTxnRequest(
        version=5, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit)),
        lambda r: r.error_code)
    return r.error_code, r.producer_id, r.producer_epoch


def produce_v12(bs, topic, partition, records, txn_id):
    """Produce v12 of one transactional batch; a partition leader whose coordinator is between two
    states (the previous transaction's markers are being written) answers NOT_ENOUGH_REPLICAS,
    which producers retry: asked again for a bounded time."""
    return settle(f"Produce v12 {topic}-{partition}", lambda: produce(bs, topic, partition, records, txn_id, version=12),
                  lambda r: 15 if r[0] == NOT_ENOUGH_REPLICAS else r[0])


def txn_offset_commit(bs, txn_id, pid, epoch, group, offsets, version=5):
    """TxnOffsetCommit for a group without members (generation -1); offsets {(topic, p): offset}.
    Returns {(topic, p): error}."""
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    topics = {}
    for (t, p), o in offsets.items():
        topics.setdefault(t, []).append(T.TxnOffsetCommitRequestPartition(
            partition_index=p, committed_offset=o, committed_leader_epoch=-1, committed_metadata=""))
    r = settle(f"TxnOffsetCommit v{version}", lambda: call(bs, TxnOffsetCommitRequest(
        version=version, transactional_id=txn_id, group_id=group, producer_id=pid, producer_epoch=epoch,
        generation_id=-1, member_id="", group_instance_id=None,
        topics=[T(name=t, partitions=ps) for t, ps in topics.items()])),
        lambda r: retriable_in(p.error_code for t in r.topics for p in t.partitions))
    return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}


def settled(bs, txn_id, state):
    """Waits until the transaction's markers are written (DescribeTransactions shows `state`)."""
    settle(f"DescribeTransactions({txn_id!r}) reaching {state}",
           lambda: describe(bs, txn_id), lambda s: NONE if s.transaction_state == state else 51)


def test_api_versions_finalizes_transaction_version_2(bs):
    """Kafka 4 clients use transactions v2 when the finalized `transaction.version` is 2 or more;
    kafka-python reads the features from ApiVersions v3+."""
    admin = KafkaAdminClient(bootstrap_servers=bs)
    try:
        features = admin.describe_features()
    finally:
        admin.close()
    tv = features.get("transaction.version", {})
    assert (tv.get("supported"), tv.get("finalized")) == ((0, 2), (2, 2)), features
    assert tv.get("finalized_epoch") is not None, f"a finalized feature needs an epoch >= 0: {features}"


def test_commit_and_abort_with_implicit_adds_and_an_epoch_bump_each(bs):
    create_topics(bs, {"v2-data": 2})
    pid, epoch = begin(bs, "v2-app")
    # Transaction 1: two partitions, no AddPartitionsToTxn.
    for p in (0, 1):
        err, _ = produce_v12(bs, "v2-data", p, batch(pid, epoch, 0, [f"c{p}".encode()]), "v2-app")
        assert err == NONE, f"Produce v12 to v2-data-{p}: {name(err)}"
    state = describe(bs, "v2-app")
    assert state.transaction_state == "Ongoing"
    assert sorted((t.topic, p) for t in state.topics for p in t.partitions) == [("v2-data", 0), ("v2-data", 1)]
    err, pid2, epoch2 = end_txn_v5(bs, "v2-app", pid, epoch, commit=True)
    assert (err, pid2, epoch2) == (NONE, pid, epoch + 1), "EndTxn v5 bumps the epoch and answers it"
    # Transaction 2 with the new epoch (sequences start over), aborted: bumps again.
    for p in (0, 1):
        err, _ = produce_v12(bs, "v2-data", p, batch(pid, epoch + 1, 0, [f"a{p}".encode()]), "v2-app")
        assert err == NONE, f"Produce v12 of the next transaction to v2-data-{p}: {name(err)}"
    assert end_txn_v5(bs, "v2-app", pid, epoch + 1, commit=False) == (NONE, pid, epoch + 2)
    # Transaction 3, committed, on partition 0 only: the end of what read_committed must show.
    err, _ = produce_v12(bs, "v2-data", 0, batch(pid, epoch + 2, 0, [b"last"]), "v2-app")
    assert err == NONE
    assert end_txn_v5(bs, "v2-app", pid, epoch + 2, commit=True) == (NONE, pid, epoch + 3)
    settled(bs, "v2-app", "CompleteCommit")

    tps = [("v2-data", 0), ("v2-data", 1)]
    committed = [v for _, _, _, v in read(bs, tps, "read_committed", has_all(b"c0", b"c1", b"last"))]
    assert sorted(committed) == [b"c0", b"c1", b"last"], f"read_committed saw {committed}"
    everything = [v for _, _, _, v in read(bs, tps, "read_uncommitted", has_all(b"c0", b"c1", b"a0", b"a1", b"last"))]
    assert sorted(everything) == [b"a0", b"a1", b"c0", b"c1", b"last"], f"read_uncommitted saw {everything}"
    # Nothing is left open: the last stable offset is the high watermark everywhere.
    assert list_offsets_latest(bs, tps, "read_committed") == list_offsets_latest(bs, tps, "read_uncommitted")


def test_a_late_batch_of_an_ended_transaction_is_fenced(bs):
    """The point of the epoch bump: a retry of a batch from a transaction that has ended (it was
    delayed in the network) must not open a transaction no coordinator knows."""
    create_topics(bs, {"v2-late": 1})
    pid, epoch = begin(bs, "v2-late-app")
    assert produce_v12(bs, "v2-late", 0, batch(pid, epoch, 0, [b"one"]), "v2-late-app")[0] == NONE
    assert end_txn_v5(bs, "v2-late-app", pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    settled(bs, "v2-late-app", "CompleteCommit")
    late = produce(bs, "v2-late", 0, batch(pid, epoch, 1, [b"late"]), "v2-late-app", version=12)[0]
    assert late == INVALID_PRODUCER_EPOCH, f"a batch of the ended epoch: Kafka answers 47, Strom {name(late)}"
    tps = [("v2-late", 0)]
    assert list_offsets_latest(bs, tps, "read_committed") == list_offsets_latest(bs, tps, "read_uncommitted")
    # The old epoch cannot end a transaction either (its retry of EndTxn is recognised, see below).
    assert end_txn_v5(bs, "v2-late-app", pid, epoch - 1, commit=True)[0] == PRODUCER_FENCED


def test_end_txn_v5_retry_and_a_blind_abort(bs):
    """A retried EndTxn (the epoch just below the current) gets the same answer; a v2 producer may
    abort without knowing whether its transaction started, which bumps the epoch too; committing
    nothing is INVALID_TXN_STATE as in Kafka."""
    create_topics(bs, {"v2-retry": 1})
    pid, epoch = begin(bs, "v2-retry-app")
    assert produce_v12(bs, "v2-retry", 0, batch(pid, epoch, 0, [b"x"]), "v2-retry-app")[0] == NONE
    assert end_txn_v5(bs, "v2-retry-app", pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    settled(bs, "v2-retry-app", "CompleteCommit")
    assert end_txn_v5(bs, "v2-retry-app", pid, epoch, commit=True) == (NONE, pid, epoch + 1), "a retried commit"
    assert end_txn_v5(bs, "v2-retry-app", pid, epoch + 1, commit=True)[0] == INVALID_TXN_STATE, "a commit of nothing"
    assert end_txn_v5(bs, "v2-retry-app", pid, epoch + 1, commit=False) == (NONE, pid, epoch + 2), "a blind abort"
    settled(bs, "v2-retry-app", "CompleteAbort")


def test_txn_offset_commit_v5_adds_the_offsets_partition(bs):
    create_topics(bs, {"v2-in": 2, "v2-out": 1})
    group = "v2-group"
    assert find_coordinator(bs, group, key_type=0).error_code == NONE
    pid, epoch = begin(bs, "v2-eos")
    tps = [("v2-in", 0), ("v2-in", 1)]
    # A v1 client must have sent AddOffsetsToTxn: without it, v4 is refused (KIP-890 part 1).
    got = txn_offset_commit(bs, "v2-eos", pid, epoch, group, {tp: 7 for tp in tps}, version=4)
    assert set(got.values()) == {TRANSACTION_ABORTABLE}, f"TxnOffsetCommit v4 without AddOffsetsToTxn: {got}"
    # v5 adds it; the offsets stay pending until the commit.
    assert produce_v12(bs, "v2-out", 0, batch(pid, epoch, 0, [b"out"]), "v2-eos")[0] == NONE
    got = txn_offset_commit(bs, "v2-eos", pid, epoch, group, {("v2-in", 0): 5, ("v2-in", 1): 9})
    assert set(got.values()) == {NONE}, f"TxnOffsetCommit v5: {got}"
    state = describe(bs, "v2-eos")
    assert "__consumer_offsets" in {t.topic for t in state.topics}, "the offsets partition joined the transaction"
    assert end_txn_v5(bs, "v2-eos", pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    assert group_offsets(bs, group, tps) == {("v2-in", 0): 5, ("v2-in", 1): 9}
    # An aborted one leaves them as they were.
    got = txn_offset_commit(bs, "v2-eos", pid, epoch + 1, group, {("v2-in", 0): 100, ("v2-in", 1): 100})
    assert set(got.values()) == {NONE}
    assert end_txn_v5(bs, "v2-eos", pid, epoch + 1, commit=False) == (NONE, pid, epoch + 2)
    assert group_offsets(bs, group, tps) == {("v2-in", 0): 5, ("v2-in", 1): 9}


def test_implicit_adds_through_a_coordinator_on_another_broker(tmp_path):
    """On a cluster the partition leaders and the group coordinator ask the transaction
    coordinator on its own broker (AddPartitionsToTxn v5, verify_only false)."""
    c = Cluster(tmp_path, n=3, overrides=accepted(["transaction.abort.timed.out.transaction.cleanup.interval.ms=500"]))
    c.start()
    try:
        bs = c.bootstrap()
        create_topics(bs, {"v2c": 6}, rf=1)
        txn_id = "v2-cluster-app"
        fc = find_coordinator(c.nodes[1].bootstrap, txn_id)
        assert fc.error_code == NONE
        coordinator = fc.node_id
        leaders = {p: c.wait_for_leader("v2c", p) for p in range(6)}
        remote = [p for p, leader in leaders.items() if leader != coordinator]
        assert remote, f"every partition led by the coordinator {coordinator}: {leaders}"
        # A group whose coordinator is not the transaction coordinator either.
        group = next(g for g in (f"v2-group-{i}" for i in range(100))
                     if find_coordinator(c.nodes[1].bootstrap, g, key_type=0).node_id != coordinator)
        group_node = find_coordinator(c.nodes[1].bootstrap, group, key_type=0).node_id
        pid, epoch = begin(c.nodes[coordinator].bootstrap, txn_id)
        for p in remote[:2]:
            leader = c.nodes[leaders[p]].bootstrap
            err, _ = produce_v12(leader, "v2c", p, batch(pid, epoch, 0, [f"r{p}".encode()]), txn_id)
            assert err == NONE, f"Produce v12 on node {leaders[p]} for v2c-{p}: {name(err)}"
        got = txn_offset_commit(c.nodes[group_node].bootstrap, txn_id, pid, epoch, group, {("v2c", 0): 3})
        assert got == {("v2c", 0): NONE}, f"TxnOffsetCommit v5 on node {group_node}: {got}"
        coord_bs = c.nodes[coordinator].bootstrap
        added = {(t.topic, p) for t in describe(coord_bs, txn_id).topics for p in t.partitions}
        assert {("v2c", p) for p in remote[:2]} <= added and any(t == "__consumer_offsets" for t, _ in added), added
        assert end_txn_v5(coord_bs, txn_id, pid, epoch, commit=True) == (NONE, pid, epoch + 1)
        tps = [("v2c", p) for p in remote[:2]]
        values = [f"r{p}".encode() for p in remote[:2]]
        got = [v for _, _, _, v in read(bs, tps, "read_committed", has_all(*values))]
        assert sorted(got) == sorted(values)
        assert group_offsets(bs, group, [("v2c", 0)]) == {("v2c", 0): 3}
    finally:
        c.kill_all()
