package bridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnqueuedEventIsAnswered503WithRetryAfter: when the queue cannot take
// an event the provider gets 503 with Retry-After, so it retries (never a
// 2xx it could take for an acknowledgement, never a 410), and /readyz turns
// traffic away for as long as the 503 asked the provider to wait.
func TestUnqueuedEventIsAnswered503WithRetryAfter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(testConfig(dir, "  - {name: all, sinks: [archive]}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, path)

	post := func(body string) *http.Response {
		t.Helper()
		ts := time.Now().Unix()
		m := hmac.New(sha256.New, []byte("s3cret"))
		fmt.Fprintf(m, "%d.%s", ts, body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr().String()+"/webhooks/helloclient", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhook-Signature", fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil))))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	const lead = `{"event":"lead","chatbot_id":"HC-1","session_id":"s-%d","email":"a@example.com"}`
	if resp := post(fmt.Sprintf(lead, 1)); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the queue open: %d", resp.StatusCode)
	}

	// The store goes away under the running bridge.
	if err := a.q.Close(); err != nil {
		t.Fatal(err)
	}
	resp := post(fmt.Sprintf(lead, 2))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the queue closed: %d %s, want 503", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q, want 10", got)
	}
	if !strings.Contains(string(body), "retry later") {
		t.Errorf("body %q does not ask for a retry", body)
	}
	if err := a.readiness(); err == nil {
		t.Error("ready right after the queue refused a write")
	}
	if got := testutil.ToFloat64(a.Metrics().Requests.WithLabelValues("helloclient", "503")); got != 1 {
		t.Errorf("requests answered 503: %v, want 1", got)
	}
}

// testConfig is a bridge's config for the tests: listeners on free ports,
// the queue and a file sink named archive in dataDir, the Hello Client
// source with secret s3cret, and routes (YAML list items).
func testConfig(dataDir, routes string) string {
	return fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
queue: {path: %q}
log: {level: error}
sources:
  helloclient: {type: helloclient, secret: s3cret}
sinks:
  archive: {type: file, path: %q}
routes:
%s`, filepath.Join(dataDir, "queue"), filepath.Join(dataDir, "events.jsonl"), routes)
}

// startApp runs a bridge on the config at path until the test ends, and
// returns it once it serves.
func startApp(t *testing.T, path string) *App {
	t.Helper()
	a := New(path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Started():
	case err := <-done:
		cancel()
		t.Fatalf("bridge stopped: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("bridge did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return a
}
