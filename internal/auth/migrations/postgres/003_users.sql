-- As ../003_users.sql. Client ids are unique case-insensitively: they are
-- ASCII (remit.id), so lower() is SQLite's NOCASE.
CREATE TABLE users (
    client_id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    password_hash       TEXT   NOT NULL,
    roles               TEXT   NOT NULL,
    account_bank        TEXT COLLATE "C",
    account_id          TEXT COLLATE "C",
    source              TEXT   NOT NULL,
    disabled_by         TEXT,
    password_by         TEXT   NOT NULL,
    file_password_hash  TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    CHECK ((account_bank IS NULL) = (account_id IS NULL))
);
CREATE UNIQUE INDEX users_client_id_lower ON users (lower(client_id));
CREATE UNIQUE INDEX users_account ON users (account_bank, account_id) WHERE account_bank IS NOT NULL;
