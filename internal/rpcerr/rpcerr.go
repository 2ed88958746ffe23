// Package rpcerr is the single place where Remit builds the Connect errors it
// returns to callers.
//
// Every error a Remit server sends carries a google.rpc.ErrorInfo detail
// (AIP-193) with a machine-readable Reason in UPPER_SNAKE_CASE and the Remit
// Domain, so that clients branch on Reason instead of parsing messages and so
// that logs can record a stable reason per failure.
//
// Domain errors are translated with a table ([Mapping] and [FromTable]);
// anything not in the table becomes a generic internal error whose message
// does not leak implementation details to the caller. The hidden cause stays
// reachable in-process through [Cause] so that server-side logs can still
// explain the failure.
package rpcerr

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Domain is the ErrorInfo domain of every error produced by Remit. AIP-193
// requires a globally unique domain so clients can tell Remit's reasons apart
// from those of other systems (for example a proxy or the bank) in the chain.
const Domain = "remit.dev"

// Reasons used by this package for errors that do not come from a table.
// They are exported so that clients and tests can compare against them
// without repeating string literals.
const (
	// ReasonInternal is the reason of every error that was not mapped to a
	// client-visible failure; the cause is deliberately not sent to clients.
	ReasonInternal = "INTERNAL"
	// ReasonCanceled is the reason used when the caller canceled the RPC.
	ReasonCanceled = "CANCELED"
	// ReasonDeadlineExceeded is the reason used when the RPC's deadline
	// expired before the work finished.
	ReasonDeadlineExceeded = "DEADLINE_EXCEEDED"
)

// InternalMessage is the only message a client ever sees for an unmapped
// error, so that database errors, file paths, bank responses and similar
// internals never cross the API boundary.
const InternalMessage = "internal error"

// New builds a Connect error with code and message msg and attaches an
// AIP-193 ErrorInfo{Reason: reason, Domain: Domain, Metadata: meta} detail.
// It exists so that every Remit error has the same shape; handlers should
// never call connect.NewError directly.
//
// msg and meta are sent to the client verbatim: never put secrets, account
// credentials or internal details in them.
func New(code connect.Code, reason string, msg string, meta map[string]string) *connect.Error {
	cerr := connect.NewError(code, errors.New(msg))
	attachInfo(cerr, reason, meta)
	return cerr
}

// Internal builds a connect.CodeInternal error for cause whose wire message
// is the generic [InternalMessage], so a failure can be reported without
// revealing what went wrong internally. The cause remains available
// in-process through [Cause] (and errors.Is / errors.As) for logging.
func Internal(cause error) *connect.Error {
	cerr := connect.NewError(connect.CodeInternal, &hiddenError{cause: cause})
	attachInfo(cerr, ReasonInternal, nil)
	return cerr
}

func attachInfo(cerr *connect.Error, reason string, meta map[string]string) {
	detail, err := connect.NewErrorDetail(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   Domain,
		Metadata: meta,
	})
	if err != nil {
		// Marshaling a well-formed ErrorInfo cannot fail; if it ever does,
		// the error is still correct without its detail.
		return
	}
	cerr.AddDetail(detail)
}

// Info returns the first ErrorInfo detail carried by err (which must be or
// wrap a *connect.Error), or nil. It works on both handler-side errors and
// errors received by a client, which lets callers read Domain and Metadata,
// not just the Reason.
func Info(err error) *errdetails.ErrorInfo {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return nil
	}
	for _, detail := range cerr.Details() {
		msg, derr := detail.Value()
		if derr != nil {
			continue
		}
		if info, ok := msg.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// Reason returns the ErrorInfo reason carried by err, or "" if err is not a
// *connect.Error or has no ErrorInfo detail. Clients use it to decide what
// to do about a failure; logs use it to record why an RPC failed.
func Reason(err error) string {
	if info := Info(err); info != nil {
		return info.GetReason()
	}
	return ""
}

// Cause returns the internal error hidden behind an error built by
// [Internal] or by [FromTable]'s fallback, or nil if err carries none. It
// lets server-side logs explain an internal failure that the client only
// sees as [InternalMessage].
func Cause(err error) error {
	if h, ok := errors.AsType[*hiddenError](err); ok {
		return h.cause
	}
	return nil
}

// Mapping translates one sentinel domain error into a client-visible Connect
// code and AIP-193 reason. A slice of Mappings is a service's error table: it
// keeps the translation from domain errors to API errors declarative and in
// one place per service.
type Mapping struct {
	// Err is matched with errors.Is, so wrapped errors match too.
	Err error
	// Code is the Connect code returned for a match.
	Code connect.Code
	// Reason is the AIP-193 reason (UPPER_SNAKE_CASE) returned for a match.
	Reason string
}

// FromTable converts err into a Connect error so that handlers can simply
// `return nil, rpcerr.FromTable(err, table)`. In order:
//
//   - nil stays nil;
//   - an error that already is (or wraps) a *connect.Error is returned as
//     that *connect.Error, because it was built deliberately;
//   - context.Canceled and context.DeadlineExceeded become
//     connect.CodeCanceled and connect.CodeDeadlineExceeded;
//   - the first Mapping whose Err matches (errors.Is) yields
//     New(m.Code, m.Reason, err.Error(), nil) — so the full message of a
//     mapped error is client-visible and must be written for clients;
//   - anything else becomes [Internal](err): connect.CodeInternal with the
//     generic [InternalMessage], never the error's own text.
func FromTable(err error, table []Mapping) error {
	if err == nil {
		return nil
	}
	if cerr, ok := errors.AsType[*connect.Error](err); ok {
		return cerr
	}
	switch {
	case errors.Is(err, context.Canceled):
		return New(connect.CodeCanceled, ReasonCanceled, context.Canceled.Error(), nil)
	case errors.Is(err, context.DeadlineExceeded):
		return New(connect.CodeDeadlineExceeded, ReasonDeadlineExceeded, context.DeadlineExceeded.Error(), nil)
	}
	for _, m := range table {
		if m.Err != nil && errors.Is(err, m.Err) {
			return New(m.Code, m.Reason, err.Error(), nil)
		}
	}
	return Internal(err)
}

// hiddenError keeps an internal cause reachable through errors.Is/As and
// Cause while presenting only InternalMessage as its text, which is what
// Connect puts on the wire.
type hiddenError struct {
	cause error
}

// Error returns InternalMessage, never the cause.
func (h *hiddenError) Error() string { return InternalMessage }

// Unwrap exposes the cause to errors.Is and errors.As.
func (h *hiddenError) Unwrap() error { return h.cause }

// EnumReason is the ErrorInfo reason of a proto enum value: its name without
// the enum's UPPER_SNAKE prefix, so gatewayv1.FailureReason_FAILURE_REASON_INSUFFICIENT_FUNDS
// and bankv1.RefusalReason_REFUSAL_REASON_INSUFFICIENT_FUNDS are both
// "INSUFFICIENT_FUNDS". The zero value (*_UNSPECIFIED) and numbers the enum
// does not define have no reason: "". It is the only place a reason is made
// from an enum name; [ParseEnumReason] is its inverse.
func EnumReason(v protoreflect.Enum) string {
	d := v.Descriptor().Values().ByNumber(v.Number())
	if d == nil || v.Number() == 0 {
		return ""
	}
	return strings.TrimPrefix(string(d.Name()), enumPrefix(v.Descriptor()))
}

// ParseEnumReason is the inverse of [EnumReason]: the value of enum E whose
// reason is reason, and false if there is none (including "").
func ParseEnumReason[E interface {
	protoreflect.Enum
	~int32
}](reason string) (E, bool) {
	var zero E
	if reason == "" {
		return zero, false
	}
	d := zero.Descriptor()
	v := d.Values().ByName(protoreflect.Name(enumPrefix(d) + reason))
	if v == nil || v.Number() == 0 {
		return zero, false
	}
	return E(v.Number()), true
}

// enumPrefix is the UPPER_SNAKE form of the enum's name plus "_", the prefix
// Buf's ENUM_VALUE_PREFIX rule puts on every value: "FAILURE_REASON_".
func enumPrefix(d protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(d.Name()) {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	b.WriteByte('_')
	return b.String()
}
