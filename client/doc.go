// Package client is the Go SDK for Remit: log in, pay with safe retries,
// read balances and payments, follow payment events, and the admin calls.
// The remit CLI is a thin layer over it, and other Go programs import it the
// same way.
//
// # Connecting
//
// [New] builds a [Client] from a [Config]: the gateway's https URL, the CA
// that signed its certificate, and a bearer token from an earlier
// [Client.Login] (or [Credentials], to log in on demand). Every call goes
// over HTTP/2 with TLS 1.3 and is bounded by Config.Timeout per attempt, so a
// dead gateway never hangs a caller.
//
// # Safe retries
//
// A payment is identified by the transaction id the client generates once
// ([PaymentRequest.TransactionID]); the gateway stores the outcome under that
// id, and a retry with the same id and the same parameters gets the stored
// outcome instead of moving money twice. The client therefore retries, always
// with the same id, only when the outcome is unknown or nothing was done:
//
//   - no response at all (connection refused or reset, TLS or HTTP/2
//     failures), and unknown/internal errors that did not come from Remit;
//   - unavailable (e.g. BANK_UNAVAILABLE: nothing was recorded);
//   - deadline_exceeded (the answer was lost; the retry gets it);
//   - aborted with reason REQUEST_IN_PROGRESS (the first try is still running);
//   - resource_exhausted, after the server's retry_after_ms hint.
//
// Retries back off exponentially with jitter up to a cap ([RetryPolicy]) and
// carry the Remit-Retry-Attempt header so the gateway's logs tell them apart.
// Every other outcome is final and returned as an [*Error] carrying the
// gateway's ErrorInfo reason; [IsDeclined] tells a decline (no money moved)
// from other failures. An expired token causes one re-login when
// [Credentials] are configured, then one more try.
//
// The same holds for the other idempotent writes, each by its own key:
// [Client.Refund] by refund id, [Client.OpenAccount] by request id, and
// DisableUser, EnableUser, RevokeSessions and CloseAccount, which change
// nothing the second time. Writes that are not idempotent are sent once and
// never retried blindly: [Client.Register], [Client.CreateUser],
// [Client.ResetPassword] and [Client.ChangePassword] (a retry after a lost
// answer would find the client id taken, the enrollment code used, or count
// a failed login). Their errors still say, through Retryable, whether the
// outcome is unknown, so that the caller checks before trying again. Only a
// token the gateway rejected (reason UNAUTHENTICATED) is renewed with
// [Credentials] and the call sent once more.
//
// # Invariants a change must keep
//
//   - Every retry of a money-moving call reuses the first attempt's
//     transaction id and parameters byte for byte; changing either turns a
//     safe retry into IDEMPOTENCY_KEY_REUSED or, worse, a second payment.
//   - An outcome is reported as final only if retrying cannot change it.
//     When in doubt an error is retryable: the durable outbox
//     (package client/outbox) keeps retryable payments queued, so a wrong
//     "retryable" costs a resend while a wrong "final" loses a payment.
//   - Tokens and passwords are never logged or put in error messages.
package client
