package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

// maxOpenFiles bounds the files a templated path keeps open at once.
const maxOpenFiles = 64

// Sink appends events to JSON Lines files.
type Sink struct {
	name    string
	path    *tmpl.Template
	maxSize int64
	sync    bool
	perm    os.FileMode

	mu    sync.Mutex // guards files and every write
	files map[string]*openFile
}

type openFile struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	size    int64
	lastUse time.Time
}

// Deliver implements sinks.Sink.
func (s *Sink) Deliver(ctx context.Context, ev *event.Event) error {
	return s.DeliverBatch(ctx, []*event.Event{ev})[0]
}

// DeliverBatch writes every event, then flushes (and fsyncs) each file
// touched once, so a batch costs one fsync per file.
func (s *Sink) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	return s.PrepareBatch(evs)(ctx)
}

// PrepareBatch implements sinks.Preparer: it encodes each event's line and
// renders its path; the returned send appends the lines and flushes (and
// fsyncs) each file it touched once. An event that cannot be encoded, or
// whose path renders empty, fails for good.
func (s *Sink) PrepareBatch(evs []*event.Event) func(context.Context) []error {
	errs := make([]error, len(evs))
	type pending struct {
		i          int    // index into evs
		path       string // rendered
		start, end int    // the line, newline included, in lines
	}
	var (
		buf     bytes.Buffer
		lines   []byte
		entries = make([]pending, 0, len(evs))
	)
	for i, ev := range evs {
		line, err := encodeLine(&buf, ev)
		if err != nil {
			errs[i] = sinks.Permanent(fmt.Errorf("encoding event: %w", err))
			continue
		}
		path, err := s.path.RenderEvent(ev)
		if err != nil {
			errs[i] = sinks.Permanent(err)
			continue
		}
		if strings.TrimSpace(path) == "" {
			errs[i] = sinks.Permanent(fmt.Errorf("path template rendered an empty path"))
			continue
		}
		if lines == nil {
			// Room for the batch if its lines are like the first, within
			// reason: one large event must not size the whole batch.
			lines = make([]byte, 0, min((len(line)+1)*(len(evs)-i), 1<<20))
		}
		start := len(lines)
		lines = append(append(lines, line...), '\n')
		entries = append(entries, pending{i: i, path: path, start: start, end: len(lines)})
	}
	return func(context.Context) []error {
		s.mu.Lock()
		defer s.mu.Unlock()
		touched := map[*openFile][]int{}
		for _, e := range entries {
			of, err := s.open(e.path)
			if err != nil {
				errs[e.i] = err
				continue
			}
			line := lines[e.start:e.end]
			if s.maxSize > 0 && of.size > 0 && of.size+int64(len(line)) > s.maxSize {
				if err := s.flush(of, touched[of]); err != nil {
					markAll(errs, touched[of], err)
					s.discard(of)
				}
				delete(touched, of)
				if of, err = s.rotate(e.path, of); err != nil {
					errs[e.i] = err
					continue
				}
			}
			of.w.Write(line)
			of.size += int64(len(line))
			touched[of] = append(touched[of], e.i)
		}
		for of, idx := range touched {
			if err := s.flush(of, idx); err != nil {
				markAll(errs, idx, err)
				s.discard(of)
			}
		}
		return errs
	}
}

func markAll(errs []error, idx []int, err error) {
	for _, i := range idx {
		if errs[i] == nil {
			errs[i] = err
		}
	}
}

func (s *Sink) flush(of *openFile, idx []int) error {
	if err := of.w.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", of.f.Name(), err)
	}
	if s.sync && len(idx) > 0 {
		if err := of.f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", of.f.Name(), err)
		}
	}
	return nil
}

func (s *Sink) open(path string) (*openFile, error) {
	if of, ok := s.files[path]; ok {
		of.lastUse = time.Now()
		return of, nil
	}
	if len(s.files) >= maxOpenFiles {
		s.closeOldest()
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating directory for %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, s.perm)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	of := &openFile{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), size: st.Size(), lastUse: time.Now()}
	if endsMidLine(path, of.size) {
		// A write cut short: its batch failed and comes again. The next
		// line must not be glued to the fragment.
		of.w.WriteByte('\n')
		of.size++
	}
	s.files[path] = of
	return of, nil
}

// endsMidLine says whether the file at path, size bytes long, ends in part
// of a line. A file it cannot read is taken to end with a whole line.
func endsMidLine(path string, size int64) bool {
	if size == 0 {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return false
	}
	return last[0] != '\n'
}

// discard closes a file whose write failed, so the next batch opens it
// afresh: a bufio.Writer keeps its first error for good, and the failed
// write may have left part of a line, which open ends.
func (s *Sink) discard(of *openFile) {
	of.f.Close()
	if s.files[of.path] == of {
		delete(s.files, of.path)
	}
}

// rotate renames the full file to <base>-<UTC time><ext> and opens a new one.
func (s *Sink) rotate(path string, of *openFile) (*openFile, error) {
	of.f.Close()
	delete(s.files, path)
	ext := filepath.Ext(path)
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	rotated := strings.TrimSuffix(path, ext) + "-" + stamp + ext
	if err := os.Rename(path, rotated); err != nil {
		return nil, fmt.Errorf("rotating %s: %w", path, err)
	}
	return s.open(path)
}

func (s *Sink) closeOldest() {
	var oldest string
	var at time.Time
	for p, of := range s.files {
		if oldest == "" || of.lastUse.Before(at) {
			oldest, at = p, of.lastUse
		}
	}
	if of := s.files[oldest]; of != nil {
		of.w.Flush()
		of.f.Close()
		delete(s.files, oldest)
	}
}

// Paths lists the files currently open, for logs.
func (s *Sink) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.files))
	for p := range s.files {
		out = append(out, p)
	}
	return out
}

// Describe says where events go, for the startup log.
func (s *Sink) Describe() string {
	p := s.path.String()
	if abs, err := filepath.Abs(p); err == nil && s.path.IsConstant() {
		p = abs
	}
	return "writes JSON Lines to " + p
}

// Close flushes and closes every file.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for p, of := range s.files {
		if err := of.w.Flush(); err != nil && first == nil {
			first = err
		}
		if s.sync {
			if err := of.f.Sync(); err != nil && first == nil {
				first = err
			}
		}
		if err := of.f.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.files, p)
	}
	return first
}

// Preview shows the file and the line an event would be written as.
func (s *Sink) Preview(ev *event.Event) ([]byte, error) {
	var buf bytes.Buffer
	line, err := encodeLine(&buf, ev)
	if err != nil {
		return nil, err
	}
	path, err := s.path.RenderEvent(ev)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "append to %s:\n%s", path, line), nil
}

// encodeLine writes ev into buf as structured-mode JSON on one line and
// returns buf's bytes; data that would not keep the line valid UTF-8 JSON
// goes as data_base64 (sinks.ForJSONFormat). sdk-go writes a JSON payload as it is, so a
// provider's pretty-printed body would span lines: only then is the line
// compacted (which also checks it is JSON).
func encodeLine(buf *bytes.Buffer, ev *event.Event) ([]byte, error) {
	buf.Reset()
	if err := event.WriteJson(sinks.ForJSONFormat(ev), buf); err != nil {
		return nil, err
	}
	line := buf.Bytes()
	// Two IndexByte scans: vectorised, unlike ContainsAny's set lookup.
	if bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		var compact bytes.Buffer
		if err := json.Compact(&compact, line); err != nil {
			return nil, err
		}
		line = compact.Bytes()
	}
	return line, nil
}
