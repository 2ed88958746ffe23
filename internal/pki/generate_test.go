package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/pki"
)

var testBanks = []string{"bank-a", "bank-b", "bank-c"}

// generate runs Generate into a fresh directory with the test banks.
func generate(t *testing.T, opts pki.Options) *pki.Layout {
	t.Helper()
	if opts.Banks == nil {
		opts.Banks = testBanks
	}
	l, err := pki.Generate(filepath.Join(t.TempDir(), "certs"), opts)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return l
}

type leaf struct {
	name   string // principal name
	id     pki.Identity
	server bool
	cert   string
	key    string
}

// leaves lists every leaf the layout should contain.
func leaves(l *pki.Layout, banks []string) []leaf {
	var out []leaf
	add := func(id pki.Identity) {
		c, k := l.Server(id.Name)
		out = append(out, leaf{id.Name, id, true, c, k})
		c, k = l.Client(id.Name)
		out = append(out, leaf{id.Name + "-client", id, false, c, k})
	}
	add(pki.GatewayIdentity())
	for _, b := range banks {
		add(pki.BankIdentity(b))
	}
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: want exactly one CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func readKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("%s: want a PKCS#8 PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("%s: got %T, want an ECDSA P-256 key", path, k)
	}
	return ek
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// snapshot returns the contents of every file in dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = data
	}
	return m
}

func TestGenerateFilesAndModes(t *testing.T) {
	l := generate(t, pki.Options{})
	if got := mode(t, l.Dir); got != 0o700 {
		t.Errorf("dir mode = %v, want 0700", got)
	}
	want := map[string]fs.FileMode{
		"ca.pem":     0o644,
		"ca-key.pem": 0o600,
	}
	for _, lf := range leaves(l, testBanks) {
		want[filepath.Base(lf.cert)] = 0o644
		want[filepath.Base(lf.key)] = 0o600
	}
	for _, name := range []string{
		"gateway.pem", "gateway-key.pem", "gateway-client.pem", "gateway-client-key.pem",
		"bank-b.pem", "bank-b-key.pem", "bank-b-client.pem", "bank-b-client-key.pem",
	} {
		if _, ok := want[name]; !ok {
			t.Errorf("layout does not name %s", name)
		}
	}
	got := slices.Sorted(maps.Keys(snapshot(t, l.Dir)))
	if wantNames := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNames) {
		t.Fatalf("files = %v, want %v", got, wantNames)
	}
	for name, m := range want {
		t.Run(name, func(t *testing.T) {
			if got := mode(t, filepath.Join(l.Dir, name)); got != m {
				t.Errorf("mode = %v, want %v", got, m)
			}
		})
	}
	if len(l.Written) != len(want) {
		t.Errorf("Written has %d files, want %d", len(l.Written), len(want))
	}
	if l.CA != filepath.Join(l.Dir, "ca.pem") || l.CAKey != filepath.Join(l.Dir, "ca-key.pem") {
		t.Errorf("CA paths = %s, %s", l.CA, l.CAKey)
	}
}

// TestGenerateCA runs in a synctest bubble so that the certificate's times
// can be compared with the exact instant it was issued.
func TestGenerateCA(t *testing.T) { synctest.Test(t, testGenerateCA) }

func testGenerateCA(t *testing.T) {
	now := time.Now()
	l := generate(t, pki.Options{})
	ca := readCert(t, l.CA)
	key := readKey(t, l.CAKey)
	if !key.PublicKey.Equal(ca.PublicKey) {
		t.Error("ca-key.pem does not match ca.pem")
	}
	if ca.Subject.CommonName != "Remit Dev CA" {
		t.Errorf("CN = %q", ca.Subject.CommonName)
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v MaxPathLen=%d MaxPathLenZero=%v",
			ca.IsCA, ca.BasicConstraintsValid, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; ca.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", ca.KeyUsage, want)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if !ca.NotBefore.After(now.Add(-time.Hour)) || ca.NotBefore.After(now) {
		t.Errorf("NotBefore = %v, want shortly before %v", ca.NotBefore, now)
	}
	if want := now.Add(10 * 365 * 24 * time.Hour); !ca.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", ca.NotAfter, want)
	}
}

func TestGenerateLeaves(t *testing.T) {
	// Issued in a synctest bubble, whose clock stands still while Generate
	// computes, so validity can be checked against the exact issue time;
	// the subtests (not allowed in a bubble) run outside it.
	dir := filepath.Join(t.TempDir(), "certs")
	var (
		l   *pki.Layout
		now time.Time
	)
	synctest.Test(t, func(t *testing.T) {
		now = time.Now()
		var err error
		if l, err = pki.Generate(dir, pki.Options{Banks: testBanks}); err != nil {
			t.Fatalf("Generate: %v", err)
		}
	})
	if l == nil {
		t.FailNow()
	}
	ca := readCert(t, l.CA)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	serials := map[string]string{ca.SerialNumber.String(): "ca"}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)

	for _, lf := range leaves(l, testBanks) {
		t.Run(lf.name, func(t *testing.T) {
			c := readCert(t, lf.cert)
			k := readKey(t, lf.key)
			if !k.PublicKey.Equal(c.PublicKey) {
				t.Error("key does not match certificate")
			}
			usage, wrong := x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth
			if lf.server {
				usage, wrong = wrong, usage
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{usage}) {
				t.Errorf("ExtKeyUsage = %v, want [%v]", c.ExtKeyUsage, usage)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for %v: %v", usage, err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{wrong}}); err == nil {
				t.Errorf("verify for %v succeeded, want failure", wrong)
			}
			if c.IsCA {
				t.Error("leaf is a CA")
			}
			if c.Subject.CommonName != lf.id.Name {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, lf.id.Name)
			}
			if got, ok := pki.IdentityFromCert(c); !ok || got != lf.id {
				t.Errorf("IdentityFromCert = %v, %v; want %v", got, ok, lf.id)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != lf.id.String() {
				t.Errorf("URIs = %v, want [%s]", c.URIs, lf.id)
			}
			if want := now.Add(365 * 24 * time.Hour); !c.NotAfter.Equal(want.Truncate(time.Second)) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.Cmp(limit) >= 0 {
				t.Errorf("serial %v is not a positive 128-bit number", c.SerialNumber)
			}
			if other, dup := serials[c.SerialNumber.String()]; dup {
				t.Errorf("serial shared with %s", other)
			}
			serials[c.SerialNumber.String()] = lf.name
		})
	}
}

func TestGenerateServerSANs(t *testing.T) {
	hosts := []string{"remit.test", "10.1.2.3", "[fd00::1]", "Gateway.Internal."}
	l := generate(t, pki.Options{Hosts: hosts})
	wantDNS := []string{"localhost", "remit.test", "gateway.internal"}
	wantIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.1.2.3"), net.ParseIP("fd00::1")}

	for _, lf := range leaves(l, testBanks) {
		t.Run(lf.name, func(t *testing.T) {
			c := readCert(t, lf.cert)
			if !lf.server {
				if len(c.DNSNames)+len(c.IPAddresses) != 0 {
					t.Errorf("client cert has DNS/IP SANs %v %v", c.DNSNames, c.IPAddresses)
				}
				return
			}
			for _, d := range append(wantDNS, lf.id.Name) {
				if err := c.VerifyHostname(d); err != nil {
					t.Errorf("DNS %s: %v", d, err)
				}
			}
			for _, ip := range wantIPs {
				if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
					t.Errorf("IP SANs %v lack %v", c.IPAddresses, ip)
				}
				if err := c.VerifyHostname(ip.String()); err != nil {
					t.Errorf("IP %s: %v", ip, err)
				}
			}
			if err := c.VerifyHostname("example.com"); err == nil {
				t.Error("cert unexpectedly valid for example.com")
			}
		})
	}
}

func TestGenerateIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	opts := pki.Options{Banks: testBanks, Hosts: []string{"remit.test"}}
	l, err := pki.Generate(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	// Same options: nothing changes.
	l2, err := pki.Generate(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Written) != 0 {
		t.Errorf("second run wrote %v", l2.Written)
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("second run changed files")
	}

	// Loosened modes are tightened again without rewriting.
	gwCert, gwKey := l.Server("gateway")
	if err := os.Chmod(gwKey, 0o644); err != nil {
		t.Fatal(err)
	}
	// A missing leaf and a new bank are issued by the same CA; everything
	// else is kept byte for byte.
	bCert, bKey := l.Client("bank-b")
	if err := os.Remove(bCert); err != nil {
		t.Fatal(err)
	}
	l3, err := pki.Generate(dir, pki.Options{Banks: append(testBanks, "bank-d"), Hosts: opts.Hosts})
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, gwKey); got != 0o600 {
		t.Errorf("%s mode = %v after re-run, want 0600", gwKey, got)
	}
	dCert, dKey := l3.Server("bank-d")
	dcCert, dcKey := l3.Client("bank-d")
	wantWritten := []string{bKey, bCert, dKey, dCert, dcKey, dcCert}
	if !slices.Equal(l3.Written, wantWritten) {
		t.Errorf("Written = %v, want %v", l3.Written, wantWritten)
	}
	after := snapshot(t, dir)
	for name, data := range before {
		if filepath.Join(dir, name) == bCert || filepath.Join(dir, name) == bKey {
			continue
		}
		if !bytes.Equal(after[name], data) {
			t.Errorf("%s changed", name)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, l.CA))
	for _, p := range []string{bCert, dCert, dcCert, gwCert} {
		if _, err := readCert(t, p).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not verify against the original CA: %v", p, err)
		}
	}

	// A new host reissues only the server certificates.
	before = snapshot(t, dir)
	l4, err := pki.Generate(dir, pki.Options{Banks: testBanks, Hosts: []string{"remit.test", "other.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l4.Written {
		if strings.HasSuffix(p, "-client.pem") || strings.HasSuffix(p, "-client-key.pem") || strings.HasPrefix(filepath.Base(p), "ca") {
			t.Errorf("new host rewrote %s", p)
		}
	}
	if len(l4.Written) != 2*(1+len(testBanks)) {
		t.Errorf("Written = %v, want the %d server files", l4.Written, 2*(1+len(testBanks)))
	}
	if err := readCert(t, gwCert).VerifyHostname("other.test"); err != nil {
		t.Error(err)
	}
	if !bytes.Equal(before["ca.pem"], snapshot(t, dir)["ca.pem"]) {
		t.Error("CA changed")
	}

	// Force replaces everything, including the CA.
	before = snapshot(t, dir)
	if _, err := pki.Generate(dir, pki.Options{Banks: testBanks, Force: true}); err != nil {
		t.Fatal(err)
	}
	after = snapshot(t, dir)
	for _, name := range []string{"ca.pem", "ca-key.pem", "gateway.pem", "bank-a-client-key.pem"} {
		if bytes.Equal(before[name], after[name]) {
			t.Errorf("Force kept %s", name)
		}
	}
}

func TestGenerateReissuesLeavesOfAnotherCA(t *testing.T) {
	a := generate(t, pki.Options{})
	b := generate(t, pki.Options{})
	// Put b's gateway certificate into a's directory: it does not chain to
	// a's CA, so Generate must replace it.
	aCert, aKey := a.Server("gateway")
	bCert, bKey := b.Server("gateway")
	for src, dst := range map[string]string{bCert: aCert, bKey: aKey} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := pki.Generate(a.Dir, pki.Options{Banks: testBanks})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Written, []string{aKey, aCert}) {
		t.Errorf("Written = %v", l.Written)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, a.CA))
	if _, err := readCert(t, aCert).Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Error(err)
	}
}

func TestGenerateValidity(t *testing.T) {
	// Each case runs in a synctest bubble, whose clock starts at this instant
	// and stands still while Generate computes.
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		validity time.Duration
		want     time.Time
	}{
		{"default", 0, now.Add(365 * 24 * time.Hour)},
		{"custom", 48 * time.Hour, now.Add(48 * time.Hour)},
		{"capped by CA", 20 * 365 * 24 * time.Hour, now.Add(10 * 365 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				if !time.Now().Equal(now) {
					t.Fatalf("bubble clock starts at %v, want %v", time.Now(), now)
				}
				l := generate(t, pki.Options{Validity: tt.validity})
				for _, lf := range leaves(l, testBanks) {
					if got := readCert(t, lf.cert).NotAfter; !got.Equal(tt.want) {
						t.Errorf("%s NotAfter = %v, want %v", lf.name, got, tt.want)
					}
				}
			})
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	tests := []struct {
		name string
		opts pki.Options
	}{
		{"empty bank", pki.Options{Banks: []string{""}}},
		{"upper-case bank", pki.Options{Banks: []string{"Bank-A"}}},
		{"leading hyphen", pki.Options{Banks: []string{"-bank"}}},
		{"slash", pki.Options{Banks: []string{"bank/a"}}},
		{"too long", pki.Options{Banks: []string{strings.Repeat("a", 64)}}},
		{"collides with CA", pki.Options{Banks: []string{"ca"}}},
		{"collides with gateway", pki.Options{Banks: []string{"gateway"}}},
		{"key suffix", pki.Options{Banks: []string{"bank-key"}}},
		{"client suffix", pki.Options{Banks: []string{"bank-client"}}},
		{"host with port", pki.Options{Hosts: []string{"remit.test:443"}}},
		{"host with scheme", pki.Options{Hosts: []string{"https://remit.test"}}},
		{"empty host", pki.Options{Hosts: []string{""}}},
		{"negative validity", pki.Options{Validity: -time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if _, err := pki.Generate(dir, tt.opts); err == nil {
				t.Fatal("Generate succeeded, want error")
			}
			if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
				t.Error("Generate wrote files despite invalid options")
			}
		})
	}
}

func TestGenerateBrokenCA(t *testing.T) {
	tests := []struct {
		name    string
		breakCA func(t *testing.T, l *pki.Layout)
	}{
		{"missing key", func(t *testing.T, l *pki.Layout) { t.Helper(); remove(t, l.CAKey) }},
		{"missing cert", func(t *testing.T, l *pki.Layout) { t.Helper(); remove(t, l.CA) }},
		{"mismatched key", func(t *testing.T, l *pki.Layout) {
			t.Helper()
			_, k := l.Server("gateway")
			copyFile(t, k, l.CAKey)
		}},
		{"not a CA", func(t *testing.T, l *pki.Layout) {
			t.Helper()
			c, k := l.Server("gateway")
			copyFile(t, c, l.CA)
			copyFile(t, k, l.CAKey)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := generate(t, pki.Options{})
			tt.breakCA(t, l)
			before := snapshot(t, l.Dir)
			if _, err := pki.Generate(l.Dir, pki.Options{Banks: testBanks}); err == nil {
				t.Fatal("Generate succeeded, want error")
			} else if !strings.Contains(err.Error(), "ca") {
				t.Errorf("error %q does not name the CA files", err)
			}
			if after := snapshot(t, l.Dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Error("failed Generate changed files")
			}
			if _, err := pki.Generate(l.Dir, pki.Options{Banks: testBanks, Force: true}); err != nil {
				t.Errorf("Force did not recover: %v", err)
			}
		})
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
