package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/internal/testlog"
	"github.com/hookbridge/hookbridge/metrics"
)

// TestShutdownClosesConnectionsThatNeverSpoke: a client's connection that
// never carried a request (one its HTTP client dialed and did not use)
// must not hold a shutdown for the read timeout, nor be logged as a
// rejected request; a request under way on another connection is still
// answered.
func TestShutdownClosesConnectionsThatNeverSpoke(t *testing.T) {
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := New(Options{ReadTimeout: 8 * time.Second, WriteTimeout: 8 * time.Second, IdleTimeout: 30 * time.Second}, nil, log, metrics.New())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	quiet, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	// A request whose headers are only half sent when the shutdown starts.
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := io.WriteString(busy, "GET /webhooks/none HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(silentConnGrace + 100*time.Millisecond)

	start := time.Now()
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	// The silent connection is closed without an answer.
	quiet.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := quiet.Read(make([]byte, 64)); err == nil || n > 0 {
		t.Errorf("the silent connection read %d bytes, err %v; want it closed", n, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the silent connection was closed %v after the shutdown began", waited)
	}
	// The request under way still gets its answer.
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(busy, "\r\n"); err != nil {
		t.Fatalf("finishing the request under way: %v", err)
	}
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(busy)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 404") {
		t.Errorf("the request under way was answered %q, want its 404", answer)
	}
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if strings.Contains(logs.String(), "rejected request\"") {
		t.Errorf("a connection without a request was logged as a rejected request:\n%s", logs.String())
	}
}
