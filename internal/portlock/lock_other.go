//go:build !unix

package portlock

import (
	"errors"
	"os"
)

// lock is not implemented outside Unix: without it two networks could take
// the same ports, so Reserve refuses rather than risk it.
func lock(string) (*os.File, error) {
	return nil, errors.New("file locking is only implemented on Unix")
}
