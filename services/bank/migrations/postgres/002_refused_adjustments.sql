-- As ../002_refused_adjustments.sql, in PostgreSQL's dialect.
CREATE TABLE refused_adjustments (
    transaction_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id     TEXT COLLATE "C" NOT NULL,
    direction      TEXT   NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    refuse_time    BIGINT NOT NULL
);
