package file

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/sinktest"
	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/tmpl"
)

func newSink(t *testing.T, path string, maxSize config.Size) *Sink {
	t.Helper()
	reg, ok := sinks.Lookup("file")
	if !ok {
		t.Fatal("file sink not registered")
	}
	cfg := reg.NewConfig().(*Config)
	cfg.Path = tmpl.MustParse(path)
	cfg.MaxSize = maxSize
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return sinktest.New[*Sink](t, cfg, "archive")
}

func testEvent(id, source, data string) *event.Event {
	ev := sources.NewEvent(id, "com.example.test", "https://example.com/"+source, "things/1", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), []byte(data))
	ev.SetExtension("bridgesource", source)
	return ev
}

func readEvents(t *testing.T, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []event.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q is not a structured CloudEvent: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

func TestWritesStructuredJSONLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	s := newSink(t, path, 0)
	data := `{"msg":"line\nbreak \"quoted\" Zürich"}`
	errs := s.DeliverBatch(context.Background(), []*event.Event{testEvent("a", "hc", data), testEvent("b", "hc", `{"n":2}`)})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Deliver(context.Background(), testEvent("c", "hc", `{}`)); err != nil {
		t.Fatal(err)
	}
	evs := readEvents(t, path)
	if len(evs) != 3 || evs[0].ID() != "a" || evs[2].ID() != "c" {
		t.Fatalf("got %d events: %v", len(evs), evs)
	}
	if string(evs[0].Data()) != data {
		t.Fatalf("data %s, want %s", evs[0].Data(), data)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "data_base64") {
		t.Fatal("data must be written as JSON, not base64")
	}
	if v, _ := evs[0].Extensions()["bridgesource"].(string); v != "hc" {
		t.Fatalf("extension lost: %v", evs[0].Extensions())
	}
}

// A provider's pretty-printed body is the event's data as it came; the file
// still gets one line per event, with the same JSON value.
func TestPrettyDataStaysOnOneLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := newSink(t, path, 0)
	pretty := "{\r\n  \"name\": \"Ana <a&b>\",\n\t\"n\": [1, 2]\n}"
	if err := s.Deliver(context.Background(), testEvent("p", "hc", pretty)); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), testEvent("q", "hc", `{"x": 1}`)); err != nil {
		t.Fatal(err)
	}
	// Carriage returns alone, as old Mac files end their lines.
	if err := s.Deliver(context.Background(), testEvent("r", "hc", "{\r\"y\": 2\r}")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), "\n"); n != 3 || strings.Contains(string(raw), "\r") {
		t.Fatalf("want three lines and no carriage return, got %d newlines in %q", n, raw)
	}
	evs := readEvents(t, path)
	if len(evs) != 3 || string(evs[0].Data()) != `{"name":"Ana <a&b>","n":[1,2]}` || string(evs[1].Data()) != `{"x": 1}` || string(evs[2].Data()) != `{"y":2}` {
		t.Fatalf("got %d events, data %q", len(evs), evs[0].Data())
	}
}

// A payload with bytes that are not UTF-8 inside its strings goes as
// data_base64: every line stays valid UTF-8 JSON, and every byte is kept.
func TestDataThatIsNotUTF8GoesBase64(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := newSink(t, path, 0)
	data := "{\"name\": \"Ad\xff\xfea\"}"
	if err := s.Deliver(context.Background(), testEvent("b", "hc", data)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !utf8.Valid(raw) || !strings.Contains(string(raw), `"data_base64":`) {
		t.Fatalf("line %q: want valid UTF-8 with data_base64", raw)
	}
	evs := readEvents(t, path)
	if len(evs) != 1 || string(evs[0].Data()) != data {
		t.Fatalf("read back %d events, data %q, want %q", len(evs), evs[0].Data(), data)
	}
}

func TestPathTemplate(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, filepath.Join(dir, "{{ .Extensions.bridgesource }}", "{{ .Time.Format \"2006-01-02\" }}.jsonl"), 0)
	for _, err := range s.DeliverBatch(context.Background(), []*event.Event{testEvent("a", "crisp", `{}`), testEvent("b", "helpcrunch", `{}`), testEvent("c", "crisp", `{}`)}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(readEvents(t, filepath.Join(dir, "crisp", "2026-11-20.jsonl"))); n != 2 {
		t.Fatalf("crisp file has %d events, want 2", n)
	}
	if n := len(readEvents(t, filepath.Join(dir, "helpcrunch", "2026-11-20.jsonl"))); n != 1 {
		t.Fatalf("helpcrunch file has %d events, want 1", n)
	}
}

func TestRotationBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	s := newSink(t, path, 1024)
	for i := 0; i < 40; i++ {
		if err := s.Deliver(context.Background(), testEvent(strings.Repeat("x", 10)+string(rune('a'+i%26)), "hc", `{"pad":"`+strings.Repeat("p", 100)+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events*.jsonl"))
	if len(files) < 4 {
		t.Fatalf("expected rotation into several files, got %v", files)
	}
	total := 0
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 1024 {
			t.Errorf("%s is %d bytes, over max_size", f, st.Size())
		}
		total += len(readEvents(t, f))
	}
	if total != 40 {
		t.Fatalf("%d events across rotated files, want 40", total)
	}
}

func TestUnwritablePathIsRetryable(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	os.WriteFile(blocker, nil, 0o644)
	s := newSink(t, filepath.Join(blocker, "events.jsonl"), 0)
	err := s.Deliver(context.Background(), testEvent("a", "hc", `{}`))
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("got %v, want a retryable error", err)
	}
}

func TestValidate(t *testing.T) {
	for name, cfg := range map[string]*Config{
		"no path":  {Sync: SyncBatch},
		"bad sync": {Path: tmpl.MustParse("x"), Sync: "sometimes"},
		"negative": {Path: tmpl.MustParse("x"), Sync: SyncNone, MaxSize: -1},
	} {
		if cfg.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPermIsOctalAsChmodTakesIt: `perm: 600` is rw-------, as chmod 600
// would make it, not the decimal number 600 (-w---x--T); a mode that does
// not let the owner write is refused before the bridge starts.
func TestPermIsOctalAsChmodTakesIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	reg, _ := sinks.Lookup("file")
	cfg := reg.NewConfig().(*Config)
	if err := sinktest.Decode(t, "path: "+path+"\nperm: 600\n", nil, cfg); err != nil {
		t.Fatal(err)
	}
	s := sinktest.New[*Sink](t, cfg, "archive")
	if err := s.Deliver(context.Background(), testEvent("a", "hc", `{}`)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("perm: 600 made a file of mode %v, want -rw-------", got)
	}

	for src, want := range map[string]string{
		"perm: 444\n":  "does not let the owner write",
		"perm: 888\n":  "not a file mode in octal",
		"perm: 1755\n": "not a file mode in octal",
	} {
		cfg := reg.NewConfig().(*Config)
		err := sinktest.Decode(t, "path: "+path+"\n"+src, nil, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", src, err, want)
		}
	}
}

// TestPartialLastLineIsEndedFirst: a write cut short (the bridge killed
// between two writes of a large batch, a full disk) leaves the file ending
// in part of a line. That batch was not acknowledged and comes again; the
// events written next must each start a line of their own, not be glued
// to the fragment, where no JSON Lines reader would find them.
func TestPartialLastLineIsEndedFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	whole := `{"specversion":"1.0","id":"before","source":"https://example.com/hc","type":"com.example.test"}` + "\n"
	fragment := `{"specversion":"1.0","id":"torn","source":"https://exa`
	if err := os.WriteFile(path, []byte(whole+fragment), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, path, 0)
	if err := s.Deliver(context.Background(), testEvent("after", "hc", `{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 3 || lines[0]+"\n" != whole || lines[1] != fragment {
		t.Fatalf("file:\n%s\nwant the whole line, the fragment on a line of its own, then the new event", raw)
	}
	var ev event.Event
	if err := json.Unmarshal([]byte(lines[2]), &ev); err != nil || ev.ID() != "after" {
		t.Fatalf("the new event's line %q: %v", lines[2], err)
	}
	// A file that ends with a whole line gets no empty line.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = newSink(t, path, 0)
	if err := s.Deliver(context.Background(), testEvent("later", "hc", `{}`)); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(path)
	if strings.Contains(string(raw), "\n\n") {
		t.Fatalf("an empty line was added to a file that ended with a whole line:\n%s", raw)
	}
}

// TestFailedWriteIsRetriedOnAFreshFile: a write that fails (a full disk,
// an I/O error) fails its batch, retryably, and the next batch opens the
// file again: the buffered writer keeps its first error forever, so
// reusing it would fail every later delivery until a restart.
func TestFailedWriteIsRetriedOnAFreshFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := newSink(t, path, 0)
	if err := s.Deliver(context.Background(), testEvent("a", "hc", `{}`)); err != nil {
		t.Fatal(err)
	}
	// The descriptor fails under the sink, as a disk that went away would.
	s.mu.Lock()
	s.files[path].f.Close()
	s.mu.Unlock()
	if err := s.Deliver(context.Background(), testEvent("b", "hc", `{}`)); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("a failed write answered %v, want a retryable error", err)
	}
	if err := s.Deliver(context.Background(), testEvent("b", "hc", `{}`)); err != nil {
		t.Fatalf("the retry after a failed write: %v", err)
	}
	var ids []string
	for _, ev := range readEvents(t, path) {
		ids = append(ids, ev.ID())
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Fatalf("file holds %v, want a,b", ids)
	}
}
