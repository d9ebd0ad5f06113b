package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const inspectorToken = "e2e-admin-token"

const inspectorConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}", token: "${ADMIN_TOKEN}"}
queue: {path: "{{DIR}}/queue"}
log: {level: info}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
  crm: {type: http, url: "${CRM_URL}", retry: {max_attempts: 3, initial_backoff: 100ms, max_backoff: 1s}}
routes:
  - {name: leads, filters: [{exact: {type: com.helloclient.lead}}], sinks: [archive, crm]}
`

// chromiumPath finds a Chromium or Chrome binary.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// crmServer is a CRM endpoint that rejects events (400, which the http sink
// treats as permanent) until told to accept them.
type crmServer struct {
	*httptest.Server
	accept atomic.Bool
	mu     sync.Mutex
	got    map[string]int // event id -> deliveries accepted
}

func newCRM(t *testing.T) *crmServer {
	c := &crmServer{got: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !c.accept.Load() {
			http.Error(w, `{"error":"unknown field FirstName"}`, http.StatusBadRequest)
			return
		}
		var ev struct{ ID string }
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get("Idempotency-Key") {
			http.Error(w, "not a structured CloudEvent", http.StatusUnprocessableEntity)
			return
		}
		c.mu.Lock()
		c.got[ev.ID]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *crmServer) received(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id]
}

// TestInspectorInBrowser runs the bridge, sends leads that the CRM rejects,
// and in headless Chromium sees them in the inspector, replays one dead
// letter and sees it delivered.
func TestInspectorInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("Chromium not found: install Debian's chromium package (apt-get install -y chromium) to run the inspector browser test")
	}
	crm := newCRM(t)
	b := newBridge(t, inspectorConfig, "HC_KEY="+hcSecret, "ADMIN_TOKEN="+inspectorToken, "CRM_URL="+crm.URL)
	b.Start()
	admin := "http://" + b.Admin

	// The inspector is closed without the token.
	for _, path := range []string{"/inspector/", "/inspector/api/events", "/inspector/?token=wrong"} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
	}

	// A lead whose session id is markup (payloads are attacker-controlled),
	// a plain lead, and a signed body that is not JSON.
	const hostileSession = `<img src=x onerror="document.title='pwned'">`
	hostile := []byte(`{"Type":"lead","SerialNumber":"HC-8842","SessionID":` + jsonString(hostileSession) +
		`,"FirstName":"Mallory","LastName":"<b>Bold</b>","Email":"mallory@example.com","CreateTime":"2026-11-20T10:15:00Z"}`)
	plain := leadBody(42)
	notJSON := []byte("FirstName=Ada&LastName=Lovelace")
	for _, c := range []struct {
		body []byte
		want int
	}{{hostile, 200}, {plain, 200}, {notJSON, 400}} {
		resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", c.body,
			map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), c.body)})
		if err != nil || resp.Status != c.want {
			t.Fatalf("posting %.30s: %v %d %s, want %d", c.body, err, resp.Status, resp.Body, c.want)
		}
	}
	hostileID, plainID := sha256Hex(hostile), sha256Hex(plain)
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "both leads in the archive", func() bool { return len(readLines(t, archive)) == 2 })
	waitFor(t, 10*time.Second, "three dead letters", func() bool { return deadLetterCount(t, admin) == 3 })

	// The browser.
	ctx := startChromium(t, chromium)
	step := browserStep(t, ctx)
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return s
	}
	eventRow := func(id string) string { return `tr.event-row[data-id="` + id + `"]` }
	deadRow := func(id string) string { return `tr.dead-row[data-event-id="` + id + `"]` }
	badge := func(id, sink, status string) chromedp.CSS {
		return chromedp.CSS(eventRow(id) + ` .badge[data-sink="` + sink + `"][data-status="` + status + `"]`)
	}

	step("loading the inspector with ?token=", 10*time.Second,
		chromedp.Navigate(admin+"/inspector/?token="+inspectorToken),
		chromedp.WaitVisible(chromedp.CSS(eventRow(hostileID))),
		chromedp.WaitVisible(chromedp.CSS(eventRow(plainID))),
		chromedp.WaitVisible(badge(hostileID, "archive", "delivered")),
		chromedp.WaitVisible(badge(hostileID, "crm", "dead_lettered")),
		chromedp.WaitVisible(chromedp.CSS(deadRow(hostileID)+" button.replay")),
		chromedp.WaitVisible(chromedp.CSS(deadRow(plainID)+" button.replay")),
	)
	if loc := eval(`location.href`); strings.Contains(loc, inspectorToken) {
		t.Errorf("the token stays in the address bar: %s", loc)
	}
	// The hostile payload is shown as text, never run.
	if row := text(eventRow(hostileID)); !strings.Contains(row, "sessions/"+hostileSession) || !strings.Contains(row, "com.helloclient.lead") {
		t.Errorf("event row %q does not show the type and the subject as text", row)
	}
	if title, imgs := eval(`document.title`), eval(`String(document.images.length)`); title != "hookbridge inspector" || imgs != "0" {
		t.Fatalf("the payload's markup was interpreted: title %q, %s <img> elements", title, imgs)
	}
	if row := text(deadRow(hostileID)); !strings.Contains(row, "crm") || !strings.Contains(row, "400 Bad Request") || !strings.Contains(row, "helloclient") {
		t.Errorf("dead-letter row %q lacks the sink, the reason or the source", row)
	}
	if n := eval(`String(document.querySelectorAll('tr.dead-row:not([data-event-id])').length) + ' ' + String(document.querySelectorAll('tr.dead-row:not([data-event-id]) button.replay').length)`); n != "1 0" {
		t.Errorf("rejected request rows and their replay buttons: %q, want \"1 0\"", n)
	}
	if row := text(`tr.dead-row:not([data-event-id])`); !strings.Contains(row, "rejected request") || !strings.Contains(row, "helloclient") {
		t.Errorf("rejected request row %q", row)
	}

	// The CRM is fixed; replay the dead letter from the page.
	crm.accept.Store(true)
	step("replaying the dead letter", 5*time.Second, chromedp.Click(chromedp.CSS(deadRow(hostileID)+" button.replay")))
	waitFor(t, 10*time.Second, "the replayed event at the CRM", func() bool { return crm.received(hostileID) == 1 })
	step("seeing it delivered", 10*time.Second,
		chromedp.WaitVisible(badge(hostileID, "crm", "delivered")),
		chromedp.WaitNotPresent(chromedp.CSS(deadRow(hostileID))),
		chromedp.WaitVisible(chromedp.CSS(`#detail tr.attempt[data-sink="crm"][data-outcome="replayed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail tr.attempt[data-sink="crm"][data-outcome="delivered"]`)),
		chromedp.WaitVisible(chromedp.CSS(deadRow(plainID))),
	)
	detail := text(`#detail`)
	for _, want := range []string{`"id": "` + hostileID + `"`, `"type": "com.helloclient.lead"`, "dead lettered", "store", "replayed", "400"} {
		if !strings.Contains(detail, want) {
			t.Errorf("event detail lacks %q:\n%s", want, detail)
		}
	}
	if n := deadLetterCount(t, admin); n != 2 {
		t.Errorf("%d dead letters after the replay, want 2", n)
	}
	if crm.received(plainID) != 0 {
		t.Error("the other dead letter was delivered without a replay")
	}

	// The rejected body is discarded from the page: a first click only asks.
	rejected := `tr.dead-row:not([data-event-id])`
	step("asking to discard the rejected body", 5*time.Second,
		chromedp.Click(chromedp.CSS(rejected+" button.discard")),
		chromedp.WaitVisible(chromedp.CSS(rejected+" button.discard.danger")))
	if n := deadLetterCount(t, admin); n != 2 {
		t.Fatalf("%d dead letters after one click on Discard, want 2", n)
	}
	step("discarding it", 10*time.Second,
		chromedp.Click(chromedp.CSS(rejected+" button.discard.danger")),
		chromedp.WaitNotPresent(chromedp.CSS(rejected)),
		chromedp.WaitVisible(chromedp.CSS(deadRow(plainID))))
	if n := deadLetterCount(t, admin); n != 1 {
		t.Errorf("%d dead letters after the discard, want 1", n)
	}

	// Show the other dead letter's event, as a user would look at it: the
	// page fetches it, as the list it polls leaves bodies out.
	step("opening a dead letter", 5*time.Second, chromedp.Click(chromedp.CSS(deadRow(plainID)+" button.show")),
		chromedp.WaitVisible(chromedp.CSS(`tr.dead-detail pre`)))
	if shown := text(`tr.dead-detail pre`); !strings.Contains(shown, plainID) {
		t.Errorf("the dead letter shown is not the event %s:\n%s", plainID, shown)
	}
	if path := os.Getenv("HOOKBRIDGE_SCREENSHOT"); path != "" {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// deadLetterCount asks the inspector API, with the token, how many dead letters there are.
func deadLetterCount(t *testing.T, admin string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, admin+"/inspector/api/deadletters", nil)
	req.Header.Set("Authorization", "Bearer "+inspectorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET deadletters: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(fmt.Errorf("GET deadletters: %w", err))
	}
	return list.Total
}

// startChromium starts headless Chromium for the test; it stops when the
// test ends.
func startChromium(t *testing.T, chromium string) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline on its lifetime
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// inspectorSinksConfig has a CRM behind a circuit breaker that opens after
// a few failures and probes every 2 s, and an archive without one.
const inspectorSinksConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}", token: "${ADMIN_TOKEN}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HELLOCLIENT_SIGNING_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl", circuit_breaker: off}
  crm:
    type: http
    url: "${CRM_URL}"
    body: {email: "{{ .Data.Email }}"}
    retry: {max_attempts: 3, initial_backoff: 100ms, max_backoff: 200ms}
    circuit_breaker: {failures: 3, cooldown: 2s, max_cooldown: 2s}
routes:
  - {name: leads, sinks: [archive, crm]}
`

// TestInspectorSinksPanelInBrowser runs the bridge with a CRM that answers
// 503, and in headless Chromium sees the Sinks panel list the config's
// sinks, the CRM's circuit open and marked, its leads pending; then, once
// the CRM is back, closed with nothing pending.
func TestInspectorSinksPanelInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("Chromium not found: install Debian's chromium package (apt-get install -y chromium) to run the inspector browser test")
	}
	var down atomic.Bool
	down.Store(true)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer crm.Close()
	b := newBridge(t, inspectorSinksConfig, "HELLOCLIENT_SIGNING_KEY="+exampleHelloClientKey,
		"ADMIN_TOKEN="+inspectorToken, "CRM_URL="+crm.URL+"/api/leads")
	b.Start()
	admin := "http://" + b.Admin

	const leads = 4
	for i := range leads {
		sendLead(t, b, newLead(fmt.Sprintf("5a0c2d1e-0000-4000-8000-%012d", i)).body(t))
	}
	waitFor(t, 10*time.Second, "every lead in the archive", func() bool {
		return len(readLines(t, filepath.Join(b.Dir, "events.jsonl"))) == leads
	})

	ctx := startChromium(t, chromium)
	step := browserStep(t, ctx)
	eval := func(expr string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return s
	}
	sinkRow := func(name, circuit string) string {
		return `#sinks tr.sink-row[data-sink="` + name + `"][data-circuit="` + circuit + `"]`
	}
	cells := func(name string) string {
		return eval(`Array.from(document.querySelectorAll('#sinks tr.sink-row[data-sink="` + name + `"] td')).map((td) => td.textContent).join('|')`)
	}

	step("seeing the CRM's circuit open", 20*time.Second,
		chromedp.Navigate(admin+"/inspector/?token="+inspectorToken),
		chromedp.WaitVisible(chromedp.CSS(sinkRow("archive", "off"))),
		chromedp.WaitVisible(chromedp.CSS(sinkRow("crm", "open"))),
	)
	if names := eval(`Array.from(document.querySelectorAll('#sinks tr.sink-row')).map((tr) => tr.dataset.sink).join(',')`); names != "archive,crm" {
		t.Errorf("the Sinks panel lists %q, want archive,crm", names)
	}
	// Sink, type, circuit, pending, oldest's age, lag (none: an embedded
	// queue), delivered, failed attempts, dead-lettered.
	if row, want := cells("archive"), fmt.Sprintf("archive|file|off|0|—|—|%d|0|0", leads); row != want {
		t.Errorf("archive row %q, want %q", row, want)
	}
	// The CRM holds every lead, the oldest for some seconds already, after
	// the failures that opened its circuit; none is dead-lettered.
	row := strings.Split(cells("crm"), "|")
	failed := -1
	if len(row) == 9 {
		failed, _ = strconv.Atoi(row[7])
	}
	if len(row) != 9 || strings.Join(row[:4], "|") != fmt.Sprintf("crm|http|open|%d", leads) ||
		!strings.HasSuffix(row[4], " s") || row[5] != "—" || row[6] != "0" || failed < 3 || row[8] != "0" {
		t.Errorf("crm row %q, want crm, http, open, %d pending, the oldest's age, no lag, none delivered, 3 or more failed attempts, none dead-lettered", row, leads)
	}
	// An open circuit stands out from the others.
	bg := func(sel string) string {
		return eval(`getComputedStyle(document.querySelector('` + sel + `')).backgroundColor`)
	}
	if open, off := bg(sinkRow("crm", "open")+" td"), bg(sinkRow("archive", "off")+" td"); open == off {
		t.Errorf("the open circuit's row has the same background as the others (%s)", open)
	}
	if got := eval(`document.querySelector('#sinks-count').textContent`); got != "(2, 1 held)" {
		t.Errorf("the panel's count says %q, want (2, 1 held)", got)
	}

	down.Store(false)
	step("seeing the CRM's circuit closed and its leads delivered", 20*time.Second,
		chromedp.WaitVisible(chromedp.CSS(sinkRow("crm", "closed"))))
	waitFor(t, 10*time.Second, "the CRM row with nothing pending", func() bool {
		return strings.HasPrefix(cells("crm"), fmt.Sprintf("crm|http|closed|0|—|—|%d|", leads))
	})
}

// browserStep returns a function that runs actions in the browser of ctx
// within timeout, and fails the test, naming what, if they do not end.
func browserStep(t *testing.T, ctx context.Context) func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	return func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}
