"""A transactional producer (confluent-kafka) that begins a transaction, writes records in it, says
READY on stdout, and then waits to be killed: a producer that dies mid-transaction.

Usage: python txn_child.py BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TRANSACTION_TIMEOUT_MS
Records: dead-0 .. dead-<COUNT-1> to partition 0. Exits 1 (with the reason on stderr) if the
transaction cannot be started.
"""
import sys
import time

from txnlib import txn_produce, txn_producer


def main():
    bootstrap, txn_id, topic, count, timeout_ms = sys.argv[1:6]
    p = txn_producer(bootstrap, txn_id, **{"transaction.timeout.ms": int(timeout_ms)})
    p.begin_transaction()
    offsets = txn_produce(p, topic, [f"dead-{i}".encode() for i in range(int(count))])
    print(f"READY offsets={offsets[0]}-{offsets[-1]}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
