package queue

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

// benchEvent is a ~500 byte structured CloudEvent.
var benchEvent = []byte(`{"specversion":"1.0","id":"ID","source":"https://helloclient.com/chatbots/HC-1042","type":"com.helloclient.lead",` +
	`"subject":"sessions/8c1d4f0e","time":"2025-03-01T12:00:00Z","datacontenttype":"application/json","bridgesource":"helloclient",` +
	`"data":{"FirstName":"Ada","LastName":"Lovelace","Email":"ada@example.com","Phone":"+44 20 7946 0958","Message":"` +
	strings.Repeat("x", 500-340) + `"}}`)

// BenchmarkEnqueueParallel measures synced Enqueue throughput with 64
// concurrent callers of one event each, as 64 concurrent webhook requests
// would; group commit shares each fsync among them.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, bc := range []struct {
		name      string
		sinks     []string
		consumers int // sink loops draining while the writers run
	}{
		{"sinks=1", []string{"kafka"}, 0},
		{"sinks=1/consumers=1", []string{"kafka"}, 1},
		{"sinks=2", []string{"kafka", "archive"}, 0},
		{"sinks=2/consumers=2", []string{"kafka", "archive"}, 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fs := newSyncCountingFS()
			s := openStore(b, Options{fs: fs})
			ctx, cancel := context.WithCancel(context.Background())
			var consumers sync.WaitGroup
			var delivered atomic.Int64
			for _, sink := range bc.sinks[:bc.consumers] {
				consumers.Add(1)
				go func() {
					defer consumers.Done()
					for {
						ds, err := s.Next(ctx, sink, 256, 0)
						if err != nil {
							return
						}
						if err := s.AckAll(sink, seqs(ds)...); err != nil {
							b.Error(err)
							return
						}
						delivered.Add(int64(len(ds)))
					}
				}()
			}
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.SetBytes(int64(len(benchEvent)))
			var n atomic.Int64
			syncsBefore := fs.walSyncs.Load()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				items := []Item{{Event: benchEvent, Sinks: bc.sinks}}
				for pb.Next() {
					// Ids in no particular order, as the hashes
					// most sources use for ids are.
					items[0].ID = strconv.FormatUint(uint64(n.Add(1))*0x9e3779b97f4a7c15, 16)
					if _, err := s.Enqueue(context.Background(), items); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			syncs := float64(max(fs.walSyncs.Load()-syncsBefore, 1))
			b.ReportMetric(float64(b.N)/syncs, "events/fsync")
			b.ReportMetric(b.Elapsed().Seconds()*1e6/syncs, "us/fsync")
			if bc.consumers > 0 {
				b.ReportMetric(float64(delivered.Load())/b.Elapsed().Seconds(), "delivered/s")
			}
			cancel()
			consumers.Wait()
		})
	}
}

// BenchmarkEnqueueOne measures the latency of an Enqueue with no concurrent
// caller: one fsync.
func BenchmarkEnqueueOne(b *testing.B) {
	s := openStore(b, Options{})
	items := []Item{{Event: benchEvent, Sinks: []string{"kafka"}}}
	b.ResetTimer()
	for i := range b.N {
		items[0].ID = strconv.Itoa(i)
		if _, err := s.Enqueue(context.Background(), items); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNextAck measures one sink loop handing out and acknowledging a
// backlog: one delivery at a time, or 64 at a time acknowledged one by one
// or together.
func BenchmarkNextAck(b *testing.B) {
	for _, bc := range []struct {
		batch  int
		ackAll bool
	}{{1, false}, {64, false}, {64, true}} {
		batch := bc.batch
		b.Run(fmt.Sprintf("max=%d/ackall=%v", bc.batch, bc.ackAll), func(b *testing.B) {
			s := openStore(b, Options{})
			items := make([]Item, 0, 1000)
			for i := 0; i < b.N; {
				items = items[:0]
				for ; i < b.N && len(items) < cap(items); i++ {
					items = append(items, Item{ID: strconv.Itoa(i), Event: benchEvent, Sinks: []string{"kafka"}})
				}
				if _, err := s.Enqueue(context.Background(), items); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for done := 0; done < b.N; {
				ds, err := s.Next(context.Background(), "kafka", batch, 0)
				if err != nil {
					b.Fatal(err)
				}
				if bc.ackAll {
					if err := s.AckAll("kafka", seqs(ds)...); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, d := range ds {
						if err := s.Ack("kafka", d.Seq); err != nil {
							b.Fatal(err)
						}
					}
				}
				done += len(ds)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkPebbleSyncBaseline is the floor BenchmarkEnqueueParallel is
// measured against: 64 writers committing one synced 500 byte Set each
// straight to Pebble, with no dedup lookup, index or bookkeeping.
func BenchmarkPebbleSyncBaseline(b *testing.B) {
	fs := newSyncCountingFS()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{FS: fs, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var n atomic.Uint64
	syncsBefore := fs.walSyncs.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.Set(eventKey(nil, n.Add(1)), benchEvent, pebble.Sync); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	syncs := float64(max(fs.walSyncs.Load()-syncsBefore, 1))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/syncs, "events/fsync")
	b.ReportMetric(b.Elapsed().Seconds()*1e6/syncs, "us/fsync")
}

// fillDedupRecords accepts n new ids with no sinks (a dedup record each),
// 1000 to a call.
func fillDedupRecords(b *testing.B, s *Store, prefix string, n int) {
	b.Helper()
	items := make([]Item, 0, 1000)
	for i := 0; i < n; {
		items = items[:0]
		for ; i < n && len(items) < cap(items); i++ {
			items = append(items, Item{ID: prefix + strconv.Itoa(i)})
		}
		if _, err := s.Enqueue(context.Background(), items); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDedupRecords measures Open of a store holding 200k dedup
// records within the window.
func BenchmarkOpenDedupRecords(b *testing.B) {
	const records = 200_000
	clk := newClock()
	opts := Options{Path: b.TempDir(), Logger: quietLogger(), now: clk.Now}
	s, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	fillDedupRecords(b, s, "id-", records)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s, err := Open(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkDrain measures a sink loop draining a backlog the way the
// delivery engine does (Next of 500, then AckAll), after the backlog was
// queued as concurrent requests queue it (groups of 64 events with ids in
// no particular order). Besides the time it reports the process's CPU per
// event, the bytes Pebble's compactions read and wrote and the bytes of
// memtables flushed per event, counted until the compactions the drain set
// off have finished: the drain's cost includes rewriting what it deleted.
//
//	go test -run '^$' -bench Drain -benchtime 200000x ./queue/
func BenchmarkDrain(b *testing.B) {
	s := openStore(b, Options{})
	items := make([]Item, 0, 64)
	for i := 0; i < b.N; {
		items = items[:0]
		for ; i < b.N && len(items) < cap(items); i++ {
			id := strconv.FormatUint(uint64(i+1)*0x9e3779b97f4a7c15, 16)
			items = append(items, Item{ID: id, Event: benchEvent, Sinks: []string{"kafka"}})
		}
		if _, err := s.Enqueue(context.Background(), items); err != nil {
			b.Fatal(err)
		}
	}
	// What the queueing left in the memtable is flushed now, not counted
	// in the drain.
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	settle(b, s.db)
	before := s.db.Metrics()
	cpu := processCPU(b)
	b.ResetTimer()
	for done := 0; done < b.N; {
		ds, err := s.Next(context.Background(), "kafka", 500, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.AckAll("kafka", seqs(ds)...); err != nil {
			b.Fatal(err)
		}
		done += len(ds)
	}
	b.StopTimer()
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	settle(b, s.db)
	cpu = processCPU(b) - cpu
	after := s.db.Metrics()
	// A compaction's reads (from its inputs in both levels) are counted
	// at the level it writes to, which for a flush is L0: what L0 counts
	// is the memtables, flushed.
	var flushed, read, written uint64
	for i := range after.Levels {
		l, was := after.Levels[i], before.Levels[i]
		flushed += l.BytesFlushed - was.BytesFlushed
		written += l.BytesCompacted - was.BytesCompacted
		if i > 0 {
			read += l.BytesRead - was.BytesRead
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64(read)/float64(b.N), "compaction-read-B/event")
	b.ReportMetric(float64(written)/float64(b.N), "compaction-written-B/event")
	b.ReportMetric(float64(flushed)/float64(b.N), "flushed-B/event")
}

// settle waits until db has no flush or compaction running or due.
func settle(b *testing.B, db *pebble.DB) {
	b.Helper()
	quiet := 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m := db.Metrics()
		if m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0 {
			quiet = 0
			continue
		}
		if quiet++; quiet == 10 {
			return
		}
	}
	b.Fatal("compactions still running after a minute")
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
