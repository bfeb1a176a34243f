// kafkagoclient: segmentio's kafka-go 0.2.1 (Debian's golang-github-segmentio-kafka-go-dev)
// against a Strom broker, driven by tests/e2e/test_kafka_go.py. Built offline with
// GOPATH=/usr/share/gocode GO111MODULE=off go build. kafka-go 0.2.1 speaks fixed request
// versions: Produce v2 and Fetch v2 (message format v1), ListOffsets v1, Metadata v1,
// JoinGroup v1, OffsetCommit v2, OffsetFetch v1, CreateTopics v0, DeleteTopics v1.
//
// Usage: kafkagoclient BOOTSTRAP COMMAND ARGS...
//
//	produce TOPIC N PREFIX        Writer (hash balancer): N messages keyed and valued PREFIX-i;
//	                              prints `SENT <n>`
//	consume-group GROUP TOPIC N   Reader with GroupID (first offset when the group has none):
//	                              fetches N messages, commits each (CommitMessages), prints
//	                              `MSG <partition> <offset> <value>`, closes the reader
//	admin TOPIC                   Conn.CreateTopics (3 partitions), ReadPartitions, again
//	                              CreateTopics (idempotent in kafka-go), DeleteTopics (not
//	                              checked here: ReadPartitions sends Metadata v1, which would
//	                              auto-create the topic again)
//
// Any failure prints `ERROR <text>` and exits 1; success ends with `DONE`.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("ERROR "+format+"\n", args...)
	os.Exit(1)
}

func produce(bootstrap []string, topic string, n int, prefix string) {
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: bootstrap, Topic: topic, Balancer: &kafka.Hash{},
		BatchTimeout: 10 * time.Millisecond})
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		v := []byte(fmt.Sprintf("%s-%d", prefix, i))
		msgs[i] = kafka.Message{Key: v, Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		fail("WriteMessages: %v", err)
	}
	if err := w.Close(); err != nil {
		fail("Writer.Close: %v", err)
	}
	fmt.Printf("SENT %d\n", n)
}

func consumeGroup(bootstrap []string, group, topic string, n int) {
	// kafka-go 0.2.1's Close dials the coordinator for its LeaveGroup with the context Close has
	// just cancelled, so the member never leaves: the next reader of the group waits for this
	// one's session to expire. A short session (the test's broker allows it) keeps that wait short.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bootstrap, GroupID: group, Topic: topic,
		MaxWait: 200 * time.Millisecond, SessionTimeout: 2 * time.Second, HeartbeatInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			fail("FetchMessage after %d messages: %v", i, err)
		}
		fmt.Printf("MSG %d %d %s\n", m.Partition, m.Offset, m.Value)
		// CommitInterval is 0: the commit is synchronous (OffsetCommit v2).
		if err := r.CommitMessages(ctx, m); err != nil {
			fail("CommitMessages: %v", err)
		}
	}
	if err := r.Close(); err != nil {
		fail("Reader.Close: %v", err)
	}
}

func partitions(conn *kafka.Conn, topic string) int {
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		fmt.Printf("PARTITIONS_ERROR %v\n", err)
		return -1
	}
	return len(ps)
}

func admin(bootstrap []string, topic string) {
	conn, err := kafka.Dial("tcp", bootstrap[0])
	if err != nil {
		fail("Dial: %v", err)
	}
	defer conn.Close()
	cfg := kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}}
	fmt.Printf("CREATE %v\n", conn.CreateTopics(cfg))
	fmt.Printf("PARTITIONS %d\n", partitions(conn, topic))
	fmt.Printf("CREATE_AGAIN %v\n", conn.CreateTopics(cfg))
	fmt.Printf("DELETE %v\n", conn.DeleteTopics(topic))
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: kafkagoclient BOOTSTRAP COMMAND ARGS...")
	}
	bootstrap, cmd, args := strings.Split(os.Args[1], ","), os.Args[2], os.Args[3:]
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			fail("not a number: %q", s)
		}
		return n
	}
	switch {
	case cmd == "produce" && len(args) == 3:
		produce(bootstrap, args[0], num(args[1]), args[2])
	case cmd == "consume-group" && len(args) == 3:
		consumeGroup(bootstrap, args[0], args[1], num(args[2]))
	case cmd == "admin" && len(args) == 1:
		admin(bootstrap, args[0])
	default:
		fail("unknown command or wrong arguments: %v", os.Args[2:])
	}
	fmt.Println("DONE")
}
