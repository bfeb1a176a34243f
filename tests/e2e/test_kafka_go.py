"""segmentio's kafka-go 0.2.1 (Debian's golang-github-segmentio-kafka-go-dev), driven through
go/kafkagoclient. It speaks fixed, old request versions: Produce v2 and Fetch v2 (message format
v1, so the broker converts), OffsetCommit v2, CreateTopics v0, DeleteTopics v1, Metadata v1.
"""
import time

import pytest
from confluent_kafka.admin import AdminClient

from golib import go_client, run  # noqa: F401 (go_client is a fixture)
from txnlib import create_topics, group_offsets, has_all, read


@pytest.fixture
def broker(broker_factory):
    """Groups rebalance at once (no 3 s group.initial.rebalance.delay.ms per group start), and
    the reader's 2 s session is allowed: kafka-go 0.2.1 never sends its LeaveGroup (see
    go/kafkagoclient), so a restarted reader waits for the old member's session to expire."""
    return broker_factory(["group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=1000"])


def messages(lines):
    return [(int(p), int(o), v) for _, p, o, v in (l.split(" ", 3) for l in lines if l.startswith("MSG "))]


def test_writer_and_group_reader_commit_and_resume(broker, go_client):
    kgo = go_client("kafkagoclient")
    bs, topic, group = broker.bootstrap, "kafka-go", "kafka-go-group"
    create_topics(bs, {topic: 2})
    assert "SENT 12" in run(kgo, bs, "produce", topic, 12, "m", broker=broker)
    sent = {f"m-{i}" for i in range(12)}
    # Another client reads what kafka-go wrote (message format v1, as the broker stored it).
    other = read(bs, [(topic, 0), (topic, 1)], "read_uncommitted", has_all(*(v.encode() for v in sent)))
    assert sorted(r[3].decode() for r in other) == sorted(sent)

    first = messages(run(kgo, bs, "consume-group", group, topic, 5, broker=broker))
    # A second reader process in the group resumes from the first one's commits.
    second = messages(run(kgo, bs, "consume-group", group, topic, 7, broker=broker))
    assert sorted(v for _, _, v in first + second) == sorted(sent), f"first {first}\nsecond {second}"
    ends = {p: 1 + max(o for q, o, _ in first + second if q == p) for p, _, _ in first + second}
    assert group_offsets(bs, group, [(topic, p) for p in ends]) == {(topic, p): e for p, e in ends.items()}


def test_conn_create_and_delete_topics(broker, go_client):
    kgo = go_client("kafkagoclient")
    topic = "kafka-go-admin"
    lines = run(kgo, broker.bootstrap, "admin", topic, broker=broker)
    assert lines[:4] == ["CREATE <nil>", "PARTITIONS 3", "CREATE_AGAIN <nil>", "DELETE <nil>"], lines
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deadline = time.time() + 10
    while topic in admin.list_topics(timeout=10).topics:  # Metadata without auto-creation
        assert time.time() < deadline, f"{topic} still listed after DeleteTopics"
        time.sleep(0.1)
