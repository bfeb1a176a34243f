#!/usr/bin/env python3
"""Creates a topic with a given number of partitions (Experiment 2 needs `test` with 2).
If the topic exists with fewer partitions, adds partitions; it never removes any.

    python examples/create_topic.py --topic test --partitions 2
"""
import argparse
import sys

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError


def partition_count(admin, topic):
    for t in admin.describe_topics([topic]):
        if t["name"] == topic:
            return len(t["partitions"])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="test")
    ap.add_argument("--partitions", type=int, default=2)
    args = ap.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap_server)
    try:
        try:
            admin.create_topics({args.topic: {"num_partitions": args.partitions, "replication_factor": 1}})
            print(f"created topic {args.topic} with {args.partitions} partitions", flush=True)
        except TopicAlreadyExistsError:
            have = partition_count(admin, args.topic)
            if have < args.partitions:
                admin.create_partitions({args.topic: args.partitions})
                print(f"topic {args.topic} had {have} partitions, now {args.partitions}", flush=True)
            else:
                print(f"topic {args.topic} already exists with {have} partitions", flush=True)
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
