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
import base64
import hashlib
import hmac
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from benchlib import cpu_seconds, free_port  # noqa: E402

HASH = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def frame(api_key, version, body, corr):
    header = struct.pack(">hhih", api_key, version, corr, 5) + b"bench"
    return struct.pack(">i", len(header) + len(body)) + header + body


def read_frame(s):
    (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
    return s.recv(n, socket.MSG_WAITALL)


def authenticate(sock, token, corr):
    """SaslAuthenticate v1 (non-flexible): the server's token, or an exception."""
    sock.sendall(frame(36, 1, struct.pack(">i", len(token)) + token, corr))
    r = read_frame(sock)
    _, code = struct.unpack(">ih", r[:6])
    (mlen,) = struct.unpack(">h", r[6:8])
    pos = 8 + max(mlen, 0)
    (blen,) = struct.unpack(">i", r[pos:pos + 4])
    if code != 0:
        raise RuntimeError(f"authentication failed: error {code}")
    return r[pos + 4:pos + 4 + blen]


def login(addr, mechanism, user, password, salted_cache):
    algo = HASH[mechanism]
    t0 = time.perf_counter()
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    m = mechanism.encode()
    sock.sendall(frame(17, 1, struct.pack(">h", len(m)) + m, 1))
    assert struct.unpack(">ih", read_frame(sock)[:6]) == (1, 0)
    bare = f"n={user},r={base64.b64encode(os.urandom(18)).decode()}"
    server_first = authenticate(sock, b"n,," + bare.encode(), 2).decode()
    broker = time.perf_counter() - t0
    fields = dict(f.split("=", 1) for f in server_first.split(","))
    key = (fields["s"], fields["i"])
    if key not in salted_cache:
        salted_cache[key] = hashlib.pbkdf2_hmac(algo, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    salted = salted_cache[key]
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    stored = hashlib.new(algo, client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    signature = hmac.new(stored, f"{bare},{server_first},{without_proof}".encode(), algo).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    t1 = time.perf_counter()
    server_final = authenticate(sock, final, 3)
    broker += time.perf_counter() - t1
    server_key = hmac.new(salted, b"Server Key", algo).digest()
    expected = base64.b64encode(hmac.new(server_key, f"{bare},{server_first},{without_proof}".encode(), algo).digest())
    assert server_final == b"v=" + expected, "the server's signature does not verify"
    sock.close()
    return broker


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--mechanism", default="SCRAM-SHA-512", choices=sorted(HASH))
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
            cache = {}
            for _ in range(50):  # warm-up: connections, the client's PBKDF2 cache
                login(("127.0.0.1", sasl), a.mechanism, "bench", "bench-secret", cache)
            cpu0 = cpu_seconds(proc.pid)
            times = [login(("127.0.0.1", sasl), a.mechanism, "bench", "bench-secret", cache) for _ in range(a.logins)]
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
