package serve

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// HandleSignals returns a context canceled on SIGINT or SIGTERM (the signal
// Kubernetes and systemd send to stop a process), so that passing it to
// [Run] turns a stop request into a graceful shutdown. Call the returned
// cancel function to stop listening for signals; a second signal after that
// kills the process as usual.
func HandleSignals(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
