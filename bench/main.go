// Command bench measures hookbridge's ingest against a bare Fiber handler on
// the same machine in the same run: signed Hello Client leads over loopback,
// first at full load (closed loop, fixed connections) for requests/s, then
// at half of the bare handler's rate (open loop, latency measured from each
// request's scheduled send time) for p50/p99 acknowledgement latency. It
// prints both, their ratio, the bridge's peak RSS, the CPU time the server
// and the load generator used per request, and how long this disk takes to
// fdatasync (each acknowledgement waits for at least one).
//
// A third target, the floor, is the bare handler plus one synced Pebble
// write of the request body: the least any handler that acknowledges only
// what is on disk, in the store the bridge uses, can cost here. The bridge's
// ratio to it is what its own work (verification, conversion, dedup,
// delivery) costs. With -floor-store file the floor appends the bodies to
// one file instead, group-committed with one fdatasync per group: the
// least any handler that answers only once a request is on disk can cost.
//
//	go run ./bench -bridge bin/bridge [-duration 10s] [-conns 64]
//
// With -compare another/bridge, every round also runs that binary at full
// load, before the bridge in odd rounds and after it in even ones, and the
// bench prints each round's CPU per request of both and their ratio: an A/B
// of two builds that the machine's drift moves less than their rates.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/hookbridge/hookbridge/bench/internal/proc"
	"github.com/hookbridge/hookbridge/bench/internal/promtext"
	"github.com/hookbridge/hookbridge/internal/testcert"
)

const secret = "bench-helloclient-signing-key"

func main() {
	bridgeBin := flag.String("bridge", "bin/bridge", "bridge binary")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured phase")
	warmup := flag.Duration("warmup", 2*time.Second, "load, not measured, before each measured phase on a freshly started target")
	conns := flag.Int("conns", 64, "connections at full load")
	rounds := flag.Int("rounds", 1, "how many times to repeat the full-load pair")
	serveBare := flag.String("serve-bare", "", "internal: serve the bare Fiber handler on this address")
	serveFloor := flag.String("serve-floor", "", "internal: serve the floor handler on this address (with -floor-dir)")
	floorDir := flag.String("floor-dir", "", "internal: the floor handler's Pebble directory")
	flag.StringVar(&floorStore, "floor-store", "pebble", "the floor's durable write: pebble (one synced Pebble write per request) or file (requests' bodies appended to one file, group-committed with one fdatasync per group: the least any handler that acknowledges only what is on disk can cost here)")
	keep := flag.Bool("keep", false, "keep the bridge's data directory")
	sinkSync := flag.String("sink-sync", "batch", "the file sink's sync policy (batch or none)")
	batchWait := flag.String("batch-wait", "", "the file sink's batch_wait (default: the bridge's)")
	dedupMemory := flag.String("dedup-memory", "", "the bridge's queue.dedup_memory (default: the bridge's)")
	dedupWindow := flag.Duration("dedup-window", 0, "the bridge's queue.dedup_window (default: the bridge's); a short one makes the run pay for expiring dedup records, as a bridge does once it has run for a window")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the bridge at full load to this file")
	allocProfile := flag.String("allocprofile", "", "write the bridge's allocation profile after the first full-load phase to this file")
	compare := flag.String("compare", "", "a second bridge binary to run at full load in every round beside -bridge, in alternating order, for an A/B of CPU per request")
	flag.BoolVar(&connPerRequest, "conn-per-request", false, "send each request on a new connection (Connection: close), as providers that keep no connections open do")
	useTLS := flag.Bool("tls", false, "serve every target over HTTPS (a self-signed certificate; the bridge with server.tls); the client keeps its connections, so each pays one handshake")
	flag.StringVar(&tlsFiles.cert, "tls-cert", "", "internal: serve the handler over HTTPS with this certificate (with -tls-key)")
	flag.StringVar(&tlsFiles.key, "tls-key", "", "internal: the key of -tls-cert")
	kafkaBroker := flag.String("queue-kafka", "", "run the bridge with queue type kafka on this broker (host:port; e.g. one `go run ./bench/kafka -serve-broker 3` serves), each start on a topic of its own")
	openRate := flag.Float64("open-rate", 0, "only run an open loop at this rate (requests/s) for -duration, after -warmup, at each target in turn (bare, floor, bridge), and print what each measured")
	flag.Parse()
	bc := bridgeConfig{sinkSync: *sinkSync, batchWait: *batchWait, dedupWindow: *dedupWindow, dedupMemory: *dedupMemory, kafkaBroker: *kafkaBroker}
	if *serveBare != "" {
		runBare(*serveBare)
		return
	}
	if *serveFloor != "" {
		if floorStore == "file" {
			runFileFloor(*serveFloor, *floorDir)
		} else {
			runFloor(*serveFloor, *floorDir)
		}
		return
	}
	fmt.Println("machine:", proc.Machine())
	dir, err := os.MkdirTemp("", "hookbridge-bench-")
	must(err)
	if !*keep {
		defer os.RemoveAll(dir)
	}
	if *useTLS {
		certFile, keyFile, cert, err := testcert.Generate(dir)
		must(err)
		tlsFiles.cert, tlsFiles.key = certFile, keyFile
		tlsFiles.client = &tls.Config{RootCAs: testcert.Pool(cert), ServerName: testcert.Name}
		fmt.Println("every target serves HTTPS (TLS 1.3, self-signed ECDSA P-256 certificate)")
	}
	if connPerRequest {
		fmt.Println("each request on a new connection, closed after its answer")
	}

	fsyncBefore := probeFsync(dir, 500)
	var bareFull, floorFull, bridgeFull []result
	var rss int64
	var sinkBatches string
	// Each phase starts its target afresh; the first moments (connections
	// opening, the queue's first WAL file growing, the heap sizing itself)
	// are load, not measured.
	warmClosed := func(url string) {
		if *warmup > 0 {
			closedLoop(url, *conns, *warmup)
		}
	}
	warmOpen := func(url string, rate float64) {
		if *warmup > 0 {
			openLoop(url, rate, *warmup)
		}
	}
	// fullLoad warms t up, then measures it at full load.
	fullLoad := func(t *target) result {
		warmClosed(t.url)
		return measured(t.cmd, func() result { return closedLoop(t.url, *conns, *duration) })
	}
	// openAt warms t up, then measures it at rate in an open loop.
	openAt := func(t *target, rate float64) result {
		warmOpen(t.url, rate)
		return measured(t.cmd, func() result { return openLoop(t.url, rate, *duration) })
	}
	if *openRate > 0 {
		// The same rate at all three targets, so that the latency the
		// machine and the load generator add (bare), and what one synced
		// write adds to that (floor), can be told from the bridge's own.
		bare := startBare()
		bareOpen := openAt(bare, *openRate)
		bare.stop()
		floor := startFloor(filepath.Join(dir, "open-floor"))
		floorOpen := openAt(floor, *openRate)
		floor.stop()
		br := startBridge(*bridgeBin, filepath.Join(dir, "open"), bc)
		fmt.Println("bridge pid:", br.cmd.Process.Pid, "admin:", br.admin)
		warmOpen(br.url, *openRate)
		r, seen := br.openLoop(*openRate, *duration)
		br.stop()
		fmt.Printf("\nopen loop at %.0f requests/s, %s per target\n", *openRate, *duration)
		printHeader()
		printResult("bare fiber (200)", bareOpen)
		printResult(floorLabel(), floorOpen)
		printResult("bridge (verify+fsync queue)", r)
		fmt.Println(seen)
		return
	}
	var compareFull []result
	runCompare := func(r int) {
		br := startBridge(*compare, filepath.Join(dir, fmt.Sprint("compare-", r)), bc)
		compareFull = append(compareFull, fullLoad(&br.target))
		br.stop()
	}
	for r := 0; r < *rounds; r++ {
		// The machine's speed drifts: the comparison runs before the
		// bridge in odd rounds and after it in even ones.
		if *compare != "" && r%2 == 1 {
			runCompare(r)
		}
		bare := startBare()
		bareFull = append(bareFull, fullLoad(bare))
		bare.stop()
		floor := startFloor(filepath.Join(dir, fmt.Sprint("floor-", r)))
		floorFull = append(floorFull, fullLoad(floor))
		floor.stop()
		br := startBridge(*bridgeBin, filepath.Join(dir, fmt.Sprint(r)), bc)
		warmClosed(br.url)
		profiled := make(chan struct{})
		if *cpuProfile != "" && r == 0 {
			go func() {
				defer close(profiled)
				must(br.profile(*cpuProfile, *duration-time.Second))
			}()
		} else {
			close(profiled)
		}
		bridgeFull = append(bridgeFull, measured(br.cmd, func() result { return closedLoop(br.url, *conns, *duration) }))
		<-profiled
		if *allocProfile != "" && r == 0 {
			must(br.fetch("/debug/pprof/allocs", *allocProfile))
		}
		if r == 0 {
			calls := br.metric(`hookbridge_delivery_duration_seconds_count{sink="archive"}`)
			if calls > 0 {
				delivered := br.metric(`hookbridge_deliveries_total{outcome="delivered",sink="archive"}`)
				sinkBatches = fmt.Sprintf("bridge file sink in the first full-load phase: %.0f events in %.0f batches, %.1f per batch",
					delivered, calls, delivered/calls)
			}
		}
		if v := br.peakRSS(); v > rss {
			rss = v
		}
		br.stop()
		if *compare != "" && r%2 == 0 {
			runCompare(r)
		}
	}
	bf, ff, brf := best(bareFull), best(floorFull), best(bridgeFull)
	half := bf.rps / 2
	bare := startBare()
	bareHalf := openAt(bare, half)
	bare.stop()
	br := startBridge(*bridgeBin, filepath.Join(dir, "half"), bc)
	warmOpen(br.url, half)
	bridgeHalf, halfSeen := br.openLoop(half, *duration)
	br.stop()
	own := brf.rps / 2
	// Bare and floor at the bridge's own half load too: what the machine
	// and one synced write add to the latency at that rate.
	bare = startBare()
	bareOwnHalf := openAt(bare, own)
	bare.stop()
	floor := startFloor(filepath.Join(dir, "own-half-floor"))
	floorOwnHalf := openAt(floor, own)
	floor.stop()
	br = startBridge(*bridgeBin, filepath.Join(dir, "own-half"), bc)
	warmOpen(br.url, own)
	bridgeOwnHalf, ownHalfSeen := br.openLoop(own, *duration)
	br.stop()
	fsyncAfter := probeFsync(dir, 500)

	fmt.Printf("disk: fdatasync of a 4 KiB append in the bench's directory, 500 times, before the runs: %s; after: %s\n", fsyncBefore, fsyncAfter)
	fmt.Printf("\nfull load: %d connections, %s per phase, %d round(s) (best shown)\n", *conns, *duration, *rounds)
	printHeader()
	for _, r := range bareFull {
		printResult("bare fiber (200)", r)
	}
	for _, r := range floorFull {
		printResult(floorLabel(), r)
	}
	for _, r := range bridgeFull {
		printResult("bridge (verify+fsync queue)", r)
	}
	fmt.Printf("ratio bridge/bare requests/s: %.2f (floor/bare %.2f, bridge/floor %.2f)\n", brf.rps/bf.rps, ff.rps/bf.rps, brf.rps/ff.rps)
	fmt.Printf("bridge peak RSS at full load: %.1f MB\n", float64(rss)/1e6)
	if sinkBatches != "" {
		fmt.Println(sinkBatches)
	}
	if *compare != "" {
		printComparison(*bridgeBin, *compare, bridgeFull, compareFull)
	}
	fmt.Printf("\nhalf load: open loop at %.0f requests/s (half the bare handler's best)\n", half)
	printResult("bare fiber (200)", bareHalf)
	printResult("bridge (verify+fsync queue)", bridgeHalf)
	fmt.Println(halfSeen)
	fmt.Printf("\nbridge at half of its own best: open loop at %.0f requests/s\n", own)
	printResult("bare fiber (200)", bareOwnHalf)
	printResult(floorLabel(), floorOwnHalf)
	printResult("bridge (verify+fsync queue)", bridgeOwnHalf)
	fmt.Println(ownHalfSeen)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// --- targets ---------------------------------------------------------------

type target struct {
	url  string
	cmd  *exec.Cmd
	stop func()
}

// freeAddrs returns n distinct loopback addresses to listen on.
func freeAddrs(n int) []string {
	addrs, err := proc.FreeAddrs(n)
	must(err)
	return addrs
}

// tlsFiles are the certificate every target serves with -tls, and the
// configuration of the clients that trust it. Empty: plain HTTP.
var tlsFiles struct {
	cert, key string
	client    *tls.Config
}

// scheme is the targets' URL scheme.
func scheme() string {
	if tlsFiles.cert != "" {
		return "https://"
	}
	return "http://"
}

// listen serves app on addr, over HTTPS with -tls.
func listen(app *fiber.App, addr string) error {
	if tlsFiles.cert != "" {
		return app.ListenTLS(addr, tlsFiles.cert, tlsFiles.key)
	}
	return app.Listen(addr)
}

func runBare(addr string) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/webhooks/helloclient", func(c *fiber.Ctx) error { return c.SendStatus(200) })
	must(listen(app, addr))
}

// runFloor serves the bare handler plus one synced Pebble write of each
// body, on Pebble's defaults but for the memtable size the bridge uses.
func runFloor(addr, dir string) {
	db, err := pebble.Open(dir, &pebble.Options{MemTableSize: 8 << 20})
	must(err)
	var n atomic.Uint64
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/webhooks/helloclient", func(c *fiber.Ctx) error {
		key := binary.BigEndian.AppendUint64([]byte("e/"), n.Add(1))
		if err := db.Set(key, c.Body(), pebble.Sync); err != nil {
			return err
		}
		return c.SendStatus(200)
	})
	must(listen(app, addr))
}

// runFileFloor serves the floor with the cheapest durable write there is:
// each request's body is appended to one file, and a request is answered
// once an fdatasync that began after its append has returned. Requests that
// arrive while a sync runs share the next one.
func runFileFloor(addr, dir string) {
	must(os.MkdirAll(dir, 0o755))
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(err)
	var (
		mu      sync.Mutex
		buf     []byte
		synced  = make(chan struct{})
		pending = make(chan struct{}, 1)
	)
	go func() {
		for range pending {
			mu.Lock()
			data, done := buf, synced
			buf, synced = nil, make(chan struct{})
			mu.Unlock()
			_, err := f.Write(data)
			must(err)
			must(syscall.Fdatasync(int(f.Fd())))
			close(done)
		}
	}()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/webhooks/helloclient", func(c *fiber.Ctx) error {
		mu.Lock()
		buf = append(buf, c.Body()...)
		done := synced
		mu.Unlock()
		select {
		case pending <- struct{}{}:
		default:
		}
		<-done
		return c.SendStatus(200)
	})
	must(listen(app, addr))
}

func startProcess(cmd *exec.Cmd, readyURL string) func() {
	cmd.Stderr = os.Stderr
	must(cmd.Start())
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFiles.client}}
	for {
		resp, err := client.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			must(fmt.Errorf("%s did not become ready", cmd.Path))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}

// startChild runs this binary serving one of its internal handlers (flag,
// then any more args) on a free address.
func startChild(flag string, args ...string) *target {
	self, err := os.Executable()
	must(err)
	addr := freeAddrs(1)[0]
	if tlsFiles.cert != "" {
		args = append(args, "-tls-cert", tlsFiles.cert, "-tls-key", tlsFiles.key)
	}
	cmd := exec.Command(self, append([]string{flag, addr}, args...)...)
	stop := startProcess(cmd, scheme()+addr+"/")
	return &target{url: scheme() + addr + "/webhooks/helloclient", cmd: cmd, stop: stop}
}

func startBare() *target { return startChild("-serve-bare") }

// floorStore is -floor-store, passed on to the floor's child process.
var floorStore string

func floorLabel() string {
	if floorStore == "file" {
		return "floor (bare+synced file)"
	}
	return "floor (bare+synced Pebble)"
}

func startFloor(dir string) *target {
	return startChild("-serve-floor", "-floor-dir", dir, "-floor-store", floorStore)
}

type bridgeTarget struct {
	target
	admin string
}

// profile fetches a CPU profile of the bridge from its admin listener.
func (b *bridgeTarget) profile(path string, d time.Duration) error {
	return b.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), path)
}

// fetch saves what the bridge's admin listener serves at urlPath to path.
func (b *bridgeTarget) fetch(urlPath, path string) error {
	resp, err := http.Get("http://" + b.admin + urlPath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// bridgeConfig is what the flags change in the bridge's configuration.
type bridgeConfig struct {
	sinkSync, batchWait, dedupMemory string
	dedupWindow                      time.Duration
	kafkaBroker                      string // queue type kafka on this broker, when not ""
}

func startBridge(bin, dir string, bc bridgeConfig) *bridgeTarget {
	must(os.MkdirAll(dir, 0o755))
	archive := "sync: " + bc.sinkSync
	if bc.batchWait != "" {
		archive += ", batch_wait: " + bc.batchWait
	}
	queue := fmt.Sprintf("path: %q", filepath.Join(dir, "queue"))
	if bc.dedupWindow > 0 {
		queue += ", dedup_window: " + bc.dedupWindow.String()
	}
	if bc.dedupMemory != "" {
		queue += ", dedup_memory: " + bc.dedupMemory
	}
	if bc.kafkaBroker != "" {
		// A topic of its own for every start, so that no phase reads another's.
		queue = fmt.Sprintf("type: kafka, brokers: [%q], topic: bench.%d", bc.kafkaBroker, time.Now().UnixNano())
	}
	addrs := freeAddrs(2)
	addr, admin := addrs[0], addrs[1]
	server := fmt.Sprintf("listen: %q", addr)
	if tlsFiles.cert != "" {
		server += fmt.Sprintf(", tls: {cert_file: %q, key_file: %q}", tlsFiles.cert, tlsFiles.key)
	}
	cfg := fmt.Sprintf(`server: {%s}
admin: {listen: %q}
queue: {%s}
log: {level: warn}
sources:
  helloclient: {type: helloclient, secret: %q, tolerance: 0}
sinks:
  archive: {type: file, path: %q, %s}
routes:
  - {name: everything, sinks: [archive]}
`, server, admin, queue, secret, filepath.Join(dir, "events.jsonl"), archive)
	path := filepath.Join(dir, "bench.yaml")
	must(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command(bin, "run", "-c", path)
	stop := startProcess(cmd, "http://"+admin+"/readyz")
	return &bridgeTarget{target: target{url: scheme() + addr + "/webhooks/helloclient", cmd: cmd, stop: stop}, admin: admin}
}

// metric reads one series from the bridge's /metrics; 0 when absent.
func (b *bridgeTarget) metric(series string) float64 {
	return promtext.Value("http://"+b.admin+"/metrics", series)
}

// openLoop runs an open-loop phase at rate against the bridge and also
// reports the latency the bridge itself measured, from its request duration
// histogram: from the request read to the answer written, without the
// network, the client or the time a request waited to be read.
func (b *bridgeTarget) openLoop(rate float64, d time.Duration) (result, string) {
	const name = "hookbridge_request_duration_seconds"
	url := "http://" + b.admin + "/metrics"
	before := promtext.Buckets(url, name, `source="helloclient"`)
	r := measured(b.cmd, func() result { return openLoop(b.url, rate, d) })
	after := promtext.Buckets(url, name, `source="helloclient"`)
	ms := func(q float64) string {
		return fmt.Sprintf("%gms", promtext.Quantile(before, after, q)*1000)
	}
	return r, fmt.Sprintf("  as the bridge measured it (bucket bounds): p50 <= %s, p99 <= %s, p99.9 <= %s", ms(0.5), ms(0.99), ms(0.999))
}

// peakRSS reads the process's high-water resident set size.
func (b *bridgeTarget) peakRSS() int64 { return proc.PeakRSS(b.cmd.Process.Pid) }

// --- load ------------------------------------------------------------------

type result struct {
	serverCPU time.Duration     // CPU time of the server process during the phase
	clientCPU time.Duration     // CPU time of the load generator (this process)
	machine   proc.MachineTimes // the whole machine's CPU ticks during the phase, by state
	rps       float64
	latencies []time.Duration
	overslept []time.Duration // open loop: how late the load generator's sleeps ended, sorted
	errors    int64
	ok        int64
	peakRSS   int64 // the server's high-water resident set at the phase's end, bytes
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

// printHeader heads the columns printResult prints. "machine idle" and
// "softirq" are shares of all the machine's CPU time during the phase, from
// /proc/stat: the CPU/req columns count the two processes only, and the
// loopback's packet processing (softirq) is in neither.
func printHeader() {
	fmt.Printf("%-28s %12s %10s %10s %10s %8s %14s %14s %13s %8s\n", "target", "requests/s", "p50", "p99", "max", "errors", "server CPU/req", "client CPU/req", "machine idle", "softirq")
}

func printResult(name string, r result) {
	fmt.Printf("%-28s %12.0f %10s %10s %10s %8d", name, r.rps, r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.pct(1).Round(time.Microsecond), r.errors)
	if n := r.ok + r.errors; n > 0 && r.serverCPU > 0 {
		fmt.Printf(" %12.1fµs %12.1fµs", cpuPerRequest(r), float64(r.clientCPU.Microseconds())/float64(n))
		m := r.machine
		fmt.Printf(" %12.0f%% %7.0f%%", 100*m.Share(m.Idle+m.IOWait), 100*m.Share(m.SoftIRQ))
	}
	fmt.Println()
	if o := r.overslept; len(o) > 0 {
		at := func(p float64) time.Duration { return o[int(float64(len(o)-1)*p)].Round(time.Microsecond) }
		fmt.Printf("  the load generator's sleeps ended late by p50 %s, p99 %s, max %s (not counted above)\n", at(0.5), at(0.99), at(1))
	}
}

// printComparison prints each round's pair of bridge runs and the ratio of
// their CPU per request, the measure least moved by the machine's drift.
func printComparison(a, b string, as, bs []result) {
	fmt.Printf("\nA/B at full load: A = %s, B = %s (B ran first in odd rounds)\n", a, b)
	fmt.Printf("%-6s %12s %12s %10s %12s %12s %10s %10s\n", "round", "A req/s", "A CPU/req", "A RSS", "B req/s", "B CPU/req", "B RSS", "B/A CPU")
	var ratios []float64
	for i := range min(len(as), len(bs)) {
		ca, cb := cpuPerRequest(as[i]), cpuPerRequest(bs[i])
		ratio := cb / ca
		ratios = append(ratios, ratio)
		fmt.Printf("%-6d %12.0f %10.1fµs %7.1f MB %12.0f %10.1fµs %7.1f MB %10.3f\n", i, as[i].rps, ca, float64(as[i].peakRSS)/1e6, bs[i].rps, cb, float64(bs[i].peakRSS)/1e6, ratio)
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		n := len(ratios)
		median := (ratios[(n-1)/2] + ratios[n/2]) / 2
		fmt.Printf("median B/A CPU per request: %.3f (range %.3f-%.3f)\n", median, ratios[0], ratios[n-1])
	}
}

// cpuPerRequest is the server's CPU time per answered request, in µs.
func cpuPerRequest(r result) float64 {
	n := r.ok + r.errors
	if n == 0 {
		return 0
	}
	return float64(r.serverCPU.Microseconds()) / float64(n)
}

// measured runs a load phase and adds the CPU time the server process and
// this process (the load generator) used during it.
func measured(server *exec.Cmd, run func() result) result {
	s0, c0, m0 := proc.CPUTime(server.Process.Pid), proc.CPUTime(os.Getpid()), proc.ReadMachineTimes()
	r := run()
	r.serverCPU = proc.CPUTime(server.Process.Pid) - s0
	r.clientCPU = proc.CPUTime(os.Getpid()) - c0
	r.machine = proc.ReadMachineTimes().Since(m0)
	r.peakRSS = proc.PeakRSS(server.Process.Pid)
	return r
}

// probeFsync times n fdatasyncs of a 4 KiB append in dir: every
// acknowledgement waits for at least one, so their spread bounds the
// bridge's latency on this disk.
func probeFsync(dir string, n int) string {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	must(err)
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	took := make([]time.Duration, n)
	for i := range took {
		_, err := f.Write(block)
		must(err)
		start := time.Now()
		must(syscall.Fdatasync(int(f.Fd())))
		took[i] = time.Since(start)
	}
	slices.Sort(took)
	return fmt.Sprintf("p50 %s, p99 %s, max %s", took[n/2].Round(time.Microsecond), took[n*99/100].Round(time.Microsecond), took[n-1].Round(time.Microsecond))
}

func best(rs []result) result {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.rps > b.rps {
			b = r
		}
	}
	return b
}

var seq atomic.Int64

// connPerRequest closes each connection after its request (-conn-per-request).
var connPerRequest bool

// signedRequest fills req with a unique signed lead, as Hello Client sends it.
func signedRequest(req *fasthttp.Request, url string, now int64) {
	n := seq.Add(1)
	body := fmt.Appendf(nil, `{"Type":"lead","SerialNumber":"HC-BENCH","SessionID":"bench-%d","FirstName":"Ada","LastName":"Lovelace","Email":"ada+%d@example.com","Phone":"+44 20 7946 0958","Message":"Load test lead number %d, asking about pricing for the enterprise plan.","CreateTime":"2026-11-20T10:15:00Z"}`, n, n, n)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(strconv.AppendInt(nil, now, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Webhook-Signature", "t="+strconv.FormatInt(now, 10)+",v1="+hex.EncodeToString(m.Sum(nil)))
	req.SetBody(body)
	if connPerRequest {
		req.SetConnectionClose()
	}
}

func newClient(url string, conns int) *fasthttp.HostClient {
	host, isTLS := strings.CutPrefix(url, "https://")
	host = strings.TrimPrefix(host, "http://")
	host = host[:strings.IndexByte(host, '/')]
	return &fasthttp.HostClient{Addr: host, MaxConns: conns, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IsTLS: isTLS, TLSConfig: tlsFiles.client}
}

// closedLoop keeps conns requests in flight for d and counts answers.
func closedLoop(url string, conns int, d time.Duration) result {
	client := newClient(url, conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var res result
	var ok, errs atomic.Int64
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			lat := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(end) {
				signedRequest(req, url, time.Now().Unix())
				t0 := time.Now()
				err := client.Do(req, resp)
				lat = append(lat, time.Since(t0))
				if err != nil || resp.StatusCode() != 200 {
					errs.Add(1)
					continue
				}
				ok.Add(1)
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.ok, res.errors = ok.Load(), errs.Load()
	res.rps = float64(res.ok) / time.Since(start).Seconds()
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res
}

// openLoop sends at a fixed rate for d, each request at its scheduled time,
// and measures latency from that time (so a stall counts against every
// request it delays), or from when the worker's sleep ended if it woke late.
func openLoop(url string, rate float64, d time.Duration) result {
	const workers = 128
	client := newClient(url, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var res result
	var ok, errs atomic.Int64
	interval := time.Duration(float64(time.Second) * workers / rate)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			var lat, late []time.Duration
			offset := time.Duration(w) * interval / workers
			for i := 0; ; i++ {
				at := start.Add(offset + time.Duration(i)*interval)
				if at.Sub(start) >= d {
					break
				}
				from := at
				if wait := time.Until(at); wait > 0 {
					// An idle worker's oversleep is the load
					// generator's timer, not the server: count from
					// when it woke. A worker still behind (its last
					// answer came late) counts from the schedule.
					time.Sleep(wait)
					from = time.Now()
					late = append(late, from.Sub(at))
				}
				signedRequest(req, url, time.Now().Unix())
				err := client.Do(req, resp)
				lat = append(lat, time.Since(from))
				if err != nil || resp.StatusCode() != 200 {
					errs.Add(1)
					continue
				}
				ok.Add(1)
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.overslept = append(res.overslept, late...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res.ok, res.errors = ok.Load(), errs.Load()
	res.rps = float64(res.ok) / time.Since(start).Seconds()
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	slices.Sort(res.overslept)
	return res
}
