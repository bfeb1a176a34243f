"""What the benchmark scripts share: a process's CPU time and a free port on loopback."""
import os
import socket


def cpu_times(pid):
    """(user, system) CPU seconds of process `pid` so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def cpu_seconds(pid):
    """User plus system CPU seconds of process `pid` so far (from /proc)."""
    return sum(cpu_times(pid))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
