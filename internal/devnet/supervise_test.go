package devnet

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/logging/logtest"
)

// shellSupervisor returns a supervisor whose children are `sh -c SCRIPT
// NAME ARGS...` instead of remit: start(name, script) runs script.
func shellSupervisor(t *testing.T, names ...string) (*supervisor, *logtest.Buffer) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run children with")
	}
	var out logtest.Buffer
	s := newSupervisor(sh, []string{"-c"}, newLogMux(&out, append([]string{"up"}, names...)))
	t.Cleanup(func() { s.stop(time.Second) })
	return s, &out
}

// waitFor waits (up to 10 s) until out contains want.
func waitFor(t *testing.T, out *logtest.Buffer, want string) {
	t.Helper()
	if !out.Wait(10*time.Second, func(s string) bool { return strings.Contains(s, want) }) {
		t.Fatalf("output never contained %q:\n%s", want, out)
	}
}

func TestSupervisorPassesArgsAndPrefixesOutput(t *testing.T) {
	s, out := shellSupervisor(t, "gateway")
	// Like `remit <globalArgs> gateway --config x.yaml`: sh -c SCRIPT
	// gateway --config x.yaml sets $0, $1 and $2.
	p, err := s.start("gateway", `echo "args: $0 $1 $2"; printf 'no newline'`, "gateway", "--config", "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-s.exited:
		if got != p {
			t.Fatalf("exited reported %s, want %s", got.name, p.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child's exit was never reported")
	}
	if !p.exitedNow() || p.describeExit() != "exited with status 0" {
		t.Errorf("exitedNow %v, describeExit %q", p.exitedNow(), p.describeExit())
	}
	// The output is complete, the unterminated line included, by the time
	// the exit is reported.
	want := "gateway | args: gateway --config x.yaml\ngateway | no newline\n"
	if got := out.String(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestSupervisorReportsUnexpectedExit(t *testing.T) {
	s, out := shellSupervisor(t, "bank-a", "bank-b")
	a, err := s.start("bank-a", `echo started; exec sleep 30`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.start("bank-b", `echo failing; exit 3`)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-s.exited:
		if got != b {
			t.Fatalf("exited reported %s, want bank-b", got.name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bank-b's exit was never reported")
	}
	if got := b.describeExit(); got != "exit status 3" {
		t.Errorf("bank-b describeExit = %q, want exit status 3", got)
	}
	if a.exitedNow() {
		t.Error("bank-a exited with bank-b; the supervisor stops the others only when asked")
	}
	waitFor(t, out, "bank-b | failing\n")
	waitFor(t, out, "bank-a | started\n")
}

// TestSupervisorStop checks the graceful stop: SIGTERM first, SIGKILL for
// a child still running after the grace period, and no return before every
// child has exited.
func TestSupervisorStop(t *testing.T) {
	s, out := shellSupervisor(t, "polite", "stubborn", "gone")
	polite, err := s.start("polite", `echo ready; exec sleep 30`)
	if err != nil {
		t.Fatal(err)
	}
	// An ignored signal stays ignored across exec: sleep ignores SIGTERM.
	stubborn, err := s.start("stubborn", `trap '' TERM; echo ready; exec sleep 30`)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.start("gone", `exit 0`)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "polite   | ready\n")
	waitFor(t, out, "stubborn | ready\n")
	<-gone.done

	const grace = 300 * time.Millisecond
	start := time.Now()
	s.stop(grace)
	elapsed := time.Since(start)

	for _, p := range []*proc{polite, stubborn, gone} {
		if !p.exitedNow() {
			t.Errorf("%s still running after stop", p.name)
		}
	}
	if got := polite.describeExit(); got != "signal: terminated" {
		t.Errorf("polite: %q, want signal: terminated", got)
	}
	if got := stubborn.describeExit(); got != "signal: killed" {
		t.Errorf("stubborn: %q, want signal: killed", got)
	}
	if got := gone.describeExit(); got != "exited with status 0" {
		t.Errorf("gone: %q", got)
	}
	if elapsed < grace {
		t.Errorf("stop returned after %s, before the grace period of %s", elapsed, grace)
	}
	if want := "up       | stubborn did not stop within 300ms; killing it\n"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if strings.Contains(out.String(), "polite did not stop") {
		t.Errorf("polite was killed although it stopped on SIGTERM:\n%s", out)
	}
}

// TestSupervisorStopQuick checks that stopping children that obey SIGTERM
// does not wait out the grace period.
func TestSupervisorStopQuick(t *testing.T) {
	s, out := shellSupervisor(t, "a")
	if _, err := s.start("a", `echo ready; exec sleep 30`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "a  | ready\n")
	start := time.Now()
	s.stop(time.Minute)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("stop took %s for a child that stops on SIGTERM", elapsed)
	}
}

func TestSupervisorStartFails(t *testing.T) {
	var out logtest.Buffer
	s := newSupervisor("/nonexistent/remit", nil, newLogMux(&out, []string{"gateway"}))
	if _, err := s.start("gateway", "gateway"); err == nil || !strings.Contains(err.Error(), "start gateway") {
		t.Errorf("start of a missing binary = %v", err)
	}
	s.stop(time.Second) // nothing to stop: returns at once
}

func TestLogMux(t *testing.T) {
	var buf bytes.Buffer
	m := newLogMux(&buf, []string{"up", "gateway"})
	a, b := m.writer("gateway"), m.writer("up")
	mustWrite(t, a, "hello ")
	mustWrite(t, b, "one\ntwo\nthr")
	mustWrite(t, a, "world\n")
	b.flush()
	want := "up      | one\nup      | two\ngateway | hello world\nup      | thr\n"
	if got := buf.String(); got != want {
		t.Errorf("mux output:\n%s\nwant:\n%s", got, want)
	}
}

func TestLogMuxLongLine(t *testing.T) {
	var buf bytes.Buffer
	w := newLogMux(&buf, []string{"x"}).writer("x")
	mustWrite(t, w, strings.Repeat("a", 64<<10+1))
	if got, want := buf.String(), "x | "+strings.Repeat("a", 64<<10+1)+"\n"; got != want {
		t.Errorf("a line over 64 KiB without a newline is held back: wrote %d bytes, want %d", len(got), len(want))
	}
	w.flush()
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("flush after a forced line wrote %d lines, want 1", n)
	}
}

func mustWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
	}
}
