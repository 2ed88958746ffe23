-- Lookups by client id in any case use lower(client_id) = lower(?), which
-- PostgreSQL runs too (it has no NOCASE); this index serves them here.
-- Client ids are ASCII, where lower() and NOCASE agree, and
-- users_client_id_nocase still enforces their uniqueness.
CREATE INDEX users_client_id_lower ON users (lower(client_id));
