"""Logs an operator can read (issue 16): a warning a client can cause is logged at most once per
10 s with the count of those left out, an OS error is printed once (not once more as its own
cause), and a single node's normal start and stop say nothing of quorums and warn of nothing.
"""
import subprocess

from conftest import STROM_BIN
from test_metrics import create
from wire import exchange, frame


def start_fails(tmp_path, *overrides):
    args = [STROM_BIN, "server", "--override", f"log.dirs={tmp_path}/d", "--override", "listeners=PLAINTEXT://127.0.0.1:0"]
    for o in overrides:
        args += ["--override", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert "bootstrap.servers=" not in p.stdout and p.returncode != 0
    return p.stderr


def test_a_taken_port_is_one_clear_error_naming_the_key(broker, tmp_path):
    err = start_fails(tmp_path, f"http.listeners=http://{broker.http}")
    assert "http.listeners" in err and err.count("Address already in use") == 1, err
    err = start_fails(tmp_path, f"listeners=PLAINTEXT://{broker.bootstrap}", "http.listeners=")
    assert "`listeners`" in err and err.count("Address already in use") == 1, err
    for bad in ("127.0.0.1:1", "https://127.0.0.1:1", "http://127.0.0.1"):
        err = start_fails(tmp_path, f"http.listeners={bad}")
        assert "http.listeners" in err, err


def test_single_node_start_logs_no_warnings_and_no_quorum_talk(broker):
    broker.stop()
    broker.start()
    create(broker.bootstrap, "quiet")
    broker.stop()
    broker.wait_exited_and_read()
    log = broker.log_since_start()
    assert " WARN " not in log and " ERROR " not in log, log
    assert "quorum" not in log.lower() and "openraft" not in log, log


def test_a_client_repeating_bad_requests_gets_one_warning_per_interval(broker):
    # An API key no Kafka has: each connection is closed, as Kafka closes it.
    for _ in range(50):
        assert exchange(broker.bootstrap, frame(999, 0)) is None
    broker.stop()
    broker.wait_exited_and_read()
    log = broker.log_since_start()
    assert log.count("unknown API key 999") == 1 and log.count("closing connection") == 1, log


def test_a_cluster_starts_quietly_and_says_once_that_a_peer_is_gone(tmp_path):
    from cluster import Cluster
    c = Cluster(tmp_path).start()
    try:
        create(c.bootstrap(), "calm", partitions=3, rf=3)
        c.wait_for_full_isr("calm", 3)
        for i, b in c.nodes.items():
            log = b.log_since_start()
            assert " WARN " not in log and " ERROR " not in log and "openraft" not in log, f"node {i}:\n{log}"
        # The active controller: the others only ever heard from it, and must still say it is gone.
        victim = c.wait_for("an active controller", c.active_controller)
        others = [i for i in c.nodes if i != victim]
        c.nodes[victim].kill()
        gone = "controller quorum peer unreachable"
        warned = c.wait_for(f"a node saying that node {victim} is unreachable",
                            lambda: [i for i in others if gone in c.nodes[i].log_since_start()])
        # Fencing takes broker.session.timeout.ms (3 s here): six rounds of openraft's retries.
        c.wait_for(f"node {victim} fenced", lambda: victim not in c.partitions("calm")[0].isr)
        for i in others:
            log = c.nodes[i].log_since_start()
            assert log.count(gone) <= 1 and "openraft" not in log, f"node {i}:\n{log}"
        c.nodes[victim].start()
        c.wait_for(f"node {victim} reachable again",
                   lambda: all("peer reachable again" in c.nodes[i].log_since_start() for i in warned))
    finally:
        c.kill_all()
