package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The chaos test runs the binary under a steady stream of webhooks from
// three providers while everything around it misbehaves: the CRM answers
// 503 for a while and sometimes answers after the sink's timeout, Slack
// answers 429 with Retry-After, the Kafka broker (kfake, over TCP) answers
// produce requests late for a while, and the bridge itself is killed with
// SIGKILL and started again three times. Providers retry what was not
// answered and, now and then, what was. At the end every sink must hold
// every acknowledged event, nothing else, and no copy that a kill does not
// explain.

const (
	chaosHelloClientKey = "e2e-chaos-helloclient-signing-key"
	chaosHMACKey        = "e2e-chaos-billing-signing-key"
	// chaosStdKey is whsec_ and the base64 of the signing key.
	chaosStdKey = "whsec_ZTJlLWNoYW9zLXN0YW5kYXJkLXdlYmhvb2tzLWtleQ=="
)

const chaosConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
log: {level: info}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
  billing:
    type: hmac
    secret: "${BILLING_KEY}"
    header: X-Signature
    prefix: "sha256="
    payload: "{{ .Timestamp }}.{{ .Body }}"
    timestamp_header: X-Timestamp
    tolerance: 5m
    source: "https://billing.example.com"
    type_path: event
    type_prefix: "com.example.billing."
    id_path: id
  stdhooks: {type: standardwebhooks, secret: "${STD_KEY}", source: "https://api.example.com", subject_path: data.id}
sinks:
  archive:
    type: file
    path: "{{DIR}}/events.jsonl"
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    dead_letter: graveyard
  crm:
    type: http
    url: "${CRM_URL}"
    body: {id: "{{ .ID }}", type: "{{ .Type }}", via: "{{ .Extensions.bridgesource }}", data: "{{ .Data | toJson }}"}
    timeout: 300ms
    concurrency: 8
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    circuit_breaker: {failures: 5, cooldown: 200ms, max_cooldown: 1s}
    dead_letter: graveyard
  slack-sales:
    type: slack
    webhook_url: "${SLACK_URL}"
    text: "New lead {{ .ID }}: {{ .Data.FirstName }} {{ .Data.LastName }} ({{ .Data.Email }})"
    rate_limit: none
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    circuit_breaker: {failures: 5, cooldown: 200ms, max_cooldown: 1s}
    dead_letter: graveyard
  topic:
    type: kafka
    brokers: ["${KAFKA_BROKERS}"]
    topic: chaos.events
    mode: binary
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    dead_letter: graveyard
  graveyard: {type: file, path: "{{DIR}}/dead.jsonl"}
routes:
  - {name: new-leads, filters: [{exact: {type: com.helloclient.lead}}], sinks: [slack-sales]}
  - {name: everything, sinks: [archive, crm, topic]}
`

// chaosDelivery is one webhook delivery as a provider makes it: the same
// body (and, for Standard Webhooks, the same webhook-id) on every try, a
// fresh timestamp and signature each time.
type chaosDelivery struct {
	id   string // the CloudEvent id the bridge must give it
	kind string // helloclient lead or appointment, billing, stdhooks
	path string
	body []byte
	sign func(now time.Time) map[string]string
}

func (d chaosDelivery) isLead() bool { return d.kind == "lead" }

func newChaosDelivery(rng *rand.Rand, worker, n int) chaosDelivery {
	tag := fmt.Sprintf("w%d-%06d", worker, n)
	switch k := rng.IntN(10); {
	case k < 3: // a Hello Client lead: to Slack as well
		l := newLead("chaos-" + tag)
		l.Email = tag + "@example.com"
		body, _ := json.Marshal(l)
		return helloclientDelivery("lead", body)
	case k < 5:
		body := []byte(fmt.Sprintf(`{"Type":"appointment","SerialNumber":"HC-8842","SessionID":"chaos-%s","FirstName":"Alan","LastName":"Turing","Email":"%s@example.com","AppointmentTime":"2026-11-24T15:00:00Z","CreateTime":"2026-11-20T10:20:00Z"}`, tag, tag))
		return helloclientDelivery("appointment", body)
	case k < 8:
		id := "evt_" + tag
		body := []byte(fmt.Sprintf(`{"id":%q,"event":"invoice.paid","invoice":{"number":"INV-%s","amount":%d}}`, id, tag, 100+rng.IntN(9900)))
		return billingDelivery(id, body)
	default:
		id := "msg_" + tag
		body := []byte(fmt.Sprintf(`{"type":"customer.updated","timestamp":"2026-11-20T10:30:00Z","data":{"id":"cus_%s","plan":"pro"}}`, tag))
		return stdhooksDelivery(id, body)
	}
}

// helloclientDelivery is a Hello Client webhook of kind (lead or
// appointment), signed with chaosHelloClientKey.
func helloclientDelivery(kind string, body []byte) chaosDelivery {
	return chaosDelivery{id: sha256Hex(body), kind: kind, path: "/webhooks/helloclient", body: body,
		sign: func(now time.Time) map[string]string {
			return map[string]string{"X-Webhook-Signature": helloclientSign(chaosHelloClientKey, now.Unix(), body)}
		}}
}

// billingDelivery is a webhook of the billing (hmac) source, signed with
// chaosHMACKey.
func billingDelivery(id string, body []byte) chaosDelivery {
	return chaosDelivery{id: id, kind: "billing", path: "/webhooks/billing", body: body,
		sign: func(now time.Time) map[string]string {
			ts := strconv.FormatInt(now.Unix(), 10)
			m := hmac.New(sha256.New, []byte(chaosHMACKey))
			io.WriteString(m, ts+".")
			m.Write(body)
			return map[string]string{"X-Timestamp": ts, "X-Signature": "sha256=" + hex.EncodeToString(m.Sum(nil))}
		}}
}

// stdhooksDelivery is a Standard Webhooks message with webhook-id id,
// signed with chaosStdKey.
func stdhooksDelivery(id string, body []byte) chaosDelivery {
	return chaosDelivery{id: id, kind: "stdhooks", path: "/webhooks/stdhooks", body: body,
		sign: func(now time.Time) map[string]string {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(chaosStdKey, "whsec_"))
			ts := strconv.FormatInt(now.Unix(), 10)
			m := hmac.New(sha256.New, key)
			io.WriteString(m, id+"."+ts+".")
			m.Write(body)
			return map[string]string{"webhook-id": id, "webhook-timestamp": ts,
				"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))}
		}}
}

// chaosLoad is the providers' side: what was sent, what was acknowledged
// and when, what went unanswered, and each event's conversation.
type chaosLoad struct {
	mu       sync.Mutex
	sent     map[string]chaosDelivery
	subject  map[string]string // the conversation of an event that has one
	acked    map[string]bool
	ackedAt  map[string]time.Time // the first 2xx
	ackSeq   map[string]int       // the order of the first 2xx
	inFlight map[string]bool      // unanswered (the bridge died), or a 5xx that may land: maybe queued
	refused  map[int]int
	resent   map[string]bool
	toResend []chaosDelivery
	tries    int
	byCopy   []int // 2xx answers by bridge
}

func (l *chaosLoad) note(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// runChaosLoad posts the events newDelivery makes from workers goroutines
// to the bridges at bases (the replicas of one, or a single bridge), each
// pausing pace between events, until stop is called. Each event goes to a
// bridge picked at random; one not answered 2xx is tried again, at the
// next bridge, as a provider retries and a load balancer moves on from a
// replica that refuses or drops connections, until one answers 2xx. One in
// twenty acknowledged events is sent again later, to any bridge, as a
// provider does when the answer got lost on its way back. With
// serverErrorMayLand a 5xx answer counts the event as in flight (a Kafka
// queue's write that timed out may land late); else a 5xx means nothing
// was queued.
func runChaosLoad(t *testing.T, bases []string, seed uint64, workers int, pace time.Duration,
	newDelivery func(rng *rand.Rand, worker, n int) (d chaosDelivery, conversation string), serverErrorMayLand bool) (*chaosLoad, func()) {
	l := &chaosLoad{sent: map[string]chaosDelivery{}, subject: map[string]string{}, acked: map[string]bool{},
		ackedAt: map[string]time.Time{}, ackSeq: map[string]int{}, inFlight: map[string]bool{},
		refused: map[int]int{}, resent: map[string]bool{}, byCopy: make([]int, len(bases))}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
			client := &http.Client{Timeout: 5 * time.Second}
			n := 0
			for {
				select {
				case <-quit:
					return
				case <-time.After(pace):
				}
				var d chaosDelivery
				resend := false
				l.note(func() {
					if len(l.toResend) > 0 && rng.IntN(10) == 0 {
						i := rng.IntN(len(l.toResend))
						d = l.toResend[i]
						l.toResend = append(l.toResend[:i], l.toResend[i+1:]...)
						resend = true
					}
				})
				if !resend {
					n++
					var conv string
					d, conv = newDelivery(rng, w, n)
					l.note(func() {
						l.sent[d.id] = d
						if conv != "" {
							l.subject[d.id] = conv
						}
					})
				}
				replica := rng.IntN(len(bases))
				for {
					l.note(func() { l.tries++ })
					resp, err := post(t, client, bases[replica]+d.path, d.body, d.sign(time.Now()))
					if err == nil && resp.Status >= 200 && resp.Status < 300 {
						l.note(func() {
							l.byCopy[replica]++
							if resend {
								l.resent[d.id] = true
							} else if rng.IntN(20) == 0 {
								l.toResend = append(l.toResend, d)
							}
							if !l.acked[d.id] {
								l.acked[d.id] = true
								l.ackedAt[d.id] = time.Now()
								l.ackSeq[d.id] = len(l.ackSeq)
							}
						})
						break
					}
					l.note(func() {
						switch {
						case err == nil:
							l.refused[resp.Status]++
							if resp.Status >= 500 && serverErrorMayLand {
								// The brokers may have it, late.
								l.inFlight[d.id] = true
							}
						case !errors.Is(err, syscall.ECONNREFUSED):
							// The bridge may have queued it before it died.
							l.inFlight[d.id] = true
						}
					})
					replica = (replica + 1) % len(bases)
					select {
					case <-quit:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l, func() { close(quit); wg.Wait() }
}

// chaosSpells runs the spells of trouble of a chaos test's plan. A spell of
// the CRM or Slack ends at its planned time once it has refused or
// abandoned enough requests (a CRM outage opens the breaker); while the
// bridge is down, or a Kafka queue's groups rebalance, nothing is sent to
// them and a spell can pass unnoticed, so it lasts until it is noticed (for
// at most 8 s more).
type chaosSpells struct {
	crm   *chaosCRM
	slack *chaosSlack
	wg    sync.WaitGroup
	start map[string]int // each spell's count when it began
}

func newChaosSpells(crm *chaosCRM, slack *chaosSlack) *chaosSpells {
	return &chaosSpells{crm: crm, slack: slack, start: map[string]int{}}
}

// step carries out a plan's step if it starts or ends a spell of the CRM
// ("crm down", "crm up", "crm slow", "crm fast") or of Slack ("slack
// limited", "slack unlimited"), and says whether it did.
func (s *chaosSpells) step(what string) bool {
	crm, slack := s.crm, s.slack
	refused, abandoned := chaosCounter(&crm.mu, &crm.refused), chaosCounter(&crm.mu, &crm.abandoned)
	limited := chaosCounter(&slack.mu, &slack.refused)
	switch what {
	case "crm down":
		s.begin(&crm.down, what, refused)
	case "crm up":
		s.end(&crm.down, "crm down", refused, 5)
	case "crm slow":
		s.begin(&crm.slow, what, abandoned)
	case "crm fast":
		s.end(&crm.slow, "crm slow", abandoned, 2)
	case "slack limited":
		s.begin(&slack.limited, what, limited)
	case "slack unlimited":
		s.end(&slack.limited, "slack limited", limited, 3)
	default:
		return false
	}
	return true
}

// chaosCounter reads *n under mu.
func chaosCounter(mu *sync.Mutex, n *int) func() int {
	return func() int { mu.Lock(); defer mu.Unlock(); return *n }
}

// begin sets flag, the spell name, whose effect count counts.
func (s *chaosSpells) begin(flag *atomic.Bool, name string, count func() int) {
	s.start[name] = count()
	flag.Store(true)
}

// end clears flag once count has grown by enough since the spell began.
func (s *chaosSpells) end(flag *atomic.Bool, name string, count func() int, enough int) {
	from := s.start[name] + enough - 1
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for until := time.Now().Add(8 * time.Second); count() <= from && time.Now().Before(until); {
			time.Sleep(20 * time.Millisecond)
		}
		flag.Store(false)
	}()
}

// wait waits for every spell to end.
func (s *chaosSpells) wait() { s.wg.Wait() }

// sinkProblems reports a sink's problems as a chaos test finds them, the
// first ten in full; done says how many there were when there were more.
func sinkProblems(t *testing.T, sink string) (report func(format string, args ...any), done func()) {
	problems := 0
	report = func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 10 {
			t.Errorf(sink+": "+format, args...)
		}
	}
	done = func() {
		if problems > 10 {
			t.Errorf("%s: %d problems in all", sink, problems)
		}
	}
	return report, done
}

// arrival is one copy of an event a sink delivered, in the order the
// destination got them.
type arrival struct {
	id      string
	content []byte // what the destination got, for comparing copies
	data    []byte // the provider's payload it carries
	at      int64  // position: a byte offset in a file, an index at a server
}

// chaosCRM is a CRM that flaps: while down it answers 503; while slow it
// answers some requests a second late, after the sink's timeout, and keeps
// nothing of a request whose client went away (its transaction rolls back).
type chaosCRM struct {
	*httptest.Server
	down, slow atomic.Bool
	mu         sync.Mutex
	got        []arrival
	refused    int
	abandoned  int
	n          atomic.Int64
}

func newChaosCRM(t *testing.T) *chaosCRM {
	c := &chaosCRM{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if c.down.Load() {
			c.mu.Lock()
			c.refused++
			c.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if c.slow.Load() && c.n.Add(1)%7 == 0 {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				c.mu.Lock()
				c.abandoned++
				c.mu.Unlock()
				return
			}
		}
		var m struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.ID != r.Header.Get("Idempotency-Key") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, arrival{id: m.ID, content: body, data: m.Data, at: int64(len(c.got))})
		c.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *chaosCRM) arrivals() []arrival {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]arrival(nil), c.got...)
}

// chaosSlack is a Slack incoming webhook that rate-limits for a while:
// 429 with Retry-After: 1.
type chaosSlack struct {
	*httptest.Server
	limited atomic.Bool
	mu      sync.Mutex
	got     []arrival
	refused int
}

func newChaosSlack(t *testing.T) *chaosSlack {
	s := &chaosSlack{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m slackMessage
		if r.URL.Path != "/services/T0001/B0001/e2eCHAOS" || json.Unmarshal(body, &m) != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		if s.limited.Load() {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(m.Text, "New lead "), ":")
		s.mu.Lock()
		s.got = append(s.got, arrival{id: id, content: body, at: int64(len(s.got))})
		s.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *chaosSlack) arrivals() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.got...)
}

// fileArrivals reads a file sink's lines with their byte offsets. A line
// that is not a JSON object is reported: a torn write must not survive a
// restart.
func fileArrivals(t *testing.T, path string) (out []arrival, bad []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		var ev fileEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			bad = append(bad, fmt.Sprintf("offset %d: %.200s", off, line))
		} else {
			out = append(out, arrival{id: ev.ID, content: append([]byte(nil), line...), data: ev.Data, at: off})
		}
		off += int64(len(line)) + 1
	}
	return out, bad
}

// topicArrivals reads every message of a topic of one partition, with its
// offset; its content is the headers and the value. Fetches are kept to
// 1 MiB and given a second: the reader gives up on a fetch whose answer
// has not begun within MaxWait, and kfake, in a process built with -race
// on a busy machine, can take longer than that to assemble a large one.
func topicArrivals(t *testing.T, broker, topic string) []arrival {
	t.Helper()
	end := topicEnd(t, broker, topic)
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MaxWait: time.Second, MaxBytes: 1 << 20})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []arrival
	for int64(len(out)) < end {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s: %d of %d messages: %v", topic, len(out), end, err)
		}
		h := headerMap(t, m)
		content, _ := json.Marshal(map[string]any{"headers": h, "key": string(m.Key), "value": string(m.Value)})
		out = append(out, arrival{id: h["ce_id"], content: content, data: m.Value, at: m.Offset})
	}
	return out
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// TestChaosEveryAcknowledgedEventArrives is the reliability test an
// operator would ask for; see the top of this file. CHAOS_SEED=<n> replays
// a run's choices (when to kill, when the CRM and Slack misbehave, which
// deliveries are sent again); the timing of the goroutines is not replayed.
func TestChaosEveryAcknowledgedEventArrives(t *testing.T) {
	if testing.Short() {
		t.Skip("about 40 s of load and kills; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (CHAOS_SEED=%d replays the plan)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	crm := newChaosCRM(t)
	slack := newChaosSlack(t)
	kafka := startKafka(t, 0)
	var kafkaSlow atomic.Bool
	kafka.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kafka.KeepControl()
		if kafkaSlow.Load() {
			kafka.SleepControl(func() { time.Sleep(100 * time.Millisecond) })
		}
		return nil, nil, false
	})
	broker := kafka.ListenAddrs()[0]
	b := newBridge(t, chaosConfig, "HC_KEY="+chaosHelloClientKey, "BILLING_KEY="+chaosHMACKey, "STD_KEY="+chaosStdKey,
		"CRM_URL="+crm.URL+"/api/leads", "SLACK_URL="+slack.URL+"/services/T0001/B0001/e2eCHAOS", "KAFKA_BROKERS="+broker)
	archive := filepath.Join(b.Dir, "events.jsonl")
	b.Start()

	// The plan, in time since the load started: three kills, a CRM outage
	// and a slow spell, a Slack rate limit, a slow Kafka broker.
	const loadFor = 20 * time.Second
	type step struct {
		at   time.Duration
		what string
	}
	jitter := func(from, span time.Duration) time.Duration {
		return from + time.Duration(rng.Int64N(int64(span)))
	}
	var plan []step
	for i, from := range []time.Duration{2 * time.Second, 8 * time.Second, 14 * time.Second} {
		plan = append(plan, step{jitter(from, 4*time.Second), fmt.Sprintf("kill %d", i+1)})
	}
	crmDown := jitter(1*time.Second, 6*time.Second)
	crmSlow := jitter(5*time.Second, 8*time.Second)
	slackLimited := jitter(3*time.Second, 10*time.Second)
	kafkaSlowAt := jitter(2*time.Second, 10*time.Second)
	plan = append(plan,
		step{crmDown, "crm down"}, step{crmDown + jitter(2*time.Second, 2*time.Second), "crm up"},
		step{crmSlow, "crm slow"}, step{crmSlow + jitter(3*time.Second, 2*time.Second), "crm fast"},
		step{slackLimited, "slack limited"}, step{slackLimited + jitter(2*time.Second, 2*time.Second), "slack unlimited"},
		step{kafkaSlowAt, "kafka slow"}, step{kafkaSlowAt + jitter(3*time.Second, 3*time.Second), "kafka fast"},
	)
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	var planText []string
	for _, s := range plan {
		planText = append(planText, fmt.Sprintf("%.2fs %s", s.at.Seconds(), s.what))
	}
	t.Logf("plan: %s", strings.Join(planText, ", "))

	// Where each sink's destination was at each kill: a copy before a mark
	// and one after it are the redelivery of an event the bridge sent and
	// had not yet marked delivered when it died.
	type marks struct{ file, crm, slack, topic []int64 }
	var killedAt marks

	load, stopLoad := runChaosLoad(t, []string{"http://" + b.Addr}, seed, 4, 5*time.Millisecond,
		func(rng *rand.Rand, w, n int) (chaosDelivery, string) { return newChaosDelivery(rng, w, n), "" }, false)
	spells := newChaosSpells(crm, slack)
	start := time.Now()
	for _, s := range plan {
		time.Sleep(time.Until(start.Add(s.at)))
		if spells.step(s.what) {
			continue
		}
		switch s.what {
		case "kafka slow", "kafka fast":
			kafkaSlow.Store(s.what == "kafka slow")
		default:
			b.Kill()
			// What the dead bridge sent is at its destination by now (a
			// produce request kfake holds back lands within 100 ms).
			time.Sleep(500 * time.Millisecond)
			killedAt.file = append(killedAt.file, fileSize(archive))
			killedAt.crm = append(killedAt.crm, int64(len(crm.arrivals())))
			killedAt.slack = append(killedAt.slack, int64(len(slack.arrivals())))
			killedAt.topic = append(killedAt.topic, topicEnd(t, broker, "chaos.events"))
			time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
			b.Start()
		}
	}
	time.Sleep(time.Until(start.Add(loadFor)))
	stopLoad()
	spells.wait()
	crm.down.Store(false)
	crm.slow.Store(false)
	slack.limited.Store(false)
	kafkaSlow.Store(false)

	load.mu.Lock()
	acked := load.acked
	var leads []string
	for id := range acked {
		if load.sent[id].isLead() {
			leads = append(leads, id)
		}
	}
	t.Logf("providers: %d requests, %d events acknowledged (%d leads), %d sent again after their 2xx, %d unanswered at a kill, refused %v",
		load.tries, len(acked), len(leads), len(load.resent), len(load.inFlight), load.refused)
	load.mu.Unlock()
	if len(acked) < 500 || len(leads) < 100 || len(load.resent) < 10 {
		t.Fatalf("too little load to prove anything: %d acknowledged, %d leads, %d sent again", len(acked), len(leads), len(load.resent))
	}

	// Drain: every sink's queue empty and every acknowledged event at each
	// of its destinations.
	missing := func(got []arrival, want []string) []string {
		seen := map[string]bool{}
		for _, a := range got {
			seen[a.id] = true
		}
		var out []string
		for _, id := range want {
			if !seen[id] {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	all := make([]string, 0, len(acked))
	for id := range acked {
		all = append(all, id)
	}
	sinkNames := []string{"archive", "crm", "slack-sales", "topic", "graveyard"}
	pending := func() map[string]float64 {
		out := map[string]float64{}
		for _, s := range sinkNames {
			out[s] = metricValue(t, b.Admin, "hookbridge_queue_pending", `sink="`+s+`"`)
		}
		return out
	}
	drained := time.Now()
	deadline := drained.Add(30 * time.Second)
	var emptySince time.Time // the queue has been empty since, with deliveries missing
	for {
		files, _ := fileArrivals(t, archive)
		left := len(missing(files, all)) + len(missing(crm.arrivals(), all)) + len(missing(slack.arrivals(), leads))
		queued := 0.0
		for _, v := range pending() {
			queued += v
		}
		if left == 0 && queued == 0 {
			break
		}
		switch {
		case queued > 0:
			emptySince = time.Time{}
		case emptySince.IsZero():
			emptySince = time.Now()
		}
		if time.Now().After(deadline) || !emptySince.IsZero() && time.Since(emptySince) > 5*time.Second {
			t.Errorf("after %.0fs of draining: %v queued, %d deliveries missing", time.Since(drained).Seconds(), pending(), left)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("drained %.1fs after the load stopped", time.Since(drained).Seconds())
	time.Sleep(time.Second) // a late duplicate would show now

	if age := metricValue(t, b.Admin, "hookbridge_queue_oldest_pending_age_seconds"); age != 0 {
		t.Errorf("hookbridge_queue_oldest_pending_age_seconds = %v at the end, want 0", age)
	}
	for s, v := range pending() {
		if v != 0 {
			t.Errorf("hookbridge_queue_pending{sink=%q} = %v at the end, want 0", s, v)
		}
	}

	files, torn := fileArrivals(t, archive)
	for _, line := range torn {
		t.Errorf("archive line is not an event: %s", line)
	}
	dead, _ := fileArrivals(t, filepath.Join(b.Dir, "dead.jsonl"))
	for _, a := range dead {
		t.Errorf("event %s was dead-lettered: %s", a.id, a.content)
	}

	load.mu.Lock()
	defer load.mu.Unlock()
	check := func(sink string, got []arrival, want []string, kills []int64) {
		t.Helper()
		if m := missing(got, want); len(m) > 0 {
			t.Errorf("%s: %d of %d acknowledged events never arrived, e.g. %v", sink, len(m), len(want), m[:min(5, len(m))])
		}
		report, reported := sinkProblems(t, sink)
		defer reported()
		first := map[string]arrival{}
		prev := map[string]arrival{}
		dups, stray := 0, 0
		perKill := make([]int, len(kills))
		for _, a := range got {
			if !acked[a.id] && !load.inFlight[a.id] {
				stray++
				report("%s arrived but was never acknowledged nor unanswered at a kill", a.id)
			}
			if d, ok := load.sent[a.id]; ok && a.data != nil && !jsonEqual(a.data, d.body) {
				report("%s carries %s, the provider sent %s", a.id, a.data, d.body)
			}
			p, seen := prev[a.id]
			prev[a.id] = a
			if !seen {
				first[a.id] = a
				continue
			}
			dups++
			if !bytes.Equal(a.content, first[a.id].content) {
				report("the copies of %s differ:\n%s\n%s", a.id, first[a.id].content, a.content)
			}
			straddles := false
			for i, k := range kills {
				if p.at < k && k <= a.at {
					straddles = true
					perKill[i]++
				}
			}
			if !straddles {
				why := "sent again by its provider after its 2xx"
				if !load.resent[a.id] {
					why = "not sent again by its provider"
				}
				report("%s arrived again (at %d, before at %d) with no kill in between; %s", a.id, a.at, p.at, why)
			}
		}
		t.Logf("%s: %d arrived, %d distinct, %d duplicates (across each kill: %v), %d stray", sink, len(got), len(first), dups, perKill, stray)
	}
	check("archive", files, all, killedAt.file)
	check("crm", crm.arrivals(), all, killedAt.crm)
	check("slack-sales", slack.arrivals(), leads, killedAt.slack)
	check("topic", topicArrivals(t, broker, "chaos.events"), all, killedAt.topic)
	// The trouble happened: a test whose chaos missed proves nothing.
	crm.mu.Lock()
	t.Logf("crm answered 503 %d times; %d slow requests abandoned by the sink", crm.refused, crm.abandoned)
	if crm.refused == 0 || crm.abandoned == 0 {
		t.Errorf("the CRM refused %d requests and had %d abandoned: its outage or slow spell went unnoticed", crm.refused, crm.abandoned)
	}
	crm.mu.Unlock()
	slack.mu.Lock()
	t.Logf("slack answered 429 %d times", slack.refused)
	if slack.refused == 0 {
		t.Error("Slack never answered 429: its rate limit went unnoticed")
	}
	slack.mu.Unlock()
	if n := strings.Count(b.Log(), "circuit breaker open"); n == 0 {
		t.Error("no circuit breaker opened")
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// jsonEqual says whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
