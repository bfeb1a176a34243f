"""Client quotas (KIP-546): AlterClientQuotas and DescribeClientQuotas with Kafka's checks,
stored in the metadata log (they survive a restart), and byte-rate quotas enforced as Kafka
does: a client over its quota is told a throttle time (librdkafka's statistics show it) and the
broker reads nothing more from it until that time has passed."""
import json

from confluent_kafka import Consumer, Producer
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

from wire import call

INVALID_REQUEST = 42
CLUSTER_AUTHORIZATION_FAILED = 31


def alter(bootstrap, entity, ops, validate_only=False):
    E = AlterClientQuotasRequest.EntryData
    r = call(bootstrap, AlterClientQuotasRequest(
        version=1, validate_only=validate_only,
        entries=[E(entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                   ops=[E.OpData(key=k, value=float(v if v is not None else 0), remove=v is None) for k, v in ops])]))
    (entry,) = r.entries
    return entry.error_code, entry.error_message


def describe(bootstrap, components, strict=False):
    C = DescribeClientQuotasRequest.ComponentData
    r = call(bootstrap, DescribeClientQuotasRequest(
        version=1, strict=strict, components=[C(entity_type=t, match_type=m, match=n) for t, m, n in components]))
    assert r.error_code == 0, r
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values} for entry in r.entries}


def throttle_max_ms(broker, client_id, records=200, size=10_000):
    """Produce `records` of `size` bytes as `client_id`; the largest throttle time the broker
    reported, from librdkafka's statistics."""
    stats = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 0, "batch.size": size + 200,
                  "statistics.interval.ms": 100, "stats_cb": stats.append})
    for i in range(records):
        p.produce("quota-t", b"x" * size)
        p.poll(0)
    assert p.flush(120) == 0
    p.poll(0.5)
    worst = 0
    for s in stats:
        for b in json.loads(s)["brokers"].values():
            worst = max(worst, b.get("throttle", {}).get("max", 0))
    return worst


def test_quota_admin_as_kafka(broker):
    bs = broker.bootstrap
    assert alter(bs, [("client-id", "slow")], [("producer_byte_rate", 50_000)]) == (0, None)
    assert alter(bs, [("user", "alice"), ("client-id", None)], [("consumer_byte_rate", 1024), ("request_percentage", 12.5)]) == (0, None)
    assert alter(bs, [("user", None)], [("producer_byte_rate", 4096)]) == (0, None)
    # Kafka's refusals.
    for entity, ops in [
        ([("client-id", "x")], [("not_a_quota", 1)]),
        ([("client-id", "x")], [("producer_byte_rate", 10.5)]),
        ([("client-id", "x")], [("producer_byte_rate", -1)]),
        ([("ip", "1.2.3.4"), ("user", "a")], [("connection_creation_rate", 1)]),
        ([("group", "g")], [("producer_byte_rate", 1)]),
    ]:
        code, message = alter(bs, entity, ops)
        assert code == INVALID_REQUEST and message, (entity, ops, code, message)
    # validate_only changes nothing.
    assert alter(bs, [("client-id", "dry")], [("producer_byte_rate", 1)], validate_only=True) == (0, None)
    assert describe(bs, [("client-id", 0, "dry")]) == {}
    # Matching: exact, default, any; strict.
    assert describe(bs, [("client-id", 0, "slow")]) == {(("client-id", "slow"),): {"producer_byte_rate": 50_000.0}}
    assert describe(bs, [("user", 2, None)]) == {
        (("client-id", None), ("user", "alice")): {"consumer_byte_rate": 1024.0, "request_percentage": 12.5},
        (("user", None),): {"producer_byte_rate": 4096.0}}
    assert list(describe(bs, [("user", 1, None)], strict=True)) == [(("user", None),)]
    # Removing the last value removes the entity; the rest survive a restart.
    assert alter(bs, [("user", None)], [("producer_byte_rate", None)]) == (0, None)
    broker.restart()
    assert len(describe(bs, [])) == 2
    assert describe(bs, [("client-id", 0, "slow")]) == {(("client-id", "slow"),): {"producer_byte_rate": 50_000.0}}


def test_a_producer_over_its_quota_is_throttled(broker):
    bs = broker.bootstrap
    assert alter(bs, [("client-id", "slow-producer")], [("producer_byte_rate", 100_000)]) == (0, None)
    # 2 MB at 100 KB/s: the broker must ask the client to hold back.
    assert throttle_max_ms(broker, "slow-producer") > 0
    # Another client id has no quota: never throttled.
    assert throttle_max_ms(broker, "free-producer") == 0
    # Every record arrived: throttling delays, it never drops.
    c = Consumer({"bootstrap.servers": bs, "group.id": "quota-check", "auto.offset.reset": "earliest"})
    c.subscribe(["quota-t"])
    n = 0
    while n < 400:
        msgs = c.consume(500, timeout=10)
        assert msgs, n
        n += sum(1 for m in msgs if m.error() is None)
    c.close()
    assert n == 400


def test_quota_apis_need_cluster_permissions(broker_factory):
    b = broker_factory(overrides=["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"])
    assert alter(b.bootstrap, [("client-id", "x")], [("producer_byte_rate", 1)])[0] == CLUSTER_AUTHORIZATION_FAILED
    r = call(b.bootstrap, DescribeClientQuotasRequest(version=1, strict=False, components=[]))
    assert r.error_code == CLUSTER_AUTHORIZATION_FAILED
