-- Login sessions. Only the SHA-256 of a token is stored, so a copy of this
-- file does not let anyone act as a client. Times are Unix milliseconds.
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,          -- random, not a credential
    token_hash  BLOB    NOT NULL UNIQUE,      -- sha256(token)
    client_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER                       -- NULL while usable
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_client_id ON sessions (client_id);
