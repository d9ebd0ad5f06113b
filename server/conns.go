package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// silentConnGrace is how long Shutdown gives a connection that has sent
// nothing to start its request before closing it.
const silentConnGrace = 500 * time.Millisecond

// connTracker follows the webhook listener's connections so that Shutdown
// can close those that never sent a byte. fasthttp's shutdown closes the
// connections that are idle between requests, but counts a new one as busy
// reading its first request until the read timeout: a client that dialed a
// connection it never used (Go's HTTP transport does under concurrency)
// held up a SIGTERM for the whole read_timeout, and its timeout was logged
// as a rejected request.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// trackedConn is a connection that knows whether its client has spoken.
type trackedConn struct {
	net.Conn
	t        *connTracker
	accepted time.Time
	spoke    atomic.Bool
	forget   sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoke.Load() {
		c.spoke.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.forget.Do(func() { c.t.remove(c) })
	return c.Conn.Close()
}

// silent reports whether the client has sent nothing on conn.
func silent(conn net.Conn) bool {
	c, ok := conn.(*trackedConn)
	return ok && !c.spoke.Load()
}

type trackingListener struct {
	net.Listener
	t *connTracker
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t, accepted: time.Now()}
	l.t.add(tc)
	return tc, nil
}

func (t *connTracker) add(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[*trackedConn]struct{}{}
	}
	t.conns[c] = struct{}{}
}

func (t *connTracker) remove(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// closeSilent closes the connections accepted before cutoff whose clients
// have sent nothing. Their server goroutines see the read fail and end
// without a response: no request had begun.
func (t *connTracker) closeSilent(cutoff time.Time) {
	t.mu.Lock()
	var quiet []*trackedConn
	for c := range t.conns {
		if !c.spoke.Load() && c.accepted.Before(cutoff) {
			quiet = append(quiet, c)
		}
	}
	t.mu.Unlock()
	for _, c := range quiet {
		_ = c.Conn.Close()
	}
}
