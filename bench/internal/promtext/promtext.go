// Package promtext reads single series from a Prometheus text exposition,
// for the benchmarks to report what the bridge counted.
package promtext

import (
	"bufio"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Value fetches url and returns the value of series (its name and labels
// exactly as exposed, e.g. `hookbridge_deliveries_total{outcome="delivered",sink="archive"}`),
// or 0 when the page or the series is missing.
func Value(url, series string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// Buckets fetches url and returns the cumulative bucket counts of histogram
// name whose other labels include match (e.g. `source="helloclient"`), keyed
// by upper bound; nil when the page or the histogram is missing.
func Buckets(url, name, match string) map[float64]float64 {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out map[float64]float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		labels, ok := strings.CutPrefix(sc.Text(), name+"_bucket{")
		if !ok || !strings.Contains(labels, match) {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		_, le, ok := strings.Cut(labels, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		bound, err1 := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		count, err2 := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if out == nil {
			out = make(map[float64]float64)
		}
		out[bound] = count
	}
	return out
}

// Quantile returns the upper bound of the first bucket holding quantile q of
// the observations made between two Buckets readings, before and after: the
// histogram's resolution is its buckets, so the answer is "at most this".
// It returns NaN when nothing was observed in between.
func Quantile(before, after map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	for _, b := range bounds {
		if after[b]-before[b] >= q*total {
			return b
		}
	}
	return math.Inf(1)
}
