package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	"github.com/remitpay/remit/internal/names"
)

// Identity kinds.
const (
	KindGateway = "gateway"
	KindBank    = "bank"
)

// GatewayName is the principal name (and file name stem) of the gateway.
const GatewayName = "gateway"

// URIScheme is the scheme of the URI SAN that names a principal.
const URIScheme = "remit"

// Identity is the principal a certificate was issued to.
type Identity struct {
	Kind string // KindGateway or KindBank
	Name string // "gateway" for the gateway, the bank name for a bank
}

// GatewayIdentity returns the gateway's identity.
func GatewayIdentity() Identity { return Identity{Kind: KindGateway, Name: GatewayName} }

// BankIdentity returns the identity of bank name (not validated).
func BankIdentity(name string) Identity { return Identity{Kind: KindBank, Name: name} }

// URI returns the URI SAN that encodes id: remit://gateway or
// remit://bank/<name>.
func (id Identity) URI() *url.URL {
	if id.Kind == KindBank {
		return &url.URL{Scheme: URIScheme, Host: KindBank, Path: "/" + id.Name}
	}
	return &url.URL{Scheme: URIScheme, Host: KindGateway}
}

// String returns the URI form of id.
func (id Identity) String() string { return id.URI().String() }

// IdentityFromCert extracts the principal from cert's URI SANs. URIs with a
// scheme other than "remit" are ignored; exactly one remit URI must be present
// and it must be exactly remit://gateway or remit://bank/<name> with a valid
// bank name (no user info, port, query, fragment, escapes or trailing slash).
//
// It does not verify cert; use [PeerIdentity] for connections.
func IdentityFromCert(cert *x509.Certificate) (Identity, bool) {
	if cert == nil {
		return Identity{}, false
	}
	var found *url.URL
	for _, u := range cert.URIs {
		if u == nil || !strings.EqualFold(u.Scheme, URIScheme) {
			continue
		}
		if found != nil {
			return Identity{}, false // ambiguous
		}
		found = u
	}
	if found == nil {
		return Identity{}, false
	}
	return identityFromURI(found)
}

func identityFromURI(u *url.URL) (Identity, bool) {
	if u.Scheme != URIScheme || u.Opaque != "" || u.User != nil ||
		u.RawPath != "" || u.ForceQuery || u.RawQuery != "" ||
		u.Fragment != "" || u.RawFragment != "" || u.OmitHost {
		return Identity{}, false
	}
	switch u.Host {
	case KindGateway:
		if u.Path != "" {
			return Identity{}, false
		}
		return GatewayIdentity(), true
	case KindBank:
		name, ok := strings.CutPrefix(u.Path, "/")
		if !ok || names.Bank(name) != nil {
			return Identity{}, false
		}
		return BankIdentity(name), true
	default:
		return Identity{}, false
	}
}

// PeerIdentity returns the identity of the peer of a TLS connection. It looks
// only at the leaf of the first chain crypto/tls verified against the
// configured CA (VerifiedChains[0][0]) and never at unverified
// PeerCertificates, so it reports false unless the peer was actually
// authenticated (for servers: tls.VerifyClientCertIfGiven with a client
// certificate, or tls.RequireAndVerifyClientCert).
func PeerIdentity(cs *tls.ConnectionState) (Identity, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	return IdentityFromCert(cs.VerifiedChains[0][0])
}

// RequirePeer returns a copy of conf that, after the usual chain and host
// name verification, also requires the peer's verified certificate to name
// want. Clients use it to pin the server they meant to reach: every dev
// server certificate covers 127.0.0.1 and localhost, so a host name match
// alone would let one Remit server stand in for another (a bank registering
// another bank's address, say).
func RequirePeer(conf *tls.Config, want Identity) *tls.Config {
	c := conf.Clone()
	prev := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		got, ok := PeerIdentity(&cs)
		if !ok {
			return fmt.Errorf("pki: peer certificate names no Remit identity; want %s", want)
		}
		if got != want {
			return fmt.Errorf("pki: peer is %s, want %s", got, want)
		}
		return nil
	}
	return c
}
