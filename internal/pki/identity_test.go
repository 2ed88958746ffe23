package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/remitpay/remit/internal/pki"
)

func certWithURIs(t *testing.T, uris ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		c.URIs = append(c.URIs, u)
	}
	return c
}

func TestIdentityFromCert(t *testing.T) {
	tests := []struct {
		name   string
		uris   []string
		want   pki.Identity
		wantOK bool
	}{
		{"gateway", []string{"remit://gateway"}, pki.GatewayIdentity(), true},
		{"bank", []string{"remit://bank/bank-a"}, pki.BankIdentity("bank-a"), true},
		{"single-char bank", []string{"remit://bank/0"}, pki.BankIdentity("0"), true},
		{"63-char bank", []string{"remit://bank/b23456789012345678901234567890123456789012345678901234567890123"},
			pki.BankIdentity("b23456789012345678901234567890123456789012345678901234567890123"), true},
		// Schemes are case-insensitive (RFC 3986); url.Parse, which
		// crypto/x509 uses for URI SANs, lower-cases them.
		{"upper-case scheme", []string{"REMIT://gateway"}, pki.GatewayIdentity(), true},
		{"other schemes ignored", []string{"spiffe://example.org/x", "remit://bank/bank-b"}, pki.BankIdentity("bank-b"), true},

		{"no URIs", nil, pki.Identity{}, false},
		{"only other scheme", []string{"https://gateway"}, pki.Identity{}, false},
		{"two remit URIs", []string{"remit://gateway", "remit://bank/bank-a"}, pki.Identity{}, false},
		{"upper-case host", []string{"remit://GATEWAY"}, pki.Identity{}, false},
		{"gateway trailing slash", []string{"remit://gateway/"}, pki.Identity{}, false},
		{"gateway with path", []string{"remit://gateway/x"}, pki.Identity{}, false},
		{"gateway with port", []string{"remit://gateway:443"}, pki.Identity{}, false},
		{"gateway with user", []string{"remit://admin@gateway"}, pki.Identity{}, false},
		{"gateway with query", []string{"remit://gateway?x=1"}, pki.Identity{}, false},
		{"gateway with empty query", []string{"remit://gateway?"}, pki.Identity{}, false},
		{"gateway with fragment", []string{"remit://gateway#x"}, pki.Identity{}, false},
		{"opaque", []string{"remit:gateway"}, pki.Identity{}, false},
		{"no host", []string{"remit:///gateway"}, pki.Identity{}, false},
		{"unknown kind", []string{"remit://admin"}, pki.Identity{}, false},
		{"bank without name", []string{"remit://bank"}, pki.Identity{}, false},
		{"bank empty name", []string{"remit://bank/"}, pki.Identity{}, false},
		{"bank upper-case", []string{"remit://bank/Bank-A"}, pki.Identity{}, false},
		{"bank leading hyphen", []string{"remit://bank/-a"}, pki.Identity{}, false},
		{"bank nested path", []string{"remit://bank/bank-a/x"}, pki.Identity{}, false},
		{"bank trailing slash", []string{"remit://bank/bank-a/"}, pki.Identity{}, false},
		{"bank escaped", []string{"remit://bank/bank%2Da"}, pki.Identity{}, false},
		{"bank escaped slash", []string{"remit://bank/a%2Fb"}, pki.Identity{}, false},
		{"bank too long", []string{"remit://bank/b234567890123456789012345678901234567890123456789012345678901234"}, pki.Identity{}, false},
		{"bank with port", []string{"remit://bank:1/bank-a"}, pki.Identity{}, false},
		{"bank with query", []string{"remit://bank/bank-a?x"}, pki.Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pki.IdentityFromCert(certWithURIs(t, tt.uris...))
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("IdentityFromCert(%v) = %v, %v; want %v, %v", tt.uris, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if _, ok := pki.IdentityFromCert(nil); ok {
		t.Error("IdentityFromCert(nil) succeeded")
	}
}

func TestIdentityURIRoundTrip(t *testing.T) {
	for _, id := range []pki.Identity{pki.GatewayIdentity(), pki.BankIdentity("bank-a"), pki.BankIdentity("b2")} {
		t.Run(id.String(), func(t *testing.T) {
			u, err := url.Parse(id.String())
			if err != nil {
				t.Fatal(err)
			}
			got, ok := pki.IdentityFromCert(&x509.Certificate{URIs: []*url.URL{u}})
			if !ok || got != id {
				t.Errorf("round trip of %s = %v, %v", id, got, ok)
			}
		})
	}
	if got := pki.GatewayIdentity().String(); got != "remit://gateway" {
		t.Errorf("gateway URI = %s", got)
	}
	if got := pki.BankIdentity("bank-a").String(); got != "remit://bank/bank-a" {
		t.Errorf("bank URI = %s", got)
	}
}

func TestPeerIdentityUsesVerifiedChainsOnly(t *testing.T) {
	bank := certWithURIs(t, "remit://bank/bank-a")
	gw := certWithURIs(t, "remit://gateway")
	tests := []struct {
		name   string
		cs     *tls.ConnectionState
		want   pki.Identity
		wantOK bool
	}{
		{"nil", nil, pki.Identity{}, false},
		{"unverified peer certificates", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{bank}}, pki.Identity{}, false},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, pki.Identity{}, false},
		{"verified", &tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{gw},
			VerifiedChains:   [][]*x509.Certificate{{bank}},
		}, pki.BankIdentity("bank-a"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pki.PeerIdentity(tt.cs)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("PeerIdentity = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
