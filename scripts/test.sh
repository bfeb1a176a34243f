#!/usr/bin/env bash
# Runs every Strom test: Rust unit and model tests, then the end-to-end suite that drives the
# real `strom` binary with real Kafka clients (kafka-python, confluent-kafka, aiokafka) from a
# virtualenv this script creates, kafkajs and playwright-core (Node.js) that it installs with npm
# ci from tests/e2e/js, and Debian's packaged clients (kcat, sarama, kafka-go, Burrow, rsyslog), which it
# apt-installs when run as root. Usage: scripts/test.sh [extra pytest args]
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

# Debian's packages for the other real clients: kcat (librdkafka 2.0.2), Go 1.19 with sarama and
# kafka-go (tests/e2e/go, built offline from /usr/share/gocode), Burrow with a ZooKeeper for its
# own state, rsyslog with omkafka/imkafka; openssl makes the TLS tests' certificates; chromium is
# the browser the web console's tests drive (through playwright-core, never a downloaded one). One apt-get
# run for whatever is missing; without root or apt the tests of a missing client skip, saying what
# to install.
debs=(openssl chromium kcat golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev burrow zookeeper rsyslog rsyslog-kafka)
missing=()
for d in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "ok installed" || missing+=("$d")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian's client packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # The packages' own services (burrow, rsyslog) must not start on the machine: the tests run
    # their own instances on free ports. A policy-rc.d answering 101 ("action forbidden") tells
    # invoke-rc.d and deb-systemd-invoke so; it is removed again unless one was there before.
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
      trap 'if [ -n "$own_policy" ]; then rm -f "$policy"; fi' EXIT
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") \
      >/dev/null || echo "apt-get could not install them; their tests will be skipped"
    if [ -n "$own_policy" ]; then rm -f "$policy"; own_policy=; fi
  else
    echo "not root or no apt-get: install ${missing[*]} yourself to run their tests (they are skipped)"
  fi
fi
export STROM_CACHE="$cache" # the Go build cache of tests/e2e/golib.py lives there

echo "== end-to-end tests"
target="${CARGO_TARGET_DIR:-target}"
export STROM_BIN="${STROM_BIN:-$(cd "$target/release" && pwd)/strom}"
"$venv/bin/python" -m pytest tests/e2e -q "$@"
