"""`strom transactions` (Kafka's kafka-transactions.sh) against a real broker: list, describe and
describe-producers of a live transaction opened by confluent-kafka, find-hanging and abort of a
hanging one (a transactional batch written by hand from a producer no coordinator knows), and the
transactional sides of the other tools: console-consumer --isolation-level read_committed,
producer-perf-test's transactions and consumer-perf-test --isolation-level."""
import re
import struct
import subprocess
import time

import pytest
from confluent_kafka import Producer
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import STROM_BIN
from test_cli_perf import TOTAL
from wire import exchange, frame, kstr

LIST_HEADERS = ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
DESCRIBE_HEADERS = ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                    "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs", "TopicPartitions"]
PRODUCERS_HEADERS = ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                     "CurrentTransactionStartOffset"]
HANGING_HEADERS = ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                   "LastTimestamp", "Duration(min)"]
COMMITS = re.compile(r"^(\d+) transactions committed, (\d+\.\d\d) ms avg commit latency, (\d+\.\d\d) ms max commit latency, "
                     r"(\d+\.\d\d) ms 50th, (\d+\.\d\d) ms 99th\.$")


def strom(*args, timeout=60):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def txns(broker, *args):
    """`strom transactions --bootstrap-server B ARGS` that must succeed: (headers, rows)."""
    r = strom("transactions", "--bootstrap-server", broker.bootstrap, *args)
    assert r.returncode == 0 and r.stderr == "", (args, r.stdout, r.stderr)
    return table(r.stdout)


def table(text):
    """Kafka's prettyPrintTable: every cell padded to its column and followed by a tab, the last too."""
    lines = text.splitlines()
    assert lines and all(l.endswith("\t") for l in lines), repr(text)
    cells = [l[:-1].split("\t") for l in lines]
    widths = {len(c) for c in cells}
    assert len(widths) == 1, repr(text)
    for col in range(len(cells[0])):
        assert len({len(row[col]) for row in cells}) == 1, f"column {col} not padded: {text!r}"
    rows = [[c.rstrip() for c in row] for row in cells]
    return rows[0], rows[1:]


def transactional_producer(broker, tid, **conf):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": tid, **conf})
    p.init_transactions(30)
    return p


def console(broker, topic, isolation, n, partition="0"):
    """The values console-consumer prints from the start of one partition (at most n, or what
    arrives before it has been idle for 3 s)."""
    r = strom("console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--partition", partition,
              "--from-beginning", "--isolation-level", isolation, "--max-messages", str(n), "--timeout-ms", "3000")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def ghost_batch(producer_id, epoch, values, timestamp_ms):
    """A transactional RecordBatch v2 of `values` (sequence 0 on)."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True, producer_id=producer_id,
                                  producer_epoch=epoch, base_sequence=0, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=timestamp_ms, key=None, value=v, headers=[])
    return bytes(b.build())


def produce_raw(bootstrap, topic, partition, batch, transactional_id):
    """Produce v3 of one batch, acks=-1: (error code, base offset)."""
    t = topic.encode()
    body = kstr(transactional_id) + struct.pack(">hii", -1, 10000, 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch
    resp = exchange(bootstrap, frame(0, 3, body), timeout=15)
    assert resp is not None, "Produce closed the connection"
    (tlen,) = struct.unpack_from(">h", resp, 8)
    _partition, error, base_offset = struct.unpack_from(">ihq", resp, 10 + tlen + 4)
    return error, base_offset


def test_list_describe_and_describe_producers_of_an_open_transaction(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "orders", "--partitions", "2").returncode == 0
    # No transaction yet: the header alone.
    r = strom("transactions", *bs, "list")
    assert (r.returncode, r.stdout, r.stderr) == (0, "TransactionalId\tCoordinator\tProducerId\tTransactionState\t\n", "")

    p = transactional_producer(broker, "tx-orders")
    p.begin_transaction()
    for i in range(3):
        p.produce("orders", value=b"open-%d" % i, partition=0)
    p.produce("orders", value=b"open-p1", partition=1)
    p.flush(10)

    headers, rows = txns(broker, "list")
    assert headers == LIST_HEADERS
    assert len(rows) == 1 and rows[0][0] == "tx-orders" and rows[0][1] == "1" and rows[0][3] == "Ongoing", rows
    producer_id = rows[0][2]
    assert int(producer_id) >= 0
    # --duration-filter (KIP-994): only transactions open longer than that many ms.
    assert txns(broker, "list", "--duration-filter", "3600000")[1] == []
    assert [r[0] for r in txns(broker, "list", "--duration-filter", "-1")[1]] == ["tx-orders"]

    headers, rows = txns(broker, "describe", "--transactional-id", "tx-orders")
    assert headers == DESCRIBE_HEADERS
    [row] = rows
    assert row[:6] == ["1", "tx-orders", producer_id, "0", "Ongoing", "60000"], row
    start, duration = int(row[6]), int(row[7])
    assert abs(start - time.time() * 1000) < 600_000 and duration >= 0, row
    assert row[8] == "orders-0,orders-1"

    headers, rows = txns(broker, "describe-producers", "--topic", "orders", "--partition", "0")
    assert headers == PRODUCERS_HEADERS
    [row] = rows
    # No transaction of this producer ended yet: no coordinator epoch.
    assert row[0] == producer_id and row[1] == "0" and row[2] == "-1" and row[3] == "2" and row[5] == "0", row
    assert abs(int(row[4]) - time.time() * 1000) < 600_000
    # The same from the one replica by --broker-id.
    assert txns(broker, "describe-producers", "--broker-id", "1", "--topic", "orders", "--partition", "1")[1][0][5] == "0"

    # A live transaction is not hanging, even with every open transaction a candidate (0 minutes):
    # its coordinator lists the producer and the partitions.
    for scope in (["--topic", "orders"], ["--topic", "orders", "--partition", "0"], ["--broker-id", "1"]):
        headers, rows = txns(broker, "find-hanging", *scope, "--max-transaction-timeout", "0")
        assert (headers, rows) == (HANGING_HEADERS, []), scope

    # Kafka's get-offsets reads uncommitted (the high watermark); read_committed stops before the
    # open transaction, read_uncommitted does not.
    assert strom("get-offsets", *bs, "--topic", "orders").stdout == "orders:0:3\norders:1:1\n"
    assert console(broker, "orders", "read_committed", 3) == []
    assert console(broker, "orders", "read_uncommitted", 3) == ["open-0", "open-1", "open-2"]

    p.commit_transaction(30)
    _, rows = txns(broker, "list")
    assert rows == [["tx-orders", "1", producer_id, "CompleteCommit"]]
    _, [row] = txns(broker, "describe", "--transactional-id", "tx-orders")
    assert row[4] == "CompleteCommit" and row[8] == "", row
    _, [row] = txns(broker, "describe-producers", "--topic", "orders", "--partition", "0")
    assert row[0] == producer_id and row[5] == "None" and int(row[2]) >= 0, row
    assert console(broker, "orders", "read_committed", 3) == ["open-0", "open-1", "open-2"]


def test_console_consumer_read_committed_prints_only_committed_values(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "ledger", "--partitions", "1").returncode == 0
    p = transactional_producer(broker, "tx-ledger")
    for values, commit in ((["c1", "c2"], True), (["a1", "a2"], False), (["c3"], True)):
        p.begin_transaction()
        for v in values:
            p.produce("ledger", value=v.encode(), partition=0)
        p.flush(10)
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    assert console(broker, "ledger", "read_committed", 3) == ["c1", "c2", "c3"]
    assert console(broker, "ledger", "read_uncommitted", 5) == ["c1", "c2", "a1", "a2", "c3"]
    # The flag reaches librdkafka: a bad value is refused there.
    r = strom("console-consumer", *bs, "--topic", "ledger", "--isolation-level", "sometimes", "--timeout-ms", "1000")
    assert r.returncode != 0 and "isolation.level" in r.stderr, r.stderr


@pytest.fixture
def unverified(broker_factory):
    """A broker that does not ask coordinators before a producer's first transactional batch
    (KIP-890 part 1 off): the way a batch can open a transaction no coordinator knows about."""
    return broker_factory(overrides=["transaction.partition.verification.enable=false", "group.initial.rebalance.delay.ms=0"])


def test_find_hanging_and_abort_a_transaction_no_coordinator_knows(unverified):
    broker = unverified
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "stuck", "--partitions", "2").returncode == 0
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for partition in (0, 1):
        plain.produce("stuck", value=b"before", partition=partition)
    assert plain.flush(10) == 0
    # Two transactional batches 20 minutes old from producer ids no InitProducerId handed out, so
    # no transactional id and no coordinator will ever end them.
    old = int(time.time() * 1000) - 20 * 60 * 1000
    assert produce_raw(broker.bootstrap, "stuck", 0, ghost_batch(990001, 2, [b"ghost-a", b"ghost-b"], old), "ghost") == (0, 1)
    assert produce_raw(broker.bootstrap, "stuck", 1, ghost_batch(990002, 5, [b"ghost-c"], old), "ghost") == (0, 1)
    # A committed transaction after them: read_committed readers cannot reach it past the hanging ones.
    p = transactional_producer(broker, "tx-after")
    p.begin_transaction()
    p.produce("stuck", value=b"after", partition=0)
    p.produce("stuck", value=b"after", partition=1)
    p.commit_transaction(30)
    assert console(broker, "stuck", "read_committed", 2) == ["before"]

    _, rows = txns(broker, "describe-producers", "--topic", "stuck", "--partition", "0")
    # The hanging one, and tx-after's producer with its transaction committed.
    [row] = [r for r in rows if r[0] == "990001"]
    assert row[1:] == ["2", "-1", "1", str(old), "1"], row
    assert [r[5] for r in rows if r[0] != "990001"] == ["None"], rows

    expected = [["stuck", "0", "990001", "2", "-1", "1", str(old)], ["stuck", "1", "990002", "5", "-1", "1", str(old)]]
    for scope in (["--broker-id", "1"], ["--topic", "stuck"]):
        headers, rows = txns(broker, "find-hanging", *scope)  # default: open longer than 15 minutes
        assert headers == HANGING_HEADERS
        assert [r[:7] for r in rows] == expected, (scope, rows)
        assert all(int(r[7]) >= 20 for r in rows), rows
    _, rows = txns(broker, "find-hanging", "--topic", "stuck", "--partition", "1")
    assert [r[:7] for r in rows] == expected[1:]
    # Not open longer than an hour: no candidates.
    assert txns(broker, "find-hanging", "--broker-id", "1", "--max-transaction-timeout", "60")[1] == []

    # Abort by start offset (Kafka's form for brokers 3.0+): the producer is looked up on the leader.
    r = strom("transactions", *bs, "abort", "--topic", "stuck", "--partition", "0", "--start-offset", "7")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "Error: Could not find any open transactions starting at offset 7 on partition stuck-0\n", r.stderr
    r = strom("transactions", *bs, "abort", "--topic", "stuck", "--partition", "0", "--start-offset", "1")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert console(broker, "stuck", "read_committed", 2) == ["before", "after"]
    _, rows = txns(broker, "describe-producers", "--topic", "stuck", "--partition", "0")
    # The abort marker's coordinator epoch is 0: the producer had none (-1).
    [row] = [r for r in rows if r[0] == "990001"]
    assert row[2] == "0" and row[5] == "None", row

    # Abort by producer id, epoch and coordinator epoch (Kafka's form for older brokers).
    r = strom("transactions", *bs, "abort", "--topic", "stuck", "--partition", "1", "--producer-id", "990002")
    assert r.returncode == 1 and r.stderr == "Error: Missing required argument --producer-epoch\n", r.stderr
    r = strom("transactions", *bs, "abort", "--topic", "stuck", "--partition", "1", "--producer-id", "990002",
              "--producer-epoch", "5", "--coordinator-epoch", "-1")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert txns(broker, "find-hanging", "--broker-id", "1", "--max-transaction-timeout", "0")[1] == []
    assert console(broker, "stuck", "read_committed", 2, partition="1") == ["before", "after"]


def test_errors_are_one_line_with_kafkas_messages(broker, tmp_path):
    bs = ["--bootstrap-server", broker.bootstrap]

    def fails(*args):
        r = strom("transactions", *bs, *args)
        assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1, (args, r.stdout, r.stderr)
        return r.stderr

    assert fails("describe", "--transactional-id", "nobody") == (
        "Error: Failed to describe transaction state of transactional-id `nobody`: "
        "TRANSACTIONAL_ID_NOT_FOUND: The transactionalId could not be found.\n")
    assert fails("describe-producers", "--topic", "nope", "--partition", "0") == (
        "Error: Failed to describe producers for partition nope-0 on leader: "
        "UNKNOWN_TOPIC_OR_PARTITION: This server does not host this topic-partition.\n")
    assert "requires either --topic or --broker-id" in fails("find-hanging")
    assert "The --partition argument requires --topic to be provided" in fails("find-hanging", "--broker-id", "1", "--partition", "0")
    assert "must be identified either with --start-offset" in fails("abort", "--topic", "t", "--partition", "0")
    r = strom("transactions", "--bootstrap-server", "127.0.0.1:1", "list")
    assert r.returncode == 1 and r.stderr.startswith("Error: cannot reach the cluster at 127.0.0.1:1"), r.stderr
    # --command-config: client.id and request.timeout.ms are read; SSL without the CA to check the
    # broker against is refused by name (test_tools_tls.py runs the tools over TLS).
    ok, ssl = tmp_path / "ok.properties", tmp_path / "ssl.properties"
    ok.write_text("client.id=ops-audit\nrequest.timeout.ms=20000\n")
    ssl.write_text("security.protocol=SSL\n")
    assert strom("transactions", *bs, "--command-config", str(ok), "list").returncode == 0
    assert "ssl.truststore.location" in fails("--command-config", str(ssl), "list")
    # The connection flags also go after the subcommand.
    r = strom("transactions", "list", *bs)
    assert (r.returncode, r.stdout) == (0, "TransactionalId\tCoordinator\tProducerId\tTransactionState\t\n"), r.stderr


def test_producer_perf_test_transactions_and_consumer_perf_test_read_committed(unverified):
    broker = unverified
    bs = ["--bootstrap-server", broker.bootstrap]
    r = strom("producer-perf-test", *bs, "--topic", "perf-tx", "--num-records", "1000", "--record-size", "100",
              "--throughput", "-1", "--transactional-id", "perf-tx", "--transaction-size", "100")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    total, commits = TOTAL.match(lines[-2]), COMMITS.match(lines[-1])
    assert total and int(total.group(1)) == 1000, r.stdout
    assert commits and int(commits.group(1)) == 10, r.stdout
    assert float(commits.group(4)) <= float(commits.group(5)) <= float(commits.group(3))
    [row] = txns(broker, "list")[1]
    assert row[0] == "perf-tx" and row[3] == "CompleteCommit", row

    # Kafka's flag alone turns transactions on, with a generated transactional id.
    r = strom("producer-perf-test", *bs, "--topic", "perf-tx", "--num-records", "500", "--record-size", "100",
              "--throughput", "-1", "--transaction-duration-ms", "100")
    assert r.returncode == 0, r.stderr
    commits = COMMITS.match(r.stdout.splitlines()[-1])
    assert TOTAL.match(r.stdout.splitlines()[-2]) and commits and int(commits.group(1)) >= 1, r.stdout
    ids = sorted(row[0] for row in txns(broker, "list")[1])
    assert len(ids) == 2 and ids[0] == "perf-tx" and re.fullmatch(r"performance-producer-[0-9a-f]{32}", ids[1]), ids

    # Idempotent, not transactional: the broker sees a producer id, and no commit line is printed.
    r = strom("producer-perf-test", *bs, "--topic", "perf-idem", "--num-records", "500", "--record-size", "10",
              "--throughput", "-1", "--producer-props", "enable.idempotence=true")
    assert r.returncode == 0 and TOTAL.match(r.stdout.splitlines()[-1]), (r.stdout, r.stderr)
    _, [row] = txns(broker, "describe-producers", "--topic", "perf-idem", "--partition", "0")
    assert int(row[0]) >= 0 and row[3] == "499" and row[5] == "None", row

    # A hanging transaction at the end of perf-tx: read_committed stops before it, read_uncommitted does not.
    assert produce_raw(broker.bootstrap, "perf-tx", 0, ghost_batch(990009, 0, [b"x"] * 5, int(time.time() * 1000)), "g")[0] == 0
    # read_uncommitted first: it ends at its 1505th record, and its group join creates
    # __consumer_offsets, which the read_committed run, waiting out its --timeout, then need not.
    for level, expected, timeout in (("read_uncommitted", 1505, "30000"), ("read_committed", 1500, "5000")):
        r = strom("consumer-perf-test", *bs, "--topic", "perf-tx", "--messages", "1505", "--isolation-level", level,
                  "--timeout", timeout, "--hide-header")
        # Fewer than --messages: Kafka's tool warns (on stdout) and still prints its line.
        fields = r.stdout.splitlines()[-1].split(", ")
        assert r.returncode == 0 and len(fields) == 10 and int(fields[4]) == expected, (level, r.stdout, r.stderr)
        assert r.stdout.startswith("WARNING: Exiting before consuming the expected number of messages") == (expected < 1505)
