"""A local Strom cluster for tests: N `strom server` processes on loopback, each with its own
data directory, client port and CONTROLLER port, all voters of one controller quorum.

Ports are picked by binding port 0 and closing the socket: a controller voter list has to name
every port before any node starts, so the brokers cannot pick their own as single-node tests do.

With `readme_configs=True` each node starts as the README's three-node example does, from
examples/cluster/node<i>.properties, with only its ports, data directory and the timeouts below
overridden (nodes past the third reuse node3's file with their own id).
"""
import os
import random
import socket
import time
from collections import namedtuple

from confluent_kafka.admin import AdminClient

from conftest import Broker

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "cluster")

# One partition as a node reports it in Metadata: leader id (-1: none), replica ids, in-sync replica ids.
PartitionState = namedtuple("PartitionState", "leader replicas isr")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n):
    """`n` distinct loopback ports free now, taken below the kernel's ephemeral range when there
    is room: a port from that range (what binding port 0 gives) can become the source port of
    any outgoing connection between the pick and the broker's bind, and did (a node's CONTROLLER
    listener failing with "Address already in use" while its peers were connecting out)."""
    low, _ = _ephemeral_range()
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            socks.append(s)
            port = random.randrange(10000, low) if low > 11000 else 0
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def free_port():
    return free_ports(1)[0]


def free_port_ranges(count, width):
    """`count` disjoint runs of `width` consecutive free ports (for `strom cluster`, which numbers
    its nodes' ports up from a base): each run is checked by binding all of it."""
    runs = []
    while len(runs) < count:
        (base,) = free_ports(1)
        ports = range(base, base + width)
        if base + width > 65535 or any(p in r for r in runs for p in ports):
            continue
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            runs.append(ports)
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    return [r[0] for r in runs]


class Cluster:
    def __init__(self, tmp_path, n=3, overrides=(), readme_configs=False):
        ports = free_ports(2 * n)
        self.client_ports = ports[:n]
        self.controller_ports = ports[n:]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        self.nodes = {}
        for i in range(n):
            node_id = i + 1
            config = os.path.join(EXAMPLES, f"node{min(node_id, 3)}.properties") if readme_configs else None
            b = Broker(tmp_path / f"node{node_id}", config=config, overrides=[
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

    def start(self, ids=None):
        """Starts the given nodes (default: all) together and waits until each is ready, so that
        no node's start waits on a quorum whose other members are not started yet."""
        nodes = [self.nodes[i] for i in (ids or self.nodes)]
        for b in nodes:
            b.launch()
        for b in nodes:
            b.wait_ready()
        return self

    def bootstrap(self, exclude=()):
        return ",".join(b.bootstrap for i, b in self.nodes.items() if i not in exclude)

    def kill_all(self):
        for b in self.nodes.values():
            b.kill()

    def live(self):
        """Ids of the nodes whose process runs and is not paused."""
        return [i for i, b in self.nodes.items() if b.running and not b.paused]

    def bootstrap_live(self):
        """Bootstrap servers of the live nodes only: a paused node accepts connections and never
        answers, so clients that must answer quickly (the helpers below) leave it out."""
        return self.bootstrap(exclude=[i for i in self.nodes if i not in self.live()])

    def partitions(self, topic, via=None, timeout=5):
        """{partition: PartitionState} of `topic` as node `via` (default: any live node) reports it."""
        bs = self.nodes[via].bootstrap if via is not None else self.bootstrap_live()
        md = AdminClient({"bootstrap.servers": bs}).list_topics(timeout=timeout)
        t = md.topics.get(topic)
        if t is None:
            raise LookupError(f"topic {topic} unknown to {bs}")
        return {p.id: PartitionState(p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}

    def leader(self, topic, partition):
        return self.partitions(topic)[partition].leader

    def views(self, topic):
        """{node id: partitions(topic, via=node)} for every live node."""
        return {i: self.partitions(topic, via=i) for i in self.live()}

    def wait_for_leader(self, topic, partition, not_in=(), timeout=15):
        """Waits until every live node names the same live leader for the partition, one not in
        `not_in`; returns its id."""
        def agreed():
            leaders = {v[partition].leader for v in self.views(topic).values()}
            (leader,) = leaders if len(leaders) == 1 else (None,)
            return leader if leader in self.live() and leader not in not_in else None
        return self.wait_for(f"a leader of {topic}-{partition} not in {list(not_in)}", agreed, timeout)

    def wait_for_full_isr(self, topic, replication_factor, timeout=30):
        """Waits until every live node reports, for every partition of the topic, a live leader,
        `replication_factor` replicas and all of them in sync; returns {partition: PartitionState}."""
        def full():
            views = list(self.views(topic).values())
            first = views[0]
            ok = all(v == first for v in views) and all(
                s.leader in self.live() and len(s.replicas) == replication_factor
                and sorted(s.isr) == sorted(s.replicas) for s in first.values())
            return first if ok else None
        return self.wait_for(f"every partition of {topic} with a leader and {replication_factor} in-sync replicas",
                             full, timeout)

    def replica_log(self, node_id, topic, partition):
        """The bytes of a replica's log (its segment files in order), read from the node's data directory."""
        d = os.path.join(self.nodes[node_id].data_dir, f"{topic}-{partition}")
        names = sorted(n for n in os.listdir(d) if n.endswith(".log")) if os.path.isdir(d) else []
        return b"".join(open(os.path.join(d, n), "rb").read() for n in names)

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
        logs = lambda: "\n".join(f"--- node {i} ---\n" + "".join(b.log_lines[-150:]) for i, b in self.nodes.items())
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
