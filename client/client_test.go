package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/authz"
)

func TestReloginOnceOnExpiredToken(t *testing.T) {
	g := newGateway(t)
	var logs bytes.Buffer
	var sessions []*client.Session
	cfg := g.Config()
	cfg.Token = g.Token("alice")
	cfg.Credentials = &client.Credentials{ClientID: "alice", Password: "alice-pw"}
	cfg.OnSession = func(s *client.Session) { sessions = append(sessions, s) }
	cfg.Retry = &client.RetryPolicy{MaxAttempts: 3, Sleep: (&recorder{}).sleep}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	old := c.Token()
	g.RevokeTokens() // the token expired

	if _, err := c.Pay(t.Context(), payment(10)); err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if got := procedures(g); !slices.Equal(got, []string{"MakePayment", "Login", "MakePayment"}) {
		t.Errorf("calls %v, want MakePayment, Login, MakePayment", got)
	}
	if len(sessions) != 1 || sessions[0].Token != c.Token() || c.Token() == old || sessions[0].Client.GetClientId() != "alice" {
		t.Errorf("OnSession got %d sessions; want one carrying the new token", len(sessions))
	}

	// The token keeps being refused: one re-login per call, then the error.
	g.SetHooks(hooksFailing(1000, func() error { return authz.Unauthenticated() }))
	_, err = c.Pay(t.Context(), payment(10))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("Pay() = %v, want unauthenticated", err)
	}
	logins := 0
	for _, p := range procedures(g)[3:] {
		if p == "Login" {
			logins++
		}
	}
	if logins != 1 {
		t.Errorf("%d logins for one call, want exactly 1", logins)
	}

	// Neither the token nor the password is ever logged.
	for _, secret := range []string{old, c.Token(), sessions[0].Token, "alice-pw"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "logging in again") {
		t.Errorf("log does not mention the re-login:\n%s", logs.String())
	}
}

func TestReloginWithWrongPasswordFailsOnce(t *testing.T) {
	g := newGateway(t)
	cfg := g.Config()
	cfg.Credentials = &client.Credentials{ClientID: "alice", Password: "wrong"}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = c.Balance(t.Context(), nil)
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("Balance() = %v, want unauthenticated", err)
	}
	if got := procedures(g); !slices.Equal(got, []string{"CheckBalance", "Login"}) {
		t.Errorf("calls %v, want CheckBalance, Login", got)
	}
}

func TestNoReloginWithoutCredentials(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "alice", nil)
	g.RevokeTokens()
	_, err := c.Pay(t.Context(), payment(10))
	var e *client.Error
	if !errors.As(err, &e) || e.Code != connect.CodeUnauthenticated || e.Retryable || e.Reason != client.ReasonUnauthenticated {
		t.Fatalf("Pay() = %v, want final UNAUTHENTICATED", err)
	}
}

func TestLoginLogout(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "", nil)
	ctx := t.Context()
	if _, err := c.Login(ctx, "alice", "nope"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("Login(wrong password) = %v, want unauthenticated", err)
	}
	s, err := c.Login(ctx, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if s.Token == "" || s.Token != c.Token() || s.ExpireTime.Before(time.Now()) ||
		client.AccountRefFromProto(s.Client.GetAccount()) != alice || c.Session() != s {
		t.Errorf("Login() = %+v", s)
	}
	if _, err := c.Balance(ctx, nil); err != nil {
		t.Fatalf("Balance after login: %v", err)
	}
	for _, call := range g.Calls() {
		if call.Procedure == gatewayv1connect.AuthServiceLoginProcedure && call.Token != "" {
			t.Error("Login was sent with a bearer token")
		}
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if c.Token() != "" {
		t.Error("token kept after Logout")
	}
	if _, err := c.Balance(ctx, nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("Balance after logout = %v, want unauthenticated", err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Errorf("second Logout = %v, want nil (idempotent)", err)
	}
	// A revoked token counts as logged out.
	c.SetToken(g.Token("alice"))
	g.RevokeTokens()
	if err := c.Logout(ctx); err != nil {
		t.Errorf("Logout with a revoked token = %v, want nil", err)
	}
}

func TestReadsAndAdmin(t *testing.T) {
	g := newGateway(t)
	ctx := t.Context()
	alicec := newClient(t, g, "alice", nil)
	bobc := newClient(t, g, "bob", nil)
	admin := newClient(t, g, "admin", nil)

	p, err := alicec.Pay(ctx, payment(1234))
	if err != nil {
		t.Fatal(err)
	}
	if p.GetStatus() != gatewayv1.PaymentStatus_PAYMENT_STATUS_SUCCEEDED || p.GetAmount() != 1234 {
		t.Errorf("Pay() = %v", p)
	}
	got, err := bobc.Payment(ctx, strings.ToUpper(p.GetTransactionId()))
	if err != nil || got.GetTransactionId() != p.GetTransactionId() {
		t.Fatalf("Payment() = %v, %v", got, err)
	}
	if _, err := bobc.Payment(ctx, "not-a-uuid"); !errors.Is(err, client.ErrInvalidRequest) {
		t.Errorf("Payment(bad id) = %v, want ErrInvalidRequest", err)
	}
	bal, err := bobc.Balance(ctx, nil)
	if err != nil || bal.GetBalance() != initial+1234 {
		t.Fatalf("Balance() = %v, %v; want %d", bal, err, initial+1234)
	}
	if _, err := bobc.Balance(ctx, &alice); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("Balance(other account) = %v, want permission_denied", err)
	}
	acked, err := bobc.Acknowledge(ctx, p.GetTransactionId())
	if err != nil || acked.GetAcknowledgeTime() == nil {
		t.Fatalf("Acknowledge() = %v, %v", acked, err)
	}
	if _, err := alicec.Acknowledge(ctx, p.GetTransactionId()); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("payer Acknowledge() = %v, want permission_denied", err)
	}

	txID := client.NewTransactionID()
	res, err := admin.Deposit(ctx, txID, alice, 500, "usd")
	if err != nil || res.GetBalance() != initial-1234+500 || res.GetTransactionId() != txID {
		t.Fatalf("Deposit() = %v, %v", res, err)
	}
	if _, err := admin.Deposit(ctx, txID, alice, 500, "usd"); err != nil || g.Balance(alice) != initial-1234+500 {
		t.Fatalf("repeated Deposit moved money twice or failed: %v, balance %d", err, g.Balance(alice))
	}
	_, err = admin.Withdraw(ctx, "", alice, 1_000_000, "usd")
	var e *client.Error
	if !errors.As(err, &e) || !client.IsDeclined(err) || e.TransactionID == "" {
		t.Errorf("Withdraw(too much) = %v, want a decline carrying a generated id", err)
	}
	banks, err := admin.Banks(ctx)
	if err != nil || len(banks) != 2 {
		t.Errorf("Banks() = %v, %v", banks, err)
	}
	if _, err := alicec.Banks(ctx); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("customer Banks() = %v, want permission_denied", err)
	}
}

func TestPayValidatesBeforeSending(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "alice", nil)
	bad := []client.PaymentRequest{
		{Payee: bob, Amount: 0, Currency: "usd"},
		{Payee: bob, Amount: -5, Currency: "usd"},
		{Payee: bob, Amount: client.MaxAmount + 1, Currency: "usd"},
		{Payee: bob, Amount: 1, Currency: "USD"},
		{Payee: client.AccountRef{Bank: "Bank A", ID: "bob"}, Amount: 1, Currency: "usd"},
		{Payee: bob, Amount: 1, Currency: "usd", TransactionID: "123"},
		{Payee: bob, Amount: 1, Currency: "usd", Description: strings.Repeat("é", client.MaxDescriptionLen+1)},
		{Payee: bob, Amount: 1, Currency: "usd", Description: "rent\tmarch"},
		{Payee: bob, Amount: 1, Currency: "usd", Description: "\u202eevil"},
	}
	for _, req := range bad {
		// Normalize, which the outbox runs before it saves a payment,
		// refuses what the gateway would: else the payment is queued and
		// never sent.
		if _, err := req.Normalize(); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("Normalize(%+v) = %v, want ErrInvalidRequest", req, err)
		}
		if _, err := c.Pay(t.Context(), req); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("Pay(%+v) = %v, want ErrInvalidRequest", req, err)
		}
	}
	if n := len(g.Calls()); n != 0 {
		t.Errorf("%d requests sent for invalid payments, want 0", n)
	}
}

func TestPaymentsIteratesPages(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "alice", nil)
	ctx := t.Context()
	var want []string
	for i := range 5 {
		p, err := c.Pay(ctx, payment(int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{p.GetTransactionId()}, want...) // newest first
	}
	var got []string
	for p, err := range c.Payments(ctx, client.PaymentFilter{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.GetTransactionId())
	}
	if !slices.Equal(got, want) {
		t.Errorf("Payments() = %v, want %v", got, want)
	}
	if n := count(g, "ListPayments"); n != 3 {
		t.Errorf("%d ListPayments requests, want 3 pages", n)
	}

	// Breaking early fetches no further pages.
	for _, err := range c.Payments(ctx, client.PaymentFilter{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := count(g, "ListPayments"); n != 4 {
		t.Errorf("%d ListPayments requests after an early break, want 4", n)
	}

	// An error ends the iteration as its last element.
	g.RevokeTokens()
	var errs int
	for p, err := range c.Payments(ctx, client.PaymentFilter{}) {
		if err == nil || p != nil {
			t.Fatalf("got %v, %v; want only an error", p, err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("%d errors, want 1", errs)
	}
}

func TestWatchReconnectsWithoutLosingEvents(t *testing.T) {
	g := newGateway(t)
	payer := newClient(t, g, "alice", nil)
	var sleeps recorder
	watcher := newClient(t, g, "bob", &client.RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond, Sleep: sleeps.sleep})
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		p, err := payer.Pay(ctx, payment(int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.GetTransactionId())
	}
	// Every stream breaks after two events.
	h := clienttestHooks(nil, nil)
	h.WatchBreakAfter = 2
	g.SetHooks(h)

	var mu sync.Mutex
	var got []int64
	var gotIDs []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range watcher.Watch(ctx, 0) {
			if err != nil {
				t.Errorf("Watch: %v", err)
				return
			}
			mu.Lock()
			got = append(got, ev.GetEventId())
			gotIDs = append(gotIDs, ev.GetPayment().GetTransactionId())
			n := len(got)
			mu.Unlock()
			if n == 3 {
				// A live event after the replay.
				p, err := payer.Pay(ctx, payment(99))
				if err != nil {
					t.Error(err)
					return
				}
				ids = append(ids, p.GetTransactionId())
			}
			if n == 4 {
				return
			}
		}
	}()
	<-done
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("events for payments %v, want %v exactly once each, in order", gotIDs, ids)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("event ids %v are not strictly increasing", got)
	}
	if after := g.WatchAfter(); len(after) < 2 || after[0] != 0 || after[1] != got[1] {
		t.Errorf("streams opened after %v, want [0 %d ...]: a reconnect resumes after the last event", after, got[1])
	}
	if len(sleeps.get()) == 0 {
		t.Error("reconnected without backing off")
	}
}

func TestWatchEndsWithFinalError(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "bob", nil)
	g.RevokeTokens()
	var errs []error
	for ev, err := range c.Watch(t.Context(), 0) {
		if ev != nil {
			t.Fatalf("unexpected event %v", ev)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || connect.CodeOf(errs[0]) != connect.CodeUnauthenticated {
		t.Errorf("Watch yielded %v, want one unauthenticated error", errs)
	}
}

func TestParseAndFormatAmount(t *testing.T) {
	tests := []struct {
		in, currency string
		want         int64
		wantErr      bool
	}{
		{"12.50", "usd", 1250, false},
		{"12.5", "usd", 1250, false},
		{"12", "usd", 1200, false},
		{"0.01", "usd", 1, false},
		{"007.10", "eur", 710, false},
		{"1000", "jpy", 1000, false},
		{"1.234", "kwd", 1234, false},
		{"12.505", "usd", 0, true},
		{"1.5", "jpy", 0, true},
		{"0", "usd", 0, true},
		{"0.00", "usd", 0, true},
		{"-1", "usd", 0, true},
		{"+1", "usd", 0, true},
		{"1e3", "usd", 0, true},
		{"1,5", "usd", 0, true},
		{".5", "usd", 0, true},
		{"5.", "usd", 0, true},
		{"", "usd", 0, true},
		{"10000000000.01", "usd", 0, true},
		{"99999999999999999999", "usd", 0, true},
		{"1", "USD", 0, true},
	}
	for _, tt := range tests {
		got, err := client.ParseAmount(tt.in, tt.currency)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseAmount(%q, %q) = %d, %v; want %d, error %v", tt.in, tt.currency, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("ParseAmount(%q) error %v does not wrap ErrInvalidRequest", tt.in, err)
		}
		if err == nil {
			back, err := client.ParseAmount(strings.Fields(client.FormatAmount(got, tt.currency))[0], tt.currency)
			if err != nil || back != got {
				t.Errorf("FormatAmount(%d) does not round-trip: %d, %v", got, back, err)
			}
		}
	}
	for _, tt := range []struct {
		amount   int64
		currency string
		want     string
	}{
		{1250, "usd", "12.50 usd"}, {5, "usd", "0.05 usd"}, {-5, "usd", "-0.05 usd"},
		{1000, "jpy", "1000 jpy"}, {1, "kwd", "0.001 kwd"},
		{math.MinInt64, "usd", "-92233720368547758.08 usd"}, {math.MaxInt64, "usd", "92233720368547758.07 usd"},
	} {
		if got := client.FormatAmount(tt.amount, tt.currency); got != tt.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

func TestParseAccountRef(t *testing.T) {
	a, err := client.ParseAccountRef("bank-a/alice")
	if err != nil || a != alice || a.String() != "bank-a/alice" {
		t.Errorf("ParseAccountRef = %v, %v", a, err)
	}
	for _, s := range []string{"alice", "bank-a/", "/alice", "Bank/alice", "bank-a/al ice", "a/b/c"} {
		if _, err := client.ParseAccountRef(s); !errors.Is(err, client.ErrInvalidRequest) {
			t.Errorf("ParseAccountRef(%q) = %v, want ErrInvalidRequest", s, err)
		}
	}
}

func TestStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("REMIT_HOME", "")
	t.Setenv("XDG_STATE_HOME", "")
	check := func(want string) {
		t.Helper()
		if got, err := client.StateDir(); err != nil || got != want {
			t.Errorf("StateDir() = %q, %v; want %q", got, err, want)
		}
	}
	check(filepath.Join(home, ".local", "state", "remit"))
	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	check(filepath.Join(home, ".local", "state", "remit"))
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	check("/xdg/state/remit")
	t.Setenv("REMIT_HOME", "/srv/remit")
	check("/srv/remit")
}

func TestProfileRoundTrip(t *testing.T) {
	g := newGateway(t)
	c := newClient(t, g, "", nil)
	s, err := c.Login(t.Context(), "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := client.LoadProfile(dir); !errors.Is(err, client.ErrNoProfile) {
		t.Fatalf("LoadProfile(empty) = %v, want ErrNoProfile", err)
	}
	p := client.NewProfile(g.Config(), s)
	if err := p.Save(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, client.ProfileFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile mode %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := client.LoadProfile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != s.Token || got.ClientID != "alice" || got.Account != "bank-a/alice" || !got.HasRole("ROLE_CUSTOMER") ||
		!got.ExpireTime.Equal(s.ExpireTime) || got.Expired(time.Now()) || !got.Expired(s.ExpireTime) {
		t.Errorf("LoadProfile() = %+v", got)
	}
	// A client built from the profile is logged in.
	c2, err := client.New(got.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Balance(t.Context(), nil); err != nil {
		t.Errorf("Balance with the saved profile: %v", err)
	}
	if err := client.RemoveProfile(dir); err != nil {
		t.Fatal(err)
	}
	if err := client.RemoveProfile(dir); err != nil {
		t.Errorf("second RemoveProfile = %v, want nil", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &client.Error{Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS", Message: "declined: too low"}
	if got, want := e.Error(), "failed_precondition INSUFFICIENT_FUNDS: declined: too low"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("pay: %w", e)
	if !client.IsDeclined(wrapped) || client.IsRetryable(wrapped) {
		t.Error("IsDeclined/IsRetryable do not see through wrapping")
	}
}

// procedures returns the method names of the calls g received.
func procedures(g interface{ Calls() []clienttestCall }) []string {
	var out []string
	for _, c := range g.Calls() {
		out = append(out, c.Procedure[strings.LastIndex(c.Procedure, "/")+1:])
	}
	return out
}

func count(g interface{ Calls() []clienttestCall }, method string) int {
	n := 0
	for _, p := range procedures(g) {
		if p == method {
			n++
		}
	}
	return n
}
