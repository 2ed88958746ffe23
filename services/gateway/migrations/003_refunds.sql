-- Refunds (PaymentService.RefundPayment). A refund is a payment (kind
-- 'payment', the same two-phase commit) from the refunded payment's payee
-- back to its payer; refunded_transaction_id names the payment it refunds
-- ('' for every other row) and refund_reason is why (the RefundReason's
-- short name, e.g. 'DUPLICATE'; '' for none). Rows written before this
-- migration are payments and adjustments, never refunds.
ALTER TABLE transactions ADD COLUMN refunded_transaction_id TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN refund_reason TEXT NOT NULL DEFAULT '';
-- The refunds of a payment, oldest first (an index entry ends with the
-- rowid): the refundable-amount check at the claim, and the refunds every
-- read of a payment shows. Partial, so that payments that are not refunds
-- cost it nothing; queries repeat its WHERE term so that SQLite can use it.
CREATE INDEX transactions_refunds ON transactions (refunded_transaction_id)
    WHERE refunded_transaction_id != '';
