package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var bridgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookbridge-e2e-")
	if err != nil {
		panic(err)
	}
	bridgeBin = filepath.Join(dir, "bridge")
	build := exec.Command("go", "build", "-o", bridgeBin, "../cmd/bridge")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build ships it
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the bridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePorts returns n distinct loopback addresses that were free a moment
// ago. Their listeners are held until all n are chosen: closing each before
// asking for the next lets the kernel hand out the same port twice.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// bridgeProc is one running bridge binary.
type bridgeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	Addr   string // webhook listener
	Admin  string
	Dir    string
	Config string
	env    []string
	logMu  sync.Mutex
	log    bytes.Buffer
	done   chan struct{}
}

// writeConfig writes a config whose {{WEBHOOK}}, {{ADMIN}} and {{DIR}} are filled in.
func newBridge(t *testing.T, config string, env ...string) *bridgeProc {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2)
	b := &bridgeProc{t: t, Addr: ports[0], Admin: ports[1], Dir: dir, Config: filepath.Join(dir, "bridge.yaml"), env: env}
	b.WriteConfig(config)
	return b
}

func (b *bridgeProc) WriteConfig(config string) {
	r := strings.NewReplacer("{{WEBHOOK}}", b.Addr, "{{ADMIN}}", b.Admin, "{{DIR}}", b.Dir)
	if err := os.WriteFile(b.Config, []byte(r.Replace(config)), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bridgeProc) Start() {
	b.t.Helper()
	b.cmd = exec.Command(bridgeBin, "run", "-c", b.Config)
	b.cmd.Env = append(os.Environ(), b.env...)
	b.cmd.Stdout = &lockedWriter{b}
	b.cmd.Stderr = &lockedWriter{b}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	go func() { b.cmd.Wait(); close(b.done) }()
	b.t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			<-b.done
		}
		if b.t.Failed() {
			b.t.Logf("bridge log:\n%s", b.Log())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			b.t.Fatalf("bridge exited at start:\n%s", b.Log())
		default:
		}
		resp, err := http.Get("http://" + b.Admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("bridge not ready after 20s:\n%s", b.Log())
}

type lockedWriter struct{ b *bridgeProc }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.b.logMu.Lock()
	defer w.b.logMu.Unlock()
	return w.b.log.Write(p)
}

func (b *bridgeProc) Log() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return b.log.String()
}

// Kill sends SIGKILL and waits for the process to be gone.
func (b *bridgeProc) Kill() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// Stop sends SIGTERM and returns the exit code.
func (b *bridgeProc) Stop() int {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		b.t.Fatal("bridge did not stop within 30s of SIGTERM")
	}
	return b.cmd.ProcessState.ExitCode()
}

// helloclientSign computes X-Webhook-Signature the way Hello Client documents it.
func helloclientSign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil)))
}

type response struct {
	Status int
	Body   string
}

func post(t *testing.T, client *http.Client, url string, body []byte, headers map[string]string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		// A value with newlines goes as several lines of that header.
		for _, line := range strings.Split(v, "\n") {
			req.Header.Add(k, line)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: string(b)}, nil
}

// fileEvent is one line of a file sink, decoded loosely.
type fileEvent struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Source       string          `json:"source"`
	Subject      string          `json:"subject"`
	Time         string          `json:"time"`
	SpecVersion  string          `json:"specversion"`
	BridgeSource string          `json:"bridgesource"`
	Data         json.RawMessage `json:"data"`
	DataBase64   string          `json:"data_base64"`
}

func readLines(t *testing.T, path string) []fileEvent {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fileEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev fileEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// A line cut short by a kill is not a delivered event; the file sink ends it before writing more.
			continue
		}
		out = append(out, ev)
	}
	return out
}

// waitDelivered waits until every id of acked is in one of the files of
// events at paths, and fails the test with what is missing at the timeout.
func waitDelivered(t *testing.T, timeout time.Duration, acked map[string]bool, paths ...string) {
	t.Helper()
	missing := func() []string {
		seen := map[string]bool{}
		for _, path := range paths {
			for _, ev := range readLines(t, path) {
				seen[ev.ID] = true
			}
		}
		var out []string
		for id := range acked {
			if !seen[id] {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(timeout)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged events not delivered after %s, e.g. %s", len(m), len(acked), timeout, m[0])
	}
}

// waitFor polls until cond holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// streamLeads posts Hello Client leads signed with secret to url from
// workers goroutines, the n-th lead's body from body(n), until stop is
// called. A sender ends at its first failed request: the bridge is gone.
// acked counts the leads answered 200 so far; stop waits for the senders
// and returns the ids (the SHA-256 of the body) of those leads.
func streamLeads(t *testing.T, url, secret string, workers int, body func(n int) []byte) (acked func() int, stop func() map[string]bool) {
	var (
		mu   sync.Mutex
		ids  = map[string]bool{}
		next atomic.Int64
		quit = make(chan struct{})
		wg   sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				b := body(int(next.Add(1)))
				resp, err := post(t, client, url, b, map[string]string{"X-Webhook-Signature": helloclientSign(secret, time.Now().Unix(), b)})
				if err != nil {
					return
				}
				if resp.Status == http.StatusOK {
					mu.Lock()
					ids[sha256Hex(b)] = true
					mu.Unlock()
				}
			}
		}()
	}
	acked = func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	stop = func() map[string]bool {
		close(quit)
		wg.Wait()
		return ids
	}
	return acked, stop
}
