"""Controller failover time on a local three-node cluster (docs/benchmarks.md).

Each trial: start a fresh 3-node cluster, wait until all brokers are registered, SIGKILL the
active controller, and time until a CreateTopics sent to a surviving node succeeds (a new
controller elected and committing). Prints each trial and the median, p90 and max.

Usage: python scripts/bench_controller_failover.py [trials]   (STROM_BIN = the strom binary)
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("STROM_BIN", str(Path.home() / ".cache/strom/target/release/strom"))  # read by conftest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from cluster import Cluster  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    times = []
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            c = Cluster(Path(tmp)).start()
            try:
                bs = c.bootstrap()
                c.wait_for("3 brokers", lambda: sorted(AdminClient({"bootstrap.servers": bs}).list_topics(timeout=5).brokers) == [1, 2, 3])
                old = c.wait_for("an active controller", c.active_controller)
                others = c.bootstrap(exclude=[old])
                admin = AdminClient({"bootstrap.servers": others})
                c.nodes[old].kill()
                killed = time.monotonic()
                n = 0
                while True:
                    n += 1
                    f = admin.create_topics([NewTopic(f"t{n}", 1, 1)], operation_timeout=1, request_timeout=2)
                    try:
                        f[f"t{n}"].result(timeout=3)
                        break
                    except Exception:
                        time.sleep(0.02)
                took = time.monotonic() - killed
                times.append(took)
                print(f"trial {trial + 1}: killed controller {old}, CreateTopics succeeded after {took * 1000:.0f} ms ({n} attempts)")
            finally:
                c.kill_all()
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(f"median {statistics.median(times) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms over {len(times)} trials")


if __name__ == "__main__":
    main()
