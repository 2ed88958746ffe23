package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/remitpay/remit/internal/store/storetest"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
)

// fakeEnrollBank is the enrollment side of a bank as ConsumeEnrollmentCode
// specifies it: one code per account, consumed for one client id, which
// may consume it again; anything else is ENROLLMENT_CODE_INVALID. The real
// bank is tested end to end elsewhere; this tests the handler.
type fakeEnrollBank struct {
	AccountBank // only ConsumeEnrollmentCode is called

	mu       sync.Mutex
	codes    map[string]string // account id -> code
	consumed map[string]string // account id -> client id
	down     bool
	calls    int
}

func (b *fakeEnrollBank) ConsumeEnrollmentCode(_ context.Context, req *bankv1.ConsumeEnrollmentCodeRequest) (*bankv1.ConsumeEnrollmentCodeResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.down {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("connection refused"))
	}
	code, ok := b.codes[req.GetAccountId()]
	by, used := b.consumed[req.GetAccountId()]
	if !ok || code != req.GetCode() || (used && by != req.GetClientId()) {
		return nil, rpcerr.New(connect.CodeFailedPrecondition, reasonEnrollmentCodeInvalid, "invalid code", nil)
	}
	b.consumed[req.GetAccountId()] = req.GetClientId()
	return &bankv1.ConsumeEnrollmentCodeResponse{AccountId: req.GetAccountId(), Currency: "usd"}, nil
}

func newRegisterAPI(t *testing.T, limit rate.Limit, burst int) (*authAPI, *fakeEnrollBank) {
	t.Helper()
	ctx := context.Background()
	sessions, err := auth.OpenSessions(ctx, storetest.Target(t, t.TempDir(), "sessions"), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sessions.Close() })
	cheap := auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := auth.HashPasswordParams("alice-password", cheap)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseUsers("users.json", []byte(`{"users":[{"client_id":"alice","password_hash":"`+hash+
		`","roles":["customer"],"account":{"bank":"bank-b","account_id":"alice"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(ctx, users, sessions, auth.Config{HashParams: cheap, FailureDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	bank := &fakeEnrollBank{codes: map[string]string{"erin": "ABCD-EFGH", "alice": "ALICE-CODE"}, consumed: map[string]string{}}
	a := &authAPI{
		authn: authn, register: authz.NewKeyedLimiter(limit, burst), bankCall: DefaultTiming.BalanceCall, log: slog.New(slog.DiscardHandler),
		banks: func(name string) (AccountBank, BankState) {
			if name != "bank-b" {
				return nil, BankUnknown
			}
			return bank, BankServing
		},
	}
	return a, bank
}

func registerReq(id, account, code string) *gatewayv1.RegisterRequest {
	return &gatewayv1.RegisterRequest{ClientId: id, Password: "a-long-enough-passphrase",
		Account: &gatewayv1.AccountRef{Bank: "bank-b", AccountId: account}, EnrollmentCode: code}
}

func wantReason(t *testing.T, what string, err error, code connect.Code, reason string) {
	t.Helper()
	if connect.CodeOf(err) != code || rpcerr.Reason(err) != reason {
		t.Errorf("%s: %v (reason %q), want %v %s", what, err, rpcerr.Reason(err), code, reason)
	}
}

func TestRegisterHandler(t *testing.T) {
	ctx := context.Background()
	a, bank := newRegisterAPI(t, rate.Inf, 1)

	res, err := a.Register(ctx, registerReq("erin", "erin", "ABCD-EFGH"))
	if err != nil {
		t.Fatal(err)
	}
	c := res.GetClient()
	if c.GetClientId() != "erin" || c.GetAccount().GetAccountId() != "erin" || len(c.GetRoles()) != 1 ||
		c.GetRoles()[0] != gatewayv1.Role_ROLE_CUSTOMER {
		t.Errorf("registered %v", c)
	}
	if _, _, _, err := a.authn.Login(ctx, "erin", "a-long-enough-passphrase", ""); err != nil {
		t.Errorf("login after Register: %v", err)
	}
	// A retry after a lost answer gets the same answer.
	if res, err := a.Register(ctx, registerReq("erin", "erin", "ABCD-EFGH")); err != nil || res.GetClient().GetClientId() != "erin" {
		t.Errorf("retry: %v, %v", res, err)
	}

	_, err = a.Register(ctx, registerReq("mallory", "erin", "WRONG-CODE"))
	wantReason(t, "wrong code", err, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
	_, err2 := a.Register(ctx, registerReq("mallory", "nobody", "WRONG-CODE"))
	wantReason(t, "unknown account", err2, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
	if err != nil && err2 != nil && err.Error() != err2.Error() {
		t.Errorf("a wrong code (%q) and an unknown account (%q) read differently", err, err2)
	}

	// The account's code is right, but the account is linked already:
	// only now does the caller learn it.
	bank.calls = 0
	_, err = a.Register(ctx, registerReq("frank", "alice", "ALICE-CODE"))
	wantReason(t, "linked account", err, connect.CodeAlreadyExists, "ACCOUNT_ALREADY_LINKED")
	if bank.calls != 1 {
		t.Errorf("linked account: %d bank calls, want the code checked first", bank.calls)
	}

	bank.calls = 0
	_, err = a.Register(ctx, registerReq("ALICE", "erin", "ABCD-EFGH"))
	wantReason(t, "taken id", err, connect.CodeAlreadyExists, "CLIENT_ID_TAKEN")
	weak := registerReq("gina", "gina", "X")
	weak.Password = "password1234"
	_, err = a.Register(ctx, weak)
	wantReason(t, "weak password", err, connect.CodeInvalidArgument, "WEAK_PASSWORD")
	if bank.calls != 0 {
		t.Errorf("%d bank calls for a taken id and a weak password, want none", bank.calls)
	}

	other := registerReq("gina", "gina", "X")
	other.Account.Bank = "bank-z"
	_, err = a.Register(ctx, other)
	wantReason(t, "unknown bank", err, connect.CodeFailedPrecondition, "BANK_NOT_FOUND")
	bank.down = true
	_, err = a.Register(ctx, registerReq("gina", "gina", "X"))
	wantReason(t, "bank down", err, connect.CodeUnavailable, "BANK_UNAVAILABLE")
	if err != nil && strings.Contains(err.Error(), "refused") {
		t.Errorf("the bank's error reaches the client: %v", err)
	}
}

// Guessing codes locks the source out of Register and Login alike.
func TestRegisterCodeGuessingLocksTheSource(t *testing.T) {
	ctx := context.Background()
	a, _ := newRegisterAPI(t, rate.Inf, 1)
	var err error
	guesses := 0
	for range auth.DefaultMaxSourceFailures + 5 {
		_, err = a.Register(ctx, registerReq("mallory", "erin", "GUESS-0000"))
		if rpcerr.Reason(err) != "ENROLLMENT_CODE_INVALID" {
			break
		}
		guesses++
	}
	wantReason(t, "after the guesses", err, connect.CodeResourceExhausted, "LOGIN_LOCKED")
	if guesses != auth.DefaultMaxSourceFailures {
		t.Errorf("locked after %d guesses, want %d", guesses, auth.DefaultMaxSourceFailures)
	}
	// Even the right code is refused now, and so is a login.
	_, err = a.Register(ctx, registerReq("erin", "erin", "ABCD-EFGH"))
	wantReason(t, "right code from the locked source", err, connect.CodeResourceExhausted, "LOGIN_LOCKED")
	_, err = a.Login(ctx, &gatewayv1.LoginRequest{ClientId: "alice", Password: "alice-password"})
	wantReason(t, "login from the locked source", err, connect.CodeResourceExhausted, "LOGIN_LOCKED")
}

func TestRegisterRateLimited(t *testing.T) {
	ctx := context.Background()
	a, _ := newRegisterAPI(t, rate.Limit(0.001), 2)
	for range 2 {
		_, err := a.Register(ctx, registerReq("mallory", "erin", "GUESS-0000"))
		wantReason(t, "within the burst", err, connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID")
	}
	_, err := a.Register(ctx, registerReq("mallory", "erin", "GUESS-0000"))
	wantReason(t, "over the burst", err, connect.CodeResourceExhausted, "RATE_LIMITED")
}
