// Package proc reads what the benchmarks report about a process from /proc,
// and finds the loopback addresses the processes they start listen on.
package proc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// PeakRSS is the high-water resident set size of process pid in bytes
// (VmHWM), or 0 when it cannot be read.
func PeakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1000
		}
	}
	return 0
}

// CPUTime is the user plus system CPU time process pid has used, or 0 when
// it cannot be read. /proc counts it in clock ticks of 1/100 s (USER_HZ,
// 100 on Linux's common builds).
func CPUTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces: count fields after it.
	end := strings.LastIndexByte(string(data), ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Machine describes this machine for a benchmark report: CPU count and
// model, kernel release and Go version.
func Machine() string {
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	release := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		release = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (%s), %s %s, %s", runtime.NumCPU(), model, runtime.GOOS, release, runtime.Version())
}

// MachineTimes are the clock ticks all CPUs spent in each state since boot,
// from the first line of /proc/stat.
type MachineTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal int64
}

// ReadMachineTimes reads /proc/stat; the zero value when it cannot.
func ReadMachineTimes() MachineTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineTimes{}
	}
	t, _ := ParseMachineTimes(string(data))
	return t
}

// ParseMachineTimes reads the aggregate "cpu" line of a /proc/stat text.
func ParseMachineTimes(stat string) (MachineTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return MachineTimes{}, fmt.Errorf("proc: /proc/stat starts with %q, not the cpu line", line)
	}
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(fields[i+1], 10, 64)
		if err != nil {
			return MachineTimes{}, fmt.Errorf("proc: /proc/stat cpu field %d: %w", i+1, err)
		}
		v[i] = n
	}
	return MachineTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
}

// Since is the ticks spent in each state between before and t.
func (t MachineTimes) Since(before MachineTimes) MachineTimes {
	return MachineTimes{t.User - before.User, t.Nice - before.Nice, t.System - before.System, t.Idle - before.Idle,
		t.IOWait - before.IOWait, t.IRQ - before.IRQ, t.SoftIRQ - before.SoftIRQ, t.Steal - before.Steal}
}

// Share is the fraction of all ticks in t that ticks is; 0 for no ticks.
func (t MachineTimes) Share(ticks int64) float64 {
	total := t.User + t.Nice + t.System + t.Idle + t.IOWait + t.IRQ + t.SoftIRQ + t.Steal
	if total <= 0 {
		return 0
	}
	return float64(ticks) / float64(total)
}

// FreeAddrs returns n distinct loopback addresses that were free a moment
// ago. Every listener is held until all n are chosen: closing each before
// asking for the next lets the kernel hand out the same port twice.
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs, nil
}
