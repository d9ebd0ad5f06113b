package bridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookbridge/hookbridge/internal/testcert"
)

// With server.tls the webhook listener serves HTTPS: a signed lead is
// acknowledged over it, plain HTTP is not served, and the certificate's
// expiry is on /metrics. admin.tls does the same for the admin listener.
func TestWebhooksOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := testcert.Write(t, dir)
	cfg := strings.NewReplacer(
		`server: {listen: "127.0.0.1:0"}`,
		fmt.Sprintf(`server: {listen: "127.0.0.1:0", tls: {cert_file: %q, key_file: %q}}`, certFile, keyFile),
		`admin: {listen: "127.0.0.1:0"}`,
		fmt.Sprintf(`admin: {listen: "127.0.0.1:0", tls: {cert_file: %q, key_file: %q}}`, certFile, keyFile),
	).Replace(testConfig(dir, "  - {name: all, sinks: [archive]}\n"))
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, path)

	const body = `{"event":"lead","chatbot_id":"HC-1","session_id":"s-1","email":"a@example.com"}`
	ts := time.Now().Unix()
	m := hmac.New(sha256.New, []byte("s3cret"))
	fmt.Fprintf(m, "%d.%s", ts, body)
	sig := fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil)))
	post := func(client *http.Client, scheme string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, scheme+"://"+a.Addr().String()+"/webhooks/helloclient", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhook-Signature", sig)
		return client.Do(req)
	}

	if resp, err := post(&http.Client{Timeout: 5 * time.Second}, "http"); err == nil {
		resp.Body.Close()
		t.Fatalf("plain HTTP was answered %d", resp.StatusCode)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: testcert.Pool(cert), ServerName: testcert.Name},
	}}
	resp, err := post(client, "https")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != `{"status":"success"}` {
		t.Fatalf("over HTTPS: %d %s", resp.StatusCode, got)
	}
	if resp.TLS == nil || !resp.TLS.PeerCertificates[0].Equal(cert) {
		t.Fatal("the answer did not come over TLS with the configured certificate")
	}
	if n := testutil.ToFloat64(a.Metrics().EventsAccepted.WithLabelValues("helloclient")); n != 1 {
		t.Errorf("events accepted: %v, want 1", n)
	}
	for _, listener := range []string{"webhooks", "admin"} {
		if got := testutil.ToFloat64(a.Metrics().CertificateNotAfter.WithLabelValues(listener)); got != float64(cert.NotAfter.Unix()) {
			t.Errorf("hookbridge_tls_certificate_not_after_seconds{listener=%q} = %v, want %d", listener, got, cert.NotAfter.Unix())
		}
	}

	// With admin.tls the admin listener serves HTTPS only too.
	ready, err := client.Get("https://" + a.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusOK || ready.TLS == nil {
		t.Fatalf("admin over HTTPS: %d, TLS %v", ready.StatusCode, ready.TLS != nil)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + a.AdminAddr().String() + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the admin listener answered plain HTTP")
		}
	}
}

// server.tls and admin.tls mistakes are reported at their line, before
// anything starts.
func TestServerTLSMistakes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testcert.Write(t, dir)
	_, otherKey, _ := testcert.Write(t, t.TempDir())
	for name, c := range map[string]struct{ tls, want string }{
		"cert without key":   {fmt.Sprintf("{cert_file: %q}", certFile), "c.yaml:6:10: server.tls needs both cert_file and key_file"},
		"key without cert":   {fmt.Sprintf("{key_file: %q}", keyFile), "server.tls needs both cert_file and key_file"},
		"key of another":     {fmt.Sprintf("{cert_file: %q, key_file: %q}", certFile, otherKey), "server.tls: loading the certificate " + certFile},
		"missing file":       {fmt.Sprintf("{cert_file: %q, key_file: %q}", dir+"/none.pem", keyFile), "no such file"},
		"unknown key in tls": {fmt.Sprintf("{cert_file: %q, key_file: %q, ca_file: x}", certFile, keyFile), `unknown key "ca_file"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := parse(t, base+"server: {tls: "+c.tls+"}\n", nil)
			if errs == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(errs.Error(), c.want) {
				t.Fatalf("errors lack %q:\n%s", c.want, errs)
			}
			// The same mistakes under admin.tls, reported as such.
			_, errs = parse(t, base+"admin: {tls: "+c.tls+"}\n", nil)
			if errs == nil {
				t.Fatal("admin.tls accepted")
			}
			want := strings.NewReplacer("server.tls", "admin.tls", "6:10", "6:9").Replace(c.want)
			if !strings.Contains(errs.Error(), want) {
				t.Fatalf("errors lack %q:\n%s", want, errs)
			}
		})
	}
}

// A reload cannot switch the listener between HTTP and HTTPS or to other
// files: it is refused and the running config stays. (Renewed contents of
// the same files are read without a reload.)
func TestReloadRefusesServerTLSChanges(t *testing.T) {
	plain := &File{}
	withTLS := &File{Server: ServerConfig{TLS: ServerTLS{CertFile: "a.pem", KeyFile: "a.key"}}}
	otherFiles := &File{Server: ServerConfig{TLS: ServerTLS{CertFile: "b.pem", KeyFile: "a.key"}}}
	for name, pair := range map[string][2]*File{
		"turned on":   {plain, withTLS},
		"turned off":  {withTLS, plain},
		"other files": {withTLS, otherFiles},
		"admin on":    {plain, {Admin: AdminConfig{TLS: withTLS.Server.TLS}}},
	} {
		err := checkRestartOnly(pair[0], pair[1], 0)
		if err == nil || !strings.Contains(err.Error(), "changing server.tls or admin.tls needs a restart") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := checkRestartOnly(withTLS, &File{Server: ServerConfig{TLS: withTLS.Server.TLS}}, 0); err != nil {
		t.Errorf("unchanged: %v", err)
	}
}

// What the running listeners and logger were built with is refused by a
// reload, with a message naming it; the rest reloads.
func TestReloadRefusesWhatTheListenersWereBuiltWith(t *testing.T) {
	base := func() *File {
		return &File{
			Server: ServerConfig{BodyLimit: 1 << 20, ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Minute},
			Log:    LogConfig{Level: "info", Format: "text"},
		}
	}
	for name, c := range map[string]struct {
		edit func(*File)
		want string // "" when the reload may go ahead
	}{
		"read_timeout":             {func(f *File) { f.Server.ReadTimeout *= 2 }, "server.read_timeout, write_timeout or idle_timeout needs a restart"},
		"idle_timeout":             {func(f *File) { f.Server.IdleTimeout = 0 }, "server.read_timeout, write_timeout or idle_timeout needs a restart"},
		"body_limit raised":        {func(f *File) { f.Server.BodyLimit = 2 << 20 }, "raising a body_limit above 1MiB, the largest the listener was started with, needs a restart"},
		"a source's limit raised":  {func(f *File) { f.Sources = []*SourceSpec{{Common: SourceCommon{BodyLimit: 4 << 20}}} }, "raising a body_limit above 1MiB"},
		"body_limit lowered":       {func(f *File) { f.Server.BodyLimit = 64 << 10 }, ""},
		"log.format":               {func(f *File) { f.Log.Format = "json" }, "changing log.format needs a restart"},
		"log.level":                {func(f *File) { f.Log.Level = "debug" }, ""},
		"admin.token":              {func(f *File) { f.Admin.Token = "new" }, ""},
		"back to the started size": {func(f *File) {}, ""},
	} {
		next := base()
		c.edit(next)
		old := base()
		old.Server.BodyLimit = 64 << 10 // a reload had lowered it
		err := checkRestartOnly(old, next, 1<<20)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// The files of a kafka sink's tls block and of queue.tls are read when the
// config is loaded, as server.tls's are: one that is missing or holds no
// certificate is a mistake at the tls key, reported before anything starts,
// not a broker taken to be down.
func TestKafkaTLSFilesAreReadAtLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testcert.Write(t, dir)
	_, otherKey, _ := testcert.Write(t, t.TempDir())
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const sink = `  k: {type: kafka, brokers: ["127.0.0.1:9092"], topic: events, tls: `
	const queue = `queue: {type: kafka, brokers: ["127.0.0.1:9092"], tls: `
	// Line 6 of the file, after base; the column is the tls key's.
	sinkAt := fmt.Sprintf("c.yaml:6:%d: tls: ", strings.Index(sink, "tls:")+1)
	queueAt := fmt.Sprintf("c.yaml:6:%d: queue.tls: ", strings.Index(queue, "tls:")+1)
	for name, c := range map[string]struct{ tls, want string }{
		"missing ca_file":    {fmt.Sprintf("{enabled: true, ca_file: %q}", dir+"/none.pem"), "reading ca_file: open " + dir + "/none.pem: no such file"},
		"ca_file not PEM":    {fmt.Sprintf("{enabled: true, ca_file: %q}", notPEM), "ca_file " + notPEM + " holds no PEM certificate"},
		"missing client key": {fmt.Sprintf("{enabled: true, cert_file: %q, key_file: %q}", certFile, dir+"/none.key"), "loading cert_file and key_file: open " + dir + "/none.key"},
		"key of another":     {fmt.Sprintf("{enabled: true, cert_file: %q, key_file: %q}", certFile, otherKey), "loading cert_file and key_file: "},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := parse(t, base+sink+c.tls+"}\n", nil)
			if len(errs) != 1 || !strings.Contains(errs.Error(), sinkAt+c.want) {
				t.Errorf("sink: want one error %q, got:\n%v", sinkAt+c.want, errs)
			}
			_, errs = parse(t, base+queue+c.tls+"}\n", nil)
			if len(errs) != 1 || !strings.Contains(errs.Error(), queueAt+c.want) {
				t.Errorf("queue: want one error %q, got:\n%v", queueAt+c.want, errs)
			}
		})
	}

	// Files that are there and hold what they should are accepted.
	good := fmt.Sprintf("{enabled: true, ca_file: %q, cert_file: %q, key_file: %q}", certFile, certFile, keyFile)
	if _, errs := parse(t, base+sink+good+"}\n", nil); errs != nil {
		t.Errorf("sink with readable files: %v", errs)
	}
	if _, errs := parse(t, base+queue+good+"}\n", nil); errs != nil {
		t.Errorf("queue with readable files: %v", errs)
	}
	// A disabled sink is not started: its files are not read.
	missing := fmt.Sprintf("{enabled: true, ca_file: %q}", dir+"/none.pem")
	if _, errs := parse(t, base+sink+missing+", enabled: false}\n", nil); errs != nil {
		t.Errorf("disabled sink: %v", errs)
	}
	// A tls block Validate refuses is blamed once, not again for its files.
	_, errs := parse(t, base+sink+fmt.Sprintf("{enabled: true, cert_file: %q}", dir+"/none.pem")+"}\n", nil)
	if len(errs) != 1 || !strings.Contains(errs.Error(), "cert_file and key_file go together") {
		t.Errorf("cert_file without key_file: %v", errs)
	}
}

// A reload that names a kafka sink's missing ca_file is refused with the
// file, line and column, and the running config stays.
func TestReloadRefusesAKafkaSinkWithAMissingCAFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	conf := testConfig(dir, "  - {name: all, sinks: [archive]}\n")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, path)
	missing := filepath.Join(dir, "missing.pem")
	edited := strings.Replace(conf, "sinks:\n", fmt.Sprintf("sinks:\n  k: {type: kafka, brokers: [\"127.0.0.1:9092\"], topic: events, tls: {enabled: true, ca_file: %q}}\n", missing), 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	err := a.Reload(context.Background())
	want := path + ":8:" // the line of the new sink
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "tls: reading ca_file: open "+missing) {
		t.Fatalf("reload: %v; want an error at %s about ca_file", err, want)
	}
	if n := testutil.ToFloat64(a.m.ConfigReloads.WithLabelValues("rejected")); n != 1 {
		t.Errorf("reloads rejected = %v, want 1", n)
	}
	if a.rt.Load().File.Sink("k") != nil {
		t.Error("the rejected config is in force")
	}
}
