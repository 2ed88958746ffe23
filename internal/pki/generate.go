package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/names"
)

// Default validity periods.
const (
	DefaultLeafValidity = 365 * 24 * time.Hour
	CAValidity          = 10 * 365 * 24 * time.Hour
)

// CACommonName is the subject common name of the dev CA.
const CACommonName = "Remit Dev CA"

// File modes of generated files.
const (
	dirMode  fs.FileMode = 0o700
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
)

// backdate is subtracted from NotBefore to tolerate small clock skew between
// the machine that generates the certificates and the ones that use them.
const backdate = 5 * time.Minute

// Options controls [Generate].
type Options struct {
	// Banks are the bank names to issue server and client certificates for,
	// e.g. "bank-a". Each must be a valid bank name ([names.Bank]), must not be
	// "ca" or "gateway" and must not end in "-key" or "-client" (those would
	// collide with other files). Duplicates are ignored.
	Banks []string
	// Hosts are extra DNS names or IP addresses added to every server
	// certificate, besides localhost, 127.0.0.1, ::1 and the principal's name.
	Hosts []string
	// Validity is the lifetime of leaf certificates; zero means one year.
	// Leaves never outlive the CA, which is valid for ten years.
	Validity time.Duration
	// Force regenerates the CA and every leaf even if they exist.
	Force bool
}

// Layout names the files of a certificate directory.
type Layout struct {
	Dir   string
	CA    string // ca.pem
	CAKey string // ca-key.pem
	// Banks are the bank names Generate issued or kept certificates for
	// (empty for a Layout from NewLayout).
	Banks []string
	// Written lists the files Generate wrote in this run, in order; files it
	// kept are not listed.
	Written []string
}

// NewLayout returns the layout of dir without touching the file system, for
// processes that only load certificates.
func NewLayout(dir string) *Layout {
	return &Layout{
		Dir:   dir,
		CA:    filepath.Join(dir, "ca.pem"),
		CAKey: filepath.Join(dir, "ca-key.pem"),
	}
}

// Server returns the server certificate and key paths of principal name
// ("gateway" or a bank name).
func (l *Layout) Server(name string) (cert, key string) {
	return filepath.Join(l.Dir, name+".pem"), filepath.Join(l.Dir, name+"-key.pem")
}

// Client returns the client certificate and key paths of principal name
// ("gateway" or a bank name).
func (l *Layout) Client(name string) (cert, key string) {
	return filepath.Join(l.Dir, name+"-client.pem"), filepath.Join(l.Dir, name+"-client-key.pem")
}

// leafSpec describes one leaf certificate to issue.
type leafSpec struct {
	id       Identity
	server   bool
	certPath string
	keyPath  string
}

// Generate writes a dev CA and the gateway and bank leaf certificates into dir
// (see the package documentation for the layout). It reuses an existing CA and
// existing valid leaves unless opts.Force is set.
func Generate(dir string, opts Options) (*Layout, error) {
	if dir == "" {
		return nil, errors.New("pki: empty certificate directory")
	}
	banks, err := normalizeBanks(opts.Banks)
	if err != nil {
		return nil, err
	}
	dnsNames, ips, err := normalizeHosts(opts.Hosts)
	if err != nil {
		return nil, err
	}
	if opts.Validity < 0 {
		return nil, fmt.Errorf("pki: negative validity %v", opts.Validity)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	now := time.Now()

	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("pki: create certificate directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("pki: %s is not a directory", dir)
	}

	l := NewLayout(dir)
	l.Banks = banks

	caCert, caKey, err := loadOrCreateCA(l, now, opts.Force)
	if err != nil {
		return nil, err
	}

	specs := make([]leafSpec, 0, 2+2*len(banks))
	add := func(id Identity) {
		c, k := l.Server(id.Name)
		specs = append(specs, leafSpec{id: id, server: true, certPath: c, keyPath: k})
		c, k = l.Client(id.Name)
		specs = append(specs, leafSpec{id: id, server: false, certPath: c, keyPath: k})
	}
	add(GatewayIdentity())
	for _, b := range banks {
		add(BankIdentity(b))
	}

	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	for _, s := range specs {
		wantDNS, wantIPs := serverSANs(s.id, dnsNames, ips)
		if !s.server {
			wantDNS, wantIPs = nil, nil
		}
		if !opts.Force && leafUsable(s, roots, now, wantDNS, wantIPs) {
			if err := fixModes(s.certPath, s.keyPath); err != nil {
				return nil, err
			}
			continue
		}
		certPEM, keyPEM, err := issueLeaf(s, caCert, caKey, now, validity, wantDNS, wantIPs)
		if err != nil {
			return nil, err
		}
		if err := writeFile(s.keyPath, keyPEM, keyMode); err != nil {
			return nil, err
		}
		if err := writeFile(s.certPath, certPEM, certMode); err != nil {
			return nil, err
		}
		l.Written = append(l.Written, s.keyPath, s.certPath)
	}
	return l, nil
}

// reservedNames would make a bank's files collide with the CA's or the
// gateway's.
var reservedNames = []string{"ca", GatewayName}

func normalizeBanks(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, b := range in {
		if err := names.Bank(b); err != nil {
			return nil, fmt.Errorf("pki: invalid bank name: %w", err)
		}
		if slices.Contains(reservedNames, b) || strings.HasSuffix(b, "-key") || strings.HasSuffix(b, "-client") {
			return nil, fmt.Errorf("pki: bank name %q is reserved: its files would collide with others (avoid \"ca\", \"gateway\" and the suffixes -key and -client)", b)
		}
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out, nil
}

func normalizeHosts(in []string) (dnsNames []string, ips []net.IP, err error) {
	for _, h := range in {
		h = strings.TrimSpace(h)
		if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("pki: invalid host %q: want a DNS name or an IP address (no scheme or port)", h)
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips, nil
}

// validDNSName accepts lower-case host names, optionally with a leading "*."
// wildcard label.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	h = strings.TrimPrefix(h, "*.")
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// serverSANs returns the DNS and IP SANs of the server certificate of id.
func serverSANs(id Identity, extraDNS []string, extraIPs []net.IP) ([]string, []net.IP) {
	dnsNames := []string{"localhost"}
	if id.Name != "localhost" {
		dnsNames = append(dnsNames, id.Name)
	}
	for _, d := range extraDNS {
		if !slices.Contains(dnsNames, d) {
			dnsNames = append(dnsNames, d)
		}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, ip := range extraIPs {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return dnsNames, ips
}

func loadOrCreateCA(l *Layout, now time.Time, force bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if !force {
		certExists, err := exists(l.CA)
		if err != nil {
			return nil, nil, err
		}
		keyExists, err := exists(l.CAKey)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case certExists && keyExists:
			cert, key, err := loadCA(l, now)
			if err != nil {
				return nil, nil, err
			}
			if err := fixModes(l.CA, l.CAKey); err != nil {
				return nil, nil, err
			}
			return cert, key, nil
		case certExists:
			return nil, nil, fmt.Errorf("pki: %s exists but %s is missing: restore it, or %s", l.CA, l.CAKey, startOver(l))
		case keyExists:
			return nil, nil, fmt.Errorf("pki: %s exists but %s is missing: restore it, or %s", l.CAKey, l.CA, startOver(l))
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"Remit"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFile(l.CAKey, keyPEM, keyMode); err != nil {
		return nil, nil, err
	}
	if err := writeFile(l.CA, encodeCert(der), certMode); err != nil {
		return nil, nil, err
	}
	l.Written = append(l.Written, l.CAKey, l.CA)
	return cert, key, nil
}

func loadCA(l *Layout, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := readCert(l.CA)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(l.CAKey)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("pki: %s does not match %s: restore the matching pair, or %s", l.CAKey, l.CA, startOver(l))
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("pki: %s is not a CA certificate: %s", l.CA, startOver(l))
	}
	if now.After(cert.NotAfter) {
		return nil, nil, fmt.Errorf("pki: CA %s expired at %s: %s", l.CA, cert.NotAfter.Format(time.RFC3339), startOver(l))
	}
	return cert, key, nil
}

// startOver tells the user how to replace a broken CA.
func startOver(l *Layout) string {
	return fmt.Sprintf("regenerate everything with Options.Force, or remove %s and %s and run `remit certs` again (every certificate the old CA issued stops working)", l.CA, l.CAKey)
}

// leafUsable reports whether the existing files of s can be kept.
func leafUsable(s leafSpec, roots *x509.CertPool, now time.Time, wantDNS []string, wantIPs []net.IP) bool {
	cert, err := readCert(s.certPath)
	if err != nil {
		return false
	}
	key, err := readKey(s.keyPath)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return false
	}
	usage := x509.ExtKeyUsageClientAuth
	if s.server {
		usage = x509.ExtKeyUsageServerAuth
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	}); err != nil {
		return false
	}
	if id, ok := IdentityFromCert(cert); !ok || id != s.id {
		return false
	}
	for _, d := range wantDNS {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range wantIPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func issueLeaf(s leafSpec, caCert *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time, validity time.Duration, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key for %s: %w", s.certPath, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	usage := x509.ExtKeyUsageClientAuth
	if s.server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.id.Name, Organization: []string{"Remit"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		URIs:                  []*url.URL{s.id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create certificate %s: %w", s.certPath, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a random positive serial number of at most 128 bits.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("pki: generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// readCert reads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("pki: %s contains no PEM CERTIFICATE block", path)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse %s: %w", path, err)
		}
		return cert, nil
	}
}

// readKey reads an ECDSA private key (PKCS#8 or SEC 1) from a PEM file.
func readKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("pki: %s contains no PEM private key", path)
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pki: parse %s: %w", path, err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("pki: %s holds a %T, want an ECDSA key", path, k)
			}
			return ek, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pki: parse %s: %w", path, err)
			}
			return k, nil
		}
	}
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("pki: %w", err)
	}
}

// fixModes resets the modes of an existing certificate and key.
func fixModes(certPath, keyPath string) error {
	if err := os.Chmod(keyPath, keyMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(certPath, certMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// writeFile atomically replaces path with data. The temporary file is created
// with os.OpenFile and the final mode (0600 for keys), so a key is never
// readable by others, not even briefly.
func writeFile(path string, data []byte, mode fs.FileMode) (err error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp := path + ".tmp-" + hex.EncodeToString(suffix[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer func() {
		if err != nil {
			// The write already failed; this only cleans up, and a close
			// or remove failure would hide the error that matters.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// The umask may have cleared bits; set the exact mode.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
