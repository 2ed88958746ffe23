//go:build unix

package outbox

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on path without waiting. flock locks
// belong to the open file description, so two opens in one process exclude
// each other just like two processes do, and the kernel releases the lock
// when the process dies, so a crashed flusher never blocks the next one.
func tryLock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close() // the lock file holds no data; the Flock error is the answer
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return func() {
		// The lock file holds no data, and closing it releases the lock
		// anyway: neither error has anything to report.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
