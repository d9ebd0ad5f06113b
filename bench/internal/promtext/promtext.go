// Package promtext reads single series from a Prometheus text exposition,
// for the benchmarks to report what the bridge counted.
package promtext

import (
	"bufio"
	"net/http"
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
