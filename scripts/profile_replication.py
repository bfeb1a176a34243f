"""Where an unthrottled RF 3 produce run spends its CPU, run after run (docs/benchmarks.md).

Starts a 3-node cluster (tests/e2e/cluster.py), creates a 3-partition topic with replication
factor --rf, then --runs times: writes the page cache back (`sync`), runs `strom
producer-perf-test` (--records records of 1 KiB, acks=all, linger.ms=5, unthrottled) while
`perf record` samples node 1, and prints the perf-test line, each node's CPU seconds for the
run, and node 1's samples split into the kernel's page-cache copy
(`copy_folio_from_iter_atomic`), Strom's own user space (strom + libc) and the rest.

Back-to-back runs of the same work differ by a factor of 2-3 on this VM; this shows which part
of the time moves.

Usage: python scripts/profile_replication.py [--runs 3] [--records 1000000] [--rf 3]
       (needs `perf`; STROM_BIN = the strom binary, default ~/.cache/strom/target/release/strom)
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("STROM_BIN", str(Path.home() / ".cache/strom/target/release/strom"))  # read by conftest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from cluster import Cluster  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from benchlib import cpu_seconds  # noqa: E402


def samples(data):
    """{'copy': n, 'strom': n, 'other': n} from a perf.data file."""
    out = subprocess.run(["perf", "script", "-F", "ip,sym,dso", "-i", data], capture_output=True, text=True).stdout
    counts = {"copy": 0, "strom": 0, "other": 0}
    for line in out.splitlines():
        if "(" not in line:
            continue
        dso = os.path.basename(line.rsplit("(", 1)[1].rstrip(")"))
        if "copy_folio_from_iter_atomic" in line:
            counts["copy"] += 1
        elif dso == "strom" or dso.startswith("libc"):
            counts["strom"] += 1
        else:
            counts["other"] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rf", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(Path(tmp), overrides=["min.insync.replicas=2"]).start()
        try:
            bs = c.bootstrap()
            admin = AdminClient({"bootstrap.servers": bs})
            c.wait_for("3 brokers", lambda: len(admin.list_topics(timeout=5).brokers) == 3)
            isr = "2" if args.rf >= 2 else "1"
            for f in admin.create_topics([NewTopic("profile", 3, args.rf, config={"min.insync.replicas": isr})],
                                         operation_timeout=10).values():
                f.result(timeout=30)
            c.wait_for_full_isr("profile", args.rf)
            pids = {i: b.proc.pid for i, b in c.nodes.items()}
            for run in range(args.runs):
                os.sync()
                before = {i: cpu_seconds(p) for i, p in pids.items()}
                data = os.path.join(tmp, f"perf{run}.data")
                prof = subprocess.Popen(["perf", "record", "-F", "499", "-o", data, "-p", str(pids[1])],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                out = subprocess.run([os.environ["STROM_BIN"], "producer-perf-test", "--bootstrap-server", bs,
                                      "--topic", "profile", "--num-records", str(args.records), "--record-size", "1024",
                                      "--throughput", "-1", "--producer-props", "acks=all", "linger.ms=5"],
                                     capture_output=True, text=True, check=True).stdout
                prof.send_signal(signal.SIGINT)
                prof.wait()
                cpu = {i: round(cpu_seconds(p) - before[i], 1) for i, p in pids.items()}
                print(f"run {run + 1}: {out.strip().splitlines()[-1]}")
                print(f"  node CPU seconds {cpu}; node 1 samples {samples(data)}", flush=True)
        finally:
            c.kill_all()


if __name__ == "__main__":
    main()
