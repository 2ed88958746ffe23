package bank

import (
	"errors"

	"connectrpc.com/connect"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

// errorTable is the one place where ledger errors become API errors: the
// Connect code and ErrorInfo reason of an RPC that fails with them, and the
// RefusalReason of a NO vote that carries them.
var errorTable = []struct {
	err     error
	code    connect.Code
	reason  string
	refusal bankv1.RefusalReason
}{
	{ErrAccountNotFound, connect.CodeNotFound, "ACCOUNT_NOT_FOUND", bankv1.RefusalReason_REFUSAL_REASON_ACCOUNT_NOT_FOUND},
	{ErrCurrencyMismatch, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH", bankv1.RefusalReason_REFUSAL_REASON_CURRENCY_MISMATCH},
	{ErrInsufficientFunds, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS},
	{ErrBalanceOverflow, connect.CodeFailedPrecondition, "BALANCE_OVERFLOW", bankv1.RefusalReason_REFUSAL_REASON_BALANCE_OVERFLOW},
	{ErrAlreadyAborted, connect.CodeFailedPrecondition, "ALREADY_ABORTED", bankv1.RefusalReason_REFUSAL_REASON_ALREADY_ABORTED},
	{ErrIdempotencyKeyReused, connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED", bankv1.RefusalReason_REFUSAL_REASON_CONFLICT},
	{ErrCannotCommit, connect.CodeFailedPrecondition, "CANNOT_COMMIT", bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED},
	{ErrAlreadyCommitted, connect.CodeFailedPrecondition, "ALREADY_COMMITTED", bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED},
	{ErrInvalidArgument, connect.CodeInvalidArgument, "INVALID_ARGUMENT", bankv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED},
}

var rpcTable = func() []rpcerr.Mapping {
	m := make([]rpcerr.Mapping, len(errorTable))
	for i, e := range errorTable {
		m[i] = rpcerr.Mapping{Err: e.err, Code: e.code, Reason: e.reason}
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
