package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/audit"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("file does not end in a newline: %q", data)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func openLog(t *testing.T, path string) *audit.Log {
	t.Helper()
	l, err := audit.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func TestOpenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "audit")
	path := filepath.Join(dir, "audit.log")
	l := openLog(t, path)
	l.Record(context.Background(), audit.EventLoginSucceeded, slog.String("client_id", "alice"))
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestOpenNarrowsExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	openLog(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode %v, want 0600", got)
	}
}

func TestRecordLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)

	tests := []struct {
		event string
		attrs []slog.Attr
		want  map[string]any
	}{
		{
			event: audit.EventLoginFailed,
			attrs: []slog.Attr{slog.String("client_id", "alice"), slog.String("source", "10.0.0.1")},
			want:  map[string]any{"client_id": "alice", "source": "10.0.0.1"},
		},
		{
			event: audit.EventPaymentDecided,
			attrs: []slog.Attr{
				slog.String("transaction_id", "b4c3"), slog.Int64("amount", 1250),
				slog.Group("payer", slog.String("bank", "bank-a")),
			},
			want: map[string]any{"transaction_id": "b4c3", "amount": float64(1250), "payer": map[string]any{"bank": "bank-a"}},
		},
		{
			// Attributes cannot overwrite the built-in keys.
			event: audit.EventAuthzDenied,
			attrs: []slog.Attr{slog.String("event", "login_succeeded"), slog.String("time", "yesterday")},
			want:  map[string]any{"attr_event": "login_succeeded", "attr_time": "yesterday"},
		},
		{
			// Secrets are redacted even if a caller passes them by mistake.
			event: audit.EventLoginFailed,
			attrs: []slog.Attr{
				slog.String("password", "hunter2"), slog.String("access_token", "rmt_abc"),
				slog.Group("req", slog.String("Authorization", "Bearer rmt_abc")),
			},
			want: map[string]any{
				"password": audit.Redacted, "access_token": audit.Redacted,
				"req": map[string]any{"Authorization": audit.Redacted},
			},
		},
	}
	for _, tt := range tests {
		l.Record(ctx, tt.event, tt.attrs...)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != len(tests) {
		t.Fatalf("got %d lines, want %d", len(lines), len(tests))
	}
	for i, tt := range tests {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, lines[i])
		}
		if !strings.HasPrefix(lines[i], `{"time":`) {
			t.Errorf("line %d does not start with time: %s", i, lines[i])
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["time"]))
		if err != nil || ts.Before(before) || ts.Location() != time.UTC {
			t.Errorf("line %d: bad time %v (%v)", i, got["time"], err)
		}
		if got["event"] != tt.event {
			t.Errorf("line %d: event %v, want %s", i, got["event"], tt.event)
		}
		if _, ok := got["level"]; ok {
			t.Errorf("line %d has a level", i)
		}
		for k, want := range tt.want {
			if fmt.Sprint(got[k]) != fmt.Sprint(want) {
				t.Errorf("line %d: %s = %v, want %v", i, k, got[k], want)
			}
		}
		if strings.Contains(lines[i], "hunter2") || strings.Contains(lines[i], "rmt_abc") {
			t.Errorf("line %d leaks a secret: %s", i, lines[i])
		}
	}
}

func TestRecordConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				l.Record(context.Background(), audit.EventPaymentDecided,
					slog.Int("writer", w), slog.Int("i", i), slog.String("pad", strings.Repeat("x", 500)))
			}
		})
	}
	wg.Wait()
	lines := readLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(lines), writers*each)
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var got struct {
			Writer int `json:"writer"`
			I      int `json:"i"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("interleaved or invalid line: %v: %.80s", err, line)
		}
		seen[fmt.Sprint(got.Writer, got.I)] = true
	}
	if len(seen) != writers*each {
		t.Errorf("got %d distinct events, want %d", len(seen), writers*each)
	}
}

func TestAppendsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	// A previous process died in the middle of a line.
	if err := os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","event":"login_succeeded"}`+"\n"+`{"time":"2026-01-01T00:00:01Z","ev`), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, path)
	l.Record(context.Background(), audit.EventLoginFailed)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path)
	l.Record(context.Background(), audit.EventLoginLocked)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, want := range map[int]string{0: audit.EventLoginSucceeded, 2: audit.EventLoginFailed, 3: audit.EventLoginLocked} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil || got["event"] != want {
			t.Errorf("line %d = %s (%v), want event %s", i, lines[i], err, want)
		}
	}
}

// An event that cannot be written is remembered for Err and reported on
// the log's own logger, not on slog.Default().
func TestRecordAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var logs bytes.Buffer
	l, err := audit.Open(path, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err before any failure = %v", err)
	}
	l.Record(context.Background(), audit.EventLoginFailed)
	if err := l.Err(); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Err after Record after Close = %v, want ErrClosed", err)
	}
	var got map[string]any
	if err := json.Unmarshal(logs.Bytes(), &got); err != nil {
		t.Fatalf("want one JSON line on the given logger, got %q: %v", logs.String(), err)
	}
	if got["level"] != "ERROR" || got["msg"] != "audit log write failed" ||
		got["event"] != audit.EventLoginFailed || got["path"] != path {
		t.Errorf("write failure logged as %v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(file, "audit.log")} {
		if l, err := audit.Open(path, slog.New(slog.DiscardHandler)); err == nil {
			_ = l.Close() // the test already failed
			t.Errorf("Open(%q) succeeded", path)
		}
	}
	if l, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), nil); err == nil {
		_ = l.Close() // the test already failed
		t.Error("Open without a logger succeeded")
	}
}
