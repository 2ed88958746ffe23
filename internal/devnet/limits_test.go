package devnet_test

import (
	"testing"

	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/serve"
)

// remit bench logs every customer in with a client of its own, one HTTP/2
// connection each, all from 127.0.0.1; so do the banks, the CLI and the
// staff. The servers' loopback connection cap must leave room for the
// largest network remit init builds, with margin for everything else.
func TestLoopbackConnCapFitsTheLargestNetwork(t *testing.T) {
	const others = 256 // banks, staff, CLI, probes, reconnects
	if need := devnet.MaxCustomers + others; serve.DefaultMaxConnsPerLoopback < need {
		t.Fatalf("serve.DefaultMaxConnsPerLoopback = %d, want at least %d (devnet.MaxCustomers %d + %d)",
			serve.DefaultMaxConnsPerLoopback, need, devnet.MaxCustomers, others)
	}
}
