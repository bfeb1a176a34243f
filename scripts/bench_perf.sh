#!/usr/bin/env bash
# Reproduces "2026-12-01, the perf tools" in docs/benchmarks.md (without its strom-bench rows:
# that client is gone): on one fresh broker, the same produce (N records of 1 KiB, acks=1,
# unthrottled) through `strom producer-perf-test` and a batching confluent-kafka script
# (scripts/perf_confluent.py), in rounds; the fetch of those records through
# `strom consumer-perf-test`; then 2N records of 100 B through each. Every run prints the
# client's user+sys CPU (GNU time) and the broker's (from /proc/PID/stat) during it.
# Usage: scripts/bench_perf.sh [records] [rounds]     (not part of the test suite: minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
rounds="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
python="${PYTHON:-$HOME/.cache/strom/venv/bin/python}" # with confluent-kafka (tests/e2e/requirements.txt)
cargo build --release -p strom -p strom-broker --bin strom --example loopback
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
load() { uptime | sed 's/.*load average: /load /'; }

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(load)"
echo "== sequential write, 4 GiB, dd bs=1M conv=fdatasync, in the data directory's file system"
dd if=/dev/zero of="$work/dd" bs=1M count=4096 conv=fdatasync 2>&1 | tail -1
rm -f "$work/dd"
echo "== loopback"
"$bin/examples/loopback"

"$bin/strom" server --override "log.dirs=$work/data" --override listeners=PLAINTEXT://127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q bootstrap.servers "$work/out" && break; sleep 0.1; done
bs=$(grep -o 'bootstrap.servers=[^ ]*' "$work/out" | cut -d= -f2)
tck=$(getconf CLK_TCK)
broker_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run LABEL COMMAND...: the command's last output line, its CPU, and the broker's CPU meanwhile.
run() {
  local label=$1; shift
  local before after
  before=$(broker_ticks)
  echo "== $label ($(load))"
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$@" >"$work/run" 2>&1 || { cat "$work/run"; exit 1; }
  after=$(broker_ticks)
  sed "s/^/   /" "$work/run"
  read -r user sys wall rss <"$work/time"
  echo "   client: user $user s, sys $sys s, wall $wall s, max RSS $((rss / 1024)) MiB; broker: $(awk "BEGIN{printf \"%.2f\", ($after - $before) / $tck}") s CPU"
}

# Each client, SIZE-byte records: $1 topic, $2 records, $3 record size.
produce_perf() {
  run "strom producer-perf-test, $2 x $3 B" "$bin/strom" producer-perf-test --bootstrap-server "$bs" --topic "$1" \
    --num-records "$2" --record-size "$3" --throughput -1 --producer-props acks=1
}
produce_confluent() {
  run "scripts/perf_confluent.py, $2 x $3 B" "$python" scripts/perf_confluent.py --bootstrap-server "$bs" --topic "$1" \
    --records "$2" --record-size "$3" --acks 1
}
fetch_perf() {
  run "strom consumer-perf-test, $2 records of $1" "$bin/strom" consumer-perf-test --bootstrap-server "$bs" --topic "$1" \
    --messages "$2"
}
# The order rotates between rounds, and every run starts after a `sync`: the broker does not
# fsync, so without it each run would pay for the writeback of the one before.
for r in $(seq "$rounds"); do
  echo "#### produce, round $r"
  if [ $((r % 2)) = 1 ]; then order="produce_perf produce_confluent"; else order="produce_confluent produce_perf"; fi
  for step in $order; do
    sync
    $step "${step#produce_}-$r" "$records" 1024
  done
done
echo "#### fetch of perf-1 (in the page cache), once per round"
for _ in $(seq "$rounds"); do
  fetch_perf perf-1 "$records"
done
small=$((records * 2))
echo "#### small records: $small x 100 B, where the client's per-record cost shows"
for step in produce_perf produce_confluent; do
  sync
  $step "${step#produce_}-small" "$small" 100
done
for _ in 1 2; do
  fetch_perf perf-small "$small"
done
echo "== broker RSS after the runs: $(ps -o rss= -p $pid) KiB, CPU time $(ps -o cputime= -p $pid); $(load)"
