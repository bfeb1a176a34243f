"""Shopify's sarama 1.22 (Debian's golang-github-shopify-sarama-dev, the Go client in many
deployed tools), driven through go/saramaclient. sarama's `Config.Version` picks the request
versions and the message format, so each check runs with several: V0_10_2_0 (the oldest that
has consumer groups: Produce v2 and Fetch v3 with message format v1), V1_0_0_0 and V2_0_0_0
(record batches v2) and V2_2_0_0, the newest sarama 1.22 knows.

sarama commits with OffsetCommit v1 (per-partition commit timestamp) unless
Consumer.Offsets.Retention is set, whatever its Version: a restarted group must resume from
those commits, not start over.
"""
from collections import defaultdict

import pytest

from golib import go_client, run  # noqa: F401 (go_client is a fixture)
from txnlib import create_topics

VERSIONS = ["0.10.2.0", "1.0.0", "2.0.0", "2.2.0"]


@pytest.fixture
def broker(broker_factory):
    """Groups rebalance at once (no 3 s group.initial.rebalance.delay.ms per group start)."""
    return broker_factory(["group.initial.rebalance.delay.ms=0"])


def records(lines, tag):
    """`TAG partition offset value` lines -> [(partition, offset, value)]."""
    return [(int(p), int(o), v) for t, p, o, v in (l.split(" ", 3) for l in lines if l.startswith(tag + " "))]


@pytest.mark.parametrize("version", VERSIONS)
def test_produce_group_consume_commit_and_resume(broker, go_client, version):
    sarama = go_client("saramaclient")
    bs, topic, group = broker.bootstrap, f"sarama-{version}", f"sarama-group-{version}"
    create_topics(bs, {topic: 2})
    sent = records(run(sarama, bs, version, "produce", topic, 12, "m", broker=broker), "SENT")
    assert len(sent) == 12 and {p for p, _, _ in sent} == {0, 1}, sent
    for p in (0, 1):  # the sync producer's offsets are each partition's 0, 1, 2, ...
        assert [o for q, o, _ in sent if q == p] == list(range(sum(q == p for q, _, _ in sent))), sent

    first = records(run(sarama, bs, version, "consume-group", group, topic, 5, broker=broker), "MSG")
    # A new sarama process in the same group: it must continue from what the first one committed
    # (with OffsetCommit v1) on each partition, so nothing is read twice and nothing is skipped.
    second = records(run(sarama, bs, version, "consume-group", group, topic, 7, broker=broker), "MSG")
    assert len(first) == 5 and len(second) == 7, (first, second)
    assert sorted(first + second) == sorted(sent), f"first run {first}\nsecond run {second}"
    firsts = defaultdict(list)
    for p, o, _ in first:
        firsts[p].append(o)
    for p, o, _ in second:
        assert o >= len(firsts[p]), f"partition {p} offset {o} read again after a restart: {first} {second}"

    lines = run(sarama, bs, version, "groups", group, topic, broker=broker)
    assert f"LISTED {group} consumer" in lines, lines
    assert f"DESCRIBED {group} Empty consumer 0 0" in lines, lines
    ends = {p: sum(q == p for q, _, _ in sent) for p in (0, 1)}
    assert [l for l in lines if l.startswith("OFFSET ")] == [f"OFFSET {p} {ends[p]} 0" for p in (0, 1)], lines


# DescribeConfigs (and so ClusterAdmin.ListTopics) came with Kafka 0.11: sarama refuses it itself
# below that version, so the admin checks start there (CreateTopics v1, DescribeConfigs v0).
@pytest.mark.parametrize("version", ["0.11.0.0", "1.0.0", "2.2.0"])
def test_cluster_admin(broker, go_client, version):
    sarama = go_client("saramaclient")
    topic = f"sarama-admin-{version}"
    lines = run(sarama, broker.bootstrap, version, "admin", topic, broker=broker)
    assert lines[0] == "CREATE <nil>", lines
    assert lines[1].startswith("CREATE_AGAIN kafka server: Topic with this name already exists"), lines
    assert f"LIST {topic} 3 1" in lines, lines
    assert "CONFIG cleanup.policy=delete default=true" in lines, lines
    assert "CONFIG retention.ms=3600000 default=false" in lines, lines
    assert f"DESCRIBE {topic} 3 0" in lines, lines
    assert "DELETE <nil>" in lines and "LISTED_AFTER_DELETE false" in lines, lines
