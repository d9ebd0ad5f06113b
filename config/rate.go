package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Rate is a number of events per unit of time, written "N/s", "N/m" or
// "N/h" (N may have a fraction: "0.5/s"), or "none" for no limit. The zero
// Rate is unset.
type Rate struct {
	// PerSecond is the rate; 0 with Set means no limit.
	PerSecond float64
	// Set tells a rate written in the file (even "none") from no key.
	Set bool
}

// NoRate is the Rate written "none".
var NoRate = Rate{Set: true}

// ParseRate parses a Rate.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	if t == "none" {
		return NoRate, nil
	}
	num, unit, ok := strings.Cut(t, "/")
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		ok = false
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 || n > 1e9 {
		return Rate{}, fmt.Errorf("%q is not a rate such as 1/s, 30/m or 500/h (or none)", s)
	}
	return Rate{PerSecond: n / per.Seconds(), Set: true}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a rate such as 1/s, 30/m or 500/h (or none)")
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rate) String() string {
	switch {
	case !r.Set:
		return ""
	case r.PerSecond == 0:
		return "none"
	}
	return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + "/s"
}
