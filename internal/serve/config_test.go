package serve

import (
	"crypto/tls"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{ReadTimeout: -1}.withDefaults()
	// Logger has no default: it is required (validate, ErrNoLogger).
	if c.Logger != nil {
		t.Error("withDefaults made up a logger")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ReadHeaderTimeout", c.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", c.ReadTimeout, time.Duration(0)},
		{"IdleTimeout", c.IdleTimeout, 120 * time.Second},
		{"ShutdownTimeout", c.ShutdownTimeout, 10 * time.Second},
		{"MaxHeaderBytes", c.MaxHeaderBytes, 64 << 10},
		{"MaxConcurrentStreams", c.MaxConcurrentStreams, uint32(250)},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(2 << 20)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	custom := Config{ReadHeaderTimeout: time.Second, ReadTimeout: time.Minute, MaxConcurrentStreams: 10}.withDefaults()
	if custom.ReadHeaderTimeout != time.Second || custom.ReadTimeout != time.Minute || custom.MaxConcurrentStreams != 10 {
		t.Errorf("explicit values overridden: %+v", custom)
	}
}

func TestNewHTTP2ClientSettings(t *testing.T) {
	for _, conf := range []*tls.Config{nil, {MinVersion: tls.VersionTLS12}} {
		rt, ok := NewHTTP2Client(conf).Transport.(httpsOnly)
		if !ok {
			t.Fatalf("transport is %T, want httpsOnly", NewHTTP2Client(conf).Transport)
		}
		tr := rt.Transport
		if tr.TLSClientConfig.MinVersion != tls.VersionTLS13 {
			t.Errorf("MinVersion = %x, want TLS 1.3", tr.TLSClientConfig.MinVersion)
		}
		if p := tr.Protocols; p == nil || !p.HTTP2() || p.HTTP1() || p.UnencryptedHTTP2() {
			t.Errorf("Protocols = %v, want HTTP/2 over TLS only", p)
		}
		if h := tr.HTTP2; h == nil || h.SendPingTimeout != 30*time.Second || h.PingTimeout != 15*time.Second {
			t.Errorf("HTTP2 = %+v, want SendPingTimeout 30s, PingTimeout 15s", h)
		}
		if tr.IdleConnTimeout != 90*time.Second {
			t.Errorf("IdleConnTimeout = %v, want 90s", tr.IdleConnTimeout)
		}
		if tr.Proxy != nil {
			t.Error("the client uses a proxy")
		}
		if conf != nil && conf.MinVersion != tls.VersionTLS12 {
			t.Error("caller's tls.Config was modified")
		}
	}
}
