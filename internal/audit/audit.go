// Package audit writes Remit's append-only audit log: one JSON object per
// line, for the few events an operator or an investigator must be able to
// reconstruct after the fact (logins, authorization denials, payment
// decisions).
//
// # Format
//
// Every line is a JSON object whose first two keys are "time" (RFC 3339 with
// nanoseconds, UTC) and "event" (one of the Event* constants), followed by
// the attributes given to [Log.Record], encoded as log/slog's JSON handler
// encodes them (groups become nested objects). Attributes named like a
// built-in key ("time", "event", "level", "msg") are renamed with an "attr_"
// prefix so that they cannot forge or hide the built-in ones.
//
// # Invariants
//
//   - The file is only ever appended to (O_APPEND); nothing in Remit
//     truncates or rewrites it. Rotation, if wanted, is an operator's job
//     (move the file away and restart, or copytruncate-free tools).
//   - A line is fsynced before [Log.Record] returns, so an event that was
//     recorded survives a crash. Concurrent Records share the work (group
//     commit): each queues its line, one of them writes every queued line
//     in one write and fsyncs once, and all of them return after that
//     fsync. If the process dies in the middle of a line, [Open] terminates
//     the partial line before appending, so every complete line stays
//     valid JSON.
//   - The file is created with mode 0600 in a directory created with mode
//     0700: it names clients, banks and amounts.
//   - Secrets never go into the audit log: callers must not pass passwords,
//     tokens, keys or Authorization headers. As a second line of defence,
//     the value of any attribute whose key contains "password", "passwd",
//     "secret", "token", "authorization" or "private" is replaced by
//     [Redacted].
package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Events recorded in the audit log. They are exported so that writers and
// log queries (and tests) share one spelling.
const (
	// EventLoginSucceeded is recorded when a client logged in and received a
	// token (attributes: client_id, source, session_id).
	EventLoginSucceeded = "login_succeeded"
	// EventLoginFailed is recorded for every rejected password (attributes:
	// client_id, source). It never says whether the id or the password was
	// wrong to the client, but the audit log may carry a reason.
	EventLoginFailed = "login_failed"
	// EventLoginLocked is recorded when repeated failures lock a source out
	// of Login for a while, for one client id or for all (attributes:
	// client_id, source, locked: which limit was reached, and retry_after).
	EventLoginLocked = "login_locked"
	// EventLoginLockoutCleared is recorded when an admin cleared the login
	// failures and lockouts of a client id (attributes: client_id,
	// principal, cleared_sources, locked_sources, account_locked).
	EventLoginLockoutCleared = "login_lockout_cleared"
	// EventAuthzDenied is recorded when an authenticated principal called a
	// procedure its roles do not allow (attributes: procedure, principal,
	// role, peer).
	EventAuthzDenied = "authz_denied"
	// EventPaymentDecided is recorded by the gateway once the commit or
	// abort decision of a payment is durable (attributes: transaction_id,
	// decision, amount, currency, payer, payee).
	EventPaymentDecided = "payment_decided"

	// Users (issue 12). Every change of a user is recorded with client_id
	// and by: who made it (the admin's principal name, "self" for a
	// customer's own change, "registration", or "users_file" for an
	// import). Changes that end sessions add revoked_sessions.

	// EventUserRegistered: a customer signed up (client_id, source,
	// bank, account_id).
	EventUserRegistered = "user_registered"
	// EventRegisterFailed: a sign-up was refused after the bank's check of
	// its enrollment code (client_id as typed is not recorded; source,
	// bank, account_id, reason).
	EventRegisterFailed = "register_failed"
	// EventUserCreated: an admin created a user, or the users file added
	// one (client_id, by, roles, bank, account_id).
	EventUserCreated = "user_created"
	// EventUserUpdated: the users file changed a file user's roles or
	// account (client_id, by, roles, bank, account_id).
	EventUserUpdated = "user_updated"
	// EventUserDisabled: a user was disabled, by an admin or because it
	// left the users file (client_id, by, revoked_sessions).
	EventUserDisabled = "user_disabled"
	// EventUserEnabled: a user was enabled again (client_id, by).
	EventUserEnabled = "user_enabled"
	// EventPasswordReset: an admin set a user's password (client_id, by,
	// revoked_sessions).
	EventPasswordReset = "password_reset"
	// EventPasswordChanged: a user changed its own password, or the users
	// file changed it (client_id, by, revoked_sessions).
	EventPasswordChanged = "password_changed"
	// EventSessionsRevoked: an admin ended one or all sessions of a user
	// (client_id, by, session_id if one, revoked_sessions).
	EventSessionsRevoked = "sessions_revoked"
	// EventUsersImported: an import of the users file changed something
	// or skipped entries (path, added, updated, disabled, skipped).
	EventUsersImported = "users_imported"
	// EventUserImportConflict: an import left an entry of the users file
	// unapplied (client_id, reason: password_set_through_api,
	// not_a_file_user, client_id_case, account_linked).
	EventUserImportConflict = "user_import_conflict"
)

// Redacted replaces the value of attributes whose key looks like it names a
// secret.
const Redacted = "[REDACTED]"

// Keys written by the audit log itself.
const (
	KeyTime  = "time"
	KeyEvent = "event"
)

// Events of accounts at run time (issue 12), recorded by the gateway after
// the bank answered.
const (
	// EventAccountOpened is recorded when an admin's OpenAccount succeeded
	// (attributes: principal, request_id, bank, account_id, owner, currency).
	// A repeat of the same request id is recorded again.
	EventAccountOpened = "account_opened"
	// EventAccountClosed is recorded when an admin's CloseAccount succeeded
	// (attributes: principal, bank, account_id), also for an account that
	// was closed already.
	EventAccountClosed = "account_closed"
)

// Recorder is what code that emits audit events depends on, so that it can
// be tested with a fake and run without an audit log (nil Recorder). *Log
// implements it.
type Recorder interface {
	// Record appends one event with attrs; see [Log.Record].
	Record(ctx context.Context, event string, attrs ...slog.Attr)
}

// ErrClosed is reported by [Log.Err] for events recorded after
// [Log.Close].
var ErrClosed = errors.New("audit: log is closed")

// Log is an append-only JSON-lines audit log file. It is safe for
// concurrent use; lines from concurrent Record calls never interleave.
//
// Concurrent Records are group-committed: a Record encodes its line into
// the current batch under mu and waits until the batch is durable. Whoever
// finds no flush running takes the whole batch, writes it with one write
// and one fsync outside mu, marks it done and wakes the waiters; lines
// queued meanwhile form the next batch, flushed by one of their own
// Records. There is no background goroutine.
type Log struct {
	path   string
	logger *slog.Logger // reports events that could not be recorded

	mu       sync.Mutex
	flushed  sync.Cond // signalled (with mu) when a flush ends
	f        *os.File
	buf      bytes.Buffer
	handler  slog.Handler
	err      error  // first failure to record an event
	pending  []byte // lines of cur, not yet written
	spare    []byte // the previous batch's buffer, reused
	cur      *batch // the batch lines are queued into now
	flushing bool   // a Record (or Close) is writing a batch outside mu
	torn     bool   // a failed write left a partial line at the end of the file

	syncs       int64  // fsyncs done (for tests)
	durable     int64  // bytes appended by this Log and fsynced (for tests)
	beforeWrite func() // test hook: called by a flush before it writes, outside mu
}

// batch is one group commit: the lines queued while the previous one was
// being written, written and fsynced together.
type batch struct {
	done bool
	err  error
}

var _ Recorder = (*Log)(nil)

// Open opens (creating if needed) the audit log at path for appending. The
// parent directory is created with mode 0700 and the file with mode 0600; an
// existing file with wider permissions is narrowed to 0600. logger is
// required: it reports events that could not be written (see [Log.Record]).
func Open(path string, logger *slog.Logger) (*Log, error) {
	if path == "" {
		return nil, errors.New("audit: empty log path")
	}
	if logger == nil {
		return nil, errors.New("audit: no logger to report write failures to")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close() // nothing was written; the chmod error is the one to report
		return nil, fmt.Errorf("audit: chmod %s: %w", path, err)
	}
	if err := terminatePartialLine(path, f); err != nil {
		_ = f.Close() // the repair's error is the one to report
		return nil, err
	}
	l := &Log{path: path, logger: logger, f: f, cur: &batch{}}
	l.flushed.L = &l.mu
	l.handler = slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{ReplaceAttr: replaceAttr})
	return l, nil
}

// terminatePartialLine appends a newline if the file does not end in one,
// which happens only if a previous process died in the middle of a write.
// The partial line stays (the log is append-only) but the next event starts
// on a line of its own.
func terminatePartialLine(path string, w *os.File) error {
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", path, err)
	}
	defer r.Close() //nolint:errcheck // opened read-only: Close cannot lose data
	fi, err := r.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, fi.Size()-1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("audit: read %s: %w", path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	return w.Sync()
}

// Path returns the file the log appends to.
func (l *Log) Path() string { return l.path }

// Record appends one line {time, event, attrs...} and fsyncs the file
// before returning, so that a recorded event survives a crash. Concurrent
// Records share one write and one fsync (see [Log]).
//
// Auditing never blocks the operation being audited: a payment decision is
// already durable when it is recorded, and a failed login has already
// failed. So Record does not return an error; a line that could not be
// written durably is reported on the logger given to [Open] at error level and
// remembered for [Log.Err], which operators and health checks can watch.
//
// Never pass secrets (passwords, tokens, keys, Authorization headers) in
// attrs; see the package documentation.
func (l *Log) Record(ctx context.Context, event string, attrs ...slog.Attr) {
	if err := l.write(ctx, event, attrs); err != nil {
		l.logger.LogAttrs(ctx, slog.LevelError, "audit log write failed",
			slog.String("event", event), slog.String("path", l.path), slog.String("error", err.Error()))
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
}

// Err returns the first error that kept an event out of the log since
// Open, or nil if every event was recorded durably.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Log) write(ctx context.Context, event string, attrs []slog.Attr) error {
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, event, 0)
	for _, a := range attrs {
		switch a.Key {
		case KeyTime, KeyEvent, slog.LevelKey, slog.MessageKey:
			a.Key = "attr_" + a.Key
		}
		rec.AddAttrs(a)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	l.buf.Reset()
	if err := l.handler.Handle(ctx, rec); err != nil {
		return fmt.Errorf("audit: encode %s: %w", event, err)
	}
	l.pending = append(l.pending, l.buf.Bytes()...)
	b := l.cur
	for !b.done {
		if l.flushing {
			l.flushed.Wait()
			continue
		}
		// No flush is running, so b is the current batch: flush it.
		l.flushLocked()
	}
	return b.err
}

// flushLocked writes and fsyncs the current batch, releasing mu while it
// does; l.mu is held on entry and on return, and no other flush runs.
func (l *Log) flushLocked() {
	l.flushing = true
	b, data, f, torn := l.cur, l.pending, l.f, l.torn
	l.cur, l.pending = &batch{}, l.spare[:0]
	l.mu.Unlock()

	if l.beforeWrite != nil {
		l.beforeWrite()
	}
	if torn {
		// A previous write stopped in the middle of a line: start this
		// batch on a line of its own, as Open does after a crash.
		data = append([]byte{'\n'}, data...)
	}
	n, err := writeSync(l.path, f, data)

	l.mu.Lock()
	if n > 0 {
		l.torn = data[n-1] != '\n'
	}
	if err == nil {
		l.syncs++
		l.durable += int64(len(data))
	}
	b.done, b.err = true, err
	l.spare = data[:0]
	l.flushing = false
	l.flushed.Broadcast()
}

// writeSync appends data to f and fsyncs it; n is how much of data was
// written, all of it or, on a write error, a part.
func writeSync(path string, f *os.File, data []byte) (n int, err error) {
	if n, err = f.Write(data); err != nil {
		return n, fmt.Errorf("audit: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("audit: sync %s: %w", path, err)
	}
	return n, nil
}

// Close waits for lines already queued to be written and fsynced, then
// closes the file. Later calls to Record return [ErrClosed].
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.flushing || len(l.pending) > 0 {
		if l.flushing {
			l.flushed.Wait()
			continue
		}
		l.flushLocked()
	}
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// replaceAttr shapes slog's JSON output into the audit format: no level,
// the message becomes "event", the time is UTC, and secret-looking
// attributes are redacted.
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.LevelKey:
			return slog.Attr{}
		case slog.MessageKey:
			a.Key = KeyEvent
			return a
		case slog.TimeKey:
			if a.Value.Kind() == slog.KindTime {
				return slog.String(KeyTime, a.Value.Time().UTC().Format(time.RFC3339Nano))
			}
		}
	}
	if secretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	return a
}

var secretWords = []string{"password", "passwd", "secret", "token", "authorization", "private"}

func secretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
