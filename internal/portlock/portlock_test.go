package portlock

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestReserveExcludes: while a block is held, no other reservation, in
// this process or another, gets any of its ports; released, they are free
// to take again.
func TestReserveExcludes(t *testing.T) {
	ctx := context.Background()
	a, err := Reserve(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Ports(); len(got) != 8 || got[0] != a.Base || got[7] != a.Base+7 {
		t.Fatalf("Ports() = %v, want 8 from %d", got, a.Base)
	}
	held := map[int]bool{}
	for _, p := range a.Ports() {
		held[p] = true
	}
	// Many more reservations than the range could hold by chance overlap.
	var others []*Block
	for range 100 {
		b, err := Reserve(ctx, 8)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range b.Ports() {
			if held[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			held[p] = true
		}
		others = append(others, b)
	}
	for _, b := range others {
		b.Release()
	}

	// Another process sees the lock too.
	if os.Getenv("PORTLOCK_CHILD") == "" {
		//nolint:gosec // G702: the test binary itself
		cmd := exec.Command(os.Args[0], "-test.run", "^TestChildTry$", "-test.v")
		cmd.Env = append(os.Environ(), "PORTLOCK_CHILD=1", "PORTLOCK_BASE="+strconv.Itoa(a.Base))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "child: held") {
			t.Fatalf("child process could take a held block: %v\n%s", err, out)
		}
	}

	a.Release()
	a.Release() // twice is harmless
	b, err := try(ctx, lockDir(t), a.Base, 8)
	if err != nil {
		t.Fatalf("after Release, try(%d) = %v, %v; want the block", a.Base, b, err)
	}
	b.Release()
}

// TestChildTry runs in the child process of TestReserveExcludes.
func TestChildTry(t *testing.T) {
	base, err := strconv.Atoi(os.Getenv("PORTLOCK_BASE"))
	if os.Getenv("PORTLOCK_CHILD") == "" || err != nil {
		t.Skip("only run as TestReserveExcludes's child")
	}
	b, err := try(context.Background(), lockDir(t), base, 8)
	if err == nil {
		b.Release()
		t.Fatalf("child: took %d, held by the parent", base)
	}
	if !errors.Is(err, errBusy) {
		t.Fatal(err)
	}
	t.Log("child: held")
}

// TestReserveSkipsBusyPorts: a port someone listens on without a lock is
// never handed out.
func TestReserveSkipsBusyPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() //nolint:errcheck // holds the port for the test
	port := ln.Addr().(*net.TCPAddr).Port
	// The kernel's port is outside Reserve's range, so try the block that
	// holds it directly.
	b, err := try(context.Background(), lockDir(t), port, 1)
	if !errors.Is(err, errBusy) {
		t.Fatalf("try on a busy port = %v, %v; want errBusy", b, err)
	}
}

func lockDir(t *testing.T) string {
	t.Helper()
	d, err := dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
