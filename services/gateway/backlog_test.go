package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/uuid"
)

// Backlog counts with aggregate queries what the re-driver's lists hold.
func TestBacklogAgreesWithTheLists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.b.commitErr = func(string) error { return errors.New("unreachable") }
		for range 2 { // decided, bank-b's acknowledgement missing
			if _, err := h.coord.Pay(t.Context(), payment(uuid.NewString())); err != nil {
				t.Fatal(err)
			}
		}
		phaseTwo, undecided, adjustments, err := h.store.Backlog(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			name  string
			count int
			list  func(context.Context) ([]string, error)
		}{
			{"phase two", phaseTwo, h.store.UnackedDecided},
			{"undecided", undecided, h.store.Undecided},
			{"adjustments", adjustments, h.store.PendingAdjustments},
		} {
			ids, err := q.list(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if q.count != len(ids) {
				t.Errorf("%s: Backlog counts %d, the list has %d", q.name, q.count, len(ids))
			}
		}
		if phaseTwo != 2 {
			t.Errorf("phase two backlog %d, want 2", phaseTwo)
		}
	})
}
