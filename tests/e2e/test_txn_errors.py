"""Bad transactional input on the wire: the broker answers what Apache Kafka answers.

Every request here is built with kafka-python 3's protocol messages (generated from Kafka's own JSON
schemas, every version) and sent on a fresh socket, below any client's retries. The expected codes
are Kafka's, read from its source (apache/kafka trunk, late 2024):

- core/.../coordinator/transaction/TransactionCoordinator.scala: handleInitProducerId,
  handleAddPartitionsToTransaction, endTransaction, handleDescribeTransactions;
  TransactionStateManager.scala: validateTransactionTimeoutMs, listTransactionStates.
- core/.../server/KafkaApis.scala: the PRODUCER_FENCED -> INVALID_PRODUCER_EPOCH mapping for old
  versions, AddPartitionsToTxn's topic checks, Produce's TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
- core/.../server/ReplicaManager.scala + AddPartitionsToTxnManager.scala: KIP-890 part 1 verification
  of a transactional produce (INVALID_TXN_STATE up to Produce v10, TRANSACTION_ABORTABLE from v11).
- storage/.../LogValidator.java (no control batches from clients: INVALID_RECORD) and
  ProducerAppendInfo.java (no non-transactional write inside an open transaction: INVALID_TXN_STATE).
- group-coordinator/.../OffsetMetadataManager.java validateTransactionalOffsetCommit (a missing
  group with generation >= 0: ILLEGAL_GENERATION).

Retriable coordinator answers (loading, not available, not coordinator, concurrent transactions) are
asked again for a bounded time; every other answer is asserted at once.
"""
import time

import pytest
from kafka.protocol.admin import ListTransactionsRequest
from kafka.protocol.producer import InitProducerIdRequest, TxnOffsetCommitRequest

from conftest import Broker
from txnlib import SINGLE_NODE_TXN_OVERRIDES, accepted, create_topics
from txnwire import (ILLEGAL_GENERATION, INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING, INVALID_RECORD,
                     INVALID_TRANSACTION_TIMEOUT, INVALID_TXN_STATE, NONE, OPERATION_NOT_ATTEMPTED,
                     PRODUCER_FENCED, SETTLE_S, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                     TRANSACTIONAL_ID_NOT_FOUND, TRANSACTION_ABORTABLE, UNKNOWN_TOPIC_OR_PARTITION,
                     add_offsets, add_partitions, batch, begin, call, control_batch, describe, end_txn,
                     find_coordinator, init_pid, latest, name, produce, retriable_in, settle)

MAX_TIMEOUT_MS = 300_000  # transaction.max.timeout.ms of the shared broker (Kafka's default is 900000)


def kafka_says(api, expected, got, where):
    """The failure message of a mismatch with Kafka: what was expected, what came, and where Kafka
    decides it."""
    return f"{api}: Kafka answers {name(expected)}, Strom answered {name(got)} [Kafka: {where}]"


class Kafka:
    """Collects the answers that differ from Kafka's, so that one test reports all of its
    mismatches rather than the first; `done()` fails the test with every one of them."""

    def __init__(self):
        self.mismatches = []

    def expect(self, api, expected, got, where):
        if got != expected:
            self.mismatches.append(kafka_says(api, expected, got, where))

    def done(self):
        assert not self.mismatches, "Strom differs from Apache Kafka:\n  " + "\n  ".join(self.mismatches)


# --- the broker ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bs(tmp_path_factory):
    """One broker for the whole file (each test uses its own transactional ids, topics and groups),
    with transaction.max.timeout.ms lowered to MAX_TIMEOUT_MS."""
    b = Broker(tmp_path_factory.mktemp("txn-errors"),
               accepted(SINGLE_NODE_TXN_OVERRIDES) + [f"transaction.max.timeout.ms={MAX_TIMEOUT_MS}"])
    b.start()
    yield b.bootstrap
    b.kill()


# --- 1. InitProducerId's transaction timeout ------------------------------------------------------

@pytest.mark.parametrize("version", [0, 4])
def test_init_producer_id_refuses_a_timeout_outside_1_to_max(bs, version):
    kafka = Kafka()
    txn_id = f"t1-timeout-v{version}"
    assert find_coordinator(bs, txn_id).error_code == NONE
    for timeout_ms in (MAX_TIMEOUT_MS + 1, 900_001, 0, -1, -(2 ** 31)):
        err, pid, epoch = init_pid(bs, txn_id, timeout_ms, version)
        kafka.expect(f"InitProducerId v{version} transaction_timeout_ms={timeout_ms} (max {MAX_TIMEOUT_MS})",
                     INVALID_TRANSACTION_TIMEOUT, err,
                     "TransactionStateManager.validateTransactionTimeoutMs: 0 < timeout <= transaction.max.timeout.ms")
        kafka.expect(f"InitProducerId v{version} transaction_timeout_ms={timeout_ms}: producer id and epoch of the "
                     f"error answer", (-1, -1), (pid, epoch), "TransactionCoordinator.initTransactionError")
    # Kafka checks the timeout before it looks up or creates the id's state: nothing was created.
    kafka.expect(f"DescribeTransactions of {txn_id!r} after only refused InitProducerIds", TRANSACTIONAL_ID_NOT_FOUND,
                 describe(bs, txn_id).error_code, "TransactionCoordinator.handleInitProducerId checks the timeout first")
    kafka.done()
    err, pid, epoch = init_pid(bs, txn_id, MAX_TIMEOUT_MS, version)
    assert (err, epoch) == (NONE, 0) and pid >= 0, (name(err), pid, epoch)
    assert describe(bs, txn_id).transaction_timeout_ms == MAX_TIMEOUT_MS


def test_init_producer_id_timeout_against_the_default_max(broker_factory):
    bs = broker_factory(accepted(SINGLE_NODE_TXN_OVERRIDES)).bootstrap
    assert find_coordinator(bs, "t1-default").error_code == NONE
    got = init_pid(bs, "t1-default", 900_001)[0]
    assert got == INVALID_TRANSACTION_TIMEOUT, kafka_says(
        "InitProducerId v4 transaction_timeout_ms=900001 (default max 900000)", INVALID_TRANSACTION_TIMEOUT, got,
        "TransactionStateManager.validateTransactionTimeoutMs")
    err, pid, epoch = init_pid(bs, "t1-default", 900_000)
    assert (err, epoch) == (NONE, 0) and pid >= 0


# --- 2. InitProducerId twice ----------------------------------------------------------------------

INIT_FENCED_WHERE = ("TransactionCoordinator.prepareInitProducerIdTransit (another producer id) and "
                     "TransactionMetadata.prepareIncrementProducerEpoch (an old epoch) answer PRODUCER_FENCED")


def test_second_init_producer_id_keeps_the_id_and_bumps_the_epoch(bs):
    fc = find_coordinator(bs, "t2-bump")
    assert (fc.error_code, fc.node_id, f"{fc.host}:{fc.port}") == (NONE, 1, bs), fc
    err, pid, epoch = init_pid(bs, "t2-bump")
    assert err == NONE and pid >= 0 and epoch == 0, (name(err), pid, epoch)
    err2, pid2, epoch2 = init_pid(bs, "t2-bump")
    assert (err2, pid2, epoch2) == (NONE, pid, 1)
    state = describe(bs, "t2-bump")
    assert (state.error_code, state.producer_id, state.producer_epoch, state.transaction_state) == (NONE, pid, 1, "Empty")
    # Another transactional id gets another producer id.
    assert begin(bs, "t2-other")[0] != pid

    # KIP-360 (InitProducerId v3+ carries the caller's id and epoch): the first producer, still on
    # epoch 0, asks again, and so does a stranger with another producer id: both are fenced and
    # nothing changes. (v3 and below: see test_fenced_producer_on_old_versions.)
    kafka = Kafka()
    for label, producer_id, producer_epoch in [("the fenced epoch 0", pid, 0), ("another producer id", pid + 1000, 1)]:
        r = call(bs, InitProducerIdRequest(version=4, transactional_id="t2-bump", transaction_timeout_ms=60_000,
                                           producer_id=producer_id, producer_epoch=producer_epoch))
        kafka.expect(f"InitProducerId v4 for 't2-bump' with {label} (current producer id {pid}, epoch 1)",
                     PRODUCER_FENCED, r.error_code, INIT_FENCED_WHERE)
    kafka.done()
    # The current holder (epoch 1) may bump its own epoch.
    r = call(bs, InitProducerIdRequest(version=4, transactional_id="t2-bump", transaction_timeout_ms=60_000,
                                       producer_id=pid, producer_epoch=1))
    assert (r.error_code, r.producer_id, r.producer_epoch) == (NONE, pid, 2), r


# --- 3. AddPartitionsToTxn ------------------------------------------------------------------------

def test_add_partitions_with_a_fenced_epoch_or_an_unknown_producer_id(bs):
    kafka = Kafka()
    create_topics(bs, {"t3": 1})
    begin(bs, "t3-fenced")
    pid, epoch = begin(bs, "t3-fenced")  # the first producer (epoch 0) is fenced
    assert epoch == 1
    for version in (2, 3):  # v0/v1: see test_fenced_producer_on_old_versions
        got = add_partitions(bs, "t3-fenced", pid, 0, {"t3": [0]}, version)[("t3", 0)]
        kafka.expect(f"AddPartitionsToTxn v{version} with the fenced epoch 0 (current 1)", PRODUCER_FENCED, got,
                     "TransactionCoordinator.handleAddPartitionsToTransaction")
    for label, txn_id, producer_id in [("a producer id this transactional id does not have", "t3-fenced", pid + 1000),
                                       ("a transactional id never initialized", "t3-never", pid)]:
        got = add_partitions(bs, txn_id, producer_id, epoch, {"t3": [0]})[("t3", 0)]
        kafka.expect(f"AddPartitionsToTxn v3 with {label}", INVALID_PRODUCER_ID_MAPPING, got,
                     "TransactionCoordinator.handleAddPartitionsToTransaction")
    kafka.done()
    # None of that touched the transaction; the right producer id and epoch are accepted.
    assert describe(bs, "t3-fenced").transaction_state == "Empty"
    assert add_partitions(bs, "t3-fenced", pid, epoch, {"t3": [0]}) == {("t3", 0): NONE}
    assert describe(bs, "t3-fenced").transaction_state == "Ongoing"


def test_add_partitions_of_an_unknown_topic_adds_nothing(bs):
    """KafkaApis.handleAddPartitionsToTxnRequest: a partition missing from the metadata cache gets
    UNKNOWN_TOPIC_OR_PARTITION, every other one OPERATION_NOT_ATTEMPTED, and the coordinator is not
    asked at all (the transaction stays as it was)."""
    create_topics(bs, {"t3u": 1})
    pid, epoch = begin(bs, "t3-unknown-topic")
    got = add_partitions(bs, "t3-unknown-topic", pid, epoch, {"t3u": [0], "t3u-missing": [0]})
    expected = {("t3u", 0): OPERATION_NOT_ATTEMPTED, ("t3u-missing", 0): UNKNOWN_TOPIC_OR_PARTITION}
    state = describe(bs, "t3-unknown-topic")
    assert (got, state.transaction_state, list(state.topics)) == (expected, "Empty", []), (
        f"AddPartitionsToTxn v3 of [t3u-0, t3u-missing-0] (topic t3u-missing does not exist): Kafka answers "
        f"{expected} and leaves the transaction Empty; Strom answered {got}, transaction {state.transaction_state} "
        f"with {[(t.topic, list(t.partitions)) for t in state.topics]} "
        f"[Kafka: KafkaApis.handleAddPartitionsToTxnRequest, metadataCache.contains check]")


# --- 4. EndTxn ------------------------------------------------------------------------------------

def test_end_txn_errors(bs):
    kafka = Kafka()
    create_topics(bs, {"t4": 1})
    pid, epoch = begin(bs, "t4-end")
    where = "TransactionCoordinator.endTransaction"
    # Empty: nothing to end, either way.
    for commit in (True, False):
        kafka.expect(f"EndTxn v3 committed={commit} in state Empty (right after InitProducerId)", INVALID_TXN_STATE,
                     end_txn(bs, "t4-end", pid, epoch, commit), where)
    # The wrong producer id, or an id no one initialized.
    kafka.expect("EndTxn v3 with another producer id", INVALID_PRODUCER_ID_MAPPING,
                 end_txn(bs, "t4-end", pid + 1000, epoch, True), where)
    kafka.expect("EndTxn v3 for a transactional id never initialized", INVALID_PRODUCER_ID_MAPPING,
                 end_txn(bs, "t4-never", pid, epoch, True), where)

    # A committed transaction: the same result again is fine, the other one is not.
    assert add_partitions(bs, "t4-end", pid, epoch, {"t4": [0]}) == {("t4", 0): NONE}
    assert end_txn(bs, "t4-end", pid, epoch, True) == NONE
    # PrepareCommit or CompleteCommit: abort is INVALID_TXN_STATE in both.
    kafka.expect("EndTxn(abort) v3 right after EndTxn(commit)", INVALID_TXN_STATE,
                 end_txn(bs, "t4-end", pid, epoch, False), where)
    deadline = time.time() + SETTLE_S
    while describe(bs, "t4-end").transaction_state != "CompleteCommit":
        assert time.time() < deadline, f"the commit never completed: {describe(bs, 't4-end')}"
        time.sleep(0.1)
    kafka.expect("EndTxn(commit) v3 retried after the commit completed", NONE,
                 end_txn(bs, "t4-end", pid, epoch, True), where + " (CompleteCommit + COMMIT: Left(Errors.NONE))")
    for version in (0, 3):
        kafka.expect(f"EndTxn(abort) v{version} after the commit completed", INVALID_TXN_STATE,
                     end_txn(bs, "t4-end", pid, epoch, False, version), where + " (CompleteCommit + ABORT)")
    assert describe(bs, "t4-end").transaction_state == "CompleteCommit"

    # A fenced epoch (v0/v1: see test_fenced_producer_on_old_versions).
    _, new_epoch = begin(bs, "t4-end")
    assert new_epoch == epoch + 1
    for version in (2, 3):
        kafka.expect(f"EndTxn v{version} with the fenced epoch {epoch} (current {new_epoch})", PRODUCER_FENCED,
                     end_txn(bs, "t4-end", pid, epoch, True, version), where)
    kafka.done()


# --- 3/4. A fenced producer on versions that predate PRODUCER_FENCED --------------------------------

@pytest.mark.parametrize("api", ["InitProducerId", "AddPartitionsToTxn", "EndTxn"])
def test_fenced_producer_on_old_versions(bs, api):
    """PRODUCER_FENCED (90) came with KIP-588; a client on an older version of these APIs gets
    INVALID_PRODUCER_EPOCH (47) instead: KafkaApis maps it for InitProducerId < v4
    (handleInitProducerIdRequest), AddPartitionsToTxn < v2 (handleAddPartitionsToTxnRequest) and
    EndTxn < v2 (handleEndTxnRequest)."""
    kafka = Kafka()
    create_topics(bs, {f"told-{api}": 1})
    txn_id = f"told-{api}"
    begin(bs, txn_id)
    pid, epoch = begin(bs, txn_id)  # epoch 0 is fenced now
    assert epoch == 1
    if api == "InitProducerId":
        for version in (3, 4):
            r = call(bs, InitProducerIdRequest(version=version, transactional_id=txn_id, transaction_timeout_ms=60_000,
                                               producer_id=pid, producer_epoch=0))
            kafka.expect(f"InitProducerId v{version} with the fenced epoch 0 (current 1)",
                         INVALID_PRODUCER_EPOCH if version < 4 else PRODUCER_FENCED, r.error_code,
                         INIT_FENCED_WHERE + "; KafkaApis.handleInitProducerIdRequest maps it when version < 4")
    elif api == "AddPartitionsToTxn":
        for version in (0, 1, 2):
            got = add_partitions(bs, txn_id, pid, 0, {txn_id: [0]}, version)[(txn_id, 0)]
            kafka.expect(f"AddPartitionsToTxn v{version} with the fenced epoch 0 (current 1)",
                         INVALID_PRODUCER_EPOCH if version < 2 else PRODUCER_FENCED, got,
                         "TransactionCoordinator.handleAddPartitionsToTransaction answers PRODUCER_FENCED; "
                         "KafkaApis.handleAddPartitionsToTxnRequest maps it when version < 2")
    else:
        assert add_partitions(bs, txn_id, pid, epoch, {txn_id: [0]}) == {(txn_id, 0): NONE}
        for version in (0, 1, 2):
            kafka.expect(f"EndTxn v{version} with the fenced epoch 0 (current 1)",
                         INVALID_PRODUCER_EPOCH if version < 2 else PRODUCER_FENCED,
                         end_txn(bs, txn_id, pid, 0, True, version),
                         "TransactionCoordinator.endTransaction answers PRODUCER_FENCED; "
                         "KafkaApis.handleEndTxnRequest maps it when version < 2")
    kafka.done()


# --- 5. Transactional Produce ---------------------------------------------------------------------

VERIFY_WHERE = ("ReplicaManager.handleProduceAppend verification; AddPartitionsToTxnManager turns the "
                "coordinator's TRANSACTION_ABORTABLE into INVALID_TXN_STATE unless the Produce version is > 10 "
                "(KafkaApis: genericError)")


def test_transactional_produce_to_a_partition_not_in_the_transaction(bs):
    kafka = Kafka()
    create_topics(bs, {"t5": 2})
    pid, epoch = begin(bs, "t5-verify")
    assert add_partitions(bs, "t5-verify", pid, epoch, {"t5": [1]}) == {("t5", 1): NONE}
    records = batch(pid, epoch, 0, [b"a", b"b", b"c"])
    for version, expected in [(3, INVALID_TXN_STATE), (10, INVALID_TXN_STATE), (11, TRANSACTION_ABORTABLE)]:
        got, _ = produce(bs, "t5", 0, records, "t5-verify", version)
        kafka.expect(f"Produce v{version} of a transactional batch to t5-0, not added to the transaction",
                     expected, got, VERIFY_WHERE)
    kafka.expect("ListOffsets(latest) of t5-0 after the refused batches", 0, latest(bs, "t5", 0), "nothing appended")
    # Once the partition is in the transaction, the very same batch goes in.
    assert add_partitions(bs, "t5-verify", pid, epoch, {"t5": [0]}) == {("t5", 0): NONE}
    assert produce(bs, "t5", 0, records, "t5-verify") == (NONE, 0)
    assert latest(bs, "t5", 0) == 3
    kafka.done()


def test_transactional_produce_without_a_transactional_id(bs):
    create_topics(bs, {"t5n": 1})
    pid, epoch = begin(bs, "t5-no-id")
    assert add_partitions(bs, "t5-no-id", pid, epoch, {"t5n": [0]}) == {("t5n", 0): NONE}
    got, _ = produce(bs, "t5n", 0, batch(pid, epoch, 0, [b"x"]), None)
    assert got == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, kafka_says(
        "Produce v3 of a transactional batch with transactional_id null", TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        got, "KafkaApis.handleProduceRequest, RequestUtils.hasTransactionalRecords")
    assert latest(bs, "t5n", 0) == 0


def test_control_batch_from_a_client_is_refused(bs):
    kafka = Kafka()
    create_topics(bs, {"t5c": 1})
    pid, epoch = begin(bs, "t5-control")
    assert add_partitions(bs, "t5-control", pid, epoch, {"t5c": [0]}) == {("t5c", 0): NONE}
    assert produce(bs, "t5c", 0, batch(pid, epoch, 0, [b"d0", b"d1"]), "t5-control") == (NONE, 0)
    # 0x30: a transactional commit marker as the coordinator writes it (sequence -1), then with the
    # next sequence; 0x20: a non-transactional control batch.
    for attributes, seq in [(0x30, -1), (0x30, 2), (0x20, 2)]:
        got, _ = produce(bs, "t5c", 0, control_batch(pid, epoch, seq, attributes), "t5-control")
        kafka.expect(f"Produce v3 of a control batch (attributes {attributes:#x}, base sequence {seq}) to a "
                     f"partition of the open transaction", INVALID_RECORD, got,
                     "LogValidator.validateBatch: 'Clients are not allowed to write control records'")
    kafka.expect("ListOffsets(latest) of t5c-0 after the refused control batches", 2, latest(bs, "t5c", 0),
                 "nothing appended")
    kafka.done()
    # The transaction is still whole: it commits.
    assert end_txn(bs, "t5-control", pid, epoch, True) == NONE


# --- 6. A non-transactional batch inside an open transaction --------------------------------------

def test_idempotent_batch_while_the_producers_transaction_is_open(bs):
    kafka = Kafka()
    create_topics(bs, {"t6": 1})
    pid, epoch = begin(bs, "t6-mixed")
    assert add_partitions(bs, "t6-mixed", pid, epoch, {"t6": [0]}) == {("t6", 0): NONE}
    assert produce(bs, "t6", 0, batch(pid, epoch, 0, [b"t0", b"t1", b"t2"]), "t6-mixed") == (NONE, 0)
    # The next sequence (3), the same producer id and epoch, but no transactional attribute.
    plain = batch(pid, epoch, 3, [b"plain"], transactional=False)
    for txn_id in (None, "t6-mixed"):
        got, _ = produce(bs, "t6", 0, plain, txn_id)
        kafka.expect(f"Produce v3 (transactional_id={txn_id!r}) of a non-transactional batch (sequence 3) from "
                     f"producer {pid} whose transaction is open in the partition", INVALID_TXN_STATE, got,
                     "ProducerAppendInfo.appendDataBatch: 'Expected transactional write from producer'")
    kafka.expect("ListOffsets(latest) of t6-0 after the refused batches", 3, latest(bs, "t6", 0), "nothing appended")
    kafka.done()


# --- 7. DescribeTransactions / ListTransactions ---------------------------------------------------

def test_describe_and_list_transactions_with_unknown_input(bs):
    assert find_coordinator(bs, "t7-never-seen").error_code == NONE
    state = describe(bs, "t7-never-seen")
    assert state.error_code == TRANSACTIONAL_ID_NOT_FOUND, kafka_says(
        "DescribeTransactions v0 of an unknown id", TRANSACTIONAL_ID_NOT_FOUND, state.error_code,
        "TransactionCoordinator.handleDescribeTransactions")

    create_topics(bs, {"t7": 1})
    pid, epoch = begin(bs, "t7-open")
    assert add_partitions(bs, "t7-open", pid, epoch, {"t7": [0]}) == {("t7", 0): NONE}
    for version in (0, 1):
        extra = {"duration_filter": -1} if version >= 1 else {}
        r = call(bs, ListTransactionsRequest(version=version, state_filters=["Bogus"], producer_id_filters=[], **extra))
        # Only unknown states asked for: reported, and nothing matches (TransactionStateManager.listTransactionStates).
        assert (r.error_code, list(r.unknown_state_filters), list(r.transaction_states)) == (NONE, ["Bogus"], []), r
        # State names are matched exactly (TransactionState.fromName): "ongoing" is unknown.
        r = call(bs, ListTransactionsRequest(version=version, state_filters=["Ongoing", "Bogus", "ongoing"],
                                             producer_id_filters=[], **extra))
        assert r.error_code == NONE and sorted(r.unknown_state_filters) == ["Bogus", "ongoing"], r
        listed = {(s.transactional_id, s.producer_id, s.transaction_state) for s in r.transaction_states}
        assert ("t7-open", pid, "Ongoing") in listed and {s for _, _, s in listed} == {"Ongoing"}, r


# --- 8. TxnOffsetCommit ---------------------------------------------------------------------------

def test_txn_offset_commit_with_a_generation_for_a_group_that_does_not_exist(bs):
    create_topics(bs, {"t8": 2})
    assert find_coordinator(bs, "t8-group", key_type=0).error_code == NONE
    pid, epoch = begin(bs, "t8-offsets")
    assert add_offsets(bs, "t8-offsets", pid, epoch, "t8-group") == NONE
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic

    def commit(group, generation, member):
        r = settle("TxnOffsetCommit v3", lambda: call(bs, TxnOffsetCommitRequest(
            version=3, transactional_id="t8-offsets", group_id=group, producer_id=pid, producer_epoch=epoch,
            generation_id=generation, member_id=member, group_instance_id=None,
            topics=[T(name="t8", partitions=[T.TxnOffsetCommitRequestPartition(
                partition_index=p, committed_offset=5, committed_leader_epoch=-1, committed_metadata="")
                for p in (0, 1)])])),
            lambda r: retriable_in(p.error_code for t in r.topics for p in t.partitions))
        return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}

    got = commit("t8-group", 3, "ghost-member")
    assert got == {("t8", 0): ILLEGAL_GENERATION, ("t8", 1): ILLEGAL_GENERATION}, (
        f"TxnOffsetCommit v3 generation 3 for the missing group t8-group: Kafka answers ILLEGAL_GENERATION (22) "
        f"for every partition, Strom answered {got} [Kafka: OffsetMetadataManager.validateTransactionalOffsetCommit]")
    # Generation -1 with no member: a simple group, accepted (the same function's other branch).
    assert commit("t8-group", -1, "") == {("t8", 0): NONE, ("t8", 1): NONE}
