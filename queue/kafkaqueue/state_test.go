package kafkaqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookbridge/hookbridge/internal/testlog"
)

const stateTopic = ingress + StateSuffix

// newStateCluster starts an in-process Kafka cluster on loopback TCP with
// the ingress topic and no state topic, and returns it with its addresses.
func newStateCluster(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, ingress)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

func stateCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t testing.TB, s *State, key, value string) {
	t.Helper()
	if err := s.Put(stateCtx(t), key, []byte(value)); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func del(t testing.TB, s *State, key string) {
	t.Helper()
	if err := s.Delete(stateCtx(t), key); err != nil {
		t.Fatalf("Delete(%s): %v", key, err)
	}
}

// wantValue fails unless s holds want under key.
func wantValue(t testing.TB, s *State, key, want string) {
	t.Helper()
	got, found, err := s.Get(stateCtx(t), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	if !found || string(got) != want {
		t.Fatalf("Get(%s) = %q, found %v; want %q", key, got, found, want)
	}
}

// wantNone fails if s holds key.
func wantNone(t testing.TB, s *State, key string) {
	t.Helper()
	got, found, err := s.Get(stateCtx(t), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	if found || got != nil {
		t.Fatalf("Get(%s) = %q, found %v; want no key", key, got, found)
	}
}

// snapshot is every key of s with its value, after catching up.
func snapshot(t testing.TB, s *State, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.Each(stateCtx(t), prefix, func(k string, v []byte) bool {
		if _, dup := out[k]; dup {
			t.Errorf("Each: key %s twice", k)
		}
		out[k] = string(v)
		return true
	}); err != nil {
		t.Fatalf("Each(%q): %v", prefix, err)
	}
	return out
}

func TestStateSharedBetweenReplicas(t *testing.T) {
	_, brokers := newStateCluster(t)
	qa, qb := openQueue(t, brokers, nil), openQueue(t, brokers, nil)
	a, b := qa.State(), qb.State()
	if qa.State() != a {
		t.Fatal("State returned a second *State")
	}

	wantNone(t, b, "thread/1") // creates the topic, starts b's reader
	put(t, a, "thread/1", "C01/1700000000.000100")
	wantValue(t, b, "thread/1", "C01/1700000000.000100")
	wantValue(t, a, "thread/1", "C01/1700000000.000100")

	put(t, b, "thread/1", "C01/1700000000.000200") // overwrite from the other side
	wantValue(t, a, "thread/1", "C01/1700000000.000200")
	put(t, a, "thread/1", "C01/1700000000.000300")
	put(t, a, "thread/1", "C01/1700000000.000400")
	wantValue(t, b, "thread/1", "C01/1700000000.000400")

	del(t, b, "thread/1")
	wantNone(t, a, "thread/1")
	wantNone(t, b, "thread/1")
	put(t, a, "thread/1", "again")
	wantValue(t, b, "thread/1", "again")

	// An empty value would read back as a tombstone: refused.
	for _, v := range [][]byte{nil, {}} {
		if err := a.Put(stateCtx(t), "thread/1", v); err == nil || !strings.Contains(err.Error(), "empty value") {
			t.Fatalf("Put(%#v): %v; want an error about the empty value", v, err)
		}
	}
	wantValue(t, b, "thread/1", "again")

	// The value put is copied, and so is the one got.
	v := []byte("orig")
	if err := a.Put(stateCtx(t), "copy", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, _, _ := a.Get(stateCtx(t), "copy")
	got[0] = 'Y'
	wantValue(t, a, "copy", "orig")
	wantValue(t, b, "copy", "orig")

	if err := a.Put(stateCtx(t), "", []byte("x")); err == nil {
		t.Fatal("Put with an empty key: no error")
	}
}

// A replica reads its own writes: a Get right after a Put or Delete sees
// it, write after write, and the other replica ends with the same.
func TestStateReadsItsOwnWrites(t *testing.T) {
	_, brokers := newStateCluster(t)
	qa, qb := openQueue(t, brokers, nil), openQueue(t, brokers, nil)
	a, b := qa.State(), qb.State()
	wantNone(t, a, "k")
	wantNone(t, b, "k")

	// A Get right after each write sees it on the replica that wrote it.
	for i := range 50 {
		put(t, a, "k", fmt.Sprint(i))
		wantValue(t, a, "k", fmt.Sprint(i))
	}
	del(t, a, "k")
	wantNone(t, a, "k")

	// And every replica ends with the topic's values.
	put(t, b, "k", "2")
	wantValue(t, a, "k", "2")
	wantValue(t, b, "k", "2")
}

// localValue is what the local copy of s holds under key, without
// catching up.
func localValue(s *State, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return "<none>"
	}
	return string(v)
}

func TestStateRestartedReplicaReadsItBack(t *testing.T) {
	c, brokers := newStateCluster(t)
	qa := openQueue(t, brokers, nil)
	a := qa.State()
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("thread/%02d", i)
		put(t, a, k, "first")
		want[k] = "first"
	}
	for i := range 20 {
		k := fmt.Sprintf("thread/%02d", i)
		switch i % 3 {
		case 0:
			del(t, a, k)
			delete(want, k)
		case 1:
			put(t, a, k, "second")
			want[k] = "second"
		}
	}
	if err := qa.Close(); err != nil {
		t.Fatal(err)
	}

	// Read back from the topic as written, and after compaction, which
	// leaves gaps in the offsets.
	for _, compact := range []bool{false, true} {
		if compact {
			c.Compact()
		}
		q := openQueue(t, brokers, nil)
		got := snapshot(t, q.State(), "")
		if !maps.Equal(got, want) {
			t.Fatalf("compacted %v: the restarted replica read %v, want %v", compact, got, want)
		}
		wantNone(t, q.State(), "thread/00")
		wantValue(t, q.State(), "thread/01", "second")
		_ = q.Close()
	}
	if n := endOf(t, brokers, stateTopic); n != 20+14 {
		t.Fatalf("the state topic ends at %d, want 34", n)
	}
}

func endOf(t testing.TB, brokers []string, topic string) int64 {
	t.Helper()
	resp, err := client(brokers).ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(0)}},
	})
	if err != nil || resp.Topics[topic][0].Error != nil {
		t.Fatalf("listing the end of %s: %v %v", topic, err, resp.Topics[topic])
	}
	return resp.Topics[topic][0].LastOffset
}

func TestStateEachPrefix(t *testing.T) {
	_, brokers := newStateCluster(t)
	a, b := openQueue(t, brokers, nil).State(), openQueue(t, brokers, nil).State()
	put(t, a, "thread/b", "2")
	put(t, a, "thread/a", "1")
	put(t, a, "thread/c", "3")
	put(t, a, "threads", "no slash")
	put(t, a, "other/x", "x")
	put(t, a, "thread/a", "1b")
	del(t, a, "thread/c")

	// Read on the other replica: Each catches up first.
	var keys []string
	if err := b.Each(stateCtx(t), "thread/", func(k string, v []byte) bool {
		keys = append(keys, k+"="+string(v))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, " "); got != "thread/a=1b thread/b=2" {
		t.Fatalf("Each(thread/) = %s", got)
	}
	if got := snapshot(t, b, ""); len(got) != 4 {
		t.Fatalf("Each() = %v, want 4 keys", got)
	}
	if got := snapshot(t, b, "nothing/"); len(got) != 0 {
		t.Fatalf("Each(nothing/) = %v", got)
	}

	// fn returning false stops; fn may write.
	calls := 0
	if err := b.Each(stateCtx(t), "thread/", func(k string, v []byte) bool {
		calls++
		if err := b.Delete(stateCtx(t), k); err != nil {
			t.Errorf("Delete in Each: %v", err)
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Each went on after fn returned false: %d calls", calls)
	}
	wantNone(t, a, "thread/a")
	wantValue(t, a, "thread/b", "2")
}

func TestStateGetWithoutBrokersFails(t *testing.T) {
	c, brokers := newStateCluster(t)
	a := openQueue(t, brokers, func(o *Options) { o.WriteTimeout = time.Second }).State()
	put(t, a, "thread/1", "v1")
	wantValue(t, a, "thread/1", "v1")
	c.Close()

	for _, timeout := range []time.Duration{200 * time.Millisecond, 3 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		v, found, err := a.Get(ctx, "thread/1")
		took := time.Since(start)
		cancel()
		if err == nil || found || v != nil {
			t.Fatalf("Get with the brokers gone: %q, %v, %v; want an error", v, found, err)
		}
		if took > timeout+500*time.Millisecond {
			t.Fatalf("Get with the brokers gone took %v, beyond its %v deadline", took, timeout)
		}
		t.Logf("Get (%v deadline) failed after %v: %v", timeout, took.Round(time.Millisecond), err)
		if !strings.Contains(err.Error(), stateTopic) {
			t.Errorf("the error does not name the topic: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.Each(ctx, "", func(string, []byte) bool { t.Error("Each called fn"); return true }); err == nil {
		t.Fatal("Each with the brokers gone: no error")
	}
	if err := a.Put(ctx, "thread/1", []byte("v2")); err == nil {
		t.Fatal("Put with the brokers gone: no error")
	}
}

// A replica whose reader cannot read the topic, though the brokers answer
// the rest, fails Get when its ctx ends rather than answer what it had.
func TestStateGetNeverStale(t *testing.T) {
	c, brokers := newStateCluster(t)
	a, b := openQueue(t, brokers, nil).State(), openQueue(t, brokers, nil).State()
	put(t, a, "thread/1", "v1")
	wantValue(t, b, "thread/1", "v1")

	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		freq := req.(*kmsg.FetchRequest)
		resp := freq.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range freq.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 6 // NOT_LEADER_FOR_PARTITION
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	time.Sleep(time.Second) // fetches already waiting at the broker (500ms at most) end
	put(t, a, "thread/1", "v2")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	v, found, err := b.Get(ctx, "thread/1")
	if err == nil || found || v != nil {
		t.Fatalf("Get while the reader cannot read: %q, %v, %v; want an error", v, found, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get: %v; want the deadline", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("Get took %v with a 1s deadline", took)
	}
	t.Logf("Get: %v", err)
	if got := localValue(b, "thread/1"); got != "v1" {
		t.Fatalf("the reader read on (%q): the test does not hold it back", got)
	}
}

func TestStateConcurrentReplicasConverge(t *testing.T) {
	_, brokers := newStateCluster(t)
	qa, qb := openQueue(t, brokers, nil), openQueue(t, brokers, nil)
	replicas := []*State{qa.State(), qb.State()}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			mine := replicas[g%2]
			other := replicas[(g+1)%2]
			for i := range 40 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// A key of this goroutine's alone: the other replica must see
				// each write to it at once.
				own := fmt.Sprintf("own/%d", g)
				val := fmt.Sprintf("%d-%d", g, i)
				if err := mine.Put(ctx, own, []byte(val)); err != nil {
					t.Errorf("Put: %v", err)
				}
				if got, found, err := other.Get(ctx, own); err != nil || !found || string(got) != val {
					t.Errorf("Get(%s) on the other replica = %q, %v, %v; want %q", own, got, found, err, val)
				}
				// Keys every goroutine writes.
				shared := fmt.Sprintf("shared/%d", rnd.IntN(5))
				var err error
				switch rnd.IntN(4) {
				case 0:
					err = mine.Delete(ctx, shared)
				case 1:
					_, _, err = other.Get(ctx, shared)
				default:
					err = mine.Put(ctx, shared, []byte(val))
				}
				if err != nil {
					t.Errorf("%s: %v", shared, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ma, mb := snapshot(t, replicas[0], ""), snapshot(t, replicas[1], "")
	if !maps.Equal(ma, mb) {
		t.Fatalf("the replicas differ:\n%v\n%v", ma, mb)
	}
	// The topic agrees: a replica that reads it from the start has the same.
	if mc := snapshot(t, openQueue(t, brokers, nil).State(), ""); !maps.Equal(ma, mc) {
		t.Fatalf("the replicas hold %v, the topic %v", ma, mc)
	}
	for g := range 6 {
		if ma[fmt.Sprintf("own/%d", g)] != fmt.Sprintf("%d-39", g) {
			t.Errorf("own/%d = %q", g, ma[fmt.Sprintf("own/%d", g)])
		}
	}
}

func TestStateTopicIsCompacted(t *testing.T) {
	_, brokers := newStateCluster(t)
	q := openQueue(t, brokers, func(o *Options) { o.StateTopic = "hookbridge.shared" })
	put(t, q.State(), "k", "v")

	resp, err := client(brokers).DescribeConfigs(context.Background(), &kafkago.DescribeConfigsRequest{
		Resources: []kafkago.DescribeConfigRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: "hookbridge.shared", ConfigNames: []string{"cleanup.policy"},
		}},
	})
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].Error != nil {
		t.Fatalf("DescribeConfigs: %+v", resp.Resources)
	}
	policy := ""
	for _, e := range resp.Resources[0].ConfigEntries {
		if e.ConfigName == "cleanup.policy" {
			policy = e.ConfigValue
		}
	}
	if policy != "compact" {
		t.Fatalf("cleanup.policy of the state topic = %q, want compact", policy)
	}
	md, err := client(brokers).Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{"hookbridge.shared", stateTopic}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		switch {
		case tp.Name == "hookbridge.shared" && (tp.Error != nil || len(tp.Partitions) != 1):
			t.Fatalf("the state topic: %v, %d partitions; want 1", tp.Error, len(tp.Partitions))
		case tp.Name == stateTopic && tp.Error == nil:
			t.Fatalf("topic %s was made although StateTopic names another", stateTopic)
		}
	}
}

// refuseCreateTopics makes c refuse every CreateTopics as not authorized.
func refuseCreateTopics(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = 29 // TOPIC_AUTHORIZATION_FAILED
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

func TestStateTopicCreationRefused(t *testing.T) {
	t.Run("topic exists", func(t *testing.T) {
		c, brokers := newStateCluster(t)
		if err := c.CreateTopic(stateTopic, 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
			t.Fatal(err)
		}
		refuseCreateTopics(c)
		var logs testlog.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		a := openQueue(t, brokers, func(o *Options) { o.Logger = logger }).State()
		b := openQueue(t, brokers, func(o *Options) { o.Logger = logger }).State()
		put(t, a, "k", "v")
		wantValue(t, b, "k", "v")
		wantValue(t, a, "k", "v")
		if n := strings.Count(logs.String(), "could not create the shared state's topic"); n != 2 { // once per replica
			t.Fatalf("the refusal was logged %d times, want once per replica:\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), "cleanup.policy=compact") {
			t.Fatalf("the warning does not say the topic must be compacted:\n%s", logs.String())
		}
	})
	t.Run("topic missing", func(t *testing.T) {
		c, brokers := newStateCluster(t)
		refuseCreateTopics(c)
		a := openQueue(t, brokers, func(o *Options) { o.WriteTimeout = time.Second }).State()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := a.Put(ctx, "k", []byte("v"))
		if err == nil {
			t.Fatal("Put with no topic and none created: no error")
		}
		t.Logf("Put: %v", err)
		if _, _, err := a.Get(ctx, "k"); err == nil {
			t.Fatal("Get with no topic: no error")
		}
		md, err := client(brokers).Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{stateTopic}})
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Topics) == 1 && md.Topics[0].Error == nil {
			t.Fatal("the state topic was made, not compacted, by a write")
		}
	})
}

func TestStateClosed(t *testing.T) {
	_, brokers := newStateCluster(t)
	q := openQueue(t, brokers, nil)
	s := q.State()
	put(t, s, "k", "v")
	unused := openQueue(t, brokers, nil)
	unusedState := unused.State()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unused.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*State{s, q.State(), unusedState} {
		ctx := stateCtx(t)
		if _, _, err := s.Get(ctx, "k"); !errors.Is(err, ErrStateClosed) {
			t.Errorf("Get after Close: %v", err)
		}
		if err := s.Put(ctx, "k", []byte("v")); !errors.Is(err, ErrStateClosed) {
			t.Errorf("Put after Close: %v", err)
		}
		if err := s.Delete(ctx, "k"); !errors.Is(err, ErrStateClosed) {
			t.Errorf("Delete after Close: %v", err)
		}
		if err := s.Each(ctx, "", func(string, []byte) bool { return true }); !errors.Is(err, ErrStateClosed) {
			t.Errorf("Each after Close: %v", err)
		}
	}
	// A queue closed before anyone asked for its state.
	q2 := openQueue(t, brokers, nil)
	_ = q2.Close()
	if err := q2.State().Put(stateCtx(t), "k", []byte("v")); !errors.Is(err, ErrStateClosed) {
		t.Errorf("Put on the state of a closed queue: %v", err)
	}
}

// The state's connections (creating the topic, listing its end, reading,
// writing) go over TLS with SASL as the queue's do.
func TestStateOverTLSAndSASL(t *testing.T) {
	brokerOpts, secure := tlsAndSASL(t)
	_, brokers := newStateCluster(t, brokerOpts...)
	a, b := openQueue(t, brokers, secure).State(), openQueue(t, brokers, secure).State()
	put(t, a, "thread/1", "v1")
	wantValue(t, b, "thread/1", "v1")
	del(t, b, "thread/1")
	wantNone(t, a, "thread/1")
}
