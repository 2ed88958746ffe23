package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/remitpay/remit/internal/store"
)

// TokenPrefix starts every access token, so that a leaked token is easy to
// recognise (and to scan for) and cannot be confused with a session id.
const TokenPrefix = "rmt_"

// tokenBytes is the entropy of a token: 256 bits.
const tokenBytes = 32

// tokenLen is the length of a well-formed token.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenBytes)

// Session defaults.
const (
	DefaultSessionTTL    = time.Hour
	DefaultPruneInterval = 10 * time.Minute
)

// ErrInvalidToken is the one error for a token that is malformed, unknown,
// expired or revoked; it deliberately does not say which.
var ErrInvalidToken = errors.New("auth: invalid or expired token")

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// SessionConfig configures [OpenSessions]. The zero value gives one-hour
// sessions.
type SessionConfig struct {
	// TTL is how long a token works after Issue; zero means
	// [DefaultSessionTTL].
	TTL time.Duration
	// PruneInterval is how often Issue also deletes expired sessions; zero
	// means [DefaultPruneInterval].
	PruneInterval time.Duration
	// CacheSize bounds the verified sessions kept in memory so that
	// Verify need not read the database on every call; zero means
	// [DefaultCacheSize], negative disables the cache. Revocations through
	// this Sessions apply to the cache at once; see [Sessions].
	CacheSize int
}

// Sessions stores login sessions in their own SQLite database, so that
// tokens survive a gateway restart and can be revoked.
//
// A token is 32 random bytes, base64url-encoded after [TokenPrefix]. Only
// its SHA-256 is stored: a stolen copy of the database does not reveal any
// usable token, and since tokens have 256 bits of entropy an unsalted fast
// hash is enough (no guessing attack on the hash is feasible). Sessions is
// safe for concurrent use.
//
// Verify keeps the sessions it found valid in a bounded in-memory cache
// (see [SessionConfig.CacheSize]), each until its own expiry. Revoke and
// RevokeClient remove what they revoke from it before they return, so a
// revocation is immediate in this process. Other processes that share the
// database (gateway replicas on PostgreSQL) hear of it through the change
// bus ([Sessions.UseBus]): each revocation publishes what it ended in its
// own transaction, and every process drops it from its cache and ends its
// streams; a process whose listener reconnects clears its whole cache.
// Without a bus (SQLite), only one process may serve a session database.
type Sessions struct {
	db            *sql.DB
	stmts         *store.Statements // sessionSQL, prepared once
	ttl           time.Duration
	pruneInterval time.Duration
	cache         *sessionCache
	watchers      *sessionWatchers
	lookedUp      func() // test hook: after the database read, before the cache is filled
	bus           *store.Bus

	mu        sync.Mutex
	lastPrune time.Time
}

// OpenSessions opens (creating if needed) the session database at target,
// an SQLite file or a postgres:// URL (store.Open), and applies its
// migrations.
func OpenSessions(ctx context.Context, target string, cfg SessionConfig) (*Sessions, error) {
	if cfg.TTL < 0 || cfg.PruneInterval < 0 {
		return nil, errors.New("auth: negative session TTL or prune interval")
	}
	db, err := store.Open(ctx, target, "sessions")
	if err != nil {
		return nil, err
	}
	path := store.Redact(target)
	migrations, err := store.MigrationsFor(db, migrationFiles, "migrations")
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := store.Migrate(ctx, db, "sessions", migrations); err != nil {
		return nil, errors.Join(fmt.Errorf("auth: session database %s: %w", path, err), db.Close())
	}
	stmts, err := store.Prepare(ctx, db, sessionSQL[:])
	if err != nil {
		return nil, errors.Join(fmt.Errorf("auth: session database %s: %w", path, err), db.Close())
	}
	cacheSize := cfg.CacheSize
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	s := &Sessions{db: db, stmts: stmts, ttl: cfg.TTL, pruneInterval: cfg.PruneInterval,
		cache: newSessionCache(cacheSize), watchers: newSessionWatchers()}
	if s.ttl == 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.pruneInterval == 0 {
		s.pruneInterval = DefaultPruneInterval
	}
	if _, err := s.Prune(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// The statements every authenticated call (the token lookup) and every
// login makes, prepared once when the database opens so that SQLite does
// not parse them again on every call. The rest stays inline.
const (
	sqlSessionInsert = iota
	sqlSessionLookup
	numSessionStatements
)

var sessionSQL = [numSessionStatements]string{
	sqlSessionInsert: `INSERT INTO sessions (id, token_hash, client_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
	sqlSessionLookup: `SELECT id, token_hash, client_id, expires_at, revoked_at FROM sessions WHERE token_hash = ?`,
}

// Close closes the prepared statements and the database.
func (s *Sessions) Close() error { return errors.Join(s.stmts.Close(), s.db.Close()) }

// TTL returns how long issued tokens stay valid.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Issue creates a session for clientID and returns its token, which the
// caller hands to the client and must never log or store, and its expiry.
// The session is durable when Issue returns.
func (s *Sessions) Issue(ctx context.Context, clientID string) (token string, expire time.Time, err error) {
	token, _, expire, err = s.issue(ctx, clientID)
	return token, expire, err
}

func (s *Sessions) issue(ctx context.Context, clientID string) (token, sessionID string, expire time.Time, err error) {
	token, sessionID, hash, expire, now, err := s.newToken(clientID)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if _, err := s.stmts.Exec(ctx, nil, sqlSessionInsert,
		sessionID, hash[:], clientID, now.UnixMilli(), expire.UnixMilli()); err != nil {
		return "", "", time.Time{}, fmt.Errorf("auth: store session: %w", err)
	}
	s.maybePrune(ctx, now)
	return token, sessionID, expire, nil
}

// newToken makes a new session's token, id, stored hash and expiry, at
// now.
func (s *Sessions) newToken(clientID string) (token, sessionID string, hash [sha256.Size]byte, expire, now time.Time, err error) {
	if clientID == "" {
		return "", "", hash, expire, now, errors.New("auth: issue a session: empty client id")
	}
	secret := make([]byte, tokenBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", "", hash, expire, now, fmt.Errorf("auth: read random token: %w", err)
	}
	idBytes := make([]byte, 16)
	if _, err := rand.Read(idBytes); err != nil {
		return "", "", hash, expire, now, fmt.Errorf("auth: read random session id: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	sessionID = hex.EncodeToString(idBytes)
	now = time.Now()
	expire = time.UnixMilli(now.Add(s.ttl).UnixMilli()).UTC()
	return token, sessionID, hashToken(token), expire, now, nil
}

// Verify returns the client and session a token belongs to, or
// [ErrInvalidToken] if it is malformed, unknown, expired or revoked. Other
// errors mean the database failed. A session found valid is answered from
// memory until it expires or is revoked (see [Sessions]).
func (s *Sessions) Verify(ctx context.Context, token string) (clientID, sessionID string, err error) {
	if !wellFormedToken(token) {
		return "", "", ErrInvalidToken
	}
	want := hashToken(token)
	cached, ok, gen := s.cache.get(want)
	if ok {
		if time.Now().UnixMilli() >= cached.expiresAt {
			s.cache.drop(want)
			return "", "", ErrInvalidToken
		}
		return cached.clientID, cached.sessionID, nil
	}
	var (
		stored    []byte
		expiresAt int64
		revokedAt sql.NullInt64
	)
	err = s.stmts.QueryRow(ctx, nil, sqlSessionLookup, want[:]).Scan(&sessionID, &stored, &clientID, &expiresAt, &revokedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", "", ErrInvalidToken
	case err != nil:
		return "", "", fmt.Errorf("auth: look up session: %w", err)
	}
	// The index lookup already matched; the constant-time comparison is a
	// second check that does not depend on how SQLite compares blobs.
	if s.lookedUp != nil {
		s.lookedUp()
	}
	now := time.Now().UnixMilli()
	if subtle.ConstantTimeCompare(stored, want[:]) != 1 ||
		revokedAt.Valid || now >= expiresAt {
		return "", "", ErrInvalidToken
	}
	s.cache.put(gen, want, cachedSession{clientID: clientID, sessionID: sessionID, expiresAt: expiresAt}, now)
	return clientID, sessionID, nil
}

// The notices of the sessions topic: what a revocation ended, so that the
// other processes on the database forget it too.
const (
	topicSessions = "sessions"
	noticeSession = "session:"   // + session id: Revoke
	noticeClient  = "client:"    // + client id, a space, keep: RevokeOthers, RevokeClient
	noticeOf      = "sessionof:" // + client id, a space, session id: RevokeSession
)

// UseBus makes the revocations of this process known to the others that
// share its database, and theirs to it (see [Sessions]). Call it before
// bus.Run; a nil bus (SQLite) changes nothing. Each revocation's notice is
// part of its transaction (Bus.PublishIn): no crash can part the two.
func (s *Sessions) UseBus(bus *store.Bus) {
	if bus == nil {
		return
	}
	s.bus = bus
	bus.Subscribe(topicSessions, s.heard, s.cache.clear)
}

// heard applies a revocation another process (or this one) published.
func (s *Sessions) heard(payload string) {
	switch {
	case strings.HasPrefix(payload, noticeSession):
		id := strings.TrimPrefix(payload, noticeSession)
		s.cache.revokeSession(id)
		s.watchers.endSession(id)
	case strings.HasPrefix(payload, noticeClient):
		clientID, keep, _ := strings.Cut(strings.TrimPrefix(payload, noticeClient), " ")
		s.cache.revokeClient(clientID, keep)
		s.watchers.endClient(clientID, keep)
	case strings.HasPrefix(payload, noticeOf):
		clientID, id, _ := strings.Cut(strings.TrimPrefix(payload, noticeOf), " ")
		s.cache.revokeSession(id)
		s.watchers.endSessionOf(clientID, id)
	default:
		// A notice of a newer version: forget everything rather than
		// miss a revocation.
		s.cache.clear()
	}
}

// revoke runs a revocation's write in one transaction with its notice to
// the other processes (UseBus): they hear of it exactly when it commits.
// Without a bus it is the write alone.
// notice is called after write: it may name what write found ("" for
// nothing to tell).
func (s *Sessions) revoke(ctx context.Context, notice func() string, write func(tx *sql.Tx) error) error {
	return store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		if n := notice(); n != "" {
			return s.bus.PublishIn(ctx, tx, topicSessions, n)
		}
		return nil
	})
}

// revokeOthersIn revokes in tx every usable session of clientID but keep
// ("" keeps none), with its notice, and returns how many it ended. The
// caller updates the cache and the streams once tx has ended.
func (s *Sessions) revokeOthersIn(ctx context.Context, tx *sql.Tx, clientID, keep string, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE sessions SET revoked_at = ? WHERE client_id = ? AND id != ? AND revoked_at IS NULL AND expires_at > ?`,
		now, clientID, keep, now)
	if err != nil {
		return 0, err
	}
	if err := s.bus.PublishIn(ctx, tx, topicSessions, noticeClient+clientID+" "+keep); err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Revoke ends a session, named either by its token (starting with
// [TokenPrefix]) or by its session id, so that the token stops working at
// once. Revoking an unknown, expired or already revoked session is not an
// error: Logout is idempotent. The session leaves the cache, and its open
// streams are told ([Authenticator.SessionEnded]), before Revoke returns,
// even if the database write failed.
func (s *Sessions) Revoke(ctx context.Context, tokenOrSessionID string) error {
	now := time.Now().UnixMilli()
	var err error
	if strings.HasPrefix(tokenOrSessionID, TokenPrefix) {
		hash := hashToken(tokenOrSessionID)
		var id string
		err = s.revoke(ctx, func() string {
			if id == "" {
				return ""
			}
			return noticeSession + id
		}, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(ctx,
				`UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL RETURNING id`, now, hash[:]).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		})
		s.cache.revokeToken(hash)
		if id != "" {
			s.watchers.endSession(id)
		}
	} else {
		err = s.revoke(ctx, func() string { return noticeSession + tokenOrSessionID }, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx,
				`UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, now, tokenOrSessionID)
			return err
		})
		s.cache.revokeSession(tokenOrSessionID)
		s.watchers.endSession(tokenOrSessionID)
	}
	if err != nil {
		return fmt.Errorf("auth: revoke session: %w", err)
	}
	return nil
}

// RevokeClient revokes every session of clientID (after a password change
// or when a user is removed) and returns how many were still active. They
// leave the cache, and their open streams are told, before RevokeClient
// returns, even if the database write failed.
func (s *Sessions) RevokeClient(ctx context.Context, clientID string) (int64, error) {
	return s.RevokeOthers(ctx, clientID, "")
}

// RevokeOthers revokes every session of clientID but keep (a session id;
// "" keeps none) and returns how many were still active: a password change
// keeps the session it was made from. Like RevokeClient otherwise.
func (s *Sessions) RevokeOthers(ctx context.Context, clientID, keep string) (int64, error) {
	now := time.Now().UnixMilli()
	var n int64
	err := store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		n, err = s.revokeOthersIn(ctx, tx, clientID, keep, now)
		return err
	})
	s.cache.revokeClient(clientID, keep)
	s.watchers.endClient(clientID, keep)
	if err != nil {
		return 0, fmt.Errorf("auth: revoke sessions of %q: %w", clientID, err)
	}
	return n, nil
}

// RevokeSession revokes the session sessionID if it is a usable session of
// clientID, and reports whether it was (an admin names a user's session:
// a session id of another user must not end that one).
func (s *Sessions) RevokeSession(ctx context.Context, clientID, sessionID string) (bool, error) {
	now := time.Now().UnixMilli()
	var n int64
	err := s.revoke(ctx, func() string { return noticeOf + clientID + " " + sessionID }, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE sessions SET revoked_at = ? WHERE id = ? AND client_id = ? AND revoked_at IS NULL AND expires_at > ?`,
			now, sessionID, clientID, now)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	s.cache.revokeSession(sessionID)
	// Only clientID's watches: a session id of another user ends nothing.
	s.watchers.endSessionOf(clientID, sessionID)
	if err != nil {
		return false, fmt.Errorf("auth: revoke session: %w", err)
	}
	return n > 0, nil
}

// SessionInfo is one usable session, without its token.
type SessionInfo struct {
	ID               string
	Created, Expires time.Time
}

// MaxListedSessions bounds what [Sessions.List] returns.
const MaxListedSessions = 1000

// List returns the usable (neither revoked nor expired) sessions of
// clientID, newest first, at most [MaxListedSessions]. Sessions created in
// the same millisecond are in the order they were created (rowid: a new
// row's is above every existing one's).
func (s *Sessions) List(ctx context.Context, clientID string) ([]SessionInfo, error) {
	now := time.Now().UnixMilli()
	rows, err := s.db.QueryContext(ctx, `SELECT id, created_at, expires_at FROM sessions
		WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ?
		ORDER BY created_at DESC, rowid DESC LIMIT ?`, clientID, now, MaxListedSessions)
	if err != nil {
		return nil, fmt.Errorf("auth: list sessions of %q: %w", clientID, err)
	}
	defer rows.Close()
	var out []SessionInfo
	for rows.Next() {
		var (
			si               SessionInfo
			created, expires int64
		)
		if err := rows.Scan(&si.ID, &created, &expires); err != nil {
			return nil, fmt.Errorf("auth: list sessions of %q: %w", clientID, err)
		}
		si.Created, si.Expires = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list sessions of %q: %w", clientID, err)
	}
	return out, nil
}

// Prune deletes expired sessions (revoked or not) and returns how many. A
// revoked session that has not expired yet is kept until it does, as a
// record of the revocation. Issue calls Prune every PruneInterval.
func (s *Sessions) Prune(ctx context.Context) (int64, error) {
	now := time.Now()
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("auth: prune sessions: %w", err)
	}
	s.mu.Lock()
	s.lastPrune = now
	s.mu.Unlock()
	return res.RowsAffected()
}

// maybePrune prunes if the last prune is older than the interval. Failure
// is harmless (expired rows are rejected anyway) and retried next time.
func (s *Sessions) maybePrune(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPrune) >= s.pruneInterval
	if due {
		s.lastPrune = now
	}
	s.mu.Unlock()
	if due {
		_, _ = s.Prune(ctx)
	}
}

func hashToken(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

func wellFormedToken(token string) bool {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(token[len(TokenPrefix):])
	return err == nil
}
