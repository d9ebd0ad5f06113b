package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/delivery"
	httpsink "github.com/hookbridge/hookbridge/sinks/http"

	_ "github.com/hookbridge/hookbridge/sinks/all"
	_ "github.com/hookbridge/hookbridge/sources/all"
)

const base = `
sources:
  hc: {type: helloclient, secret: s}
sinks:
  archive: {type: file, path: /tmp/x.jsonl}
`

func parse(t *testing.T, src string, env map[string]string) (*File, config.Errors) {
	t.Helper()
	f, err := Parse("c.yaml", []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		return f, nil
	}
	errs, ok := err.(config.Errors)
	if !ok {
		t.Fatalf("not config.Errors: %v", err)
	}
	return nil, errs
}

func TestParseDefaultsAndShape(t *testing.T) {
	f, errs := parse(t, base+"routes:\n  - {name: all, sinks: [archive]}\n", nil)
	if errs != nil {
		t.Fatal(errs)
	}
	if f.Server.Listen != ":8080" || f.Server.BodyLimit != 1<<20 || f.Queue.Path != "./data/queue" || f.Queue.DedupMemory != 4<<20 || f.Admin.Listen != "127.0.0.1:9090" {
		t.Fatalf("defaults: %+v %+v %+v", f.Server, f.Queue, f.Admin)
	}
	hc := f.Source("hc")
	if hc == nil || hc.Common.Path != "/webhooks/hc" || hc.Common.BodyLimit != f.Server.BodyLimit {
		t.Fatalf("source: %+v", hc)
	}
	s := f.Sink("archive")
	if s == nil || !s.IsEnabled() || s.Common.Retry.MaxAttempts != 8 {
		t.Fatalf("sink: %+v", s)
	}
	rt, err := Build(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Table.Endpoints) != 1 || rt.Sinks["archive"] == nil {
		t.Fatalf("runtime: %+v", rt)
	}
}

func TestParseMistakes(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // each must appear in some error, with its line
	}{
		{"unknown top-level key", base + "extra: 1\n", []string{`c.yaml:6:1: unknown key "extra"`}},
		{"unknown source type", `
sources: {hc: {type: hellocliant, secret: s}}
`, []string{`sources.hc: unknown type "hellocliant" (known: crisp, github, helloclient,`}},
		{"dead letter to a missing sink", `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  a: {type: file, path: x, dead_letter: nowhere}
`, []string{`c.yaml:4:28: sinks.a: dead_letter names unknown sink "nowhere"`}},
		{"every mistake of a source and a sink at once", `
sources:
  hc: {type: helloclient, secret: "", tolerence: 5m}
sinks:
  h: {type: http, url: "", timeout: 5}
`, []string{"c.yaml:3:27: secret: is required", `c.yaml:3:39: unknown key "tolerence"`,
			"c.yaml:5:19: url: is required", `c.yaml:5:37: "5" is not a duration`}},
		{"a path no request could match", `
sources:
  hc: {type: helloclient, secret: s, path: "/webhooks/x y"}
`, []string{`c.yaml:3:38: sources.hc: path "/webhooks/x y" must be a plain URL path`}},
		{"a source that is not a URI", `
sources:
  o: {type: hmac, secret: s, header: X-Sig, event_type: com.x, source: "not a uri"}
`, []string{`source: "not a uri" is not a URI: ' ' may not appear in one unescaped`}},
		{"concurrency and batch size out of range", `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  a: {type: file, path: x, concurrency: 100000000, batch_size: -5}
`, []string{"c.yaml:4:28: concurrency: must be between 0 (the sink's default) and 1024, not 100000000",
			"c.yaml:4:52: batch_size: must be between 0 (the default) and 100000, not -5"}},
		{"listeners", base + "server: {listen: \"127.0.0.1:8080\", read_timeout: -1s}\nadmin: {listen: \"127.0.0.1:8080\"}\n", []string{
			"c.yaml:7:9: admin.listen must differ from server.listen (127.0.0.1:8080)", "c.yaml:6:36: server.read_timeout must not be negative, not -1s"}},
		{"a listen address without a port", base + "admin: {listen: not-an-address}\n", []string{`c.yaml:6:9: admin.listen "not-an-address" is not host:port`}},
		{"sizes that are not numbers", base + "server: {body_limit: NaN}\nmemory_limit: Inf\n", []string{
			`c.yaml:6:22: "NaN" is not a size such as 512KB or 1MiB`, `c.yaml:7:15: "Inf" is not a size such as 512KB or 1MiB`}},
		{"dead letter to itself", `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  a: {type: file, path: x, dead_letter: a}
`, []string{"dead_letter cannot be the sink itself"}},
		{"two sources on one path", `
sources:
  a: {type: helloclient, secret: s, path: /hooks}
  b: {type: helloclient, secret: s, path: /hooks}
`, []string{"path /hooks is already served by source a"}},
		{"unguarded source without allow_ips", `
sources:
  ue: {type: userecho, account: "https://acme.userecho.com"}
`, []string{"c.yaml:3:3: sources.ue: this source authenticates nothing by itself"}},
		{"bad CIDR", `
server: {trusted_proxies: [10.0.0.0/33]}
sources:
  hc: {type: helloclient, secret: s, allow_ips: [nope]}
`, []string{"server.trusted_proxies", "sources.hc.allow_ips"}},
		{"kafka queue without brokers", base + "queue: {type: kafka}\n", []string{"c.yaml:6:1: queue.brokers is required with type kafka"}},
		{"kafka queue mistakes", base + `queue:
  type: kafka
  brokers: [kafka1]
  topic: "bad topic"
  group: ""
  session_timeout: 10ms
  sasl: {mechanism: plain}
  dedup_ids: 0
  dedup_lookback: -5
  commit_interval: 5m
`, []string{`c.yaml:8:3: queue.brokers: "kafka1" is not host:port`, "c.yaml:9:3: queue.topic:", "c.yaml:10:3: queue.group must not be empty",
			"c.yaml:11:3: queue.session_timeout must be at least 1s", "c.yaml:12:3: queue.sasl: username is required",
			"c.yaml:13:3: queue.dedup_ids must be at least 1, not 0", "c.yaml:14:3: queue.dedup_lookback must be at least 1, not -5",
			"c.yaml:15:3: queue.commit_interval must be between 10ms and 1m, not 5m0s"}},
		{"kafka queue dead letters onto the ingress", base + "queue: {type: kafka, brokers: [\"k:9092\"], topic: t, dead_letter_topic: t}\n", []string{"queue.dead_letter_topic must differ from queue.topic"}},
		{"kafka queue state on the ingress", base + "queue: {type: kafka, brokers: [\"k:9092\"], topic: t, state_topic: t}\n", []string{"c.yaml:6:53: queue.state_topic must differ from queue.topic and queue.dead_letter_topic"}},
		{"kafka keys on the embedded queue", base + "queue: {path: q, brokers: [\"k:9092\"]}\n", []string{"c.yaml:6:18: queue.brokers is for queue type kafka, and this queue is embedded"}},
		{"dedup keys of kafka on the embedded queue", base + "queue: {dedup_lookback: 100}\n", []string{"c.yaml:6:9: queue.dedup_lookback is for queue type kafka, and this queue is embedded"}},
		{"embedded keys on the kafka queue", base + "queue: {type: kafka, brokers: [\"k:9092\"], min_free_space: 1GiB}\n", []string{"c.yaml:6:43: queue.min_free_space is for queue type embedded, and this queue is kafka"}},
		{"unknown queue type", base + "queue: {type: redis}\n", []string{`unknown queue type "redis" (embedded or kafka)`}},
		{"dedup window too long", base + "queue: {dedup_window: 9000h}\n", []string{"c.yaml:6:9: queue.dedup_window must be more than 0 and at most 8784h0m0s (366 days), not 9000h0m0s"}},
		{"dedup window zero", base + "queue: {dedup_window: 0s}\n", []string{"c.yaml:6:9: queue.dedup_window must be more than 0 and at most 8784h0m0s (366 days), not 0s"}},
		{"dedup memory too small", base + "queue: {dedup_memory: 4KiB}\n", []string{"c.yaml:6:9: queue.dedup_memory must be between 64KiB and 1GiB, not 4KiB"}},
		{"kafka queue holding too little", base + "queue: {type: kafka, brokers: [\"k:9092\"], max_held_bytes: 1KiB}\n", []string{"c.yaml:6:43: queue.max_held_bytes must be at least 64KiB, not 1KiB"}},
		{"memory limit too small", base + "memory_limit: 8MiB\n", []string{"c.yaml:6:1: memory_limit must be 0 (off) or at least 32MiB, not 8MiB"}},
		{"dedup memory not a size", base + "queue: {dedup_memory: lots}\n", []string{"c.yaml:6:23:", `"lots" is not a size`}},
		{"enabled sink with empty values", `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  crm: {type: http, url: "${CRM_URL:-}"}
`, []string{"c.yaml:4:"}},
		{"missing type", `
sources: {hc: {secret: s}}
`, []string{"sources.hc: type is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := parse(t, c.src, nil)
			if errs == nil {
				t.Fatal("accepted")
			}
			all := errs.Error()
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("errors lack %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestDisabledSinkMayBeEmptyAndRoutesSkipIt(t *testing.T) {
	src := `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  archive: {type: file, path: /tmp/x.jsonl}
  crm:
    type: http
    enabled: ${CRM_ENABLED:-false}
    url: "${CRM_URL:-}"
    dead_letter: archive
routes:
  - {name: leads, sinks: [crm, archive]}
`
	f, errs := parse(t, src, nil)
	if errs != nil {
		t.Fatal(errs)
	}
	rt, err := Build(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Sinks["crm"] != nil {
		t.Fatal("a disabled sink was built")
	}
	if got := rt.Router.Routes()[0].Sinks; len(got) != 1 || got[0] != "archive" {
		t.Fatalf("route sinks %v, want only archive", got)
	}
	if _, errs := parse(t, src, map[string]string{"CRM_ENABLED": "true"}); errs == nil || !strings.Contains(errs.Error(), "url") {
		t.Fatalf("enabling it without a url must fail: %v", errs)
	}
}

func TestBuildReusesUnchangedSinks(t *testing.T) {
	src := base + "  other: {type: file, path: /tmp/y.jsonl}\n"
	f1, _ := parse(t, src, nil)
	rt1, err := Build(f1, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := parse(t, strings.Replace(src, "/tmp/y.jsonl", "/tmp/z.jsonl", 1), nil)
	rt2, err := Build(f2, rt1)
	if err != nil {
		t.Fatal(err)
	}
	if rt2.Sinks["archive"] != rt1.Sinks["archive"] {
		t.Error("an unchanged sink was rebuilt")
	}
	if rt2.Sinks["other"] == rt1.Sinks["other"] {
		t.Error("a changed sink was kept")
	}
}

// A Slack sink is paced at one message a second unless it says otherwise;
// other kinds are not paced unless they say so.
func TestRateLimitDefaultsByKind(t *testing.T) {
	f, errs := parse(t, `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  alerts: {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/x", text: hi}
  fast-alerts: {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/y", text: hi, rate_limit: none}
  crm: {type: http, url: "https://crm.example.com/leads"}
  paced-crm: {type: http, url: "https://crm.example.com/leads", rate_limit: 120/m}
routes:
  - {name: all, sinks: [alerts, fast-alerts, crm, paced-crm]}
`, nil)
	if errs != nil {
		t.Fatal(errs)
	}
	for name, want := range map[string]float64{"alerts": 1, "fast-alerts": 0, "crm": 0, "paced-crm": 2} {
		if got := f.Sink(name).Common.RateLimit.PerSecond; got != want {
			t.Errorf("%s: rate_limit %v/s, want %v/s", name, got, want)
		}
	}
	if _, errs := parse(t, base+"  slow: {type: file, path: x, rate_limit: 5/d}\n", nil); errs == nil || !strings.Contains(errs.Error(), `"5/d" is not a rate`) {
		t.Errorf("a bad rate: %v", errs)
	}
}

// circuit_breaker is on unless a sink turns it off; a partial mapping keeps
// the other defaults, and every bad value is reported at once, at its line.
func TestCircuitBreakerInTheFile(t *testing.T) {
	f, errs := parse(t, `
sources: {hc: {type: helloclient, secret: s}}
sinks:
  crm: {type: http, url: "https://crm.example.com/leads"}
  fallback: {type: http, url: "https://crm.example.com/leads", circuit_breaker: off}
  patient: {type: http, url: "https://crm.example.com/leads", circuit_breaker: {failures: 10, cooldown: "${COOLDOWN}"}}
routes:
  - {name: all, sinks: [crm, fallback, patient]}
`, map[string]string{"COOLDOWN": "2m"})
	if errs != nil {
		t.Fatal(errs)
	}
	for name, want := range map[string]delivery.CircuitBreaker{
		"crm":      delivery.DefaultCircuitBreaker,
		"fallback": {Off: true},
		"patient":  {Failures: 10, Cooldown: 2 * time.Minute, MaxCooldown: 5 * time.Minute},
	} {
		if got := f.Sink(name).Common.CircuitBreaker; got != want {
			t.Errorf("%s: circuit_breaker %+v, want %+v", name, got, want)
		}
	}
	_, errs = parse(t, base+`  a: {type: file, path: x, circuit_breaker: {failures: 0}}
  b: {type: file, path: x, circuit_breaker: {failures: 3, cooldown: soon}}
  c: {type: file, path: x, circuit_breaker: sometimes}
`, nil)
	want := []string{
		"c.yaml:6:28: circuit_breaker: failures must be at least 1, not 0",
		`c.yaml:7:45: circuit_breaker.cooldown: "soon" is not a duration`,
		`c.yaml:8:45: circuit_breaker: "sometimes" is neither on, off nor a mapping`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:\n%v\nwant %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %s\nwant %s...", i, errs[i], w)
		}
	}
}

// A command that uses some sections of the file is stopped only by the
// problems inside them.
func TestLoadSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	const conf = `server: {listen: "127.0.0.1:8080"}
admin:
  listen: "127.0.0.1:9090"
  token: "${LOADSECTIONS_ADMIN_TOKEN}"
sources:
  hc: {type: helloclient, secret: "${LOADSECTIONS_HC_KEY}"}
  crisp: {type: crisp, key: "${LOADSECTIONS_CRISP_KEY}"}
sinks:
  crm: {type: http, url: "${LOADSECTIONS_CRM_URL}", tiemout: 5s}
routes:
  - {name: all, sinks: [crm]}
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOADSECTIONS_ADMIN_TOKEN", "tok")
	t.Setenv("LOADSECTIONS_HC_KEY", "k")
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted a file with unset variables and an unknown key")
	}
	f, err := LoadSections(path, []string{"admin"})
	if err != nil {
		t.Fatalf("admin alone: %v", err)
	}
	if f.Admin.Token != "tok" || f.Sink("crm") == nil {
		t.Errorf("admin token %q, sink crm %v", f.Admin.Token, f.Sink("crm"))
	}
	f, err = LoadSections(path, []string{"server"}, []string{"sources", "hc"})
	if err != nil {
		t.Fatalf("server and sources.hc: %v", err)
	}
	if f.Source("hc") == nil || f.Server.Listen != "127.0.0.1:8080" {
		t.Errorf("source hc %v, listen %q", f.Source("hc"), f.Server.Listen)
	}
	_, err = LoadSections(path, []string{"server"}, []string{"sources", "crisp"})
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7:") || !strings.Contains(err.Error(), "LOADSECTIONS_CRISP_KEY") || strings.Contains(err.Error(), "LOADSECTIONS_CRM_URL") {
		t.Errorf("sources.crisp: %v, want only its own unset variable", err)
	}
	t.Setenv("LOADSECTIONS_ADMIN_TOKEN", "")
	os.Unsetenv("LOADSECTIONS_ADMIN_TOKEN")
	if _, err := LoadSections(path, []string{"admin"}); err == nil || !strings.Contains(err.Error(), "c.yaml:4:") {
		t.Errorf("admin with its token unset: %v", err)
	}
	if _, err := LoadSections(path, []string{"sources", "nosuch"}); err != nil {
		t.Errorf("a section the file lacks: %v", err)
	}
}

// An empty section keeps its defaults; a second YAML document is refused,
// not ignored.
func TestEmptySectionsAndSecondDocuments(t *testing.T) {
	const rest = "sources:\n  hc: {type: helloclient, secret: s}\nsinks:\n  a: {type: file, path: ./x.jsonl, retry: }\nroutes:\n  - {name: r, sinks: [a]}\n"
	f, err := Parse("c.yaml", []byte("server:\n  # listen: \":9999\"\nqueue:\nlog:\n"+rest), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("empty sections: %v", err)
	}
	if f.Server.Listen != ":8080" || f.Server.BodyLimit != 1<<20 || f.Queue.Type != "embedded" || f.Log.Level != "info" ||
		f.Sink("a").Common.Policy.Retry.MaxAttempts != 8 {
		t.Errorf("defaults lost: server %+v queue type %q log %+v retry %+v", f.Server, f.Queue.Type, f.Log, f.Sink("a").Common.Policy.Retry)
	}
	if _, err := Parse("c.yaml", []byte(rest+"---\n"), nil); err != nil {
		t.Errorf("a trailing empty document: %v", err)
	}
	_, err = Parse("c.yaml", []byte(rest+"---\nsinks: {bogus: {type: nope}}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7:1: the file holds more than one YAML document") {
		t.Errorf("a second document: %v", err)
	}
}

// A secret that reaches a template field through ${...} and does not parse
// as a template is not quoted in the error.
func TestErrorsDoNotQuoteExpandedSecrets(t *testing.T) {
	src := "sources:\n  hc: {type: helloclient, secret: s}\nsinks:\n  h: {type: http, url: \"https://x.example/\", headers: {Authorization: \"Bearer ${CRM_TOKEN}\"}}\n"
	lookup := func(name string) (string, bool) { return "abc{{SUPERSECRETPART}}", name == "CRM_TOKEN" }
	_, err := Parse("c.yaml", []byte(src), lookup)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:4:71: bad template") || strings.Contains(err.Error(), "SUPERSECRET") {
		t.Fatalf("error %v: want a bad template at 4:71 without the secret", err)
	}
}

// Every bad template among a body's or blocks' leaves is reported at its
// own line and column, and one that holds a ${...} is not quoted.
func TestEveryBadLeafTemplateIsReportedWhereItIs(t *testing.T) {
	src := `sources:
  hc: {type: helloclient, secret: s}
sinks:
  crm:
    type: http
    url: "https://crm.example/leads"
    body:
      email: "{{ .Data.Email }"
      tags: [lead, "{{ end }}"]
      token: "${CRM_TOKEN}"
  alert:
    type: slack
    webhook_url: "https://hooks.slack.com/services/T/B/x"
    text: "new lead"
    blocks:
      - type: section
        text: {type: mrkdwn, text: "{{ if }}"}
routes:
  - {name: all, sinks: [crm, alert]}
`
	lookup := func(name string) (string, bool) { return "abc{{SUPERSECRETPART}}", name == "CRM_TOKEN" }
	_, err := Parse("c.yaml", []byte(src), lookup)
	var got []string
	for _, e := range err.(config.Errors) {
		got = append(got, e.Error())
	}
	want := []string{
		`c.yaml:8:14: email: bad template: 1: unexpected "}" in operand`,
		`c.yaml:9:20: tags: bad template: 1: unexpected {{end}}`,
		`c.yaml:10:14: token (the value holds a ${...}: what it expanded to is not shown)`,
		`c.yaml:17:36: text: bad template: 1: missing value for if`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Sinks and sources may share settings through anchors kept under x- keys
// and merged with <<, as Docker Compose files do.
func TestMergeKeysAndExtensionKeys(t *testing.T) {
	f, errs := parse(t, `
x-crm: &crm
  type: http
  timeout: 5s
  retry: {max_attempts: 3}
  headers: {Authorization: "Bearer ${CRM_TOKEN}"}
x-notes: anything the bridge does not read
sources:
  hc: {type: helloclient, secret: s}
sinks:
  crm-eu: {<<: *crm, url: "https://eu.crm.example/leads"}
  crm-us:
    <<: *crm
    url: "https://us.crm.example/leads"
    timeout: 2s
routes:
  - {name: all, sinks: [crm-eu, crm-us]}
`, map[string]string{"CRM_TOKEN": "t"})
	if errs != nil {
		t.Fatal(errs)
	}
	for name, timeout := range map[string]time.Duration{"crm-eu": 5 * time.Second, "crm-us": 2 * time.Second} {
		s := f.Sink(name)
		if s == nil {
			t.Fatalf("no sink %s", name)
		}
		c, ok := s.Config.(*httpsink.Config)
		if !ok {
			t.Fatalf("%s: config %T", name, s.Config)
		}
		if s.Common.Type != "http" || s.Common.Retry.MaxAttempts != 3 || c.Timeout != timeout || len(c.Headers) != 1 {
			t.Errorf("%s: type %q, max_attempts %d, timeout %s, headers %v", name, s.Common.Type, s.Common.Retry.MaxAttempts, c.Timeout, c.Headers)
		}
	}
	// So is a check's mistake at a merged key.
	_, errs = parse(t, `
x-crm: &crm {type: http, method: GET}
sources:
  hc: {type: helloclient, secret: s}
sinks:
  a: {<<: *crm, url: "https://a.example"}
  b: {<<: *crm, url: "https://b.example"}
routes:
  - {name: all, sinks: [a, b]}
`, nil)
	if len(errs) != 2 || !strings.HasSuffix(errs[0].Msg, "(merged into the mapping at line 6)") || !strings.HasSuffix(errs[1].Msg, "(merged into the mapping at line 7)") {
		t.Errorf("errors %v, want the method's mistake for each of the sinks at lines 6 and 7", errs)
	}
	// An x- key nothing reaches is not read, ${...} and all; a sink may
	// be an alias of one.
	f, errs = parse(t, `
x-unused: {secret: "${NOT_SET_ANYWHERE}"}
x-archive: &archive {type: file, path: /tmp/x.jsonl}
sources:
  hc: {type: helloclient, secret: s}
sinks:
  archive: *archive
routes:
  - {name: all, sinks: [archive]}
`, nil)
	if errs != nil || f.Sink("archive") == nil || f.Sink("archive").Common.Type != "file" {
		t.Errorf("x- keys and a sink that is an alias: %v", errs)
	}
	// A mistake in the anchor is reported where it is written, once for
	// each sink that merges it, naming the sink's line.
	_, errs = parse(t, `
x-crm: &crm {type: http, tiemout: 5s}
sources:
  hc: {type: helloclient, secret: s}
sinks:
  a: {<<: *crm, url: "https://a.example"}
  b: {<<: *crm, url: "https://b.example"}
routes:
  - {name: all, sinks: [a, b]}
`, nil)
	if len(errs) != 2 || errs[0].Line != 2 || errs[1].Line != 2 ||
		!strings.HasPrefix(errs[0].Msg, `unknown key "tiemout"`) || !strings.HasSuffix(errs[0].Msg, "(merged into the mapping at line 6)") ||
		!strings.HasSuffix(errs[1].Msg, "(merged into the mapping at line 7)") {
		t.Errorf("errors %v, want an unknown key at line 2 for each of the sinks at lines 6 and 7", errs)
	}
}

// A section's problems include those of the anchors it merges, wherever
// they are written, and only those.
func TestLoadSectionsFollowsMerges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	const conf = `x-crisp: &crisp {type: crisp, key: "${LOADSECTIONS_MERGED_CRISP_KEY}"}
x-crm: &crm {type: http, url: "${LOADSECTIONS_MERGED_CRM_URL}"}
sources:
  crisp: {<<: *crisp}
  hc: {type: helloclient, secret: k}
sinks:
  crm: {<<: *crm}
routes:
  - {name: all, sinks: [crm]}
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSections(path, []string{"sources", "crisp"})
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1:") || strings.Contains(err.Error(), "LOADSECTIONS_MERGED_CRM_URL") {
		t.Errorf("sources.crisp: %v, want only its merged unset variable", err)
	}
	if _, err := LoadSections(path, []string{"sources", "hc"}); err != nil {
		t.Errorf("sources.hc: %v", err)
	}
	// A merge of something that is not a mapping, on a line of its own.
	const bad = `x-list: &list [1, 2]
sources:
  hc:
    type: helloclient
    secret: k
    <<: *list
sinks:
  archive: {type: file, path: /tmp/x.jsonl}
routes:
  - {name: all, sinks: [archive]}
`
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSections(path, []string{"sources", "hc"}); err == nil || !strings.Contains(err.Error(), "c.yaml:6:9: a merge (<<)") {
		t.Errorf("sources.hc merging a list: %v, want the merge's error", err)
	}
	// A section merged in whole.
	const whole = `x-sources: &sources
  crisp: {type: crisp, key: "${LOADSECTIONS_MERGED_WHOLE_KEY}"}
sources:
  <<: *sources
sinks:
  archive: {type: file, path: /tmp/x.jsonl}
routes:
  - {name: all, sinks: [archive]}
`
	if err := os.WriteFile(path, []byte(whole), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSections(path, []string{"sources", "crisp"}); err == nil || !strings.Contains(err.Error(), "LOADSECTIONS_MERGED_WHOLE_KEY") {
		t.Errorf("sources.crisp merged in whole: %v, want its unset variable", err)
	}
}
