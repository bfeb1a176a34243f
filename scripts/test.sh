#!/usr/bin/env bash
# Runs every Strom test: Rust unit and model tests, then the end-to-end suite that drives the
# real `strom` binary with real Kafka clients (kafka-python, confluent-kafka, aiokafka) from a
# virtualenv this script creates, and kafkajs (Node.js) that it installs with npm ci from
# tests/e2e/js. Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${STROM_CACHE:-$HOME/.cache/strom}"
venv="${STROM_VENV:-$cache/venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

echo "== cargo test (release: one build serves the tests and the end-to-end binary)"
cargo build --release --locked -p strom
cargo test --release --locked --workspace

echo "== python test clients in $venv"
req=tests/e2e/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi

js=tests/e2e/js
js_dir="${STROM_JS:-$cache/js}"
if command -v npm >/dev/null; then
  echo "== node test clients (kafkajs) in $js_dir"
  # npm ci into the cache (never into the clone: node_modules is not committed), again only when
  # package.json or package-lock.json changed.
  if [ ! -d "$js_dir/node_modules" ] || ! cmp -s "$js/package-lock.json" "$js_dir/.installed-lock" \
      || ! cmp -s "$js/package.json" "$js_dir/package.json"; then
    rm -rf "$js_dir"
    mkdir -p "$js_dir"
    cp "$js/package.json" "$js/package-lock.json" "$js_dir/"
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$js/package-lock.json" "$js_dir/.installed-lock"
  fi
  export STROM_NODE_MODULES="$js_dir/node_modules"
else
  echo "npm not found: the kafkajs tests will be skipped"
fi

if ! command -v kcat >/dev/null; then
  echo "== installing kcat (Debian's package; a third real client, on an older librdkafka)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null || echo "kcat could not be installed; its tests will be skipped"
  else
    echo "not root: install kcat yourself to run its tests"
  fi
fi

echo "== end-to-end tests"
target="${CARGO_TARGET_DIR:-target}"
export STROM_BIN="${STROM_BIN:-$(cd "$target/release" && pwd)/strom}"
"$venv/bin/python" -m pytest tests/e2e -q "$@"
