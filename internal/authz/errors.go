package authz

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/rpcerr"
)

// ErrorInfo reasons of the errors built by this package.
const (
	// ReasonUnauthenticated: no, invalid, expired or revoked credentials.
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonPermissionDenied: authenticated, but not allowed.
	ReasonPermissionDenied = "PERMISSION_DENIED"
	// ReasonRateLimited: the principal exceeded its request rate.
	ReasonRateLimited = "RATE_LIMITED"
)

// MetaRetryAfterMillis is the ErrorInfo metadata key of the retry hint of
// resource_exhausted errors: the number of milliseconds (decimal) after
// which the same call may succeed. The hint is also sent as a Retry-After
// response header in whole seconds, rounded up.
const MetaRetryAfterMillis = "retry_after_ms"

// Client-visible messages. They are the same whatever the cause, so that an
// error never tells whether a token was unknown, expired or revoked, or
// whether a denied target exists.
const (
	unauthenticatedMessage  = "missing, invalid or expired credentials: log in again"
	permissionDeniedMessage = "permission denied"
)

// Unauthenticated returns the error for a call without valid credentials:
// code unauthenticated, reason [ReasonUnauthenticated].
func Unauthenticated() *connect.Error {
	return rpcerr.New(connect.CodeUnauthenticated, ReasonUnauthenticated, unauthenticatedMessage, nil)
}

// PermissionDenied returns the error for an authenticated caller that may
// not do what it asked: code permission_denied, reason
// [ReasonPermissionDenied]. Handlers return it from ownership checks too,
// also when the target does not exist, so that callers cannot probe for
// other people's payments or accounts.
func PermissionDenied() *connect.Error {
	return rpcerr.New(connect.CodePermissionDenied, ReasonPermissionDenied, permissionDeniedMessage, nil)
}

// ResourceExhausted returns a resource_exhausted error with reason and msg
// that tells the client to retry after retryAfter, in ErrorInfo metadata
// ([MetaRetryAfterMillis]) and in a Retry-After header. The gateway uses it
// for login lockouts too, so that every "slow down" looks the same.
func ResourceExhausted(reason, msg string, retryAfter time.Duration) *connect.Error {
	retryAfter = max(retryAfter, time.Millisecond)
	ms := int64(math.Ceil(float64(retryAfter) / float64(time.Millisecond)))
	cerr := rpcerr.New(connect.CodeResourceExhausted, reason, msg,
		map[string]string{MetaRetryAfterMillis: strconv.FormatInt(ms, 10)})
	secs := int64(math.Ceil(retryAfter.Seconds()))
	cerr.Meta().Set("Retry-After", strconv.FormatInt(secs, 10))
	return cerr
}

// RateLimited returns the error for a principal over its rate limit:
// resource_exhausted, reason [ReasonRateLimited], with a retry hint.
func RateLimited(retryAfter time.Duration) *connect.Error {
	return ResourceExhausted(ReasonRateLimited,
		fmt.Sprintf("too many requests: retry after %v", retryAfter.Round(time.Millisecond)), retryAfter)
}

// RetryAfter returns the retry hint of an error built by
// [ResourceExhausted], as received by a client. ok is false if err carries
// none.
func RetryAfter(err error) (d time.Duration, ok bool) {
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeResourceExhausted {
		return 0, false
	}
	info := rpcerr.Info(err)
	if info == nil {
		return 0, false
	}
	ms, perr := strconv.ParseInt(info.GetMetadata()[MetaRetryAfterMillis], 10, 64)
	if perr != nil || ms < 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
