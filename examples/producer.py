#!/usr/bin/env python3
"""Experiment 1 producer: writes numbered messages ("message 0", "message 1", ...) to a topic
and prints where each one landed.

    python examples/producer.py                        # one message a second, until Ctrl-C
    python examples/producer.py --count 20 --interval 0

Each line printed is an acknowledged write: `sent partition=P offset=O value=message N`.
"""
import argparse
import signal
import sys
import time

from kafka import KafkaProducer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="test")
    ap.add_argument("--count", type=int, default=0, help="messages to send; 0 = until Ctrl-C (default)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between messages (default 1)")
    ap.add_argument("--start", type=int, default=0, help="number of the first message (default 0)")
    ap.add_argument("--keyed", action="store_true",
                    help="use the message number as key, so messages spread over the partitions by key "
                         "hash (without a key the client picks a partition at random)")
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))

    producer = KafkaProducer(bootstrap_servers=args.bootstrap_server, acks="all")
    n = args.start
    try:
        while not stop and (args.count == 0 or n < args.start + args.count):
            value = f"message {n}"
            key = str(n).encode() if args.keyed else None
            # .get() waits for the broker's acknowledgement: the offset printed is final.
            md = producer.send(args.topic, key=key, value=value.encode()).get(timeout=30)
            print(f"sent partition={md.partition} offset={md.offset} value={value}", flush=True)
            n += 1
            if args.interval > 0 and not stop:
                time.sleep(args.interval)
    finally:
        producer.close()
    print(f"producer done, {n - args.start} messages sent", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
