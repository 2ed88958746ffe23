package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// peakRSS returns the peak resident set size (VmHWM) of process pid in
// KiB, from /proc (Linux only; elsewhere an error).
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVMHWM(data)
}

// parseVMHWM finds the "VmHWM:   12345 kB" line of a /proc/<pid>/status.
func parseVMHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmHWM line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no VmHWM line in /proc status (%w)", sc.Err())
}

// peaks reads the peak RSS of every process in pids, skipping those it
// cannot read (not Linux, or exited).
func peaks(pids map[string]int) map[string]int64 {
	out := make(map[string]int64, len(pids))
	for name, pid := range pids {
		if kib, err := peakRSS(pid); err == nil {
			out[name] = kib
		}
	}
	return out
}

// resetPeaks resets the peak RSS of every process in pids to its current
// RSS (Linux: writing 5 to /proc/<pid>/clear_refs), so that the next
// [peaks] reports the peak since now. Best effort: where it fails, the
// next reading is the peak since the process started.
func resetPeaks(pids map[string]int) {
	for _, pid := range pids {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) // best effort, as documented
	}
}

// maxPeaks folds b into a, keeping each process's larger peak.
func maxPeaks(a, b map[string]int64) {
	for name, kib := range b {
		a[name] = max(a[name], kib)
	}
}
