-- ../004_users_lower.sql adds SQLite the index that 003 already made here.
SELECT 1;
