"""Shared fixtures: a real `strom server` process on an ephemeral loopback port.

Each broker gets its own data directory and is always stopped by PID at teardown, even when the
test fails. The port is chosen by the broker itself (listeners=...:0) and read back from its
ready line, so parallel runs never collide and nothing ever touches 9092.
"""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

STROM_BIN = os.environ.get("STROM_BIN", os.path.join(os.path.dirname(__file__), "../../target/release/strom"))
READY = re.compile(r"bootstrap\.servers=(\S+)")
# The HTTP listener's URL on the ready line (absent when `http.listeners` is empty).
READY_HTTP = re.compile(r" http=http://(\S+)")


class Broker:
    def __init__(self, data_dir, overrides=(), config=None):
        self.data_dir = str(data_dir)
        self.overrides = list(overrides)
        self.config = config  # a properties file (--config); the overrides win over it
        self.server_args = []  # more `strom server` flags (e.g. --add-scram)
        self.proc = None
        self.bootstrap = None
        self.http = None  # host:port of the HTTP listener (/metrics, /health, /ready)
        self.log_lines = []
        self.started_at_line = 0
        self.paused = False
        self.readers = []  # the threads copying the current process's output into log_lines

    def start(self, timeout=30):
        self.launch()
        return self.wait_ready(timeout)

    def launch(self):
        """Starts the process without waiting for its ready line (see `wait_ready`), so that a
        cluster's nodes can come up together."""
        self.started_at_line = len(self.log_lines)
        self.paused = False
        port = self.bootstrap.rsplit(":", 1)[1] if self.bootstrap else "0"
        # Never the default HTTP port 9644: a free one, picked by the broker and kept across
        # restarts, as the client port (a test's own override of http.listeners wins).
        http_port = self.http.rsplit(":", 1)[1] if self.http else "0"
        args = [STROM_BIN, "server", *(["--config", self.config] if self.config else []),
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", f"http.listeners=http://127.0.0.1:{http_port}",
                "--override", f"log.dirs={self.data_dir}"]
        for o in self.overrides:
            args += ["--override", o]
        args += self.server_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.readers = [self._read(self.proc.stderr)]
        return self

    def _read(self, stream):
        t = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        t.start()
        return t

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = READY.search(line)
            if m:
                self.bootstrap = m.group(1)
                h = READY_HTTP.search(line)
                self.http = h.group(1) if h else None
                self.readers.append(self._read(self.proc.stdout))
                return self
        self.kill()
        raise RuntimeError("strom did not become ready; log:\n" + "".join(self.log_lines[-50:]))

    @property
    def running(self):
        """The process exists (it may be paused)."""
        return self.proc is not None and self.proc.poll() is None

    def _drain(self, stream):
        for line in stream:
            self.log_lines.append(line)

    def stop(self, timeout=30):
        """Clean shutdown (SIGTERM), as an operator would do it."""
        if self.proc and self.proc.poll() is None:
            self.resume()  # a stopped process would not see SIGTERM before SIGCONT
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        """Crash: SIGKILL, no chance to flush or mark anything clean."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL also ends a paused (SIGSTOPped) process
            self.proc.wait(timeout=30)
        self.paused = False

    def pause(self):
        """SIGSTOP: the process freezes with its sockets open; connections are accepted by the kernel
        and requests are never answered (a long GC pause, a VM stall, a hung disk)."""
        assert self.running, "pause() needs a running process"
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        """SIGCONT: the paused process carries on where it stopped, unaware of the time it lost."""
        if self.paused and self.running:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def wipe(self):
        """Removes the (stopped) node's whole data directory, as a replaced disk would: it restarts empty."""
        assert not self.running, "wipe() a stopped node only"
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, crash=False):
        self.kill() if crash else self.stop()
        return self.start()

    def log(self):
        return "".join(self.log_lines)

    def wait_exited_and_read(self, timeout=30):
        """After the process ended: waits until its whole output is in `log_lines` (the reader
        threads saw the end of both pipes), so that a test can assert on the last lines."""
        assert self.proc is not None and self.proc.poll() is not None, "the process is still running"
        for t in self.readers:
            t.join(timeout)
            assert not t.is_alive(), "the process's output did not end"

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
