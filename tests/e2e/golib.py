"""Go test clients (tests/e2e/go/<name>/main.go), built offline against Debian's packaged
libraries: golang-go 1.19 with GOPATH=/usr/share/gocode and GO111MODULE=off, so no Go module
proxy is needed. scripts/test.sh apt-installs the packages; without them the tests skip.

Each program is built once per test session (the `go_client` fixture) into the session's temp
directory, with Go's build cache kept under $STROM_CACHE/go (outside the clone), so a warm
machine rebuilds in a second. The programs print result lines (`SENT ...`, `MSG ...`), `DONE`
on success, and `ERROR <text>` with exit code 1 on failure.
"""
import os
import shutil
import subprocess

import pytest

GO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")
GOPATH = "/usr/share/gocode"
CACHE = os.environ.get("STROM_CACHE", os.path.expanduser("~/.cache/strom"))

# What each program imports from Debian's GOPATH, and the package that puts it there.
PACKAGES = {
    "saramaclient": ("github.com/Shopify/sarama", "golang-github-shopify-sarama-dev"),
    "kafkagoclient": ("github.com/segmentio/kafka-go", "golang-github-segmentio-kafka-go-dev"),
}


def build(name, out_dir):
    """Builds go/<name> into out_dir; skips the calling test when Go or the library is missing."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed (scripts/test.sh apt-installs golang-go as root)")
    src, package = PACKAGES[name]
    if not os.path.isdir(os.path.join(GOPATH, "src", src)):
        pytest.skip(f"{src} is not in {GOPATH} (scripts/test.sh apt-installs {package} as root)")
    out = os.path.join(str(out_dir), name)
    env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "GOFLAGS": "",
           "GOCACHE": os.path.join(CACHE, "go", "cache")}
    p = subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(GO_DIR, name), env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"go build {name} failed:\n{p.stderr[-3000:]}"
    return out


_built = {}


@pytest.fixture(scope="session")
def go_client(tmp_path_factory):
    """go_client(name) -> the path of the built program, built at most once per session."""
    def get(name):
        if name not in _built:
            _built[name] = build(name, tmp_path_factory.mktemp("go"))
        return _built[name]
    return get


def refusals(broker):
    """The broker's log lines about connections it closed (an unsupported request version, say):
    an old client sees only EOF."""
    return "".join(l for l in broker.log_lines if "closing connection" in l)[-2000:] if broker else ""


def run(binary, *args, timeout=90, check=True, broker=None):
    """Runs a Go client; returns its result lines (stdout). With check, the program must end with
    DONE; a failure shows its output and the connections `broker` closed."""
    p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.splitlines()
    if check:
        assert p.returncode == 0 and lines and lines[-1] == "DONE", \
            f"{os.path.basename(binary)} {' '.join(map(str, args))}: exit {p.returncode}\n" \
            f"stdout tail:\n{p.stdout[-2000:]}\nstderr tail:\n{p.stderr[-2000:]}\n" \
            f"connections the broker closed:\n{refusals(broker)}"
    return lines
