package serve

import (
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{ReadTimeout: -1}.withDefaults()
	if c.Logger == nil {
		t.Error("no default logger")
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
