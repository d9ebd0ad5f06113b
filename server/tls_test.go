package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/internal/testcert"
	"github.com/hookbridge/hookbridge/internal/testlog"
	"github.com/hookbridge/hookbridge/metrics"
)

// served is the certificate a TLS client meets at addr, trusting only want.
func served(t *testing.T, addr string, want *x509.Certificate) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: testcert.Pool(want), ServerName: testcert.Name})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// tlsEcho serves handshakes with c's configuration until the test ends.
func tlsEcho(t *testing.T, c *CertFiles) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// A renewed certificate is served to the next handshakes without a restart;
// files that do not load leave the certificate in use in place, and are
// logged; the certificate that follows them is served again.
func TestCertFilesServeRenewedCertificates(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := testcert.Write(t, dir)
	var logs testlog.Buffer
	var loaded []time.Time
	var loadedMu sync.Mutex
	c, err := LoadCertFiles(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)), func(cert *tls.Certificate) {
		loadedMu.Lock()
		defer loadedMu.Unlock()
		loaded = append(loaded, cert.Leaf.NotAfter)
	})
	if err != nil {
		t.Fatal(err)
	}
	c.every = 0 // look at the files at every handshake
	addr := tlsEcho(t, c)

	got, err := served(t, addr, first)
	if err != nil || !got.Equal(first) {
		t.Fatalf("first handshake: %v, serial %v", err, got)
	}

	_, _, second := testcert.Write(t, dir)
	got, err = served(t, addr, second)
	if err != nil || !got.Equal(second) {
		t.Fatalf("after the renewal: %v; the old certificate is still served: %v", err, got != nil && got.Equal(first))
	}

	// A key that does not match (a renewal half written) is refused.
	other := t.TempDir()
	_, otherKey, _ := testcert.Write(t, other)
	keyPEM, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = served(t, addr, second)
	if err != nil || !got.Equal(second) {
		t.Fatalf("with a key that does not match: %v; want the second certificate still served", err)
	}
	if !strings.Contains(logs.String(), "do not load; keeping the certificate in use") {
		t.Errorf("the refused pair was not logged:\n%s", logs.String())
	}

	_, _, third := testcert.Write(t, dir)
	if got, err = served(t, addr, third); err != nil || !got.Equal(third) {
		t.Fatalf("after the next renewal: %v", err)
	}
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if len(loaded) != 3 {
		t.Errorf("loaded %d certificates, want 3 (first, second, third)", len(loaded))
	}
}

// Between checks the files are not looked at: a handshake costs no stat.
func TestCertFilesCheckAtMostEveryInterval(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := testcert.Write(t, dir)
	c, err := LoadCertFiles(certFile, keyFile, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.now = func() time.Time { return now }
	_, _, second := testcert.Write(t, dir)
	if got := c.Certificate().Leaf; !got.Equal(first) {
		t.Fatal("the renewal was read before the interval passed")
	}
	now = now.Add(CertCheckInterval)
	if got := c.Certificate().Leaf; !got.Equal(second) {
		t.Fatal("the renewal was not read once the interval passed")
	}
}

func TestLoadCertFilesErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testcert.Write(t, dir)
	_, otherKey, _ := testcert.Write(t, t.TempDir())
	for name, pair := range map[string][2]string{
		"missing cert":    {dir + "/nope.pem", keyFile},
		"missing key":     {certFile, dir + "/nope.pem"},
		"key of another":  {certFile, otherKey},
		"key as the cert": {keyFile, keyFile},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadCertFiles(pair[0], pair[1], slog.New(slog.DiscardHandler), nil); err == nil {
				t.Fatal("loaded")
			}
		})
	}
}

// Over TLS too, a client that completed its handshake and sent no request
// (Go's HTTP transport shakes hands as it dials) does not hold a shutdown
// for the read timeout, and a request answered over TLS goes its usual way.
func TestShutdownClosesSilentTLSConnections(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := testcert.Write(t, dir)
	c, err := LoadCertFiles(certFile, keyFile, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := New(Options{ReadTimeout: 8 * time.Second, WriteTimeout: 8 * time.Second, IdleTimeout: 30 * time.Second, TLS: c.TLSConfig()}, nil, log, metrics.New())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	clientTLS := &tls.Config{RootCAs: testcert.Pool(cert), ServerName: testcert.Name}
	// Plain HTTP on the TLS listener gets no HTTP answer.
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(plain, "GET /webhooks/none HTTP/1.1\r\nHost: x\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	if reply, _ := io.ReadAll(plain); bytes.HasPrefix(reply, []byte("HTTP/")) {
		t.Errorf("plain HTTP was answered: %q", reply)
	}
	plain.Close()

	// An unknown path over TLS is answered 404.
	asked, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer asked.Close()
	io.WriteString(asked, "GET /webhooks/none HTTP/1.1\r\nHost: x\r\n\r\n")
	status := make([]byte, 12)
	if _, err := io.ReadFull(asked, status); err != nil || string(status) != "HTTP/1.1 404" {
		t.Fatalf("over TLS: %q, %v; want a 404", status, err)
	}

	quiet, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	time.Sleep(silentConnGrace + 100*time.Millisecond)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("shutdown waited %v for a connection that only shook hands", waited)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if strings.Contains(logs.String(), "status=408") {
		t.Errorf("the silent connection was logged as a rejected request:\n%s", logs.String())
	}
}

// A renewal renamed over the old file is seen even when it keeps the old
// file's modification time and size (a copy that preserves times).
func TestCertFilesSeeARenameThatKeepsTimeAndSize(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := testcert.Write(t, dir)
	c, err := LoadCertFiles(certFile, keyFile, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.every = 0
	fi, err := os.Stat(certFile)
	if err != nil {
		t.Fatal(err)
	}
	// The same certificate and key, copied to new files with the old
	// times and renamed over the old ones: same size, same time, new files.
	for _, path := range []string{certFile, keyFile} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path+".new", fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	loads := 0
	c.loaded = func(*tls.Certificate) { loads++ }
	c.Certificate() // settle on the files as they are now
	loads = 0
	for _, path := range []string{certFile, keyFile} {
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Certificate().Leaf; !got.Equal(first) || loads != 1 {
		t.Fatalf("after the rename: reloaded %d times, want once", loads)
	}
}

// Watched files are read again without any handshake: the expiry a
// renewal brings is reported within the interval.
func TestCertFilesWatchReadsRenewalsWithoutHandshakes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testcert.Write(t, dir)
	loaded := make(chan *x509.Certificate, 4)
	c, err := LoadCertFiles(certFile, keyFile, slog.New(slog.DiscardHandler), func(cert *tls.Certificate) { loaded <- cert.Leaf })
	if err != nil {
		t.Fatal(err)
	}
	<-loaded
	c.every = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Watch(ctx)
	_, _, second := testcert.Write(t, dir)
	select {
	case got := <-loaded:
		if !got.Equal(second) {
			t.Fatal("loaded another certificate than the renewal")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the renewal was not read without a handshake")
	}
}
