package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/internal/testcert"
	"github.com/hookbridge/hookbridge/server"
)

const hcSecret = "e2e-helloclient-signing-key"

const coreConfig = `
server: {listen: "{{WEBHOOK}}", body_limit: 64KiB}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
log: {level: info}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
`

func leadBody(n int) []byte {
	return []byte(fmt.Sprintf(`{"Type":"lead","SerialNumber":"HC-8842","SessionID":"session-%d","FirstName":"Ada","LastName":"Lovelace %d","Email":"ada%d@example.com","CreateTime":"2026-11-20T10:15:00Z"}`, n, n, n))
}

func TestLeadLandsInFileAsCloudEvent(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	body := leadBody(1)
	resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
		map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Body != `{"status":"success"}` {
		t.Fatalf("answer %d %q, want 200 {\"status\":\"success\"}", resp.Status, resp.Body)
	}
	path := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "the event in the file", func() bool { return len(readLines(t, path)) == 1 })
	ev := readLines(t, path)[0]
	want := fileEvent{ID: sha256Hex(body), Type: "com.helloclient.lead", Source: "https://helloclient.com/chatbots/HC-8842",
		Subject: "sessions/session-1", Time: "2026-11-20T10:15:00Z", SpecVersion: "1.0", BridgeSource: "helloclient"}
	got := ev
	got.Data = nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("event\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(ev.Data, body) {
		t.Fatalf("data %s, want the provider's payload %s", ev.Data, body)
	}
	// The provider retrying the same delivery is answered 200 and not delivered again.
	resp, _ = post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
		map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
	if resp.Status != 200 {
		t.Fatalf("retry answered %d", resp.Status)
	}
	if code := b.Stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Fatalf("%d events after a provider retry, want 1", n)
	}
}

func TestRejectedRequestsQueueNothing(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	url := "http://" + b.Addr + "/webhooks/helloclient"
	now := time.Now().Unix()
	body := leadBody(2)
	big := append(leadBody(3)[:0:0], leadBody(3)...)
	big = append(big[:len(big)-1], []byte(`,"Pad":"`+strings.Repeat("x", 70<<10)+`"}`)...)
	wrongURL := "http://" + b.Addr + "/webhooks/hello-client"
	cases := []struct {
		name   string
		url    string
		body   []byte
		header string
		want   int
	}{
		{"forged signature", url, body, helloclientSign("not-the-key", now, body), 401},
		{"stale timestamp", url, body, helloclientSign(hcSecret, now-3600, body), 401},
		{"missing signature", url, body, "", 401},
		{"tampered body", url, leadBody(4), helloclientSign(hcSecret, now, body), 401},
		{"oversize body", url, big, helloclientSign(hcSecret, now, big), 413},
		{"no source at the path", wrongURL, body, helloclientSign(hcSecret, now, body), 404},
	}
	for _, c := range cases {
		headers := map[string]string{}
		if c.header != "" {
			headers["X-Webhook-Signature"] = c.header
		}
		resp, err := post(t, http.DefaultClient, c.url, c.body, headers)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if resp.Status != c.want {
			t.Errorf("%s: answered %d, want %d", c.name, resp.Status, c.want)
		}
	}
	// A good event after them is the only one that arrives.
	sentinel := leadBody(5)
	resp, _ := post(t, http.DefaultClient, url, sentinel, map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, now, sentinel)})
	if resp.Status != 200 {
		t.Fatalf("sentinel answered %d", resp.Status)
	}
	path := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "the sentinel", func() bool { return len(readLines(t, path)) >= 1 })
	b.Stop()
	lines := readLines(t, path)
	if len(lines) != 1 || lines[0].ID != sha256Hex(sentinel) {
		t.Fatalf("file holds %d events, want only the sentinel: %+v", len(lines), lines)
	}
	for _, reason := range []string{"signature_mismatch", "stale_timestamp", "missing_signature", "body over the", "no webhook source at this path\" path=/webhooks/hello-client"} {
		if !strings.Contains(b.Log(), reason) {
			t.Errorf("no log line says %q", reason)
		}
	}
}

// TestKillNineLosesNothingAcknowledged acknowledges events under load, kills
// the bridge with SIGKILL, restarts it, and finds every acknowledged event in
// the file sink.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	count, stop := streamLeads(t, "http://"+b.Addr+"/webhooks/helloclient", hcSecret, 16, leadBody)
	waitFor(t, 30*time.Second, "1000 acknowledged events", func() bool { return count() >= 1000 })
	b.Kill()
	acked := stop()
	t.Logf("acknowledged %d events before SIGKILL", len(acked))

	b.Start()
	path := filepath.Join(b.Dir, "events.jsonl")
	waitDelivered(t, 60*time.Second, acked, path)
	if code := b.Stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	lines := readLines(t, path)
	byID := map[string][]fileEvent{}
	for _, ev := range lines {
		byID[ev.ID] = append(byID[ev.ID], ev)
	}
	dups := 0
	for id, evs := range byID {
		if len(evs) > 1 {
			dups += len(evs) - 1
			for _, ev := range evs[1:] {
				if !bytes.Equal(ev.Data, evs[0].Data) || ev.Type != evs[0].Type {
					t.Fatalf("duplicate of %s differs from the first copy", id)
				}
			}
		}
	}
	t.Logf("file: %d lines, %d distinct events, %d redelivered (mid-delivery at the kill)", len(lines), len(byID), dups)
	// Only what was being delivered at the kill may come twice: at most one
	// batch of the file sink (500).
	if dups > 500 {
		t.Fatalf("%d duplicates: more than the events in flight at the kill", dups)
	}
}

func TestValidateReportsEveryMistakeWithLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`server: {listen: ":8080"}
sources:
  helloclient: {type: helloclient, secret: x, tolerence: 5m}
sinks:
  archive: {type: file, path: "{{ .Data.Email "}
routes:
  - {name: all, sinks: [archive, slack-sales]}
`), 0o644)
	out, err := exec.Command(bridgeBin, "validate", "-c", path).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad file:\n%s", out)
	}
	for _, want := range []string{
		path + `:3:47: unknown key "tolerence"`,
		path + `:5:31: bad template`,
		path + `:7:34: route "all": unknown sink "slack-sales"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestSendAndRoutesTest drives the CLI as a user would: bridge send signs a
// payload as the provider does and the running bridge accepts it; bridge
// routes test shows the event and the routes without sending anything.
func TestSendAndRoutesTest(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	payload := filepath.Join(b.Dir, "lead.json")
	os.WriteFile(payload, leadBody(77), 0o644)
	run := func(args ...string) string {
		cmd := exec.Command(bridgeBin, args...)
		cmd.Env = append(os.Environ(), "HC_KEY="+hcSecret)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bridge %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("send", "-c", b.Config, "--source", "helloclient", payload)
	if !strings.Contains(out, "200 OK") || !strings.Contains(out, `{"status":"success"}`) {
		t.Fatalf("send printed:\n%s", out)
	}
	path := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "the sent event", func() bool {
		lines := readLines(t, path)
		return len(lines) == 1 && lines[0].ID == sha256Hex(leadBody(77))
	})
	out = run("routes", "test", "-c", b.Config, "--source", "helloclient", payload)
	for _, want := range []string{`"type": "com.helloclient.lead"`, "-- routes: everything", "-- sink archive:", "append to " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("routes test lacks %q:\n%s", want, out)
		}
	}
	b.Stop()
	if n := len(readLines(t, path)); n != 1 {
		t.Fatalf("routes test must send nothing; the file has %d events", n)
	}
}

// TestRoutesTestSeesTheProvidersRequest: routes test converts a payload as
// it arrives from the provider, with the headers bridge send would set: a
// GitHub payload's event name, a Slack slash command's form content type.
func TestRoutesTestSeesTheProvidersRequest(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "bridge.yaml")
	os.WriteFile(config, []byte(`
sources:
  github: {type: github, secret: gh-secret}
  slack: {type: slack, secret: slack-secret}
sinks:
  archive: {type: file, path: "`+dir+`/events.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
`), 0o644)
	slash := filepath.Join(dir, "slash.txt")
	os.WriteFile(slash, []byte("token=x&team_id=T0TEAM&channel_id=C0CHAN&user_id=U0USER&command=%2Fweather&text=94070&trigger_id=13345224609.738474920.8088930838d88f008e0"), 0o644)
	for _, c := range []struct{ source, payload, want string }{
		{"github", "../sources/github/testdata/issues_opened/body", `"type": "com.github.issues.opened"`},
		{"slack", slash, `"type": "com.slack.command.weather"`},
	} {
		out, err := exec.Command(bridgeBin, "routes", "test", "-c", config, "--source", c.source, c.payload).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("routes test of %s (%v) lacks %s:\n%s", c.payload, err, c.want, out)
		}
	}
}

// TestSendOverHTTPS: with server.tls the binary serves HTTPS only, bridge
// send reaches it over TLS trusting the configured certificate (issued for
// a name, reached at 127.0.0.1), and a certificate renewed on disk is served
// to new connections without a restart.
func TestSendOverHTTPS(t *testing.T) {
	b := newBridge(t, strings.Replace(coreConfig, `server: {listen: "{{WEBHOOK}}", body_limit: 64KiB}`,
		`server: {listen: "{{WEBHOOK}}", body_limit: 64KiB, tls: {cert_file: "{{DIR}}/cert.pem", key_file: "{{DIR}}/key.pem"}}`, 1),
		"HC_KEY="+hcSecret)
	_, _, first := testcert.Write(t, b.Dir)
	b.Start()
	waitFor(t, 5*time.Second, "a start line that says HTTPS", func() bool { return strings.Contains(b.Log(), "webhooks=https://") })
	payload := filepath.Join(b.Dir, "lead.json")
	os.WriteFile(payload, leadBody(91), 0o644)
	cmd := exec.Command(bridgeBin, "send", "-c", b.Config, "--source", "helloclient", payload)
	cmd.Env = append(os.Environ(), "HC_KEY="+hcSecret)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `{"status":"success"}`) || !strings.Contains(string(out), "https://") {
		t.Fatalf("bridge send: %v\n%s", err, out)
	}
	path := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "the event sent over HTTPS", func() bool {
		lines := readLines(t, path)
		return len(lines) == 1 && lines[0].ID == sha256Hex(leadBody(91))
	})

	// Plain HTTP gets no answer.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + b.Addr + "/webhooks/helloclient"); err == nil {
		resp.Body.Close()
		t.Errorf("plain HTTP was answered %d", resp.StatusCode)
	}

	served := func(trust *x509.Certificate) (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", b.Addr, &tls.Config{RootCAs: testcert.Pool(trust), ServerName: testcert.Name})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	if got, err := served(first); err != nil || !got.Equal(first) {
		t.Fatalf("before the renewal: %v", err)
	}
	_, _, renewed := testcert.Write(t, b.Dir)
	waitFor(t, 2*server.CertCheckInterval, "the renewed certificate", func() bool {
		got, err := served(renewed)
		return err == nil && got.Equal(renewed)
	})
	// The bridge's output reaches the test through a pipe, a moment later.
	waitFor(t, 5*time.Second, "the renewal in the log", func() bool {
		return strings.Contains(b.Log(), "loaded the listener's new certificate")
	})
	if code := b.Stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestAllowIPsThroughTrustedProxies: a source restricted to 198.51.100.0/24
// refuses a direct client (403) and one that merely claims an allowed
// address, and accepts a client forwarded by a trusted proxy.
func TestAllowIPsThroughTrustedProxies(t *testing.T) {
	const cfg = `
server: {listen: "{{WEBHOOK}}", trusted_proxies: [{{PROXY}}]}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", allow_ips: [198.51.100.0/24]}
sinks:
  archive: {type: file, path: "{{DIR}}/events.jsonl"}
routes:
  - {name: everything, sinks: [archive]}
`
	for _, c := range []struct {
		name, proxy, xff string
		want             int
	}{
		{"direct client outside the list", "10.9.9.9/32", "", 403},
		{"spoofed header from an untrusted peer", "10.9.9.9/32", "198.51.100.7", 403},
		{"forwarded by a trusted proxy", "127.0.0.1/32", "198.51.100.7", 200},
		{"trusted proxy forwarding a client outside the list", "127.0.0.1/32", "203.0.113.5", 403},
		// A proxy that adds a header line of its own, after the one the
		// client forged: the lines are one list, the proxy's last.
		{"forged first header line", "127.0.0.1/32", "198.51.100.7\n203.0.113.5", 403},
		{"client's address in the proxy's own line", "127.0.0.1/32", "203.0.113.5\n198.51.100.7", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBridge(t, strings.ReplaceAll(cfg, "{{PROXY}}", c.proxy), "HC_KEY="+hcSecret)
			b.Start()
			body := leadBody(300)
			headers := map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)}
			if c.xff != "" {
				headers["X-Forwarded-For"] = c.xff
			}
			resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body, headers)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.want {
				t.Fatalf("answered %d, want %d", resp.Status, c.want)
			}
			b.Stop()
			if c.want == 403 && !strings.Contains(b.Log(), "client IP not in allow_ips") {
				t.Error("no log line says why")
			}
		})
	}
}
