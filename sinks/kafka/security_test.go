package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookbridge/hookbridge/config"
	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/tmpl"
)

// testPKI is a CA and a broker certificate for 127.0.0.1, made per test.
type testPKI struct {
	caFile string
	server tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hookbridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kafka.test"},
		DNSNames:     []string{"kafka.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testPKI{
		caFile: caFile,
		server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}
}

func TestTLSAndSASL(t *testing.T) {
	pki := newTestPKI(t)
	c := newCluster(t,
		kfake.SeedTopics(1, "secure"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plain-secret"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "secret-256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "secret-512"),
	)
	brokers := c.ListenAddrs()
	goodTLS := TLSConfig{Enabled: true, CAFile: pki.caFile}

	tests := []struct {
		name      string
		tls       TLSConfig
		sasl      SASLConfig
		wantError string // empty: delivered
	}{
		{name: "plain", tls: goodTLS, sasl: SASLConfig{Mechanism: "plain", Username: "plainuser", Password: "plain-secret"}},
		{name: "scram-sha-256", tls: goodTLS, sasl: SASLConfig{Mechanism: "scram-sha-256", Username: "scram256", Password: "secret-256"}},
		{name: "scram-sha-512 upper case", tls: goodTLS, sasl: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "scram512", Password: "secret-512"}},
		{name: "server name checked", tls: TLSConfig{Enabled: true, CAFile: pki.caFile, ServerName: "kafka.test"},
			sasl: SASLConfig{Mechanism: "plain", Username: "plainuser", Password: "plain-secret"}},
		{name: "wrong password", tls: goodTLS, sasl: SASLConfig{Mechanism: "scram-sha-512", Username: "scram512", Password: "nope"},
			wantError: "kafka sink"}, // kfake hangs up rather than answering SaslAuthenticationFailed
		{name: "untrusted certificate", tls: TLSConfig{Enabled: true},
			sasl: SASLConfig{Mechanism: "plain", Username: "plainuser", Password: "plain-secret"}, wantError: "certificate"},
		{name: "wrong server name", tls: TLSConfig{Enabled: true, CAFile: pki.caFile, ServerName: "other.test"},
			sasl: SASLConfig{Mechanism: "plain", Username: "plainuser", Password: "plain-secret"}, wantError: "certificate"},
		{name: "no tls", sasl: SASLConfig{Mechanism: "plain", Username: "plainuser", Password: "plain-secret"}, wantError: "kafka sink"},
	}
	delivered := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, brokers, "secure", func(cfg *Config) {
				cfg.TLS, cfg.SASL = tc.tls, tc.sasl
				cfg.WriteTimeout = 2 * time.Second
			})
			err := s.Deliver(context.Background(), leadEvent(tc.name, "crisp"))
			if tc.wantError == "" {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				delivered++
				return
			}
			if err == nil {
				t.Fatal("delivered; want an error")
			}
			if sinks.IsPermanent(err) {
				t.Errorf("connection problem %v is permanent; want retryable", err)
			}
			if !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("error %q does not mention %q", err, tc.wantError)
			}
		})
	}

	// Read back over TLS + SASL: exactly the successful deliveries arrived.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki.caFile)
	pool.AppendCertsFromPEM(caPEM)
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: brokers, Topic: "secure", MaxWait: 50 * time.Millisecond,
		Dialer: &kafkago.Dialer{
			Timeout:       5 * time.Second,
			TLS:           &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			SASLMechanism: plain.Mechanism{Username: "plainuser", Password: "plain-secret"},
		},
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < delivered; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading back message %d of %d: %v", i+1, delivered, err)
		}
		if id := headerMap(t, m)["ce_id"]; id != tests[i].name {
			t.Errorf("message %d is %q, want %q", i, id, tests[i].name)
		}
	}
}

// A tls block's files that are missing or hold no certificate are found
// by CheckFiles, which the bridge calls when it loads the config, blaming
// the tls key; the sink still reads them when it starts, and says the same.
func TestTLSFilesAreCheckedAtLoadAndReadAtStart(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"missing ca", TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}, "ca_file"},
		{"ca not pem", TLSConfig{Enabled: true, CAFile: notPEM}, "no PEM certificate"},
		{"missing client pair", TLSConfig{Enabled: true, CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}, "cert_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewConfig()
			cfg.Brokers = []string{"127.0.0.1:1"}
			cfg.TLS = tc.tls
			cfg.Topic = tmpl.MustParse("events")
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate reads no file, and found a mistake: %v", err)
			}
			var fe *config.FieldError
			if err := cfg.CheckFiles(); !errors.As(err, &fe) || fe.Field != "tls" || !strings.Contains(fe.Msg, tc.want) {
				t.Errorf("CheckFiles: %v; want an error at tls about %s", err, tc.want)
			}
			sink, err := cfg.NewSink("tls")
			if err != nil {
				t.Fatalf("NewSink must not read files: %v", err)
			}
			defer sink.Close(context.Background())
			err = sink.(sinks.Starter).Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v; want an error about %s", err, tc.want)
			}
		})
	}
	if err := (TLSConfig{Enabled: true, CAFile: newTestPKI(t).caFile}).CheckFiles(); err != nil {
		t.Errorf("CheckFiles of a readable CA bundle: %v", err)
	}
}
