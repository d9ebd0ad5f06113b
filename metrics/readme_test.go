package metrics

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEveryMetricIsInTheREADME keeps the README's table of metrics in step
// with what /metrics serves: every instrument of Metrics (described, so a
// vector counts before it has a series) and every series the queue's
// collector exports.
func TestEveryMetricIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.WatchQueue(func() QueueStats { return QueueStats{Pending: map[string]int{"archive": 1}, Embedded: true} })

	names := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Field(i).Type() == reflect.TypeOf(m.Registry) {
			continue
		}
		descs := make(chan *prometheus.Desc, 16)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			if sm := fqName.FindStringSubmatch(d.String()); sm != nil {
				names[sm[1]] = true
			}
		}
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}

	n := 0
	for name := range names {
		if !strings.HasPrefix(name, "hookbridge_") {
			continue
		}
		n++
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("metric %s is not in the README's table", name)
		}
	}
	for _, row := range regexp.MustCompile("(?m)^\\| `(hookbridge_[a-z_]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		if !names[row[1]] {
			t.Errorf("the README's table has %s, which the bridge does not serve", row[1])
		}
	}
	if n < 18 {
		t.Errorf("only %d hookbridge metrics found, want at least 18", n)
	}
}

// TestKafkaQueueExportsNoDiskSeries: a Kafka queue has no local disk or
// dedup filter, so their series are left out rather than shown as 0.
func TestKafkaQueueExportsNoDiskSeries(t *testing.T) {
	m := New()
	m.WatchQueue(func() QueueStats { return QueueStats{Pending: map[string]int{"archive": 1}} })
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	if !names["hookbridge_queue_pending"] || !names["hookbridge_dead_letter_store_events"] {
		t.Errorf("the queue's own series are missing: %v", names)
	}
	for _, name := range []string{"hookbridge_queue_disk_free_bytes", "hookbridge_queue_dedup_filter_bytes", "hookbridge_queue_dedup_lookups_total"} {
		if names[name] {
			t.Errorf("%s exported for a queue without a local store", name)
		}
	}
}
