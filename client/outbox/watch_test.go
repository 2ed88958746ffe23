package outbox_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/client/outbox"
)

func TestFlushWatchBacksOffThenFlushes(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		o, err := outbox.Open(t.Context(), dir, outbox.Options{ClientID: "alice", GatewayURL: "https://gw"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := o.Close(); err != nil {
				t.Error(err)
			}
		}()
		ids := enqueue(t, o, 1, 2)

		gw := &fakeGateway{}
		var reports []outbox.FlushReport
		var errs []error
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			done <- o.FlushWatch(ctx, gw, time.Second, func(r outbox.FlushReport, err error) {
				reports, errs = append(reports, r), append(errs, err)
			})
		}()
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("FlushWatch = %v, want nil after cancel", err)
		}

		var gaps []time.Duration
		for i := 1; i < len(gw.checks); i++ {
			gaps = append(gaps, gw.checks[i].Sub(gw.checks[i-1]))
		}
		// Unreachable three times: the delay doubles from the interval.
		if want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}; !slices.Equal(gaps, want) {
			t.Errorf("health checks %v apart, want %v", gaps, want)
		}
		if !slices.Equal(gw.payments, ids) {
			t.Errorf("sent %v, want %v once the gateway was back", gw.payments, ids)
		}
		if len(errs) != 4 || errs[0] == nil || errs[2] == nil || errs[3] != nil ||
			reports[0].Remaining != 2 || len(reports[3].Outcomes) != 2 || reports[3].Remaining != 0 {
			t.Errorf("notified %v / %+v; want three health failures then one flush of both", errs, reports)
		}
	})
}
