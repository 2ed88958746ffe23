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
//   - Repeated failures lock the client id (after 5) and the source address
//     (after 20) out for a minute, doubling to 15 minutes. The counters are
//     in memory: a restart forgets them, which at worst grants one more
//     round of guesses, and an attacker cannot cause a restart.
package auth
