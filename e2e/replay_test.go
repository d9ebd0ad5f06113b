package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReplayDeadLettersFromTheCommandLine: leads a CRM refused (400, so
// dead-lettered at once) are replayed with bridge replay once the CRM is
// fixed: a dry run changes nothing, a filter on the payload picks some, and
// the rest follow across more than one page of the admin API; the one
// signed body that was not JSON stays, as it is not an event, until bridge
// discard removes it.
func TestReplayDeadLettersFromTheCommandLine(t *testing.T) {
	crm := newCRM(t)
	b := newBridge(t, inspectorConfig, "HC_KEY="+hcSecret, "ADMIN_TOKEN="+inspectorToken, "CRM_URL="+crm.URL)
	b.Start()
	admin := "http://" + b.Admin

	const leads = 250 // more than one page (200) of dead letters
	var ids, vips []string
	for i := range leads {
		email := fmt.Sprintf("ada%d@example.com", i)
		if i%5 == 0 {
			email = fmt.Sprintf("vip%d@example.com", i)
		}
		body := []byte(fmt.Sprintf(`{"Type":"lead","SerialNumber":"HC-8842","SessionID":"replay-%d","FirstName":"Ada","Email":%q,"CreateTime":"2026-11-20T10:15:00Z"}`, i, email))
		resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
			map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
		if err != nil || resp.Status != 200 {
			t.Fatalf("lead %d: %v %d", i, err, resp.Status)
		}
		ids = append(ids, sha256Hex(body))
		if i%5 == 0 {
			vips = append(vips, sha256Hex(body))
		}
	}
	notJSON := []byte("FirstName=Ada")
	if resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", notJSON,
		map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), notJSON)}); err != nil || resp.Status != 400 {
		t.Fatalf("the body that is not JSON: %v %d", err, resp.Status)
	}
	waitFor(t, 30*time.Second, "every lead dead-lettered", func() bool { return deadLetterCount(t, admin) == leads+1 })

	replay := func(args ...string) string {
		t.Helper()
		return runBridge(t, b, crm, append([]string{"replay"}, args...)...)
	}
	lastLine := func(out string) string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}

	out := replay("--sink", "crm", "--dry-run")
	if got := lastLine(out); got != fmt.Sprintf("would replay %d dead letter(s)", leads) {
		t.Fatalf("dry run: %q\n%s", got, out)
	}
	if strings.Count(out, "would replay ") != leads+1 || !strings.Contains(out, " to crm: com.helloclient.lead ") {
		t.Errorf("the dry run does not list each lead:\n%.2000s", out)
	}
	if n := deadLetterCount(t, admin); n != leads+1 {
		t.Fatalf("after the dry run: %d dead letters, want %d", n, leads+1)
	}

	crm.accept.Store(true)
	out = replay("--filter", "{prefix: {data.Email: vip}}")
	if got := lastLine(out); got != fmt.Sprintf("replayed %d dead letter(s)", len(vips)) {
		t.Fatalf("replaying the VIPs: %q\n%s", got, out)
	}
	waitFor(t, 20*time.Second, "the VIP leads at the CRM", func() bool {
		for _, id := range vips {
			if crm.received(id) != 1 {
				return false
			}
		}
		return true
	})
	if n := deadLetterCount(t, admin); n != leads+1-len(vips) {
		t.Fatalf("after replaying the VIPs: %d dead letters, want %d", n, leads+1-len(vips))
	}

	out = replay("--since", "1h")
	want := fmt.Sprintf("replayed %d dead letter(s); 1 rejected request bod(ies) cannot be replayed", leads-len(vips))
	if got := lastLine(out); got != want {
		t.Fatalf("replaying the rest: %q, want %q\n%.2000s", got, want, out)
	}
	waitFor(t, 30*time.Second, "every lead at the CRM once", func() bool {
		for _, id := range ids {
			if crm.received(id) != 1 {
				return false
			}
		}
		return true
	})
	if n := deadLetterCount(t, admin); n != 1 {
		t.Fatalf("after replaying all: %d dead letters, want the rejected body alone", n)
	}
	if got := lastLine(replay()); got != "replayed 0 dead letter(s); 1 rejected request bod(ies) cannot be replayed" {
		t.Errorf("with nothing left: %q", got)
	}

	// The rejected body goes with bridge discard, after a dry run.
	out = runBridge(t, b, crm, "discard", "--dry-run")
	if !strings.Contains(out, "would discard ") || !strings.Contains(out, "a request body from helloclient") ||
		lastLine(out) != "would discard 1 dead letter(s)" {
		t.Fatalf("discard dry run:\n%s", out)
	}
	if n := deadLetterCount(t, admin); n != 1 {
		t.Fatalf("after the discard dry run: %d dead letters, want 1", n)
	}
	if out = runBridge(t, b, crm, "discard"); lastLine(out) != "discarded 1 dead letter(s)" {
		t.Fatalf("discard:\n%s", out)
	}
	if n := deadLetterCount(t, admin); n != 0 {
		t.Fatalf("after the discard: %d dead letters, want none", n)
	}

	// Without the token the admin API refuses, and replay says so.
	cmd := exec.Command(bridgeBin, "replay", "-c", b.Config)
	cmd.Env = append(os.Environ(), "HC_KEY="+hcSecret, "ADMIN_TOKEN=wrong", "CRM_URL="+crm.URL)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("with a wrong token: %v\n%s", err, out)
	}
}

// runBridge runs a bridge command on b's config (the inspector config, with
// crm's URL) and returns what it printed; it fails the test if the command
// fails.
func runBridge(t *testing.T, b *bridgeProc, crm *crmServer, args ...string) string {
	t.Helper()
	cmd := exec.Command(bridgeBin, append([]string{args[0], "-c", b.Config}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "HC_KEY="+hcSecret, "ADMIN_TOKEN="+inspectorToken, "CRM_URL="+crm.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bridge %v: %v\n%s", args, err, out)
	}
	return string(out)
}
