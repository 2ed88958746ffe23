-- Login throttle state, so that a gateway restart does not reset failure
-- counts and lockouts. One row per key that has failed recently: kind
-- 'pair' (client_id and source set), 'source' (client_id empty) or
-- 'client' (source empty). Times are Unix milliseconds, 0 for none. Rows are
-- written through on failures and deleted once quiet.
CREATE TABLE login_throttle (
    kind          TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    failures      INTEGER NOT NULL,   -- failures in the current window
    window_start  INTEGER NOT NULL,
    lockouts      INTEGER NOT NULL,   -- consecutive lockouts, for doubling
    locked_until  INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL,
    PRIMARY KEY (kind, client_id, source)
) WITHOUT ROWID;
CREATE INDEX login_throttle_client_id ON login_throttle (client_id);
CREATE INDEX login_throttle_last_failure ON login_throttle (last_failure);
