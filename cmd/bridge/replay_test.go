package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/inspect"
	"github.com/hookbridge/hookbridge/router"
)

func TestParseDeadLetterArgs(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	a, err := parseDeadLetterArgs("replay", []string{"-c", "b.yaml", "--sink", "crm", "--since", "90m", "--to", "crm2", "--dry-run", "--filter", "type = 'x'"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.config != "b.yaml" || a.sink != "crm" || a.to != "crm2" || !a.dryRun || a.filter != "type = 'x'" || !a.since.Equal(now.Add(-90*time.Minute)) {
		t.Fatalf("%+v", a)
	}
	if a, err = parseDeadLetterArgs("replay", []string{"-c", "b.yaml", "--since", "2026-12-01T08:00:00Z"}, now); err != nil || !a.since.Equal(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("since a time: %+v %v", a, err)
	}
	if a, err = parseDeadLetterArgs("discard", []string{"-c", "b.yaml", "--before", "720h"}, now); err != nil || !a.before.Equal(now.Add(-720*time.Hour)) || !a.since.IsZero() {
		t.Fatalf("before: %+v %v", a, err)
	}
	for _, args := range [][]string{
		{"--sink", "crm"},                        // no config
		{"-c", "b.yaml", "--since", "yesterday"}, // neither a duration nor a time
		{"-c", "b.yaml", "--since", "-2h"},       // a duration into the future
		{"-c", "b.yaml", "extra"},
		{"-c", "b.yaml", "--before", "last week"},
	} {
		if _, err := parseDeadLetterArgs("replay", args, now); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	// discard has no --to: there is nowhere to send what it removes.
	if _, err := parseDeadLetterArgs("discard", []string{"-c", "b.yaml", "--to", "crm"}, now); err == nil {
		t.Error("discard accepted --to")
	}
}

func TestDeadLetterSelection(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	lead := inspect.DeadLetterView{Replayable: true, Sink: "crm", From: "crm-first", At: now.Add(-2 * time.Hour),
		Event: []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"com.helloclient.lead","data":{"Email":"vip@example.com"}}`)}
	body := inspect.DeadLetterView{Source: "crisp", At: now.Add(-48 * time.Hour)}
	isLead, err := router.ParseFilter("type = 'com.helloclient.lead'")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		a          deadLetterArgs
		match      bool // use the filter
		lead, body bool
	}{
		{"everything", deadLetterArgs{}, false, true, true},
		{"by sink", deadLetterArgs{sink: "crm"}, false, true, false},
		{"another sink", deadLetterArgs{sink: "slack"}, false, false, false},
		{"the sink its dead_letter sink had it from", deadLetterArgs{sink: "crm-first"}, false, true, false},
		{"since 3h", deadLetterArgs{since: now.Add(-3 * time.Hour)}, false, true, false},
		{"before 24h", deadLetterArgs{before: now.Add(-24 * time.Hour)}, false, false, true},
		{"before 1h", deadLetterArgs{before: now.Add(-time.Hour)}, false, true, true},
		{"filter", deadLetterArgs{}, true, true, false},
	} {
		var m func(*event.Event) bool
		if c.match {
			m = isLead
		}
		if got := c.a.selects(lead, m); got != c.lead {
			t.Errorf("%s: the lead selected %v, want %v", c.name, got, c.lead)
		}
		if got := c.a.selects(body, m); got != c.body {
			t.Errorf("%s: the rejected body selected %v, want %v", c.name, got, c.body)
		}
	}
}

func TestReplayChecksItsSinksBeforeCallingTheBridge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.yaml")
	conf := "admin: {listen: \"127.0.0.1:1\"}\n" +
		"sources:\n  helloclient: {type: helloclient, secret: s}\n" +
		"sinks:\n  archive: {type: file, path: ./x.jsonl}\n  crm: {type: http, url: \"\", enabled: false}\n" +
		"routes:\n  - {name: all, sinks: [archive]}\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for to, want := range map[string]string{
		"nosuch": `--to: no sink named "nosuch" in ` + path + ` (sinks: archive, crm)`,
		"crm":    `--to: sink "crm" is disabled in ` + path,
	} {
		var out strings.Builder
		if code := run([]string{"replay", "-c", path, "--to", to, "--dry-run"}, &out, &out); code != 1 || !strings.Contains(out.String(), want) {
			t.Errorf("--to %s: exit %d, %q; want exit 1 and %q", to, code, out.String(), want)
		}
	}
}

// Every command's --help, version's too, describes the command and its
// flags, and exits 0.
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		for _, help := range []string{"--help", "-h"} {
			var out, errOut strings.Builder
			args := append(strings.Fields(c.name), help)
			if code := run(args, &out, &errOut); code != 0 || errOut.Len() > 0 {
				t.Errorf("%s %s: exit %d, stderr %q", c.name, help, code, errOut.String())
			}
			want := strings.TrimSpace("usage: bridge "+c.name+" "+c.synopsis) + "\n\n" + c.about + "\n"
			if !strings.HasPrefix(out.String(), want) {
				t.Errorf("%s %s printed:\n%s\nwant it to start with:\n%s", c.name, help, out.String(), want)
			}
			if takesConfig := strings.Contains(c.synopsis, "-c FILE"); takesConfig != strings.Contains(out.String(), "-c string") {
				t.Errorf("%s %s: flags listed %v, want %v:\n%s", c.name, help, !takesConfig, takesConfig, out.String())
			}
		}
	}
	// Without --help, version prints the version.
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut strings.Builder
		if code := run(args, &out, &errOut); code != 0 || errOut.Len() > 0 || !strings.HasPrefix(out.String(), "bridge "+version+" (go") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
}

// A dead letter's reason (which can hold a CRM's answer) and the ids and
// types from payloads are printed on one line each, control characters
// escaped, so that no line passes for another dead letter.
func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"crm: rejected: 422 Unprocessable Entity: {\"error\":\"é\"}": "crm: rejected: 422 Unprocessable Entity: {\"error\":\"é\"}",
		"answer:\n<html>\r\n\t<body>":                                `answer:\n<html>\r\n\t<body>`,
		"id\x00\x1b[2Jx\u0085":                                       `id\x00\x1b[2Jx\u0085`,
		"csi \x9b2J, \u202egnp.exe\u2028next":                        `csi \x9b2J, \u202egnp.exe\u2028next`,
		"":                                                           "",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
