"""Shared fixtures: a real `strom server` process on an ephemeral loopback port.

Each broker gets its own data directory and is always stopped by PID at teardown, even when the
test fails. The port is chosen by the broker itself (listeners=...:0) and read back from its
ready line, so parallel runs never collide and nothing ever touches 9092.
"""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

STROM_BIN = os.environ.get("STROM_BIN", os.path.join(os.path.dirname(__file__), "../../target/release/strom"))
READY = re.compile(r"bootstrap\.servers=(\S+)")


class Broker:
    def __init__(self, data_dir, overrides=()):
        self.data_dir = str(data_dir)
        self.overrides = list(overrides)
        self.proc = None
        self.bootstrap = None
        self.log_lines = []
        self.started_at_line = 0

    def start(self, timeout=30):
        self.started_at_line = len(self.log_lines)
        port = self.bootstrap.rsplit(":", 1)[1] if self.bootstrap else "0"
        args = [STROM_BIN, "server",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", f"log.dirs={self.data_dir}"]
        for o in self.overrides:
            args += ["--override", o]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        deadline = time.time() + timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = READY.search(line)
            if m:
                self.bootstrap = m.group(1)
                threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
                return self
        self.kill()
        raise RuntimeError("strom did not become ready; log:\n" + "".join(self.log_lines[-50:]))

    def _drain(self, stream):
        for line in stream:
            self.log_lines.append(line)

    def stop(self, timeout=30):
        """Clean shutdown (SIGTERM), as an operator would do it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        """Crash: SIGKILL, no chance to flush or mark anything clean."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self, crash=False):
        self.kill() if crash else self.stop()
        return self.start()

    def log(self):
        return "".join(self.log_lines)

    def log_since_start(self):
        return "".join(self.log_lines[self.started_at_line:])

    def wait_for_log(self, text, timeout=10):
        """Log lines arrive through a reader thread; wait until `text` shows up since the last start."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_since_start():
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def broker_factory(tmp_path):
    brokers = []

    def make(overrides=(), data_dir=None):
        b = Broker(data_dir or tmp_path / f"data{len(brokers)}", overrides)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.kill()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
