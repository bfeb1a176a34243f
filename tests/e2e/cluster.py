"""A local Strom cluster for tests: N `strom server` processes on loopback, each with its own
data directory, client port and CONTROLLER port, all voters of one controller quorum.

Ports are picked by binding port 0 and closing the socket: a controller voter list has to name
every port before any node starts, so the brokers cannot pick their own as single-node tests do.
"""
import socket
import time

from conftest import Broker


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    def __init__(self, tmp_path, n=3, overrides=()):
        ports = free_ports(2 * n)
        self.client_ports = ports[:n]
        self.controller_ports = ports[n:]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        self.nodes = {}
        for i in range(n):
            node_id = i + 1
            b = Broker(tmp_path / f"node{node_id}", [
                f"node.id={node_id}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.client_ports[i]},CONTROLLER://127.0.0.1:{self.controller_ports[i]}",
                f"controller.quorum.voters={voters}",
                # Short timeouts keep fault tests quick; production defaults are Kafka's.
                "broker.heartbeat.interval.ms=500",
                "broker.session.timeout.ms=3000",
                "group.initial.rebalance.delay.ms=0",
                *overrides,
            ])
            b.bootstrap = f"127.0.0.1:{self.client_ports[i]}"
            self.nodes[node_id] = b

    def start(self):
        for b in self.nodes.values():
            b.start()
        return self

    def bootstrap(self, exclude=()):
        return ",".join(b.bootstrap for i, b in self.nodes.items() if i not in exclude)

    def kill_all(self):
        for b in self.nodes.values():
            b.kill()

    def active_controller(self):
        """The running node that most recently logged taking over as active controller."""
        latest = None
        for node_id, b in self.nodes.items():
            if b.proc is None or b.proc.poll() is not None:
                continue
            for line in b.log_since_start().splitlines():
                if "this node is now the active controller" in line:
                    stamp = line.split()[0]  # RFC 3339, sorts as text
                    if latest is None or stamp > latest[0]:
                        latest = (stamp, node_id)
        return latest[1] if latest else None

    def wait_for(self, what, check, timeout=30):
        logs = lambda: "\n".join(f"--- node {i} ---\n" + "".join(b.log_lines[-30:]) for i, b in self.nodes.items())
        return wait_for(what, check, timeout, logs)


def wait_for(what, check, timeout=30, logs=lambda: ""):
    """Polls `check()` until it returns a true value; fails naming `what` (and the node logs)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a node may be down or electing; keep polling
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs()}")
