"""Rack-aware KIP-848 assignment end to end: three brokers in racks r1, r2, r3 (`broker.rack`),
a topic whose six partitions have one replica each, two per broker, and three confluent-kafka
2.16 consumers with `group.protocol=consumer` and `client.rack` r1, r2, r3. With either
server-side assignor each member gets exactly the two partitions whose replica is in its rack
(without racks, `range` would give contiguous pairs and `uniform` spread by partition number,
neither matching the placement chosen here).
"""
import gc
import time

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster

TOPIC = "racked"
# Partition p's one replica: broker PLACEMENT[p] (in rack r<broker>).
PLACEMENT = [3, 1, 1, 2, 3, 2]


@pytest.fixture(autouse=True)
def _release_clients():
    yield
    gc.collect()


@pytest.fixture(scope="module")
def racked(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("racks"))
    for node_id, b in c.nodes.items():
        b.overrides.append(f"broker.rack=r{node_id}")
    try:
        c.start()
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        admin.create_topics([NewTopic(TOPIC, len(PLACEMENT), replica_assignment=[[n] for n in PLACEMENT])], operation_timeout=15)[TOPIC].result()
        yield c
    finally:
        c.kill_all()


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_each_member_gets_the_partitions_in_its_rack(racked, assignor):
    group = f"racks-{assignor}"
    consumers = {}
    try:
        for rack in ("r1", "r2", "r3"):
            c = Consumer({"bootstrap.servers": racked.bootstrap(), "group.id": group, "group.protocol": "consumer",
                          "group.remote.assignor": assignor, "client.rack": rack, "enable.auto.commit": False})
            c.subscribe([TOPIC])
            consumers[rack] = c
        want = {f"r{n}": sorted(p for p, b in enumerate(PLACEMENT) if b == n) for n in (1, 2, 3)}

        def now():
            return {rack: sorted(tp.partition for tp in c.assignment()) for rack, c in consumers.items()}

        deadline = time.time() + 90
        while now() != want:
            assert time.time() < deadline, f"{assignor}: assignments {now()}, want {want}"
            for c in consumers.values():
                c.poll(0.05)
            seen = [p for ps in now().values() for p in ps]
            assert len(seen) == len(set(seen)), f"a partition owned twice: {now()}"
    finally:
        for c in consumers.values():
            c.close()
