package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/store/storetest"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/gen/remit/bank/v1/bankv1connect"
	"github.com/remitpay/remit/internal/rpcerr"
)

// hungBank is a BankService whose GetBalance and UpdateBalance accept the
// call and never answer: each blocks until its caller hangs up or the test
// ends.
type hungBank struct {
	bankv1connect.UnimplementedBankServiceHandler

	entered chan string   // receives the method name when a call arrives
	release chan struct{} // closed when the test ends
}

func (b *hungBank) hang(ctx context.Context, method string) {
	b.entered <- method
	select {
	case <-ctx.Done():
	case <-b.release:
	}
}

func (b *hungBank) GetBalance(ctx context.Context, _ *bankv1.GetBalanceRequest) (*bankv1.GetBalanceResponse, error) {
	b.hang(ctx, "GetBalance")
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("hung"))
}

func (b *hungBank) UpdateBalance(ctx context.Context, _ *bankv1.UpdateBalanceRequest) (*bankv1.UpdateBalanceResponse, error) {
	b.hang(ctx, "UpdateBalance")
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("hung"))
}

type oneBank struct{ c BankClient }

func (o oneBank) Lookup(name string) (BankClient, BankState) {
	if name != "bank-a" {
		return nil, BankUnknown
	}
	return o.c, BankServing
}

// Every bank call has its own deadline: a bank that accepts a balance read
// or an adjustment and never answers holds the caller for Timing.BalanceCall
// or Timing.AdjustCall, not for as long as the caller's context allows (the
// contexts here have no deadline at all). The bank is a real BankService
// over TLS and HTTP/2, so the deadline is the one the production client
// sends; the wait is bounded on the wall clock, because synctest's fake
// clock does not advance while a goroutine waits on a real socket.
func TestHungBankCallsEndAtTheirDeadline(t *testing.T) {
	hung := &hungBank{entered: make(chan string, 4), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle(bankv1connect.NewBankServiceHandler(hung))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung.release) }) // runs first: unblocks the handlers

	st, err := OpenStore(t.Context(), storetest.Target(t, t.TempDir(), "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	// Each case's own timeout is deadline; every other call timeout is
	// other, so a call bounded by the wrong one runs past bound and fails.
	const (
		deadline = 200 * time.Millisecond
		other    = time.Minute
		// bound is how long past its deadline a call may take to return:
		// far more than a loaded machine needs, far less than other.
		bound = 3 * time.Second
	)
	tests := []struct {
		method     string
		timeout    func(*Timing) *time.Duration // the case's own timeout
		call       func(ctx context.Context, coord *Coordinator) error
		wantCode   connect.Code
		wantReason string
	}{
		{"GetBalance", func(tm *Timing) *time.Duration { return &tm.BalanceCall }, func(ctx context.Context, coord *Coordinator) error {
			_, err := coord.Balance(ctx, Account{"bank-a", "alice"})
			return err
		}, connect.CodeUnavailable, "BANK_UNAVAILABLE"},
		// Recorded, the bank did not answer: in progress, retry the same id.
		{"UpdateBalance", func(tm *Timing) *time.Duration { return &tm.AdjustCall }, func(ctx context.Context, coord *Coordinator) error {
			_, err := coord.Adjust(ctx, AdjustRequest{TxID: uuid.NewString(), ClientID: "admin",
				Account: Account{"bank-a", "alice"}, Amount: 5, Currency: "usd"})
			return err
		}, connect.CodeAborted, "REQUEST_IN_PROGRESS"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			timing := testTiming
			timing.PrepareCall, timing.CommitCall, timing.BalanceCall, timing.AdjustCall = other, other, other, other
			*tt.timeout(&timing) = deadline
			coord := NewCoordinator(st, oneBank{newConnectBank(srv.Client(), srv.URL)}, slog.New(slog.DiscardHandler), timing)
			ctx := t.Context() // no deadline of its own
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- tt.call(ctx, coord) }()
			select {
			case m := <-hung.entered:
				if m != tt.method {
					t.Fatalf("bank got %s, want %s", m, tt.method)
				}
			case <-time.After(bound):
				t.Fatalf("%s never reached the bank", tt.method)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(deadline + bound):
				t.Fatalf("%s still waiting on a hung bank %v after its %v deadline", tt.method, bound, deadline)
			}
			if took := time.Since(start); took < deadline || took > deadline+bound {
				t.Errorf("%s returned after %v, want its %v deadline (+ at most %v)", tt.method, took, deadline, bound)
			}
			err = toConnect(err)
			if connect.CodeOf(err) != tt.wantCode || rpcerr.Reason(err) != tt.wantReason {
				t.Errorf("%s on a hung bank: %v (reason %q), want %v %s", tt.method, err, rpcerr.Reason(err), tt.wantCode, tt.wantReason)
			}
		})
	}
}
