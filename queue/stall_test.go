package queue

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
)

func TestWriteStallsAreLoggedWithTheirLength(t *testing.T) {
	var out bytes.Buffer
	l := stallLogger(slog.New(slog.NewTextHandler(&out, nil)))
	l.WriteStallEnd() // an end without a begin says nothing
	if out.Len() != 0 {
		t.Fatalf("logged %q for an end without a begin", out.String())
	}
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	l.WriteStallEnd()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 ||
		!strings.Contains(lines[0], `reason="memtable count limit reached"`) ||
		!strings.Contains(lines[1], "writes resumed") || !strings.Contains(lines[1], "stalled=") {
		t.Fatalf("log:\n%s", out.String())
	}
}
