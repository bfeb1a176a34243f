#!/usr/bin/env python3
"""The broker's time for one SCRAM authentication of a new connection: a raw client (this script)
connects to a SASL_PLAINTEXT listener, sends SaslHandshake v1 and the two SaslAuthenticate
requests of a SCRAM exchange, and times each server round trip on loopback. The client's own
work (PBKDF2 of the password, the proof) happens between the round trips and is not counted, so
"broker" is: connect + handshake + client-first -> server-first + client-final -> server-final.
Also reports the broker's CPU time per login (from /proc/<pid>/stat over the whole run).

Usage: scripts/bench_scram.py [--strom target/release/strom] [--logins 2000] [--mechanism SCRAM-SHA-512]
Needs confluent-kafka (to create the user; the test venv has it)."""
import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from benchlib import cpu_seconds, free_port  # noqa: E402
from rawkafka import SCRAM_HASH, ScramClient  # noqa: E402


def login(addr, scram):
    """One new connection's login; returns the seconds spent waiting for the broker (connect,
    handshake and the two SCRAM round trips; the client's own computation is left out)."""
    t0 = time.perf_counter()
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    scram.handshake(sock)
    scram.first(sock)
    broker = time.perf_counter() - t0
    final, expected = scram.proof()
    t1 = time.perf_counter()
    scram.finish(sock, final, expected)
    broker += time.perf_counter() - t1
    sock.close()
    return broker


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--mechanism", default="SCRAM-SHA-512", choices=sorted(SCRAM_HASH))
    ap.add_argument("--iterations", type=int, default=8192)
    a = ap.parse_args()
    plain, sasl = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([a.strom, "server", "--override", f"log.dirs={d}",
                                 "--override", f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
                                 "--override", f"sasl.enabled.mechanisms={a.mechanism}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert "is ready" in proc.stdout.readline()
            mech = ScramMechanism.SCRAM_SHA_256 if a.mechanism == "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_512
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain}"})
            up = UserScramCredentialUpsertion("bench", ScramCredentialInfo(mech, a.iterations), b"bench-secret")
            admin.alter_user_scram_credentials([up])["bench"].result(timeout=15)
            scram = ScramClient(a.mechanism, "bench", "bench-secret")
            for _ in range(50):  # warm-up: connections, the client's PBKDF2 cache
                login(("127.0.0.1", sasl), scram)
            cpu0 = cpu_seconds(proc.pid)
            times = [login(("127.0.0.1", sasl), scram) for _ in range(a.logins)]
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(30)
    times.sort()
    ms = lambda x: f"{x * 1000:.3f}"  # noqa: E731
    print(f"{a.mechanism}, {a.logins} logins, iterations {a.iterations}: connect+handshake+2 SCRAM round trips "
          f"median {ms(statistics.median(times))} ms, p99 {ms(times[int(len(times) * 0.99)])} ms, max {ms(times[-1])} ms; "
          f"broker CPU {cpu / a.logins * 1000:.3f} ms per login")


if __name__ == "__main__":
    sys.exit(main())
