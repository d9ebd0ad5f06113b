package main

import (
	"errors"
	"testing"
	"time"
)

func TestParseReplayArgs(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	a, err := parseReplayArgs([]string{"-c", "b.yaml", "--sink", "crm", "--since", "90m", "--to", "crm2", "--dry-run", "--filter", "type = 'x'"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.config != "b.yaml" || a.sink != "crm" || a.to != "crm2" || !a.dryRun || a.filter != "type = 'x'" || !a.since.Equal(now.Add(-90*time.Minute)) {
		t.Fatalf("%+v", a)
	}
	if a, err = parseReplayArgs([]string{"-c", "b.yaml", "--since", "2026-12-01T08:00:00Z"}, now); err != nil || !a.since.Equal(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("since a time: %+v %v", a, err)
	}
	for _, args := range [][]string{
		{"--sink", "crm"},                       // no config
		{"-c", "b.yaml", "--since", "yesterday"}, // neither a duration nor a time
		{"-c", "b.yaml", "--since", "-2h"},       // a duration into the future
		{"-c", "b.yaml", "extra"},
	} {
		if _, err := parseReplayArgs(args, now); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
