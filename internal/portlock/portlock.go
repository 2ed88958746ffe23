// Package portlock hands out blocks of consecutive TCP ports on 127.0.0.1
// that no other user of this package, in this process or any other, holds
// at the same time.
//
// Tests and tools that start whole networks pick their ports at random
// below the kernel's ephemeral range and keep them across restarts. A probe
// that the ports are free is not enough when several test binaries run at
// once: between a network's stop and its restart, or between one probe and
// the listen it was for, another binary may take the same ports. Each port
// of a block is therefore also claimed by an exclusive lock on a file named
// after it; the kernel drops the locks when the holder exits, however it
// exits.
package portlock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// The range ports are drawn from: below Linux's ephemeral range (32768+),
// so that outgoing connections do not take a port between a network's stop
// and its restart.
const (
	low  = 20000
	high = 32000
)

// Block is a reservation of N consecutive ports starting at Base.
type Block struct {
	Base, N int
	locks   []*os.File
}

// Ports returns the block's ports in order.
func (b *Block) Ports() []int {
	ps := make([]int, b.N)
	for i := range ps {
		ps[i] = b.Base + i
	}
	return ps
}

// Release gives the ports back. It is safe to call more than once.
func (b *Block) Release() {
	for _, f := range b.locks {
		_ = f.Close() // closing drops the lock; the file is reused
	}
	b.locks = nil
}

// Reserve returns n consecutive ports that are free on 127.0.0.1 now and
// locked for this process until Release (or its exit).
func Reserve(ctx context.Context, n int) (*Block, error) {
	if n < 1 || n > high-low {
		return nil, fmt.Errorf("portlock: cannot reserve %d ports", n)
	}
	d, err := dir()
	if err != nil {
		return nil, err
	}
	for range 200 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		base := low + rand.IntN(high-low-n+1) //nolint:gosec // G404: a port number to try, not a secret
		b, err := try(ctx, d, base, n)
		if errors.Is(err, errBusy) {
			continue
		}
		return b, err
	}
	return nil, fmt.Errorf("portlock: found no %d free ports in a row between %d and %d in 200 tries", n, low, high)
}

// dir is where the lock files live: one per port, per user.
func dir() (string, error) {
	d := filepath.Join(os.TempDir(), "remit-ports-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("portlock: %w", err)
	}
	return d, nil
}

// try locks base..base+n-1 and checks that each can be listened on. It
// returns errBusy when one is held or in use, having released what it took.
func try(ctx context.Context, dir string, base, n int) (*Block, error) {
	b := &Block{Base: base, N: n}
	for p := base; p < base+n; p++ {
		f, err := lock(filepath.Join(dir, strconv.Itoa(p)))
		if errors.Is(err, errHeld) {
			b.Release()
			return nil, errBusy
		}
		if err != nil {
			b.Release()
			return nil, fmt.Errorf("portlock: %w", err)
		}
		b.locks = append(b.locks, f)
	}
	// Held by us now; a process outside this package may still use one.
	var lc net.ListenConfig
	for p := base; p < base+n; p++ {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			b.Release()
			return nil, errors.Join(errBusy, err)
		}
		_ = ln.Close() // a probe: listening was the test
	}
	return b, nil
}

var (
	// errHeld is lock's answer when another holder has the file.
	errHeld = errors.New("port held by another reservation")
	// errBusy is try's: take another block.
	errBusy = errors.New("port held or in use")
)
