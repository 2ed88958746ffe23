package pki_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/pki"
)

type handshakeResult struct {
	serverErr, clientErr error
	server, client       tls.ConnectionState
}

// handshake runs a TLS handshake over a 127.0.0.1 listener. The server sends
// one byte after a successful handshake so the client observes TLS 1.3
// client-certificate rejections (which arrive after its own handshake
// returned).
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config, serverName string) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() //nolint:errcheck // test listener; its close error says nothing about the handshake
	deadline := time.Now().Add(10 * time.Second)

	type srv struct {
		err error
		cs  tls.ConnectionState
	}
	done := make(chan srv, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- srv{err: err}
			return
		}
		defer raw.Close() //nolint:errcheck // the handshake's and Write's errors are the result
		if err := raw.SetDeadline(deadline); err != nil {
			done <- srv{err: err}
			return
		}
		c := tls.Server(raw, serverCfg)
		if err := c.Handshake(); err != nil {
			done <- srv{err: err}
			return
		}
		_, err = c.Write([]byte{1})
		done <- srv{err: err, cs: c.ConnectionState()}
	}()

	var res handshakeResult
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close() //nolint:errcheck // the handshake's and Read's errors are the result
	if err := raw.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	cfg := clientCfg.Clone()
	cfg.ServerName = serverName
	c := tls.Client(raw, cfg)
	res.clientErr = c.Handshake()
	if res.clientErr == nil {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			res.clientErr = err
		}
		res.client = c.ConnectionState()
	}
	_ = raw.Close() // unblocks the server side; the result is already read
	s := <-done
	res.serverErr, res.server = s.err, s.cs
	return res
}

func mustServer(t *testing.T, l *pki.Layout, name string, auth tls.ClientAuthType) *tls.Config {
	t.Helper()
	cert, key := l.Server(name)
	cfg, err := pki.ServerConfig(cert, key, l.CA, auth)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClient(t *testing.T, ca string, l *pki.Layout, name string) *tls.Config {
	t.Helper()
	var cert, key string
	if name != "" {
		cert, key = l.Client(name)
	}
	cfg, err := pki.ClientConfig(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestHandshake(t *testing.T) {
	l := generate(t, pki.Options{})
	other := generate(t, pki.Options{}) // a second, unrelated dev CA

	tests := []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		serverName string
		rejectedBy string // "server" or "client"; empty means success
		// Expected identities; the zero Identity means "none".
		wantClientID pki.Identity // as seen by the server
		wantServerID pki.Identity // as seen by the client
	}{
		{
			name:         "bank calls gateway",
			server:       mustServer(t, l, "gateway", tls.RequireAndVerifyClientCert),
			client:       mustClient(t, l.CA, l, "bank-a"),
			serverName:   "localhost",
			wantClientID: pki.BankIdentity("bank-a"),
			wantServerID: pki.GatewayIdentity(),
		},
		{
			name:         "gateway calls bank by IP",
			server:       mustServer(t, l, "bank-c", tls.RequireAndVerifyClientCert),
			client:       mustClient(t, l.CA, l, "gateway"),
			serverName:   "127.0.0.1",
			wantClientID: pki.GatewayIdentity(),
			wantServerID: pki.BankIdentity("bank-c"),
		},
		{
			name:         "gateway calls bank by name",
			server:       mustServer(t, l, "bank-b", tls.RequireAndVerifyClientCert),
			client:       mustClient(t, l.CA, l, "gateway"),
			serverName:   "bank-b",
			wantClientID: pki.GatewayIdentity(),
			wantServerID: pki.BankIdentity("bank-b"),
		},
		{
			name:       "client cert from another CA",
			server:     mustServer(t, l, "gateway", tls.RequireAndVerifyClientCert),
			client:     mustClient(t, l.CA, other, "bank-a"),
			serverName: "localhost",
			rejectedBy: "server",
		},
		{
			name:       "client without cert",
			server:     mustServer(t, l, "gateway", tls.RequireAndVerifyClientCert),
			client:     mustClient(t, l.CA, l, ""),
			serverName: "localhost",
			rejectedBy: "server",
		},
		{
			name:       "server cert from another CA",
			server:     mustServer(t, other, "gateway", tls.RequireAndVerifyClientCert),
			client:     mustClient(t, l.CA, l, "bank-a"),
			serverName: "localhost",
			rejectedBy: "client",
		},
		{
			name:       "wrong server name",
			server:     mustServer(t, l, "gateway", tls.NoClientCert),
			client:     mustClient(t, l.CA, l, ""),
			serverName: "example.com",
			rejectedBy: "client",
		},
		{
			name:         "optional client cert not given",
			server:       mustServer(t, l, "gateway", tls.VerifyClientCertIfGiven),
			client:       mustClient(t, l.CA, l, ""),
			serverName:   "localhost",
			wantServerID: pki.GatewayIdentity(),
		},
		{
			// The handshake succeeds because the server does not verify,
			// but PeerIdentity must not trust the unverified certificate.
			name:         "unverified client cert is no identity",
			server:       mustServer(t, l, "gateway", tls.RequireAnyClientCert),
			client:       mustClient(t, l.CA, other, "bank-a"),
			serverName:   "localhost",
			wantServerID: pki.GatewayIdentity(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, tt.client, tt.serverName)
			if tt.rejectedBy != "" {
				t.Logf("server: %v; client: %v", res.serverErr, res.clientErr)
				if res.serverErr == nil || res.clientErr == nil {
					t.Fatalf("server: %v; client: %v; want both to fail", res.serverErr, res.clientErr)
				}
				// The rejecting side reports a verification failure,
				// the other side the alert it received.
				rejecter, peer := res.serverErr, res.clientErr
				if tt.rejectedBy == "client" {
					rejecter, peer = peer, rejecter
				}
				if strings.Contains(rejecter.Error(), "remote error") || !strings.Contains(peer.Error(), "remote error") {
					t.Errorf("want the %s to reject the handshake", tt.rejectedBy)
				}
				return
			}
			if res.serverErr != nil || res.clientErr != nil {
				t.Fatalf("handshake failed: server: %v; client: %v", res.serverErr, res.clientErr)
			}
			for _, cs := range []tls.ConnectionState{res.server, res.client} {
				if cs.Version != tls.VersionTLS13 {
					t.Errorf("version = %x, want TLS 1.3", cs.Version)
				}
				if cs.NegotiatedProtocol != "h2" {
					t.Errorf("ALPN = %q, want h2", cs.NegotiatedProtocol)
				}
			}
			got, ok := pki.PeerIdentity(&res.server)
			if want := tt.wantClientID; ok != (want != pki.Identity{}) || got != want {
				t.Errorf("server sees %v, %v; want %v", got, ok, want)
			}
			got, ok = pki.PeerIdentity(&res.client)
			if want := tt.wantServerID; ok != (want != pki.Identity{}) || got != want {
				t.Errorf("client sees %v, %v; want %v", got, ok, want)
			}
		})
	}
}

func TestConfigFields(t *testing.T) {
	l := generate(t, pki.Options{})
	for _, auth := range []tls.ClientAuthType{tls.NoClientCert, tls.RequireAndVerifyClientCert} {
		cfg := mustServer(t, l, "gateway", auth)
		if cfg.MinVersion != tls.VersionTLS13 || !slices.Equal(cfg.NextProtos, []string{"h2"}) ||
			cfg.ClientAuth != auth || len(cfg.Certificates) != 1 {
			t.Errorf("ServerConfig(%v) = %+v", auth, cfg)
		}
		if (cfg.ClientCAs != nil) != (auth != tls.NoClientCert) {
			t.Errorf("ServerConfig(%v): ClientCAs = %v", auth, cfg.ClientCAs)
		}
	}
	for _, name := range []string{"", "bank-a"} {
		cfg := mustClient(t, l.CA, l, name)
		if cfg.MinVersion != tls.VersionTLS13 || !slices.Equal(cfg.NextProtos, []string{"h2"}) || cfg.RootCAs == nil {
			t.Errorf("ClientConfig(%q) = %+v", name, cfg)
		}
		want := 0
		if name != "" {
			want = 1
		}
		if len(cfg.Certificates) != want {
			t.Errorf("ClientConfig(%q) has %d certificates, want %d", name, len(cfg.Certificates), want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	l := generate(t, pki.Options{})
	gwCert, gwKey := l.Server("gateway")
	gcCert, gcKey := l.Client("gateway")
	bKey := func() string { _, k := l.Server("bank-a"); return k }()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		build    func() (*tls.Config, error)
		contains []string
	}{
		{"server cert missing", func() (*tls.Config, error) {
			return pki.ServerConfig(missing, gwKey, l.CA, tls.NoClientCert)
		}, []string{missing, "remit certs", "remit init"}},
		{"server key missing", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, missing, l.CA, tls.NoClientCert)
		}, []string{missing, "remit certs"}},
		{"server CA missing", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, gwKey, missing, tls.RequireAndVerifyClientCert)
		}, []string{missing, "remit certs"}},
		{"server CA not given", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, gwKey, "", tls.RequireAndVerifyClientCert)
		}, []string{"CA", "remit certs"}},
		{"server CA garbage", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, gwKey, garbage, tls.RequireAndVerifyClientCert)
		}, []string{garbage}},
		{"server key mismatch", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, bKey, l.CA, tls.NoClientCert)
		}, []string{gwCert, bKey}},
		{"client cert as server cert", func() (*tls.Config, error) {
			return pki.ServerConfig(gcCert, gcKey, l.CA, tls.NoClientCert)
		}, []string{gcCert, "serverAuth"}},
		{"invalid client auth", func() (*tls.Config, error) {
			return pki.ServerConfig(gwCert, gwKey, l.CA, tls.ClientAuthType(42))
		}, []string{"client auth"}},
		{"client CA not given", func() (*tls.Config, error) {
			return pki.ClientConfig("", "", "")
		}, []string{"CA", "remit certs"}},
		{"client CA missing", func() (*tls.Config, error) {
			return pki.ClientConfig(missing, "", "")
		}, []string{missing, "remit certs"}},
		{"client CA garbage", func() (*tls.Config, error) {
			return pki.ClientConfig(garbage, "", "")
		}, []string{garbage, "remit certs"}},
		{"client cert missing", func() (*tls.Config, error) {
			return pki.ClientConfig(l.CA, missing, gcKey)
		}, []string{missing, "remit certs"}},
		{"client cert without key", func() (*tls.Config, error) {
			return pki.ClientConfig(l.CA, gcCert, "")
		}, []string{gcCert}},
		{"client key without cert", func() (*tls.Config, error) {
			return pki.ClientConfig(l.CA, "", gcKey)
		}, []string{gcKey}},
		{"server cert as client cert", func() (*tls.Config, error) {
			return pki.ClientConfig(l.CA, gwCert, gwKey)
		}, []string{gwCert, "clientAuth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.build()
			if err == nil {
				t.Fatalf("got config %+v, want error", cfg)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestRequirePeerPinsTheServerIdentity(t *testing.T) {
	l := generate(t, pki.Options{Banks: []string{"bank-a", "bank-b"}})
	client := mustClient(t, l.CA, l, "gateway")
	cases := []struct {
		name   string
		server string
		want   pki.Identity
		ok     bool
	}{
		{"the bank meant", "bank-a", pki.BankIdentity("bank-a"), true},
		{"another bank at the same address", "bank-b", pki.BankIdentity("bank-a"), false},
		{"the gateway instead of a bank", "gateway", pki.BankIdentity("bank-a"), false},
		{"the gateway meant", "gateway", pki.GatewayIdentity(), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := handshake(t, mustServer(t, l, tc.server, tls.RequireAndVerifyClientCert),
				pki.RequirePeer(client, tc.want), "127.0.0.1")
			if (res.clientErr == nil) != tc.ok {
				t.Fatalf("client error = %v, want success %v", res.clientErr, tc.ok)
			}
		})
	}
}
