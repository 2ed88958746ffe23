// Package auth authenticates Remit's clients: it keeps the users (in the
// session database, preloaded from the users file), hashes and verifies
// passwords, throttles failed logins and sign-ups, and issues, verifies and
// revokes session tokens.
//
// # Users
//
// Users live in the users table of the session database (sessions.db,
// migration 003): client id (unique case-insensitively), argon2id hash,
// roles, an optional account (linked to one user at most, by a unique
// index), disabled, where the user came from ([Source]: the file, an admin,
// a registration) and when it was created, changed and its password set.
// The [Authenticator] keeps a snapshot of the table in memory, replaced
// after every change, so that Login and Verify (every call's hot path)
// never read users from the database.
//
// Users change through the API ([Authenticator.CreateUser], Register,
// DisableUser, EnableUser, ResetPassword, ChangePassword, RevokeSessions)
// and through the users file. Every change is audited. Disabling a user,
// setting its password (except a ChangePassword's own session) and
// revoking sessions end the sessions at once: the cache forgets them and
// the open streams of those sessions are told ([Authenticator.SessionEnded],
// used by the authz interceptor), so a WatchPayments stream ends with
// unauthenticated immediately, not at its next periodic re-check.
//
// # The users file as a preload
//
// The users file is imported at the gateway's start and again, without a
// restart, when its content changes or on SIGHUP
// ([Authenticator.WatchUsersFile]); a file that fails to parse is logged
// and ignored, keeping the users as they are. [Authenticator.Import] says
// exactly what an import does; in short:
//
//   - the file manages the users it created (source file): their roles and
//     account follow it, and a password changed in the file (`remit users
//     passwd`) applies and ends the user's sessions;
//   - it never silently overwrites a password set through the API: if the
//     file changes the password of a user whose password was last set
//     through the API, the API's password stays, and the conflict is
//     logged and audited (once);
//   - a file user removed from the file is disabled (sessions ended) and
//     kept, so that neither its id nor its account can be taken by
//     accident; it is enabled again if it comes back, unless an admin
//     disabled it. An admin enabling it takes it over (source admin);
//   - an entry that clashes with a user created through the API (or with
//     an account linked to another user) is skipped with a warning.
//
// # Passwords set through the API
//
// [CheckPassword] is the policy: at least 12 characters, none of the
// embedded few hundred most common passwords (also with trailing digits
// and punctuation removed), not the client id. Operators writing the file
// are not held to it.
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
// with mode 0600 for `remit users add|passwd`; a running gateway imports
// the change within seconds.
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
//   - Login never tells whether a user is disabled either: the password is
//     verified and the answer is [ErrBadCredentials]; the audit log says
//     why.
//   - Register counts a refused enrollment code as a failed login of the
//     source, so guessing codes locks the source out (of Login too).
//   - Repeated failures lock out the source that fails, never the target:
//     a source is locked out for a client id after 5 failures for it, for
//     every id after 20 across ids, and for an id after 100 failures for it
//     from all sources if it has been failing for it; a source that has not
//     been failing is always let in with the right password. Lockouts last
//     a minute, doubling to 15 minutes. The state is written through to the
//     session database, so a restart keeps it; an admin clears a client
//     id's lockouts with [Authenticator.ClearLockout].
package auth
