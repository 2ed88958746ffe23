package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/internal/rpcerr"
)

// ErrorInfo reasons the client acts on. They mirror the gateway's error
// table and internal/authz; a test keeps them in sync.
const (
	// ReasonRequestInProgress: the gateway is still processing an earlier
	// try with the same transaction id; retrying with that id is safe.
	ReasonRequestInProgress = "REQUEST_IN_PROGRESS"
	// ReasonUnauthenticated: the token is missing, expired or revoked.
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonIdempotencyKeyReused: the transaction id was already used for a
	// different request; only a new id can succeed.
	ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// ReasonNotServing: the gateway answered its health check as not serving.
	ReasonNotServing = "NOT_SERVING"
)

// Metadata keys of the retry hint of resource_exhausted errors. The gateway
// sends milliseconds (retry_after_ms) for both its rate limiter and its
// login lockout; whole seconds are accepted too, for servers that send
// those.
const (
	metaRetryAfterMillis  = "retry_after_ms"
	metaRetryAfterSeconds = "retry_after_seconds"
)

// ErrInvalidRequest is wrapped by errors about requests the client refuses
// to send because the gateway would certainly reject them (a missing payee,
// a non-positive amount, a malformed transaction id). Nothing was sent.
var ErrInvalidRequest = errors.New("invalid request")

// Error is the error every RPC method of [Client] returns once the gateway
// has answered with a final outcome or the retries are used up. It keeps the
// Connect code and the AIP-193 ErrorInfo reason so callers branch on those
// rather than on messages, and the transaction id so a caller can retry,
// look the payment up, or tell the user which payment failed.
type Error struct {
	// Code is the Connect code of the last attempt.
	Code connect.Code
	// Reason is the ErrorInfo reason, e.g. "INSUFFICIENT_FUNDS"; empty if
	// the error did not come from Remit (a transport failure).
	Reason string
	// Message is the server's message (actionable, safe to show), or the
	// transport error. The "declined: " that older gateways put before a
	// decline's message is dropped (see trimOldDeclined).
	Message string
	// TransactionID is the id of the payment or adjustment, if the call
	// had one.
	TransactionID string
	// Retryable reports whether the outcome is unknown or transient, so
	// that sending the same request again with the same transaction id is
	// safe and may succeed. Declines and other final answers are not.
	Retryable bool
	// RetryAfter is the server's hint of when to try again, if it sent one.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent.
	Attempts int

	err error
}

// Error returns the code, reason and message, e.g.
// "failed_precondition INSUFFICIENT_FUNDS: the payer's available balance is too low; ...".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code.String())
	if e.Reason != "" {
		b.WriteString(" ")
		b.WriteString(e.Reason)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the underlying *connect.Error (or transport error), so
// connect.CodeOf and errors.Is(err, context.Canceled) keep working.
func (e *Error) Unwrap() error { return e.err }

// IsDeclined reports whether err is a final decline by the gateway
// (failed_precondition: insufficient funds, unknown account, ...). A declined
// payment moved no money; paying again needs a new transaction id.
//
// FAILURE_REASON_TRANSACTION_ID_CONFLICT is not a decline, although it is
// failed_precondition too: a bank holds the id for a different transaction,
// so the gateway's and the bank's records disagree, and paying again with a
// new id could pay twice. Wait for an operator to reconcile the id.
func IsDeclined(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == connect.CodeFailedPrecondition &&
		e.Reason != rpcerr.EnumReason(gatewayv1.FailureReason_FAILURE_REASON_TRANSACTION_ID_CONFLICT)
}

// FailureReasonOf returns why a payment or adjustment ended FAILED, from the
// gateway's error for it (failed_precondition, whose ErrorInfo reason is the
// FailureReason's short name), and false for any other error. It is the
// typed form of [Error.Reason] for a failure; [IsDeclined] says whether the
// failure is a decline.
func FailureReasonOf(err error) (gatewayv1.FailureReason, bool) {
	var e *Error
	if !errors.As(err, &e) || e.Code != connect.CodeFailedPrecondition {
		return gatewayv1.FailureReason_FAILURE_REASON_UNSPECIFIED, false
	}
	return rpcerr.ParseEnumReason[gatewayv1.FailureReason](e.Reason)
}

// FailureWords is a FailureReason in lower-case words, e.g. "insufficient
// funds" for FAILURE_REASON_INSUFFICIENT_FUNDS, and "" for UNSPECIFIED:
// a label for people, not a message (the gateway's message says what to do).
func FailureWords(r gatewayv1.FailureReason) string {
	return strings.ToLower(strings.ReplaceAll(rpcerr.EnumReason(r), "_", " "))
}

// IsRetryable reports whether err leaves a request's outcome unknown or
// transient, so that sending it again with the same transaction id is safe.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable
}

// Retryable is the retry classifier: it reports whether an error returned
// by a Connect call means the request may safely be sent again with the same
// transaction id. See the package documentation for the list and why.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		// Connect wraps every failure of a call; anything else is local and
		// was never sent, or is a context error: the outcome is unknown.
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
	switch cerr.Code() {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted:
		return true
	case connect.CodeCanceled:
		// The caller gave up or the stream was reset: no answer was read.
		return true
	case connect.CodeAborted:
		return rpcerr.Reason(err) == ReasonRequestInProgress
	case connect.CodeUnknown, connect.CodeInternal:
		// Remit attaches an ErrorInfo to every error it sends. Without one
		// the failure happened on the way (a reset stream, a proxy's 500), so
		// the gateway's answer, if any, was not received.
		return !fromRemit(err)
	default:
		return false
	}
}

// fromRemit reports whether err carries a Remit ErrorInfo, i.e. was built
// by a Remit server rather than by a transport or a proxy.
func fromRemit(err error) bool {
	info := rpcerr.Info(err)
	return info != nil && info.GetDomain() == rpcerr.Domain
}

// retryAfter returns the server's retry hint carried by err.
func retryAfter(err error) (time.Duration, bool) {
	info := rpcerr.Info(err)
	if info == nil {
		return 0, false
	}
	meta := info.GetMetadata()
	if v, err := strconv.ParseInt(meta[metaRetryAfterMillis], 10, 64); err == nil && v >= 0 {
		return time.Duration(v) * time.Millisecond, true
	}
	if v, err := strconv.ParseInt(meta[metaRetryAfterSeconds], 10, 64); err == nil && v >= 0 {
		return time.Duration(v) * time.Second, true
	}
	return 0, false
}

// newError converts the error of a call into an *Error.
func newError(err error, txID string, attempts int) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	e = &Error{
		Code:          connect.CodeOf(err),
		TransactionID: txID,
		Retryable:     Retryable(err),
		Attempts:      attempts,
		err:           err,
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		e.Message = cerr.Message()
		if fromRemit(err) {
			e.Reason = rpcerr.Reason(err)
			if e.Code == connect.CodeFailedPrecondition {
				e.Message = trimOldDeclined(e.Message)
			}
		}
	} else {
		e.Message = err.Error()
	}
	if e.Code == connect.CodeUnknown && !errors.As(err, &cerr) {
		switch {
		case errors.Is(err, context.Canceled):
			e.Code = connect.CodeCanceled
		case errors.Is(err, context.DeadlineExceeded):
			e.Code = connect.CodeDeadlineExceeded
		}
	}
	e.RetryAfter, _ = retryAfter(err)
	return e
}

// trimOldDeclined drops the "declined: " prefix (and the bare "declined")
// that gateways before the typed FailureReason put on their decline
// messages, so that a caller which says "declined" itself, as the CLI does,
// does not say it twice against an older gateway. Outbox migration 002 does
// the same to history already written. Kept for one release of
// compatibility with those gateways; remove it in the next.
func trimOldDeclined(msg string) string {
	if msg == "declined" {
		return ""
	}
	return strings.TrimPrefix(msg, "declined: ")
}

// invalid returns an ErrInvalidRequest error for a request that was not sent.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}
