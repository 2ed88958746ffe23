-- Accounts at run time (issue 12): accounts opened and closed through
-- BankService, and the one-time enrollment codes that prove a customer holds
-- an account.

-- state: an open account takes payments; a closed one refuses every prepare
-- leg and every movement and stays readable. Only an empty account closes
-- (nothing booked, held or incoming), and a closed account can never be
-- anything but empty, because nothing can move it: the CHECK says so to the
-- database too. close_time is set exactly when the account is closed.
ALTER TABLE accounts ADD COLUMN state TEXT NOT NULL DEFAULT 'open'
    CHECK (state IN ('open', 'closed'))
    CHECK (state = 'open' OR (balance = 0 AND held = 0 AND incoming = 0));
ALTER TABLE accounts ADD COLUMN close_time INTEGER
    CHECK ((state = 'closed') = (close_time IS NOT NULL));

-- account_openings makes OpenAccount idempotent by its request id: the
-- parameters of each opening, kept like the journal. A repeat with the same
-- parameters returns the account; other parameters are IDEMPOTENCY_KEY_REUSED.
-- Accounts from the bank's YAML have no row here.
CREATE TABLE account_openings (
    request_id TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL UNIQUE REFERENCES accounts (account_id),
    owner      TEXT    NOT NULL,
    currency   TEXT    NOT NULL,
    open_time  INTEGER NOT NULL
) STRICT;

-- enrollment_codes are the one-time codes `remit bank enroll` issued, stored
-- only as a hash (SHA-256 of the account id and the normalized code; a code
-- has 80 random bits, so the hash cannot be searched). Issuing a code for an
-- account revokes its unconsumed older codes (revoke_time); consuming one
-- binds it to the client id it was consumed for, so that a retry by that
-- client succeeds and anyone else fails. Rows are kept as a record.
CREATE TABLE enrollment_codes (
    code_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   TEXT    NOT NULL REFERENCES accounts (account_id),
    code_hash    BLOB    NOT NULL,
    issue_time   INTEGER NOT NULL,
    expire_time  INTEGER NOT NULL,
    revoke_time  INTEGER,
    consumed_by  TEXT,
    consume_time INTEGER,
    CHECK (length(code_hash) = 32),
    CHECK ((consumed_by IS NULL) = (consume_time IS NULL)),
    CHECK (consumed_by IS NULL OR revoke_time IS NULL)
) STRICT;
CREATE INDEX enrollment_codes_account ON enrollment_codes (account_id, code_id);

-- enrollment_failures counts wrong enrollment attempts per account id; at
-- the limit every code of the account fails until a new one is issued
-- (which resets the count). No foreign key: attempts on ids that name no
-- account are counted the same way, so that neither the answer nor the
-- work done says whether the account exists.
CREATE TABLE enrollment_failures (
    account_id        TEXT    NOT NULL PRIMARY KEY,
    failures          INTEGER NOT NULL CHECK (failures > 0),
    last_failure_time INTEGER NOT NULL
) STRICT;
