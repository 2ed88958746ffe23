package auth

import (
	"context"
	"database/sql"
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

// saveThrottle writes rows in one transaction.
func (s *Sessions) saveThrottle(ctx context.Context, rows []throttleRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := store.InTx(ctx, s.db, func(tx *sql.Tx) error {
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

// clearThrottleClient deletes every row of clientID: its pairs and the
// client id itself.
func (s *Sessions) clearThrottleClient(ctx context.Context, clientID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_throttle WHERE client_id = ?`, clientID); err != nil {
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

// syncThrottle adopts the stored state of keys before a login attempt
// counts against them, on a database shared with other replicas: their
// failures, lockouts and an admin's clearing (all written through before
// their call answers) count here at once, so that guesses spread over the
// replicas get no more tries than at one. A read that fails leaves the
// memory as it is.
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
