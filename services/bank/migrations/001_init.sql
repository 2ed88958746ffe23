-- The bank's ledger. Amounts are INTEGER in the currency's smallest unit;
-- times are INTEGER Unix nanoseconds (UTC). Tables are STRICT so SQLite can
-- never silently turn an overflowing sum into a REAL: money stays integral.

-- accounts holds the booked balance and the two reservations that prepared
-- transactions make on it:
--   held     debits voted YES but not yet decided; available = balance - held.
--   incoming credits voted YES but not yet decided; balance + incoming never
--            exceeds 2^63-1, so a COMMIT can always be applied.
CREATE TABLE accounts (
    account_id  TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    incoming    INTEGER NOT NULL DEFAULT 0 CHECK (incoming >= 0),
    create_time INTEGER NOT NULL,
    CHECK (held <= balance)
) STRICT;

-- journal is the append-only record of every movement that changed a
-- balance: the opening balance, each committed payment leg and each
-- adjustment. A transaction moves an account at most once per direction,
-- which the UNIQUE constraint enforces as a last line of defence against
-- applying a payment twice. It is never pruned.
CREATE TABLE journal (
    entry_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT    NOT NULL,
    account_id     TEXT    NOT NULL REFERENCES accounts (account_id),
    direction      TEXT    NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount         INTEGER NOT NULL,
    balance        INTEGER NOT NULL CHECK (balance >= 0),
    kind           TEXT    NOT NULL CHECK (kind IN ('opening', 'payment', 'adjustment')),
    entry_time     INTEGER NOT NULL,
    CHECK (amount > 0 OR (kind = 'opening' AND amount = 0)),
    UNIQUE (transaction_id, account_id, direction)
) STRICT;
CREATE INDEX journal_account ON journal (account_id, entry_id);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;

-- prepared_transactions is the two-phase-commit participant log: one row per
-- transaction id this bank voted on or was told to abort.
--   prepared  voted YES; the legs' debits are in accounts.held and credits in
--             accounts.incoming until a decision arrives.
--   committed the legs were applied and journaled.
--   aborted   released, refused (refusal_reason set: the NO vote is repeated
--             to a repeated prepare) or a tombstone for an ABORT of an id never
--             prepared here (fingerprint '', no legs).
-- Decided rows are pruned after the retention period; prepared rows never.
CREATE TABLE prepared_transactions (
    transaction_id  TEXT    NOT NULL PRIMARY KEY,
    state           TEXT    NOT NULL CHECK (state IN ('prepared', 'committed', 'aborted')),
    fingerprint     TEXT    NOT NULL,
    refusal_reason  TEXT    NOT NULL DEFAULT '',
    refusal_account TEXT    NOT NULL DEFAULT '',
    expire_time     INTEGER NOT NULL,
    create_time     INTEGER NOT NULL,
    decide_time     INTEGER,
    CHECK ((state = 'prepared') = (decide_time IS NULL)),
    CHECK (refusal_reason = '' OR state = 'aborted')
) STRICT;
CREATE INDEX prepared_transactions_expiry ON prepared_transactions (expire_time) WHERE state = 'prepared';
CREATE INDEX prepared_transactions_decided ON prepared_transactions (decide_time) WHERE state <> 'prepared';

-- prepared_legs are the legs of a transaction, in request order.
CREATE TABLE prepared_legs (
    transaction_id TEXT    NOT NULL REFERENCES prepared_transactions (transaction_id) ON DELETE CASCADE,
    leg_index      INTEGER NOT NULL,
    account_id     TEXT    NOT NULL,
    direction      TEXT    NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    PRIMARY KEY (transaction_id, leg_index)
) STRICT;

-- adjustments makes UpdateBalance idempotent: the parameters and result of
-- each applied single-phase movement, kept like the journal.
CREATE TABLE adjustments (
    transaction_id TEXT    NOT NULL PRIMARY KEY,
    account_id     TEXT    NOT NULL REFERENCES accounts (account_id),
    direction      TEXT    NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    balance        INTEGER NOT NULL,
    apply_time     INTEGER NOT NULL
) STRICT;
