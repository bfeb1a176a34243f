"""kcat, on Debian's librdkafka 2.0.2: an older client that negotiates older API versions
(ListOffsets v2, Metadata v4, Produce v7), which the Python clients never exercise."""
import json
import shutil
import subprocess

import pytest

from txnlib import group_offsets

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (scripts/test.sh installs it as root)")


def kcat(bootstrap, *args, stdin=None):
    p = subprocess.run(["kcat", "-b", bootstrap, *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture
def fast_groups(broker_factory):
    """A broker whose groups rebalance at once (no 3 s group.initial.rebalance.delay.ms)."""
    return broker_factory(["group.initial.rebalance.delay.ms=0"])


def test_produce_consume_keys_headers_offsets(broker):
    kcat(broker.bootstrap, "-t", "kc", "-P", "-K:", "-H", "origin=kcat", stdin="a:1\nb:2\nc:3\n")
    out = kcat(broker.bootstrap, "-t", "kc", "-C", "-e", "-f", "%o %k %s %h\n")
    assert out.splitlines() == ["0 a 1 origin=kcat", "1 b 2 origin=kcat", "2 c 3 origin=kcat"]
    # Relative offsets go through ListOffsets (v2 with this librdkafka).
    assert kcat(broker.bootstrap, "-t", "kc", "-C", "-o", "-2", "-e", "-f", "%o\n").split() == ["1", "2"]
    assert "kc [0] offset 0" in kcat(broker.bootstrap, "-Q", "-t", "kc:0:0")
    listing = kcat(broker.bootstrap, "-L", "-t", "kc")
    assert 'topic "kc" with 1 partitions' in listing and "leader 1" in listing


def test_group_consume_commit_and_resume(fast_groups):
    bs = fast_groups.bootstrap
    kcat(bs, "-t", "kg", "-P", "-p", "0", stdin="".join(f"m{i}\n" for i in range(10)))
    # -G: librdkafka's consumer group; the offsets of what it handed to kcat are committed (auto
    # commit, and once more when it leaves the group).
    first = kcat(bs, "-G", "kcat-group", "-o", "beginning", "-c", "4", "-f", "%p %o %s\n", "kg")
    assert first.splitlines() == [f"0 {i} m{i}" for i in range(4)]
    assert group_offsets(bs, "kcat-group", [("kg", 0)]) == {("kg", 0): 4}
    # A new kcat in the same group resumes at the committed offset and, with -e, stops at the end.
    rest = kcat(bs, "-G", "kcat-group", "-e", "-f", "%p %o %s\n", "kg")
    assert rest.splitlines() == [f"0 {i} m{i}" for i in range(4, 10)]
    assert group_offsets(bs, "kcat-group", [("kg", 0)]) == {("kg", 0): 10}


def test_metadata_as_json(broker):
    kcat(broker.bootstrap, "-t", "km", "-P", stdin="x\n")  # auto-creates the topic
    meta = json.loads(kcat(broker.bootstrap, "-L", "-J"))
    assert meta["brokers"] == [{"id": 1, "name": broker.bootstrap}]
    assert meta["controllerid"] == 1
    km = [t for t in meta["topics"] if t["topic"] == "km"]
    assert km == [{"topic": "km", "partitions": [{"partition": 0, "leader": 1, "replicas": [{"id": 1}],
                                                   "isrs": [{"id": 1}]}]}], meta["topics"]
