// Command kafka measures how fast hookbridge delivers webhooks to Kafka,
// against kafka-go producing the same messages straight to the same broker in
// the same run:
//
//   - direct: one kafka-go Writer (acks=all) producing N CloudEvents, built in
//     advance with exactly the headers, key and value the bridge produces, in
//     WriteMessages calls of -batch messages.
//   - bridge end to end: N signed Hello Client leads POSTed at the bridge
//     binary over -conns connections, routed only to a kafka sink; timed from
//     the first POST until the N-th message is on the topic.
//   - bare HTTP: the same N signed POSTs, over the same connections, at a bare
//     Fiber handler (a child process of this binary) that answers 200 and
//     does nothing else. No server fed over HTTP can deliver end to end
//     faster than it receives, so for a Fiber server such as the bridge this
//     is the most the end-to-end ratio can be on this machine, with the load
//     generator beside the server.
//   - bridge queue drain: the broker is paused (SIGSTOP) while N more leads are
//     acknowledged and queued, then resumed (SIGCONT); timed from the resume
//     until the N-th message is on the topic. This isolates the bridge's
//     queue-to-Kafka path from its HTTP ingest.
//   - direct again, right after the drain: kfake holds every record in its
//     heap, so its cost per message changes with what it holds; this run
//     meets the broker as full as the drain did.
//
// The direct producer first runs once unmeasured, to warm up. With
// -rounds the pair (drain, direct) is repeated, and each drain is compared
// with the direct runs on either side of it.
//
// The CPU time each process used in the direct and drain phases is read from
// /proc and printed per event.
//
// Arrivals are counted from the broker's end offsets, polled every 2 ms.
//
// The broker is an in-process kfake cluster, run in a child process of this
// same binary rather than in the benchmark's own process: the producer and the
// load generator then do not share a Go runtime (scheduler, garbage collector
// pausing for a heap that holds every stored message) with the broker, the
// three parties are separate processes in both measurements, and the broker can
// be paused with a signal for the drain measurement. The machine's cores are
// still shared by all of them, as they would be on one host.
//
//	go build -o bin/bridge ./cmd/bridge
//	go run ./bench/kafka -bridge bin/bridge -n 50000
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/valyala/fasthttp"

	"github.com/hookbridge/hookbridge/bench/internal/proc"
	"github.com/hookbridge/hookbridge/bench/internal/promtext"
)

const (
	secret = "bench-helloclient-signing-key"
	topic  = "webhooks.helloclient"
)

func main() {
	bridgeBin := flag.String("bridge", "bin/bridge", "bridge binary")
	n := flag.Int("n", 50000, "events per measurement")
	conns := flag.Int("conns", 64, "connections POSTing at the bridge")
	partitions := flag.Int("partitions", 1, "partitions of the topic")
	batch := flag.Int("batch", 500, "messages per WriteMessages call of the direct producer")
	keep := flag.Bool("keep", false, "keep the bridge's data directory")
	sinkKeys := flag.String("sink-keys", "", `extra keys of the bridge's kafka sink, "key: value" separated by ';' (e.g. "linger: 0s; concurrency: 2")`)
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the bridge during the queue drain to this file")
	allocProfile := flag.String("allocprofile", "", "write the bridge's allocation profile before and after the first drain to this file with .before and .after appended (go tool pprof -sample_index alloc_space -base F.before bin/bridge F.after)")
	profileFor := flag.Duration("cpuprofile-for", 2*time.Second, "length of the -cpuprofile; keep it within the drain (raise -n for a longer one)")
	serveBroker := flag.Int("serve-broker", 0, "internal: serve a kfake broker with this many partitions until stdin closes")
	brokerLatency := flag.Duration("broker-latency", 0, "delay the broker's answer to every produce request by this much, as a broker across a network would")
	rounds := flag.Int("rounds", 1, "how many times to repeat the pair direct, then drain; a last direct follows the last drain, and each drain is compared with the directs on either side of it")
	serveBare := flag.String("serve-bare", "", "internal: serve a bare Fiber handler on this address until stdin closes")
	flag.Parse()
	if *serveBare != "" {
		runBare(*serveBare)
		return
	}
	if *serveBroker > 0 {
		runBroker(*serveBroker, *brokerLatency)
		return
	}

	fmt.Printf("command: go run ./bench/kafka %s\n", strings.Join(os.Args[1:], " "))
	fmt.Println("machine:", proc.Machine())
	dir, err := os.MkdirTemp("", "hookbridge-bench-kafka-")
	must(err)
	if !*keep {
		defer os.RemoveAll(dir)
	}

	br := startBroker(*partitions, *brokerLatency)
	defer br.stop()
	arrivals := newArrivals(br.addr, *partitions)
	fmt.Printf("broker: kfake in a child process on %s, topic %s with %d partition(s)", br.addr, topic, *partitions)
	if *brokerLatency > 0 {
		fmt.Printf(", every produce request answered %s late", *brokerLatency)
	}
	fmt.Println()

	// direct ------------------------------------------------------------------
	msgs := make([]kafkago.Message, *n)
	for i := range msgs {
		msgs[i] = leadMessage(leadBody(i))
	}
	// Warm up, not measured: the producer's connection and metadata, the
	// broker's first partition, both runtimes' heaps. Measured cold, the
	// direct producer came out 30-70% slower than in the runs after it.
	produceDirect(br.addr, msgs, *batch, arrivals)
	runtime.GC()
	cpuDirect := cpuOf(os.Getpid(), br.cmd.Process.Pid)
	direct := produceDirect(br.addr, msgs, *batch, arrivals)
	cpuDirect = cpuDirect.since()
	runtime.GC()

	// bare HTTP receive -------------------------------------------------------
	bare := startBare()
	mustPost("bare warm-up", post(bare.url, *conns, signLeads(1_000_000, 500)))
	bareLeads := signLeads(2_000_000, *n)
	bareTook := post(bare.url, *conns, bareLeads)
	mustPost("bare", bareTook)
	bare.stop()
	runtime.GC()

	// bridge end to end ---------------------------------------------------------
	b := startBridge(*bridgeBin, dir, br.addr, *sinkKeys)
	defer b.stop()
	// Warm up: the bridge's connection to the broker and its metadata.
	warm := signLeads(1_000_000, 500)
	base := arrivals.end()
	mustPost("warm-up", post(b.url, *conns, warm))
	if arrivals.wait(base+int64(len(warm)), 30*time.Second).IsZero() {
		fail(fmt.Errorf("warm-up: %d of %d events on the topic after 30s", arrivals.end()-base, len(warm)))
	}

	leads := signLeads(2_000_000, *n)
	base = arrivals.end()
	start := time.Now()
	var lastArrival time.Time
	counted := make(chan struct{})
	go func() {
		lastArrival = arrivals.wait(base+int64(*n), 5*time.Minute)
		close(counted)
	}()
	mustPost("bridge end to end", post(b.url, *conns, leads))
	ingestDone := time.Now()
	<-counted
	if lastArrival.IsZero() {
		fail(fmt.Errorf("bridge end to end: %d of %d events on the topic after 5 minutes", arrivals.end()-base, *n))
	}
	endToEnd := lastArrival.Sub(start)

	// bridge queue drain, between two directs, -rounds times ------------------
	// kfake keeps every record in its heap, so its own cost per message
	// changes with what it holds, and the machine's speed drifts: each drain
	// is compared with the direct runs just before and just after it, which
	// meet the broker about as full as the drain did.
	type roundResult struct {
		before, drain, after time.Duration
		cpuDrain, cpuAfter   cpuUse
		queued               time.Duration
	}
	results := make([]roundResult, *rounds)
	for r := range results {
		if r > 0 {
			results[r].before = results[r-1].after
		} else {
			results[r].before = direct
		}
		leads := signLeads(10_000_000+r*(*n), *n)
		base := arrivals.end()
		br.pause()
		drainIngest := post(b.url, *conns, leads)
		mustPost("bridge drain", drainIngest)
		profiled := make(chan error, 1)
		if *cpuProfile != "" && r == 0 {
			// The default two seconds are within the drain of 50,000 events at
			// any rate this benchmark has seen.
			go func() { profiled <- b.profile(*cpuProfile, *profileFor) }()
			time.Sleep(50 * time.Millisecond) // the profile has started
		} else {
			profiled <- nil
		}
		if *allocProfile != "" && r == 0 {
			must(b.fetch(*allocProfile+".before", "allocs"))
		}
		cpuDrain := cpuOf(b.cmd.Process.Pid, br.cmd.Process.Pid)
		resumed := time.Now()
		br.resume()
		lastDrained := arrivals.wait(base+int64(*n), 5*time.Minute)
		results[r].cpuDrain = cpuDrain.since()
		must(<-profiled)
		if *allocProfile != "" && r == 0 {
			must(b.fetch(*allocProfile+".after", "allocs"))
		}
		if lastDrained.IsZero() {
			fail(fmt.Errorf("bridge drain: %d of %d events on the topic after 5 minutes", arrivals.end()-base, *n))
		}
		results[r].drain = lastDrained.Sub(resumed)
		results[r].queued = drainIngest.took

		cpuAfter := cpuOf(os.Getpid(), br.cmd.Process.Pid)
		results[r].after = produceDirect(br.addr, msgs, *batch, arrivals)
		results[r].cpuAfter = cpuAfter.since()
	}
	last := results[len(results)-1]
	drain, directFull, cpuDrain, cpuDirectFull := last.drain, last.after, last.cpuDrain, last.cpuAfter

	calls := b.metric(`hookbridge_delivery_duration_seconds_count{sink="kafka-events"}`)
	callTime := b.metric(`hookbridge_delivery_duration_seconds_sum{sink="kafka-events"}`)
	delivered := b.metric(`hookbridge_deliveries_total{outcome="delivered",sink="kafka-events"}`)
	if calls > 0 {
		fmt.Printf("bridge kafka sink over the whole run: %.0f calls, %.0f events per call, %.1f ms per call\n",
			calls, delivered/calls, 1000*callTime/calls)
	}
	if rss := b.peakRSS(); rss > 0 {
		fmt.Printf("bridge peak RSS: %.1f MB\n", float64(rss)/1e6)
	}
	rate := func(d time.Duration) float64 { return float64(*n) / d.Seconds() }
	fmt.Printf("\n%d events each, acks=all, same broker, same messages (ce_ headers, key = subject, value = payload)\n", *n)
	fmt.Printf("%-44s %10s %12s\n", "measurement", "seconds", "events/s")
	fmt.Printf("%-44s %10.3f %12.0f\n", fmt.Sprintf("kafka-go direct (1 Writer, batches of %d)", *batch), direct.Seconds(), rate(direct))
	fmt.Printf("%-44s %10.3f %12.0f\n", "kafka-go direct, broker as full as at drain", directFull.Seconds(), rate(directFull))
	fmt.Printf("%-44s %10.3f %12.0f\n", fmt.Sprintf("bridge end to end (HTTP, %d conns)", *conns), endToEnd.Seconds(), rate(endToEnd))
	fmt.Printf("%-44s %10.3f %12.0f\n", "  of which HTTP ingest (all acknowledged)", ingestDone.Sub(start).Seconds(), rate(ingestDone.Sub(start)))
	fmt.Printf("%-44s %10.3f %12s\n", "  last arrival after the last ack", lastArrival.Sub(ingestDone).Seconds(), "")
	fmt.Printf("%-44s %10.3f %12.0f\n", "bare Fiber handler, the same POSTs (no work)", bareTook.took.Seconds(), rate(bareTook.took))
	fmt.Printf("%-44s %10.3f %12.0f\n", "bridge queue drain (broker resumed -> all in)", drain.Seconds(), rate(drain))
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(*n) }
	fmt.Printf("CPU per event, direct: producer (this process) %.1f µs, broker %.1f µs\n", perEvent(cpuDirect.used[0]), perEvent(cpuDirect.used[1]))
	fmt.Printf("CPU per event, direct at drain's fill: producer %.1f µs, broker %.1f µs\n", perEvent(cpuDirectFull.used[0]), perEvent(cpuDirectFull.used[1]))
	fmt.Printf("CPU per event, drain: bridge %.1f µs, broker %.1f µs\n", perEvent(cpuDrain.used[0]), perEvent(cpuDrain.used[1]))
	fmt.Printf("ratio bridge end to end / direct: %.2f\n", direct.Seconds()/endToEnd.Seconds())
	fmt.Printf("ratio bare Fiber handler / direct: %.2f (the most a Fiber server fed over HTTP here reaches end to end)\n", direct.Seconds()/bareTook.took.Seconds())
	fmt.Printf("ratio bridge end to end / bare Fiber handler: %.2f\n", bareTook.took.Seconds()/endToEnd.Seconds())
	fmt.Printf("ratio bridge queue drain / direct: %.2f\n", direct.Seconds()/drain.Seconds())
	fmt.Printf("ratio bridge queue drain / direct at the same broker fill: %.2f\n", directFull.Seconds()/drain.Seconds())
	fmt.Printf("(queueing %d events with the broker paused took %.3fs: %.0f/s)\n", *n, last.queued.Seconds(), float64(*n)/last.queued.Seconds())
	if len(results) == 1 {
		return
	}
	fmt.Printf("\n%-6s %12s %12s %12s %14s %16s %12s\n", "round", "direct/s", "drain/s", "direct/s", "drain/directs", "bridge CPU/event", "broker CPU")
	ratios := make([]float64, len(results))
	for r, res := range results {
		// The drain against the mean rate of the directs either side of it.
		ratios[r] = (rate(res.before) + rate(res.after)) / 2
		ratios[r] = rate(res.drain) / ratios[r]
		fmt.Printf("%-6d %12.0f %12.0f %12.0f %14.2f %14.1f µs %9.1f µs\n", r, rate(res.before), rate(res.drain), rate(res.after),
			ratios[r], perEvent(res.cpuDrain.used[0]), perEvent(res.cpuDrain.used[1]))
	}
	slices.Sort(ratios)
	fmt.Printf("median ratio bridge queue drain / direct over %d rounds: %.2f (range %.2f-%.2f)\n",
		len(ratios), median(ratios), ratios[0], ratios[len(ratios)-1])
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// cpuUse is the CPU time processes used over a phase; the producer of the
// direct phase is this process, which also polls the topic's end offsets
// in both phases.
type cpuUse struct {
	pids []int
	used []time.Duration
}

func cpuOf(pids ...int) cpuUse {
	c := cpuUse{pids: pids, used: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		c.used[i] = proc.CPUTime(pid)
	}
	return c
}

func (c cpuUse) since() cpuUse {
	now := cpuOf(c.pids...)
	for i := range now.used {
		now.used[i] -= c.used[i]
	}
	return now
}

// mustPost stops the benchmark when a POST was not acknowledged: the count
// of arrivals would never be reached.
func mustPost(phase string, r postResult) {
	if r.failed > 0 {
		fail(fmt.Errorf("%s: %d POSTs were not answered 200 (first error: %v)", phase, r.failed, r.firstErr))
	}
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// --- the broker ---------------------------------------------------------------

// runBroker is the child process: a one-broker kfake cluster with the topic
// created, its address on stdout, until stdin closes. With latency, each
// produce request waits that long before the broker handles it; others go
// on meanwhile.
func runBroker(partitions int, latency time.Duration) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(int32(partitions), topic),
		// kfake appends each partition's records to an in-memory segment
		// that doubles as it grows, up to 100 MiB by default: a doubling
		// of tens of MiB (copy plus fresh pages) landed in whichever
		// measurement was running and cost it seconds of broker CPU.
		// Small segments make its cost per message steady.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(1 << 20)}),
	)
	must(err)
	if latency > 0 {
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.SleepControl(func() { time.Sleep(latency) })
			return nil, nil, false // not handled: the broker handles it, kept for the next
		})
	}
	fmt.Println(c.ListenAddrs()[0])
	io.Copy(io.Discard, os.Stdin)
	c.Close()
}

// runBare is the child process of the bare measurement: a Fiber handler that
// answers every POST 200 and does nothing else, its address on stdout, until
// stdin closes.
func runBare(addr string) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/webhooks/helloclient", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
	ln, err := net.Listen("tcp", addr)
	must(err)
	go func() { must(app.Listener(ln)) }()
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	must(app.Shutdown())
}

type bareServer struct {
	url   string
	child *child
}

func startBare() *bareServer {
	c := startChild(nil, "-serve-bare", "127.0.0.1:0")
	return &bareServer{url: "http://" + c.line + "/webhooks/helloclient", child: c}
}

func (b *bareServer) stop() { b.child.stop() }

type broker struct {
	addr string
	cmd  *exec.Cmd
	*child
}

func startBroker(partitions int, latency time.Duration) *broker {
	// kfake keeps every record in its Go heap, and its collector's cycles
	// over that growing heap landed in random phases: its CPU per event
	// ranged from 1.6 to 12.8 µs between the rounds of one run (with
	// GOGC=400, 3.4 to 13.0), and the ratio of a drain to the directs
	// around it from 0.22 to 0.92. Never collecting, it costs about 11 µs
	// per event in every phase (fresh memory for everything it stores) and
	// the ratios of one run agree within about 0.1. Some GB for millions of
	// events.
	c := startChild([]string{"GOGC=off"}, "-serve-broker", strconv.Itoa(partitions), "-broker-latency", latency.String())
	return &broker{addr: c.line, cmd: c.cmd, child: c}
}

func (b *broker) pause()  { must(b.cmd.Process.Signal(syscall.SIGSTOP)) }
func (b *broker) resume() { must(b.cmd.Process.Signal(syscall.SIGCONT)) }

// child is a process of this same binary serving something (the broker, the
// bare handler) until its stdin closes; line is the first line it printed.
type child struct {
	line  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startChild(env []string, args ...string) *child {
	self, err := os.Executable()
	must(err)
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	// Gone with the benchmark, even when it stops on an error.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	must(err)
	stdout, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		fail(fmt.Errorf("starting %s: %w", args[0], err))
	}
	return &child{line: strings.TrimSpace(line), cmd: cmd, stdin: stdin}
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGCONT)
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// arrivals counts the messages on the topic from its end offsets.
type arrivals struct {
	client     *kafkago.Client
	addr       net.Addr
	partitions int
}

func newArrivals(addr string, partitions int) *arrivals {
	return &arrivals{client: &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 10 * time.Second}, addr: kafkago.TCP(addr), partitions: partitions}
}

// end is the sum of the partitions' end offsets: how many messages the topic
// holds.
func (a *arrivals) end() int64 {
	reqs := make([]kafkago.OffsetRequest, a.partitions)
	for p := range reqs {
		reqs[p] = kafkago.LastOffsetOf(p)
	}
	resp, err := a.client.ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{Addr: a.addr, Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	must(err)
	var sum int64
	for _, p := range resp.Topics[topic] {
		must(p.Error)
		sum += p.LastOffset
	}
	return sum
}

// wait polls until the topic holds at least target messages and returns
// when it saw that, or the zero time after timeout (0: no limit on polls
// that already succeed).
func (a *arrivals) wait(target int64, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		if a.end() >= target {
			return time.Now()
		}
		if timeout > 0 && time.Now().After(deadline) {
			return time.Time{}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// --- the messages ---------------------------------------------------------------

func leadBody(i int) []byte {
	return fmt.Appendf(nil, `{"Type":"lead","SerialNumber":"HC-BENCH","SessionID":"bench-%d","FirstName":"Ada","LastName":"Lovelace","Email":"ada+%d@example.com","Phone":"+44 20 7946 0958","Message":"Load test lead number %d, asking about pricing for the enterprise plan.","CreateTime":"2026-11-20T10:15:00Z"}`, i, i, i)
}

// leadMessage is the Kafka message the bridge's kafka sink makes of the lead
// in binary mode: the same headers in the same order, key and value.
func leadMessage(body []byte) kafkago.Message {
	var session string
	if _, rest, ok := strings.Cut(string(body), `"SessionID":"`); ok {
		session, _, _ = strings.Cut(rest, `"`)
	}
	id := sha256.Sum256(body)
	subject := "sessions/" + session
	h := func(k, v string) kafkago.Header { return kafkago.Header{Key: k, Value: []byte(v)} }
	return kafkago.Message{
		Topic: topic,
		Key:   []byte(subject),
		Value: body,
		Headers: []kafkago.Header{
			h("ce_specversion", "1.0"),
			h("ce_id", hex.EncodeToString(id[:])),
			h("ce_source", "https://helloclient.com/chatbots/HC-BENCH"),
			h("ce_type", "com.helloclient.lead"),
			h("ce_subject", subject),
			h("ce_time", "2026-11-20T10:15:00Z"),
			h("content-type", "application/json"),
			h("ce_bridgesource", "helloclient"),
		},
	}
}

// produceDirect writes msgs with one Writer, configured as the bridge's kafka
// sink configures its own (acks=all, murmur2 keys, 5 ms linger), in calls of
// batch messages, and returns the time until the last is on the topic.
func produceDirect(addr string, msgs []kafkago.Message, batch int, a *arrivals) time.Duration {
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(addr),
		Balancer:     &kafkago.Murmur2Balancer{},
		RequiredAcks: kafkago.RequireAll,
		BatchSize:    batch,
		BatchBytes:   1 << 20,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
	}
	defer w.Close()
	ctx := context.Background()
	// Warm up: metadata and the connection.
	must(w.WriteMessages(ctx, leadMessage(leadBody(-1))))
	base := a.end()
	start := time.Now()
	for i := 0; i < len(msgs); i += batch {
		must(w.WriteMessages(ctx, msgs[i:min(i+batch, len(msgs))]...))
	}
	done := a.wait(base+int64(len(msgs)), time.Minute)
	if done.IsZero() {
		fail(fmt.Errorf("direct: %d of %d messages on the topic", a.end()-base, len(msgs)))
	}
	return done.Sub(start)
}

// --- the bridge -----------------------------------------------------------------

type bridge struct {
	url   string
	admin string
	cmd   *exec.Cmd
}

// profile writes a CPU profile of the bridge over the next d, from its admin
// listener.
func (b *bridge) profile(path string, d time.Duration) error {
	return b.fetch(path, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())))
}

// fetch writes the bridge's /debug/pprof/<name> to path.
func (b *bridge) fetch(path, name string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", b.admin, name))
	if err != nil {
		return fmt.Errorf("profiling the bridge: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling the bridge: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// freeAddrs returns n distinct loopback addresses to listen on.
func freeAddrs(n int) []string {
	addrs, err := proc.FreeAddrs(n)
	must(err)
	return addrs
}

// startBridge runs the bridge with one source and one route, to a kafka sink
// with its defaults (binary mode, batches of 500 from the queue, 5 ms
// linger). write_timeout is raised so that the paused broker of the drain
// measurement does not fail the batch it holds.
func startBridge(bin, dir, brokerAddr, sinkKeys string) *bridge {
	addrs := freeAddrs(2)
	addr, admin := addrs[0], addrs[1]
	var extra strings.Builder
	for _, kv := range strings.Split(sinkKeys, ";") {
		if kv = strings.TrimSpace(kv); kv != "" {
			extra.WriteString("    " + kv + "\n")
		}
	}
	cfg := fmt.Sprintf(`server: {listen: %q}
admin: {listen: %q}
queue: {path: %q}
log: {level: warn}
sources:
  helloclient: {type: helloclient, secret: %q, tolerance: 0}
sinks:
  kafka-events:
    type: kafka
    brokers: [%q]
    topic: "webhooks.{{ .Extensions.bridgesource }}"
    mode: binary
    write_timeout: 5m
%sroutes:
  - {name: everything, sinks: [kafka-events]}
`, addr, admin, filepath.Join(dir, "queue"), secret, brokerAddr, extra.String())
	path := filepath.Join(dir, "bench.yaml")
	must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command(bin, "run", "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(cmd.Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			fail(fmt.Errorf("the bridge did not become ready within 20s"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &bridge{url: "http://" + addr + "/webhooks/helloclient", admin: admin, cmd: cmd}
}

func (b *bridge) stop() {
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.cmd.Wait()
}

// metric reads one sample from the bridge's /metrics, by its exact name and
// labels as Prometheus prints them; 0 when absent.
func (b *bridge) metric(series string) float64 {
	return promtext.Value("http://"+b.admin+"/metrics", series)
}

// peakRSS reads the bridge's high-water resident set size.
func (b *bridge) peakRSS() int64 { return proc.PeakRSS(b.cmd.Process.Pid) }

// signedLead is a lead and its X-Webhook-Signature, made before the clock
// starts.
type signedLead struct {
	body      []byte
	signature string
}

func signLeads(first, n int) []signedLead {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	out := make([]signedLead, n)
	for i := range out {
		body := leadBody(first + i)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		out[i] = signedLead{body: body, signature: "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))}
	}
	return out
}

type postResult struct {
	failed   int64
	firstErr error
	took     time.Duration
}

// post sends every lead over conns keep-alive connections, each lead once.
func post(url string, conns int, leads []signedLead) postResult {
	host := strings.TrimPrefix(url, "http://")
	host = host[:strings.IndexByte(host, '/')]
	client := &fasthttp.HostClient{Addr: host, MaxConns: conns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	var next, failed atomic.Int64
	var (
		errMu    sync.Mutex
		firstErr error
	)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			for {
				i := int(next.Add(1)) - 1
				if i >= len(leads) {
					return
				}
				req.Header.Set("X-Webhook-Signature", leads[i].signature)
				req.SetBodyRaw(leads[i].body)
				err := client.Do(req, resp)
				if err == nil && resp.StatusCode() != http.StatusOK {
					err = fmt.Errorf("answered %d %s", resp.StatusCode(), resp.Body())
				}
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return postResult{failed: failed.Load(), firstErr: firstErr, took: time.Since(start)}
}
