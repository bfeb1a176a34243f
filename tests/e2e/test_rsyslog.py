"""rsyslog 8.2302 (Debian's `rsyslog`) forwarding syslog messages to a Strom topic with its
omkafka output (Debian's `rsyslog-kafka`, on librdkafka 2.0.2), and reading them back with its
imkafka input in a consumer group. rsyslogd runs in the foreground (-n) with its own config, pid
file and work directory under the test's temp directory; messages come in over imtcp on a free
port, as from any syslog sender."""
import glob
import shutil
import socket
import time

import pytest

from cluster import free_ports
from services import Service
from txnlib import create_topics, has_all, produce_plain, read

pytestmark = pytest.mark.skipif(
    shutil.which("rsyslogd") is None or not glob.glob("/usr/lib/*/rsyslog/omkafka.so"),
    reason="rsyslogd or its omkafka module is missing (scripts/test.sh apt-installs rsyslog and rsyslog-kafka as root)")


@pytest.fixture
def broker(broker_factory):
    """imkafka's group starts at once (no 3 s group.initial.rebalance.delay.ms)."""
    return broker_factory(["group.initial.rebalance.delay.ms=0"])


@pytest.fixture
def rsyslog(tmp_path):
    started = []

    def start(config, name="rsyslog"):
        d = tmp_path / f"{name}{len(started)}"
        (d / "work").mkdir(parents=True)
        conf = d / "rsyslog.conf"
        conf.write_text(f'global(workDirectory="{d / "work"}")\n' + config)
        check = Service("rsyslogd -N1", ["rsyslogd", "-N1", "-f", str(conf)], d / "check.log").start()
        assert check.proc.wait(timeout=30) == 0, f"rsyslog rejected its config:\n{check.log()}\n{config}"
        r = Service("rsyslogd", ["rsyslogd", "-n", "-f", str(conf), "-i", str(d / "rsyslogd.pid")], d / "rsyslogd.log",
                    cwd=str(d)).start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def tcp_input(port):
    """An imtcp input on `port`: the config and a function that sends syslog lines to it."""
    config = f'module(load="imtcp")\ninput(type="imtcp" port="{port}" address="127.0.0.1" ruleset="in")\n'

    def send(lines):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"".join(b"<13>Dec  5 08:00:00 e2e app: " + l.encode() + b"\n" for l in lines))
    return config, send


def omkafka(bootstrap, topic):
    # %msg:2:$% drops the space that follows the syslog tag; a short linger so that tests need
    # not wait. omkafka suspends its action when the broker is unreachable, and rsyslog drops what
    # a suspended action cannot take unless told to retry: resumeRetryCount -1 (forever), as
    # operators configure reliable forwarding.
    return (f'module(load="omkafka")\ntemplate(name="msgonly" type="string" string="%msg:2:$%")\n'
            f'ruleset(name="in") {{\n  action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="msgonly"'
            f' confParam=["queue.buffering.max.ms=10", "reconnect.backoff.max.ms=500"]'
            f' action.resumeRetryCount="-1" action.resumeInterval="1")\n}}\n')


def test_omkafka_forwards_messages_and_rides_out_a_broker_restart(broker, rsyslog):
    bs, topic = broker.bootstrap, "syslog"
    create_topics(bs, {topic: 1})
    (port,) = free_ports(1)
    config, send = tcp_input(port)
    r = rsyslog(config + omkafka(bs, topic))
    r.wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 20, "imtcp listening")

    first = [f"line-{i}" for i in range(20)]
    send(first)
    got = read(bs, [(topic, 0)], "read_uncommitted", has_all(*(l.encode() for l in first)))
    assert [v.decode() for *_, v in got] == first, "in order, each once"
    assert [o for _, _, o, _ in got] == list(range(20))

    # The broker restarts (same port): omkafka's librdkafka reconnects and delivers what came in
    # meanwhile.
    broker.stop()
    later = [f"later-{i}" for i in range(10)]
    send(later)
    time.sleep(0.5)
    broker.start()
    got = read(bs, [(topic, 0)], "read_uncommitted", has_all(*(l.encode() for l in later)), timeout=60)
    assert [v.decode() for *_, v in got] == first + later, [v for *_, v in got]


def test_imkafka_consumes_in_a_group_and_resumes_after_a_restart(broker, rsyslog, tmp_path):
    """rsyslog as a consumer: imkafka reads a topic in a consumer group (librdkafka's commits) and
    omfile writes what it read; a restarted rsyslogd continues after the committed offset."""
    bs, topic, group = broker.bootstrap, "to-rsyslog", "rsyslog-group"
    create_topics(bs, {topic: 1})
    out = tmp_path / "received.txt"
    config = (f'module(load="imkafka")\n'
              f'template(name="line" type="string" string="%rawmsg%\\n")\n'
              f'input(type="imkafka" topic="{topic}" broker=["{bs}"] consumergroup="{group}" ruleset="out"'
              f' confParam=["auto.offset.reset=earliest", "auto.commit.interval.ms=200"])\n'
              f'ruleset(name="out") {{ action(type="omfile" file="{out}" template="line") }}\n')

    def lines():
        return out.read_text().splitlines() if out.exists() else []

    produce_plain(bs, topic, [f"a-{i}".encode() for i in range(10)])
    r = rsyslog(config)
    r.wait_until(lambda: len(lines()) >= 10, 40, "imkafka's first 10 records in the file")
    time.sleep(1)  # an auto-commit interval and more: the offsets are committed
    r.stop()
    produce_plain(bs, topic, [f"b-{i}".encode() for i in range(5)])
    r = rsyslog(config)
    r.wait_until(lambda: len(lines()) >= 15, 40, "the 5 records produced while rsyslogd was down")
    time.sleep(1)
    assert lines() == [f"a-{i}" for i in range(10)] + [f"b-{i}" for i in range(5)], "each record once, in order"
