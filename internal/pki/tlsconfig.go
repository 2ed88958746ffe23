package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// generateHint is appended to errors about missing or unusable files.
const generateHint = "run `remit certs` or `remit init` to generate the development certificates"

// ServerConfig returns a TLS 1.3 server configuration (ALPN "h2") presenting
// certFile/keyFile. Unless clientAuth is tls.NoClientCert, client
// certificates are verified against the CA in caFile only; caFile is required
// for tls.VerifyClientCertIfGiven and tls.RequireAndVerifyClientCert. Use
// tls.RequireAndVerifyClientCert for mutual TLS and [PeerIdentity] to learn
// who the client is.
func ServerConfig(certFile, keyFile, caFile string, clientAuth tls.ClientAuthType) (*tls.Config, error) {
	if clientAuth < tls.NoClientCert || clientAuth > tls.RequireAndVerifyClientCert {
		return nil, fmt.Errorf("pki: invalid client auth type %v", clientAuth)
	}
	cert, err := loadKeyPair("server", certFile, keyFile, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		ClientAuth:   clientAuth,
	}
	if clientAuth != tls.NoClientCert {
		switch {
		case caFile != "":
			pool, err := loadCAPool(caFile)
			if err != nil {
				return nil, err
			}
			cfg.ClientCAs = pool
		case clientAuth >= tls.VerifyClientCertIfGiven:
			return nil, fmt.Errorf("pki: client auth %v needs a CA file to verify client certificates against (ca.pem; %s)", clientAuth, generateHint)
		}
	}
	return cfg, nil
}

// ClientConfig returns a TLS 1.3 client configuration (ALPN "h2") that trusts
// only the CA in caFile, never the system roots. When certFile is not empty,
// the client presents certFile/keyFile to servers that ask for a client
// certificate. The caller (or the HTTP transport) sets ServerName.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, fmt.Errorf("pki: no CA file to verify servers against (ca.pem; %s)", generateHint)
	}
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		NextProtos: []string{"h2"},
	}
	switch {
	case certFile != "":
		cert, err := loadKeyPair("client", certFile, keyFile, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case keyFile != "":
		return nil, fmt.Errorf("pki: client key %s given without a client certificate", keyFile)
	}
	return cfg, nil
}

// loadKeyPair loads a certificate and key and checks the certificate is meant
// for usage, so swapped server/client files fail at startup with a clear
// message rather than in every handshake.
func loadKeyPair(role, certFile, keyFile string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	if certFile == "" {
		return tls.Certificate{}, fmt.Errorf("pki: no %s certificate file given (%s)", role, generateHint)
	}
	if keyFile == "" {
		return tls.Certificate{}, fmt.Errorf("pki: no key file given for %s certificate %s", role, certFile)
	}
	if err := checkReadable(role+" certificate", certFile); err != nil {
		return tls.Certificate{}, err
	}
	if err := checkReadable(role+" key", keyFile); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load %s certificate %s with key %s: %w (regenerate them: %s)", role, certFile, keyFile, err, generateHint)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("pki: parse %s certificate %s: %w", role, certFile, err)
		}
		cert.Leaf = leaf
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return tls.Certificate{}, fmt.Errorf("pki: %s is not a %s certificate (its extended key usage lacks %s); check the file name (server certificates are <name>.pem, client certificates <name>-client.pem)", certFile, role, usageName(usage))
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("pki: %s certificate %s expired at %s; %s", role, certFile, leaf.NotAfter.Format(time.RFC3339), generateHint)
	}
	return cert, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "serverAuth"
	}
	return "clientAuth"
}

func checkReadable(what, path string) error {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("pki: %s %s not found: %s", what, path, generateHint)
	default:
		return fmt.Errorf("pki: %s: %w", what, err)
	}
}

// loadCAPool reads every certificate of a PEM file into a new pool.
func loadCAPool(caFile string) (*x509.CertPool, error) {
	if err := checkReadable("CA certificate", caFile); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse CA certificate %s: %w", caFile, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("pki: CA file %s contains no PEM certificates: %s", caFile, generateHint)
	}
	return pool, nil
}
