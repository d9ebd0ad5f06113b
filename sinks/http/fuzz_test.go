package httpsink

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/hookbridge/hookbridge/sinks/sinktest"
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
		sinktest.AdaLead,
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
		ev := sinktest.LeadEvent(t, data)
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
