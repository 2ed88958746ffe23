-- The coordinator log. One row per client transaction id: payments (two-phase
-- commit across banks) and adjustments (single-phase deposits/withdrawals).
-- The row is claimed (inserted) before any bank hears of the id, and the
-- decision column is written with compare-and-set before phase two starts.
CREATE TABLE transactions (
    transaction_id   TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('payment', 'adjustment')),
    client_id        TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    payer_bank       TEXT NOT NULL DEFAULT '',
    payer_account    TEXT NOT NULL DEFAULT '',
    payee_bank       TEXT NOT NULL DEFAULT '',
    payee_account    TEXT NOT NULL DEFAULT '',
    direction        TEXT NOT NULL DEFAULT '',
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    failure_reason   TEXT NOT NULL DEFAULT '',
    decision         TEXT CHECK (decision IN ('commit', 'abort')),
    decide_time      INTEGER,
    prepare_deadline INTEGER,
    create_time      INTEGER NOT NULL,
    complete_time    INTEGER,
    acknowledge_time INTEGER,
    result_balance   INTEGER
);
CREATE INDEX transactions_payer ON transactions (payer_bank, payer_account);
CREATE INDEX transactions_payee ON transactions (payee_bank, payee_account);
CREATE INDEX transactions_undecided ON transactions (status) WHERE status = 'processing';

-- Which banks take part in a payment, and whether each acknowledged phase two.
CREATE TABLE participants (
    transaction_id TEXT NOT NULL REFERENCES transactions (transaction_id),
    bank           TEXT NOT NULL,
    acked          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (transaction_id, bank)
);
CREATE INDEX participants_unacked ON participants (acked) WHERE acked = 0;

-- Durable per-account event log for WatchPayments.
CREATE TABLE events (
    event_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    bank           TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    type           TEXT NOT NULL CHECK (type IN ('succeeded', 'failed', 'acknowledged')),
    transaction_id TEXT NOT NULL,
    event_time     INTEGER NOT NULL
);
CREATE INDEX events_account ON events (bank, account_id, event_id);

-- The bank registry.
CREATE TABLE banks (
    name           TEXT PRIMARY KEY,
    url            TEXT NOT NULL,
    register_time  INTEGER NOT NULL,
    last_seen_time INTEGER NOT NULL
);
