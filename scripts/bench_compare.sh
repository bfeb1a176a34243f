#!/usr/bin/env bash
# Two broker binaries on the v2 paths, in one sitting, alternating A B B A: each gets a fresh
# broker, 1,000,000 records of 1 KiB from `strom producer-perf-test` (acks=1, unthrottled), then
# `strom consumer-perf-test` reading them back; the broker's CPU (/proc/PID/stat) over each, and
# the load average. The perf tools are B's.
# Usage: scripts/bench_compare.sh BINARY_A BINARY_B [records]   (not part of the test suite)
# A_ARGS / B_ARGS: more `strom server` arguments for A / B (e.g. B_ARGS="--override http.listeners="
# to compare one binary with its HTTP listener on and off).
set -euo pipefail
a=$1 b=$2 records=${3:-1000000}
read -r -a a_args <<<"${A_ARGS:-}"
read -r -a b_args <<<"${B_ARGS:-}"
tck=$(getconf CLK_TCK)
echo "| broker | produce records/s (MiB/s) | broker CPU | fetch records/s | broker CPU | load |"
echo "|---|---|---|---|---|---|"
for which in A B B A; do
  bin=$a; args=("${a_args[@]}"); [ "$which" = B ] && { bin=$b; args=("${b_args[@]}"); }
  work=$(mktemp -d)
  "$bin" server --override "log.dirs=$work/data" --override listeners=PLAINTEXT://127.0.0.1:0 "${args[@]}" >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 100); do grep -q bootstrap.servers "$work/out" && break; sleep 0.1; done
  bs=$(grep -o 'bootstrap.servers=[^ ]*' "$work/out" | cut -d= -f2)
  ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
  t0=$(ticks)
  p=$("$b" producer-perf-test --bootstrap-server "$bs" --topic t --num-records "$records" --record-size 1024 --throughput -1 --producer-props acks=1 2>&1 | tail -1)
  t1=$(ticks)
  f=$("$b" consumer-perf-test --bootstrap-server "$bs" --topic t --messages "$records" 2>&1 | tail -1)
  t2=$(ticks)
  rate=$(echo "$p" | sed -E 's/.* ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\).*/\1 (\2)/')
  frate=$(echo "$f" | awk -F', ' '{print $10}')
  echo "| $which | $rate | $(awk "BEGIN{printf \"%.2f\", ($t1-$t0)/$tck}") s | $frate | $(awk "BEGIN{printf \"%.2f\", ($t2-$t1)/$tck}") s | $(uptime | sed 's/.*load average: //') |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
done
