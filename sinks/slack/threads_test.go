package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hookbridge/hookbridge/sinks"
	"github.com/hookbridge/hookbridge/sinks/sinktest"
)

// threadedSlack speaks chat.postMessage as Slack does for threads: each
// message gets the next ts; the answer holds the channel's ID and the
// message, whose thread_ts is set for a reply. A reply to a deleted parent
// is refused with gone, or, when gone is "", posted to the channel
// un-threaded (its echo has no thread_ts).
type threadedSlack struct {
	mu      sync.Mutex
	posts   []url.Values
	next    int
	deleted map[string]bool // parents deleted in Slack
	gone    string          // the error a reply to a deleted parent gets
	refuse  string          // when set, the next post is refused with it
	hold    chan struct{}   // when set, answers to parents wait for it
	noEcho  bool            // answer without the message, as a proxy may
}

func (f *threadedSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if r.URL.Path != "/api/chat.postMessage" || err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.posts = append(f.posts, form)
	hold, noEcho := f.hold, f.noEcho
	refuse := f.refuse
	f.refuse = ""
	w.Header().Set("Content-Type", "application/json")
	if refuse != "" {
		f.mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, refuse)
		return
	}
	threadTS := form.Get("thread_ts")
	if threadTS != "" && f.deleted[threadTS] {
		if f.gone != "" {
			f.mu.Unlock()
			_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, f.gone)
			return
		}
		threadTS = "" // un-threaded
	}
	f.next++
	ts := fmt.Sprintf("1795169730.%06d", f.next)
	f.mu.Unlock()
	if threadTS == "" && hold != nil {
		<-hold
	}
	channel := form.Get("channel")
	if channel == "#sales" {
		channel = "C0SALES"
	}
	message := map[string]any{"type": "message", "subtype": "bot_message", "text": form.Get("text"), "ts": ts, "bot_id": "B0BRIDGE"}
	if threadTS != "" {
		message["thread_ts"] = threadTS
		message["parent_user_id"] = "U0BRIDGE"
	}
	if noEcho {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": channel, "ts": ts})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": channel, "ts": ts, "message": message})
}

func (f *threadedSlack) sent() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

func startThreadedSlack(t *testing.T) (*threadedSlack, string) {
	t.Helper()
	f := &threadedSlack{deleted: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL + "/api/"
}

// threadedConfig is a sink that threads by subject in #sales, keeping its
// threads in dir.
func threadedConfig(apiURL, dir, extra string) string {
	return "token: xoxb-test-token\napi_url: " + apiURL + "\nchannel: \"#sales\"\n" +
		"text: \"{{ .Data.Message }}\"\nthread_key: \"{{ .Subject }}\"\nthread_store: " + dir + "\n" + extra
}

// chat is an event of the chat session subject saying message.
func chat(t testing.TB, id, subject, message string) *event.Event {
	ev := sinktest.LeadEvent(t, `{"Message":"`+message+`"}`)
	ev.SetID(id)
	ev.SetSubject(subject)
	return ev
}

func deliver(t *testing.T, s *Sink, evs ...*event.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := s.Deliver(context.Background(), ev); err != nil {
			t.Fatalf("Deliver %s: %v", ev.ID(), err)
		}
	}
}

// form is what chat.postMessage receives: pairs of key and value.
func form(kv ...string) url.Values {
	v := url.Values{"token": {"xoxb-test-token"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func wantPosts(t *testing.T, f *threadedSlack, want ...url.Values) {
	t.Helper()
	got := f.sent()
	if len(got) != len(want) {
		t.Fatalf("chat.postMessage got %d posts, want %d:\n%v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("post %d\n got %v\nwant %v", i+1, got[i], want[i])
		}
	}
}

// TestThreads: the first event of a key posts to the channel, the next ones
// reply under its ts (in the channel ID Slack answered with), and another
// key starts its own thread.
func TestThreads(t *testing.T) {
	fake, api := startThreadedSlack(t)
	s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
	deliver(t, s,
		chat(t, "1", "sessions/a", "hello"),
		chat(t, "2", "sessions/a", "are you there?"),
		chat(t, "3", "sessions/b", "hi from b"),
		chat(t, "4", "sessions/a", "bye"),
		chat(t, "5", "sessions/b", "bye from b"),
	)
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "are you there?", "thread_ts", "1795169730.000001"),
		form("channel", "#sales", "text", "hi from b"),
		form("channel", "C0SALES", "text", "bye", "thread_ts", "1795169730.000001"),
		form("channel", "C0SALES", "text", "bye from b", "thread_ts", "1795169730.000003"),
	)
}

func TestThreadReplyBroadcast(t *testing.T) {
	fake, api := startThreadedSlack(t)
	s := mustSink(t, threadedConfig(api, t.TempDir(), "reply_broadcast: true"), nil)
	deliver(t, s, chat(t, "1", "sessions/a", "hello"), chat(t, "2", "sessions/a", "again"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "again", "thread_ts", "1795169730.000001", "reply_broadcast", "true"),
	)
}

// TestThreadKeyRendersEmpty: an event whose key renders empty is posted on
// its own, and so is every event of a sink without thread_key.
func TestThreadKeyRendersEmpty(t *testing.T) {
	fake, api := startThreadedSlack(t)
	s := mustSink(t, strings.Replace(threadedConfig(api, t.TempDir(), ""), "{{ .Subject }}", "{{ .Data.Nothing }}", 1), nil)
	deliver(t, s, chat(t, "1", "sessions/a", "one"), chat(t, "2", "sessions/a", "two"))
	wantPosts(t, fake, form("channel", "#sales", "text", "one"), form("channel", "#sales", "text", "two"))
}

// TestThreadsSurviveRestart: a new sink on the same store replies in the
// thread the closed one started.
func TestThreadsSurviveRestart(t *testing.T) {
	fake, api := startThreadedSlack(t)
	dir := t.TempDir()
	first := mustSink(t, threadedConfig(api, dir, ""), nil)
	if err := first.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	deliver(t, first, chat(t, "1", "sessions/a", "hello"))
	if err := first.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Deliver(context.Background(), chat(t, "x", "sessions/a", "late")); err == nil || sinks.IsPermanent(err) {
		t.Errorf("Deliver after Close: %v, want a retryable error", err)
	}
	second := mustSink(t, threadedConfig(api, dir, ""), nil)
	deliver(t, second, chat(t, "2", "sessions/a", "after the restart"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "after the restart", "thread_ts", "1795169730.000001"),
	)
}

// clock is a settable time for the sink's thread expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestThreadTTL: a thread lives thread_ttl past its latest message; after
// that the key starts a new thread, and the janitor deletes the old one.
func TestThreadTTL(t *testing.T) {
	fake, api := startThreadedSlack(t)
	s := mustSink(t, threadedConfig(api, t.TempDir(), "thread_ttl: 1h"), nil)
	c := &clock{now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	s.now = c.Now
	deliver(t, s, chat(t, "1", "sessions/a", "hello"))
	c.Add(59 * time.Minute)
	deliver(t, s, chat(t, "2", "sessions/a", "59 minutes later"))
	c.Add(59 * time.Minute) // 118 minutes after the parent, 59 after the reply
	deliver(t, s, chat(t, "3", "sessions/a", "still the same thread"))
	c.Add(time.Hour)
	deliver(t, s, chat(t, "4", "sessions/a", "an hour of silence later"), chat(t, "5", "sessions/a", "and on"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "59 minutes later", "thread_ts", "1795169730.000001"),
		form("channel", "C0SALES", "text", "still the same thread", "thread_ts", "1795169730.000001"),
		form("channel", "#sales", "text", "an hour of silence later"),
		form("channel", "C0SALES", "text", "and on", "thread_ts", "1795169730.000004"),
	)

	deliver(t, s, chat(t, "6", "sessions/b", "another"))
	c.Add(30 * time.Minute)
	deliver(t, s, chat(t, "7", "sessions/a", "keeps a alive"))
	c.Add(31 * time.Minute) // b's thread is 61 minutes old, a's 31
	st, err := s.threads()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.expire(context.Background()); err != nil || n != 1 {
		t.Fatalf("expire = %d, %v; want b's thread deleted", n, err)
	}
	if _, found, _ := st.get(context.Background(), "#sales", "sessions/a"); !found {
		t.Error("a's live thread was deleted")
	}
	if n, err := st.expire(context.Background()); err != nil || n != 0 {
		t.Errorf("expire again = %d, %v; want nothing left to delete", n, err)
	}
}

// TestThreadConcurrentFirstEvents: events of a new key delivered at once
// make one parent; the others wait for its ts and reply under it.
func TestThreadConcurrentFirstEvents(t *testing.T) {
	fake, api := startThreadedSlack(t)
	hold := make(chan struct{})
	var release sync.Once
	fake.hold = hold
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // before the server's Close
	s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Deliver(context.Background(), chat(t, fmt.Sprint(i), "sessions/a", fmt.Sprint("message ", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	// Let every delivery reach Slack or the key's queue before the
	// parent's answer comes back.
	waitFor(t, func() bool { return len(fake.sent()) == 1 && s.keys.waiting("#sales\x00sessions/a") == n-1 })
	release.Do(func() { close(hold) })
	wg.Wait()
	posts := fake.sent()
	if len(posts) != n {
		t.Fatalf("%d posts, want %d", len(posts), n)
	}
	parents := 0
	for _, p := range posts {
		switch p.Get("thread_ts") {
		case "":
			parents++
		case "1795169730.000001":
		default:
			t.Errorf("reply under %q", p.Get("thread_ts"))
		}
	}
	if parents != 1 || posts[0].Get("thread_ts") != "" {
		t.Errorf("%d parents (first post %v), want the first post only", parents, posts[0])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestKeyLocksTakeTurnsInOrder: the deliveries of one key go in the order
// they asked, whatever the scheduler does; one that gives up leaves the
// queue; other keys do not wait.
func TestKeyLocksTakeTurnsInOrder(t *testing.T) {
	var k keyLocks
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	cancelled, cancel := context.WithCancel(context.Background())
	for i := range 6 {
		ctx := context.Background()
		if i == 2 {
			ctx = cancelled
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := k.lock(ctx, "a")
			if i == 2 {
				if err == nil {
					t.Error("a cancelled wait got the lock")
				}
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			u()
		}()
		waitFor(t, func() bool { return k.waiting("a") == i+1 })
	}
	other, err := k.lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	other()
	cancel()
	waitFor(t, func() bool { return k.waiting("a") == 5 })
	unlock()
	wg.Wait()
	if want := []int{0, 1, 3, 4, 5}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(k.held) != 0 {
		t.Errorf("locks left: %v", k.held)
	}
}

// TestThreadParentGone: a reply whose parent was deleted in Slack starts a
// new thread, whether Slack refuses it or posts it to the channel
// un-threaded (then that message is the new parent).
func TestThreadParentGone(t *testing.T) {
	cases := []struct {
		gone string
		want []url.Values
	}{
		{"thread_not_found", []url.Values{
			form("channel", "#sales", "text", "hello"),
			form("channel", "C0SALES", "text", "after the delete", "thread_ts", "1795169730.000001"),
			form("channel", "#sales", "text", "after the delete"),
			form("channel", "C0SALES", "text", "and on", "thread_ts", "1795169730.000002"),
		}},
		{"message_not_found", []url.Values{
			form("channel", "#sales", "text", "hello"),
			form("channel", "C0SALES", "text", "after the delete", "thread_ts", "1795169730.000001"),
			form("channel", "#sales", "text", "after the delete"),
			form("channel", "C0SALES", "text", "and on", "thread_ts", "1795169730.000002"),
		}},
		{"", []url.Values{ // posted un-threaded, which becomes the parent
			form("channel", "#sales", "text", "hello"),
			form("channel", "C0SALES", "text", "after the delete", "thread_ts", "1795169730.000001"),
			form("channel", "C0SALES", "text", "and on", "thread_ts", "1795169730.000002"),
		}},
	}
	for _, tc := range cases {
		t.Run("error "+tc.gone, func(t *testing.T) {
			fake, api := startThreadedSlack(t)
			fake.gone = tc.gone
			s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
			deliver(t, s, chat(t, "1", "sessions/a", "hello"))
			fake.mu.Lock()
			fake.deleted["1795169730.000001"] = true
			fake.mu.Unlock()
			deliver(t, s, chat(t, "2", "sessions/a", "after the delete"), chat(t, "3", "sessions/a", "and on"))
			wantPosts(t, fake, tc.want...)
		})
	}
}

// TestThreadAnswerWithoutMessage: an answer that does not echo the message
// says nothing about its thread, so the thread stays.
func TestThreadAnswerWithoutMessage(t *testing.T) {
	fake, api := startThreadedSlack(t)
	fake.noEcho = true
	s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
	deliver(t, s, chat(t, "1", "sessions/a", "hello"), chat(t, "2", "sessions/a", "two"), chat(t, "3", "sessions/a", "three"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "two", "thread_ts", "1795169730.000001"),
		form("channel", "C0SALES", "text", "three", "thread_ts", "1795169730.000001"),
	)
}

// TestThreadFailedParent: a parent Slack refused leaves no thread: the
// retry (or the next event) posts the parent.
func TestThreadFailedParent(t *testing.T) {
	fake, api := startThreadedSlack(t)
	s := mustSink(t, threadedConfig(api, t.TempDir(), ""), nil)
	fake.refuse = "internal_error"
	ev := chat(t, "1", "sessions/a", "hello")
	if err := s.Deliver(context.Background(), ev); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Deliver = %v, want a retryable error", err)
	}
	deliver(t, s, ev, chat(t, "2", "sessions/a", "again"))
	wantPosts(t, fake,
		form("channel", "#sales", "text", "hello"),
		form("channel", "#sales", "text", "hello"),
		form("channel", "C0SALES", "text", "again", "thread_ts", "1795169730.000001"),
	)
}

// TestThreadsPerChannel: one key in two channels is two threads.
func TestThreadsPerChannel(t *testing.T) {
	fake, api := startThreadedSlack(t)
	src := strings.Replace(threadedConfig(api, t.TempDir(), ""), `channel: "#sales"`, `channel: "{{ .Data.Channel }}"`, 1)
	s := mustSink(t, src, nil)
	in := func(id, channel string) *event.Event {
		ev := sinktest.LeadEvent(t, `{"Message":"m`+id+`","Channel":"`+channel+`"}`)
		ev.SetID(id)
		return ev
	}
	deliver(t, s, in("1", "C1"), in("2", "C2"), in("3", "C1"), in("4", "C2"))
	wantPosts(t, fake,
		form("channel", "C1", "text", "m1"),
		form("channel", "C2", "text", "m2"),
		form("channel", "C1", "text", "m3", "thread_ts", "1795169730.000001"),
		form("channel", "C2", "text", "m4", "thread_ts", "1795169730.000002"),
	)
}

func TestThreadStoreInUse(t *testing.T) {
	_, api := startThreadedSlack(t)
	dir := t.TempDir()
	a := mustSink(t, threadedConfig(api, dir, ""), nil)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := mustSink(t, threadedConfig(api, dir, ""), nil)
	err := b.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "thread_store") {
		t.Fatalf("Start on a store in use = %v, want an error naming thread_store", err)
	}
	if err := b.Deliver(context.Background(), chat(t, "1", "sessions/a", "x")); err == nil || sinks.IsPermanent(err) {
		t.Errorf("Deliver = %v, want a retryable error", err)
	}
}

func TestThreadConfig(t *testing.T) {
	cases := []struct{ name, src, wantErr string }{
		{"token", "token: x\nchannel: C1\ntext: hi\nthread_key: \"{{ .Subject }}\"\nreply_broadcast: true\nthread_ttl: 24h\nthread_store: /var/lib/hookbridge/threads", ""},
		{"webhook", "webhook_url: https://h/x\ntext: hi\nthread_key: \"{{ .Subject }}\"", "test.yaml:3:1: thread_key: needs token and channel"},
		{"broadcast without key", "token: x\nchannel: C1\ntext: hi\nreply_broadcast: true", "test.yaml:4:1: reply_broadcast: applies only with thread_key"},
		{"store without key", "token: x\nchannel: C1\ntext: hi\nthread_store: ./t", "test.yaml:4:1: thread_store: applies only with thread_key"},
		{"zero ttl", "token: x\nchannel: C1\ntext: hi\nthread_key: k\nthread_ttl: 0s", "test.yaml:5:1: thread_ttl: must be positive"},
		{"bad key template", "token: x\nchannel: C1\ntext: hi\nthread_key: \"{{ .Subject \"", "bad template"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.src, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if c.ThreadTTL != 24*time.Hour || !c.ReplyBroadcast || c.threadStorePath("s") != "/var/lib/hookbridge/threads" {
					t.Errorf("decoded %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	c := NewConfig()
	if c.ThreadTTL != 72*time.Hour || c.threadStorePath("slack/sales") != "data/slack-threads/slack%2Fsales" {
		t.Errorf("defaults: ttl %v, store %q", c.ThreadTTL, c.threadStorePath("slack/sales"))
	}
}

func TestPreviewShowsThreadKey(t *testing.T) {
	s := mustSink(t, threadedConfig("https://slack.com/api/", t.TempDir(), ""), nil)
	out, err := s.Preview(chat(t, "1", "sessions/a", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"thread_key": "sessions/a"`) || !strings.Contains(string(out), `"text": "hello"`) {
		t.Errorf("preview:\n%s", out)
	}
}

// waiting is how many deliveries wait for key's turn.
func (k *keyLocks) waiting(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w := k.held[key]; w != nil {
		return len(*w)
	}
	return 0
}
