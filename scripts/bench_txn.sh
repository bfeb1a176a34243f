#!/usr/bin/env bash
# Reproduces the transaction figures in docs/benchmarks.md, in one run against one fresh broker on
# a free port, through `strom producer-perf-test` / `strom consumer-perf-test`:
# - RECORDS records of 1 KiB from an idempotent producer (enable.idempotence=true, acks=all),
#   then from transactional producers committing every 100 and every 10,000 records (each
#   commit's EndTxn latency is the perf tool's last line: avg, max, p50, p99);
# - a fetch of the 10,000-record transactions' topic with isolation.level=read_uncommitted and
#   then read_committed, each from the start in a new group;
# - whether read_committed fetches still leave the broker by sendfile(2): the broker's sendfile
#   and write/writev calls are counted with `strace -c` during a second read_committed fetch;
# - first, the machine's limits, as scripts/bench.sh measures them (dd with fdatasync, loopback).
# Producers use the same librdkafka tuning as scripts/bench.sh. Run the broker's load alone: the
# figures swing with other work on the machine (the load average is printed beside each).
# Usage: scripts/bench_txn.sh [RECORDS]   RECORDS defaults to 500000 (a quick check: 20000).
#   STROM_BIN=path measures that strom binary instead of this tree's.
# Not part of the test suite: a full run takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-500000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p strom -p strom-broker --bin strom --example loopback
strom="${STROM_BIN:-$CARGO_TARGET_DIR/release/strom}"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
load() { uptime | sed 's/.*load/load/'; }
tuning=(batch.size=1000000 queue.buffering.max.messages=2000000 queue.buffering.max.kbytes=2097151 compression.type=none linger.ms=5)

"$strom" server --override "log.dirs=$work/data" --override listeners=PLAINTEXT://127.0.0.1:0 \
  --override group.initial.rebalance.delay.ms=0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q bootstrap.servers "$work/out" && break; sleep 0.1; done
bootstrap=$(grep -o 'bootstrap.servers=[^ ]*' "$work/out" | cut -d= -f2 || true)
[ -n "$bootstrap" ] || { echo "the broker did not start:"; cat "$work/err"; exit 1; }

echo "== machine: $(nproc) cores; $(load)"
echo "== sequential write, 4 GiB, dd bs=1M conv=fdatasync, in the data directory's file system"
dd if=/dev/zero of="$work/dd" bs=1M count=4096 conv=fdatasync 2>&1 | tail -1
rm -f "$work/dd"
echo "== loopback"
"$CARGO_TARGET_DIR/release/examples/loopback"
echo "== idempotent producer: $records records of 1 KiB, acks=all ($(load))"
"$strom" producer-perf-test --bootstrap-server "$bootstrap" --topic idempotent --num-records "$records" --record-size 1024 \
  --throughput -1 --producer-props enable.idempotence=true acks=all "${tuning[@]}"
for size in 100 10000; do
  echo "== transactional producer, a commit every $size records: $records records of 1 KiB ($(load))"
  "$strom" producer-perf-test --bootstrap-server "$bootstrap" --topic "txn-$size" --num-records "$records" --record-size 1024 \
    --throughput -1 --transactional-id "bench-$size" --transaction-size "$size" --producer-props "${tuning[@]}"
done

# fetch ISOLATION: the 10,000-record transactions' topic from the start; fails unless it got all.
fetch() {
  "$strom" consumer-perf-test --bootstrap-server "$bootstrap" --topic txn-10000 --messages "$records" \
    --isolation-level "$1" | tee "$work/fetch"
  local got
  got=$(tail -1 "$work/fetch" | awk -F', ' '{print $5}')
  [ "$got" = "$records" ] || { echo "fetch ($1): $got of $records records"; exit 1; }
}
for isolation in read_uncommitted read_committed; do
  echo "== fetch, $isolation ($(load))"
  fetch "$isolation"
done
if command -v strace >/dev/null; then
  echo "== the broker's sendfile and write calls during a read_committed fetch (strace -c)"
  strace -f -c -e trace=sendfile,write,writev -o "$work/strace" -p "$pid" &
  tracer=$!
  sleep 1
  fetch read_committed >/dev/null
  kill -INT "$tracer"
  wait "$tracer" || true
  grep -E "sendfile|writev|write|calls" "$work/strace" || true
fi
echo "== broker RSS after the runs: $(ps -o rss= -p "$pid") KiB, CPU time $(ps -o cputime= -p "$pid")"
