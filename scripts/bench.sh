#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md: the machine's limits (sequential write with
# fdatasync, loopback TCP), then produce/fetch of 1,000,000 records of 100 B and 1 KiB at acks=1
# and acks=all through librdkafka (strom-bench), against a fresh broker on a free port.
# Usage: scripts/bench.sh [records]      (not part of the test suite: it takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p strom -p strom-bench
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uptime | sed 's/.*load/load/')"
echo "== sequential write, 4 GiB, dd bs=1M conv=fdatasync, in the data directory's file system"
dd if=/dev/zero of="$work/dd" bs=1M count=4096 conv=fdatasync 2>&1 | tail -1
rm -f "$work/dd"
echo "== loopback"
"$bin/strom-bench" --loopback

"$bin/strom" server --override "log.dirs=$work/data" --override listeners=PLAINTEXT://127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q bootstrap.servers "$work/out" && break; sleep 0.1; done
bootstrap=$(grep -o 'bootstrap.servers=[^ ]*' "$work/out" | cut -d= -f2)
echo "== broker idle RSS: $(ps -o rss= -p $pid) KiB"
for size in 100 1024; do
  for acks in 1 all; do
    echo "== $records records of $size B, acks=$acks ($(uptime | sed 's/.*load/load/'))"
    "$bin/strom-bench" --bootstrap-server "$bootstrap" --topic "bench-$size-$acks" --records "$records" --record-size "$size" --acks "$acks"
  done
done
for acks in 1 all; do
  echo "== latency: 1 KiB records paced at 50,000/s (50 MB/s), acks=$acks ($(uptime | sed 's/.*load/load/'))"
  "$bin/strom-bench" --bootstrap-server "$bootstrap" --topic "paced-$acks" --records 500000 --record-size 1024 --acks "$acks" --throughput 50000 --producer-prop linger.ms=1
done
echo "== broker RSS after the runs: $(ps -o rss= -p $pid) KiB, CPU time $(ps -o cputime= -p $pid)"
kill $pid; wait $pid || true

echo "== durable: a broker with log.flush.interval.messages=1 (fsync before every acknowledgement)"
"$bin/strom" server --override "log.dirs=$work/durable" --override listeners=PLAINTEXT://127.0.0.1:0 \
  --override log.flush.interval.messages=1 >"$work/out2" 2>"$work/err2" &
pid=$!
for _ in $(seq 100); do grep -q bootstrap.servers "$work/out2" && break; sleep 0.1; done
bootstrap=$(grep -o 'bootstrap.servers=[^ ]*' "$work/out2" | cut -d= -f2)
"$bin/strom-bench" --bootstrap-server "$bootstrap" --topic durable --records "$records" --record-size 1024 --acks all
"$bin/strom-bench" --bootstrap-server "$bootstrap" --topic durable-paced --records 500000 --record-size 1024 --acks all --throughput 20000 --producer-prop linger.ms=1
