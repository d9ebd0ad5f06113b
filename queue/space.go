package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

// DefaultMinFreeSpace is the free space below which the store refuses new
// events unless Options.MinFreeSpace says otherwise, or a twentieth of the
// volume if that is less.
const DefaultMinFreeSpace = 256 << 20

// spaceCheckInterval is how often Enqueue looks at the free space again:
// at 20,000 events a second the store grows by well under 10 MB in it.
const spaceCheckInterval = 250 * time.Millisecond

// ErrNoSpace is the error Enqueue and Reject return while the volume of
// the store has less free space than the store keeps in reserve.
var ErrNoSpace = errors.New("queue: the disk is nearly full")

// spaceGuard refuses writes of new events before the disk fills. Pebble
// treats a failed write-ahead-log write as fatal: left to run out of space,
// the store would stop the process in the middle of a commit. Refused,
// providers get a 503 and retry, while deliveries (whose acknowledgements
// free space once compacted) go on within the reserve.
type spaceGuard struct {
	fs   vfs.FS
	path string
	min  uint64 // 0: never refuse (the free space is still read, for Stats)
	log  *slog.Logger

	next  atomic.Int64  // unix nanos of the next look at the disk
	free  atomic.Uint64 // available bytes at the last look
	floor atomic.Uint64 // the reserve in force: min, or a twentieth of the volume if less
	short atomic.Bool   // free was below the reserve at the last look
}

// check returns ErrNoSpace (wrapped with the figures) while the volume is
// short of space. It looks at the disk at most once per spaceCheckInterval.
func (g *spaceGuard) check(now time.Time) error {
	if next := g.next.Load(); now.UnixNano() >= next && g.next.CompareAndSwap(next, now.Add(spaceCheckInterval).UnixNano()) {
		g.look()
	}
	if g.short.Load() {
		return fmt.Errorf("%w: %s free on %s, under the %s kept in reserve (queue.min_free_space)", ErrNoSpace, mib(g.free.Load()), g.path, mib(g.floor.Load()))
	}
	return nil
}

// look reads the free space and logs when the store starts or stops
// refusing events. A failure to read it refuses nothing.
func (g *spaceGuard) look() {
	u, err := g.fs.GetDiskUsage(g.path)
	if err != nil {
		g.log.Warn("queue: cannot read the free disk space; not refusing events for it", "path", g.path, "err", err)
		g.short.Store(false)
		return
	}
	floor := min(g.min, u.TotalBytes/20)
	g.floor.Store(floor)
	g.free.Store(u.AvailBytes)
	short := u.AvailBytes < floor
	if was := g.short.Swap(short); was != short {
		if short {
			g.log.Error("queue: refusing new events: the disk is nearly full; webhooks are answered 503 until space is freed", "path", g.path, "free", mib(u.AvailBytes), "reserve", mib(floor))
		} else {
			g.log.Info("queue: accepting events again: disk space freed", "path", g.path, "free", mib(u.AvailBytes), "reserve", mib(floor))
		}
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Refusing returns ErrNoSpace (wrapped with the figures) while the store
// refuses new events for want of disk space, looking at the disk again if
// it has not for spaceCheckInterval; nil otherwise.
func (s *Store) Refusing() error { return s.space.check(s.now()) }
