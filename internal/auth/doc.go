// Package auth authenticates Remit's clients: it loads the users file,
// hashes and verifies passwords, throttles failed logins, and issues,
// verifies and revokes session tokens.
//
// # Users file
//
// The users file (the design's credential file) is JSON:
//
//	{"users": [
//	  {"client_id": "alice", "password_hash": "$argon2id$v=19$m=65536,t=2,p=2$...$...",
//	   "roles": ["customer"], "account": {"bank": "bank-a", "account_id": "alice"}},
//	  {"client_id": "admin", "password_hash": "$argon2id$...", "roles": ["admin"]}
//	]}
//
// Roles are customer, admin and auditor; a customer must have an account.
// [LoadUsers] refuses anything it does not fully understand (see its
// documentation), and [AddUser] / [SetPassword] rewrite the file atomically
// with mode 0600 for `remit users add|passwd`.
//
// # Invariants
//
//   - Passwords are never stored, logged or echoed: the file holds argon2id
//     hashes ([DefaultParams] documents the cost), and comparisons are
//     constant time.
//   - Login never tells whether the client id or the password was wrong:
//     both are [ErrBadCredentials], and an unknown id is verified against a
//     dummy hash with the users' parameters so it takes as long.
//   - Tokens are 256 random bits; the session database stores only their
//     SHA-256, so a copy of it cannot be used to log in. Verify returns one
//     error, [ErrInvalidToken], for malformed, unknown, expired and revoked
//     tokens.
//   - Repeated failures lock out the source that fails, never the target:
//     a source is locked out for a client id after 5 failures for it, for
//     every id after 20 across ids, and for an id after 100 failures for it
//     from all sources if it has been failing for it; a source that has not
//     been failing is always let in with the right password. Lockouts last
//     a minute, doubling to 15 minutes. The state is written through to the
//     session database, so a restart keeps it; an admin clears a client
//     id's lockouts with [Authenticator.ClearLockout].
package auth
