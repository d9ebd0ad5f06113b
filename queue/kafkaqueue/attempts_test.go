package kafkaqueue

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookbridge/hookbridge/internal/testlog"
)

// A replica restarted while deliveries were being retried reads their
// attempts back, so a sink's max_attempts holds across deploys.
func TestRestartKeepsAttempts(t *testing.T) {
	brokers, q1, evs, held := oneReplicaHolding(t, 2, 6, nil)
	for i, d := range send(t, q1, "a", held) {
		if err := q1.Attempted("a", d.Seq, 1+i%3, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{}
	for i, d := range held {
		want[decode(t, d).ID()] = 1 + i%3
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}

	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	got := map[string]int{}
	for len(got) < len(evs) {
		for _, d := range take(t, q2, "a", len(evs), 15*time.Second) {
			got[decode(t, d).ID()] = d.Attempts
			ack(t, q2, "a", d)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("after a restart, handed out with attempts %v, want %v", got, want)
	}
	waitAttemptsKept(t, q2)
}

// At the start of a generation a reader takes the attempts kept for
// records of its partitions at or after the committed offset, and deletes
// those below it: their records settled.
func TestAttemptsOfSettledRecordsAreDeleted(t *testing.T) {
	brokers := newCluster(t, 1)
	q1 := openQueue(t, brokers, nil)
	subscribe(t, q1, "a")
	enqueue(t, q1, newEvents(2, "t.a")...)
	ack(t, q1, "a", take(t, q1, "a", 2, 15*time.Second)...)
	waitCommitted(t, brokers, group+".a", 2)
	ctx := context.Background()
	st := q1.State()
	for key, value := range map[string]string{
		"attempts/" + group + ".a/0/1": "4", // settled: deleted
		"attempts/" + group + ".a/0/2": "5", // the next record: kept
		"attempts/" + group + ".b/0/0": "6", // another sink's
	} {
		if err := st.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}

	q2 := openQueue(t, brokers, nil)
	subscribe(t, q2, "a")
	waitMembers(t, brokers, group+".a", 1)
	enqueue(t, q2, newEvent(2, "t.a"))
	ds := take(t, q2, "a", 1, 15*time.Second)
	if ds[0].Attempts != 5 {
		t.Errorf("the record at offset 2 handed out with %d attempts, want 5", ds[0].Attempts)
	}
	ack(t, q2, "a", ds...)
	waitAttemptsKept(t, q2, "attempts/"+group+".b/0/0")
}

// waitAttemptsKept waits until the attempts the shared state keeps are
// those of the keys want, in key order.
func waitAttemptsKept(t testing.TB, q *Queue, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var keys []string
		if err := q.State().Each(context.Background(), "attempts/", func(key string, _ []byte) bool {
			keys = append(keys, key)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(keys, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shared state keeps attempts %v, want %v", keys, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A rebalance that begins while the attempts just spent are not yet
// written waits for them (up to the write timeout), so that the replica
// the partitions go to reads them.
func TestRebalanceWaitsForAttemptsToBeWritten(t *testing.T) {
	c, brokers := startCluster(t, 2)
	stateTopic := ingress + StateSuffix
	var refuse atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if !refuse.Load() || len(req.Topics) != 1 || req.Topics[0].Topic != stateTopic {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		st := kmsg.NewProduceResponseTopic()
		st.Topic = stateTopic
		for _, rp := range req.Topics[0].Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = kerr.NotEnoughReplicas.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
	// The hand-back waits up to a quarter of the session timeout.
	slow := func(o *Options) { o.SessionTimeout = 8 * time.Second }
	q1 := openQueue(t, brokers, slow)
	subscribe(t, q1, "a")
	waitMembers(t, brokers, group+".a", 1)
	evs := spreadEvents(8, "t.a", 8)
	enqueue(t, q1, evs...)
	held := take(t, q1, "a", len(evs), 15*time.Second)
	if err := q1.State().Put(context.Background(), "warm", []byte("up")); err != nil {
		t.Fatal(err) // the state topic exists before the writes are refused
	}

	refuse.Store(true)
	for _, d := range send(t, q1, "a", held) {
		if err := q1.Attempted("a", d.Seq, 2, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	q2 := openQueue(t, brokers, slow)
	subscribe(t, q2, "a")
	time.Sleep(1500 * time.Millisecond) // q1 hands back, its writes refused
	refuse.Store(false)
	waitMembers(t, brokers, group+".a", 2)

	attempts := map[string]int{} // id -> attempts handed out with, by q2
	byQ1 := 0
	deadline := time.Now().Add(15 * time.Second)
	for len(attempts)+byQ1 < len(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d and %d of %d", byQ1, len(attempts), len(evs))
		}
		for _, d := range send(t, q1, "a", tryNext(t, q1, "a")) {
			byQ1++
			ack(t, q1, "a", d)
		}
		for _, d := range send(t, q2, "a", tryNext(t, q2, "a")) {
			attempts[decode(t, d).ID()] = d.Attempts
			ack(t, q2, "a", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(attempts) == 0 {
		t.Fatal("q2 delivered none: the partitions did not move")
	}
	for id, n := range attempts {
		if n != 2 {
			t.Errorf("q2 handed out %s with %d attempts spent, want 2", id, n)
		}
	}
}

// The keys of kept attempts read back as written, and anything else in
// their place is refused, not misread.
func FuzzParsePartitionOffset(f *testing.F) {
	for _, s := range []string{"0/0", "3/12345", "/1", "1/", "-1/2", "1/2/3", "x/y", "+1/01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		p, o, ok := parsePartitionOffset(rest)
		if !ok {
			return
		}
		if p < 0 || o < 0 {
			t.Fatalf("%q: partition %d, offset %d", rest, p, o)
		}
		key := attemptsKey("g.sink", p, o)
		p2, o2, ok2 := parsePartitionOffset(key[len(attemptsPrefix+"g.sink/"):])
		if !ok2 || p2 != p || o2 != o {
			t.Fatalf("%q: %d/%d written as %q, read back as %d/%d (%v)", rest, p, o, key, p2, o2, ok2)
		}
	})
}

// Without the state topic (none made, and the brokers refuse to create
// it), the queue reads and delivers as before, its attempts counted in
// memory, and says why with a warning; closing does not hang on the
// writes it could not make.
func TestAttemptsWithoutTheStateTopic(t *testing.T) {
	c, brokers := startCluster(t, 2)
	refuseCreateTopics(c)
	var logs testlog.Buffer
	q := openQueue(t, brokers, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.WriteTimeout = time.Second
	})
	subscribe(t, q, "a")
	waitMembers(t, brokers, group+".a", 1)
	evs := spreadEvents(6, "t.a", 6)
	enqueue(t, q, evs...)
	held := take(t, q, "a", len(evs), 5*time.Second)
	for _, d := range send(t, q, "a", held) {
		if err := q.Attempted("a", d.Seq, 2, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
		if err := q.Release("a", d.Seq); err != nil {
			t.Fatal(err)
		}
	}
	again := take(t, q, "a", len(evs), 5*time.Second)
	for _, d := range again {
		if d.Attempts != 2 {
			t.Errorf("%s handed out again with %d attempts, want 2", describe(d), d.Attempts)
		}
	}
	ack(t, q, "a", send(t, q, "a", again)...)
	start := time.Now()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v", took)
	}
	for want, n := range map[string]int{
		"could not create the shared state's topic":                        1,
		"reading the attempts of retried deliveries from the shared state": 1,
		"writing the attempts of retried deliveries to the shared state":   1, // not once per retry
	} {
		if got := strings.Count(logs.String(), want); got != n {
			t.Errorf("%q %d times in the log, want %d:\n%s", want, got, n, logs.String())
		}
	}
	t.Logf("log:\n%s", logs.String())
}
