package client_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/remitpay/remit/client"
)

func TestNormalizeGatewayURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"https://127.0.0.1:8443/", "https://127.0.0.1:8443"},
		{"HTTPS://LocalHost:8443//", "https://localhost:8443"},
		{"https://gateway.example:443/", "https://gateway.example"},
		{"https://gateway.example:/", "https://gateway.example"},
		{"https://[::1]:443", "https://[::1]"},
		{"https://[::1]:8443/", "https://[::1]:8443"},
		{" https://gw.example/remit/ ", "https://gw.example/remit"},
		{"https://localhost:21443/", "https://localhost:21443"}, // a different host than 127.0.0.1 stays different
	}
	for _, tt := range tests {
		got, err := client.NormalizeGatewayURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeGatewayURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8443", "https://", "://x"} {
		if got, err := client.NormalizeGatewayURL(bad); err == nil {
			t.Errorf("NormalizeGatewayURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestNewNormalizesTheGatewayURL(t *testing.T) {
	c, err := client.New(client.Config{GatewayURL: "HTTPS://Gateway.Example:443/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.GatewayURL(); got != "https://gateway.example" {
		t.Errorf("GatewayURL() = %q", got)
	}
}

func TestNewWithMissingCAFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	_, err := client.New(client.Config{GatewayURL: "https://127.0.0.1:8443", CAFile: missing})
	if !errors.Is(err, client.ErrCAFileNotFound) {
		t.Errorf("New with a missing CA file = %v, want ErrCAFileNotFound", err)
	}
}
