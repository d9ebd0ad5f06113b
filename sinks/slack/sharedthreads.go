package slack

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hookbridge/hookbridge/sinks"
)

// sharedThreads keeps a sink's threads in the state every replica of the
// bridge shares, under "slack-threads/<sink>/<channel>\x00<key>". With a
// Kafka queue one conversation is delivered by one replica at a time, and
// a replica hands its partitions back only once its deliveries ended: so
// the replica a conversation moves to finds the thread the previous one
// started, and replies under it.
type sharedThreads struct {
	state  sinks.SharedState
	prefix string
	threadRecords
	log *slog.Logger

	stop     chan struct{} // closed to stop the janitor
	stopOnce sync.Once
	done     chan struct{}
}

func newSharedThreads(state sinks.SharedState, sink string, ttl time.Duration, now func() time.Time, log *slog.Logger) *sharedThreads {
	t := &sharedThreads{
		state:         state,
		prefix:        "slack-threads/" + sink + "/",
		threadRecords: threadRecords{ttl: ttl, now: now},
		log:           log,
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	go t.janitor()
	return t
}

func (t *sharedThreads) id(channel, key string) string {
	return t.prefix + channel + "\x00" + key
}

func (t *sharedThreads) get(ctx context.Context, channel, key string) (thread, bool, error) {
	raw, found, err := t.state.Get(ctx, t.id(channel, key))
	if err != nil {
		return thread{}, false, fmt.Errorf("shared slack threads: %w", err)
	}
	if !found {
		return thread{}, false, nil
	}
	th, live, readable := t.decode(raw)
	if !readable {
		t.log.Warn("shared slack threads: unreadable record replaced by a new thread", "thread_key", key)
	}
	return th, live, nil
}

// put writes th; whether it is a new parent or a reply's refresh, the
// write is acknowledged by the brokers before put returns.
func (t *sharedThreads) put(ctx context.Context, channel, key string, th thread, _ bool) error {
	raw, err := t.encode(th)
	if err != nil {
		return err
	}
	if err := t.state.Put(ctx, t.id(channel, key), raw); err != nil {
		return fmt.Errorf("shared slack threads: %w", err)
	}
	return nil
}

func (t *sharedThreads) forget(ctx context.Context, channel, key string) error {
	if err := t.state.Delete(ctx, t.id(channel, key)); err != nil {
		return fmt.Errorf("shared slack threads: %w", err)
	}
	return nil
}

// expire: every replica runs it; deleting a key twice is harmless.
func (t *sharedThreads) expire(ctx context.Context) (int, error) {
	var old []string
	err := t.state.Each(ctx, t.prefix, func(key string, raw []byte) bool {
		if _, live, _ := t.decode(raw); !live {
			old = append(old, key)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("shared slack threads: %w", err)
	}
	for i, key := range old {
		if err := t.state.Delete(ctx, key); err != nil {
			return i, fmt.Errorf("shared slack threads: %w", err)
		}
	}
	return len(old), nil
}

func (t *sharedThreads) janitor() {
	defer close(t.done)
	tick := time.NewTicker(threadJanitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			n, err := t.expire(ctx)
			cancel()
			if err != nil {
				t.log.Error("shared slack threads: deleting expired threads", "err", err)
			} else if n > 0 {
				t.log.Debug("shared slack threads: expired threads deleted", "threads", n)
			}
		}
	}
}

// close stops the janitor; the state itself belongs to the queue.
func (t *sharedThreads) close() error {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
	return nil
}

var (
	_ threadMap = (*sharedThreads)(nil)
	_ threadMap = (*threadStore)(nil)
)
