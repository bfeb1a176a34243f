"""kcat, on Debian's librdkafka 2.0.2: an older client that negotiates older API versions
(ListOffsets v2, Metadata v4, Produce v7), which the Python clients never exercise."""
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (scripts/test.sh installs it as root)")


def kcat(bootstrap, *args, stdin=None):
    p = subprocess.run(["kcat", "-b", bootstrap, *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_produce_consume_keys_headers_offsets(broker):
    kcat(broker.bootstrap, "-t", "kc", "-P", "-K:", "-H", "origin=kcat", stdin="a:1\nb:2\nc:3\n")
    out = kcat(broker.bootstrap, "-t", "kc", "-C", "-e", "-f", "%o %k %s %h\n")
    assert out.splitlines() == ["0 a 1 origin=kcat", "1 b 2 origin=kcat", "2 c 3 origin=kcat"]
    # Relative offsets go through ListOffsets (v2 with this librdkafka).
    assert kcat(broker.bootstrap, "-t", "kc", "-C", "-o", "-2", "-e", "-f", "%o\n").split() == ["1", "2"]
    assert "kc [0] offset 0" in kcat(broker.bootstrap, "-Q", "-t", "kc:0:0")
    listing = kcat(broker.bootstrap, "-L", "-t", "kc")
    assert 'topic "kc" with 1 partitions' in listing and "leader 1" in listing
