package queue

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble"
)

// What a delivery settles (an acknowledgement, a failed attempt's count, a
// forward to the dead-letter sink) is written without waiting for a sync:
// the sink is not kept waiting on the disk, and losing such a write costs
// a repeated delivery or an extra attempt, never an event. But Pebble keeps
// a write made without a sync in its own buffer until a synced write comes
// along (or a block fills), so a bridge killed after an outage had drained,
// with no webhook coming in since, delivered everything again on restart.
// The syncer bounds that: settleSyncDelay after such a write, it syncs the
// log unless Close comes first (which syncs it too). While webhooks arrive
// their own synced commits carry these writes; the syncer adds at most one
// sync per delay.

// settleSyncDelay is the longest a settled delivery waits for a sync.
const settleSyncDelay = 20 * time.Millisecond

// noteUnsynced tells the syncer that a write without a sync was made.
func (s *Store) noteUnsynced() {
	select {
	case s.unsynced <- struct{}{}:
	default: // a sync is already due
	}
}

// syncer syncs the log settleSyncDelay after each write noteUnsynced
// reports, until Close.
func (s *Store) syncer() {
	defer close(s.syncerDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-s.unsynced:
		}
		timer.Reset(settleSyncDelay)
		select {
		case <-s.closing:
			timer.Stop()
			return
		case <-timer.C:
		}
		if err := s.syncLog(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("queue: syncing settled deliveries failed; they are synced with the next write", "error", err)
		}
	}
}

// syncLog makes every write made so far durable, with an empty synced
// write to the log.
func (s *Store) syncLog() error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.db.LogData(nil, pebble.Sync)
}
