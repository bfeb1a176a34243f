"""aiokafka 0.14 beyond transactions (test_transactions_clients.py): producing, consuming in a
group with manual commits and resuming from them in a new consumer, and its admin client."""
import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


@pytest.fixture
def broker(broker_factory):
    """Groups rebalance at once (no 3 s group.initial.rebalance.delay.ms per group start)."""
    return broker_factory(["group.initial.rebalance.delay.ms=0"])


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def consume(bs, group, topic, n):
    """A group member that takes n records, commits them and leaves."""
    c = AIOKafkaConsumer(topic, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=1000)
    await c.start()
    got = []
    try:
        while len(got) < n:
            for tp, recs in (await c.getmany(timeout_ms=500, max_records=n - len(got))).items():
                got += [(tp.partition, r.offset, r.value.decode()) for r in recs]
        await c.commit()  # what was consumed (the positions), with this generation
    finally:
        await c.stop()
    return got


async def produce(bs, topic, values):
    p = AIOKafkaProducer(bootstrap_servers=bs, acks="all")
    await p.start()
    try:
        return [(m.partition, m.offset) for m in [await p.send_and_wait(topic, v.encode(), key=v.encode()) for v in values]]
    finally:
        await p.stop()


def test_produce_group_consume_commit_and_resume(broker):
    bs, topic, group = broker.bootstrap, "aio-group-topic", "aio-group"

    async def admin_create():
        a = AIOKafkaAdminClient(bootstrap_servers=bs)
        await a.start()
        try:
            await a.create_topics([NewTopic(topic, 2, 1)])
        finally:
            await a.close()
    run(admin_create())
    values = [f"v{i}" for i in range(12)]
    acks = run(produce(bs, topic, values))
    assert {p for p, _ in acks} == {0, 1}
    first = run(consume(bs, group, topic, 5))
    second = run(consume(bs, group, topic, 7))
    assert len(first) == 5 and sorted(v for *_, v in first + second) == sorted(values), (first, second)
    assert sorted((p, o) for p, o, _ in first + second) == sorted(acks), "each record once, at its acked offset"


def test_admin_client(broker):
    bs, topic, group = broker.bootstrap, "aio-admin", "aio-admin-group"

    async def scenario():
        a = AIOKafkaAdminClient(bootstrap_servers=bs)
        await a.start()
        try:
            await a.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})])
            assert topic in await a.list_topics()
            (described,) = await a.describe_topics([topic])
            assert described["topic"] == topic and len(described["partitions"]) == 3, described
            (configs,) = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})])
            entries = configs.resources[0][4]
            assert [(e[0], e[1]) for e in entries] == [("retention.ms", "3600000")], entries
            await produce(bs, topic, ["x"])
            await consume(bs, group, topic, 1)
            assert (group, "consumer") in await a.list_consumer_groups()
            committed = await a.list_consumer_group_offsets(group)
            assert sum(o.offset for o in committed.values()) == 1, committed
            (resp,) = await a.describe_consumer_groups([group])
            (g,) = resp.groups  # (error_code, group_id, group_state, protocol_type, protocol, members, ...)
            assert (g[0], g[1], g[2], g[3], g[5]) == (0, group, "Empty", "consumer", []), g
            await a.delete_topics([topic])
            for _ in range(50):
                if topic not in await a.list_topics():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{topic} still listed after delete_topics")
        finally:
            await a.close()
    run(scenario())
