-- As ../002_login_throttle.sql.
CREATE TABLE login_throttle (
    kind          TEXT COLLATE "C" NOT NULL,
    client_id     TEXT COLLATE "C" NOT NULL,
    source        TEXT COLLATE "C" NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    lockouts      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    last_failure  BIGINT NOT NULL,
    PRIMARY KEY (kind, client_id, source)
);
CREATE INDEX login_throttle_client_id ON login_throttle (client_id);
CREATE INDEX login_throttle_last_failure ON login_throttle (last_failure);
