package gateway

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
)

// Adding a FailureReason or a RefusalReason is a change in one place per
// side: these tests fail until the new value has its row.
func TestEveryFailureReasonHasARow(t *testing.T) {
	for n := range gatewayv1.FailureReason_name {
		r := gatewayv1.FailureReason(n)
		if r == unspecified {
			if _, ok := failures[r]; ok {
				t.Errorf("failures has a row for UNSPECIFIED, which is not a failure")
			}
			continue
		}
		f, ok := failures[r]
		if !ok || f.code == connect.CodeUnknown || f.code == 0 || f.msg == "" {
			t.Errorf("failures[%v] = %+v, %v; want a code and a message", r, f, ok)
			continue
		}
		for _, kind := range []Kind{KindPayment, KindAdjustment} {
			err := declined(&Txn{ID: "tx", Kind: kind, FailureReason: r})
			if connect.CodeOf(err) != f.code || rpcerr.Reason(err) != rpcerr.EnumReason(r) {
				t.Errorf("declined(%v, %s) = %v (reason %q)", r, kind, err, rpcerr.Reason(err))
			}
		}
		if got := parseStoredReason(storedReason(r)); got != r {
			t.Errorf("stored %v reads back as %v", r, got)
		}
	}
}

func TestEveryRefusalReasonMaps(t *testing.T) {
	for n := range bankv1.RefusalReason_name {
		r := bankv1.RefusalReason(n)
		f, ok := refusalTable[r]
		if !ok {
			t.Errorf("refusalTable has no row for %v", r)
			continue
		}
		if _, ok := failures[f]; !ok {
			t.Errorf("refusalTable[%v] = %v, which has no row in failures", r, f)
		}
	}
}

// A bank that holds the id for other legs answers CONFLICT to prepare and
// IDEMPOTENCY_KEY_REUSED to UpdateBalance: both are TRANSACTION_ID_CONFLICT,
// never a decline.
func TestBankConflictIsTransactionIDConflict(t *testing.T) {
	conflict := gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT
	if got := failureOf(bankv1.RefusalReason_REFUSAL_REASON_CONFLICT); got != conflict {
		t.Errorf("NO vote CONFLICT -> %v, want %v", got, conflict)
	}
	reused := rpcerr.New(connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED", "reused", nil)
	ref, ok := definitive(reused)
	if !ok || ref.Reason != conflict {
		t.Errorf("UpdateBalance IDEMPOTENCY_KEY_REUSED -> %+v, %v; want %v", ref, ok, conflict)
	}
	for reason, want := range map[string]gatewayv1.FailureReason{
		"INSUFFICIENT_FUNDS": gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS,
		"ACCOUNT_NOT_FOUND":  gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND,
		"INVALID_ARGUMENT":   gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
		"":                   gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
	} {
		ref, ok := definitive(rpcerr.New(connect.CodeFailedPrecondition, reason, "x", nil))
		if !ok || ref.Reason != want || ref.BankReason != reason {
			t.Errorf("bank reason %q -> %+v, %v; want %v", reason, ref, ok, want)
		}
	}
	if _, ok := definitive(errors.New("connection reset")); ok {
		t.Error("a transport error is not a definitive refusal")
	}
}

func TestParseStoredReason(t *testing.T) {
	for stored, want := range map[string]gatewayv1.FailureReason{
		"":                       unspecified,
		"INSUFFICIENT_FUNDS":     gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS,
		"IDEMPOTENCY_KEY_REUSED": gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT,
		"INVALID_ARGUMENT":       gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
		"something new":          gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK,
	} {
		if got := parseStoredReason(stored); got != want {
			t.Errorf("parseStoredReason(%q) = %v, want %v", stored, got, want)
		}
	}
}

// Every sentinel of the table is turned into its own code and reason, with
// its text as the message, and no two rows share a sentinel.
func TestErrTable(t *testing.T) {
	seen := map[error]bool{}
	for _, m := range errTable {
		if seen[m.Err] {
			t.Errorf("%v has two rows", m.Err)
		}
		seen[m.Err] = true
		err := toConnect(m.Err)
		var cerr *connect.Error
		if !errors.As(err, &cerr) || cerr.Code() != m.Code || rpcerr.Reason(err) != m.Reason || cerr.Message() != m.Err.Error() {
			t.Errorf("toConnect(%v) = %v (reason %q)", m.Err, err, rpcerr.Reason(err))
		}
	}
}

// A FAILED transaction stored without a reason shows the same reason,
// DECLINED_BY_BANK, in its Payment and in the ErrorInfo of its error; one
// that did not fail shows none.
func TestFailedWithoutReasonShowsDeclinedByBank(t *testing.T) {
	for _, kind := range []Kind{KindPayment, KindAdjustment} {
		failed := &Txn{ID: "t1", Kind: kind, Status: StatusFailed}
		if got := paymentProto(failed).GetFailureReason(); got != gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK {
			t.Errorf("%s: Payment.failure_reason of a failed row without a reason = %v, want DECLINED_BY_BANK", kind, got)
		}
		err := declined(failed)
		if got := rpcerr.Reason(err); got != "DECLINED_BY_BANK" || connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Errorf("%s: error of a failed row without a reason = %v (reason %q), want failed_precondition DECLINED_BY_BANK", kind, err, got)
		}
	}
	for _, st := range []Status{StatusProcessing, StatusSucceeded} {
		if got := paymentProto(&Txn{Status: st}).GetFailureReason(); got != unspecified {
			t.Errorf("Payment.failure_reason of a %s transaction = %v, want UNSPECIFIED", st, got)
		}
	}
}

// A lockout, wrapped or not, leaves the table as resource_exhausted
// LOGIN_LOCKED with the wait in the message and as a retry hint, exactly as
// the Login handler sent it before it went through the table.
func TestLoginLockedRow(t *testing.T) {
	locked := &auth.LockoutError{RetryAfter: 58200 * time.Millisecond}
	for _, err := range []error{locked, fmt.Errorf("login: %w", locked)} {
		got := toConnect(err)
		cerr, ok := errors.AsType[*connect.Error](got)
		if !ok {
			t.Fatalf("toConnect(%v) = %T, want a *connect.Error", err, got)
		}
		if cerr.Code() != connect.CodeResourceExhausted || rpcerr.Reason(got) != "LOGIN_LOCKED" ||
			cerr.Message() != "too many failed logins; wait 59s before trying again" {
			t.Errorf("toConnect(%v) = %v (reason %q), want resource_exhausted LOGIN_LOCKED with the wait", err, got, rpcerr.Reason(got))
		}
		if ms := rpcerr.Info(got).GetMetadata()[authz.MetaRetryAfterMillis]; ms != "58200" {
			t.Errorf("%s = %q, want 58200", authz.MetaRetryAfterMillis, ms)
		}
		if h := cerr.Meta().Get("Retry-After"); h != "59" {
			t.Errorf("Retry-After = %q, want 59", h)
		}
	}
}

// A refund goes only between its payment's two accounts: a refund declined
// because one of them is closed must not tell its caller to pay another
// account, which a refund cannot do.
func TestRefundAccountClosedMessage(t *testing.T) {
	err := declined(&Txn{ID: "r", Kind: KindPayment, RefundOf: "p", FailureReason: gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED,
		FailureBank: "bank-b", FailureAccount: "erin"})
	if rpcerr.Reason(err) != "ACCOUNT_CLOSED" {
		t.Fatalf("declined: %v, want ACCOUNT_CLOSED", err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("declined: %T, want a *connect.Error", err)
	}
	if msg := ce.Message(); strings.Contains(msg, "pay another account") || !strings.Contains(msg, "refund") {
		t.Errorf("a refund declined ACCOUNT_CLOSED says %q; want a message about the refund, not paying another account", msg)
	}
}
