package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv, when set, turns TestCrashChild into the child process of
// TestKill9LosesNothing: it enqueues into the store at that path until killed.
const crashDirEnv = "HOOKBRIDGE_QUEUE_CRASH_DIR"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestKill9LosesNothing")
	}
	s, err := Open(Options{Path: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				dup, err := s.Enqueue(context.Background(), []Item{item(id, "crash")})
				if err != nil || dup[0] {
					fmt.Fprintln(os.Stderr, "enqueue:", id, err, dup)
					os.Exit(3)
				}
				// One write per line: the parent sees whole lines only.
				out.Lock()
				_, _ = os.Stdout.WriteString("ok " + id + "\n")
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill9LosesNothing kills a process that is enqueueing with SIGKILL and
// checks that every event it acknowledged is pending after reopening.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd, stdout, stderr := startChild(t, "TestCrashChild", crashDirEnv, dir)

	acked := make(map[string]bool)
	r := bufio.NewReader(stdout)
	killAt := time.Now().Add(10 * time.Second)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // a last line without its newline was cut by the kill: not acknowledged
		}
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ok "); ok {
			acked[id] = true
		}
		if !killed && (len(acked) >= 2000 || time.Now().After(killAt)) {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("child exited by itself: %v\n%s", err, stderr.String())
	}
	if len(acked) < 100 {
		t.Fatalf("child acknowledged only %d events before the kill\n%s", len(acked), stderr.String())
	}

	s := openStore(t, Options{Path: dir})
	pending := make(map[string]bool)
	for _, d := range drain(t, s, "crash") {
		pending[strings.TrimSuffix(strings.TrimPrefix(string(d.Event), `{"specversion":"1.0","id":"`), `"}`)] = true
	}
	lost := 0
	for id := range acked {
		if !pending[id] {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged event %s is not pending after the kill", id)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events lost", lost, len(acked))
	}
	// Their dedup records survived too.
	probe := []Item{}
	for id := range acked {
		probe = append(probe, item(id, "crash"))
		if len(probe) == 50 {
			break
		}
	}
	for i, dup := range enqueue(t, s, probe...) {
		if !dup {
			t.Errorf("acknowledged event %s accepted again after the kill", probe[i].ID)
		}
	}
	t.Logf("killed after %d acknowledged events; %d pending on reopen", len(acked), len(pending))
}

// settleDirEnv, when set, turns TestSettleChild into the child process of
// TestKill9KeepsSettledDeliveries.
const settleDirEnv = "HOOKBRIDGE_QUEUE_SETTLE_DIR"

// settleEvents is how many events the child queues and settles: all but
// the last are acknowledged; the last fails its first attempt.
const settleEvents = 300

func TestSettleChild(t *testing.T) {
	dir := os.Getenv(settleDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestKill9KeepsSettledDeliveries")
	}
	fail := func(msg string, err error) {
		fmt.Fprintln(os.Stderr, msg, err)
		os.Exit(2)
	}
	s, err := Open(Options{Path: dir, Logger: quietLogger()})
	if err != nil {
		fail("open:", err)
	}
	for i := range settleEvents {
		if _, err := s.Enqueue(context.Background(), []Item{item(fmt.Sprintf("ev-%d", i), "crm")}); err != nil {
			fail("enqueue:", err)
		}
	}
	var taken []Delivery
	for len(taken) < settleEvents {
		ds, err := s.TryNext("crm", settleEvents, 0)
		if err != nil {
			fail("next:", err)
		}
		taken = append(taken, ds...)
	}
	var acked []uint64
	for _, d := range taken[:settleEvents-1] {
		acked = append(acked, d.Seq)
	}
	if err := s.AckAll("crm", acked...); err != nil {
		fail("ack:", err)
	}
	last := taken[settleEvents-1]
	if err := s.Attempted("crm", last.Seq, 1, "503 Service Unavailable"); err != nil {
		fail("attempted:", err)
	}
	if err := s.Release("crm", last.Seq); err != nil {
		fail("release:", err)
	}
	// Nothing is written from here on: no synced write carries the
	// settled deliveries to disk but the store's own.
	_, _ = os.Stdout.WriteString("settled\n")
	select {}
}

// TestKill9KeepsSettledDeliveries: deliveries settled (acknowledged, or an
// attempt counted) a moment before a SIGKILL stay settled after it, even
// though no event was queued after them. They used to wait in Pebble's
// buffer for the next synced write, and a bridge killed a while after an
// outage had drained delivered the whole outage again.
func TestKill9KeepsSettledDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd, stdout, stderr := startChild(t, "TestSettleChild", settleDirEnv, dir)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "settled\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q (%v)\n%s", line, err, stderr.String())
	}
	time.Sleep(10 * settleSyncDelay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := openStore(t, Options{Path: dir})
	left := drain(t, s, "crm")
	if len(left) != 1 {
		t.Fatalf("%d deliveries pending after the kill, want only the one that failed (of %d settled)", len(left), settleEvents)
	}
	if id := string(left[0].Event); !strings.Contains(id, fmt.Sprintf(`"ev-%d"`, settleEvents-1)) || left[0].Attempts != 1 {
		t.Fatalf("pending after the kill: %s with %d attempts, want ev-%d with 1", id, left[0].Attempts, settleEvents-1)
	}
}

// startChild runs this test binary's test named child in a process of its
// own, with env set to dir, and returns it with its stdout and stderr.
func startChild(t *testing.T, child, env, dir string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+dir)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}
