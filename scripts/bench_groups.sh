#!/usr/bin/env bash
# Reproduces the consumer-group and compaction figures in docs/benchmarks.md: the machine's
# limits (sequential write with fdatasync), the log cleaner on 1 GiB with 10% distinct keys
# (crates/storage/examples/compaction_bench.rs), then group takeover times and commit
# throughput against a fresh broker (scripts/bench_groups.py, confluent-kafka).
# Usage: scripts/bench_groups.sh [trials]    (not part of the test suite: it takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-5}"
cache="${STROM_CACHE:-$HOME/.cache/strom}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="${STROM_VENV:-$cache/venv}"
cargo build --release -p strom
cargo build --release -p strom-storage --example compaction_bench
[ -x "$venv/bin/python" ] || { echo "run scripts/test.sh once first: it creates the client venv in $venv"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uptime | sed 's/.*load/load/')"
echo "== sequential write, 4 GiB, dd bs=1M conv=fdatasync"
dd if=/dev/zero of="$work/dd" bs=1M count=4096 conv=fdatasync 2>&1 | tail -1
rm -f "$work/dd"
echo "== log cleaner: 1 GiB, 1 KiB values, 10% distinct keys"
"$CARGO_TARGET_DIR/release/examples/compaction_bench" --gb 1 --unique-percent 10 --dir "$work/compaction"
echo "== consumer groups"
STROM_BIN="$CARGO_TARGET_DIR/release/strom" "$venv/bin/python" scripts/bench_groups.py --trials "$trials" 2>&1 | grep -v '^%'
echo "== $(uptime | sed 's/.*load/load/')"
