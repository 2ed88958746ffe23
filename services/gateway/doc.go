// Package gateway is Remit's payment gateway: it authenticates clients,
// authorizes every call, and coordinates payments between accounts held at
// independent banks with a two-phase commit over a durable decision log.
//
// # The log
//
// Store keeps one row per client transaction id in embedded SQLite (WAL,
// synchronous=FULL). Rows are kept forever, so idempotency keys outlive the
// 7 days the API promises. Writes go through group commit (store.Group):
// many calls' writes share one SQLite transaction and its fsync, and each
// call returns only after that fsync, so "durably before" below holds per
// write exactly as with a transaction each. The phase-two acknowledgements
// are the one exception: they are not forced (see below).
//
// # Invariants a change must keep
//
//   - A transaction id is claimed (inserted) durably before any bank hears of
//     it, so every prepared transaction at a bank has a row here. The claim
//     must stay forced even though its decision is: see "Why the claim stays
//     forced" in docs/protocol.md (TestClaimAndDecisionAreForced).
//   - The decision (COMMIT or ABORT) is written with compare-and-set before
//     phase two starts and never changes afterwards. A bank asking for the
//     outcome of an undecided payment makes the gateway decide ABORT first,
//     so the gateway can never commit after telling a bank it aborted.
//   - COMMIT is decided only if every participant voted YES before the
//     payment's decision deadline.
//   - Phase two is re-sent until every participant acknowledges it, across
//     gateway restarts (Coordinator.Run). On start, payments left undecided
//     by a dead process are aborted (presumed abort, Coordinator.Recover).
//     The acknowledgements are written after MakePayment answers, and not
//     forced (store.Group.DoUnforced): losing them in a crash or a power loss
//     only makes the next start send the decision again, which a bank
//     answers without applying anything twice.
//   - One slow or dead bank never delays the re-driver's work for another:
//     each bank's backlog (phase two, unanswered adjustments) is driven by a
//     worker of its own, a bank known to be unreachable is not called, and
//     the first call a bank leaves unanswered ends its pass; stale aborts
//     need no bank at all.
//   - A participant that voted TRANSACTION_ID_CONFLICT holds the id for
//     another transaction: it is recorded as excused when its vote arrives
//     and is never sent this payment's decision nor told its outcome.
//     Presumed abort does not cover what it holds; an operator does.
//   - The protocol runs on a context detached from the client's request: a
//     client hanging up never leaves a payment half-done.
//   - The refunds of a payment never add up to more than it: the
//     refundable-amount check (Store.Claim) runs in the same store
//     transaction as the insert of the refund's row, counting the refunds
//     that are processing or succeeded, after every write before it.
//
// # Refunds
//
// A refund (RefundPayment) is a payment of its own, run by Coordinator.Pay
// like any other: from the refunded payment's payee back to its payer, in its
// currency, claimed, prepared, decided and delivered by the same code, with
// the same idempotency (the refund id is its transaction id; its fingerprint
// has a kind of its own, so a refund id equal to a payment's id is a reused
// key). Its row has kind payment and refunded_transaction_id naming the
// payment, so recovery, the re-driver, GetTransactionOutcome, the events and
// the listings treat it as the payment it is. A refund that fails frees its
// amount; one refused at the claim (REFUND_EXCEEDS_PAYMENT,
// PAYMENT_NOT_REFUNDABLE) records nothing. A payment shows its refunds
// (Txn.Refunds), read for the payments being shown in one query
// (Store.WithRefunds); the coordinator never needs them.
//
// # Errors
//
// Domain code returns sentinel errors; errors.go maps them to Connect codes
// and ErrorInfo reasons in one table. A decline (insufficient funds, unknown
// account, ...) is not an error inside the package: it is a Txn with status
// failed, turned into failed_precondition at the RPC boundary.
package gateway
