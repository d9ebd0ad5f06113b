package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRequestsAsHTTPLibrariesSendThem drives the listener with what HTTP
// clients and the proxies in front of it send besides a plain POST: a
// compressed body (signed, as providers sign, over the payload), one that
// inflates far past the limit, an encoding the bridge does not undo, long
// headers, a multipart Content-Type on a JSON body, other methods, and a
// request fasthttp cannot parse that carries a key in its query.
func TestRequestsAsHTTPLibrariesSendThem(t *testing.T) {
	b := newBridge(t, coreConfig, "HC_KEY="+hcSecret)
	b.Start()
	url := "http://" + b.Addr + "/webhooks/helloclient"
	signed := func(body []byte) map[string]string {
		return map[string]string{"X-Webhook-Signature": helloclientSign(hcSecret, time.Now().Unix(), body)}
	}
	with := func(h map[string]string, kv ...string) map[string]string {
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	zl := func(b []byte) []byte {
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	// 63 MiB of spaces: under the 64 KiB limit on the wire.
	var bomb bytes.Buffer
	bw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for range 63 {
		bw.Write(chunk)
	}
	bw.Close()
	if bomb.Len() > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed, over the limit", bomb.Len())
	}

	gzipped, deflated, longHeaders, multipart := leadBody(101), leadBody(102), leadBody(103), leadBody(104)
	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
		want    int
	}{
		{"gzip", gz(gzipped), with(signed(gzipped), "Content-Encoding", "gzip"), 200},
		{"deflate", zl(deflated), with(signed(deflated), "Content-Encoding", "deflate"), 200},
		{"gzip bomb", bomb.Bytes(), with(signed([]byte("{}")), "Content-Encoding", "gzip"), 413},
		{"brotli", leadBody(105), with(signed(leadBody(105)), "Content-Encoding", "br"), 415},
		{"not gzip", leadBody(106), with(signed(leadBody(106)), "Content-Encoding", "gzip"), 400},
		{"long headers", longHeaders, with(signed(longHeaders), "X-Trace-Context", strings.Repeat("t", 10<<10)), 200},
		{"multipart content type", multipart, with(signed(multipart), "Content-Type", "multipart/form-data; boundary=xyz"), 200},
	}
	for _, c := range cases {
		resp, err := post(t, http.DefaultClient, url, c.body, c.headers)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if resp.Status != c.want {
			t.Errorf("%s: answered %d %q, want %d", c.name, resp.Status, resp.Body, c.want)
		}
	}
	if hwm := peakRSS(t, b.cmd.Process.Pid); hwm > 100<<20 {
		t.Errorf("peak RSS %d MB after the gzip bomb: it was inflated", hwm>>20)
	}
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("PUT: %d with Allow %q, want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	req, _ = http.NewRequest(http.MethodPost, url, bytes.NewReader(leadBody(105)))
	for k, v := range with(signed(leadBody(105)), "Content-Encoding", "br") {
		req.Header.Set(k, v)
	}
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Accept-Encoding"); resp.StatusCode != 415 || got != "gzip, deflate" {
		t.Errorf("br: %d with Accept-Encoding %q, want 415 naming gzip, deflate", resp.StatusCode, got)
	}

	// A request line with a key in its query, and a Content-Length that
	// does not parse: refused, and the key is not in the log.
	conn, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /webhooks/helloclient?key=QUERYSECRET HTTP/1.1\r\nHost: x\r\nX-Api-Key: HEADERSECRET\r\nContent-Length: 1x\r\n\r\n{}")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.Contains(status, " 400 ") {
		t.Errorf("unparsable request answered %q, want 400", status)
	}

	path := filepath.Join(b.Dir, "events.jsonl")
	waitFor(t, 10*time.Second, "four events", func() bool { return len(readLines(t, path)) >= 4 })
	b.Stop()
	got := map[string]bool{}
	for _, ev := range readLines(t, path) {
		got[ev.ID] = true
	}
	for name, body := range map[string][]byte{"gzip": gzipped, "deflate": deflated, "long headers": longHeaders, "multipart": multipart} {
		if !got[sha256Hex(body)] {
			t.Errorf("%s: no event with the id of the decoded payload", name)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d events in the file, want 4", len(got))
	}
	log := b.Log()
	for _, secret := range []string{"QUERYSECRET", "HEADERSECRET"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds %s:\n%s", secret, log)
		}
	}
	for _, want := range []string{"decoded body over the source's limit", "Content-Encoding not supported", "does not decode as its Content-Encoding says", "rejected request"} {
		if !strings.Contains(log, want) {
			t.Errorf("no log line says %q", want)
		}
	}
}

// peakRSS is the process's high-water resident set size (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
