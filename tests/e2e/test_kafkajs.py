"""kafkajs 2.2.4 (Node.js) beyond transactions (test_transactions_clients.py), through
js/clients.js: its admin client, a producer, and a consumer group committing offsets that a new
consumer in the group resumes from."""
import json

import pytest

from jslib import run_js


@pytest.fixture
def broker(broker_factory):
    """Groups rebalance at once (no 3 s group.initial.rebalance.delay.ms per group start)."""
    return broker_factory(["group.initial.rebalance.delay.ms=0"])


def test_admin_producer_and_group_commit_and_resume(broker):
    topic, group = "js-clients", "js-clients-group"
    proc, out = run_js("clients.js", broker.bootstrap, topic, group, timeout=150)
    assert out and out[-1].startswith("RESULT "), \
        f"kafkajs failed: {out[-1] if out else 'no result'}\nstderr tail:\n{proc.stderr[-3000:]}"
    r = json.loads(out[-1][len("RESULT "):])
    assert r["created"] is True and r["partitions"] == [0, 1], r
    assert r["configs"] == [["retention.ms", "3600000"]], r["configs"]
    assert r["topics"] == [topic], "the deleted topic is gone, the other listed"
    sent = [f"m-{i}" for i in range(12)]
    read = r["first"] + r["second"]
    assert len(r["first"]) == 5 and sorted(v for *_, v in read) == sorted(sent), (r["first"], r["second"])
    # Each message at the offset its partition's producer ack implies, and none twice.
    assert len({(p, o) for p, o, _ in read}) == 12
    ends = {p: 1 + max(o for q, o, _ in read if q == p) for p, _, _ in read}
    assert r["committed"] == sorted([p, e] for p, e in ends.items()), r["committed"]
    assert r["group"] == [[group, "Empty", "consumer", 0]], r["group"]
