package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The tests in this file keep the quick start true: every source of
// ../config.example.yaml has a sample in ../testdata/payloads, named
// <source>-<event>.json, that `bridge send` signs as the provider does and
// the running example delivers to its file sink.

// payloadsDir holds the quick start's samples.
const payloadsDir = "../testdata/payloads"

// sampleTypes is the CloudEvent type each sample of payloadsDir becomes. A
// new sample needs its line here.
var sampleTypes = map[string]string{
	"helloclient-lead.json":                  "com.helloclient.lead",
	"helpcrunch-chat-new.json":               "com.helpcrunch.chat.new",
	"crisp-message-send.json":                "chat.crisp.message.send",
	"socialboards-ticket-status-change.json": "com.socialboards.ticket_status_change",
	"userecho-topic-created.json":            "com.userecho.topic.created",
	"billing-order-paid.json":                "com.example.billing.order.paid",
	"stdhooks-invoice-paid.json":             "invoice.paid",
	"github-issues-opened.json":              "com.github.issues.opened",
	"slack-app-mention.json":                 "com.slack.app_mention",
	"meta-whatsapp-message.json":             "com.meta.whatsapp_business_account.messages",
	"stripe-checkout-session-completed.json": "com.stripe.checkout.session.completed",
}

// configSources returns the names of the sources of the config file at
// path, in the file's order.
func configSources(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", path)
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "sources" {
			continue
		}
		srcs := top.Content[i+1]
		if srcs.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: sources is not a mapping", path, srcs.Line)
		}
		var names []string
		for j := 0; j+1 < len(srcs.Content); j += 2 {
			names = append(names, srcs.Content[j].Value)
		}
		return names, nil
	}
	return nil, fmt.Errorf("%s: no sources", path)
}

// exampleSamples pairs each source of the config at configPath with its
// samples in dir: the files named <source>-<anything>.json, each given to
// the longest source name it starts with. Its error names every source
// without a sample and every sample that names no source.
func exampleSamples(configPath, dir string) (names []string, samples map[string][]string, err error) {
	names, err = configSources(configPath)
	if err != nil {
		return nil, nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	samples = map[string][]string{}
	var errs []error
	for _, f := range files {
		base := filepath.Base(f)
		owner := ""
		for _, name := range names {
			if strings.HasPrefix(base, name+"-") && len(name) > len(owner) {
				owner = name
			}
		}
		if owner == "" {
			errs = append(errs, fmt.Errorf("sample %s names no source of %s (want <source>-<event>.json)", f, configPath))
			continue
		}
		samples[owner] = append(samples[owner], f)
	}
	for _, name := range names {
		if len(samples[name]) == 0 {
			errs = append(errs, fmt.Errorf("source %q of %s has no sample: add %s/%s-<event>.json", name, configPath, dir, name))
		}
	}
	return names, samples, errors.Join(errs...)
}

// TestExampleSamplesMatchTheSources: a source without a sample, and a
// sample of no source, are each reported by name.
func TestExampleSamplesMatchTheSources(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "bridge.yaml")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(config, `
server: {listen: ":8080"}
sources:
  crisp: {type: crisp, key: k}
  crisp-plugin: {type: crisp, secret: s}
  zendesk: {type: hmac, secret: s}
sinks: {}
`)
	payloads := filepath.Join(dir, "payloads")
	if err := os.Mkdir(payloads, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"crisp-message-send.json", "crisp-plugin-session-set-email.json", "notes.txt"} {
		write(filepath.Join(payloads, f), "{}")
	}

	names, samples, err := exampleSamples(config, payloads)
	if want := []string{"crisp", "crisp-plugin", "zendesk"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("sources %v, want %v in the file's order", names, want)
	}
	if err == nil || !strings.Contains(err.Error(), `source "zendesk"`) {
		t.Errorf("a source without a sample: error %v, want one naming zendesk", err)
	}
	if err != nil && strings.Contains(err.Error(), `source "crisp`) {
		t.Errorf("crisp and crisp-plugin have their samples, yet: %v", err)
	}
	if got := samples["crisp"]; len(got) != 1 || filepath.Base(got[0]) != "crisp-message-send.json" {
		t.Errorf("crisp's samples %v, want crisp-message-send.json only", got)
	}
	if got := samples["crisp-plugin"]; len(got) != 1 || filepath.Base(got[0]) != "crisp-plugin-session-set-email.json" {
		t.Errorf("crisp-plugin's samples %v, want crisp-plugin-session-set-email.json, the longer name winning", got)
	}

	write(filepath.Join(payloads, "zendesk-ticket-created.json"), "{}")
	write(filepath.Join(payloads, "intercom-conversation.json"), "{}")
	_, _, err = exampleSamples(config, payloads)
	if err == nil || !strings.Contains(err.Error(), "intercom-conversation.json names no source") {
		t.Errorf("a sample of no source: error %v, want one naming intercom-conversation.json", err)
	}
	if err != nil && strings.Contains(err.Error(), `source "zendesk"`) {
		t.Errorf("zendesk has its sample now, yet: %v", err)
	}
}

// TestExampleSamplesAreDelivered runs the binary on config.example.yaml
// and `bridge send`s every source's sample to it: each is answered 2xx and
// lands in the file sink as a CloudEvent of the sample's type whose
// bridgesource is that source; sent again, each is dropped as a duplicate.
func TestExampleSamplesAreDelivered(t *testing.T) {
	t.Parallel()
	b := exampleBridge(t)
	names, samples, err := exampleSamples(b.Config, payloadsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		for _, f := range samples[name] {
			if _, ok := sampleTypes[filepath.Base(f)]; !ok {
				t.Fatalf("sample %s: add the CloudEvent type it becomes to sampleTypes", f)
			}
		}
	}
	b.Start()
	send := func(name, sample string) {
		t.Helper()
		cmd := exec.Command(bridgeBin, "send", "-c", b.Config, "--source", name, sample)
		cmd.Env = append(os.Environ(), b.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bridge send --source %s %s: %v\n%s", name, sample, err, out)
		}
		if !strings.Contains(string(out), "POST http://"+b.Addr+"/webhooks/"+name+" -> 2") {
			t.Fatalf("bridge send --source %s %s printed no 2xx answer to the POST:\n%s", name, sample, out)
		}
	}
	for _, name := range names {
		for _, f := range samples[name] {
			send(name, f)
		}
	}

	archive := filepath.Join(b.Dir, "events.jsonl")
	bySource := func() map[string][]fileEvent {
		out := map[string][]fileEvent{}
		for _, ev := range readLines(t, archive) {
			out[ev.BridgeSource] = append(out[ev.BridgeSource], ev)
		}
		return out
	}
	wantTypes := func(name string) map[string]bool {
		want := map[string]bool{}
		for _, f := range samples[name] {
			want[sampleTypes[filepath.Base(f)]] = true
		}
		return want
	}
	// missing lists each source's sample types not yet in the file sink.
	missing := func(got map[string][]fileEvent) []string {
		var out []string
		for _, name := range names {
			seen := map[string]bool{}
			for _, ev := range got[name] {
				seen[ev.Type] = true
			}
			for _, typ := range sortedKeys(wantTypes(name)) {
				if !seen[typ] {
					out = append(out, fmt.Sprintf("%s (%s)", name, typ))
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(missing(bySource())) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := bySource()
	if m := missing(got); len(m) > 0 {
		t.Errorf("after 20s the file sink has no event with the bridgesource and type of %s", strings.Join(m, ", "))
	}
	for src := range got {
		if _, ok := samples[src]; !ok {
			t.Errorf("the file sink holds events of bridgesource %q, which is no source of the example", src)
		}
	}
	for _, name := range names {
		want := wantTypes(name)
		for _, ev := range got[name] {
			if !want[ev.Type] {
				t.Errorf("source %s: an event of type %q, want one of %v", name, ev.Type, sortedKeys(want))
			}
			if ev.SpecVersion != "1.0" || ev.ID == "" || ev.Source == "" {
				t.Errorf("source %s: event %+v lacks specversion 1.0, an id or a source", name, ev)
			}
			if !json.Valid(ev.Data) || ev.DataBase64 != "" {
				t.Errorf("source %s: event %s has no JSON data (data_base64 %q)", name, ev.ID, ev.DataBase64)
			}
		}
	}

	// Every sample sent again, in a later second (the signers' timestamps
	// are in seconds), is a provider's retry: answered 2xx, and each of its
	// events dropped as a duplicate.
	accepted := map[string]float64{}
	for _, name := range names {
		accepted[name] = metricValue(t, b.Admin, "hookbridge_events_accepted_total", `source="`+name+`"`)
	}
	time.Sleep(1100 * time.Millisecond)
	for _, name := range names {
		for _, f := range samples[name] {
			send(name, f)
		}
	}
	for _, name := range names {
		label := `source="` + name + `"`
		if got := metricValue(t, b.Admin, "hookbridge_events_accepted_total", label); got != accepted[name] {
			t.Errorf("source %s: %v events accepted after sending its samples again, %v before", name, got, accepted[name])
		}
		if got := metricValue(t, b.Admin, "hookbridge_events_duplicate_total", label); got != accepted[name] {
			t.Errorf("source %s: %v duplicates dropped of the %v events sent again", name, got, accepted[name])
		}
	}

	if code := b.Stop(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
