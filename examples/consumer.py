#!/usr/bin/env python3
"""A consumer in a consumer group: prints every message it receives, and the partitions the
group gives it.

    python examples/consumer.py --group demo                       # Experiments 1 and 2
    python examples/consumer.py --group demo --commit each         # Experiment 3

Lines printed:
    assigned partitions [0, 1]          the group coordinator gave us these partitions
    revoked partitions [0, 1]           ... and took them back for a rebalance
    received partition=P offset=O value=...

--commit chooses how our position is saved in the group (in the broker's __consumer_offsets):
    auto    the client commits in the background every 5 s, and on a clean close (Kafka's default)
    each    after printing a message we commit offset+1 synchronously: a restarted consumer
            continues exactly after the last message printed
    never   nothing is committed: every start begins at --auto-offset-reset

Ctrl-C stops cleanly: the current message is finished, the consumer leaves the group
(consumer.close()), and the other members of the group get our partitions at once.
"""
import argparse
import signal
import sys

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
from kafka.errors import CommitFailedError, KafkaError


class PrintRebalance(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        if revoked:
            print(f"revoked partitions {sorted(tp.partition for tp in revoked)}", flush=True)

    def on_partitions_assigned(self, assigned):
        print(f"assigned partitions {sorted(tp.partition for tp in assigned)}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="test")
    ap.add_argument("--group", default="test-group", help="consumer group id (default test-group)")
    ap.add_argument("--auto-offset-reset", choices=["earliest", "latest"], default="latest",
                    help="where to start when the group has no committed offset (default latest)")
    ap.add_argument("--commit", choices=["auto", "each", "never"], default="auto")
    ap.add_argument("--session-timeout-ms", type=int, default=10000,
                    help="a member silent this long is removed from the group (default 10000)")
    ap.add_argument("--heartbeat-interval-ms", type=int, default=3000)
    ap.add_argument("--client-id", default="strom-example-consumer")
    args = ap.parse_args()

    # Ctrl-C (or SIGTERM) only sets a flag: a message is never half handled (printed but not
    # committed). A second Ctrl-C interrupts at once.
    stop = []

    def request_stop(signum, _frame):
        stop.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap_server,
        group_id=args.group,
        client_id=args.client_id,
        auto_offset_reset=args.auto_offset_reset,
        enable_auto_commit=(args.commit == "auto"),
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
    )
    consumer.subscribe([args.topic], listener=PrintRebalance())
    print(f"consumer started: group={args.group} topic={args.topic} commit={args.commit} "
          f"auto_offset_reset={args.auto_offset_reset}", flush=True)
    try:
        while not stop:
            batch = consumer.poll(timeout_ms=500)
            for tp, messages in batch.items():
                for msg in messages:
                    if stop:
                        # Not handled: rewind, so that a commit on close does not skip it.
                        consumer.seek(tp, msg.offset)
                        break
                    value = msg.value.decode(errors="replace") if msg.value is not None else None
                    print(f"received partition={msg.partition} offset={msg.offset} value={value}", flush=True)
                    if args.commit == "each":
                        try:
                            consumer.commit({tp: OffsetAndMetadata(offset=msg.offset + 1, metadata="", leader_epoch=-1)})
                        except CommitFailedError as e:
                            # The group rebalanced and the partition is no longer ours: whoever has
                            # it now starts at the last successful commit.
                            print(f"commit failed: {e}", flush=True)
    except KafkaError as e:
        print(f"error: {e}", flush=True)
        return 1
    finally:
        print("stopping: closing the consumer (leaves the group)", flush=True)
        consumer.close(autocommit=(args.commit == "auto"))
        print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
