package bank

import (
	"errors"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

// errorTable is the one place where ledger errors become API outcomes: the
// Connect code and ErrorInfo reason of an RPC that fails with one (its
// message is the error's own text, written for the gateway's operators), and
// the RefusalReason of a NO vote or of a refused movement that carries one.
//
// A refusal's ErrorInfo reason is made from its RefusalReason
// ([rpcerr.EnumReason]: REFUSAL_REASON_INSUFFICIENT_FUNDS is
// "INSUFFICIENT_FUNDS"), and so is the code a refusal is stored under
// (storedRefusal). reason is set only for errors that are not refusals, and
// for ErrIdempotencyKeyReused, whose ErrorInfo reason predates the enum.
//
// To add a refusal: a sentinel in ledger.go, a RefusalReason value in
// bank.proto, and a row here. The gateway translates RefusalReason values to
// its FailureReason in its own table (services/gateway/bankclient.go).
var errorTable = []struct {
	err     error
	code    connect.Code
	refusal bankv1.RefusalReason
	reason  string
}{
	{ErrAccountNotFound, connect.CodeNotFound, bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND, ""},
	{ErrAccountClosed, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_CLOSED, ""},
	{ErrCurrencyMismatch, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_CURRENCY_MISMATCH, ""},
	{ErrInsufficientFunds, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS, ""},
	{ErrBalanceOverflow, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_BALANCE_OVERFLOW, ""},
	{ErrAlreadyAborted, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_ALREADY_ABORTED, ""},
	{ErrIdempotencyKeyReused, connect.CodeInvalidArgument, bankv1.RefusalReason_REFUSAL_REASON_CONFLICT, ReasonIdempotencyKeyReused},
	{ErrCannotCommit, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, "CANNOT_COMMIT"},
	{ErrAlreadyCommitted, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, "ALREADY_COMMITTED"},
	{ErrInvalidArgument, connect.CodeInvalidArgument, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, "INVALID_ARGUMENT"},
	// Accounts at run time and enrollment codes: not refusals.
	{ErrAccountExists, connect.CodeAlreadyExists, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, ReasonAccountExists},
	{ErrAccountNotEmpty, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, ReasonAccountNotEmpty},
	{ErrEnrollmentCodeInvalid, connect.CodeFailedPrecondition, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, ReasonEnrollmentCodeInvalid},
	{ErrBadPageToken, connect.CodeInvalidArgument, bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED, ReasonInvalidPageToken},
}

// ErrorInfo reasons of the account and enrollment errors, which the gateway
// reads (services/gateway/accountsapi.go) and passes on under the same names.
const (
	ReasonAccountExists         = "ACCOUNT_EXISTS"
	ReasonAccountNotEmpty       = "ACCOUNT_NOT_EMPTY"
	ReasonEnrollmentCodeInvalid = "ENROLLMENT_CODE_INVALID"
	ReasonInvalidPageToken      = "INVALID_PAGE_TOKEN"
)

// ReasonIdempotencyKeyReused is the ErrorInfo reason of ErrIdempotencyKeyReused
// (a NO vote says REFUSAL_REASON_CONFLICT instead).
const ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

var rpcTable = func() []rpcerr.Mapping {
	m := make([]rpcerr.Mapping, len(errorTable))
	for i, e := range errorTable {
		reason := e.reason
		if reason == "" {
			reason = rpcerr.EnumReason(e.refusal)
		}
		m[i] = rpcerr.Mapping{Err: e.err, Code: e.code, Reason: reason}
	}
	return m
}()

// toConnect turns a ledger error into the error the RPC returns.
func toConnect(err error) error { return rpcerr.FromTable(err, rpcTable) }

// refusalOf is the RefusalReason of a NO vote's reason.
func refusalOf(err error) bankv1.RefusalReason {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.refusal
		}
	}
	return bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED
}

// storedRefusal is how a refusal is stored in prepared_transactions and
// refused_adjustments, so that a repeat gets the same answer: its ErrorInfo
// reason, e.g. "INSUFFICIENT_FUNDS" ("" for an error that is not a
// refusal). These strings are a storage format; RefusalReason values are
// never renamed (buf breaking guards the names).
func storedRefusal(err error) string { return rpcerr.EnumReason(refusalOf(err)) }

// refusalFromStored is the sentinel of a stored refusal; anything it does not
// know reads as ErrAlreadyAborted (the transaction is refused either way).
func refusalFromStored(code string) error {
	if r, ok := rpcerr.ParseEnumReason[bankv1.RefusalReason](code); ok {
		for _, e := range errorTable {
			if e.refusal == r {
				return e.err
			}
		}
	}
	return ErrAlreadyAborted
}
