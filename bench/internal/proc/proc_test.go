package proc

import (
	"math"
	"testing"
)

func TestParseMachineTimes(t *testing.T) {
	before, err := ParseMachineTimes("cpu  1282024 3578 487346 2910383 37786 0 77925 39170 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	want := MachineTimes{User: 1282024, Nice: 3578, System: 487346, Idle: 2910383, IOWait: 37786, IRQ: 0, SoftIRQ: 77925, Steal: 39170}
	if before != want {
		t.Fatalf("parsed %+v, want %+v", before, want)
	}
	after := before
	after.User += 100
	after.SoftIRQ += 50
	after.Idle += 50
	d := after.Since(before)
	if d.User != 100 || d.SoftIRQ != 50 || d.Idle != 50 || d.System != 0 {
		t.Fatalf("Since: %+v", d)
	}
	if got := d.Share(d.SoftIRQ); math.Abs(got-0.25) > 1e-9 {
		t.Fatalf("softirq share %v, want 0.25", got)
	}
	if got := (MachineTimes{}).Share(5); got != 0 {
		t.Fatalf("share of no ticks %v", got)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := ParseMachineTimes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFreeAddrsAreDistinct(t *testing.T) {
	addrs, err := FreeAddrs(64)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice in %v", a, addrs)
		}
		seen[a] = true
	}
}
