package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remitpay/remit/internal/audit"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/names"
)

// ErrBadCredentials is the one error Login returns for an unknown client id
// and for a wrong password alike.
var ErrBadCredentials = errors.New("auth: invalid client id or password")

// Login throttling defaults.
const (
	DefaultMaxFailures        = 5
	DefaultMaxSourceFailures  = 20
	DefaultMaxAccountFailures = 100
	DefaultFailureWindow      = 15 * time.Minute
	DefaultLockout            = time.Minute
	DefaultMaxLockout         = 15 * time.Minute
	DefaultMaxTracked         = 100_000
)

// Audit attribute keys written by the Authenticator.
const (
	KeyClientID   = "client_id"
	KeySource     = "source"
	KeySessionID  = "session_id"
	KeyLocked     = "locked"
	KeyRetryAfter = "retry_after"
	// KeyReason says why a login failed or an import skipped an entry, in
	// the audit log only (see the Reason* values).
	KeyReason = "reason"

	// KeyPrincipal names the admin who cleared a lockout.
	KeyPrincipal = "principal"
	// KeyClearedSources, KeyLockedSources and KeyAccountLocked describe a
	// cleared lockout (see [ClearResult]).
	KeyClearedSources = "cleared_sources"
	KeyLockedSources  = "locked_sources"
	KeyAccountLocked  = "account_locked"
)

// ReasonUserDisabled is the [KeyReason] of a login_failed whose password
// was right but whose user is disabled.
const ReasonUserDisabled = "user_disabled"

// Values of [KeyLocked] in login_locked: which limit was reached.
const (
	// LockedClientSource: MaxFailures for one client id from one source;
	// that source is locked out for that id.
	LockedClientSource = "client_id_source"
	// LockedSource: MaxSourceFailures from one source across ids; that
	// source is locked out for every id.
	LockedSource = KeySource
	// LockedAccount: MaxAccountFailures for one client id across sources;
	// sources that have been failing for it are locked out, others are not.
	LockedAccount = KeyClientID
)

// Config configures [NewAuthenticator]. Zero fields take the defaults.
type Config struct {
	// MaxFailures failed logins for one client id from one source address
	// (IPv4 address or IPv6 /64) within FailureWindow lock that source out
	// for that id (default 5). Other sources are not affected, so nobody
	// can lock a user out from elsewhere. A successful login from the
	// source resets the count.
	MaxFailures int
	// MaxSourceFailures failed logins from one source address across all
	// client ids within FailureWindow (password spraying) lock that source
	// out for every id (default 20). Only the window resets it, not a
	// success, so that an attacker cannot clear it by logging into an
	// account of its own between guesses. Other sources are not affected.
	MaxSourceFailures int
	// MaxAccountFailures failed logins for one client id across all
	// sources within FailureWindow (a distributed guess) lock that id out
	// for every source that has been failing for it (default 100): each
	// further source gets one guess. A source without failures for the id
	// is still admitted, so the right password from it always works.
	MaxAccountFailures int
	// FailureWindow is the window in which failures are counted
	// (default 15 min).
	FailureWindow time.Duration
	// Lockout is the first lockout (default 1 min); each further lockout
	// of the same key doubles it, up to MaxLockout (default 15 min).
	Lockout    time.Duration
	MaxLockout time.Duration
	// MaxTracked bounds the number of keys tracked in memory by each of
	// the three limits (default 100 000).
	MaxTracked int
	// MaxConcurrentHashes bounds the password verifications running at
	// once; each holds the hash's memory cost (64 MiB by default), and the
	// others wait for a slot (a canceled wait counts as no attempt).
	// Default [DefaultMaxConcurrentHashes].
	MaxConcurrentHashes int
	// Audit receives login_succeeded, login_failed, login_locked and
	// login_lockout_cleared; nil audits nothing.
	Audit audit.Recorder
	// Log receives errors writing the throttle state to the session
	// database (the in-memory state applies regardless); nil discards them.
	Log *slog.Logger
	// FailureDelay slows repeated failures down before the lockout: the
	// n-th failure of a client id from one source in the window is answered after
	// FailureDelay * 2^(n-2), the first at once, at most MaxFailureDelay
	// (default 250ms; negative disables).
	FailureDelay time.Duration
	// Sleep waits d or until ctx ends; nil means a real timer. Tests
	// replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// HashParams are the argon2id parameters of the passwords set through
	// the API (Register, CreateUser, ResetPassword, ChangePassword); zero
	// means [DefaultParams]. Tests make them cheap.
	HashParams Params
}

// DefaultMaxConcurrentHashes is the default bound on password
// verifications at once: 2 (128 MiB at [DefaultParams]), or GOMAXPROCS if
// that is smaller. More would not make logins much faster on a small
// machine, and each costs another 64 MiB of resident memory.
func DefaultMaxConcurrentHashes() int { return min(runtime.GOMAXPROCS(0), 2) }

// reclaimHashMemory is the hash memory cost (KiB) from which a
// verification gives its memory back at once (see [Authenticator.check]).
const reclaimHashMemory = 8 * 1024

// releaseHashMemory returns the memory of a costly hash just computed to
// the OS (see [Authenticator.check]): `remit init` hashes some fifty
// passwords in a row, and `remit bench` runs it in its own process.
func releaseHashMemory(hash string) {
	if p, _, _, err := parseHash(hash); err == nil && p.Memory >= reclaimHashMemory {
		debug.FreeOSMemory()
	}
}

// DefaultFailureDelay and MaxFailureDelay bound the slow-down of repeated
// failed logins (see [Config.FailureDelay]).
const (
	DefaultFailureDelay = 250 * time.Millisecond
	MaxFailureDelay     = 2 * time.Second
)

// failureDelay is the wait before answering the n-th failure in a window.
func failureDelay(base time.Duration, n int) time.Duration {
	if base <= 0 || n < 2 {
		return 0
	}
	d := base
	for i := 2; i < n && d < MaxFailureDelay; i++ {
		d *= 2
	}
	return min(d, MaxFailureDelay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Authenticator checks client credentials against the users file, throttles
// failed attempts, and issues and verifies session tokens. It implements
// [authz.TokenVerifier], so the gateway passes it to the authz interceptor.
//
// Throttling state (see [Config]) is kept in memory and written through
// to the session database on every failure, so a restart keeps it.
type Authenticator struct {
	sessions *Sessions
	pairs    *throttle // (client id, source)
	sources  *throttle // source
	accounts *throttle // client id
	hashes   chan struct{}
	audit    audit.Recorder
	log      *slog.Logger

	persistMu  sync.Mutex // orders the writes of throttle state
	lastPrune  time.Time  // of the stored throttle state; under persistMu
	pruneEvery time.Duration

	failureDelay time.Duration
	sleep        func(context.Context, time.Duration) error
	params       Params // of new passwords

	// users is the snapshot of the users table that Login and Verify read
	// (never the database); every change of a user writes the table and
	// then replaces it, under mu.
	users atomic.Pointer[Users]
	mu    sync.Mutex // serializes changes of users and their snapshot
	dummy atomic.Pointer[string]
	// imported is the users file last imported (path and content hash),
	// so that WatchUsersFile starts from what was imported, not from what
	// the file holds by the time it starts.
	imported atomic.Pointer[Users]
}

var _ authz.TokenVerifier = (*Authenticator)(nil)

// NewAuthenticator returns an Authenticator over the users and sessions of
// the session database. It imports file (the users file, see [Import];
// nil imports nothing) and loads the throttle state stored in sessions
// (ctx bounds that).
func NewAuthenticator(ctx context.Context, file *Users, sessions *Sessions, cfg Config) (*Authenticator, error) {
	if sessions == nil {
		return nil, errors.New("auth: NewAuthenticator needs sessions")
	}
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	defDur := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	window := defDur(cfg.FailureWindow, DefaultFailureWindow)
	base := defDur(cfg.Lockout, DefaultLockout)
	maxLock := max(defDur(cfg.MaxLockout, DefaultMaxLockout), base)
	tracked := def(cfg.MaxTracked, DefaultMaxTracked)
	a := &Authenticator{
		sessions:   sessions,
		pairs:      newThrottle(kindPair, def(cfg.MaxFailures, DefaultMaxFailures), window, base, maxLock, tracked),
		sources:    newThrottle(kindSource, def(cfg.MaxSourceFailures, DefaultMaxSourceFailures), window, base, maxLock, tracked),
		accounts:   newThrottle(kindClient, def(cfg.MaxAccountFailures, DefaultMaxAccountFailures), window, base, maxLock, tracked),
		hashes:     make(chan struct{}, def(cfg.MaxConcurrentHashes, DefaultMaxConcurrentHashes())),
		audit:      cfg.Audit,
		log:        cfg.Log,
		pruneEvery: window,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.failureDelay, a.sleep, a.params = cfg.FailureDelay, cfg.Sleep, cfg.HashParams
	if a.params == (Params{}) {
		a.params = DefaultParams
	}
	if a.failureDelay == 0 {
		a.failureDelay = DefaultFailureDelay
	}
	if a.sleep == nil {
		a.sleep = sleepCtx
	}
	a.mu.Lock()
	err := a.refresh(ctx)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if file != nil {
		if _, err := a.Import(ctx, file); err != nil {
			return nil, err
		}
	}
	if err := a.loadThrottle(ctx); err != nil {
		return nil, err
	}
	sessions.bus.Subscribe(topicUsers, func(string) { a.heardUsers() }, a.heardUsers) //nolint:contextcheck // a notice outlives any request
	return a, nil
}

// loadThrottle restores the throttle state stored in the session database
// and deletes what has gone quiet.
func (a *Authenticator) loadThrottle(ctx context.Context) error {
	now := time.Now()
	quietSince := now.Add(-a.pairs.quiet())
	rows, err := a.sessions.loadThrottle(ctx, now, quietSince, a.pairs.maxTracked)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.throttleOf(r.kind).restore(r.key, r.e)
	}
	if err := a.sessions.pruneThrottle(ctx, now, quietSince); err != nil {
		return err
	}
	a.lastPrune = now
	return nil
}

func (a *Authenticator) throttleOf(kind string) *throttle {
	switch kind {
	case kindPair:
		return a.pairs
	case kindSource:
		return a.sources
	default:
		return a.accounts
	}
}

// throttleRef names one key of one of the throttles.
type throttleRef struct {
	t   *throttle
	key throttleKey
}

// persist writes the current state of keys to the session database: an
// upsert for a key that holds state, a delete for one that does not. The
// state is read under persistMu, so concurrent writers leave the latest
// state stored whatever order they run in. A failed write is logged: the
// in-memory state applies regardless, and the next failure writes again.
func (a *Authenticator) persist(ctx context.Context, keys ...throttleRef) {
	ctx = context.WithoutCancel(ctx)
	a.persistMu.Lock()
	defer a.persistMu.Unlock()
	rows := make([]throttleRow, 0, len(keys))
	for _, k := range keys {
		e, ok := k.t.snapshot(k.key)
		rows = append(rows, throttleRow{kind: k.t.kind, key: k.key, e: e, del: !ok})
	}
	if err := a.sessions.saveThrottle(ctx, rows); err != nil {
		a.log.ErrorContext(ctx, "store login throttle state", "err", err)
	}
	if now := time.Now(); now.Sub(a.lastPrune) >= a.pruneEvery {
		a.lastPrune = now
		if err := a.sessions.pruneThrottle(ctx, now, now.Add(-a.pairs.quiet())); err != nil {
			a.log.ErrorContext(ctx, "prune login throttle state", "err", err)
		}
	}
}

// ClearResult says what [Authenticator.ClearLockout] cleared.
type ClearResult struct {
	// ClearedSources counts the sources whose failures for the client id
	// were forgotten; LockedSources, those of them that were locked out.
	ClearedSources, LockedSources int
	// AccountLocked says whether the client id had reached
	// MaxAccountFailures (sources that had been failing were refused).
	AccountLocked bool
}

// ClearLockout forgets the failures and lockouts of clientID from every
// source, and its per-client-id count, in memory and in the session
// database, and audits it as done by principal. A source locked out for
// spraying (MaxSourceFailures across ids) stays locked: it is not the
// client id's.
func (a *Authenticator) ClearLockout(ctx context.Context, clientID, principal string) (ClearResult, error) {
	now := time.Now()
	a.persistMu.Lock()
	cleared, locked := a.pairs.clearID(clientID, now)
	_, accountLocked := a.accounts.clearID(clientID, now)
	err := a.sessions.clearThrottleClient(context.WithoutCancel(ctx), clientID)
	a.persistMu.Unlock()
	res := ClearResult{ClearedSources: cleared, LockedSources: locked, AccountLocked: accountLocked > 0}
	if err != nil {
		return res, err
	}
	a.record(ctx, audit.EventLoginLockoutCleared, slog.String(KeyClientID, clientID), slog.String(KeyPrincipal, principal),
		slog.Int(KeyClearedSources, res.ClearedSources), slog.Int(KeyLockedSources, res.LockedSources),
		slog.Bool(KeyAccountLocked, res.AccountLocked))
	return res, nil
}

// refresh replaces the snapshot with the users table. Call with mu held.
func (a *Authenticator) refresh(ctx context.Context) error {
	list, err := a.sessions.loadUsers(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	users := snapshot(list)
	dummy, err := dummyHash(users, a.dummy.Load())
	if err != nil {
		return err
	}
	prev := a.dummy.Load()
	a.dummy.Store(&dummy)
	a.users.Store(users)
	if prev == nil || *prev != dummy {
		releaseHashMemory(dummy) // hashing the new dummy password allocated its cost
	}
	return nil
}

// Users returns the current users, by client id: a snapshot of the
// database that must not be modified.
func (a *Authenticator) Users() *Users { return a.users.Load() }

// dummyHash returns a hash of a random password with the parameters most
// users' hashes have, reusing prev if its parameters already match. Login
// verifies against it for unknown client ids so that they take as long as
// a wrong password for a real one.
func dummyHash(users *Users, prev *string) (string, error) {
	counts := map[Params]int{}
	best, bestN := DefaultParams, 0
	for _, u := range users.list {
		p, _, _, err := parseHash(u.PasswordHash)
		if err != nil {
			continue
		}
		counts[p]++
		if counts[p] > bestN {
			best, bestN = p, counts[p]
		}
	}
	if prev != nil {
		if p, _, _, err := parseHash(*prev); err == nil && p == best {
			return *prev, nil
		}
	}
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return "", fmt.Errorf("auth: read random: %w", err)
	}
	return HashPasswordParams(base64.RawURLEncoding.EncodeToString(pw), best)
}

// Login checks clientID and password and, if they match, issues a session
// token. remoteAddr is the caller's address ("host:port" or an IP), used
// for throttling per source.
//
// An unknown client id, a wrong password and a disabled user all return
// [ErrBadCredentials] after the same amount of work: an unknown id is
// verified against a dummy hash, a disabled user's password is verified
// too (the audit log says why it failed). While the source is locked out
// (for clientID, or for every id after spraying, or because it has been
// failing for clientID while clientID is over MaxAccountFailures), Login
// returns a [*LockoutError] (errors.Is ErrLockedOut) without checking the
// password, whether it is right or not. A source that has not been failing
// is never refused. Other errors are internal (context, database).
func (a *Authenticator) Login(ctx context.Context, clientID, password, remoteAddr string) (token string, expire time.Time, user *User, err error) {
	user, err = a.authenticate(ctx, clientID, password, remoteAddr)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	// Issued only if the user is still enabled with the password just
	// verified, checked in the session's own write transaction (issueIf):
	// a password change or a disabling committed meanwhile, here or at
	// another replica, wins; one committed after it revokes this session.
	token, sessionID, expire, err := a.sessions.issueIf(ctx, clientID, user.PasswordHash)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	a.record(ctx, audit.EventLoginSucceeded, slog.String(KeyClientID, clientID),
		slog.String(KeySource, authz.SourceOf(remoteAddr)), slog.String(KeySessionID, sessionID))
	return token, expire, user, nil
}

// authenticate is Login without the session: it checks clientID and
// password under the login throttle, and records and audits a failure.
// ChangePassword checks the current password with it, so that guesses
// through it count as failed logins.
func (a *Authenticator) authenticate(ctx context.Context, clientID, password, remoteAddr string) (*User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, src := clientID, authz.SourceOf(remoteAddr)
	if names.ClientID(clientID) != nil {
		// No such user can exist; one shared key keeps arbitrary input
		// from growing the throttle's memory.
		id = "(invalid)" // not an id: cannot collide with one
	}
	pairKey, srcKey, idKey := throttleKey{id: id, src: src}, throttleKey{src: src}, throttleKey{id: id}
	auditAttrs := []slog.Attr{slog.String(KeyClientID, a.auditID(clientID)), slog.String(KeySource, src)}

	if a.sessions.bus != nil {
		// Replicas: start from what every replica stored for these keys,
		// not only from what this one has heard.
		a.syncThrottle(ctx, throttleRef{a.sources, srcKey}, throttleRef{a.pairs, pairKey}, throttleRef{a.accounts, idKey})
	}
	now := time.Now()
	if retry, ok := a.sources.begin(srcKey, now); !ok {
		return nil, &LockoutError{RetryAfter: retry}
	}
	if retry, ok := a.pairs.begin(pairKey, now); !ok {
		a.sources.end(srcKey, now, false, false)
		return nil, &LockoutError{RetryAfter: retry}
	}
	// Over the per-client-id limit, only sources that have been failing
	// for this id are refused.
	if retry := a.accounts.locked(idKey, now); retry > 0 && a.pairs.failing(pairKey, now) {
		a.pairs.end(pairKey, now, false, false)
		a.sources.end(srcKey, now, false, false)
		return nil, &LockoutError{RetryAfter: retry}
	}

	user, ok, disabled, err := a.check(ctx, clientID, password)
	now = time.Now()
	if err != nil {
		// Not the caller's fault (canceled, shutting down): count nothing.
		a.pairs.end(pairKey, now, false, false)
		a.sources.end(srcKey, now, false, false)
		return nil, err
	}
	if !ok {
		pairLock, failures, _ := a.pairs.end(pairKey, now, true, false)
		srcLock, _, _ := a.sources.end(srcKey, now, true, false)
		idLock := a.accounts.record(idKey, now)
		a.persist(ctx, throttleRef{a.pairs, pairKey}, throttleRef{a.sources, srcKey}, throttleRef{a.accounts, idKey})
		failed := auditAttrs
		if disabled {
			failed = append(slices.Clone(auditAttrs), slog.String(KeyReason, ReasonUserDisabled))
		}
		a.record(ctx, audit.EventLoginFailed, failed...)
		for _, l := range []struct {
			what string
			d    time.Duration
		}{{LockedClientSource, pairLock}, {LockedSource, srcLock}, {LockedAccount, idLock}} {
			if l.d > 0 {
				a.record(ctx, audit.EventLoginLocked, append(slices.Clone(auditAttrs),
					slog.String(KeyLocked, l.what), slog.Duration(KeyRetryAfter, l.d))...)
			}
		}
		// Slow down before the lockout: each further failure for this client
		// id from this source in the window waits longer before it is
		// answered.
		if d := failureDelay(a.failureDelay, failures); d > 0 {
			if err := a.sleep(ctx, d); err != nil {
				return nil, err
			}
		}
		return nil, ErrBadCredentials
	}
	// A success forgets this source's failures for the id (a write only if
	// there were any), not the source's nor the id's overall counts: an
	// attacker's own login must not reset them.
	if _, _, forgot := a.pairs.end(pairKey, now, false, true); forgot {
		a.persist(ctx, throttleRef{a.pairs, pairKey})
	}
	a.sources.end(srcKey, now, false, false)
	return user, nil
}

// check returns the user and true if password is clientID's and the user
// is enabled; disabled says the password was right but the user is
// disabled. It verifies against the dummy hash if the user does not exist,
// so every case costs the same, and holds one of the hashing slots while
// it does.
//
// An argon2id verification allocates its whole memory cost (64 MiB) and
// drops it when it returns; left to the garbage collector's pace, a burst
// of logins piles several such buffers up (the gateway peaked at 350-420
// MiB RSS logging 49 customers in). So after a costly hash, check collects
// and returns the free memory to the OS (debug.FreeOSMemory) before it
// frees its slot: the resident memory of logins stays at about the hashes
// in flight. A collection alone is not enough: the freed buffer is not
// always reused for the next one, and the runtime gives free memory back
// only slowly (the peak varied between 160 and 225 MiB). This costs a
// collection and the page faults of the next hash, a few ms next to a hash
// of about 60 ms.
func (a *Authenticator) check(ctx context.Context, clientID, password string) (user *User, ok, disabled bool, err error) {
	user, exists := a.users.Load().Lookup(clientID)
	hash := *a.dummy.Load()
	if exists {
		hash = user.PasswordHash
	}
	match, err := a.verifyHash(ctx, hash, password)
	if err != nil {
		return nil, false, false, err
	}
	if !match || !exists || password == "" {
		return nil, false, false, nil
	}
	if user.Disabled {
		return nil, false, true, nil
	}
	return user, true, false, nil
}

// verifyHash is VerifyPassword in one of the hashing slots (see check).
func (a *Authenticator) verifyHash(ctx context.Context, hash, password string) (bool, error) {
	select {
	case a.hashes <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-a.hashes }()
	match := VerifyPassword(hash, password)
	if p, _, _, err := parseHash(hash); err == nil && p.Memory >= reclaimHashMemory {
		debug.FreeOSMemory()
	}
	return match, nil
}

// hashNew hashes a new password in one of the hashing slots, with
// [DefaultParams] (or the Authenticator's test parameters).
func (a *Authenticator) hashNew(ctx context.Context, password string) (string, error) {
	select {
	case a.hashes <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-a.hashes }()
	hash, err := HashPasswordParams(password, a.params)
	if err != nil {
		return "", err
	}
	releaseHashMemory(hash)
	return hash, nil
}

// Verify implements [authz.TokenVerifier]: it returns the client principal
// of a valid token. A token that is invalid, expired or revoked, or whose
// user is no longer in the users file, yields an error wrapping both
// [ErrInvalidToken] and [authz.ErrUnauthenticated].
func (a *Authenticator) Verify(ctx context.Context, token string) (*authz.Principal, error) {
	clientID, sessionID, err := a.sessions.Verify(ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		return nil, fmt.Errorf("%w: %w", authz.ErrUnauthenticated, err)
	}
	if err != nil {
		return nil, err
	}
	user, ok := a.users.Load().Lookup(clientID)
	if !ok || user.Disabled {
		return nil, fmt.Errorf("%w: %w", authz.ErrUnauthenticated, ErrInvalidToken)
	}
	return user.Principal(sessionID), nil
}

// Logout revokes the session sessionID (the principal's SessionID). It is
// idempotent.
func (a *Authenticator) Logout(ctx context.Context, sessionID string) error {
	return a.sessions.Revoke(ctx, sessionID)
}

func (a *Authenticator) record(ctx context.Context, event string, attrs ...slog.Attr) {
	if a.audit == nil {
		return
	}
	a.audit.Record(ctx, event, attrs...)
}

// auditID is the client id as written to the audit log: only ids of users
// that exist. Anything else is written as [UnknownClientID]: a password
// typed into the client id field (the classic) is often a well-formed id, so
// shape alone cannot keep it out of the log.
func (a *Authenticator) auditID(clientID string) string {
	if _, ok := a.users.Load().Lookup(clientID); ok {
		return clientID
	}
	return UnknownClientID
}

// UnknownClientID stands in the audit log for a client id that names no
// user, so that what was typed is never recorded.
const UnknownClientID = "(unknown)"
