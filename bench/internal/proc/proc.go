// Package proc reads what the benchmarks report about a process from /proc.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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
