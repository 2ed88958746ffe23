package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/chaos"
	"github.com/remitpay/remit/internal/store/storetest"
)

// TestChaos runs the Jepsen-style bank test (remit chaos) for a bounded
// time (150 s of faults: every kind once, then the short kinds about
// twice more) and requires every check to pass. A failure names the seed;
// `remit chaos --seed N` replays the schedule.
func TestChaos(t *testing.T) {
	skipIfShort(t)
	rep := runChaos(t, "--duration", "150s")
	for _, k := range chaos.Kinds {
		if why, skipped := rep.Skipped[k]; skipped {
			t.Logf("fault %s skipped here: %s", k, why)
			continue
		}
		if rep.FaultCounts[k] < 1 {
			t.Errorf("fault %s was never injected: %v", k, rep.FaultCounts)
		}
	}
	if rep.Succeeded == 0 || rep.Declined == 0 || rep.Adjustments == 0 || rep.Outbox == 0 || rep.Reads == 0 {
		t.Errorf("the workload did not exercise everything: %d succeeded, %d declined, %d adjustments, %d outbox payments, %d reads",
			rep.Succeeded, rep.Declined, rep.Adjustments, rep.Outbox, rep.Reads)
	}
	if len(rep.Checks) < 7 {
		t.Errorf("%d checks ran, want all 7: %+v", len(rep.Checks), rep.Checks)
	}
}

// TestChaosReplicas is TestChaos on PostgreSQL with two gateway replicas:
// kill-gateway kills either replica while payments are in flight (the
// clients fail over to the other, which takes over the dead one's
// payments), and restart-postgres restarts the database server under
// both. It needs REMIT_TEST_POSTGRES (the run makes schemas of its own
// there) and restarts that server, so CI runs it alone, after the other
// storage tests (.ci/run).
func TestChaosReplicas(t *testing.T) {
	skipIfShort(t)
	base := storetest.Postgres()
	if base == "" {
		t.Skip("needs PostgreSQL: set " + storetest.Env + " (CI does)")
	}
	rep := runChaos(t, "--duration", "60s", "--postgres", base, "--replicas", "2")
	for _, k := range []string{chaos.KillGateway, chaos.RestartPostgres} {
		if why, skipped := rep.Skipped[k]; skipped {
			if k == chaos.RestartPostgres && os.Geteuid() != 0 {
				t.Logf("fault %s skipped here: %s", k, why)
				continue
			}
			t.Errorf("fault %s skipped: %s", k, why)
		}
		if rep.FaultCounts[k] < 1 {
			t.Errorf("fault %s was never injected: %v", k, rep.FaultCounts)
		}
	}
	if rep.Succeeded == 0 || rep.Declined == 0 {
		t.Errorf("the workload did not exercise the replicas: %d succeeded, %d declined", rep.Succeeded, rep.Declined)
	}
}

// runChaos runs `remit chaos --json` with args, logs its progress and
// report, and fails the test on a violation.
func runChaos(t *testing.T, args ...string) chaos.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, remitBin, append([]string{"chaos", "--json"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("remit chaos progress:\n%s", stderr.String())
	var rep chaos.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("remit chaos: %v; no JSON report (%v):\n%s", err, jerr, stdout.String())
	}
	var table strings.Builder
	rep.Print(&table)
	t.Logf("report:\n%s", table.String())
	if err != nil || !rep.OK {
		t.Fatalf("remit chaos found a violation (seed %d, network kept in %s): %v", rep.Seed, rep.Dir, err)
	}
	return rep
}
