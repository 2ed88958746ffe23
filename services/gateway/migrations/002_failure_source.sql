-- The bank a failure is about and the account it refused, when it named one:
-- sent to the client in the decline's ErrorInfo metadata (bank, account_id).
-- Rows written before this migration have neither.
ALTER TABLE transactions ADD COLUMN failure_bank TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN failure_account TEXT NOT NULL DEFAULT '';
