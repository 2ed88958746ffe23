package client_test

import (
	"testing"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/auth"
)

// The SDK refuses short passwords before sending them; its minimum must be
// the gateway's, or it would refuse passwords the gateway takes (or send
// ones it refuses, spending a rate-limited attempt).
func TestMinPasswordLenIsTheGateways(t *testing.T) {
	if client.MinPasswordLen != auth.MinPasswordLen {
		t.Errorf("client.MinPasswordLen = %d, auth.MinPasswordLen = %d", client.MinPasswordLen, auth.MinPasswordLen)
	}
}
