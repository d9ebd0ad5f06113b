package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookbridge/hookbridge/server"
)

// A running bridge exports each source's and sink's series whose labels
// it knows at 0 from the start, so that rate(), increase() and absent()
// over them work before the first event: among them a source's
// verification failures under every reason, and the request and delivery
// duration histograms.
func TestSeriesOfEverySourceAndSinkAreExportedAtZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(testConfig(dir, "  - {name: all, sinks: [archive]}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, path)
	families, err := a.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[key+" count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := []string{
		"hookbridge_request_duration_seconds source=helloclient count",
		"hookbridge_delivery_duration_seconds sink=archive count",
		"hookbridge_events_accepted_total source=helloclient",
		"hookbridge_deliveries_total outcome=delivered sink=archive",
	}
	for _, reason := range server.VerificationReasons() {
		want = append(want, "hookbridge_verification_failures_total reason="+reason+" source=helloclient")
	}
	for _, key := range want {
		if v, ok := got[key]; !ok || v != 0 {
			t.Errorf("%s = %v (exported: %v), want 0", key, v, ok)
		}
	}
	// The status of a request is known only once it is answered.
	for key := range got {
		if strings.HasPrefix(key, "hookbridge_requests_total ") {
			t.Errorf("%s exported before any request", key)
		}
	}
}
