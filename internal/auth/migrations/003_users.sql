-- Users (issue 12): the users file preloads them, the API creates and
-- changes them at run time. Only argon2id hashes are stored. Times are Unix
-- milliseconds.
CREATE TABLE users (
    client_id           TEXT    NOT NULL PRIMARY KEY,  -- exact spelling, as logged in
    password_hash       TEXT    NOT NULL,              -- argon2id PHC string
    roles               TEXT    NOT NULL,              -- comma-separated: customer,admin,auditor
    account_bank        TEXT,                          -- NULL: no account (staff only)
    account_id          TEXT,
    source              TEXT    NOT NULL,              -- file, admin, registration
    disabled_by         TEXT,                          -- NULL: enabled; admin or file
    password_by         TEXT    NOT NULL,              -- who set the password last: file or api
    file_password_hash  TEXT,                          -- the file's hash at the last import (file users)
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    CHECK ((account_bank IS NULL) = (account_id IS NULL))
);
-- Client ids are unique case-insensitively (they are ASCII: remit.id).
CREATE UNIQUE INDEX users_client_id_nocase ON users (client_id COLLATE NOCASE);
-- One account links to one user at most, so that two concurrent sign-ups
-- cannot both claim it.
CREATE UNIQUE INDEX users_account ON users (account_bank, account_id) WHERE account_bank IS NOT NULL;
