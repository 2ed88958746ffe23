package auth_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/remitpay/remit/internal/store/storetest"

	"github.com/remitpay/remit/internal/auth"
)

// TestLoginGivesHashMemoryBack logs in with the production argon2id
// parameters (64 MiB) and checks that the hash's memory is neither still
// counted as heap in use nor kept by the process once Login returns: left
// to the collector's pace, a burst of logins piles those buffers up (the
// gateway's RSS peaked at 350-420 MiB).
func TestLoginGivesHashMemoryBack(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with 64 MiB")
	}
	ctx := context.Background()
	users := parseUsers(t, auth.DefaultParams)
	sessions, err := auth.OpenSessions(ctx, storetest.Target(t, t.TempDir(), "sessions"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sessions.Close() })
	a, err := auth.NewAuthenticator(ctx, users, sessions, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 32 << 20 // half a hash
	for _, pw := range []string{alicePW, "wrong"} {
		if _, _, _, err := a.Login(ctx, "alice", pw, srcA); err != nil && pw == alicePW {
			t.Fatal(err)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > limit || m.HeapIdle-m.HeapReleased > limit {
			t.Errorf("after Login(%q): heap in use %d MiB, idle but not released %d MiB; want both under %d MiB",
				pw, m.HeapInuse>>20, (m.HeapIdle-m.HeapReleased)>>20, limit>>20)
		}
	}
}

// BenchmarkLogin logs in with the production argon2id parameters, two at a
// time (the default bound on concurrent hashes on 2 CPUs), including the
// collection that gives each hash's 64 MiB back.
func BenchmarkLogin(b *testing.B) {
	ctx := context.Background()
	hash, err := auth.HashPassword(alicePW)
	if err != nil {
		b.Fatal(err)
	}
	users, err := auth.ParseUsers("users.json", []byte(usersJSON(
		entry("alice", hash, `["customer"]`, `{"bank":"bank-a","account_id":"alice"}`))))
	if err != nil {
		b.Fatal(err)
	}
	sessions, err := auth.OpenSessions(ctx, storetest.Target(b, b.TempDir(), "sessions"), auth.SessionConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sessions.Close() })
	a, err := auth.NewAuthenticator(ctx, users, sessions, auth.Config{MaxFailures: 1 << 30, MaxSourceFailures: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, _, err := a.Login(ctx, "alice", alicePW, srcA); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
