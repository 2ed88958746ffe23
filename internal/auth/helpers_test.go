package auth_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/remitpay/remit/internal/auth"
)

// cheap are argon2id parameters that make tests fast; production uses
// auth.DefaultParams.
var cheap = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHash(tb testing.TB, password string) string {
	tb.Helper()
	h, err := auth.HashPasswordParams(password, cheap)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

type recorder struct {
	mu     sync.Mutex
	events []string
	lines  []map[string]string
}

func (r *recorder) Record(_ context.Context, event string, attrs ...slog.Attr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]string{}
	for _, a := range attrs {
		m[a.Key] = a.Value.String()
	}
	r.events = append(r.events, event)
	r.lines = append(r.lines, m)
}

func (r *recorder) snapshot() ([]string, []map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...), append([]map[string]string(nil), r.lines...)
}

// reset forgets what was recorded (the users file's import at the start).
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events, r.lines = nil, nil
}
