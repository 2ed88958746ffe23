package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/remitpay/remit/internal/store"
)

// Throttle kinds, the kind column of login_throttle.
const (
	kindPair   = "pair"   // (client id, source)
	kindSource = "source" // source across client ids
	kindClient = "client" // client id across sources
)

// throttleRow is one key's stored state; del means the key holds nothing
// any more and its row goes.
type throttleRow struct {
	kind string
	key  throttleKey
	e    throttleEntry
	del  bool
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// saveThrottle writes rows in one transaction, with notice, if not "", to
// the other replicas (topicThrottle), delivered when it commits.
func (s *Sessions) saveThrottle(ctx context.Context, rows []throttleRow, notice string) error {
	if len(rows) == 0 {
		return nil
	}
	err := store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if notice != "" {
			if err := s.bus.PublishIn(ctx, tx, topicThrottle, notice); err != nil {
				return err
			}
		}
		for _, r := range rows {
			var err error
			if r.del {
				_, err = tx.ExecContext(ctx,
					`DELETE FROM login_throttle WHERE kind = ? AND client_id = ? AND source = ?`, r.kind, r.key.id, r.key.src)
			} else {
				_, err = tx.ExecContext(ctx, `INSERT INTO login_throttle
					(kind, client_id, source, failures, window_start, lockouts, locked_until, last_failure)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)
					ON CONFLICT (kind, client_id, source) DO UPDATE SET
					failures = excluded.failures, window_start = excluded.window_start, lockouts = excluded.lockouts,
					locked_until = excluded.locked_until, last_failure = excluded.last_failure`,
					r.kind, r.key.id, r.key.src, r.e.failures, millis(r.e.windowStart), r.e.lockouts,
					millis(r.e.lockedUntil), millis(r.e.lastFailure))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: store login throttle state: %w", err)
	}
	return nil
}

// loadThrottle returns the stored state of every key that is locked or
// failed since quietSince, at most limit rows per kind, locked keys first,
// then the most recent failures.
func (s *Sessions) loadThrottle(ctx context.Context, now, quietSince time.Time, limit int) ([]throttleRow, error) {
	var rows []throttleRow
	for _, kind := range []string{kindPair, kindSource, kindClient} {
		rs, err := s.loadThrottleKind(ctx, kind, now, quietSince, limit)
		if err != nil {
			return nil, fmt.Errorf("auth: load login throttle state: %w", err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

func (s *Sessions) loadThrottleKind(ctx context.Context, kind string, now, quietSince time.Time, limit int) ([]throttleRow, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT client_id, source, failures, window_start, lockouts, locked_until, last_failure
		FROM login_throttle WHERE kind = ? AND (locked_until > ? OR last_failure >= ?)
		ORDER BY locked_until > ? DESC, last_failure DESC LIMIT ?`,
		kind, now.UnixMilli(), quietSince.UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var rows []throttleRow
	for rs.Next() {
		var (
			r                                     = throttleRow{kind: kind}
			windowStart, lockedUntil, lastFailure int64
		)
		if err := rs.Scan(&r.key.id, &r.key.src, &r.e.failures, &windowStart, &r.e.lockouts, &lockedUntil, &lastFailure); err != nil {
			return nil, err
		}
		r.e.windowStart, r.e.lockedUntil, r.e.lastFailure = fromMillis(windowStart), fromMillis(lockedUntil), fromMillis(lastFailure)
		rows = append(rows, r)
	}
	return rows, rs.Err()
}

// pruneThrottle deletes the rows of keys that are not locked and have not
// failed since quietSince.
func (s *Sessions) pruneThrottle(ctx context.Context, now, quietSince time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_throttle WHERE locked_until <= ? AND last_failure < ?`,
		now.UnixMilli(), quietSince.UnixMilli()); err != nil {
		return fmt.Errorf("auth: prune login throttle state: %w", err)
	}
	return nil
}

// clearThrottleClient deletes every row of clientID, its pairs and the
// client id itself, with notice, if not "", to the other replicas.
func (s *Sessions) clearThrottleClient(ctx context.Context, clientID, notice string) error {
	if err := store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_throttle WHERE client_id = ?`, clientID); err != nil {
			return err
		}
		if notice == "" {
			return nil
		}
		return s.bus.PublishIn(ctx, tx, topicThrottle, notice)
	}); err != nil {
		return fmt.Errorf("auth: clear login throttle state of %q: %w", clientID, err)
	}
	return nil
}

// loadThrottleKey returns the stored state of one key, or nil if it has
// none.
func (s *Sessions) loadThrottleKey(ctx context.Context, kind string, key throttleKey) (*throttleEntry, error) {
	var (
		e                                     throttleEntry
		windowStart, lockedUntil, lastFailure int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT failures, window_start, lockouts, locked_until, last_failure
		FROM login_throttle WHERE kind = ? AND client_id = ? AND source = ?`, kind, key.id, key.src).
		Scan(&e.failures, &windowStart, &e.lockouts, &lockedUntil, &lastFailure)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil //nolint:nilnil // no state is the answer
	case err != nil:
		return nil, fmt.Errorf("auth: load login throttle state: %w", err)
	}
	e.windowStart, e.lockedUntil, e.lastFailure = fromMillis(windowStart), fromMillis(lockedUntil), fromMillis(lastFailure)
	return &e, nil
}

// The change bus's topic of the login throttle: the keys one gateway
// replica stored, so that the others count its failures and lockouts too.
const topicThrottle = "throttle"

// throttleNotice is a notice of topicThrottle, as JSON.
type throttleNotice struct {
	// Origin is the Authenticator that wrote: it ignores its own notices
	// (its memory is ahead of what it stored).
	Origin string `json:"o"`
	// Keys are the keys it stored, to read again.
	Keys []throttleNoticeKey `json:"k,omitempty"`
	// Clear is a client id whose lockouts an admin cleared.
	Clear string `json:"c,omitempty"`
}

type throttleNoticeKey struct {
	Kind string `json:"k"`
	ID   string `json:"i"`
	Src  string `json:"s"`
}

// throttleNoticeOf is the notice of n from this Authenticator, or "" when
// there is no one to tell (SQLite).
func (a *Authenticator) throttleNoticeOf(n throttleNotice) string {
	if a.sessions.bus == nil {
		return ""
	}
	n.Origin = a.origin
	b, err := json.Marshal(n)
	if err != nil {
		return "" // strings and a slice of them: cannot fail
	}
	return string(b)
}

// heardThrottle adopts what another replica stored.
func (a *Authenticator) heardThrottle(payload string) {
	var n throttleNotice
	if err := json.Unmarshal([]byte(payload), &n); err != nil || n.Origin == a.origin {
		return
	}
	ctx := context.Background()
	if n.Clear != "" {
		now := time.Now()
		a.pairs.clearID(n.Clear, now)
		a.accounts.clearID(n.Clear, now)
	}
	for _, k := range n.Keys {
		key := throttleKey{id: k.ID, src: k.Src}
		e, err := a.sessions.loadThrottleKey(ctx, k.Kind, key)
		if err != nil {
			a.log.Error("cannot read the login failures another gateway replica stored", "err", err)
			continue
		}
		a.throttleOf(k.Kind).adopt(key, e)
	}
}

// resyncThrottle reads the whole stored state again (the listener
// reconnected: notices may have been missed).
func (a *Authenticator) resyncThrottle() {
	ctx := context.Background()
	now := time.Now()
	rows, err := a.sessions.loadThrottle(ctx, now, now.Add(-a.pairs.quiet()), a.pairs.maxTracked)
	if err != nil {
		a.log.Error("cannot reload the login throttle state", "err", err)
		return
	}
	for _, r := range rows {
		e := r.e
		a.throttleOf(r.kind).adopt(r.key, &e)
	}
}

// syncThrottle adopts the stored state of keys before a login attempt
// counts against them, on a log shared with other replicas: their
// failures count here even if their notice has not arrived, so that
// guesses spread over the replicas one after the other get no more tries
// than at one. A read that fails leaves the memory as it is.
func (a *Authenticator) syncThrottle(ctx context.Context, keys ...throttleRef) {
	for _, k := range keys {
		e, err := a.sessions.loadThrottleKey(ctx, k.t.kind, k.key)
		if err != nil {
			a.log.ErrorContext(ctx, "cannot read the login throttle state; counting from memory", "err", err)
			return
		}
		k.t.adopt(k.key, e)
	}
}
