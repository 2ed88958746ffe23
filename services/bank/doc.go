// Package bank is one Remit bank: a durable ledger of accounts, a
// two-phase-commit participant for the gateway's payments, single-phase
// deposits and withdrawals, a resolver for prepared transactions whose
// decision never arrived, and a loop that keeps the bank registered with the
// gateway.
//
// [Run] wires everything together; [OpenLedger], [NewHTTPHandler],
// [Resolver] and [Registrar] are exported so that tests and other binaries
// can assemble the parts themselves.
//
// # Money rules
//
// Three rules outrank everything else in this package:
//
//   - Money is never created or destroyed. Every balance change is a
//     journaled leg of a committed transaction, an adjustment or an opening
//     balance, written in the same SQLite transaction as the balance.
//   - A payment is never applied twice. A transaction id is applied at most
//     once: its prepared record moves from prepared to committed exactly once,
//     and the journal's UNIQUE(transaction_id, account_id, direction) refuses
//     a second application even if that record was pruned.
//   - Nothing acknowledged is ever lost. Every state change is committed
//     before the RPC answers (group commit, store.Group, shares one
//     transaction and fsync among concurrent calls and answers each only
//     after it), with synchronous=FULL for votes, adjustments and accounts.
//     Commit records alone are not forced (DoUnforced): a process crash
//     loses none, a power loss may lose the latest, which leaves the
//     transaction prepared as its forced vote did, and the resolver asks the
//     gateway, which keeps every decision (docs/protocol.md, "Writes that
//     are not forced"; TestLostCommitRecord). Abort records and tombstones
//     are forced: a late prepare of an aborted id must be refused.
//
// # Invariants of the participant
//
// A newcomer must not break these:
//
//   - A YES vote is durable before it is sent. Prepare writes the prepared
//     record, its legs and the holds in one committed transaction and only
//     then returns YES. A crash after the vote finds the hold on restart.
//   - A YES is never unilaterally aborted. Once the bank voted YES the
//     gateway may already have decided COMMIT and another bank applied it;
//     aborting on our own would destroy money. Past its expire_time a
//     prepared transaction is resolved by asking the gateway
//     (GetTransactionOutcome, see [Resolver]); while the gateway cannot be
//     reached the funds stay held.
//   - Holds are released only by a decision: CommitTransaction from the
//     gateway, or the gateway's answer to the resolver.
//   - A YES can always be honoured. Debits are reserved in accounts.held
//     (available = balance - held never goes below zero) and credits in
//     accounts.incoming (balance + incoming never exceeds 2^63-1), so
//     applying a COMMIT can neither overdraw nor overflow an account.
//   - A closed account never moves. CloseAccount checks balance = held =
//     incoming = 0 and closes in one transaction of the ledger's one writer,
//     the same writer every prepare goes through: no YES vote on the account
//     can be undecided at the close (its hold or incoming credit would not be
//     zero), and after it every prepare leg on the account votes NO
//     (ACCOUNT_CLOSED) and every adjustment is refused. So closing never
//     breaks a promise, and the accounts table's CHECK (a closed account is
//     empty) holds by construction.
//
// # Accounts at run time
//
// Accounts come from the bank's YAML (opened on every start if missing,
// never reset, and a closed one stays closed: [Ledger.EnsureAccount] leaves
// an existing account alone) or from OpenAccount, idempotent by its request
// id. Both open with a journaled opening entry, so the journal still
// explains every balance. An account id is never reused, even once closed.
//
// # Enrollment codes
//
// `remit bank enroll` ([Enroll]) writes a one-time code for an open account
// into the ledger, as a second writer beside the running bank (WAL and the
// busy timeout let it take its turn); the ledger keeps only its hash. The
// gateway consumes it for a new customer with ConsumeEnrollmentCode. A new
// code revokes the older unconsumed ones; five wrong tries lock an account
// id until a new code is issued; every failure reads the same
// (ENROLLMENT_CODE_INVALID) and costs the same work whether the account
// exists or not. The rules are in enrollment.go.
//
// # Idempotency and presumed abort
//
// Repeating a prepare with the same legs returns the same vote; with other
// legs it votes NO (CONFLICT). A NO vote is recorded too, as an aborted
// record carrying the refusal, so a repeated prepare gets the same NO and a
// prepare delayed in the network cannot hold funds after the gateway aborted.
// COMMIT and ABORT are idempotent. ABORT of an id never seen here succeeds
// (presumed abort) and leaves an aborted tombstone, so a late prepare of that
// id votes NO (ALREADY_ABORTED). COMMIT of an unknown or aborted id and ABORT
// of a committed id are errors: they mean the gateway and the bank disagree,
// which an operator must look at.
//
// OpenAccount is idempotent by request id in the same way: a repeat returns
// the account, other parameters are [ErrIdempotencyKeyReused]. CloseAccount
// of a closed account succeeds.
//
// UpdateBalance is idempotent by transaction id: a repeat with the same
// parameters returns the stored result; other parameters, or an id already
// used by a payment, are refused with [ErrIdempotencyKeyReused]. A refusal
// is recorded too and is just as final: a repeat gets the same refusal.
//
// # Retention
//
// Decided (committed or aborted) prepared records are pruned after the
// retention period (7 days by default); prepared ones never are. The journal,
// the adjustments, the account openings and the enrollment codes (hashes)
// are never pruned.
//
// # Errors
//
// The ledger returns sentinel errors ([ErrAccountNotFound],
// [ErrInsufficientFunds], ...) wrapped with %w. They become Connect codes
// and ErrorInfo reasons in one table at the RPC boundary (errors.go); in
// PrepareTransaction the refusals are a NO vote, not an error.
package bank
