package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const reloadBefore = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
`

const reloadAfter = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
  leads: {type: file, path: "{{DIR}}/leads.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
  - name: new-leads
    filters: [{exact: {type: com.helloclient.lead}}]
    sinks: [leads]
`

func metricValue(t *testing.T, admin, name string, labels ...string) float64 {
	t.Helper()
	v, _ := metricSeries(t, admin, name, labels...)
	return v
}

// metricSeries returns the value of the first series of name whose line
// holds every label, and whether there is one.
func metricSeries(t *testing.T, admin, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if match {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v, true
		}
	}
	return 0, false
}

// TestReloadUnderLoad edits the config of a running bridge while webhooks
// keep arriving: no request fails, a bad edit is rejected with its line and
// the running config stays, and the new route gets the following events.
func TestReloadUnderLoad(t *testing.T) {
	b := newBridge(t, reloadBefore, "HC_KEY="+hcSecret)
	b.Start()
	url := "http://" + b.Addr + "/webhooks/helloclient"
	var (
		next, failed atomic.Int64
		mu           sync.Mutex
		afterReload  []string
		reloaded     atomic.Bool
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := reloaded.Load()
				body := leadBody(int(next.Add(1)))
				resp, err := post(t, client, url, body, map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
				if err != nil || resp.Status != 200 {
					failed.Add(1)
					continue
				}
				if after {
					mu.Lock()
					afterReload = append(afterReload, sha256Hex(body))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	// A bad edit first: rejected, logged with its position, nothing changes.
	b.WriteConfig(strings.Replace(reloadAfter, "sinks: [leads]", "sinks: [leads, nowhere]", 1))
	waitFor(t, 10*time.Second, "the bad edit to be rejected", func() bool { return strings.Contains(b.Log(), "config change rejected") })
	if !regexp.MustCompile(`bridge\.yaml:\d+:\d+: route \\?"new-leads\\?": unknown sink \\?"nowhere\\?"`).MatchString(b.Log()) {
		t.Errorf("the rejection does not name the file, line and mistake:\n%s", b.Log())
	}
	b.WriteConfig(reloadAfter)
	waitFor(t, 10*time.Second, "the reload", func() bool {
		return metricValue(t, b.Admin, "hookbridge_config_reloads_total", `result="ok"`) >= 1
	})
	reloaded.Store(true)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed during the reloads", n)
	}
	mu.Lock()
	ids := append([]string(nil), afterReload...)
	mu.Unlock()
	if len(ids) == 0 {
		t.Fatal("no requests were sent after the reload")
	}
	leads := filepath.Join(b.Dir, "leads.jsonl")
	waitFor(t, 15*time.Second, "the new route's events", func() bool {
		seen := map[string]bool{}
		for _, ev := range readLines(t, leads) {
			seen[ev.ID] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	total := int(next.Load())
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 15*time.Second, "every event in the archive", func() bool { return len(readLines(t, archive)) >= total })
	b.Stop()
	t.Logf("%d requests, none failed; %d sent after the reload all reached the new route", total, len(ids))
}

// TestMetricsCountWhatHappened checks /metrics against what the test did.
func TestMetricsCountWhatHappened(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	url := "http://" + b.Addr + "/webhooks/helloclient"
	now := time.Now().Unix()
	const good, forged, retries = 7, 3, 2
	for i := 0; i < good; i++ {
		body := leadBody(100 + i)
		post(t, http.DefaultClient, url, body, map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, now, body)})
	}
	for i := 0; i < retries; i++ {
		body := leadBody(100)
		post(t, http.DefaultClient, url, body, map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, now, body)})
	}
	for i := 0; i < forged; i++ {
		body := leadBody(200 + i)
		post(t, http.DefaultClient, url, body, map[string]string{"X-Webhook-Signature": helloclientSign("wrong", now, body)})
	}
	// Headers larger than the listener reads: answered 431 before any
	// source is known, and counted all the same. The client may still be
	// writing when the answer comes and the connection closes, so only an
	// answer read is checked; the count below is the test.
	if resp, err := post(t, http.DefaultClient, url, leadBody(300), map[string]string{"X-Padding": strings.Repeat("a", 20<<10)}); err == nil && resp.Status != 431 {
		t.Errorf("oversized headers: %v, want 431", resp.Status)
	}
	waitFor(t, 10*time.Second, "deliveries", func() bool {
		return metricValue(t, b.Admin, "hookbridge_deliveries_total", `sink="archive"`, `outcome="delivered"`) == good
	})
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hookbridge_requests_total", []string{`source="helloclient"`, `status="200"`}, good + retries},
		{"hookbridge_requests_total", []string{`source="helloclient"`, `status="401"`}, forged},
		{"hookbridge_requests_total", []string{`source=""`, `status="431"`}, 1},
		{"hookbridge_verification_failures_total", []string{`reason="signature_mismatch"`}, forged},
		{"hookbridge_events_accepted_total", []string{`source="helloclient"`}, good},
		{"hookbridge_events_duplicate_total", []string{`source="helloclient"`}, retries},
		{"hookbridge_deliveries_total", []string{`sink="archive"`, `outcome="delivered"`}, good},
		{"hookbridge_queue_pending", []string{`sink="archive"`}, 0},
		{"hookbridge_queue_dedup_filter_budget_bytes", nil, 4 << 20},
		{"hookbridge_queue_dedup_filter_blind", nil, 0},
		{"hookbridge_request_duration_seconds_count", []string{`source="helloclient"`}, good + retries + forged},
		// Exported at zero from the start, so that rate() and absent()
		// over them work before their first event.
		{"hookbridge_dead_letters_total", []string{`sink="archive"`}, 0},
		{"hookbridge_delivery_retries_total", []string{`sink="archive"`}, 0},
		{"hookbridge_sink_circuit_openings_total", []string{`sink="archive"`}, 0},
		{"hookbridge_deliveries_total", []string{`sink="archive"`, `outcome="dead_lettered"`}, 0},
		{"hookbridge_events_unrouted_total", []string{`source="helloclient"`}, 0},
		{"hookbridge_verification_failures_total", []string{`source="helloclient"`, `reason="stale_timestamp"`}, 0},
		{"hookbridge_config_reloads_total", []string{`result="rejected"`}, 0},
	}
	for _, c := range checks {
		got, ok := metricSeries(t, b.Admin, c.name, c.labels...)
		if !ok {
			t.Errorf("%s%v is not exported", c.name, c.labels)
		} else if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Every retry was looked up on disk; a new id only when the filter
	// could not rule it out (about one in a thousand).
	if got, ok := metricSeries(t, b.Admin, "hookbridge_queue_dedup_lookups_total"); !ok || got < retries || got > retries+good {
		t.Errorf("hookbridge_queue_dedup_lookups_total = %v (exported: %v), want %d to %d", got, ok, retries, retries+good)
	}
	if got, ok := metricSeries(t, b.Admin, "hookbridge_queue_dedup_filter_bytes"); !ok || got <= 0 || got > 4<<20 {
		t.Errorf("hookbridge_queue_dedup_filter_bytes = %v (exported: %v), want some of its 4 MiB", got, ok)
	}
	// Consumer-group lag is the Kafka queue's alone.
	for _, name := range []string{"hookbridge_queue_lag", "hookbridge_queue_lag_updated_timestamp_seconds"} {
		if _, ok := metricSeries(t, b.Admin, name); ok {
			t.Errorf("%s exported for the embedded queue", name)
		}
	}
	b.Stop()
}

// TestMemoryLimit checks the soft memory limit the binary gives the Go
// runtime, as its own /metrics report it: the default, then the file's
// memory_limit after a reload, then GOMEMLIMIT's when the file has none.
func TestMemoryLimit(t *testing.T) {
	limit := func(b *bridgeProc) float64 {
		v, ok := metricSeries(t, b.Admin, "go_gc_gomemlimit_bytes")
		if !ok {
			t.Fatal("go_gc_gomemlimit_bytes is not exported")
		}
		return v
	}
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret, "GOMEMLIMIT=")
	b.Start()
	if got := limit(b); got != 64<<20 {
		t.Errorf("default limit %v, want 64 MiB", got)
	}
	// What the limit costs is watched through the collector's CPU.
	if _, ok := metricSeries(t, b.Admin, "go_cpu_classes_gc_total_cpu_seconds_total"); !ok {
		t.Error("go_cpu_classes_gc_total_cpu_seconds_total is not exported")
	}
	b.WriteConfig(coreConfig + "memory_limit: 200MiB\n")
	waitFor(t, 10*time.Second, "the reload", func() bool {
		return metricValue(t, b.Admin, "hookbridge_config_reloads_total", `result="ok"`) >= 1
	})
	if got := limit(b); got != 200<<20 {
		t.Errorf("limit after the reload %v, want 200 MiB", got)
	}
	if !strings.Contains(b.Log(), "soft memory limit") || !strings.Contains(b.Log(), "limit=200MiB") {
		t.Errorf("the change is not logged:\n%s", b.Log())
	}
	b.Stop()

	b = newBridge(t, coreConfig, "HC_KEY="+hcSecret, "GOMEMLIMIT=96MiB")
	b.Start()
	if got := limit(b); got != 96<<20 {
		t.Errorf("with GOMEMLIMIT=96MiB: limit %v", got)
	}
	b.Stop()
}
