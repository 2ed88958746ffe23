package config_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/remitpay/remit/internal/config"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ (valid files, each
// field's edge cases, and the inputs of past failures); `go test` runs them
// as regular tests.

// FuzzLoadGatewayConfig checks that any input either fails with an error or
// yields a valid config with absolute paths that survives a
// Marshal/Parse round trip unchanged.
func FuzzLoadGatewayConfig(f *testing.F) {
	f.Add([]byte(gatewayYAML))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := config.ParseGateway("/srv/remit/gateway.yaml", data)
		if err != nil {
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("ParseGateway returned an invalid config: %v", err)
		}
		for _, p := range []string{g.TLS.CA, g.TLS.Cert, g.TLS.Key, g.TLS.ClientCert, g.TLS.ClientKey, g.DataDir, g.Users} {
			if !filepath.IsAbs(p) {
				t.Fatalf("path %q is not absolute after loading", p)
			}
		}
		out, err := config.Marshal(g)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := config.ParseGateway("/elsewhere/gateway.yaml", out)
		if err != nil {
			t.Fatalf("ParseGateway(Marshal(config)): %v\n%s", err, out)
		}
		if diff := cmp.Diff(g, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the config (-first +second):\n%s", diff)
		}
	})
}

// FuzzLoadBankConfig is FuzzLoadGatewayConfig for bank configs.
func FuzzLoadBankConfig(f *testing.F) {
	f.Add([]byte(bankYAML))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := config.ParseBank("/srv/remit/banks/bank-a.yaml", data)
		if err != nil {
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("ParseBank returned an invalid config: %v", err)
		}
		for _, p := range []string{b.TLS.CA, b.TLS.Cert, b.TLS.Key, b.TLS.ClientCert, b.TLS.ClientKey, b.DataDir} {
			if !filepath.IsAbs(p) {
				t.Fatalf("path %q is not absolute after loading", p)
			}
		}
		out, err := config.Marshal(b)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := config.ParseBank("/elsewhere/banks/bank-a.yaml", out)
		if err != nil {
			t.Fatalf("ParseBank(Marshal(config)): %v\n%s", err, out)
		}
		if diff := cmp.Diff(b, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the config (-first +second):\n%s", diff)
		}
	})
}
