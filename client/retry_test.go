package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
)

func TestRetryable(t *testing.T) {
	remit := func(code connect.Code, reason string) error {
		return rpcerr.New(code, reason, "message", nil)
	}
	plain := func(code connect.Code) error { return connect.NewError(code, errors.New("transport")) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no response: connection refused", plain(connect.CodeUnavailable), true},
		{"no response: stream reset", plain(connect.CodeInternal), true},
		{"no response: proxy 500", plain(connect.CodeUnknown), true},
		{"unavailable BANK_UNAVAILABLE", remit(connect.CodeUnavailable, "BANK_UNAVAILABLE"), true},
		{"deadline exceeded", plain(connect.CodeDeadlineExceeded), true},
		{"deadline exceeded from server", remit(connect.CodeDeadlineExceeded, rpcerr.ReasonDeadlineExceeded), true},
		{"aborted REQUEST_IN_PROGRESS", remit(connect.CodeAborted, client.ReasonRequestInProgress), true},
		{"aborted other", remit(connect.CodeAborted, "CONFLICT"), false},
		{"aborted without reason", plain(connect.CodeAborted), false},
		{"resource exhausted RATE_LIMITED", authz.RateLimited(time.Second), true},
		{"canceled", plain(connect.CodeCanceled), true},
		{"declined INSUFFICIENT_FUNDS", remit(connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS"), false},
		{"declined BANK_UNAVAILABLE", remit(connect.CodeFailedPrecondition, "BANK_UNAVAILABLE"), false},
		{"idempotency key reused", remit(connect.CodeInvalidArgument, client.ReasonIdempotencyKeyReused), false},
		{"validation error", plain(connect.CodeInvalidArgument), false},
		{"unauthenticated", authz.Unauthenticated(), false},
		{"permission denied", authz.PermissionDenied(), false},
		{"not found", remit(connect.CodeNotFound, "NOT_FOUND"), false},
		{"internal from Remit", rpcerr.Internal(errors.New("db")), false},
		{"unknown from Remit", remit(connect.CodeUnknown, "WHATEVER"), false},
		{"unimplemented (wrong URL)", plain(connect.CodeUnimplemented), false},
		{"already exists", remit(connect.CodeAlreadyExists, "X"), false},
		{"local error", errors.New("disk full"), false},
		{"context deadline", context.DeadlineExceeded, true},
		{"wrapped", fmt.Errorf("pay: %w", plain(connect.CodeUnavailable)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestReasonsMatchServer keeps the client's copies of server constants in
// sync with the server packages.
func TestReasonsMatchServer(t *testing.T) {
	if client.ReasonUnauthenticated != authz.ReasonUnauthenticated {
		t.Errorf("ReasonUnauthenticated = %q, authz has %q", client.ReasonUnauthenticated, authz.ReasonUnauthenticated)
	}
	g := newGateway(t)
	g.SetHooks(hooksFailing(1, func() error { return authz.RateLimited(1500 * time.Millisecond) }))
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 1})
	_, err := c.Pay(t.Context(), payment(100))
	var e *client.Error
	if !errors.As(err, &e) || e.RetryAfter != 1500*time.Millisecond || !e.Retryable || e.Reason != authz.ReasonRateLimited {
		t.Fatalf("Pay() = %#v, want retryable RATE_LIMITED with RetryAfter 1.5s", err)
	}
}

func TestDelayBounds(t *testing.T) {
	const base, maxDelay = 100 * time.Millisecond, time.Second
	tests := []struct {
		retry    int
		jitter   float64
		rand     float64
		want     time.Duration
		wantNote string
	}{
		{1, 0, 0.7, 100 * time.Millisecond, "no jitter: base"},
		{2, 0, 0.7, 200 * time.Millisecond, "doubles"},
		{4, 0, 0.7, 800 * time.Millisecond, "doubles again"},
		{5, 0, 0.7, time.Second, "capped"},
		{60, 0, 0.7, time.Second, "no overflow far out"},
		{1, 0.5, 0, 100 * time.Millisecond, "jitter, rand 0: the full delay"},
		{1, 0.5, 0.999998, 50*time.Millisecond + 100, "jitter, rand ~1: half the delay"},
		{5, 0.5, 0.5, 750 * time.Millisecond, "jitter below the cap"},
		{3, 1, 0.5, 200 * time.Millisecond, "full jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.wantNote, func(t *testing.T) {
			p := client.RetryPolicy{BaseDelay: base, MaxDelay: maxDelay, Jitter: tt.jitter, Rand: func() float64 { return tt.rand }}
			if got := p.Delay(tt.retry); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.retry, got, tt.want)
			}
		})
	}
	// Whatever the random source says, a delay stays within [d/2, d] and
	// never above the cap.
	p := client.DefaultRetryPolicy()
	for retry := 1; retry < 20; retry++ {
		for range 50 {
			d := p.Delay(retry)
			full := min(p.BaseDelay<<(retry-1), p.MaxDelay)
			if d > full || d < full/2 || d > p.MaxDelay {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", retry, d, full/2, full)
			}
		}
	}
}

func TestPayRetriesWithBackoffAndSameID(t *testing.T) {
	g := newGateway(t)
	g.SetHooks(hooksFailing(3, func() error {
		return rpcerr.New(connect.CodeUnavailable, "BANK_UNAVAILABLE", "a bank involved is unavailable", nil)
	}))
	var sleeps recorder
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond,
		MaxDelay: 300 * time.Millisecond, Sleep: sleeps.sleep})
	p, err := c.Pay(t.Context(), payment(250))
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	ids := g.PayCalls()
	if len(ids) != 4 || ids[0] != p.GetTransactionId() || ids[3] != ids[0] || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("gateway saw %v, want the payment's id %s four times", ids, p.GetTransactionId())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	if got := sleeps.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	var attempts []int
	for _, call := range g.Calls() {
		attempts = append(attempts, call.RetryAttempt)
	}
	if fmt.Sprint(attempts) != "[0 1 2 3]" {
		t.Errorf("Remit-Retry-Attempt headers %v, want [0 1 2 3]", attempts)
	}
	if got := g.Balance(alice); got != initial-250 {
		t.Errorf("payer balance %d, want %d: the payment must apply once", got, initial-250)
	}
}

func TestPayHonoursRetryAfter(t *testing.T) {
	g := newGateway(t)
	g.SetHooks(hooksFailing(1, func() error { return authz.RateLimited(700 * time.Millisecond) }))
	var sleeps recorder
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond,
		MaxDelay: time.Second, Sleep: sleeps.sleep})
	if _, err := c.Pay(t.Context(), payment(1)); err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if got := sleeps.get(); len(got) != 1 || got[0] != 700*time.Millisecond {
		t.Errorf("slept %v, want [700ms] from retry_after_ms", got)
	}

	// A hint beyond MaxDelay is not waited out: the caller gets it.
	g.SetHooks(hooksFailing(1, func() error { return authz.RateLimited(time.Minute) }))
	_, err := c.Pay(t.Context(), payment(1))
	var e *client.Error
	if !errors.As(err, &e) || e.Code != connect.CodeResourceExhausted || e.RetryAfter != time.Minute || !e.Retryable || e.Attempts != 1 {
		t.Fatalf("Pay() = %v, want resource_exhausted after 1 attempt with RetryAfter 1m", err)
	}
}

func TestPayFinalOutcomesAreNotRetried(t *testing.T) {
	g := newGateway(t)
	var sleeps recorder
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, Sleep: sleeps.sleep})
	ctx := t.Context()

	// A decline.
	req := payment(initial + 1)
	req.TransactionID = client.NewTransactionID()
	_, err := c.Pay(ctx, req)
	var e *client.Error
	if !errors.As(err, &e) || !client.IsDeclined(err) || e.Reason != "INSUFFICIENT_FUNDS" || e.Retryable ||
		e.TransactionID != req.TransactionID || e.Attempts != 1 {
		t.Fatalf("Pay() = %#v, want a final INSUFFICIENT_FUNDS decline for %s", err, req.TransactionID)
	}
	// The same id with other parameters.
	req.Amount = 1
	_, err = c.Pay(ctx, req)
	if !errors.As(err, &e) || e.Code != connect.CodeInvalidArgument || e.Reason != client.ReasonIdempotencyKeyReused || client.IsDeclined(err) {
		t.Fatalf("Pay() = %v, want IDEMPOTENCY_KEY_REUSED", err)
	}
	// Aborted for another reason than REQUEST_IN_PROGRESS.
	g.SetHooks(hooksFailing(1, func() error { return rpcerr.New(connect.CodeAborted, "CONFLICT", "conflict", nil) }))
	if _, err = c.Pay(ctx, payment(1)); connect.CodeOf(err) != connect.CodeAborted || client.IsRetryable(err) {
		t.Fatalf("Pay() = %v, want final aborted", err)
	}
	if n := len(g.PayCalls()); n != 3 {
		t.Errorf("gateway saw %d payment requests, want 3 (no retries)", n)
	}
	if got := sleeps.get(); len(got) != 0 {
		t.Errorf("slept %v, want no retries", got)
	}
}

func TestPayRetriesRequestInProgressThenGetsStoredOutcome(t *testing.T) {
	g := newGateway(t)
	// The first answer is lost after the payment went through; the second
	// try finds the first still "running".
	g.SetHooks(clienttestHooks(
		func(call int) error {
			if call == 2 {
				return rpcerr.New(connect.CodeAborted, client.ReasonRequestInProgress, "in progress", nil)
			}
			return nil
		},
		func(call int) error {
			if call == 1 {
				return connect.NewError(connect.CodeDeadlineExceeded, errors.New("answer lost"))
			}
			return nil
		}))
	var sleeps recorder
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, Sleep: sleeps.sleep})
	p, err := c.Pay(t.Context(), payment(300))
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if ids := g.PayCalls(); len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] || ids[0] != p.GetTransactionId() {
		t.Errorf("gateway saw %v, want %s three times", ids, p.GetTransactionId())
	}
	if got := g.Balance(alice); got != initial-300 {
		t.Errorf("payer balance %d, want %d", got, initial-300)
	}
}

func TestPayGivesUpAfterMaxAttempts(t *testing.T) {
	g := newGateway(t)
	g.SetDown(true)
	var sleeps recorder
	c := newClient(t, g, "alice", &client.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Sleep: sleeps.sleep})
	req := payment(5)
	req.TransactionID = "0B8E5A9C-8F1D-4C7E-9A4E-2D1F0C3B5A6E"
	_, err := c.Pay(t.Context(), req)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != connect.CodeUnavailable || !e.Retryable || e.Attempts != 3 ||
		e.TransactionID != "0b8e5a9c-8f1d-4c7e-9a4e-2d1f0c3b5a6e" || e.Reason != "" {
		t.Fatalf("Pay() = %#v, want retryable unavailable after 3 attempts with the lowercased id", err)
	}
	if got := len(sleeps.get()); got != 2 {
		t.Errorf("slept %d times, want 2", got)
	}
}

func TestNoResponseIsRetryable(t *testing.T) {
	g := newGateway(t)
	cfg := g.Config()
	cfg.GatewayURL = "https://127.0.0.1:1" // nothing listens there
	var sleeps recorder
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 2, Sleep: sleeps.sleep}
	cfg.Token = "tok"
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = c.Pay(t.Context(), payment(5))
	var e *client.Error
	if !errors.As(err, &e) || e.Code != connect.CodeUnavailable || !e.Retryable || e.Attempts != 2 || e.TransactionID == "" {
		t.Fatalf("Pay() = %#v, want retryable unavailable with a transaction id", err)
	}
	if err := c.Health(t.Context()); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Health() = %v, want unavailable", err)
	}
}

func TestPerAttemptDeadline(t *testing.T) {
	g := newGateway(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	g.SetHooks(clienttestHooks(func(call int) error {
		if call == 1 {
			<-release // the first try hangs until the test ends
		}
		return nil
	}, nil))
	cfg := g.Config()
	cfg.Token = g.Token("alice")
	cfg.Timeout = 100 * time.Millisecond
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 2, Sleep: (&recorder{}).sleep}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Pay(t.Context(), payment(7)); err != nil {
		t.Fatalf("Pay: %v (the hung first attempt should time out and the retry succeed)", err)
	}
}

func TestHealth(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "", nil)
	if err := c.Health(t.Context()); err != nil {
		t.Fatalf("Health() = %v, want nil", err)
	}
	g.SetServing(false)
	var e *client.Error
	if err := c.Health(t.Context()); !errors.As(err, &e) || e.Reason != client.ReasonNotServing || !e.Retryable {
		t.Fatalf("Health() = %v, want NOT_SERVING", err)
	}
}

func TestNewRejectsPlaintext(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8443", "127.0.0.1:8443", ""} {
		if _, err := client.New(client.Config{GatewayURL: u}); err == nil {
			t.Errorf("New(%q) succeeded, want an error", u)
		}
	}
}
