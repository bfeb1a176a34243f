// saramaclient: Shopify's sarama 1.22 (Debian's golang-github-shopify-sarama-dev) against a Strom
// broker, driven by tests/e2e/test_sarama.py. Built offline with
// GOPATH=/usr/share/gocode GO111MODULE=off go build.
//
// Usage: saramaclient BOOTSTRAP KAFKA_VERSION COMMAND ARGS...
//
//	produce TOPIC N PREFIX        sync producer; N messages keyed PREFIX-i with value PREFIX-i;
//	                              prints `SENT <partition> <offset> <value>` for each
//	consume-group GROUP TOPIC N   consumer group (oldest offset when the group has none); marks and
//	                              prints `MSG <partition> <offset> <value>` for N messages, then
//	                              closes the group, which commits what was marked
//	admin TOPIC                   ClusterAdmin: CreateTopic (3 partitions, retention.ms=3600000),
//	                              ListTopics, DescribeConfig, DescribeTopics, DeleteTopic;
//	                              prints one line per step
//	groups GROUP TOPIC            ClusterAdmin: ListConsumerGroups, DescribeConsumerGroups,
//	                              ListConsumerGroupOffsets (partition 0 and 1)
//
// KAFKA_VERSION is sarama's Config.Version (e.g. 2.0.0): it decides which request versions and
// message format sarama uses. Any failure prints `ERROR <text>` and exits 1.
package main

import (
	"context"
	"fmt"
	stdlog "log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("ERROR "+format+"\n", args...)
	os.Exit(1)
}

func config(version string) *sarama.Config {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		fail("version %q: %v", version, err)
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "strom-e2e-sarama"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = time.Second
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	return c
}

func produce(bootstrap []string, c *sarama.Config, topic string, n int, prefix string) {
	p, err := sarama.NewSyncProducer(bootstrap, c)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	defer p.Close()
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("%s-%d", prefix, i)
		part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)})
		if err != nil {
			fail("SendMessage %s: %v", v, err)
		}
		fmt.Printf("SENT %d %d %s\n", part, off, v)
	}
}

// handler marks the first `want` messages it sees (over all partitions) and then cancels the
// session; messages fetched beyond that are neither marked nor printed, so that a restarted
// group must resume exactly after the last printed one.
type handler struct {
	mu     sync.Mutex
	want   int
	got    int
	cancel context.CancelFunc
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		if h.got < h.want {
			h.got++
			fmt.Printf("MSG %d %d %s\n", m.Partition, m.Offset, m.Value)
			s.MarkMessage(m, "")
			if h.got == h.want {
				h.cancel()
			}
		}
		h.mu.Unlock()
	}
	return nil
}

func consumeGroup(bootstrap []string, c *sarama.Config, group, topic string, n int) {
	g, err := sarama.NewConsumerGroup(bootstrap, group, c)
	if err != nil {
		fail("NewConsumerGroup: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		for err := range g.Errors() {
			fmt.Fprintf(os.Stderr, "group error: %v\n", err)
		}
	}()
	h := &handler{want: n, cancel: cancel}
	for ctx.Err() == nil {
		// Consume returns at each rebalance; loop until the handler has seen enough.
		if err := g.Consume(ctx, []string{topic}, h); err != nil {
			fail("Consume: %v", err)
		}
	}
	if err := g.Close(); err != nil { // commits the marked offsets
		fail("Close: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.got < n {
		fail("consumed %d of %d messages in 60 s", h.got, n)
	}
}

func admin(bootstrap []string, c *sarama.Config, topic string) {
	a, err := sarama.NewClusterAdmin(bootstrap, c)
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer a.Close()
	retention := "3600000"
	err = a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}, false)
	fmt.Printf("CREATE %v\n", err)
	err = a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	fmt.Printf("CREATE_AGAIN %v\n", err)
	topics, err := a.ListTopics()
	if err != nil {
		fail("ListTopics: %v", err)
	}
	if d, ok := topics[topic]; ok {
		fmt.Printf("LIST %s %d %d\n", topic, d.NumPartitions, d.ReplicationFactor)
	}
	entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms", "cleanup.policy"}})
	if err != nil {
		fail("DescribeConfig: %v", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	for _, e := range entries {
		fmt.Printf("CONFIG %s=%s default=%v\n", e.Name, e.Value, e.Default)
	}
	meta, err := a.DescribeTopics([]string{topic})
	if err != nil {
		fail("DescribeTopics: %v", err)
	}
	for _, m := range meta {
		fmt.Printf("DESCRIBE %s %d %d\n", m.Name, len(m.Partitions), m.Err)
	}
	fmt.Printf("DELETE %v\n", a.DeleteTopic(topic))
	time.Sleep(200 * time.Millisecond)
	topics, err = a.ListTopics()
	if err != nil {
		fail("ListTopics: %v", err)
	}
	_, still := topics[topic]
	fmt.Printf("LISTED_AFTER_DELETE %v\n", still)
}

func groups(bootstrap []string, c *sarama.Config, group, topic string) {
	a, err := sarama.NewClusterAdmin(bootstrap, c)
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer a.Close()
	all, err := a.ListConsumerGroups()
	if err != nil {
		fail("ListConsumerGroups: %v", err)
	}
	if t, ok := all[group]; ok {
		fmt.Printf("LISTED %s %s\n", group, t)
	}
	ds, err := a.DescribeConsumerGroups([]string{group})
	if err != nil {
		fail("DescribeConsumerGroups: %v", err)
	}
	for _, d := range ds {
		fmt.Printf("DESCRIBED %s %s %s %d %d\n", d.GroupId, d.State, d.ProtocolType, len(d.Members), d.Err)
	}
	offs, err := a.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	if err != nil {
		fail("ListConsumerGroupOffsets: %v", err)
	}
	for _, p := range []int32{0, 1} {
		if b := offs.GetBlock(topic, p); b != nil {
			fmt.Printf("OFFSET %d %d %d\n", p, b.Offset, b.Err)
		}
	}
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: saramaclient BOOTSTRAP KAFKA_VERSION COMMAND ARGS...")
	}
	bootstrap, c, cmd, args := strings.Split(os.Args[1], ","), config(os.Args[2]), os.Args[3], os.Args[4:]
	if os.Getenv("SARAMA_DEBUG") != "" {
		sarama.Logger = log(os.Stderr)
	}
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			fail("not a number: %q", s)
		}
		return n
	}
	switch {
	case cmd == "produce" && len(args) == 3:
		produce(bootstrap, c, args[0], num(args[1]), args[2])
	case cmd == "consume-group" && len(args) == 3:
		consumeGroup(bootstrap, c, args[0], args[1], num(args[2]))
	case cmd == "admin" && len(args) == 1:
		admin(bootstrap, c, args[0])
	case cmd == "groups" && len(args) == 2:
		groups(bootstrap, c, args[0], args[1])
	default:
		fail("unknown command or wrong arguments: %v", os.Args[3:])
	}
	fmt.Println("DONE")
}

// log is sarama's StdLogger on stderr (SARAMA_DEBUG=1: its own account of what it sent).
func log(w *os.File) sarama.StdLogger { return stdlog.New(w, "[sarama] ", stdlog.LstdFlags) }
