package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/bench"
)

// TestBenchEndToEnd runs `remit bench` on the real binary, which starts its
// own network, and checks the JSON report.
func TestBenchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: builds remit and runs a whole network")
	}
	bin := filepath.Join(t.TempDir(), "remit")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/remitpay/remit/cmd/remit")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "bench", "--duration", "2s", "--concurrency", "1,4", "--customers", "6", "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("remit bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("remit bench --json printed no report: %v\n%s", err, stdout.String())
	}
	if !rep.Own || rep.Customers != 6 || len(rep.Levels) != 2 {
		t.Errorf("report: own %v, %d customers, %d levels", rep.Own, rep.Customers, len(rep.Levels))
	}
	c := rep.Conservation
	if !c.OK || c.Before != c.After || c.HeldAfter != 0 || c.Processing != 0 || c.Accounts < 6 {
		t.Errorf("conservation = %+v", c)
	}
	var succeeded int64
	for i, l := range rep.Levels {
		if want := []int{1, 4}[i]; l.Concurrency != want {
			t.Errorf("level %d: concurrency %d, want %d", i, l.Concurrency, want)
		}
		if l.Succeeded <= 0 || l.PaymentsPerSec <= 0 || l.CeilingPerSec <= 0 || l.Ratio <= 0 || l.Latency.P50 <= 0 || l.Latency.Max < l.Latency.P99 {
			t.Errorf("level %d: %+v", i, l)
		}
		succeeded += l.Succeeded
	}
	if c.Payments < int(succeeded) {
		t.Errorf("the gateway lists %d payments, fewer than the %d that succeeded", c.Payments, succeeded)
	}
	for _, name := range []string{"bench", "gateway", "bank-a", "bank-b", "bank-c"} {
		if rep.PeakRSS[name] <= 0 {
			t.Errorf("no peak RSS for %s: %v", name, rep.PeakRSS)
		}
	}
	res := rep.Resources
	if res == nil || !res.OK {
		t.Fatalf("resource check = %+v", res)
	}
	for _, name := range []string{"gateway", "bank-a", "bank-b", "bank-c"} {
		if idle, after := res.Idle[name], res.After[name]; idle.Goroutines <= 0 || idle.OpenFDs <= 0 || after.Goroutines <= 0 || after.OpenFDs <= 0 {
			t.Errorf("%s: goroutines and fds idle %+v, after %+v", name, idle, after)
		}
	}
}
