#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md. First the machine's limits: sequential write with
# fdatasync (dd) and loopback TCP (crates/broker/examples/loopback.rs). Then, against a fresh
# broker on a free port, through `strom producer-perf-test` / `strom consumer-perf-test`:
# - produce of RECORDS records of 100 B and of 1 KiB, at acks=1 and at acks=all, unthrottled,
#   each followed by a fetch of the same records from the start of the topic;
# - latency: PACED records of 1 KiB paced at 50,000/s with linger.ms=1, acks=1 and acks=all;
# - the broker's RSS idle and after the runs, and its CPU time;
# - a durable broker (log.flush.interval.messages=1): RECORDS x 1 KiB at acks=all unthrottled,
#   and PACED x 1 KiB at acks=all paced at 20,000/s.
# Every producer runs with the librdkafka tuning below (linger.ms=5, batch.size=1000000, 2M
# messages / 2 GiB of local queue); the perf tools print Kafka's "MB" (MiB), and the
# consumer's fetch.MB.sec / fetch.nMsg.sec are the figures without the group join.
# Usage: scripts/bench.sh [RECORDS [PACED]]   RECORDS defaults to 1000000, PACED to 500000.
#   STROM_BIN=path measures that strom binary instead of this tree's (to compare two builds in
#   one sitting, as docs/benchmarks.md does for a refactor).
#   A quick check that every step works: scripts/bench.sh 20000 20000 (under a minute).
# Not part of the test suite: a full run takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
paced="${2:-500000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p strom -p strom-broker --bin strom --example loopback
bin="$CARGO_TARGET_DIR/release"
strom="${STROM_BIN:-$bin/strom}"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
load() { uptime | sed 's/.*load/load/'; }

# Producer settings besides acks and linger.ms: big batches, and local queues big enough that
# the client never waits for room while the broker keeps up.
tuning=(batch.size=1000000 queue.buffering.max.messages=2000000 queue.buffering.max.kbytes=2097151 compression.type=none)

# start_broker NAME [SERVER ARGS...]: a fresh broker on a free loopback port; sets pid, bootstrap.
start_broker() {
  local name=$1
  shift
  "$strom" server --override "log.dirs=$work/$name" --override listeners=PLAINTEXT://127.0.0.1:0 \
    --override http.listeners=http://127.0.0.1:0 "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  for _ in $(seq 100); do grep -q bootstrap.servers "$work/$name.out" && break; sleep 0.1; done
  bootstrap=$(grep -o 'bootstrap.servers=[^ ]*' "$work/$name.out" | cut -d= -f2 || true)
  [ -n "$bootstrap" ] || { echo "the broker did not start:"; cat "$work/$name.err"; exit 1; }
}

stop_broker() {
  kill "$pid"
  wait "$pid" || true
  pid=
}

# produce TOPIC RECORDS SIZE ACKS THROUGHPUT LINGER_MS (THROUGHPUT -1: unthrottled)
produce() {
  "$strom" producer-perf-test --bootstrap-server "$bootstrap" --topic "$1" --num-records "$2" \
    --record-size "$3" --throughput "$5" --producer-props "acks=$4" "linger.ms=$6" "${tuning[@]}"
}

# fetch TOPIC RECORDS: a consumer in a new group, so from the start of the topic; fails unless
# it got all RECORDS (the tool itself only warns when it times out).
fetch() {
  "$strom" consumer-perf-test --bootstrap-server "$bootstrap" --topic "$1" --messages "$2" | tee "$work/fetch"
  local got
  got=$(tail -1 "$work/fetch" | awk -F', ' '{print $5}')
  [ "$got" = "$2" ] || { echo "fetch of $1: $got of $2 records"; exit 1; }
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(load)"
echo "== sequential write, 4 GiB, dd bs=1M conv=fdatasync, in the data directory's file system"
dd if=/dev/zero of="$work/dd" bs=1M count=4096 conv=fdatasync 2>&1 | tail -1
rm -f "$work/dd"
echo "== loopback"
"$bin/examples/loopback"

# No initial rebalance delay (Kafka's default is 3 s): each fetch is a new group's only member,
# and would otherwise wait 3 s for others before it gets its partition.
start_broker data --override group.initial.rebalance.delay.ms=0
echo "== broker idle RSS: $(ps -o rss= -p "$pid") KiB"
for size in 100 1024; do
  for acks in 1 all; do
    echo "== $records records of $size B, acks=$acks ($(load))"
    produce "bench-$size-$acks" "$records" "$size" "$acks" -1 5
    fetch "bench-$size-$acks" "$records"
  done
done
for acks in 1 all; do
  echo "== latency: $paced records of 1 KiB paced at 50,000/s (50 MB/s), acks=$acks ($(load))"
  produce "paced-$acks" "$paced" 1024 "$acks" 50000 1
done
echo "== broker RSS after the runs: $(ps -o rss= -p "$pid") KiB, CPU time $(ps -o cputime= -p "$pid")"
stop_broker

echo "== durable: a broker with log.flush.interval.messages=1 (fsync before every acknowledgement)"
start_broker durable --override log.flush.interval.messages=1
echo "== durable: $records records of 1 KiB, acks=all ($(load))"
produce durable "$records" 1024 all -1 5
echo "== durable latency: $paced records of 1 KiB paced at 20,000/s (20 MB/s), acks=all ($(load))"
produce durable-paced "$paced" 1024 all 20000 1
echo "== durable broker RSS after the runs: $(ps -o rss= -p "$pid") KiB, CPU time $(ps -o cputime= -p "$pid")"
stop_broker
