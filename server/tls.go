package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertCheckInterval is how often, at most, a listener looks at its
// certificate files for a new certificate: a renewal (certbot, cert-manager,
// a Kubernetes Secret volume's update) takes effect within it, without a
// restart or reload.
const CertCheckInterval = 10 * time.Second

// CertFiles serves a listener's certificate from a PEM certificate
// (chain) file and its key file, and reads them again when either changes.
// A pair that does not load (a renewal half written, a key that does not
// match) is logged and the certificate in use is kept.
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger
	loaded            func(*tls.Certificate)
	every             time.Duration
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	seen    [2]fileStamp // of certFile and keyFile, when cert was loaded or last refused
	checked time.Time
}

// fileStamp tells a changed file from an unchanged one: another file
// renamed over it (as renewal tools and Secret volumes replace files), or
// the same file written again.
type fileStamp struct {
	info os.FileInfo // nil when the file could not be read
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows links: a Secret volume swaps its ..data link
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi}, nil
}

func (s fileStamp) same(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil
	}
	return os.SameFile(s.info, o.info) && s.info.ModTime().Equal(o.info.ModTime()) && s.info.Size() == o.info.Size()
}

// sameStamps reports whether two readings of the pair found both unchanged.
func sameStamps(a, b [2]fileStamp) bool { return a[0].same(b[0]) && a[1].same(b[1]) }

// LoadCertFiles loads the pair once; an error names what is wrong with it.
// log says which listener it is for.
// loaded, when not nil, is called with each certificate loaded, this one
// included.
func LoadCertFiles(certFile, keyFile string, log *slog.Logger, loaded func(*tls.Certificate)) (*CertFiles, error) {
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log, loaded: loaded, every: CertCheckInterval, now: time.Now}
	stamps, err := c.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.seen, c.checked = stamps, c.now()
	c.use(cert)
	return c, nil
}

// LoadKeyPair reads a PEM certificate (chain) and its key, which must match.
// The returned certificate's Leaf is set.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // left out under GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// use makes cert the one served. Called with c.mu held, or before c is shared.
func (c *CertFiles) use(cert *tls.Certificate) {
	c.cert = cert
	if c.loaded != nil {
		c.loaded(cert)
	}
	if notAfter := cert.Leaf.NotAfter; c.now().After(notAfter) {
		c.log.Warn("the listener's certificate has expired: clients will refuse to connect", "cert_file", c.certFile, "not_after", notAfter.UTC())
	}
}

func (c *CertFiles) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	var err error
	for i, path := range []string{c.certFile, c.keyFile} {
		if s[i], err = stampOf(path); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Watch checks the files every CertCheckInterval until ctx ends, so that a
// renewal is loaded, reported to loaded (the expiry metric) and, when it
// does not load, logged within the interval, not at the next client's
// handshake: behind a proxy that keeps its connections open, that may be
// days away.
func (c *CertFiles) Watch(ctx context.Context) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Certificate()
		}
	}
}

// Certificate is the certificate in use, after a check for a new one when
// the last check is older than CertCheckInterval.
func (c *CertFiles) Certificate() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < c.every {
		return c.cert
	}
	c.checked = now
	stamps, err := c.stamps()
	if err != nil {
		if !sameStamps(stamps, c.seen) {
			c.log.Error("cannot read the listener's certificate files; keeping the certificate in use", "err", err)
			c.seen = stamps
		}
		return c.cert
	}
	if sameStamps(stamps, c.seen) {
		return c.cert
	}
	c.seen = stamps
	cert, err := LoadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Error("the listener's certificate files changed but do not load; keeping the certificate in use", "err", err)
		return c.cert
	}
	c.log.Info("loaded the listener's new certificate", "cert_file", c.certFile, "not_after", cert.Leaf.NotAfter.UTC())
	c.use(cert)
	return c.cert
}

// TLSConfig is the listener's TLS configuration: TLS 1.2 or later, HTTP/1.1,
// the certificate from c.
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := c.Certificate(); cert != nil {
				return cert, nil
			}
			return nil, errors.New("no certificate")
		},
	}
}
