-- As ../003_refunds.sql.
ALTER TABLE transactions ADD COLUMN refunded_transaction_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN refund_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX transactions_refunds ON transactions (refunded_transaction_id, rowid)
    WHERE refunded_transaction_id != '';
