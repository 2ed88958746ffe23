package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/remitpay/remit/internal/audit"
)

// TestRecordAfterPartialWrite: a write that fails half-way (here: the file
// size limit, EFBIG after a short write) leaves a partial line at the end of
// the file. The next Record that succeeds must still start on a line of its
// own; otherwise an event reported as durably recorded is glued to the
// partial line and is not a valid JSON line any more.
func TestRecordAfterPartialWrite(t *testing.T) {
	if path := os.Getenv("AUDIT_PARTIAL_CHILD"); path != "" {
		partialChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecordAfterPartialWrite$") //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), "AUDIT_PARTIAL_CHILD="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "second") {
			continue
		}
		found = true
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("the event recorded after the failed write is not a JSON line of its own: %v: %q", err, line)
		}
	}
	if !found {
		t.Fatal("second event not in the file")
	}
}

func partialChild(path string) {
	l, err := audit.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		panic(err)
	}
	// Room for a part of the first line only.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 20, Max: old.Max}); err != nil {
		panic(err)
	}
	l.Record(context.Background(), audit.EventPaymentDecided, slog.String("id", "first"))
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		panic(err)
	}
	fmt.Fprintln(os.Stderr, "first Record error:", errString(l.Err()))
	l.Record(context.Background(), audit.EventPaymentDecided, slog.String("id", "second"))
	if err := l.Close(); err != nil {
		panic(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
