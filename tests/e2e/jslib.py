"""kafkajs scripts (tests/e2e/js; scripts/test.sh installs their packages with npm ci into the
cache), run with Node.js. Each script ends with a line `RESULT <json>` or `ERROR <text>`."""
import os
import shutil
import subprocess

import pytest

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def node_modules():
    """Where scripts/test.sh installed tests/e2e/js's packages (npm ci), or None."""
    for d in (os.environ.get("STROM_NODE_MODULES"),
              os.path.join(os.environ.get("STROM_CACHE", os.path.expanduser("~/.cache/strom")), "js", "node_modules"),
              os.path.join(JS_DIR, "node_modules")):
        if d and os.path.isdir(os.path.join(d, "kafkajs")):
            return d
    return None


def run_js(script, *args, timeout):
    """Runs js/<script> with `args`; skips the test without node or kafkajs. Returns the process
    and its RESULT/ERROR lines."""
    modules = node_modules()
    if shutil.which("node") is None or modules is None:
        pytest.skip("node or kafkajs missing: scripts/test.sh installs tests/e2e/js's packages with npm ci")
    proc = subprocess.run(["node", os.path.join(JS_DIR, script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NODE_PATH": modules, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    return proc, [l for l in proc.stdout.splitlines() if l.startswith(("RESULT ", "ERROR "))]
