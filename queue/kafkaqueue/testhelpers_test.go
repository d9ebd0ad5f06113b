package kafkaqueue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/eventcodec"
	"github.com/hookbridge/hookbridge/internal/testcert"
	"github.com/hookbridge/hookbridge/queue"
)

const (
	ingress    = "bridge.ingress"
	deadLetter = ingress + DeadLetterSuffix
	group      = "bridge"
)

// newCluster starts an in-process Kafka cluster on loopback TCP with the
// ingress topic in partitions partitions and a one-partition dead-letter
// topic. Groups may use session timeouts down to 100ms.
func newCluster(t testing.TB, partitions int32, opts ...kfake.Opt) []string {
	t.Helper()
	_, brokers := startCluster(t, partitions, opts...)
	return brokers
}

// startCluster is newCluster, with the cluster for its control hooks.
func startCluster(t testing.TB, partitions int32, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, ingress),
		kfake.SeedTopics(1, deadLetter),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// testLogger writes the queue's logs to t.Log with KAFKAQUEUE_LOG set (e.g.
// to "debug"), and drops them otherwise.
func testLogger(t testing.TB) *slog.Logger {
	lvl, ok := os.LookupEnv("KAFKAQUEUE_LOG")
	if !ok {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(lvl))
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first: runs after every Close
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

// routeByType routes an event of type "t.<sinks>" to each sink named by a
// letter of <sinks> ("t.ab": a and b; "t.none": none).
func routeByType(ev *event.Event) []string {
	s := strings.TrimPrefix(ev.Type(), "t.")
	if s == "none" {
		return nil
	}
	var out []string
	for _, c := range s {
		out = append(out, string(c))
	}
	return out
}

// openQueue opens a queue on brokers with short timings; edit adjusts the
// options. The queue is closed at the end of the test.
func openQueue(t testing.TB, brokers []string, edit func(*Options)) *Queue {
	t.Helper()
	o := Options{
		Brokers:        brokers,
		Topic:          ingress,
		Group:          group,
		Route:          routeByType,
		CommitInterval: 50 * time.Millisecond,
		SessionTimeout: 2 * time.Second,
		WriteTimeout:   5 * time.Second,
		Logger:         testLogger(t),
	}
	if edit != nil {
		edit(&o)
	}
	q, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func subscribe(t testing.TB, q *Queue, sinks ...string) {
	t.Helper()
	for _, s := range sinks {
		if err := q.Subscribe(s); err != nil {
			t.Fatalf("Subscribe(%s): %v", s, err)
		}
	}
}

// newEvent makes event number n of type typ.
func newEvent(n int, typ string) *event.Event {
	ev := event.New()
	ev.SetID(fmt.Sprintf("ev-%03d", n))
	ev.SetSource("https://example.com/source")
	ev.SetType(typ)
	ev.SetTime(time.Date(2025, 3, 1, 12, 0, n, 0, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, map[string]any{"n": n, "name": "Ada", "note": "héllo"}); err != nil {
		panic(err)
	}
	return &ev
}

// itemID is the id ingest gives an event: "<source> <id>".
func itemID(ev *event.Event) string { return ev.Source() + " " + ev.ID() }

func itemOf(t testing.TB, ev *event.Event) queue.Item {
	t.Helper()
	b, err := eventcodec.Encode(ev)
	if err != nil {
		t.Fatalf("encoding %s: %v", ev.ID(), err)
	}
	return queue.Item{ID: itemID(ev), Event: b, Sinks: routeByType(ev)}
}

func enqueue(t testing.TB, q *Queue, evs ...*event.Event) {
	t.Helper()
	items := make([]queue.Item, len(evs))
	for i, ev := range evs {
		items[i] = itemOf(t, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dup, err := q.Enqueue(ctx, items)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(dup) != len(items) || slices.Contains(dup, true) {
		t.Fatalf("Enqueue reported duplicates %v", dup)
	}
}

// take calls Next as a delivery loop would until it has n deliveries for
// sink, failing after timeout.
func take(t testing.TB, q *Queue, sink string, n int, timeout time.Duration) []queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []queue.Delivery
	for len(out) < n {
		ds, err := q.Next(ctx, sink, n-len(out), 0)
		if err != nil {
			t.Fatalf("Next(%s): got %d of %d deliveries (%v): %v", sink, len(out), n, idsOf(t, out), err)
		}
		out = append(out, ds...)
	}
	return out
}

// send does what a delivery loop does right before it sends ds: asks the
// queue which are still this replica's (which puts them under way) and
// returns those.
func send(t testing.TB, q *Queue, sink string, ds []queue.Delivery) []queue.Delivery {
	t.Helper()
	gone := q.Relinquished(sink, seqsOf(ds))
	kept := ds[:0:0]
	for i, d := range ds {
		if !gone[i] {
			kept = append(kept, d)
		}
	}
	return kept
}

// tryNext is TryNext of up to 100 deliveries, failing the test on an error.
func tryNext(t testing.TB, q *Queue, sink string) []queue.Delivery {
	t.Helper()
	ds, err := q.TryNext(sink, 100, 0)
	if err != nil {
		t.Fatalf("TryNext(%s): %v", sink, err)
	}
	return ds
}

// takeNone checks that sink is handed nothing within d.
func takeNone(t testing.TB, q *Queue, sink string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ds, err := q.Next(ctx, sink, 100, 0)
	if err == nil {
		t.Fatalf("Next(%s): unexpected deliveries %v", sink, idsOf(t, ds))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next(%s): %v", sink, err)
	}
}

func decode(t testing.TB, d queue.Delivery) *event.Event {
	t.Helper()
	ev, err := eventcodec.Decode(d.Event)
	if err != nil {
		t.Fatalf("decoding delivery %d of %s: %v", d.Seq, d.Sink, err)
	}
	return ev
}

// idsOf lists the event ids of ds, in order.
func idsOf(t testing.TB, ds []queue.Delivery) []string {
	t.Helper()
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = decode(t, d).ID()
	}
	return out
}

func idsOfEvents(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID()
	}
	return out
}

func seqsOf(ds []queue.Delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

func ack(t testing.TB, q *Queue, sink string, ds ...queue.Delivery) {
	t.Helper()
	if err := q.AckAll(sink, seqsOf(ds)...); err != nil {
		t.Fatalf("AckAll(%s): %v", sink, err)
	}
}

// sameEvent fails unless got carries want's id, source, type, time and data.
func sameEvent(t testing.TB, got, want *event.Event) {
	t.Helper()
	if got.ID() != want.ID() || got.Source() != want.Source() || got.Type() != want.Type() || !got.Time().Equal(want.Time()) {
		t.Errorf("event %s: got id %q source %q type %q time %v, want %q %q %q %v", want.ID(),
			got.ID(), got.Source(), got.Type(), got.Time(), want.ID(), want.Source(), want.Type(), want.Time())
	}
	if got.DataContentType() != want.DataContentType() || string(got.Data()) != string(want.Data()) {
		t.Errorf("event %s: got data %s %q, want %s %q", want.ID(), got.DataContentType(), got.Data(), want.DataContentType(), want.Data())
	}
}

// readTopic waits until topic holds n records, over all its partitions,
// and returns them (each partition's in offset order).
func readTopic(t testing.TB, brokers []string, topic string, n int) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	ends := map[int]int64{}
	for deadline := time.Now().Add(5 * time.Second); ; {
		total := int64(0)
		for _, p := range parts {
			c, err := kafkago.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			ends[p.ID], err = c.ReadLastOffset()
			_ = c.Close()
			if err != nil {
				t.Fatal(err)
			}
			total += ends[p.ID]
		}
		if total == int64(n) {
			break
		}
		if total > int64(n) || time.Now().After(deadline) {
			t.Fatalf("topic %s holds %d records, want %d", topic, total, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out []kafkago.Message
	for _, p := range parts {
		if ends[p.ID] == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				_ = r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p.ID, err)
			}
			out = append(out, m)
			if m.Offset+1 >= ends[p.ID] {
				break
			}
		}
		_ = r.Close()
	}
	return out
}

// describe shows a delivery without its event.
func describe(d queue.Delivery) string {
	return fmt.Sprintf("{Seq:%d Sink:%s Attempts:%d From:%q Reason:%q Status:%d Answer:%q}", d.Seq, d.Sink, d.Attempts, d.From, d.Reason, d.Status, d.Answer)
}

func headerMap(t testing.TB, m kafkago.Message) map[string]string {
	t.Helper()
	out := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		if _, dup := out[h.Key]; dup {
			t.Errorf("header %s repeated", h.Key)
		}
		out[h.Key] = string(h.Value)
	}
	return out
}

func client(brokers []string) *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
}

// committed returns the group's committed offsets of the ingress topic's
// partitions (-1: none).
func committed(t testing.TB, brokers []string, group string, ps ...int) map[int]int64 {
	t.Helper()
	resp, err := client(brokers).OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{
		Addr: kafkago.TCP(brokers[0]), GroupID: group, Topics: map[string][]int{ingress: ps},
	})
	if err == nil {
		err = resp.Error
	}
	out := map[int]int64{}
	if errors.Is(err, kafkago.GroupIdNotFound) { // not created yet: nothing committed
		for _, p := range ps {
			out[p] = -1
		}
		return out
	}
	if err != nil {
		t.Fatalf("fetching the offsets of %s: %v", group, err)
	}
	for _, p := range resp.Topics[ingress] {
		if p.Error != nil {
			t.Fatalf("offset of %s/%d: %v", group, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// waitCommitted waits until the group has committed want on partition 0.
func waitCommitted(t testing.TB, brokers []string, group string, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := committed(t, brokers, group, 0)[0]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offset %d, want %d", group, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCommittedAll waits until the group has committed want (partition:
// offset) on each of the partitions of want.
func waitCommittedAll(t testing.TB, brokers []string, group string, want map[int]int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := committed(t, brokers, group, slices.Collect(maps.Keys(want))...)
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offsets %v, want %v", group, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPending waits until q holds n deliveries for sink (n or more with
// atLeast).
func waitPending(t testing.TB, q *Queue, sink string, n int, atLeast ...bool) {
	t.Helper()
	orMore := len(atLeast) > 0 && atLeast[0]
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := q.Stats().Pending[sink]
		if got == n || orMore && got > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d deliveries pending, want %d (or more: %v)", sink, got, n, orMore)
		}
		time.Sleep(time.Millisecond)
	}
}

// newEvents makes events 0..n-1 of type typ.
func newEvents(n int, typ string) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = newEvent(i, typ)
	}
	return evs
}

// spreadEvents is newEvents with subjects sessions/<i mod subjects>, which
// spread the events over the partitions.
func spreadEvents(n int, typ string, subjects int) []*event.Event {
	evs := newEvents(n, typ)
	for i, ev := range evs {
		ev.SetSubject(fmt.Sprintf("sessions/%d", i%subjects))
	}
	return evs
}

// oneReplicaHolding starts a cluster of partitions and one replica of sink
// "a" (options edited by edit), queues n events spread over the
// partitions, and has the replica hand all of them out: a replica holding
// deliveries, for a second one to join.
func oneReplicaHolding(t testing.TB, partitions int32, n int, edit func(*Options)) (brokers []string, q *Queue, evs []*event.Event, held []queue.Delivery) {
	t.Helper()
	brokers = newCluster(t, partitions)
	q = openQueue(t, brokers, edit)
	subscribe(t, q, "a")
	waitMembers(t, brokers, group+".a", 1)
	evs = spreadEvents(n, "t.a", n)
	enqueue(t, q, evs...)
	return brokers, q, evs, take(t, q, "a", n, 15*time.Second)
}

// waitMembers waits until group is stable with n members, each assigned
// some partition.
func waitMembers(t testing.TB, brokers []string, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client(brokers).DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{
			Addr: kafkago.TCP(brokers[0]), GroupIDs: []string{group},
		})
		if err == nil && len(resp.Groups) == 1 {
			g := resp.Groups[0]
			assigned := 0
			for _, m := range g.Members {
				for _, tp := range m.MemberAssignments.Topics {
					if tp.Topic == ingress && len(tp.Partitions) > 0 {
						assigned++
					}
				}
			}
			if g.Error == nil && g.GroupState == "Stable" && len(g.Members) == n && assigned == n {
				return
			}
			last = fmt.Sprintf("state %s, %d members, %d assigned, err %v", g.GroupState, len(g.Members), assigned, g.Error)
		} else {
			last = fmt.Sprint(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("group %s not stable with %d members: %s", group, n, last)
}

// endOffsets is the offset after the last record of each of the ingress
// topic's first partitions (3 unless told).
func endOffsets(t testing.TB, brokers []string, partitions ...int) map[int]int64 {
	t.Helper()
	n := 3
	if len(partitions) > 0 {
		n = partitions[0]
	}
	var reqs []kafkago.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafkago.LastOffsetOf(p))
	}
	resp, err := client(brokers).ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{
		Addr: kafkago.TCP(brokers[0]), Topics: map[string][]kafkago.OffsetRequest{ingress: reqs},
	})
	if err != nil {
		t.Fatalf("listing the ends of %s: %v", ingress, err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[ingress] {
		if p.Error != nil {
			t.Fatalf("end of %s/%d: %v", ingress, p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out
}

// tlsAndSASL gives the options of a kfake cluster that speaks TLS only and
// asks for SCRAM-SHA-512, and the queue options that connect to it.
func tlsAndSASL(t testing.TB) (brokerOpts []kfake.Opt, secure func(*Options)) {
	t.Helper()
	certFile, keyFile, cert := testcert.Write(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	brokerOpts = []kfake.Opt{
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "bridge", "s3cret"),
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	mech, err := scram.Mechanism(scram.SHA512, "bridge", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	return brokerOpts, func(o *Options) {
		o.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		o.SASL = mech
	}
}
