//go:build !unix

package outbox

import "errors"

// tryLock is not implemented outside Unix: without a lock two flushers could
// interleave, so the outbox refuses to flush rather than risk it.
func tryLock(string) (func(), error) {
	return nil, errors.New("outbox: file locking is only implemented on Unix")
}
