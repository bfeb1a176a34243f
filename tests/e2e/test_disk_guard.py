"""The disk guard (`log.dir.min.free.bytes`): set above the data directory's free space at run
time with `strom configs` (as `kafka-configs.sh --alter`), produce is refused with
KAFKA_STORAGE_ERROR (retriable) while consumers read, topics are created and `/metrics` is
served; a librdkafka producer that started meanwhile keeps its records and delivers every one
once the margin is lowered again, without a restart."""
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.errors import KafkaStorageError

from test_cli_configs import configs, ok

HUGE = str(2**62)


def test_writes_stop_below_the_margin_and_resume_when_it_is_lowered(broker):
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("guarded", 1, 1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": bs})
    for i in range(10):
        p.produce("guarded", f"before-{i}".encode())
    assert p.flush(15) == 0

    ok(configs(broker, "--broker", "1", "--alter", "--add-config", f"log.dir.min.free.bytes={HUGE}"), "Completed updating config for broker 1.\n")
    assert broker.wait_for_log("the data directory is nearly full", 10)

    # Refused with the retriable storage error and its reason (kafka-python, no retries).
    kp = KafkaProducer(bootstrap_servers=bs, retries=0, api_version=(2, 8))
    try:
        kp.send("guarded", b"refused").get(timeout=15)
        raise AssertionError("a produce below the margin was accepted")
    except KafkaStorageError:
        pass
    finally:
        kp.close()

    # Reads and admin requests go on.
    c = Consumer({"bootstrap.servers": bs, "group.id": "reader", "auto.offset.reset": "earliest"})
    c.subscribe(["guarded"])
    got, deadline = [], time.time() + 20
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert got == [f"before-{i}".encode() for i in range(10)]
    for f in admin.create_topics([NewTopic("made-while-full", 1, 1)]).values():
        f.result(15)

    # A producer with librdkafka's retries holds its records while refused...
    delivered, errors = [], []
    p = Producer({"bootstrap.servers": bs, "message.timeout.ms": 60000, "retry.backoff.ms": 200})
    for i in range(20):
        p.produce("guarded", f"held-{i}".encode(), on_delivery=lambda err, m: (errors if err else delivered).append(err or m.value()))
    p.flush(3)
    assert delivered == [] and errors == []
    # ... and delivers them all once the margin is lowered at run time.
    ok(configs(broker, "--broker", "1", "--alter", "--delete-config", "log.dir.min.free.bytes"), "Completed updating config for broker 1.\n")
    assert broker.wait_for_log("the data directory has room again", 10)
    assert p.flush(30) == 0
    assert errors == [] and sorted(delivered) == sorted(f"held-{i}".encode() for i in range(20))
    assert "log.dir.min.free.bytes" in broker.log_since_start()
