package gateway

import (
	"errors"
	"math"
	"strconv"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/auth"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/rpcerr"
	"github.com/remitpay/remit/internal/serve"
)

// This file holds the gateway's two error tables, the only places where an
// outcome becomes what a client reads:
//
//   - errTable: a sentinel error -> (Connect code, ErrorInfo reason,
//     message). Each sentinel is declared with its row (sentinel), and its
//     text is the message sent.
//   - failures: a gatewayv1.FailureReason of a transaction that ended FAILED
//     -> (code, message for payments, message for adjustments). The ErrorInfo
//     reason is the enum value's short name ([rpcerr.EnumReason]).
//
// One row stands alone because its message and details depend on the case:
// loginLocked, for an auth.LockoutError. toConnect applies all of them.
//
// The bank's RefusalReason values reach the second table through the one
// table in bankclient.go (refusalTable). Adding a reason is a value in
// types.proto and a row here; a test walks the enum.

// errTable is filled by sentinel, in declaration order.
var errTable []rpcerr.Mapping

// sentinel declares a sentinel error whose text msg is the client-visible
// message, and its row in errTable.
func sentinel(code connect.Code, reason, msg string) error {
	err := errors.New(msg)
	errTable = append(errTable, rpcerr.Mapping{Err: err, Code: code, Reason: reason})
	return err
}

// Sentinel errors of the coordinator and the handlers.
var (
	// ErrIdempotencyKeyReused: the transaction id was used before with other
	// parameters or by another client.
	ErrIdempotencyKeyReused = sentinel(connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED",
		"this transaction id was already used for a different request; generate a new transaction id")
	// ErrInProgress: a request with this id is still being processed.
	ErrInProgress = sentinel(connect.CodeAborted, "REQUEST_IN_PROGRESS",
		"a request with this transaction id is still in progress; retry later with the same transaction id")
	// ErrBankUnavailable: a bank is known to be down before anything was
	// recorded; the same id may be retried later.
	ErrBankUnavailable = sentinel(connect.CodeUnavailable, "BANK_UNAVAILABLE",
		"a bank involved is unavailable; nothing was recorded, retry later with the same transaction id")
	// ErrNotFound: no such transaction (or the caller may not see it).
	ErrNotFound = sentinel(connect.CodeNotFound, "NOT_FOUND", "no such payment")
	// ErrNotParticipant: a bank asked about a transaction it is not part of.
	ErrNotParticipant = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"the bank is not a participant of this transaction")
	// ErrExcusedParticipant: a bank asked about an id it voted
	// TRANSACTION_ID_CONFLICT for: what it holds under the id is another
	// transaction than the gateway's, whose outcome the gateway does not
	// know. It keeps its funds held until an operator reconciles the id.
	ErrExcusedParticipant = sentinel(connect.CodeFailedPrecondition, "TRANSACTION_ID_CONFLICT",
		"the gateway's transaction with this id is not the one this bank holds; keep it held until an operator reconciles the id")

	// ErrPaymentNotRefundable: a refund names a payment that is not
	// SUCCEEDED, or is itself a refund; wrapped with which. Nothing is
	// recorded.
	ErrPaymentNotRefundable = sentinel(connect.CodeFailedPrecondition, "PAYMENT_NOT_REFUNDABLE",
		"only a succeeded payment that is not itself a refund can be refunded")
	// ErrRefundExceedsPayment: the refund's amount plus the payment's
	// refunds that are processing or succeeded would exceed the payment;
	// wrapped with what is left. Nothing is recorded: the same refund id
	// may be retried (once a refund still processing has failed, say).
	ErrRefundExceedsPayment = sentinel(connect.CodeFailedPrecondition, "REFUND_EXCEEDS_PAYMENT",
		"the amount is more than is left to refund of this payment (refunds still processing count); refund at most what is left")
	// ErrTooManyRefunds: the payment has MaxRefundsPerPayment refunds
	// already, of any status. Nothing is recorded.
	ErrTooManyRefunds = sentinel(connect.CodeFailedPrecondition, "TOO_MANY_REFUNDS",
		"this payment has as many refunds as one payment may have (100, failed ones included); nothing was recorded")

	// ErrBalanceBankNotFound: a balance read names a bank that is not registered.
	ErrBalanceBankNotFound = sentinel(connect.CodeNotFound, "BANK_NOT_FOUND", "no bank of that name is registered")
	// ErrBalanceAccountNotFound: the bank says the account of a balance read does not exist.
	ErrBalanceAccountNotFound = sentinel(connect.CodeNotFound, "ACCOUNT_NOT_FOUND", "no such account at that bank")
	// ErrBalanceUnavailable: the bank did not answer a balance read within
	// Timing.BalanceCall.
	ErrBalanceUnavailable = sentinel(connect.CodeUnavailable, "BANK_UNAVAILABLE",
		"the account's bank did not answer; retry shortly")

	errBadCredentials = sentinel(connect.CodeUnauthenticated, "INVALID_CREDENTIALS", "client id or password is wrong")
	errNoPrincipal    = sentinel(connect.CodeUnauthenticated, "UNAUTHENTICATED", "log in first")
	errNoAccount      = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED", "this client has no account")
	errNotOwn         = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"customers may only read their own account")
	errNoPayer = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"this client has no account to pay from")
	errNotPayee = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"only the payee may acknowledge a payment")
	// errNotRefunder: the caller sees the payment (its payer) but is
	// neither its payee nor an admin.
	errNotRefunder = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"only the payee of a payment, or an admin, may refund it")
	errNotSucceeded = sentinel(connect.CodeFailedPrecondition, "PAYMENT_NOT_SUCCEEDED",
		"only a succeeded payment can be acknowledged")
	errAccountRequired = sentinel(connect.CodeInvalidArgument, "ACCOUNT_REQUIRED",
		"name the account to read: account.bank and account.account_id")
	errBadPageToken = sentinel(connect.CodeInvalidArgument, "INVALID_PAGE_TOKEN",
		"page_token is not one this server issued; pass next_page_token unchanged, or omit it for the first page")
	errShuttingDown = sentinel(connect.CodeUnavailable, "SHUTTING_DOWN",
		"the gateway is restarting; reconnect with after_event_id set to the last event id you saw")
	// errTooManyStreams: the principal holds as many WatchPayments streams
	// as it may; wrapped with the limit (watchHub.join). The reason is the
	// one the servers give an anonymous source over its stream cap.
	errTooManyStreams = sentinel(connect.CodeResourceExhausted, serve.ReasonTooManyStreams,
		"too many open WatchPayments streams for this client")
	errNotBank       = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED", "only banks may call the coordinator")
	errWrongBankName = sentinel(connect.CodePermissionDenied, "PERMISSION_DENIED",
		"a bank may only register under the name in its certificate")
)

// Users and registration (issue 12). The auth package's sentinels carry
// their own client-visible messages (a weak password says why); mapped
// declares their rows.
var (
	errEnrollmentCodeInvalid = sentinel(connect.CodeFailedPrecondition, "ENROLLMENT_CODE_INVALID",
		"the enrollment code is not valid for this account (wrong, expired or already used); ask the account's bank for a new code")
	errRegisterBankNotFound = sentinel(connect.CodeFailedPrecondition, "BANK_NOT_FOUND",
		"no bank of that name is registered; check account.bank (remit admin banks lists them)")
	errRegisterBankUnavailable = sentinel(connect.CodeUnavailable, "BANK_UNAVAILABLE",
		"the account's bank did not answer, so no user was created; retry with the same code")
	errCannotDisableSelf = sentinel(connect.CodeFailedPrecondition, "CANNOT_DISABLE_SELF",
		"an admin cannot disable itself; ask another admin")

	_ = mapped(auth.ErrWeakPassword, connect.CodeInvalidArgument, "WEAK_PASSWORD")
	_ = mapped(auth.ErrClientIDTaken, connect.CodeAlreadyExists, "CLIENT_ID_TAKEN")
	_ = mapped(auth.ErrAccountLinked, connect.CodeAlreadyExists, "ACCOUNT_ALREADY_LINKED")
	_ = mapped(auth.ErrAccountRequired, connect.CodeInvalidArgument, "ACCOUNT_REQUIRED")
	_ = mapped(auth.ErrInvalidUser, connect.CodeInvalidArgument, "INVALID_USER")
	_ = mapped(auth.ErrUnknownUser, connect.CodeNotFound, "USER_NOT_FOUND")
)

// mapped declares the row of a sentinel another package owns, whose text
// is the message sent.
func mapped(err error, code connect.Code, reason string) error {
	errTable = append(errTable, rpcerr.Mapping{Err: err, Code: code, Reason: reason})
	return err
}

// toConnect is the one translation of a gateway error for a client: a
// lockout (loginLocked), else errTable.
func toConnect(err error) error {
	if locked, ok := errors.AsType[*auth.LockoutError](err); ok {
		return loginLocked(locked)
	}
	return rpcerr.FromTable(err, errTable)
}

// reasonLoginLocked is the ErrorInfo reason of a login refused while its
// source is locked out (for the client id or for all).
const reasonLoginLocked = "LOGIN_LOCKED"

// loginLocked is the row of the one error whose message and details depend
// on the case: a login refused during a lockout is resource_exhausted,
// LOGIN_LOCKED, with the wait in whole seconds in the message and as a retry
// hint (authz.ResourceExhausted: ErrorInfo metadata and Retry-After).
func loginLocked(l *auth.LockoutError) error {
	secs := int64(math.Ceil(l.RetryAfter.Seconds()))
	return authz.ResourceExhausted(reasonLoginLocked,
		"too many failed logins; wait "+strconv.FormatInt(secs, 10)+"s before trying again", l.RetryAfter)
}

// Sentinel errors of the account RPCs (accountsapi.go). Their reasons are
// the bank's, passed on under the same names; a read of a missing account,
// a bad page token and an unanswered bank reuse the rows above.
var (
	// errAccountBankNotFound: OpenAccount, CloseAccount or ListAccounts
	// names a bank that is not registered.
	errAccountBankNotFound = sentinel(connect.CodeFailedPrecondition, "BANK_NOT_FOUND",
		"no bank of that name is registered; check the bank name (remit admin banks lists them)")
	errAccountExists = sentinel(connect.CodeAlreadyExists, "ACCOUNT_EXISTS",
		"an account with this id already exists at that bank (open or closed); choose another account id")
	errOpenKeyReused = sentinel(connect.CodeInvalidArgument, "IDEMPOTENCY_KEY_REUSED",
		"this request id was already used to open a different account; generate a new request id")
	errAccountNotEmpty = sentinel(connect.CodeFailedPrecondition, "ACCOUNT_NOT_EMPTY",
		"the account still has a balance, or funds held or incoming for payments in flight; withdraw everything, wait for payments to finish and close it again")
)

// failure is what a client gets for a transaction that ended FAILED.
type failure struct {
	code connect.Code
	// msg says what happened to a payment and what to do.
	msg string
	// adjust replaces msg for deposits and withdrawals, which have an
	// account rather than a payer and a payee; "" means msg.
	adjust string
}

// failures is the one table from a FailureReason to its code and messages.
// Every FailureReason but UNSPECIFIED has a row (a test checks).
var failures = map[gatewayv1.FailureReason]failure{
	gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS: {connect.CodeFailedPrecondition,
		"the payer's available balance is too low; deposit funds or pay a smaller amount with a new transaction id",
		"the account's available balance is too low for this withdrawal; withdraw less with a new transaction id"},
	gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_NOT_FOUND: {connect.CodeFailedPrecondition,
		"an account does not exist at its bank; check the bank and account id and pay with a new transaction id",
		"the account does not exist at that bank; check the bank and account id and use a new transaction id"},
	gatewayv1.FailureReason_FAILURE_REASON_CURRENCY_MISMATCH: {connect.CodeFailedPrecondition,
		"an account holds a different currency than the payment; pay in the account's currency with a new transaction id",
		"the account holds another currency; use the account's currency with a new transaction id"},
	gatewayv1.FailureReason_FAILURE_REASON_BANK_UNAVAILABLE: {connect.CodeFailedPrecondition,
		"a bank did not answer in time, so nothing moved; pay again with a new transaction id", ""},
	gatewayv1.FailureReason_FAILURE_REASON_BANK_NOT_FOUND: {connect.CodeFailedPrecondition,
		"the bank is not registered with the gateway; check the bank name (remit admin banks lists them) and pay with a new transaction id", ""},
	gatewayv1.FailureReason_FAILURE_REASON_SAME_ACCOUNT: {connect.CodeFailedPrecondition,
		"payer and payee are the same account; choose another payee and pay with a new transaction id", ""},
	gatewayv1.FailureReason_FAILURE_REASON_BALANCE_OVERFLOW: {connect.CodeFailedPrecondition,
		"the credit would overflow the receiving account's balance; nothing moved; contact the bank", ""},
	gatewayv1.FailureReason_FAILURE_REASON_EXPIRED: {connect.CodeFailedPrecondition,
		"the payment could not be decided in time, so nothing moved; pay again with a new transaction id", ""},
	gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK: {connect.CodeFailedPrecondition,
		"a bank declined for a reason of its own and nothing moved; the bank's logs say why", ""},
	gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED: {connect.CodeFailedPrecondition,
		"an account is closed at its bank; nothing moved; pay another account with a new transaction id",
		"the account is closed at its bank; nothing moved"},
	// Not a decline: the id may have moved money under a record the gateway
	// no longer has, so paying again with a new id could pay twice.
	gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT: {connect.CodeFailedPrecondition,
		"a bank already knows this transaction id for a different transaction, so nothing was applied for this request; do not pay again with a new transaction id until an operator has reconciled this id with the bank",
		"the bank already knows this transaction id for a different transaction, so nothing was applied for this request; do not retry the deposit or withdrawal with a new transaction id until an operator has reconciled this id with the bank"},
}

// refundFailures replaces the message of failures for a refund where the
// payment's says something wrong about it: the account that pays a refund
// is the refunded payment's payee.
var refundFailures = map[gatewayv1.FailureReason]string{
	gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS: "the available balance of the account paying the refund (the payment's payee) is too low; fund it, or refund less, with a new refund id",
	// A refund has no other account to go to: it moves money only between
	// the payment's two accounts.
	gatewayv1.FailureReason_FAILURE_REASON_ACCOUNT_CLOSED: "one of the payment's accounts (the metadata names it) is closed at its bank; nothing moved, and no refund of this payment can move money while it stays closed",
}

// failedReason is the FailureReason a FAILED transaction stored with reason
// r shows, in its Payment (paymentProto) and in its ErrorInfo (declined)
// alike: r, or DECLINED_BY_BANK when r has no row in failures (a row stored
// without a reason).
func failedReason(r gatewayv1.FailureReason) gatewayv1.FailureReason {
	if _, ok := failures[r]; !ok {
		return gatewayv1.FailureReason_FAILURE_REASON_DECLINED_BY_BANK
	}
	return r
}

// Metadata keys of a FAILED transaction's ErrorInfo.
const (
	metaTransactionID = "transaction_id"
	metaBank          = "bank"
	metaAccountID     = "account_id"
)

// declined is the error a client gets for a payment or adjustment that ended
// FAILED: the code and message of its reason's row in failures, the reason's
// short name as the ErrorInfo reason, and the transaction id plus, when a
// bank refused, the bank and the account it named as metadata.
func declined(t *Txn) error {
	reason := failedReason(t.FailureReason)
	f := failures[reason]
	msg := f.msg
	if t.Kind == KindAdjustment && f.adjust != "" {
		msg = f.adjust
	}
	if m, ok := refundFailures[reason]; ok && t.RefundOf != "" {
		msg = m
	}
	meta := map[string]string{metaTransactionID: t.ID}
	if t.FailureBank != "" {
		meta[metaBank] = t.FailureBank
	}
	if t.FailureAccount != "" {
		meta[metaAccountID] = t.FailureAccount
	}
	return rpcerr.New(f.code, rpcerr.EnumReason(reason), msg, meta)
}
