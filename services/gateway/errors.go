package gateway

import (
	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/rpcerr"
)

// errTable is the one place the gateway's sentinel errors become Connect
// codes and ErrorInfo reasons.
var errTable = []rpcerr.Mapping{
	{Err: ErrIdempotencyKeyReused, Code: connect.CodeInvalidArgument, Reason: "IDEMPOTENCY_KEY_REUSED"},
	{Err: ErrInProgress, Code: connect.CodeAborted, Reason: "REQUEST_IN_PROGRESS"},
	{Err: ErrBankUnavailable, Code: connect.CodeUnavailable, Reason: "BANK_UNAVAILABLE"},
	{Err: ErrNotFound, Code: connect.CodeNotFound, Reason: "NOT_FOUND"},
	{Err: ErrNotParticipant, Code: connect.CodePermissionDenied, Reason: "PERMISSION_DENIED"},
}

func toConnect(err error) error { return rpcerr.FromTable(err, errTable) }

// declineMessages says, for each decline reason, what happened and what to do.
var declineMessages = map[string]string{
	"INSUFFICIENT_FUNDS": "the payer's available balance is too low; deposit funds or pay a smaller amount with a new transaction id",
	"ACCOUNT_NOT_FOUND":  "an account does not exist at its bank; check the bank and account id and pay with a new transaction id",
	"CURRENCY_MISMATCH":  "an account holds a different currency than the payment; pay in the account's currency with a new transaction id",
	"BANK_UNAVAILABLE":   "a bank did not answer in time, so nothing moved; pay again with a new transaction id",
	"BANK_NOT_FOUND":     "the bank is not registered with the gateway; check the bank name (remit admin banks lists them) and pay with a new transaction id",
	"SAME_ACCOUNT":       "payer and payee are the same account; choose another payee and pay with a new transaction id",
	"BALANCE_OVERFLOW":   "the credit would overflow the receiving account's balance; nothing moved; contact the bank",
	"EXPIRED":            "the payment could not be decided in time, so nothing moved; pay again with a new transaction id",
	"DECLINED_BY_BANK":   "a bank declined for a reason of its own and nothing moved; the bank's logs say why",
}

// adjustmentMessages override declineMessages for deposits and withdrawals,
// which have an account rather than a payer and a payee.
var adjustmentMessages = map[string]string{
	"INSUFFICIENT_FUNDS": "the account's available balance is too low for this withdrawal; withdraw less with a new transaction id",
	"ACCOUNT_NOT_FOUND":  "the account does not exist at that bank; check the bank and account id and use a new transaction id",
	"CURRENCY_MISMATCH":  "the account holds another currency; use the account's currency with a new transaction id",
}

// declined is the error a client gets for a payment or adjustment that ended
// FAILED: failed_precondition with the failure reason.
func declined(t *Txn) error {
	msg := declineMessages[t.FailureReason]
	if t.Kind == KindAdjustment {
		if m, ok := adjustmentMessages[t.FailureReason]; ok {
			msg = m
		}
	}
	if msg == "" {
		msg = "declined"
	}
	return rpcerr.New(connect.CodeFailedPrecondition, t.FailureReason, "declined: "+msg,
		map[string]string{"transaction_id": t.ID})
}
