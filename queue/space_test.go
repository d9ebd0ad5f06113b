package queue

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/hookbridge/hookbridge/internal/testlog"
)

// shrinkingFS is the real file system, but for the free space it reports.
type shrinkingFS struct {
	vfs.FS
	avail atomic.Uint64
}

func (fs *shrinkingFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := fs.FS.GetDiskUsage(path)
	u.AvailBytes = fs.avail.Load()
	u.TotalBytes = 100 << 30
	return u, err
}

// TestNearlyFullDiskRefusesNewEventsOnly: below the reserve, new events and
// rejected bodies are refused with ErrNoSpace (Pebble would otherwise stop
// the process when a write finally fails), while duplicates are still
// recognised and queued events still delivered; once space is freed the
// store accepts events again. Both changes are logged.
func TestNearlyFullDiskRefusesNewEventsOnly(t *testing.T) {
	fs := &shrinkingFS{FS: vfs.Default}
	fs.avail.Store(10 << 30)
	var logs testlog.Buffer
	clock := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func() { mu.Lock(); clock = clock.Add(spaceCheckInterval); mu.Unlock() }
	s := openStore(t, Options{fs: fs, now: now, MinFreeSpace: 64 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	enqueue(t, s, item("before", "k"))
	fs.avail.Store(63 << 20)
	// The store looks again only once the interval has passed.
	enqueue(t, s, item("within-the-interval", "k"))
	advance()
	_, err := s.Enqueue(context.Background(), []Item{item("refused", "k")})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Enqueue with 63 MiB free: %v, want ErrNoSpace", err)
	}
	t.Logf("refused: %v", err)
	if err := s.Reject("src", []byte("raw"), "bad"); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Reject with 63 MiB free: %v, want ErrNoSpace", err)
	}
	if err := s.Refusing(); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Refusing with 63 MiB free: %v, want ErrNoSpace", err)
	}
	if dup, err := s.Enqueue(context.Background(), []Item{item("before", "k")}); err != nil || !dup[0] {
		t.Errorf("a duplicate while the disk is nearly full: dup %v, err %v; want it recognised", dup, err)
	}
	if st := s.Stats(); st.DiskFree != 63<<20 || st.DiskReserve != 64<<20 {
		t.Errorf("stats: free %d, reserve %d", st.DiskFree, st.DiskReserve)
	}
	if got := ids(drain(t, s, "k")); !slices.Equal(got, bodies([]string{"before", "within-the-interval"})) {
		t.Errorf("delivered %q while the disk was nearly full", got)
	}

	fs.avail.Store(1 << 30)
	advance()
	if err := s.Refusing(); err != nil {
		t.Errorf("Refusing after space was freed: %v", err)
	}
	enqueue(t, s, item("after", "k"))
	if got := ids(drain(t, s, "k")); !slices.Equal(got, bodies([]string{"after"})) {
		t.Errorf("delivered %q after space was freed", got)
	}
	for _, want := range []string{"refusing new events: the disk is nearly full", "accepting events again"} {
		if !bytes.Contains([]byte(logs.String()), []byte(want)) {
			t.Errorf("no log line says %q:\n%s", want, logs.String())
		}
	}
}

// TestMinFreeSpaceOffNeverRefuses: a negative MinFreeSpace turns the check
// off; a small volume's reserve is a twentieth of it.
func TestMinFreeSpaceOffNeverRefuses(t *testing.T) {
	fs := &shrinkingFS{FS: vfs.Default}
	fs.avail.Store(1 << 20)
	s := openStore(t, Options{fs: fs, MinFreeSpace: -1})
	enqueue(t, s, item("a", "k"))

	// On a 1 GiB volume the reserve is 51.2 MiB, not the default 256.
	for free, refused := range map[uint64]bool{60 << 20: false, 50 << 20: true} {
		g := &spaceGuard{fs: &fixedFS{FS: vfs.Default, u: vfs.DiskUsage{AvailBytes: free, TotalBytes: 1 << 30}}, path: t.TempDir(), min: DefaultMinFreeSpace, log: quietLogger()}
		if err := g.check(time.Now()); errors.Is(err, ErrNoSpace) != refused {
			t.Errorf("%d MiB free on a 1 GiB volume: %v", free>>20, err)
		}
	}
}

type fixedFS struct {
	vfs.FS
	u vfs.DiskUsage
}

func (fs *fixedFS) GetDiskUsage(string) (vfs.DiskUsage, error) { return fs.u, nil }
