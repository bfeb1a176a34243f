"""A brand-new broker (no `__consumer_offsets`, no `__transaction_state` yet) answers the group
and transaction requests as Kafka does, and shuts down cleanly right after one (issue 18).

What Kafka answers (its coordinators have a context only for partitions of an existing topic
they were elected for; only FindCoordinator creates the internal topic):
- ListGroups / ListTransactions: an empty list, no error (COORDINATOR_LOAD_IN_PROGRESS only
  while a partition led here is loading).
- DescribeGroups, OffsetFetch, DescribeTransactions: NOT_COORDINATOR (the client asks
  FindCoordinator, which creates the topic); on the coordinator, an unknown group is Dead with no
  error, its offsets are -1, an unknown transactional id is TRANSACTIONAL_ID_NOT_FOUND.
Each client check runs on its own new broker: the first request is the one that used to fail.
"""
import asyncio
import json
import signal
import socket
import subprocess

from kafka import KafkaAdminClient
from kafka.protocol.admin import (DescribeGroupsRequest, DescribeTransactionsRequest, ListGroupsRequest,
                                  ListTransactionsRequest)
from kafka.protocol.consumer import OffsetFetchRequest

import txnwire
import wire
from conftest import STROM_BIN
from jslib import run_js
from txnwire import NONE, NOT_COORDINATOR, TRANSACTIONAL_ID_NOT_FOUND, call, name

INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSETS, TXN_STATE = "__consumer_offsets", "__transaction_state"
CLEAN_LINE = "shut down cleanly"
OPENED = "opened partition log"


def topic_exists(bs, topic):
    """Whether `topic` exists, asked without auto-creation (Metadata v4)."""
    return wire.metadata(bs, [topic], version=4, allow_auto_create=False)[topic][0] != UNKNOWN_TOPIC_OR_PARTITION


def list_groups(bs, version):
    r = call(bs, ListGroupsRequest(version=version, states_filter=[], types_filter=[]))
    return r.error_code, [g.group_id for g in r.groups]


def describe_group(bs, group):
    (g,) = call(bs, DescribeGroupsRequest(version=5, groups=[group], include_authorized_operations=False)).groups
    return g.error_code, g.group_state


def offset_fetch(bs, group, version):
    """(error, {(topic, partition): offset}) for `group`'s offset of t-0, at OffsetFetch `version`."""
    if version >= 8:
        G = OffsetFetchRequest.OffsetFetchRequestGroup
        r = call(bs, OffsetFetchRequest(version=version, require_stable=False, groups=[
            G(group_id=group, topics=[G.OffsetFetchRequestTopics(name="t", partition_indexes=[0])])]))
        (g,) = r.groups
        return g.error_code, {(t.name, p.partition_index): p.committed_offset for t in g.topics for p in t.partitions}
    T = OffsetFetchRequest.OffsetFetchRequestTopic
    r = call(bs, OffsetFetchRequest(version=version, group_id=group, topics=[T(name="t", partition_indexes=[0])],
                                    **({"require_stable": False} if version >= 7 else {})))
    return r.error_code, {(t.name, p.partition_index): p.committed_offset for t in r.topics for p in t.partitions}


def describe_txn(bs, txn_id):
    (t,) = call(bs, DescribeTransactionsRequest(version=0, transactional_ids=[txn_id])).transaction_states
    return t.error_code


def list_txns(bs):
    r = call(bs, ListTransactionsRequest(version=1, state_filters=[], producer_id_filters=[], duration_filter=-1))
    return r.error_code, [t.transactional_id for t in r.transaction_states]


# --- clients ---------------------------------------------------------------------------------

def test_aiokafka_list_consumer_groups_on_a_new_broker(broker):
    from aiokafka.admin import AIOKafkaAdminClient

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.list_consumer_groups()
        finally:
            await admin.close()

    assert asyncio.run(run()) == []


def test_kafkajs_list_groups_on_a_new_broker(broker):
    proc, out = run_js("groups.js", broker.bootstrap, timeout=120)
    assert out and out[-1].startswith("RESULT "), \
        f"kafkajs listGroups failed: {out[-1] if out else 'no result'}; exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert json.loads(out[-1][len("RESULT "):]) == {"groups": []}


def test_cli_consumer_groups_list_on_a_new_broker(broker):
    r = subprocess.run([STROM_BIN, "consumer-groups", "--bootstrap-server", broker.bootstrap, "--list"],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, ""), r.stderr


def test_kafka_python_list_groups_on_a_new_broker(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert admin.list_groups() == []
    finally:
        admin.close()


def test_kafka_python_describe_group_and_its_offsets_on_a_new_broker(broker):
    # Both find the coordinator first, which creates __consumer_offsets; the answers are then
    # the coordinator's for a group it does not know.
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_groups(["nobody"])["nobody"]
        assert (described["error"], described["group_state"], described["members"]) == (None, "Dead", [])
        assert admin.list_group_offsets("nobody") == {"nobody": {}}
        assert admin.list_groups() == []
    finally:
        admin.close()


# --- the wire --------------------------------------------------------------------------------

def test_group_requests_on_a_new_broker_answer_as_kafka(broker):
    bs = broker.bootstrap
    for v in range(0, 6):
        assert list_groups(bs, v) == (NONE, []), f"ListGroups v{v}"
    code, state = describe_group(bs, "g")
    assert code == NOT_COORDINATOR, f"DescribeGroups before the topic exists: {name(code)}, as Kafka: no coordinator yet"
    for v in (2, 7, 8):
        code, offsets = offset_fetch(bs, "g", v)
        assert code == NOT_COORDINATOR, f"OffsetFetch v{v} before the topic exists: {name(code)}"
    assert not topic_exists(bs, OFFSETS), "only FindCoordinator creates __consumer_offsets"

    err, _msg, node, _host, port = wire.find_coordinator(bs, "g", wire.COORDINATOR_GROUP)
    assert (err, port) == (NONE, int(bs.rsplit(":", 1)[1])), f"FindCoordinator: {name(err)}"
    assert topic_exists(bs, OFFSETS)
    # FindCoordinator answered once the topic was created and its partitions loaded here.
    assert describe_group(bs, "g") == (NONE, "Dead")
    for v in (2, 7, 8):
        assert offset_fetch(bs, "g", v) == (NONE, {("t", 0): -1}), f"OffsetFetch v{v}"
    for v in range(0, 6):
        assert list_groups(bs, v) == (NONE, []), f"ListGroups v{v}"


def test_transaction_requests_on_a_new_broker_answer_as_kafka(broker):
    bs = broker.bootstrap
    assert list_txns(bs) == (NONE, [])
    assert describe_txn(bs, "") == INVALID_REQUEST
    code = describe_txn(bs, "t")
    assert code == NOT_COORDINATOR, f"DescribeTransactions before the topic exists: {name(code)}"
    assert not topic_exists(bs, TXN_STATE), "only FindCoordinator creates __transaction_state"

    r = txnwire.find_coordinator(bs, "t")
    assert r.error_code == NONE
    assert topic_exists(bs, TXN_STATE)
    code = describe_txn(bs, "t")
    assert code == TRANSACTIONAL_ID_NOT_FOUND, name(code)
    assert list_txns(bs) == (NONE, [])


# --- shutdown right after the first request ----------------------------------------------------

def stop_and_read(b):
    assert b.stop() == 0
    b.wait_exited_and_read()
    lines = [l for l in b.log_since_start().splitlines() if l.strip()]
    assert lines and CLEAN_LINE in lines[-1], \
        "nothing may log after the clean-shutdown line:\n" + "\n".join(lines[-20:])
    return lines


def assert_restart_opens_everything_clean(b):
    b.start()
    lines = stop_and_read(b)
    opened = [l for l in lines if OPENED in l]
    unclean = [l for l in opened if "clean=false" in l]
    assert not unclean, f"{len(unclean)} of {len(opened)} partitions opened unclean after a clean shutdown:\n" + \
        "\n".join(unclean[:5])
    return opened


def test_list_groups_then_sigterm_is_a_clean_shutdown(broker):
    # Whatever ListGroups answered (the tests above check that), SIGTERM follows at once.
    call(broker.bootstrap, ListGroupsRequest(version=4, states_filter=[]))
    stop_and_read(broker)
    opened = assert_restart_opens_everything_clean(broker)
    assert not [l for l in opened if OFFSETS in l], "ListGroups created no offsets partition"


def test_find_coordinator_then_sigterm_is_a_clean_shutdown(broker):
    # The request is sent and SIGTERM follows without waiting for the answer: the topic's
    # creation is under way (or about to be) while the broker shuts down. Either shutdown awaits
    # it, and the restart opens all of its partitions clean, or it never happens.
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(wire.frame(10, 1, wire.kstr("g") + bytes([wire.COORDINATOR_GROUP]), correlation_id=1010))
        broker.proc.send_signal(signal.SIGTERM)
        stop_and_read(broker)
    opened = assert_restart_opens_everything_clean(broker)
    offsets = [l for l in opened if f"{OFFSETS}-" in l]
    assert len(offsets) in (0, 50), f"{len(offsets)} of the 50 offsets partitions opened"
