package sources

import "testing"

// leadBody is a typical provider body: a flat object of about 330 bytes with
// strings, escapes, non-ASCII text and a number.
var leadBody = []byte(`{"Type":"lead","SerialNumber":"HC-8842","ChatbotName":"Acme Sales Assistant",` +
	`"SessionID":"9f1c2e7a-55d4-4b0e-9b8e-2f1d6c3a7e10","FirstName":"Ada","LastName":"Lovelace",` +
	`"Email":"ada@example.com","Phone":"+44 20 7946 0958","Message":"Do you ship to \"Zürich\"?\nI'd like a quote.",` +
	`"Score":9,"CreateTime":"2026-11-20T10:15:00Z"}`)

// BenchmarkDecodeObject is the body decoding every provider's Convert starts with.
func BenchmarkDecodeObject(b *testing.B) {
	b.SetBytes(int64(len(leadBody)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := DecodeObject(leadBody, &m); err != nil {
			b.Fatal(err)
		}
	}
}
