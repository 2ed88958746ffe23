-- Gateways and outboxes before this version started every decline message
-- with "declined: ", which readers (the CLI) stripped again. Messages are now
-- stored as sent, without it; strip it from the history already written.
UPDATE history SET message = substr(message, length('declined: ') + 1)
WHERE substr(message, 1, length('declined: ')) = 'declined: ';
-- A decline the old gateway had no message for said just "declined".
UPDATE history SET message = '' WHERE message = 'declined';
