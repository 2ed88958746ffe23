// Package outbox is the durable offline outbox of the Remit client: payments
// are written to a local SQLite database before they are first sent, stay
// there while the gateway cannot be reached or answers with a retryable
// outcome, and leave it only when the gateway gives a final outcome, which is
// kept in a local history.
//
// The remit CLI uses [Outbox.Pay] for `remit pay`, [Outbox.List] and
// [Outbox.History] for `remit outbox`, [Outbox.Flush] for `remit outbox
// flush` and [Outbox.FlushWatch] for `remit outbox flush --watch`.
//
// # Invariants a change must keep
//
//   - A payment is committed to the outbox (SQLite in WAL mode with
//     synchronous=FULL, so fsynced) before the first byte of it is sent, so a
//     crash right after the user pressed enter loses nothing.
//   - A payment leaves the queue only on a final outcome from the gateway:
//     succeeded, or an answer that no resend can change (a decline,
//     IDEMPOTENCY_KEY_REUSED, permission denied) carrying the gateway's
//     ErrorInfo (domain remit.dev). Errors without it (a proxy, or a server
//     that is no gateway, answering 404), retryable outcomes, a rejected
//     token and gateway internal errors (the payment may still commit) keep
//     it queued, with the error as its last error. The outcome is written
//     to history in the same transaction as the delete: a crash leaves it
//     either queued or recorded, never neither.
//   - A transaction id names one payment for good. Enqueue (and Pay) look
//     it up in the queue and in history: the same payment again is not
//     queued or sent twice (Pay returns the recorded outcome); a different
//     payment under a used id is refused locally (ErrTransactionIDReused)
//     without contacting the gateway. A SUCCEEDED history row is never
//     replaced.
//   - Every send of a queued payment uses the transaction id and parameters
//     stored at enqueue time. A crash after the gateway answered but before
//     the answer was recorded only means the next flush sends it again, and
//     the gateway replays its stored outcome: exactly once.
//   - Payments are sent oldest first, and a flush stops at the first payment
//     it could not finish, so a later payment never overtakes an earlier one.
//   - Only one flusher sends at a time: [Outbox.Flush], [Outbox.Send] and
//     [Outbox.Pay] hold an exclusive flock on outbox.lock in the state
//     directory for their whole run, across processes. Idempotency would
//     keep a concurrent resend harmless, but the lock keeps it from
//     happening and keeps the order.
//   - An outbox handle sends only payments queued under its own client id
//     and gateway ([Options]), so logging in as someone else never sends
//     another client's queued payments from the wrong account. Gateway URLs
//     are compared normalized (client.NormalizeGatewayURL); a flush reports
//     the client's payments queued under other URLs ([FlushReport.Elsewhere]).
//
// The database and lock files are created readable by the user alone
// (0600), in a 0700 directory.
//
// # Files
//
// The state directory ($REMIT_HOME, or $XDG_STATE_HOME/remit, or
// ~/.local/state/remit; see client.StateDir) holds outbox.db (with its WAL
// files), outbox.lock (the flusher lock) and outbox-schema.lock (taken while
// the schema is created or migrated).
package outbox
