// Package logtest collects what a logger (or a child process) writes, for
// tests. Servers log from their own goroutines while the test reads, so
// [Buffer] is safe for concurrent use, and a test can [Buffer.Wait] for a
// line instead of polling; its helpers parse the JSON lines of
// slog.NewJSONHandler.
package logtest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a goroutine-safe [io.Writer] for log output. The zero value is
// an empty buffer ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed by the next Write, to wake the waiters; nil while
	// nobody waits.
	changed chan struct{}
}

// JSONLogger returns a logger writing JSON lines to b at level info and
// above, the format the helpers parse.
func (b *Buffer) JSONLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, nil))
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// Wait blocks until cond holds for everything written so far, checking it
// now and again after every Write, and reports whether it did within
// timeout. cond runs without the buffer's lock held, so it may call the
// buffer's other methods (Records, WithMsg). In a testing/synctest bubble
// the timeout is on the bubble's clock.
func (b *Buffer) Wait(timeout time.Duration, cond func(logs string) bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		logs := b.buf.String()
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed // closed by any Write after logs was read
		b.mu.Unlock()
		if cond(logs) {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return cond(b.String())
		}
	}
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns the last n lines written.
func (b *Buffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Records parses every line written so far as a JSON object, failing the
// test on a line that is not one.
func (b *Buffer) Records(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			tb.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// WithMsg returns the records whose message is msg, oldest first.
func (b *Buffer) WithMsg(tb testing.TB, msg string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, m := range b.Records(tb) {
		if m[slog.MessageKey] == msg {
			out = append(out, m)
		}
	}
	return out
}
