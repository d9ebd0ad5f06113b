package bridge

import (
	"fmt"
	"math"
	"runtime/debug"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/queue"
)

// DefaultMemoryLimit is the soft memory limit the bridge binary gives the Go
// runtime when neither memory_limit nor GOMEMLIMIT sets one. The collector
// otherwise lets the heap grow to twice what is live, and the queue's block
// cache and memtables alone hold about 32 MiB: draining a backlog to Kafka
// took the binary to 99-106 MB resident without a limit and to 85-87 MB
// with this one, for about the same CPU per event (BENCHMARKS.md).
const DefaultMemoryLimit config.Size = 64 << 20

// minMemoryLimit is the least memory_limit accepted: near what the bridge
// keeps live, the collector would run all the time.
const minMemoryLimit config.Size = 32 << 20

// memoryLimitUnset is File.MemoryLimit when the file has no memory_limit.
const memoryLimitUnset config.Size = -1

// memoryLimit is the soft limit f asks of the Go runtime, in bytes
// (math.MaxInt64: none), and where it comes from. set is false when the
// runtime is to keep the limit it started with: the file has no
// memory_limit and the environment sets GOMEMLIMIT, which the runtime has
// read itself.
func (f *File) memoryLimit(lookupEnv func(string) (string, bool)) (limit int64, from string, set bool) {
	switch {
	case f.MemoryLimit == 0:
		return math.MaxInt64, "memory_limit", true
	case f.MemoryLimit > 0:
		return int64(f.MemoryLimit), "memory_limit", true
	}
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && v != "" {
		return 0, "GOMEMLIMIT", false
	}
	// A larger dedup filter is memory the bridge keeps live from the
	// start: the limit grows with it, so the collector keeps the same room.
	// (Queue type kafka has no such filter, and refuses dedup_memory.)
	extra := max(0, f.Queue.DedupMemory-queue.DefaultDedupMemory)
	return int64(DefaultMemoryLimit + extra), "default", true
}

// applyMemoryLimit sets the Go runtime's soft memory limit from f, when the
// App manages it (ManageMemoryLimit), and logs a change.
func (a *App) applyMemoryLimit(f *File, lookupEnv func(string) (string, bool)) {
	if !a.manageMemory {
		return
	}
	limit, from, set := f.memoryLimit(lookupEnv)
	if !set {
		limit = debug.SetMemoryLimit(-1) // reads it
	} else if prev := debug.SetMemoryLimit(limit); prev == limit && a.memoryLimitLogged {
		return
	}
	a.memoryLimitLogged = true
	a.log.Info("soft memory limit", "limit", describeLimit(limit), "from", from)
}

func describeLimit(limit int64) string {
	if limit == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprint(config.Size(limit))
}
