package config

import (
	"math"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"1/s": 1, " 30/m ": 0.5, "3600/h": 1, "0.5/s": 0.5, "1000 / s": 1000,
	} {
		r, err := ParseRate(in)
		if err != nil || !r.Set || math.Abs(r.PerSecond-want) > 1e-12 {
			t.Errorf("ParseRate(%q) = %+v, %v; want %v/s", in, r, err, want)
		}
	}
	if r, err := ParseRate("none"); err != nil || r != NoRate || r.String() != "none" {
		t.Errorf("none: %+v %v", r, err)
	}
	for _, in := range []string{"", "1", "1/d", "0/s", "-1/s", "NaN/s", "Inf/s", "1/s/s", "x/s", "2e9/s"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
	var v struct {
		R Rate `yaml:"r"`
	}
	if err := yaml.Unmarshal([]byte("r: 120/m"), &v); err != nil || v.R.PerSecond != 2 || v.R.String() != "2/s" {
		t.Errorf("yaml: %+v %v", v, err)
	}
	if err := yaml.Unmarshal([]byte("r: [1]"), &v); err == nil {
		t.Error("a list accepted as a rate")
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"1/s", "30/m", "0.5/h", "none", "1e9/s", "/s", "1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if !r.Set || r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
			t.Fatalf("ParseRate(%q) = %+v", s, r)
		}
		if r.PerSecond > 0 {
			back, err := ParseRate(r.String())
			if err != nil || math.Abs(back.PerSecond-r.PerSecond) > 1e-9*r.PerSecond {
				t.Fatalf("%q -> %s -> %+v, %v", s, r, back, err)
			}
		}
	})
}
