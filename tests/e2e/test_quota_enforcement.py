"""The quotas beyond byte rates, enforced as Kafka does: `request_percentage` (handler time as a
share of one core: the response's throttle time), `controller_mutation_rate` (KIP-599:
THROTTLING_QUOTA_EXCEEDED per topic for new request versions, a throttle time for old ones),
the `ip` entity's `connection_creation_rate` (connections over the rate closed unserved), and
the broker's `max.connections`, `max.connections.per.ip` and its overrides."""
import itertools
import socket
import struct

from kafka.protocol.admin.topics import CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest
from kafka.protocol.metadata import MetadataRequest

from test_quotas import alter
from wire import frame, recv_exactly

THROTTLING_QUOTA_EXCEEDED = 89
_corr = itertools.count(1000)


class Conn:
    """One connection speaking kafka-python's request classes, with a client id of our own."""

    def __init__(self, bootstrap, client_id):
        host, port = bootstrap.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        self.client_id = client_id

    def call(self, request):
        corr = next(_corr)
        request.with_header(correlation_id=corr, client_id=self.client_id)
        self.s.sendall(request.encode(header=True, framed=True))
        (n,) = struct.unpack(">i", recv_exactly(self.s, 4))
        response = request.header.get_response_class().decode(recv_exactly(self.s, n), header=True)
        assert response.header.correlation_id == corr
        return response

    def close(self):
        self.s.close()


def test_request_percentage_throttles_a_busy_client(broker):
    bs = broker.bootstrap
    # A ten-thousandth of a percent of a core over the 10 s measured is 10 us of handler time:
    # a few Metadata requests spend more than that.
    assert alter(bs, [("client-id", "busy")], [("request_percentage", 0.0001)]) == (0, None)
    busy = Conn(bs, "busy")
    throttles = []
    for _ in range(50):
        throttles.append(busy.call(MetadataRequest(version=9, topics=None)).throttle_time_ms)
        if throttles[-1] > 0:
            break
    assert throttles[-1] > 0, throttles
    # Kafka caps the request quota's throttle at one sample window (quota.window.size.seconds).
    assert throttles[-1] <= 1000, throttles
    busy.close()
    # A client id without the quota is never throttled.
    idle = Conn(bs, "idle")
    assert [idle.call(MetadataRequest(version=9, topics=None)).throttle_time_ms for _ in range(20)] == [0] * 20
    idle.close()


def create_topics(conn, version, names, partitions=1):
    T = CreateTopicsRequest.CreatableTopic
    r = conn.call(CreateTopicsRequest(version=version, timeout_ms=30_000, validate_only=False,
                                      topics=[T(name=n, num_partitions=partitions, replication_factor=1, assignments=[], configs=[]) for n in names]))
    return r.throttle_time_ms, [(t.name, t.error_code) for t in r.topics]


def test_controller_mutation_rate_strict_and_permissive(broker):
    bs = broker.bootstrap
    # 0.1 partition/s: a bucket of 1.1 partitions (11 windows of 1 s), which takes 9 s to
    # refill once 0.9 below zero.
    for client in ("strict-admin", "old-admin"):
        assert alter(bs, [("client-id", client)], [("controller_mutation_rate", 0.1)]) == (0, None)
    strict = Conn(bs, "strict-admin")
    # CreateTopics v6+: the first topic takes 1 of 1.1, the second goes below zero (accepted,
    # as Kafka's strict quota records without checking), the rest are refused.
    throttle, results = create_topics(strict, 7, ["m1", "m2", "m3", "m4"])
    assert results == [("m1", 0), ("m2", 0), ("m3", THROTTLING_QUOTA_EXCEEDED), ("m4", THROTTLING_QUOTA_EXCEEDED)], results
    assert throttle > 0
    strict.close()
    # That connection is now muted for the throttle time (KIP-219), by which the bucket has
    # refilled: the same client id on new connections meets the empty bucket at once.
    # DeleteTopics v5+ and CreatePartitions v3+ are refused the same way.
    again = Conn(bs, "strict-admin")
    r = again.call(DeleteTopicsRequest(version=6, timeout_ms=30_000, topics=[DeleteTopicsRequest.DeleteTopicState(name="m1")]))
    assert [(t.name, t.error_code) for t in r.responses] == [("m1", THROTTLING_QUOTA_EXCEEDED)] and r.throttle_time_ms > 0
    again.close()
    again = Conn(bs, "strict-admin")
    P = CreatePartitionsRequest.CreatePartitionsTopic
    r = again.call(CreatePartitionsRequest(version=3, timeout_ms=30_000, validate_only=False, topics=[P(name="m1", count=2, assignments=None)]))
    assert [(t.name, t.error_code) for t in r.results] == [("m1", THROTTLING_QUOTA_EXCEEDED)] and r.throttle_time_ms > 0
    again.close()
    # The refused topics do not exist; the accepted ones do.
    md = Conn(bs, "observer").call(MetadataRequest(version=9, topics=None, allow_auto_topic_creation=False))
    assert {"m1", "m2"} <= {t.name for t in md.topics} and not {"m3", "m4"} & {t.name for t in md.topics}
    # CreateTopics v5 (permissive): everything is created, and the client is told to wait.
    old = Conn(bs, "old-admin")
    throttle, results = create_topics(old, 5, ["o1", "o2", "o3"], partitions=2)
    assert results == [("o1", 0), ("o2", 0), ("o3", 0)] and throttle > 0, (throttle, results)
    # Another client id is not limited.
    free = Conn(bs, "free-admin")
    throttle, results = create_topics(free, 7, ["f1", "f2", "f3"], partitions=3)
    assert (throttle, results) == (0, [("f1", 0), ("f2", 0), ("f3", 0)])


def api_versions(bootstrap):
    """ApiVersions v0 on a fresh connection: True if answered, False if the broker closed it."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(frame(18, 0))
        try:
            size = s.recv(4, socket.MSG_WAITALL)
        except ConnectionResetError:
            return False
        return len(size) == 4


def test_connection_creation_rate_of_an_ip(broker):
    bs = broker.bootstrap
    assert alter(bs, [("ip", "127.0.0.1")], [("connection_creation_rate", 1)]) == (0, None)
    # 1 connection/s measured over 10 s: about ten are served at once, then the address is
    # over its rate and new connections are closed unserved (after at most one window).
    outcomes = [api_versions(bs) for _ in range(14)]
    assert outcomes.count(True) >= 1 and outcomes.count(False) >= 1, outcomes
    assert outcomes[0] and not outcomes[-1], outcomes


def test_max_connections_per_ip_and_its_overrides(broker_factory):
    b = broker_factory(overrides=["max.connections.per.ip=1", "max.connections.per.ip.overrides=127.0.0.1:3"])
    host, port = b.bootstrap.rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=30) for _ in range(3)]
    for s in held:
        s.sendall(frame(18, 0))
        assert len(s.recv(4, socket.MSG_WAITALL)) == 4
    # The override (3) applies to 127.0.0.1, not the default (1): the fourth is closed.
    assert not api_versions(b.bootstrap)
    held.pop().close()
    # Once the broker has seen that connection close, a new one is served.
    for _ in range(100):
        if api_versions(b.bootstrap):
            break
    else:
        raise AssertionError("no connection served after one closed")
    for s in held:
        s.close()


def test_max_connections_holds_new_connections_until_one_closes(broker_factory):
    b = broker_factory(overrides=["max.connections=2"])
    host, port = b.bootstrap.rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=30) for _ in range(2)]
    for s in held:
        s.sendall(frame(18, 0))
        assert len(s.recv(4, socket.MSG_WAITALL)) == 4
    # The third connects (the kernel's backlog) but is not served while two are open.
    waiting = socket.create_connection((host, int(port)), timeout=60)
    waiting.sendall(frame(18, 0))
    assert b.wait_for_log("max.connections reached", timeout=30)
    held.pop().close()
    assert len(waiting.recv(4, socket.MSG_WAITALL)) == 4
    waiting.close()
    for s in held:
        s.close()
