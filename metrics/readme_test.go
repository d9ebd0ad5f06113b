package metrics

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

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
	// The Kafka queue's own series come from a second bridge.
	kafkaQueue := New()
	kafkaQueue.WatchQueue(func() QueueStats {
		return QueueStats{Lag: map[string]int64{"archive": 1}, LagUpdated: map[string]time.Time{"archive": time.Now()}}
	})
	for _, g := range []prometheus.Gatherer{m.Registry, kafkaQueue.Registry} {
		families, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			names[f.GetName()] = true
		}
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

// TestQueueLagOnlyForKafkaQueue: each sink's consumer-group lag and when
// it was measured are exported for a Kafka queue (0 for a sink not yet
// measured), and not for the embedded store, which has no groups.
func TestQueueLagOnlyForKafkaQueue(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	stats := QueueStats{
		Pending:    map[string]int{"crm": 10000},
		Lag:        map[string]int64{"crm": 1_250_000, "archive": 0},
		LagUpdated: map[string]time.Time{"crm": at, "archive": at, "slack": {}},
	}
	for _, embedded := range []bool{false, true} {
		m := New()
		m.WatchQueue(func() QueueStats { s := stats; s.Embedded = embedded; return s })
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			if !strings.HasPrefix(f.GetName(), "hookbridge_queue_") && f.GetName() != "hookbridge_dead_letter_store_events" {
				continue // the queue's series only
			}
			for _, mt := range f.GetMetric() {
				key := f.GetName()
				for _, l := range mt.GetLabel() {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
				got[key] = mt.GetGauge().GetValue()
			}
		}
		want := map[string]float64{
			"hookbridge_queue_lag sink=crm":                               1_250_000,
			"hookbridge_queue_lag sink=archive":                           0,
			"hookbridge_queue_lag_updated_timestamp_seconds sink=crm":     1772366400.5,
			"hookbridge_queue_lag_updated_timestamp_seconds sink=archive": 1772366400.5,
			"hookbridge_queue_lag_updated_timestamp_seconds sink=slack":   0,
		}
		for key, v := range want {
			gv, ok := got[key]
			switch {
			case embedded && ok:
				t.Errorf("embedded store: %s exported", key)
			case !embedded && !ok:
				t.Errorf("Kafka queue: %s missing", key)
			case !embedded && gv != v:
				t.Errorf("Kafka queue: %s = %v, want %v", key, gv, v)
			}
		}
		if _, ok := got["hookbridge_queue_lag sink=slack"]; ok {
			t.Error("lag exported for a sink not measured yet")
		}
		if n := len(got); !embedded && n != len(want)+3 { // + pending, oldest age, dead letters
			t.Errorf("Kafka queue: %d queue series, want %d: %v", n, len(want)+3, got)
		}
	}
}
