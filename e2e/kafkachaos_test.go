package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The Kafka-queue chaos test runs three replicas of the binary on one
// ingress topic (kfake over TCP, six partitions) under a steady stream of
// webhooks spread over them, as a load balancer would, while the CRM they
// all deliver to answers 503 for a while and late for another, Slack
// rate-limits, and replicas are killed with SIGKILL and started again. At
// the end every sink holds every acknowledged event, nothing else, and
// copies only of identical content; each conversation reached the CRM in
// the order it was acknowledged; and every sink's consumer-group lag is 0.

// kchaosSessionTimeout is the replicas' session timeout: a killed
// replica's partitions go to the others this long after the kill.
const kchaosSessionTimeout = 3 * time.Second

// kchaosConfig is one replica: the chaos test's sources, a file of its
// own, and the shared CRM and Slack. The CRM is sent one event at a time
// (concurrency 1) so that each replica delivers in the order it reads,
// which the conversation check below relies on. There is no dead-letter
// sink: what a sink gave up on would be on bridge.ingress.deadletter.
var kchaosConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {type: kafka, brokers: ["${KAFKA}"], session_timeout: ` + kchaosSessionTimeout.String() + `}
log: {level: info}
` + chaosConfig[strings.Index(chaosConfig, "sources:"):strings.Index(chaosConfig, "sinks:")] + `sinks:
  archive:
    type: file
    path: "{{DIR}}/events.jsonl"
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
  crm:
    type: http
    url: "${CRM_URL}"
    body: {id: "{{ .ID }}", type: "{{ .Type }}", via: "{{ .Extensions.bridgesource }}", data: "{{ .Data | toJson }}"}
    timeout: 300ms
    concurrency: 1
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    circuit_breaker: {failures: 5, cooldown: 200ms, max_cooldown: 1s}
  slack-sales:
    type: slack
    webhook_url: "${SLACK_URL}"
    text: "New lead {{ .ID }}: {{ .Data.FirstName }} {{ .Data.LastName }} ({{ .Data.Email }})"
    rate_limit: none
    retry: {max_attempts: 100, initial_backoff: 20ms, max_backoff: 300ms}
    circuit_breaker: {failures: 5, cooldown: 200ms, max_cooldown: 1s}
routes:
  - {name: new-leads, filters: [{exact: {type: com.helloclient.lead}}], sinks: [slack-sales]}
  - {name: everything, sinks: [archive, crm]}
`

// newKChaosDelivery makes worker's n-th event. Each worker has conversations
// of its own (three Hello Client sessions, two customers of the Standard
// Webhooks provider) and sends one event at a time, waiting for its 2xx:
// within a conversation the order of the 2xx answers is the order the
// events were written to the topic. Billing events have no subject.
func newKChaosDelivery(rng *rand.Rand, worker, n int) (d chaosDelivery, conversation string) {
	tag := fmt.Sprintf("w%d-%06d", worker, n)
	switch k := rng.IntN(10); {
	case k < 4: // a lead: to Slack as well
		session := fmt.Sprintf("kchaos-w%d-s%d", worker, rng.IntN(3))
		l := newLead(session)
		l.Email = tag + "@example.com"
		body, _ := json.Marshal(l)
		return helloclientDelivery("lead", body), "helloclient " + session
	case k < 5:
		session := fmt.Sprintf("kchaos-w%d-s%d", worker, rng.IntN(3))
		body := []byte(fmt.Sprintf(`{"Type":"appointment","SerialNumber":"HC-8842","SessionID":%q,"FirstName":"Alan","LastName":"Turing","Email":"%s@example.com","AppointmentTime":"2026-11-24T15:00:00Z","CreateTime":"2026-11-20T10:20:00Z"}`, session, tag))
		return helloclientDelivery("appointment", body), "helloclient " + session
	case k < 7:
		id := "evt_" + tag
		body := []byte(fmt.Sprintf(`{"id":%q,"event":"invoice.paid","invoice":{"number":"INV-%s","amount":%d}}`, id, tag, 100+rng.IntN(9900)))
		return billingDelivery(id, body), ""
	default:
		customer := fmt.Sprintf("cus_w%d_%d", worker, rng.IntN(2))
		body := []byte(fmt.Sprintf(`{"type":"customer.updated","timestamp":"2026-11-20T10:30:00Z","data":{"id":%q,"plan":"pro","seq":%q}}`, customer, tag))
		return stdhooksDelivery("msg_"+tag, body), "stdhooks " + customer
	}
}

// TestKafkaQueueChaosEveryAcknowledgedEventArrives: see the top of this
// file. KCHAOS_SEED=<n> replays a run's plan (which replica is killed
// when, when the CRM and Slack misbehave, which events are sent where);
// the timing of the goroutines is not replayed.
func TestKafkaQueueChaosEveryAcknowledgedEventArrives(t *testing.T) {
	if testing.Short() {
		t.Skip("about 40 s of load and kills; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KCHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KCHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (KCHAOS_SEED=%d replays the plan)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second),
		kfake.SeedTopics(6, "bridge.ingress"), kfake.SeedTopics(1, "bridge.ingress.deadletter"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	broker := cluster.ListenAddrs()[0]
	crm := newChaosCRM(t)
	slack := newChaosSlack(t)

	// A disturbance is a kill, a restart, or a rebalance of a sink's
	// consumer group: a SyncGroup request, with which a member learns its
	// partitions after a member joined or was expelled. Each is noted with
	// when it happened and how many requests the CRM and Slack had taken by
	// then: a second copy of an event needs a kill between the event's 2xx
	// and that copy, or a rebalance in which a delivery outlasted its
	// replica's hand-back (below); the conversation check compares only
	// events acknowledged and delivered between the same two disturbances.
	type disturbance struct {
		at         time.Time
		crm, slack int64
		what       string
	}
	var (
		disturbedMu sync.Mutex
		disturbed   []disturbance
	)
	disturb := func(what string) {
		d := disturbance{time.Now(), int64(len(crm.arrivals())), int64(len(slack.arrivals())), what}
		disturbedMu.Lock()
		disturbed = append(disturbed, d)
		disturbedMu.Unlock()
	}
	lastDisturbance := func() time.Time {
		disturbedMu.Lock()
		defer disturbedMu.Unlock()
		if len(disturbed) == 0 {
			return time.Time{}
		}
		return disturbed[len(disturbed)-1].at
	}
	cluster.ControlKey(int16(kmsg.SyncGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		disturb("rebalance")
		return nil, nil, false
	})
	env := []string{"HC_KEY=" + chaosHelloClientKey, "BILLING_KEY=" + chaosHMACKey, "STD_KEY=" + chaosStdKey, "KAFKA=" + broker,
		"CRM_URL=" + crm.URL + "/api/leads", "SLACK_URL=" + slack.URL + "/services/T0001/B0001/e2eCHAOS"}
	const replicas = 3
	var (
		bridges []*bridgeProc
		bases   []string
		files   []string
	)
	for range replicas {
		b := newBridge(t, kchaosConfig, env...)
		b.Start()
		bridges = append(bridges, b)
		bases = append(bases, "http://"+b.Addr)
		files = append(files, filepath.Join(b.Dir, "events.jsonl"))
	}
	// The groups settle with every replica a member before the load.
	waitFor(t, 20*time.Second, "the consumer groups settled (no rebalance for 1s)", func() bool {
		last := lastDisturbance()
		return !last.IsZero() && time.Since(last) > time.Second
	})

	// The plan, in time since the load started: four kills of a replica
	// picked at random, each started again within 1.5 s (so at most one is
	// down at a time, and never for long); a CRM outage and a slow spell; a
	// Slack rate limit.
	const loadFor = 20 * time.Second
	type step struct {
		at      time.Duration
		what    string
		replica int
	}
	jitter := func(from, span time.Duration) time.Duration {
		return from + time.Duration(rng.Int64N(int64(span)))
	}
	var plan []step
	for i, from := range []time.Duration{2 * time.Second, 6500 * time.Millisecond, 11 * time.Second, 15 * time.Second} {
		at, victim := jitter(from, 2500*time.Millisecond), rng.IntN(replicas)
		plan = append(plan,
			step{at, fmt.Sprintf("kill %d", i+1), victim},
			step{at + jitter(200*time.Millisecond, 1300*time.Millisecond), "restart", victim})
	}
	crmDown := jitter(1*time.Second, 6*time.Second)
	crmSlow := jitter(5*time.Second, 8*time.Second)
	slackLimited := jitter(3*time.Second, 10*time.Second)
	plan = append(plan,
		step{crmDown, "crm down", -1}, step{crmDown + jitter(2*time.Second, 2*time.Second), "crm up", -1},
		step{crmSlow, "crm slow", -1}, step{crmSlow + jitter(3*time.Second, 2*time.Second), "crm fast", -1},
		step{slackLimited, "slack limited", -1}, step{slackLimited + jitter(2*time.Second, 2*time.Second), "slack unlimited", -1},
	)
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	var planText []string
	for _, s := range plan {
		if s.replica >= 0 {
			planText = append(planText, fmt.Sprintf("%.2fs %s (replica %d)", s.at.Seconds(), s.what, s.replica))
		} else {
			planText = append(planText, fmt.Sprintf("%.2fs %s", s.at.Seconds(), s.what))
		}
	}
	t.Logf("plan: %s", strings.Join(planText, ", "))

	kills := 0
	killed := make([]bool, replicas)

	spells := newChaosSpells(crm, slack)

	load, stopLoad := runChaosLoad(t, bases, seed, 6, 15*time.Millisecond, newKChaosDelivery, true)
	start := time.Now()
	for _, s := range plan {
		time.Sleep(time.Until(start.Add(s.at)))
		if spells.step(s.what) {
			continue
		}
		switch s.what {
		case "restart":
			disturb("restart")
			bridges[s.replica].Start()
		default:
			bridges[s.replica].Kill()
			disturb("kill")
			kills++
			killed[s.replica] = true
		}
	}
	time.Sleep(time.Until(start.Add(loadFor)))
	stopLoad()
	spells.wait()

	load.mu.Lock()
	acked := load.acked
	var all, leads []string
	for id := range acked {
		all = append(all, id)
		if load.sent[id].isLead() {
			leads = append(leads, id)
		}
	}
	sort.Strings(all)
	t.Logf("providers: %d requests, %d events acknowledged (%d leads; by replica %v), %d sent again after their 2xx, %d unanswered or 5xx, refused %v",
		load.tries, len(acked), len(leads), load.byCopy, len(load.resent), len(load.inFlight), load.refused)
	load.mu.Unlock()
	disturbedMu.Lock()
	loadDisturbances := map[string]int{}
	for _, d := range disturbed {
		if d.at.After(start) {
			loadDisturbances[d.what]++
		}
	}
	disturbedMu.Unlock()
	t.Logf("disturbances during the load: %v (a rebalance counts once per member of each sink's group)", loadDisturbances)
	if kills < 3 {
		t.Fatalf("%d kills, want at least 3", kills)
	}
	if len(acked) < 500 || len(leads) < 100 || len(load.resent) < 10 {
		t.Fatalf("too little load to prove anything: %d acknowledged, %d leads, %d sent again", len(acked), len(leads), len(load.resent))
	}

	// Drain: every acknowledged event at each destination (the replicas'
	// files together).
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
		return out
	}
	archive := func() (out []arrival) {
		for i, f := range files {
			got, torn := fileArrivals(t, f)
			for _, line := range torn {
				t.Errorf("replica %d's file: line is not an event: %s", i, line)
			}
			out = append(out, got...)
		}
		return out
	}
	readArchive := func() (out []arrival) {
		for _, f := range files {
			got, _ := fileArrivals(t, f)
			out = append(out, got...)
		}
		return out
	}
	drained := time.Now()
	for {
		left := []int{len(missing(readArchive(), all)), len(missing(crm.arrivals(), all)), len(missing(slack.arrivals(), leads))}
		if left[0]+left[1]+left[2] == 0 {
			break
		}
		if time.Since(drained) > 30*time.Second {
			t.Errorf("after 30s of draining, missing: %d from the files, %d from the CRM, %d leads from Slack", left[0], left[1], left[2])
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("drained %.1fs after the load stopped", time.Since(drained).Seconds())
	time.Sleep(time.Second) // a late duplicate would show now
	disturbedMu.Lock()
	marks := append([]disturbance(nil), disturbed...)
	disturbedMu.Unlock()

	load.mu.Lock()
	defer load.mu.Unlock()
	// A rebalance alone delivers nothing twice: each replica hands back
	// its partitions' deliveries under way before they move, and says so
	// when one outlasted its wait. Those warnings' times, from every
	// replica's log, make the rebalances around them explanations.
	var lateHandBacks []time.Time
	for _, b := range bridges {
		lateHandBacks = append(lateHandBacks, logTimes(t, b.Log(), "deliveries still under way when the sink's group rebalanced")...)
	}
	explains := func(d disturbance) bool {
		switch d.what {
		case "kill":
			return true
		case "rebalance":
			for _, late := range lateHandBacks {
				if late.After(d.at.Add(-kchaosSessionTimeout)) && late.Before(d.at.Add(time.Second)) {
					return true
				}
			}
		}
		return false
	}
	t.Logf("%d hand-backs had deliveries outlast their wait", len(lateHandBacks))
	// explained says whether a disturbance that can deliver an event again
	// came after id was acknowledged and before the copy at position at of
	// a destination; mark gives where that destination was at a
	// disturbance (nil: not checked).
	explained := func(id string, at int64, mark func(disturbance) int64) bool {
		if mark == nil {
			return true
		}
		for _, d := range marks {
			if explains(d) && d.at.After(load.ackedAt[id]) && mark(d) <= at {
				return true
			}
		}
		return false
	}
	check := func(sink string, got []arrival, want []string, mark func(disturbance) int64) {
		t.Helper()
		if m := missing(got, want); len(m) > 0 {
			sort.Strings(m)
			t.Errorf("%s: %d of %d acknowledged events never arrived, e.g. %v", sink, len(m), len(want), m[:min(5, len(m))])
		}
		report, reported := sinkProblems(t, sink)
		defer reported()
		first := map[string]arrival{}
		dups, stray, resentDups := 0, 0, 0
		for _, a := range got {
			if !acked[a.id] && !load.inFlight[a.id] {
				stray++
				report("%s arrived but was never acknowledged, unanswered or answered 5xx", a.id)
			}
			if d, ok := load.sent[a.id]; ok && a.data != nil && !jsonEqual(a.data, d.body) {
				report("%s carries %s, the provider sent %s", a.id, a.data, d.body)
			}
			f, seen := first[a.id]
			if !seen {
				first[a.id] = a
				continue
			}
			dups++
			if load.resent[a.id] {
				resentDups++
			}
			if !bytes.Equal(a.content, f.content) {
				report("the copies of %s differ:\n%s\n%s", a.id, f.content, a.content)
			}
			if !explained(a.id, a.at, mark) {
				why := "sent again by its provider after its 2xx"
				if !load.resent[a.id] {
					why = "not sent again by its provider"
				}
				report("%s arrived again (at %d, first at %d) with no kill or late hand-back since its 2xx; %s", a.id, a.at, f.at, why)
			}
		}
		t.Logf("%s: %d acknowledged, %d arrived, %d distinct, %d duplicates (%d of events sent again), %d stray",
			sink, len(want), len(got), len(first), dups, resentDups, stray)
	}
	// The files' positions are byte offsets in one replica's file or
	// another: their copies are compared, not placed in time.
	check("archive", archive(), all, nil)
	crmGot := crm.arrivals()
	check("crm", crmGot, all, func(d disturbance) int64 { return d.crm })
	check("slack-sales", slack.arrivals(), leads, func(d disturbance) int64 { return d.slack })
	if n := topicEnd(t, broker, "bridge.ingress.deadletter"); n != 0 {
		t.Errorf("%d records on the dead-letter topic, want none", n)
	}

	// The conversation guarantee: within a conversation, the CRM got each
	// event first in the order the events were acknowledged. Checked for
	// pairs acknowledged and first delivered between the same two
	// disturbances; inversions across disturbances are counted and logged.
	period := func(at time.Time, crmIndex int64) (ackP, crmP int) {
		for _, d := range marks {
			if !d.at.After(at) {
				ackP++
			}
			if d.crm <= crmIndex {
				crmP++
			}
		}
		return ackP, crmP
	}
	firstAt := map[string]int64{}
	for _, a := range crmGot {
		if _, ok := firstAt[a.id]; !ok {
			firstAt[a.id] = a.at
		}
	}
	byConv := map[string][]string{}
	for id, conv := range load.subject {
		if _, ok := firstAt[id]; ok && acked[id] {
			byConv[conv] = append(byConv[conv], id)
		}
	}
	compared, inversions, across := 0, 0, 0
	for conv, ids := range byConv {
		sort.Slice(ids, func(i, j int) bool { return load.ackSeq[ids[i]] < load.ackSeq[ids[j]] })
		for i := 1; i < len(ids); i++ {
			a, b := ids[i-1], ids[i]
			aAck, aCRM := period(load.ackedAt[a], firstAt[a])
			bAck, bCRM := period(load.ackedAt[b], firstAt[b])
			quiet := aAck == aCRM && aCRM == bAck && bAck == bCRM
			if quiet {
				compared++
			}
			if firstAt[a] < firstAt[b] {
				continue
			}
			if !quiet {
				across++
				continue
			}
			if inversions++; inversions <= 10 {
				t.Errorf("conversation %s: %s acknowledged before %s but the CRM got it after (request %d, %d), with no kill or rebalance between",
					conv, a, b, firstAt[a], firstAt[b])
			}
		}
	}
	t.Logf("conversations: %d, %d consecutive pairs compared within a quiet period, %d out of order; %d out of order across a kill or rebalance (allowed)",
		len(byConv), compared, inversions, across)
	if compared < 50 {
		t.Errorf("only %d pairs of a conversation acknowledged and delivered between two disturbances: the order went unchecked", compared)
	}

	// The trouble happened: chaos that missed proves nothing.
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

	// Every sink's consumer group committed past everything: its lag, as a
	// replica that was never killed measures it (any, when each was), is
	// 0, measured after the drain.
	survivor := 0
	for i, k := range killed {
		if !k {
			survivor = i
			break
		}
	}
	admin := bridges[survivor].Admin
	lagAt := time.Now()
	deadline := lagAt.Add(20 * time.Second)
	for _, sink := range []string{"archive", "crm", "slack-sales"} {
		label := `sink="` + sink + `"`
		for {
			lag, ok := metricSeries(t, admin, "hookbridge_queue_lag", label)
			at, _ := metricSeries(t, admin, "hookbridge_queue_lag_updated_timestamp_seconds", label)
			if ok && lag == 0 && at >= float64(lagAt.Unix()) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("replica %d: hookbridge_queue_lag{%s} = %v (measured at %v, present %v), want 0 measured after the drain", survivor, label, lag, at, ok)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("lag 0 on replica %d for every sink %.1fs after the drain", survivor, time.Since(lagAt).Seconds())
	for i, b := range bridges {
		if code := b.Stop(); code != 0 {
			t.Errorf("replica %d: SIGTERM exit code %d", i, code)
		}
	}
}

// logTimes is when each line of a bridge's log that contains msg was
// logged (JSON or text format).
func logTimes(t *testing.T, log, msg string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		m := logTimeRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("no time in the log line %q", line)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1]+m[2])
		if err != nil {
			t.Errorf("the log line %q: %v", line, err)
			continue
		}
		out = append(out, at)
	}
	return out
}

var logTimeRE = regexp.MustCompile(`"time":"([^"]+)"|time=(\S+)`)
