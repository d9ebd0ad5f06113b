package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// kafkaQueueConfig runs a replica whose queue is the topic bridge.ingress
// (three partitions) on the broker ${KAFKA}; each replica has its own
// file, so what each delivered can be told apart.
const kafkaQueueConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {type: kafka, brokers: ["${KAFKA}"], session_timeout: 6s}
log: {level: info}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
`

// startQueueBroker starts kfake with the ingress topic (three partitions)
// and its dead-letter topic (one).
func startQueueBroker(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "bridge.ingress"), kfake.SeedTopics(1, "bridge.ingress.deadletter"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestKafkaQueueReplicasLoseNothingOnKillNine runs two replicas on one
// Kafka ingress topic, posts leads to both, kills one with SIGKILL under
// load, and finds every lead either replica acknowledged in the files: the
// survivor delivers what the dead one had read and not finished.
func TestKafkaQueueReplicasLoseNothingOnKillNine(t *testing.T) {
	c := startQueueBroker(t)
	env := []string{"HC_KEY=" + hcSecret, "KAFKA=" + c.ListenAddrs()[0]}
	a := newBridge(t, kafkaQueueConfig, env...)
	b := newBridge(t, kafkaQueueConfig, env...)
	a.Start()
	b.Start()
	fileA, fileB := filepath.Join(a.Dir, "events.jsonl"), filepath.Join(b.Dir, "events.jsonl")

	countA, stopA := streamLeads(t, "http://"+a.Addr+"/webhooks/helloclient", hcSecret, 8, leadBody)
	countB, stopB := streamLeads(t, "http://"+b.Addr+"/webhooks/helloclient", hcSecret, 8, func(n int) []byte { return leadBody(1_000_000 + n) })
	// Both replicas deliver (the group gave each a share of the partitions),
	// for long enough to commit what they delivered (every second).
	started := time.Now()
	waitFor(t, 60*time.Second, "both replicas acknowledging and delivering for 4s", func() bool {
		return time.Since(started) > 4*time.Second && countA() >= 500 && countB() >= 500 &&
			len(readLines(t, fileA)) > 0 && len(readLines(t, fileB)) > 0
	})
	a.Kill()
	ackedA := stopA()
	atKill := countB()
	waitFor(t, 30*time.Second, "the survivor acknowledging more", func() bool { return countB() >= atKill+300 })
	ackedB := stopB()
	t.Logf("acknowledged: %d by the killed replica, %d by the survivor", len(ackedA), len(ackedB))

	acked := maps.Clone(ackedA)
	maps.Copy(acked, ackedB)
	waitDelivered(t, 60*time.Second, acked, fileA, fileB)
	linesA, linesB := readLines(t, fileA), readLines(t, fileB)
	distinct := map[string]bool{}
	for _, ev := range append(linesA, linesB...) {
		distinct[ev.ID] = true
	}
	t.Logf("files: %d lines by the killed replica, %d by the survivor; %d distinct events, %d delivered twice",
		len(linesA), len(linesB), len(distinct), len(linesA)+len(linesB)-len(distinct))
	// The survivor took the dead replica's partitions over from their
	// committed offsets: it delivered again only what was delivered after
	// the last commit, not everything.
	if twice := len(linesA) + len(linesB) - len(distinct); twice >= len(linesA) {
		t.Errorf("%d events delivered twice of %d the killed replica delivered: its offsets were not committed", twice, len(linesA))
	}
	if code := b.Stop(); code != 0 {
		t.Fatalf("survivor exit code %d", code)
	}
}

// TestInspectorWithKafkaQueue: with a Kafka queue the inspector shows the
// recent events and their deliveries, and the dead letters (none here).
func TestInspectorWithKafkaQueue(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("Chromium not found: install Debian's chromium package (apt-get install -y chromium) to run the inspector browser test")
	}
	c := startQueueBroker(t)
	b := newBridge(t, kafkaQueueConfig, "HC_KEY="+hcSecret, "KAFKA="+c.ListenAddrs()[0])
	b.Start()
	body := leadBody(7)
	resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
		map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("posting a lead: %v %d %s", err, resp.Status, resp.Body)
	}
	row := `tr.event-row[data-id="` + sha256Hex(body) + `"]`
	ctx := startChromium(t, chromium)
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx,
		chromedp.Navigate("http://"+b.Admin+"/inspector/"),
		chromedp.WaitVisible(chromedp.CSS(row+` .badge[data-sink="archive"][data-status="delivered"]`)),
		chromedp.WaitVisible(chromedp.CSS("#dead-empty")),
	); err != nil {
		t.Fatalf("the inspector: %v", err)
	}
	note, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("#dead-empty")))
	if err != nil {
		t.Fatalf("the dead-letter section: %v", err)
	}
	if note != "No dead letters." {
		t.Errorf("dead-letter section says %q, want that there are none", note)
	}
	// The sinks' API gives the archive's consumer-group lag once measured:
	// 0, the lead delivered and its offset committed.
	waitFor(t, 20*time.Second, "the archive's lag measured at 0 in the inspector's sinks", func() bool {
		resp, err := http.Get("http://" + b.Admin + "/inspector/api/sinks")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var got struct {
			Sinks []struct {
				Name        string     `json:"name"`
				Lag         *int64     `json:"lag"`
				LagMeasured *time.Time `json:"lag_measured"`
			} `json:"sinks"`
		}
		if json.NewDecoder(resp.Body).Decode(&got) != nil {
			return false
		}
		for _, s := range got.Sinks {
			if s.Name == "archive" {
				return s.Lag != nil && *s.Lag == 0 && s.LagMeasured != nil && time.Since(*s.LagMeasured) < time.Minute
			}
		}
		return false
	})
}

// kafkaQueueCRMConfig adds a CRM that gives up after two attempts.
var kafkaQueueCRMConfig = strings.Replace(strings.Replace(kafkaQueueConfig,
	"\nroutes:", "\n  crm: {type: http, url: \"${CRM_URL}\", retry: {max_attempts: 2, initial_backoff: 50ms}}\nroutes:", 1),
	"sinks: [archive]}", "sinks: [archive, crm]}", 1)

// TestKafkaQueueDeadLettersAndReload: with a Kafka queue, a lead the CRM
// rejects lands on the dead-letter topic as a CloudEvent with the reason,
// while the file gets it; a reload that removes the CRM stops its reader
// and later leads go to the file alone.
func TestKafkaQueueDeadLettersAndReload(t *testing.T) {
	c := startQueueBroker(t)
	broker := c.ListenAddrs()[0]
	crm := newCRM(t) // answers 400 to every request
	b := newBridge(t, kafkaQueueCRMConfig, "HC_KEY="+hcSecret, "KAFKA="+broker, "CRM_URL="+crm.URL)
	b.Start()
	// Each sink's pending gauge is there from the start, at 0, as with the
	// embedded queue.
	for _, sink := range []string{`sink="archive"`, `sink="crm"`} {
		if v, ok := metricSeries(t, b.Admin, "hookbridge_queue_pending", sink); !ok || v != 0 {
			t.Errorf("hookbridge_queue_pending{%s} = %v (exported: %v) before any event, want 0", sink, v, ok)
		}
	}
	send := func(n int) string {
		t.Helper()
		body := leadBody(n)
		resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
			map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("posting lead %d: %v %d %s", n, err, resp.Status, resp.Body)
		}
		return sha256Hex(body)
	}
	id := send(1)
	msgs := consumeTopic(t, broker, "bridge.ingress.deadletter", 20*time.Second, func(m []kafkago.Message) bool { return len(m) == 1 })
	h := map[string]string{}
	for _, hd := range msgs[0].Headers {
		h[hd.Key] = string(hd.Value)
	}
	if h["ce_id"] != id || h["ce_type"] != "com.helloclient.lead" || h["ce_deadlettersink"] != "crm" ||
		!strings.Contains(h["ce_deadletterreason"], "crm: rejected") || !strings.Contains(h["ce_deadletterreason"], "400 Bad Request") {
		t.Errorf("dead letter headers %v", h)
	}
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "the lead in the file", func() bool { return len(readLines(t, archive)) == 1 })
	// The provider retries it: each sink's reader drops and counts it.
	send(1)
	waitFor(t, 10*time.Second, "the retry counted as a duplicate by the file's reader", func() bool {
		return metricValue(t, b.Admin, "hookbridge_queue_duplicates_read_total", `sink="archive"`) == 1
	})
	if n := len(readLines(t, archive)); n != 1 {
		t.Errorf("%d lines in the file after the provider's retry, want 1", n)
	}
	// Both groups committed past both records: each sink's lag is measured
	// at 0, with when.
	waitFor(t, 20*time.Second, "each sink's consumer-group lag measured at 0", func() bool {
		for _, sink := range []string{`sink="archive"`, `sink="crm"`} {
			lag, ok := metricSeries(t, b.Admin, "hookbridge_queue_lag", sink)
			at, _ := metricSeries(t, b.Admin, "hookbridge_queue_lag_updated_timestamp_seconds", sink)
			if !ok || lag != 0 || at < float64(time.Now().Add(-time.Minute).Unix()) {
				return false
			}
		}
		return true
	})

	b.WriteConfig(kafkaQueueConfig)
	waitFor(t, 15*time.Second, "the reload", func() bool { return strings.Contains(b.Log(), "config reloaded") })
	if !strings.Contains(b.Log(), `msg="sink stopped reading the queue; its consumer group keeps its offsets" sink=crm group=bridge.crm`) {
		t.Error("the removed sink did not leave its consumer group")
	}
	send(2)
	waitFor(t, 10*time.Second, "the second lead in the file", func() bool { return len(readLines(t, archive)) == 2 })
	for _, name := range []string{"hookbridge_queue_lag", "hookbridge_queue_lag_updated_timestamp_seconds", "hookbridge_queue_pending"} {
		if _, ok := metricSeries(t, b.Admin, name, `sink="crm"`); ok {
			t.Errorf("%s of the removed sink crm still exported", name)
		}
		if _, ok := metricSeries(t, b.Admin, name, `sink="archive"`); !ok {
			t.Errorf("%s of archive no longer exported", name)
		}
	}
	if end := topicEnd(t, broker, "bridge.ingress.deadletter"); end != 1 {
		t.Errorf("dead-letter topic holds %d records after the reload, want 1", end)
	}
	if code := b.Stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestKafkaQueueGracefulRestart stops a replica with SIGTERM under load and
// starts it again: every acknowledged lead is delivered, and what it had
// delivered before stopping was committed on the way out, so at most the
// deliveries under way at the stop come again.
func TestKafkaQueueGracefulRestart(t *testing.T) {
	c := startQueueBroker(t)
	b := newBridge(t, kafkaQueueConfig, "HC_KEY="+hcSecret, "KAFKA="+c.ListenAddrs()[0])
	b.Start()
	count, stop := streamLeads(t, "http://"+b.Addr+"/webhooks/helloclient", hcSecret, 16, leadBody)
	waitFor(t, 30*time.Second, "2000 acknowledged leads", func() bool { return count() >= 2000 })
	if code := b.Stop(); code != 0 {
		t.Fatalf("exit code %d at SIGTERM", code)
	}
	acked := stop()
	b.Start()
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitDelivered(t, 30*time.Second, acked, archive)
	lines := readLines(t, archive)
	distinct := map[string]bool{}
	for _, ev := range lines {
		distinct[ev.ID] = true
	}
	twice := len(lines) - len(distinct)
	t.Logf("acknowledged %d; file: %d lines, %d distinct, %d twice", len(acked), len(lines), len(distinct), twice)
	if twice > 500 { // one batch of the file sink
		t.Errorf("%d leads delivered twice after a graceful stop: the stop did not commit what was delivered", twice)
	}
	if code := b.Stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// rollingConfig is kafkaQueueConfig with a CRM beside the file.
var rollingConfig = strings.Replace(strings.Replace(kafkaQueueConfig,
	"routes:\n", "  crm: {type: http, url: \"${CRM_URL}\", body: {id: \"{{ .ID }}\"}, concurrency: 4}\nroutes:\n", 1),
	"sinks: [archive]}", "sinks: [archive, crm]}", 1)

// TestKafkaQueueRollingDeployDeliversOnce restarts the replicas that
// deliver beside the one taking the webhooks, one after the other with
// SIGTERM, as a rolling deploy does, while leads keep coming: each
// stopping replica commits what it delivered, and the others hand their
// partitions back before the group moves them, so no lead reaches the
// file or the CRM twice and none is missing.
func TestKafkaQueueRollingDeployDeliversOnce(t *testing.T) {
	c := startQueueBroker(t)
	var (
		crmMu sync.Mutex
		crm   = map[string]int{}
	)
	crmSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		crmMu.Lock()
		crm[r.Header.Get("Idempotency-Key")]++
		crmMu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(crmSrv.Close)
	env := []string{"HC_KEY=" + hcSecret, "KAFKA=" + c.ListenAddrs()[0], "CRM_URL=" + crmSrv.URL}
	var replicas []*bridgeProc
	var files []string
	for range 3 {
		b := newBridge(t, rollingConfig, env...)
		b.Start()
		replicas = append(replicas, b)
		files = append(files, filepath.Join(b.Dir, "events.jsonl"))
	}
	count, stop := streamLeads(t, "http://"+replicas[0].Addr+"/webhooks/helloclient", hcSecret, 8, leadBody)
	waitFor(t, 30*time.Second, "1000 acknowledged leads", func() bool { return count() >= 1000 })
	for _, b := range replicas[1:] {
		if code := b.Stop(); code != 0 {
			t.Fatalf("exit code %d at SIGTERM", code)
		}
		at := count()
		waitFor(t, 30*time.Second, "500 more leads while a replica is down", func() bool { return count() >= at+500 })
		b.Start()
		at = count()
		waitFor(t, 30*time.Second, "1000 more leads after it is back", func() bool { return count() >= at+1000 })
	}
	acked := stop()
	waitDelivered(t, 60*time.Second, acked, files...)
	waitFor(t, 30*time.Second, "the CRM has every lead", func() bool {
		crmMu.Lock()
		defer crmMu.Unlock()
		for id := range acked {
			if crm[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a late copy would arrive now

	inFiles := map[string]int{}
	perReplica := make([]int, len(files))
	for i, f := range files {
		for _, ev := range readLines(t, f) {
			inFiles[ev.ID]++
			perReplica[i]++
		}
	}
	crmMu.Lock()
	defer crmMu.Unlock()
	twiceInFiles, twiceAtCRM := 0, 0
	for id, n := range inFiles {
		if n > 1 {
			twiceInFiles++
			if twiceInFiles <= 5 {
				t.Errorf("%s is in the files %d times", id, n)
			}
		}
		if !acked[id] {
			t.Errorf("%s delivered but never acknowledged", id)
		}
	}
	for id, n := range crm {
		if n > 1 {
			twiceAtCRM++
			if twiceAtCRM <= 5 {
				t.Errorf("%s reached the CRM %d times", id, n)
			}
		}
	}
	t.Logf("acknowledged %d; delivered to the files by replica %v; twice: %d in the files, %d at the CRM", len(acked), perReplica, twiceInFiles, twiceAtCRM)
	for i, b := range replicas {
		if code := b.Stop(); code != 0 {
			t.Errorf("replica %d: exit code %d", i, code)
		}
	}
}

// TestKafkaQueueReplayFromTheCommandLine: with a Kafka queue, leads the CRM
// refused are listed by the admin API from the dead-letter topic and
// replayed with bridge replay once the CRM is fixed: each reaches the CRM
// once, the file (which had them already) gets none again, and the list
// is empty after, on both replicas.
func TestKafkaQueueReplayFromTheCommandLine(t *testing.T) {
	c := startQueueBroker(t)
	crm := newCRM(t) // answers 400 until told to accept
	env := []string{"HC_KEY=" + hcSecret, "KAFKA=" + c.ListenAddrs()[0], "CRM_URL=" + crm.URL}
	a := newBridge(t, kafkaQueueCRMConfig, env...)
	b := newBridge(t, kafkaQueueCRMConfig, env...)
	a.Start()
	b.Start()
	var ids []string
	for i := range 6 {
		body := leadBody(100 + i)
		to := a
		if i%2 == 1 {
			to = b
		}
		resp, err := post(t, http.DefaultClient, "http://"+to.Addr+"/webhooks/helloclient", body,
			map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("posting lead %d: %v %d %s", i, err, resp.Status, resp.Body)
		}
		ids = append(ids, sha256Hex(body))
	}
	list := func(p *bridgeProc) []inspectDeadLetter {
		t.Helper()
		resp, err := http.Get("http://" + p.Admin + "/inspector/api/deadletters")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			DeadLetters []inspectDeadLetter `json:"dead_letters"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
			t.Fatalf("GET deadletters: %d", resp.StatusCode)
		}
		return got.DeadLetters
	}
	waitFor(t, 30*time.Second, "every lead dead-lettered by the CRM", func() bool { return len(list(a)) == len(ids) })
	for _, dl := range list(b) {
		if dl.Sink != "crm" || !strings.Contains(dl.Reason, "400 Bad Request") || dl.EventType != "com.helloclient.lead" {
			t.Errorf("dead letter %+v", dl)
		}
	}
	archives := []string{filepath.Join(a.Dir, "events.jsonl"), filepath.Join(b.Dir, "events.jsonl")}
	waitFor(t, 20*time.Second, "every lead in the files", func() bool {
		return len(readLines(t, archives[0]))+len(readLines(t, archives[1])) == len(ids)
	})

	crm.accept.Store(true)
	cmd := exec.Command(bridgeBin, "replay", "-c", a.Config)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bridge replay: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "replayed 6 dead letter(s)") {
		t.Fatalf("bridge replay:\n%s", out)
	}
	waitFor(t, 30*time.Second, "every lead at the CRM", func() bool {
		for _, id := range ids {
			if crm.received(id) != 1 {
				return false
			}
		}
		return true
	})
	for _, p := range []*bridgeProc{a, b} {
		if n := len(list(p)); n != 0 {
			t.Errorf("%d dead letters listed after the replay", n)
		}
	}
	time.Sleep(time.Second)
	if n := len(readLines(t, archives[0])) + len(readLines(t, archives[1])); n != len(ids) {
		t.Errorf("%d lines in the files after the replay, want %d: the replay went to the file too", n, len(ids))
	}
	for _, id := range ids {
		if n := crm.received(id); n != 1 {
			t.Errorf("lead %s reached the CRM %d times", id, n)
		}
	}
}

// inspectDeadLetter is what the admin API lists of a dead letter.
type inspectDeadLetter struct {
	Key       string `json:"key"`
	Sink      string `json:"sink"`
	Reason    string `json:"reason"`
	EventType string `json:"event_type"`
}
