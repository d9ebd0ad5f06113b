package httpsink

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// fuzzBody has plain leaves, a leaf mixing text and data, raw JSON leaves
// and nesting, so arbitrary payloads reach every way a leaf renders.
const fuzzBody = `
url: "http://crm.invalid/{{ .Data.id }}"
body:
  email: "{{ .Data.Email }}"
  name: "{{ .Data.FirstName }} {{ .Data.LastName }}"
  note: "said: {{ .Data.Message }} ({{ len (toString .Data) }} bytes)"
  whole: "{{ .Data | toJson }}"
  first: "{{ .Data.list | first | toJson }}"
  nested:
    - "{{ .Data.Phone }}"
    - {deep: "{{ index . \"Data\" }}", n: 1, ok: false, nothing: null}
`

// FuzzBodyRendering: whatever the payload, the body is valid JSON or
// rendering fails with an error; it never panics and never sends broken JSON.
func FuzzBodyRendering(f *testing.F) {
	for _, seed := range []string{
		adaLead,
		`{"FirstName":"\"},{\"x\":1","Message":"</script><b>&amp;\u0000\ud800"}`,
		`{"list":[{"a":[1,2,{"b":null}]}],"id":"../../etc"}`,
		`{"Email":123456789012345678901234567890,"FirstName":true,"LastName":null}`,
		`"just a string"`, `[1,2,3]`, `null`, `not json {{ }}`, ``, "\xff\xfe",
		`{"Message":"` + string(make([]byte, 64)) + `"}`,
	} {
		f.Add(seed)
	}
	s := mustSink(f, fuzzBody, nil)
	f.Fuzz(func(t *testing.T, data string) {
		ev := leadEvent(t, data)
		req, err := s.NewRequest(context.Background(), ev)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(body) {
			t.Fatalf("payload %q rendered invalid JSON: %s", data, body)
		}
		if req.Header.Get("Idempotency-Key") != ev.ID() {
			t.Fatalf("Idempotency-Key missing")
		}
	})
}

// FuzzParseRetryAfter: any header value gives no wait or a wait within
// [0, maxRetryAfter].
func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{"3", "0", "-5", "1e3", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "99999999999999999999999", " 7 "} {
		f.Add(seed)
	}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok && d != 0 {
			t.Fatalf("%q: not ok but %v", v, d)
		}
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("%q: wait %v out of range", v, d)
		}
	})
}
