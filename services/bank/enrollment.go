package bank

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/store"
)

// Enrollment codes prove that a customer registering with the gateway holds
// an account: the bank gives the holder a code out of band (`remit bank
// enroll`), the customer types it into Register, and the gateway has the
// bank consume it (ConsumeEnrollmentCode). The bank stores only a hash.
//
// Rules (see docs/security.md):
//   - A code is 16 characters of a 32-letter alphabet without 0/O, 1/I:
//     80 random bits, printed in groups of four (ABCD-EFGH-JKLM-NPQR). Case,
//     dashes and spaces do not matter when it is checked.
//   - A code is valid for its TTL (default DefaultEnrollmentTTL, at most
//     MaxEnrollmentTTL), once: consuming it binds it to a client id; the same
//     client id consuming it again succeeds (a retry after a lost answer),
//     any other fails.
//   - Issuing a code for an account revokes the account's unconsumed older
//     codes and clears its failed attempts: the newest code is the only one
//     that can still be consumed.
//   - After MaxEnrollmentFailures wrong attempts on an account id, every
//     code of it fails until a new one is issued.
//   - Every failure is the same ErrEnrollmentCodeInvalid with the same
//     message, and costs the same work (a hash, a constant-time comparison,
//     one counted failure written), whether the account exists or not.
const (
	DefaultEnrollmentTTL  = 24 * time.Hour
	MaxEnrollmentTTL      = 7 * 24 * time.Hour
	MaxEnrollmentFailures = 5
)

// enrollmentAlphabet is base32 without the characters people confuse: no
// 0, 1, I or O (L stays: with no 1 and no I it is unambiguous).
const enrollmentAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

var enrollmentEncoding = base32.NewEncoding(enrollmentAlphabet).WithPadding(base32.NoPadding)

// enrollmentCodeBytes is the entropy of a code: 10 bytes, 80 bits, 16
// characters.
const (
	enrollmentCodeBytes = 10
	enrollmentCodeLen   = 16
)

// EnrollmentCode is a code just issued. Code is the only copy of it: the
// ledger keeps its hash.
type EnrollmentCode struct {
	AccountID  string
	Code       string // grouped, e.g. ABCD-EFGH-JKLM-NPQR
	ExpireTime time.Time
	// Revoked is how many older unconsumed codes of the account this one
	// made invalid.
	Revoked int64
}

// Enrollment is a consumed code: the account it linked.
type Enrollment struct {
	AccountID string
	Currency  string
	ClientID  string
	// Repeat is set when the code had already been consumed by this
	// client id (a retry).
	Repeat bool
}

// EnrollmentError is the error of a failed ConsumeEnrollmentCode. It reads
// exactly as [ErrEnrollmentCodeInvalid] (errors.Is matches it) whatever the
// cause, so the caller learns nothing from it; Why is for the bank's own
// log only.
type EnrollmentError struct {
	// Why is what failed: "wrong code", "expired", "revoked", "consumed by
	// another client", "locked", "no such account", "account closed".
	Why string
}

func (e *EnrollmentError) Error() string { return ErrEnrollmentCodeInvalid.Error() }

// Unwrap makes errors.Is(err, ErrEnrollmentCodeInvalid) true.
func (e *EnrollmentError) Unwrap() error { return ErrEnrollmentCodeInvalid }

// normalizeCode is a code as typed, without dashes or white space, in upper
// case.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, strings.ToUpper(code))
}

// codeHash is what the ledger stores of a code: SHA-256 over a domain
// label, the account id and the normalized code. A code has 80 random bits,
// so a fast hash is enough; binding the account id makes a code valid for
// its account only.
func codeHash(accountID, code string) []byte {
	h := sha256.New()
	h.Write([]byte("remit enrollment code v1\x00"))
	h.Write([]byte(accountID))
	h.Write([]byte{0})
	h.Write([]byte(normalizeCode(code)))
	return h.Sum(nil)
}

// newCode returns a fresh random code, grouped by four.
func newCode() string {
	b := make([]byte, enrollmentCodeBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	s := enrollmentEncoding.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i:min(i+4, len(s))])
	}
	return out.String()
}

// IssueEnrollmentCode issues a new code for an open account, valid for ttl
// (0 means DefaultEnrollmentTTL; more than MaxEnrollmentTTL or negative is
// ErrInvalidArgument), revokes the account's unconsumed older codes and
// clears its failed attempts. An unknown account is ErrAccountNotFound, a
// closed one ErrAccountClosed.
func (l *Ledger) IssueEnrollmentCode(ctx context.Context, accountID string, ttl time.Duration) (EnrollmentCode, error) {
	switch {
	case ttl == 0:
		ttl = DefaultEnrollmentTTL
	case ttl < 0 || ttl > MaxEnrollmentTTL:
		return EnrollmentCode{}, fmt.Errorf("%w: an enrollment code is valid for at most %s, not %s", ErrInvalidArgument, MaxEnrollmentTTL, ttl)
	}
	now := time.Now()
	code := EnrollmentCode{AccountID: accountID, Code: newCode(), ExpireTime: now.Add(ttl).UTC()}
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		a, err := l.getAccount(ctx, tx, accountID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%w: %s", ErrAccountNotFound, accountID)
		case err != nil:
			return err
		case a.Closed:
			return fmt.Errorf("%w: %s", ErrAccountClosed, accountID)
		}
		res, err := tx.ExecContext(ctx, `UPDATE enrollment_codes SET revoke_time = ?
			WHERE account_id = ? AND consumed_by IS NULL AND revoke_time IS NULL`, nanos(now), accountID)
		if err != nil {
			return err
		}
		if code.Revoked, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM enrollment_failures WHERE account_id = ?`, accountID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO enrollment_codes (account_id, code_hash, issue_time, expire_time) VALUES (?, ?, ?, ?)`,
			accountID, codeHash(accountID, code.Code), nanos(now), nanos(code.ExpireTime))
		return err
	})
	if err != nil {
		return EnrollmentCode{}, fmt.Errorf("bank: issue enrollment code for %s: %w", accountID, err)
	}
	return code, nil
}

// dummyHash is compared against when an account has no codes, so that the
// work does not depend on whether it has any.
var dummyHash = codeHash("", "")

// ConsumeEnrollmentCode checks code for accountID and consumes it for
// clientID, returning the account it links. Consuming a code this client id
// consumed before succeeds again (Repeat). Every failure is an
// *EnrollmentError (errors.Is ErrEnrollmentCodeInvalid), counted against
// the account id, known or not.
func (l *Ledger) ConsumeEnrollmentCode(ctx context.Context, accountID, code, clientID string) (Enrollment, error) {
	if accountID == "" || clientID == "" {
		return Enrollment{}, fmt.Errorf("%w: enrollment without account or client id", ErrInvalidArgument)
	}
	given := codeHash(accountID, code)
	wellFormed := len(normalizeCode(code)) == enrollmentCodeLen
	now := l.nowNanos()
	var (
		out    = Enrollment{AccountID: accountID, ClientID: clientID}
		failed *EnrollmentError // a failure, recorded in this transaction, returned after it commits
	)
	err := l.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		failed = nil
		// Every path reads the account, the failures and the codes, and
		// compares the hash, before it decides.
		a, accErr := l.getAccount(ctx, tx, accountID)
		if accErr != nil && !errors.Is(accErr, sql.ErrNoRows) {
			return accErr
		}
		var failures int
		if err := tx.QueryRowContext(ctx, `SELECT failures FROM enrollment_failures WHERE account_id = ?`, accountID).
			Scan(&failures); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		match, err := matchCode(ctx, tx, accountID, given)
		if err != nil {
			return err
		}
		why := ""
		switch {
		case errors.Is(accErr, sql.ErrNoRows):
			why = "no such account"
		case a.Closed:
			why = "account closed"
		case failures >= MaxEnrollmentFailures:
			why = "locked"
		case !wellFormed || match == nil:
			why = "wrong code"
		case match.revoked:
			why = "revoked by a newer code"
		case match.consumedBy == clientID:
			out.Repeat = true
		case match.consumedBy != "":
			why = "consumed by another client"
		case match.expire <= now:
			why = "expired"
		}
		if why != "" {
			failed = &EnrollmentError{Why: why}
			_, err := tx.ExecContext(ctx, `INSERT INTO enrollment_failures (account_id, failures, last_failure_time) VALUES (?, 1, ?)
				ON CONFLICT (account_id) DO UPDATE SET failures = enrollment_failures.failures + 1, last_failure_time = excluded.last_failure_time`,
				accountID, now)
			return err
		}
		out.Currency = a.Currency
		if out.Repeat {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE enrollment_codes SET consumed_by = ?, consume_time = ? WHERE code_id = ?`,
			clientID, now, match.id)
		return err
	})
	switch {
	case err != nil:
		return Enrollment{}, fmt.Errorf("bank: consume enrollment code for %s: %w", accountID, err)
	case failed != nil:
		return Enrollment{}, failed
	}
	return out, nil
}

// codeRow is the stored state of one enrollment code.
type codeRow struct {
	id         int64
	expire     int64
	revoked    bool
	consumedBy string
}

// matchCode compares given with the hash of every code of the account in
// constant time each (and with dummyHash when it has none), and returns the
// matching row, or nil.
func matchCode(ctx context.Context, tx *sql.Tx, accountID string, given []byte) (*codeRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT code_id, code_hash, expire_time, revoke_time IS NOT NULL, COALESCE(consumed_by, '')
		FROM enrollment_codes WHERE account_id = ? ORDER BY code_id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var match *codeRow
	compared := false
	for rows.Next() {
		var (
			r    codeRow
			hash []byte
		)
		if err := rows.Scan(&r.id, &hash, &r.expire, &r.revoked, &r.consumedBy); err != nil {
			return nil, err
		}
		compared = true
		if subtle.ConstantTimeCompare(hash, given) == 1 {
			match = &r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !compared {
		subtle.ConstantTimeCompare(dummyHash, given)
	}
	return match, nil
}

// Enroll issues an enrollment code for accountID in the ledger at target
// (LedgerTarget of the bank's config: `remit bank enroll`). The bank may be
// running: SQLite in WAL mode with a busy timeout lets this second writer
// take its turn, and PostgreSQL's writer lock orders the two. The ledger
// must exist already (the bank has started once), so that a mistyped data
// directory or URL is an error rather than a new ledger.
func Enroll(ctx context.Context, target, accountID string, ttl time.Duration) (EnrollmentCode, error) {
	if err := ledgerExists(ctx, target); err != nil {
		return EnrollmentCode{}, err
	}
	l, err := OpenLedger(ctx, target)
	if err != nil {
		return EnrollmentCode{}, err
	}
	code, err := l.IssueEnrollmentCode(ctx, accountID, ttl)
	return code, errors.Join(err, l.Close())
}

// ledgerExists reports, as an error, a target that holds no ledger yet.
func ledgerExists(ctx context.Context, target string) error {
	if !store.IsPostgres(target) {
		if _, err := os.Stat(target); err != nil {
			return fmt.Errorf("bank: no ledger at %s (has the bank been started?): %w", target, err)
		}
		return nil
	}
	db, err := store.OpenReader(ctx, target)
	if err != nil {
		return fmt.Errorf("bank: %w", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		return errors.Join(fmt.Errorf("bank: no ledger at %s (has the bank been started?): %w", store.Redact(target), err), db.Close())
	}
	return db.Close()
}
