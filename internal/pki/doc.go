// Package pki creates and loads the TLS material Remit uses: a private
// development certificate authority, one server and one client certificate per
// principal, the TLS 1.3 configurations built from them, and the mapping from a
// verified peer certificate to the principal (gateway or bank) it names.
//
// # Layout
//
// [Generate] writes everything as PEM into one directory (created with mode
// 0700; `remit certs --dir certs` uses the repository's certs/ directory):
//
//	ca.pem                      the dev CA certificate ("Remit Dev CA")
//	ca-key.pem                  the CA private key
//	gateway.pem                 gateway server certificate (serverAuth)
//	gateway-key.pem
//	gateway-client.pem          gateway client certificate (clientAuth), used
//	gateway-client-key.pem      when the gateway calls the banks
//	<bank>.pem                  bank server certificate (serverAuth)
//	<bank>-key.pem
//	<bank>-client.pem           bank client certificate (clientAuth), used when
//	<bank>-client-key.pem       the bank calls the gateway
//
// Keys are ECDSA P-256 in PKCS#8 ("PRIVATE KEY" blocks) with mode 0600;
// certificates have mode 0644. Server certificates carry the DNS/IP SANs
// localhost, 127.0.0.1, ::1, the principal's own name (so "gateway" or
// "bank-a" work as container host names) and every [Options.Hosts] entry.
// [Layout] returns the paths, so callers never spell file names themselves.
//
// Generate is idempotent: an existing CA (ca.pem and ca-key.pem) is reused and
// only leaves that are missing or unusable are (re)issued; a leaf is kept
// byte-for-byte when both of its files exist, its key matches, it chains to
// the CA, it has not expired, it names the right principal and a server leaf
// already covers every requested host. Re-running therefore never invalidates
// certificates other processes already loaded. [Options.Force] regenerates
// the CA and every leaf.
//
// # Trust model
//
// The dev CA is the only trust anchor. [ServerConfig] and [ClientConfig] load
// it from a file and never consult the system roots, so a certificate from a
// public CA cannot impersonate a Remit principal, and a certificate from
// another Remit dev CA (another developer's certs/ directory) is rejected.
// The CA has MaxPathLen 0: it signs leaves only, never intermediates. All
// connections use TLS 1.3 and ALPN "h2".
//
// Gateway and banks authenticate each other with mutual TLS. The identity of a
// peer is the single URI SAN in its certificate:
//
//	remit://gateway          the gateway (server and client certificates)
//	remit://bank/<name>      bank <name>, a valid bank name (internal/names)
//
// The subject CN repeats the name for humans but is never used for
// authorization. [PeerIdentity] reads the identity only from the leaf of the
// chain that crypto/tls verified (ConnectionState.VerifiedChains[0][0]); it
// returns false when no chain was verified, e.g. with tls.RequestClientCert or
// tls.RequireAnyClientCert, because PeerCertificates alone prove nothing.
// Servers that authorize banks should use tls.RequireAndVerifyClientCert.
//
// The CA key lives next to the certificates and anyone holding it can mint
// any identity: this layout is for development and tests only, and the keys
// must never be committed (certs/.gitignore ignores everything but its README
// and itself).
package pki
