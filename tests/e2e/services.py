"""Third-party servers the e2e tests run next to Strom (ZooKeeper, Burrow, rsyslogd): each a
child process with its output in a log file under the test's temp directory, stopped by its PID
at teardown (SIGTERM, then SIGKILL), so that nothing outlives the test."""
import os
import signal
import subprocess
import time


class Service:
    def __init__(self, name, args, log_path, cwd=None, env=None):
        self.name, self.args, self.log_path, self.cwd, self.env = name, list(args), str(log_path), cwd, env
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.cwd, env=self.env)
        return self

    def log(self, tail=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""

    def wait_until(self, cond, timeout, what):
        """Polls cond() until it returns a true value (returned); fails naming `what` with the log tail
        when the time runs out or the process exits."""
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                result = cond()
                if result:
                    return result
            except Exception as e:  # not up yet: connection refused, bad answer
                last = e
            assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}:\n{self.log()}"
            assert time.time() < deadline, f"{self.name}: {what} not within {timeout} s (last: {last!r}); log:\n{self.log()}"
            time.sleep(0.25)

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
