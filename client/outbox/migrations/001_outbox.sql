-- queued holds payments written before their first send and kept until the
-- gateway gives a final outcome. seq orders them (oldest first).
CREATE TABLE queued (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT    NOT NULL UNIQUE,
    client_id      TEXT    NOT NULL,
    gateway        TEXT    NOT NULL,
    payee_bank     TEXT    NOT NULL,
    payee_account  TEXT    NOT NULL,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    created        INTEGER NOT NULL, -- unix nanoseconds
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT    NOT NULL DEFAULT '',
    last_attempt   INTEGER NOT NULL DEFAULT 0 -- unix nanoseconds, 0 = never
);

-- history holds final outcomes. A row is inserted in the same transaction
-- that deletes the payment from queued.
CREATE TABLE history (
    transaction_id TEXT    PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    gateway        TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED')),
    code           TEXT    NOT NULL, -- Connect code of a failure, '' on success
    reason         TEXT    NOT NULL, -- ErrorInfo reason of a failure
    message        TEXT    NOT NULL,
    payment        TEXT    NOT NULL, -- protojson of the Payment, '' if none
    payee_bank     TEXT    NOT NULL,
    payee_account  TEXT    NOT NULL,
    amount         INTEGER NOT NULL,
    currency       TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    completed      INTEGER NOT NULL,
    attempts       INTEGER NOT NULL
);

CREATE INDEX history_by_completed ON history (completed);
