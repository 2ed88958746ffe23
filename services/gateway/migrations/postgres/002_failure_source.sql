-- As ../002_failure_source.sql.
ALTER TABLE transactions ADD COLUMN failure_bank TEXT NOT NULL DEFAULT '';
ALTER TABLE transactions ADD COLUMN failure_account TEXT NOT NULL DEFAULT '';
