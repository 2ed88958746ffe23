//go:build unix

package portlock

import (
	"errors"
	"os"
	"syscall"
)

// lock opens path and takes an exclusive, non-blocking flock on it. Locks
// belong to the open file, so two reservations in one process exclude each
// other as well.
func lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // not ours
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errHeld
		}
		return nil, err
	}
	return f, nil
}
