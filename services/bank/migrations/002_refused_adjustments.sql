-- refused_adjustments makes a refused UpdateBalance as final as an applied
-- one: a repeat of the same transaction id gets the same refusal, even if the
-- account could now afford it. Without it, a refusal told to one caller could
-- be followed by the same id succeeding for another (a retry in flight),
-- while the gateway had recorded the movement as FAILED. No foreign key:
-- ACCOUNT_NOT_FOUND refusals name accounts that do not exist.
CREATE TABLE refused_adjustments (
    transaction_id TEXT    NOT NULL PRIMARY KEY,
    account_id     TEXT    NOT NULL,
    direction      TEXT    NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    refuse_time    INTEGER NOT NULL
) STRICT;
