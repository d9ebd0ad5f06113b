package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// slackWebAPI answers chat.postMessage as Slack's Web API does: each
// message gets the next ts, and the answer echoes the message, with its
// thread_ts when it is a reply.
type slackWebAPI struct {
	*httptest.Server
	mu    sync.Mutex
	next  int
	posts []url.Values
}

func newSlackWebAPI(t *testing.T) *slackWebAPI {
	s := &slackWebAPI{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		if r.URL.Path != "/api/chat.postMessage" || err != nil || form.Get("token") != "xoxb-e2e" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.next++
		ts := fmt.Sprintf("1795169730.%06d", s.next)
		s.posts = append(s.posts, form)
		s.mu.Unlock()
		message := map[string]any{"type": "message", "text": form.Get("text"), "ts": ts}
		if th := form.Get("thread_ts"); th != "" {
			message["thread_ts"] = th
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": form.Get("channel"), "ts": ts, "message": message})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slackWebAPI) sent() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.posts...)
}

// sendChatLead posts to b a signed Hello Client lead of chat session whose
// LastName, which the configs below post to Slack, is "message <n>".
func sendChatLead(t *testing.T, b *bridgeProc, session string, n int) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"Type":"lead","SerialNumber":"HC-8842","SessionID":%q,"FirstName":"Ada","LastName":"message %d","CreateTime":"2026-11-20T10:15:00Z"}`, session, n))
	resp, err := post(t, http.DefaultClient, "http://"+b.Addr+"/webhooks/helloclient", body,
		map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)})
	if err != nil || resp.Status != 200 {
		t.Fatalf("webhook answered %v %v", resp, err)
	}
}

const threadsConfig = `
server: {listen: "{{WEBHOOK}}"}
admin: {listen: "{{ADMIN}}"}
queue: {path: "{{DIR}}/queue"}
log: {level: info, format: json}
sources:
  helloclient: {type: helloclient, secret: "${HC_KEY}", tolerance: 5m}
sinks:
  slack-chats:
    type: slack
    token: xoxb-e2e
    api_url: "${SLACK_API_URL}"
    channel: C0CHATS
    text: "{{ .Data.LastName }}"
    thread_key: "{{ .Subject }}"
    thread_store: "{{DIR}}/slack-threads"
    concurrency: 4
    rate_limit: none
routes:
  - {name: chats, sinks: [slack-chats]}
`

// TestSlackThreadsSurviveKillNine: the events of one chat session go to
// one Slack thread, even delivered four at a time, and a bridge killed
// with SIGKILL and started again goes on replying in that thread.
func TestSlackThreadsSurviveKillNine(t *testing.T) {
	slack := newSlackWebAPI(t)
	b := newBridge(t, threadsConfig, "HC_KEY="+hcSecret, "SLACK_API_URL="+slack.URL+"/api/")
	send := func(session string, n int) { t.Helper(); sendChatLead(t, b, session, n) }
	b.Start()
	for n := 1; n <= 4; n++ {
		send("chat-1", n)
	}
	waitFor(t, 10*time.Second, "four posts", func() bool { return len(slack.sent()) == 4 })
	// The first post is the parent (its ts the first one given); every
	// other one replies under it.
	const parent = "1795169730.000001"
	posts := slack.sent()
	for i, p := range posts {
		want := parent
		if i == 0 {
			want = ""
		}
		if p.Get("thread_ts") != want || p.Get("channel") != "C0CHATS" {
			t.Errorf("post %d: %v, want thread_ts %q in C0CHATS", i+1, p, want)
		}
	}
	if !strings.Contains(b.Log(), "slack thread started") {
		t.Errorf("no log line for the thread started:\n%s", b.Log())
	}
	// log.format: json holds for the sink's own lines too.
	for _, line := range strings.Split(strings.TrimSpace(b.Log()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %s", line)
		}
	}

	waitFor(t, 10*time.Second, "nothing pending", func() bool {
		return metricValue(t, b.Admin, "hookbridge_queue_pending", `sink="slack-chats"`) == 0
	})
	b.Kill()
	b.Start()
	send("chat-1", 5)
	send("chat-2", 6)
	has := func(text string) bool {
		for _, p := range slack.sent() {
			if p.Get("text") == text {
				return true
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "the posts after the restart", func() bool { return has("message 5") && has("message 6") })
	// chat-1 goes on in its thread (as would an event delivered again after
	// the kill); chat-2 starts its own.
	for _, p := range slack.sent()[4:] {
		want := parent
		if p.Get("text") == "message 6" {
			want = ""
		}
		if p.Get("thread_ts") != want {
			t.Errorf("after the restart: %v, want thread_ts %q", p, want)
		}
	}
	if code := b.Stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// kafkaThreadsConfig is threadsConfig on a Kafka queue: the replicas keep
// their threads in the state they share (thread_store goes unused).
var kafkaThreadsConfig = strings.Replace(threadsConfig, `queue: {path: "{{DIR}}/queue"}`,
	`queue: {type: kafka, brokers: ["${KAFKA}"], session_timeout: 6s}`, 1)

// TestSlackThreadsFollowAConversationAcrossReplicas: with a Kafka queue, a
// conversation that moves to another replica (here the first one is
// stopped, as in a rolling deploy, and the second takes its partitions)
// goes on in the thread the first replica started, and a new conversation
// on the second replica starts its own; a replica started afterwards with
// an empty disk knows both threads.
func TestSlackThreadsFollowAConversationAcrossReplicas(t *testing.T) {
	c := startQueueBroker(t)
	slack := newSlackWebAPI(t)
	env := []string{"HC_KEY=" + hcSecret, "KAFKA=" + c.ListenAddrs()[0], "SLACK_API_URL=" + slack.URL + "/api/"}
	send := func(b *bridgeProc, session string, n int) { t.Helper(); sendChatLead(t, b, session, n) }
	postOf := func(text string) (url.Values, bool) {
		for _, p := range slack.sent() {
			if p.Get("text") == text {
				return p, true
			}
		}
		return nil, false
	}
	waitPost := func(text string) url.Values {
		t.Helper()
		waitFor(t, 20*time.Second, "the post "+text, func() bool { _, ok := postOf(text); return ok })
		p, _ := postOf(text)
		return p
	}

	a := newBridge(t, kafkaThreadsConfig, env...)
	a.Start()
	send(a, "chat-1", 1)
	parent := waitPost("message 1")
	if parent.Get("thread_ts") != "" {
		t.Fatalf("the first message of chat-1 was posted as a reply: %v", parent)
	}
	const parentTS = "1795169730.000001"
	// takeOver starts a replica and stops from, as a rolling deploy does:
	// the new one takes every partition.
	takeOver := func(from *bridgeProc) *bridgeProc {
		t.Helper()
		to := newBridge(t, kafkaThreadsConfig, env...)
		to.Start()
		if code := from.Stop(); code != 0 {
			t.Fatalf("exit code %d at SIGTERM", code)
		}
		return to
	}

	b := takeOver(a)
	send(b, "chat-1", 2)
	send(b, "chat-2", 3)
	if p := waitPost("message 2"); p.Get("thread_ts") != parentTS {
		t.Errorf("chat-1 on the second replica: %v, want a reply under %s", p, parentTS)
	}
	chat2 := waitPost("message 3")
	if chat2.Get("thread_ts") != "" {
		t.Errorf("chat-2's first message: %v, want a new thread", chat2)
	}
	// The fake Web API gives the n-th post the ts ending in n.
	chat2TS := ""
	for i, p := range slack.sent() {
		if p.Get("text") == "message 3" {
			chat2TS = fmt.Sprintf("1795169730.%06d", i+1)
		}
	}

	// A third replica, on a disk of its own that never saw either thread,
	// takes over both conversations.
	c3 := takeOver(b)
	send(c3, "chat-1", 4)
	send(c3, "chat-2", 5)
	if p := waitPost("message 4"); p.Get("thread_ts") != parentTS {
		t.Errorf("chat-1 on the third replica: %v, want a reply under %s", p, parentTS)
	}
	if p := waitPost("message 5"); p.Get("thread_ts") != chat2TS {
		t.Errorf("chat-2 on the third replica: %v, want a reply under %s", p, chat2TS)
	}
	if n := len(slack.sent()); n != 5 {
		t.Errorf("%d posts, want 5: %v", n, slack.sent())
	}
	if code := c3.Stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
