package bank_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/logging/logtest"
	"github.com/remitpay/remit/services/bank"
)

func TestRegistrar(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gw := &fakeGateway{down: true}
		logs := &logtest.Buffer{}
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&bank.Registrar{
				Coordinator: gw, Name: "bank-a", URL: "https://127.0.0.1:8444",
				Interval: 10 * time.Second, Logger: logs.JSONLogger(),
			}).Run(ctx)
		}()
		registers := func() int {
			gw.mu.Lock()
			defer gw.mu.Unlock()
			return gw.registers
		}

		// The gateway is not up yet: retries back off (1s, 2s, 4s, ... with
		// jitter, capped at 30s) and the loss is reported once.
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if n := registers(); n < 5 || n > 16 {
			t.Errorf("%d attempts in 2 minutes of outage, want 5..16 (exponential backoff)", n)
		}
		if n := len(logs.WithMsg(t, "gateway unreachable; retrying registration with backoff")); n != 1 {
			t.Errorf("warned %d times about the outage, want once", n)
		}

		// The gateway comes up: registered within the capped backoff.
		gw.set(func(g *fakeGateway) { g.down = false; g.instance = "gw-1" })
		time.Sleep(bank.MaxRegisterBackoff)
		synctest.Wait()
		if n := len(logs.WithMsg(t, "registered with gateway")); n != 1 {
			t.Fatalf("logged registration %d times, want once", n)
		}

		// Heartbeat every interval, logged only when something changed.
		before := registers()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := registers() - before; n != 6 {
			t.Errorf("%d heartbeats in a minute at a 10s interval, want 6", n)
		}
		if n := len(logs.WithMsg(t, "registered with gateway")); n != 1 {
			t.Errorf("heartbeats logged %d registrations, want still 1", n)
		}

		// The gateway restarts: a new instance id is noticed within one interval.
		gw.set(func(g *fakeGateway) { g.instance = "gw-2" })
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(logs.WithMsg(t, "registered with gateway")); n != 2 {
			t.Errorf("logged registration %d times after a gateway restart, want 2", n)
		}

		stop()
		<-done
	})
}
