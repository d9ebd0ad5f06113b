package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The tests in this file run the binary on the repository's example
// configuration itself, ../config.example.yaml, turning its sinks on with the
// variables the file documents, against real protocol peers: an in-process
// Kafka cluster (kfake) over TCP, an HTTP server that answers as Slack's
// incoming webhooks do, and an HTTP CRM.

const (
	exampleHelloClientKey = "e2e-example-helloclient-signing-key"
	exampleCRMToken       = "e2e-crm-token"
	exampleTopic          = "webhooks.helloclient"
)

// exampleBridge prepares the bridge on config.example.yaml with its listen
// addresses and data directory from the environment, every source's secret
// set, and the Kafka, Slack and CRM sinks off unless env turns them on.
func exampleBridge(t *testing.T, env ...string) *bridgeProc {
	t.Helper()
	config, err := filepath.Abs("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	b := &bridgeProc{t: t, Addr: ports[0], Admin: ports[1], Dir: t.TempDir(), Config: config}
	b.env = append([]string{
		"BRIDGE_LISTEN=" + b.Addr,
		"BRIDGE_ADMIN_LISTEN=" + b.Admin,
		"BRIDGE_DATA=" + b.Dir,
		"HELLOCLIENT_SIGNING_KEY=" + exampleHelloClientKey,
		"HELPCRUNCH_SIGNING_KEY=e2e-helpcrunch",
		"CRISP_HOOK_KEY=e2e-crisp-key",
		"CRISP_SIGNING_SECRET=e2e-crisp-secret",
		"SOCIALBOARDS_VERIFY_TOKEN=e2e-socialboards-token",
		"SOCIALBOARDS_KEY=e2e-socialboards-key",
		"USERECHO_KEY=e2e-userecho",
		"HMAC_SECRET=e2e-hmac",
		"STANDARDWEBHOOKS_SECRET=whsec_ZTJlLXN0YW5kYXJkLXdlYmhvb2tz",
		"GITHUB_WEBHOOK_SECRET=e2e-github",
		"SLACK_SIGNING_SECRET=e2e-slack",
		"META_VERIFY_TOKEN=e2e-meta-token",
		"META_APP_SECRET=e2e-meta",
		"STRIPE_WEBHOOK_SECRET=whsec_e2estripe",
		"KAFKA_ENABLED=false",
		"SLACK_ENABLED=false",
		"CRM_ENABLED=false",
	}, env...) // later entries win
	return b
}

// lead is a Hello Client lead as the provider posts it. The name and the
// message hold characters that JSON and Slack's mrkdwn must carry intact.
type lead struct {
	Type         string
	SerialNumber string
	ChatbotName  string
	SessionID    string
	FirstName    string
	LastName     string
	Email        string
	Phone        string
	Message      string
	CreateTime   string
}

func newLead(session string) lead {
	return lead{
		Type:         "lead",
		SerialNumber: "HC-8842",
		ChatbotName:  "Acme Sales Assistant",
		SessionID:    session,
		FirstName:    "Zoë",
		LastName:     "O'Hara",
		Email:        "zoe.ohara@example.com",
		Phone:        "+44 20 7946 0958",
		Message:      "Do you ship to \"Zürich\"?\nA quote for 40 units, please.",
		CreateTime:   "2026-11-20T10:15:00Z",
	}
}

func (l lead) body(t *testing.T) []byte {
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendLead posts body signed as Hello Client signs it, expects the
// provider's success answer, and returns the event id the bridge gives it.
func sendLead(t *testing.T, b *bridgeProc, body []byte) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	resp, err := post(t, client, "http://"+b.Addr+"/webhooks/helloclient", body,
		map[string]string{"X-Webhook-Signature": helloclientSign(exampleHelloClientKey, time.Now().Unix(), body)})
	if err != nil {
		t.Fatalf("posting a lead: %v", err)
	}
	if resp.Status != http.StatusOK || resp.Body != `{"status":"success"}` {
		t.Fatalf("lead answered %d %q, want 200 {\"status\":\"success\"}", resp.Status, resp.Body)
	}
	// Crisp, the strictest provider, gives up after 2 s: whatever the
	// sinks are doing, the answer must come sooner.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the bridge took %s to acknowledge a lead", took)
	}
	return sha256Hex(body)
}

// --- Slack ------------------------------------------------------------------

// slackRequest is one POST a Slack incoming webhook received.
type slackRequest struct {
	At     time.Time
	Status int
	Body   []byte
}

// slackWebhook answers as https://hooks.slack.com/services/... does: a JSON
// message in, "ok" out. fail says whether to answer a request with a 500
// instead, given how long ago the first request came.
type slackWebhook struct {
	*httptest.Server
	fail func(sinceFirst time.Duration) bool
	// paced, when set, accepts a message a second, with bursts of two,
	// and answers the others 429 with Retry-After: 1, as Slack rate-limits
	// a webhook ("1 per second, short bursts allowed").
	paced bool

	mu       sync.Mutex
	first    time.Time
	tokens   float64 // of the pace's bucket
	refilled time.Time
	requests []slackRequest
}

func newSlackWebhook(t *testing.T, fail func(sinceFirst time.Duration) bool) *slackWebhook {
	s := &slackWebhook{fail: fail}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		s.mu.Lock()
		if s.first.IsZero() {
			s.first = now
		}
		status := http.StatusOK
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/services/T0001/B0001/e2eXXXXXXXXXXXXXXXX":
			status = http.StatusNotFound
		case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || !json.Valid(body):
			status = http.StatusBadRequest
		case s.fail != nil && s.fail(now.Sub(s.first)):
			status = http.StatusInternalServerError
		case s.paced && !s.take(now):
			status = http.StatusTooManyRequests
		}
		s.requests = append(s.requests, slackRequest{At: now, Status: status, Body: body})
		s.mu.Unlock()
		switch status {
		case http.StatusOK:
			io.WriteString(w, "ok")
		case http.StatusNotFound:
			http.Error(w, "no_service", status)
		case http.StatusBadRequest:
			http.Error(w, "invalid_payload", status)
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", status)
		default:
			http.Error(w, "internal_error", status)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// take spends a token of the pace's bucket (two, refilled at one a
// second), if there is one. Called with s.mu held.
func (s *slackWebhook) take(now time.Time) bool {
	if s.refilled.IsZero() {
		s.tokens = 2
	} else {
		s.tokens = min(2, s.tokens+now.Sub(s.refilled).Seconds())
	}
	s.refilled = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func (s *slackWebhook) hookURL() string { return s.URL + "/services/T0001/B0001/e2eXXXXXXXXXXXXXXXX" }

func (s *slackWebhook) received() []slackRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]slackRequest(nil), s.requests...)
}

func (s *slackWebhook) accepted() []slackRequest {
	var out []slackRequest
	for _, r := range s.received() {
		if r.Status == http.StatusOK {
			out = append(out, r)
		}
	}
	return out
}

// slackMessage is the part of Slack's message payload the alert uses.
type slackMessage struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type   string      `json:"type"`
		Text   *slackText  `json:"text"`
		Fields []slackText `json:"fields"`
		// Elements of a context block.
		Elements []slackText `json:"elements"`
	} `json:"blocks"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// checkLeadAlert checks the message Slack received for l, block by block as
// the example config lays it out.
func checkLeadAlert(t *testing.T, body []byte, l lead) {
	t.Helper()
	var msg slackMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("Slack message is not JSON: %v\n%s", err, body)
	}
	name := l.FirstName + " " + l.LastName
	if want := "New lead: " + name + " (" + l.Email + ")"; msg.Text != want {
		t.Errorf("Slack text %q, want %q", msg.Text, want)
	}
	var got []string
	for _, b := range msg.Blocks {
		line := b.Type
		if b.Text != nil {
			line += " " + b.Text.Type + ":" + b.Text.Text
		}
		for _, f := range append(b.Fields, b.Elements...) {
			line += " | " + f.Type + ":" + f.Text
		}
		got = append(got, line)
	}
	want := []string{
		"header plain_text:New lead",
		"section | mrkdwn:*Name*\n" + name + " | mrkdwn:*Email*\n" + l.Email +
			" | mrkdwn:*Phone*\n" + l.Phone + " | mrkdwn:*Chatbot*\n" + l.ChatbotName,
		"section mrkdwn:*What they wrote*\n" + l.Message,
		"context | mrkdwn:Hello Client · sessions/" + l.SessionID + " · 2026-11-20 10:15 UTC",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Slack blocks\n got %q\nwant %q\nmessage: %s", got, want, body)
	}
}

// --- CRM --------------------------------------------------------------------

// crmRequest is one request the CRM endpoint received.
type crmRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// crmEndpoint is a CRM's lead-creation API answering every request with
// status and body.
type crmEndpoint struct {
	*httptest.Server
	mu       sync.Mutex
	requests []crmRequest
}

func newCRMEndpoint(t *testing.T, status int, answer string) *crmEndpoint {
	c := &crmEndpoint{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.requests = append(c.requests, crmRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *crmEndpoint) received() []crmRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]crmRequest(nil), c.requests...)
}

// --- Kafka ------------------------------------------------------------------

// startKafka starts a one-broker kfake cluster on 127.0.0.1, on port if it
// is not 0, that creates a topic of one partition when a producer asks for
// one.
func startKafka(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1), kfake.AllowAutoTopicCreation()}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// consumeTopic reads messages from partition 0 of topic, from the start,
// until done says it has enough or timeout passes.
func consumeTopic(t *testing.T, broker, topic string, timeout time.Duration, done func([]kafkago.Message) bool) []kafkago.Message {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   []string{broker},
		Topic:     topic,
		Partition: 0,
		MaxWait:   50 * time.Millisecond,
		MaxBytes:  10 << 20,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []kafkago.Message
	for !done(out) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s from %s: %d messages so far: %v", topic, broker, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

// topicEnd is the offset after the last message of partition 0 of topic:
// how many messages it holds.
func topicEnd(t *testing.T, broker, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", broker, topic, 0)
	if err != nil {
		t.Fatalf("dialing the leader of %s: %v", topic, err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatalf("reading the end of %s: %v", topic, err)
	}
	return end
}

func headerMap(t *testing.T, m kafkago.Message) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range m.Headers {
		if _, dup := out[h.Key]; dup {
			t.Errorf("header %s repeated", h.Key)
		}
		out[h.Key] = string(h.Value)
	}
	return out
}

// --- the file sink ------------------------------------------------------------

// archiveLines reads every line of a file sink as JSON objects.
func archiveLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("archive line is not JSON: %v\n%s", err, sc.Bytes())
		}
		out = append(out, line)
	}
	return out
}

// quiet is how long a test keeps watching after the expected deliveries,
// to catch a duplicate.
const quiet = 3 * time.Second

// TestExampleRoutesDeliverToAllFourSinks runs config.example.yaml with all
// its sinks on: one signed lead becomes one Kafka message in the CloudEvents
// binary mode, one Slack alert, one CRM request and one archived line.
func TestExampleRoutesDeliverToAllFourSinks(t *testing.T) {
	t.Parallel()
	kafka := startKafka(t, 0)
	broker := kafka.ListenAddrs()[0]
	slack := newSlackWebhook(t, nil)
	crm := newCRMEndpoint(t, http.StatusCreated, `{"id":"lead_1"}`)
	b := exampleBridge(t,
		"KAFKA_ENABLED=true", "KAFKA_BROKERS="+broker,
		"SLACK_ENABLED=true", "SLACK_WEBHOOK_URL="+slack.hookURL(),
		"CRM_ENABLED=true", "CRM_URL="+crm.URL+"/api/leads", "CRM_TOKEN="+exampleCRMToken,
	)
	b.Start()

	l := newLead("7d3c1b2a-0e9f-4a51-b6c8-31f2d4e5a601")
	body := l.body(t)
	id := sendLead(t, b, body)
	archive := filepath.Join(b.Dir, "events.jsonl")

	waitFor(t, 20*time.Second, "the Slack alert, the CRM request and the archived line", func() bool {
		return len(slack.received()) >= 1 && len(crm.received()) >= 1 && len(readLines(t, archive)) >= 1
	})
	msgs := consumeTopic(t, broker, exampleTopic, 20*time.Second, func(m []kafkago.Message) bool { return len(m) >= 1 })
	time.Sleep(quiet)

	// Kafka: binary content mode, every attribute a ce_ header.
	if n := topicEnd(t, broker, exampleTopic); n != 1 {
		t.Errorf("%s holds %d messages, want 1", exampleTopic, n)
	}
	m := msgs[0]
	wantHeaders := map[string]string{
		"ce_specversion":  "1.0",
		"ce_id":           id,
		"ce_type":         "com.helloclient.lead",
		"ce_source":       "https://helloclient.com/chatbots/HC-8842",
		"ce_subject":      "sessions/" + l.SessionID,
		"ce_time":         "2026-11-20T10:15:00Z",
		"ce_bridgesource": "helloclient",
		"content-type":    "application/json",
	}
	if got := headerMap(t, m); !reflect.DeepEqual(got, wantHeaders) {
		t.Errorf("Kafka headers\n got %v\nwant %v", got, wantHeaders)
	}
	if string(m.Value) != string(body) {
		t.Errorf("Kafka value\n got %s\nwant the payload %s", m.Value, body)
	}
	if want := "sessions/" + l.SessionID; string(m.Key) != want {
		t.Errorf("Kafka key %q, want the subject %q", m.Key, want)
	}

	// Slack: one alert, accepted.
	if reqs := slack.received(); len(reqs) != 1 || reqs[0].Status != http.StatusOK {
		t.Errorf("Slack got %d requests (%v), want 1 accepted", len(reqs), reqs)
	} else {
		checkLeadAlert(t, reqs[0].Body, l)
	}

	// CRM: one request with the mapped body, the idempotency key and the token.
	if reqs := crm.received(); len(reqs) != 1 {
		t.Errorf("CRM got %d requests, want 1", len(reqs))
	} else {
		r := reqs[0]
		if r.Method != http.MethodPost || r.Path != "/api/leads" {
			t.Errorf("CRM request %s %s, want POST /api/leads", r.Method, r.Path)
		}
		for name, want := range map[string]string{
			"Content-Type":    "application/json",
			"Idempotency-Key": id,
			"Authorization":   "Bearer " + exampleCRMToken,
		} {
			if got := r.Header.Get(name); got != want {
				t.Errorf("CRM header %s: %q, want %q", name, got, want)
			}
		}
		var got map[string]any
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Errorf("CRM body is not JSON: %v\n%s", err, r.Body)
		}
		want := map[string]any{
			"email": l.Email, "first_name": l.FirstName, "last_name": l.LastName,
			"phone": l.Phone, "source": "hookbridge/helloclient",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("CRM body\n got %v\nwant %v", got, want)
		}
	}

	// File: one line, the event in the structured JSON format.
	if lines := readLines(t, archive); len(lines) != 1 {
		t.Errorf("archive holds %d lines, want 1", len(lines))
	} else if ev := lines[0]; ev.ID != id || ev.Type != "com.helloclient.lead" || ev.BridgeSource != "helloclient" || string(ev.Data) != string(body) {
		t.Errorf("archived event %+v, want id %s with the payload as data", ev, id)
	}

	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestSlackOutageThenRecovery has Slack answer 500 for 30 s: the example
// config's retry policy and the default circuit breaker carry the alert
// past the outage, and it arrives exactly once, after recovery.
func TestSlackOutageThenRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s outage; skipped with -short")
	}
	t.Parallel()
	const outage = 30 * time.Second
	slack := newSlackWebhook(t, func(sinceFirst time.Duration) bool { return sinceFirst < outage })
	b := exampleBridge(t, "SLACK_ENABLED=true", "SLACK_WEBHOOK_URL="+slack.hookURL())
	b.Start()

	l := newLead("0b6f4e8d-2c1a-4f3e-9d7b-5a8c6e4f2d10")
	id := sendLead(t, b, l.body(t))
	// Retries wait 0.5-1 s, 1-2 s, 2-4 s, 4-8 s (initial 1s, doubled,
	// jittered down to half): the 5th attempt fails 7.5-15 s after the
	// first and opens the sink's circuit breaker (5 failures in a row) for
	// 30 s; its probe, 37.5-45 s after the first, is past the outage.
	waitFor(t, 90*time.Second, "the alert to be accepted", func() bool { return len(slack.accepted()) >= 1 })
	time.Sleep(quiet)

	reqs := slack.received()
	var failed int
	var times []string
	for _, r := range reqs {
		times = append(times, fmt.Sprintf("%.1fs:%d", r.At.Sub(reqs[0].At).Seconds(), r.Status))
		if r.Status == http.StatusInternalServerError {
			failed++
		}
	}
	t.Logf("Slack requests (time since the first: status): %s", strings.Join(times, " "))
	ok := slack.accepted()
	if len(ok) != 1 {
		t.Fatalf("Slack accepted %d alerts, want exactly 1", len(ok))
	}
	if at := ok[0].At.Sub(reqs[0].At); at < outage {
		t.Fatalf("the alert was accepted %s after the first attempt, inside the %s outage", at, outage)
	}
	if failed < 2 {
		t.Fatalf("%d attempts failed during the outage, want the bridge to have retried", failed)
	}
	for _, r := range reqs {
		if string(r.Body) != string(reqs[0].Body) {
			t.Fatalf("a retry sent a different message:\n%s\nthen\n%s", reqs[0].Body, r.Body)
		}
	}
	checkLeadAlert(t, ok[0].Body, l)
	if got := metricValue(t, b.Admin, "hookbridge_delivery_retries_total", `sink="slack-sales"`); got != float64(failed) {
		t.Errorf("hookbridge_delivery_retries_total{sink=slack-sales} = %v, want %d", got, failed)
	}

	// Nothing was dead-lettered: the archive holds the event once, from the
	// everything route.
	lines := archiveLines(t, filepath.Join(b.Dir, "events.jsonl"))
	if len(lines) != 1 || lines[0]["id"] != id || lines[0]["deadlettersink"] != nil {
		t.Fatalf("archive %v, want the event once and no dead letter", lines)
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestSlackBurstIsPacedNotRefused: a burst of leads meets a Slack webhook
// that takes one message a second. The Slack sink's default rate_limit
// (1/s) sends the alerts at that pace: Slack refuses none, so none spends
// an attempt, and every alert arrives once.
func TestSlackBurstIsPacedNotRefused(t *testing.T) {
	t.Parallel()
	slack := newSlackWebhook(t, nil)
	slack.paced = true
	b := exampleBridge(t, "SLACK_ENABLED=true", "SLACK_WEBHOOK_URL="+slack.hookURL())
	b.Start()

	const burst = 6
	for i := range burst {
		sendLead(t, b, newLead(fmt.Sprintf("5f0c1a2b-0000-4000-8000-%012d", i)).body(t))
	}
	waitFor(t, 30*time.Second, "every alert accepted", func() bool { return len(slack.accepted()) >= burst })
	time.Sleep(quiet)
	reqs := slack.received()
	var refused int
	for _, r := range reqs {
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	ok := slack.accepted()
	if refused != 0 || len(ok) != burst {
		t.Fatalf("Slack refused %d requests and accepted %d alerts; want 0 and %d", refused, len(ok), burst)
	}
	seen := map[string]bool{}
	for _, r := range ok {
		if seen[string(r.Body)] {
			t.Fatalf("an alert arrived twice:\n%s", r.Body)
		}
		seen[string(r.Body)] = true
	}
	if got := metricValue(t, b.Admin, "hookbridge_delivery_retries_total", `sink="slack-sales"`); got != 0 {
		t.Errorf("hookbridge_delivery_retries_total{sink=slack-sales} = %v, want 0", got)
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestKafkaBrokerDownAndBack stops the Kafka broker while leads keep coming,
// then starts a new one on the same port: every lead the bridge acknowledged
// reaches Kafka. kfake keeps its log in memory, so the messages are counted
// across both brokers.
func TestKafkaBrokerDownAndBack(t *testing.T) {
	t.Parallel()
	first := startKafka(t, 0)
	broker := first.ListenAddrs()[0]
	_, portText, _ := net.SplitHostPort(broker)
	port, _ := strconv.Atoi(portText)
	b := exampleBridge(t, "KAFKA_ENABLED=true", "KAFKA_BROKERS="+broker)
	b.Start()

	const perPhase = 25
	send := func(phase string) map[string]bool {
		ids := map[string]bool{}
		for i := 0; i < perPhase; i++ {
			ids[sendLead(t, b, newLead(fmt.Sprintf("%s-%02d", phase, i)).body(t))] = true
		}
		return ids
	}
	idsOf := func(msgs []kafkago.Message) map[string]bool {
		ids := map[string]bool{}
		for _, m := range msgs {
			ids[headerMap(t, m)["ce_id"]] = true
		}
		return ids
	}
	missing := func(want, got map[string]bool) []string {
		var out []string
		for id := range want {
			if !got[id] {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}

	before := send("up")
	fromFirst := idsOf(consumeTopic(t, broker, exampleTopic, 20*time.Second, func(m []kafkago.Message) bool {
		return len(missing(before, idsOf(m))) == 0
	}))
	first.Close()

	during := send("down") // acknowledged while no broker listens
	// Restart only once a delivery has failed and been put back for a
	// retry: the events wait in the bridge's queue, not in a client buffer.
	waitFor(t, 30*time.Second, "a failed Kafka delivery to be scheduled again", func() bool {
		return metricValue(t, b.Admin, "hookbridge_delivery_retries_total", `sink="kafka-events"`) >= 1
	})
	restarted := time.Now()
	second := startKafka(t, port)
	if got := second.ListenAddrs()[0]; got != broker {
		t.Fatalf("the new broker listens on %s, want %s", got, broker)
	}
	fromSecond := idsOf(consumeTopic(t, broker, exampleTopic, 60*time.Second, func(m []kafkago.Message) bool {
		return len(missing(during, idsOf(m))) == 0
	}))
	t.Logf("all %d leads acknowledged while the broker was down reached the new broker %.1fs after it started",
		len(during), time.Since(restarted).Seconds())

	arrived := map[string]bool{}
	for id := range fromFirst {
		arrived[id] = true
	}
	for id := range fromSecond {
		arrived[id] = true
	}
	acked := map[string]bool{}
	for id := range before {
		acked[id] = true
	}
	for id := range during {
		acked[id] = true
	}
	if m := missing(acked, arrived); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged events never reached Kafka: %v", len(m), len(acked), m)
	}
	// None went to the dead-letter sink instead.
	for _, line := range archiveLines(t, filepath.Join(b.Dir, "events.jsonl")) {
		if line["deadlettersink"] != nil {
			t.Fatalf("event %v was dead-lettered: %v", line["id"], line["deadletterreason"])
		}
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestCRMRejectsGoesToDeadLetterWithReason has the CRM refuse the lead with a
// 400: the request is not retried, and the event goes to the example's
// dead-letter sink, the archive, with the CRM's answer as the reason.
func TestCRMRejectsGoesToDeadLetterWithReason(t *testing.T) {
	t.Parallel()
	const refusal = `{"error":"email invalid"}`
	crm := newCRMEndpoint(t, http.StatusBadRequest, refusal)
	b := exampleBridge(t, "CRM_ENABLED=true", "CRM_URL="+crm.URL+"/api/leads", "CRM_TOKEN="+exampleCRMToken)
	b.Start()

	l := newLead("5e2d8c4b-7a1f-4b3e-8c6d-9f0a1b2c3d4e")
	l.Email = "not-an-email"
	body := l.body(t)
	id := sendLead(t, b, body)
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 20*time.Second, "the event and its dead letter in the archive", func() bool { return len(archiveLines(t, archive)) >= 2 })
	time.Sleep(quiet)

	if n := len(crm.received()); n != 1 {
		t.Errorf("the CRM was called %d times, want once: a 400 is not retried", n)
	}
	lines := archiveLines(t, archive)
	if len(lines) != 2 {
		t.Fatalf("archive holds %d lines, want 2 (the everything route and the dead letter): %v", len(lines), lines)
	}
	var routed, dead map[string]any
	for _, line := range lines {
		if line["id"] != id {
			t.Fatalf("archived event %v, want id %s", line["id"], id)
		}
		if line["deadlettersink"] == nil {
			routed = line
		} else {
			dead = line
		}
	}
	if routed == nil || dead == nil {
		t.Fatalf("want one routed copy and one dead letter, got %v", lines)
	}
	if dead["deadlettersink"] != "crm" {
		t.Errorf("deadlettersink %v, want crm", dead["deadlettersink"])
	}
	reason, _ := dead["deadletterreason"].(string)
	if !strings.Contains(reason, "400 Bad Request") || !strings.Contains(reason, "email invalid") {
		t.Errorf("deadletterreason %q does not give the CRM's status and answer", reason)
	}
	// And as Knative's dispatchers tell a dead-letter sink.
	answer, _ := base64.StdEncoding.DecodeString(fmt.Sprint(dead["knativeerrordata"]))
	if dead["knativeerrordest"] != "crm" || dead["knativeerrorcode"] != "400" || string(answer) != refusal {
		t.Errorf("knativeerrordest %v, knativeerrorcode %v, knativeerrordata %v (%q): want crm, 400 and the CRM's answer",
			dead["knativeerrordest"], dead["knativeerrorcode"], dead["knativeerrordata"], answer)
	}
	// The dead letter is the same event: attributes and data.
	for _, k := range []string{"type", "source", "subject", "time", "bridgesource", "datacontenttype"} {
		if dead[k] != routed[k] {
			t.Errorf("dead letter %s = %v, the routed event's is %v", k, dead[k], routed[k])
		}
	}
	if !reflect.DeepEqual(dead["data"], routed["data"]) {
		t.Errorf("dead letter data %v, want %v", dead["data"], routed["data"])
	}
	t.Logf("dead letter reason: %s", reason)
	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"hookbridge_dead_letters_total", []string{`sink="crm"`}, 1},
		{"hookbridge_delivery_retries_total", []string{`sink="crm"`}, 0},
		{"hookbridge_deliveries_total", []string{`sink="archive"`, `outcome="delivered"`}, 2},
	} {
		if got := metricValue(t, b.Admin, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestKillNineWhileDeliveringToKafka kills the bridge with SIGKILL while
// leads stream in and the Kafka sink has batches with the producer,
// unanswered (the broker answers each produce request 50 ms late), restarts
// it on the same data, and finds every acknowledged lead on the topic. Only
// events with the producer at the kill may arrive twice, identical.
func TestKillNineWhileDeliveringToKafka(t *testing.T) {
	t.Parallel()
	c := startKafka(t, 0)
	var slow atomic.Bool
	slow.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if slow.Load() {
			c.SleepControl(func() { time.Sleep(50 * time.Millisecond) })
		}
		return nil, nil, false
	})
	broker := c.ListenAddrs()[0]
	b := exampleBridge(t, "KAFKA_ENABLED=true", "KAFKA_BROKERS="+broker)
	b.Start()

	count, stop := streamLeads(t, "http://"+b.Addr+"/webhooks/helloclient", exampleHelloClientKey, 8,
		func(n int) []byte { return newLead(fmt.Sprintf("kill-%05d", n)).body(t) })
	waitFor(t, 30*time.Second, "leads on the topic while more stream in", func() bool {
		return count() >= 1500 && topicEnd(t, broker, exampleTopic) >= 200
	})
	b.Kill()
	acked := stop()
	onTopic := topicEnd(t, broker, exampleTopic)
	t.Logf("acknowledged %d leads, %d on the topic at the SIGKILL", len(acked), onTopic)

	b.Start()
	missing := func(msgs []kafkago.Message) int {
		seen := map[string]bool{}
		for _, m := range msgs {
			seen[headerMap(t, m)["ce_id"]] = true
		}
		n := 0
		for id := range acked {
			if !seen[id] {
				n++
			}
		}
		return n
	}
	waitFor(t, 60*time.Second, "the restarted bridge to deliver its backlog to Kafka", func() bool {
		return metricValue(t, b.Admin, "hookbridge_queue_pending", `sink="kafka-events"`) == 0
	})
	end := topicEnd(t, broker, exampleTopic)
	msgs := consumeTopic(t, broker, exampleTopic, 30*time.Second, func(m []kafkago.Message) bool { return int64(len(m)) >= end })
	if n := missing(msgs); n > 0 {
		t.Fatalf("%d of %d acknowledged leads never reached the topic", n, len(acked))
	}
	slow.Store(false)
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	first := map[string]kafkago.Message{}
	dups := 0
	for _, m := range msgs {
		id := headerMap(t, m)["ce_id"]
		if prev, ok := first[id]; ok {
			dups++
			if string(prev.Value) != string(m.Value) || !reflect.DeepEqual(headerMap(t, prev), headerMap(t, m)) {
				t.Fatalf("the second copy of %s differs from the first", id)
			}
			continue
		}
		first[id] = m
	}
	t.Logf("topic: %d messages, %d distinct, %d delivered again after the restart", len(msgs), len(first), dups)
	// With the producer at the kill: at most two batches (concurrency 2) of
	// up to 500 events each.
	if dups > 1000 {
		t.Fatalf("%d duplicates: more than the sink had with the producer", dups)
	}
}

const kafkaReloadConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  kafka: {type: kafka, brokers: ["${KAFKA_BROKERS}"], topic: leads, key: "{{MESSAGE_KEY}}"}
routes:
  - {name: everything, sinks: [kafka]}
`

// TestReloadReplacesKafkaSinkWithBatchesInFlight edits the kafka sink's
// settings while leads stream in and the producer holds unanswered batches
// (the broker answers each produce request 50 ms late): the old sink's loop
// stops and a new one starts on the same queue. No request fails, every
// acknowledged lead reaches the topic, the leads after the reload carry the
// new key, and a lead arrives twice only as an identical copy.
func TestReloadReplacesKafkaSinkWithBatchesInFlight(t *testing.T) {
	t.Parallel()
	c := startKafka(t, 0)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { time.Sleep(50 * time.Millisecond) })
		return nil, nil, false
	})
	broker := c.ListenAddrs()[0]
	b := newBridge(t, strings.Replace(kafkaReloadConfig, "{{MESSAGE_KEY}}", "before", 1), "HC_KEY="+hcSecret, "KAFKA_BROKERS="+broker)
	b.Start()
	url := "http://" + b.Addr + "/webhooks/helloclient"
	count, stop := streamLeads(t, url, hcSecret, 8, func(n int) []byte { return newLead(fmt.Sprintf("reload-%05d", n)).body(t) })
	waitFor(t, 30*time.Second, "leads on the topic while more stream in", func() bool {
		return count() >= 500 && topicEnd(t, broker, "leads") >= 100
	})
	b.WriteConfig(strings.Replace(kafkaReloadConfig, "{{MESSAGE_KEY}}", "after", 1))
	waitFor(t, 15*time.Second, "the reload", func() bool {
		return metricValue(t, b.Admin, "hookbridge_config_reloads_total", `result="ok"`) >= 1
	})
	before := count()
	waitFor(t, 30*time.Second, "more leads after the reload", func() bool { return count() >= before+500 })
	acked := stop()
	waitFor(t, 60*time.Second, "the queue's kafka backlog to drain", func() bool {
		return metricValue(t, b.Admin, "hookbridge_queue_pending", `sink="kafka"`) == 0
	})
	end := topicEnd(t, broker, "leads")
	msgs := consumeTopic(t, broker, "leads", 30*time.Second, func(m []kafkago.Message) bool { return int64(len(m)) >= end })
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
	first := map[string]kafkago.Message{}
	keys := map[string]int{}
	dups := 0
	for _, m := range msgs {
		id := headerMap(t, m)["ce_id"]
		keys[string(m.Key)]++
		if prev, ok := first[id]; ok {
			dups++
			if string(prev.Value) != string(m.Value) {
				t.Fatalf("the second copy of %s differs from the first", id)
			}
			continue
		}
		first[id] = m
	}
	missing := 0
	for id := range acked {
		if _, ok := first[id]; !ok {
			missing++
		}
	}
	t.Logf("acknowledged %d leads; topic: %d messages, %d distinct, %d twice; keys %v", len(acked), len(msgs), len(first), dups, keys)
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged leads never reached the topic", missing, len(acked))
	}
	if keys["before"] == 0 || keys["after"] < 500 || len(keys) != 2 {
		t.Errorf("message keys %v: want some keyed before the reload and every later one after", keys)
	}
	if !strings.Contains(b.Log(), "config reloaded") {
		t.Error("no log line says the config was reloaded")
	}
}

// circuitConfig routes Hello Client leads to a CRM whose retry schedule
// lasts well under a second, behind a circuit breaker, with the archive as
// its dead-letter sink.
const circuitConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HELLOCLIENT_SIGNING_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
  crm:
    type: http
    url: "${CRM_URL}"
    body: {email: "{{ .Data.Email }}"}
    concurrency: 4
    retry: {max_attempts: 3, initial_backoff: 100ms, max_backoff: 200ms}
    circuit_breaker: {failures: 3, cooldown: 1s, max_cooldown: 2s}
    dead_letter: archive
routes:
  - {name: leads, sinks: [crm]}
`

// TestCRMOutageIsHeldByTheCircuitBreaker has the CRM answer 503 for 8 s,
// many times what its retry schedule lasts (3 attempts, 0.1-0.2 s apart),
// then 201. The circuit breaker opens and holds the leads: the CRM gets
// about one request a cooldown while down, no lead is dead-lettered, and
// every lead arrives once, after the CRM is back; the breaker's metrics
// show it opened and closed again.
func TestCRMOutageIsHeldByTheCircuitBreaker(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var refused int
	created := map[string]int{} // Idempotency-Key -> leads created
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down.Load() {
			refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		created[r.Header.Get("Idempotency-Key")]++
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(crm.Close)
	counts := func() (int, map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		c := make(map[string]int, len(created))
		for k, v := range created {
			c[k] = v
		}
		return refused, c
	}
	b := newBridge(t, circuitConfig, "HELLOCLIENT_SIGNING_KEY="+exampleHelloClientKey, "CRM_URL="+crm.URL+"/api/leads")
	b.Start()

	const leads = 10
	const outage = 8 * time.Second
	ids := map[string]bool{}
	for i := range leads {
		ids[sendLead(t, b, newLead(fmt.Sprintf("7c1d0e2f-0000-4000-8000-%012d", i)).body(t))] = true
	}
	waitFor(t, 20*time.Second, "the circuit breaker to open", func() bool {
		return metricValue(t, b.Admin, "hookbridge_sink_circuit_openings_total", `sink="crm"`) >= 1
	})
	opened := time.Now()
	time.Sleep(outage)
	if state := metricValue(t, b.Admin, "hookbridge_sink_circuit_state", `sink="crm"`); state == 0 {
		t.Errorf("hookbridge_sink_circuit_state{sink=crm} = 0 during the outage, want open (1) or half-open (2)")
	}
	if dead := archiveLines(t, filepath.Join(b.Dir, "events.jsonl")); len(dead) != 0 {
		t.Errorf("%d leads dead-lettered during the outage", len(dead))
	}
	down.Store(false)
	recovered := time.Now()
	waitFor(t, 20*time.Second, "every lead created in the CRM", func() bool { _, c := counts(); return len(c) >= leads })
	t.Logf("the CRM had every lead %.1fs after it came back", time.Since(recovered).Seconds())
	time.Sleep(quiet)

	failed, c := counts()
	for id := range ids {
		if c[id] != 1 {
			t.Errorf("lead %s created %d times, want once", id, c[id])
		}
	}
	// Before it opened: 3 failures in a row and the other workers' sends
	// under way; then a probe a cooldown (1 s, then 2 s) at most.
	limit := 3 + 3 + int(time.Since(opened)/time.Second) + 1
	t.Logf("the CRM refused %d requests while down (at most %d allowed; %d without the breaker)", failed, limit, leads*3)
	if failed > limit {
		t.Errorf("the CRM got %d requests while down, want at most %d", failed, limit)
	}
	for _, line := range archiveLines(t, filepath.Join(b.Dir, "events.jsonl")) {
		t.Errorf("lead %v dead-lettered: %v", line["id"], line["deadletterreason"])
	}
	for _, m := range []struct {
		name string
		want float64
	}{
		{"hookbridge_dead_letters_total", 0},
		{"hookbridge_sink_circuit_openings_total", 1},
		{"hookbridge_sink_circuit_state", 0},
		{"hookbridge_deliveries_total", leads},
	} {
		labels := []string{`sink="crm"`}
		if m.name == "hookbridge_deliveries_total" {
			labels = append(labels, `outcome="delivered"`)
		}
		if got := metricValue(t, b.Admin, m.name, labels...); got != m.want {
			t.Errorf("%s{sink=crm} = %v, want %v", m.name, got, m.want)
		}
	}
	log := b.Log()
	for _, want := range []string{"circuit breaker open", "503 Service Unavailable", "circuit breaker closed"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestCRMOutageSurvivesARestart: the bridge is killed (SIGKILL) while the
// circuit breaker holds the leads of a CRM that is down, and started again
// while it is still down. The breaker starts closed after the restart, and
// the leads, whose attempts ran out on probes, must still be held, not
// dead-lettered: every lead arrives once when the CRM is back, and once
// only, even through a second SIGKILL after the outage has drained.
func TestCRMOutageSurvivesARestart(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	created := map[string]int{} // Idempotency-Key -> leads created
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		created[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(crm.Close)
	// One worker: the lead it holds is every probe, and runs out of attempts.
	config := strings.Replace(circuitConfig, "concurrency: 4", "concurrency: 1", 1)
	b := newBridge(t, config, "HELLOCLIENT_SIGNING_KEY="+exampleHelloClientKey, "CRM_URL="+crm.URL+"/api/leads")
	b.Start()

	const leads = 10
	ids := map[string]bool{}
	for i := range leads {
		ids[sendLead(t, b, newLead(fmt.Sprintf("5b2e8a10-0000-4000-8000-%012d", i)).body(t))] = true
	}
	waitFor(t, 20*time.Second, "the circuit breaker to open", func() bool {
		return metricValue(t, b.Admin, "hookbridge_sink_circuit_openings_total", `sink="crm"`) >= 1
	})
	time.Sleep(4 * time.Second) // probes fail: held leads run out of attempts
	b.Kill()
	b.Start()
	waitFor(t, 20*time.Second, "the circuit breaker to open after the restart", func() bool {
		return metricValue(t, b.Admin, "hookbridge_sink_circuit_openings_total", `sink="crm"`) >= 1
	})
	time.Sleep(2 * time.Second)
	down.Store(false)
	waitFor(t, 20*time.Second, "every lead created in the CRM", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(created) >= leads
	})
	time.Sleep(quiet)
	// Killed now, with no webhook since the outage drained, the bridge
	// sends the CRM nothing again when it restarts: the acknowledgements
	// reached the disk without waiting for a webhook's commit.
	b.Kill()
	b.Start()
	time.Sleep(quiet)
	mu.Lock()
	for id := range ids {
		if created[id] != 1 {
			t.Errorf("lead %s created %d times, want once", id, created[id])
		}
	}
	mu.Unlock()
	for _, line := range archiveLines(t, filepath.Join(b.Dir, "events.jsonl")) {
		t.Errorf("lead %v dead-lettered: %v", line["id"], line["deadletterreason"])
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestHungCRMHoldsBackNothing: a CRM that takes requests and never answers
// holds up neither the providers' answers (each well under Crisp's 2 s)
// nor the archive, which has every lead while the CRM still hangs; once
// the CRM answers again it gets every lead too.
func TestHungCRMHoldsBackNothing(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	created := map[string]bool{}
	var hanging atomic.Int32 // requests the CRM holds unanswered
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hanging.Add(1)
		defer hanging.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done(): // the sink gave up on it
			return
		}
		mu.Lock()
		created[r.Header.Get("Idempotency-Key")] = true
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(crm.Close)
	config := strings.Replace(circuitConfig, "    dead_letter: archive\n", "    timeout: 5s\n", 1)
	config = strings.Replace(config, "sinks: [crm]", "sinks: [crm, archive]", 1)
	config = strings.Replace(config, "max_attempts: 3", "max_attempts: 100", 1)
	if !strings.Contains(config, "timeout: 5s") || !strings.Contains(config, "sinks: [crm, archive]") {
		t.Fatalf("the config was not adapted:\n%s", config)
	}
	b := newBridge(t, config, "HELLOCLIENT_SIGNING_KEY="+exampleHelloClientKey, "CRM_URL="+crm.URL+"/api/leads")
	b.Start()

	const workers, each = 8, 25
	var slowest atomic.Int64
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := range each {
				body := newLead(fmt.Sprintf("3d9c7b44-0000-4000-8000-%06d%06d", w, i)).body(t)
				start := time.Now()
				resp, err := post(t, client, "http://"+b.Addr+"/webhooks/helloclient", body,
					map[string]string{"X-Webhook-Signature": helloclientSign(exampleHelloClientKey, time.Now().Unix(), body)})
				took := time.Since(start)
				if err != nil || resp.Status != http.StatusOK {
					t.Errorf("lead answered %v %v", resp.Status, err)
					continue
				}
				for {
					old := slowest.Load()
					if int64(took) <= old || slowest.CompareAndSwap(old, int64(took)) {
						break
					}
				}
				ids <- sha256Hex(body)
			}
		}()
	}
	wg.Wait()
	close(ids)
	t.Logf("slowest acknowledgement with the CRM hung: %s", time.Duration(slowest.Load()))
	if took := time.Duration(slowest.Load()); took > 2*time.Second {
		t.Errorf("a lead took %s to be acknowledged while the CRM hung; providers such as Crisp give up after 2 s", took)
	}
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	archive := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 20*time.Second, "every lead in the archive while the CRM hangs", func() bool {
		return len(archiveLines(t, archive)) >= len(want)
	})
	if pending := metricValue(t, b.Admin, "hookbridge_queue_pending", `sink="crm"`); pending == 0 || hanging.Load() == 0 {
		t.Errorf("with every lead archived, %v pending for the CRM and %d requests hanging there: the CRM was not hung", pending, hanging.Load())
	}
	close(release)
	waitFor(t, 60*time.Second, "every lead in the CRM once it answers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range want {
			if !created[id] {
				return false
			}
		}
		return true
	})
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}
