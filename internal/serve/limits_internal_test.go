package serve

import "testing"

func TestClassOf(t *testing.T) {
	l := newLimits(Config{}.withDefaults())
	for addr, want := range map[string]struct {
		key      string
		loopback bool
	}{
		"127.0.0.1:5000":         {"127.0.0.1", true},
		"127.9.9.9:5000":         {"127.9.9.9", true},
		"[::1]:5000":             {"::/64", true},
		"[::ffff:127.0.0.1]:80":  {"127.0.0.1", true},
		"10.0.0.1:5000":          {"10.0.0.1", false},
		"[2001:db8::1]:5000":     {"2001:db8::/64", false},
		"[2001:db8::2:3:4]:5000": {"2001:db8::/64", false},
	} {
		key, cl := l.classOf(addr)
		if key != want.key || (cl == &l.loopback) != want.loopback {
			t.Errorf("classOf(%q) = %q, loopback %v; want %q, %v", addr, key, cl == &l.loopback, want.key, want.loopback)
		}
	}
	if l.remote.MaxConns != DefaultMaxConnsPerSource || l.loopback.MaxConns != DefaultMaxConnsPerLoopback {
		t.Errorf("defaults: remote %+v, loopback %+v", l.remote.SourceLimits, l.loopback.SourceLimits)
	}
}
