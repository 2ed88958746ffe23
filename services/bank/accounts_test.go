package bank_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/remitpay/remit/internal/store/storetest"
	"github.com/remitpay/remit/services/bank"
)

// openClosable is openLedger for a ledger the test closes itself.
func openClosable(t *testing.T, path string) *bank.Ledger {
	t.Helper()
	l, err := bank.OpenLedger(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range defaultSeeds {
		if _, err := l.EnsureAccount(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func openReq(id, owner string) bank.OpenRequest {
	return bank.OpenRequest{RequestID: newID(), AccountID: id, Owner: owner, Currency: "usd"}
}

func mustOpen(t *testing.T, l *bank.Ledger, id string) bank.Account {
	t.Helper()
	a, err := l.OpenAccount(t.Context(), openReq(id, id))
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	return a
}

func TestOpenAccount(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		ctx := t.Context()
		req := openReq("erin", "erin-owner")
		want := bank.Account{ID: "erin", Owner: "erin-owner", Currency: "usd", OpenTime: time.Now().UTC()}
		a, err := l.OpenAccount(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, a); d != "" {
			t.Errorf("opened (-want +got):\n%s", d)
		}
		// The opening is journaled as an opening of 0, like a seeded account.
		entries, err := l.Entries(ctx, "opening:erin")
		if err != nil || len(entries) != 1 || entries[0].Kind != bank.KindOpening || entries[0].Amount != 0 {
			t.Errorf("journal of the opening = %+v, %v; want one opening of 0", entries, err)
		}

		time.Sleep(time.Minute)
		// A repeat returns the account as it is, also after it moved.
		if _, err := l.UpdateBalance(ctx, newID(), credit("erin", 5)); err != nil {
			t.Fatal(err)
		}
		again, err := l.OpenAccount(ctx, req)
		want.Balance = 5
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, again); d != "" {
			t.Errorf("repeated opening (-want +got):\n%s", d)
		}

		tests := []struct {
			name string
			req  bank.OpenRequest
			want error
		}{
			{"request id reused for another account", bank.OpenRequest{RequestID: req.RequestID, AccountID: "frank", Owner: "erin-owner", Currency: "usd"}, bank.ErrIdempotencyKeyReused},
			{"request id reused for another owner", bank.OpenRequest{RequestID: req.RequestID, AccountID: "erin", Owner: "mallory", Currency: "usd"}, bank.ErrIdempotencyKeyReused},
			{"request id reused for another currency", bank.OpenRequest{RequestID: req.RequestID, AccountID: "erin", Owner: "erin-owner", Currency: "eur"}, bank.ErrIdempotencyKeyReused},
			{"account opened by another request", openReq("erin", "erin-owner"), bank.ErrAccountExists},
			{"account from the configuration", openReq("alice", "alice"), bank.ErrAccountExists},
			{"no owner", openReq("gina", ""), bank.ErrInvalidArgument},
		}
		for _, tt := range tests {
			if _, err := l.OpenAccount(ctx, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
		// Nothing of the refused openings exists.
		if _, err := l.Balance(ctx, "frank"); !errors.Is(err, bank.ErrAccountNotFound) {
			t.Errorf("frank: %v, want not found", err)
		}
		wantBalances(t, l, "erin", balances{5, 0, 0})
	})
}

func TestCloseAccount(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		ctx := t.Context()
		mustOpen(t, l, "erin")
		if _, err := l.UpdateBalance(ctx, newID(), credit("erin", 10)); err != nil {
			t.Fatal(err)
		}
		// Not empty: a balance, then a hold, then an incoming credit.
		if _, err := l.CloseAccount(ctx, "erin"); !errors.Is(err, bank.ErrAccountNotEmpty) {
			t.Fatalf("close with a balance: %v, want ErrAccountNotEmpty", err)
		}
		out := newID()
		mustPrepare(t, l, out, yes, debit("erin", 10), credit("bob", 10))
		if _, err := l.UpdateBalance(ctx, newID(), debit("bob", 50)); err != nil {
			t.Fatal(err)
		}
		// erin: balance 10, all of it held.
		if _, err := l.CloseAccount(ctx, "erin"); !errors.Is(err, bank.ErrAccountNotEmpty) {
			t.Fatalf("close with funds held: %v, want ErrAccountNotEmpty", err)
		}
		mustCommit(t, l, out, true, bank.StateCommitted)
		in := newID()
		mustPrepare(t, l, in, yes, debit("alice", 3), credit("erin", 3))
		if _, err := l.CloseAccount(ctx, "erin"); !errors.Is(err, bank.ErrAccountNotEmpty) {
			t.Fatalf("close with funds incoming: %v, want ErrAccountNotEmpty", err)
		}
		mustCommit(t, l, in, false, bank.StateAborted)
		wantBalances(t, l, "erin", balances{0, 0, 0})

		time.Sleep(time.Hour)
		closedAt := time.Now().UTC()
		a, err := l.CloseAccount(ctx, "erin")
		if err != nil {
			t.Fatal(err)
		}
		if !a.Closed || !a.CloseTime.Equal(closedAt) {
			t.Errorf("closed account = %+v, want closed at %v", a, closedAt)
		}
		time.Sleep(time.Hour)
		again, err := l.CloseAccount(ctx, "erin")
		if err != nil {
			t.Fatalf("closing a closed account: %v", err)
		}
		if d := cmp.Diff(a, again); d != "" {
			t.Errorf("closing again changed the account (-first +second):\n%s", d)
		}
		if _, err := l.CloseAccount(ctx, "nobody"); !errors.Is(err, bank.ErrAccountNotFound) {
			t.Errorf("close an unknown account: %v, want ErrAccountNotFound", err)
		}
		// Its id is never opened again.
		if _, err := l.OpenAccount(ctx, openReq("erin", "erin")); !errors.Is(err, bank.ErrAccountExists) {
			t.Errorf("reopen a closed account id: %v, want ErrAccountExists", err)
		}
		// It stays readable.
		got, err := l.Balance(ctx, "erin")
		if err != nil || !got.Closed {
			t.Errorf("Balance of a closed account = %+v, %v", got, err)
		}
	})
}

// TestClosedAccountRefusesEverything: every prepare leg on a closed account
// votes NO ACCOUNT_CLOSED, debit or credit, alone or beside another bank-local
// leg, and so does every adjustment; nothing is held or moved.
func TestClosedAccountRefusesEverything(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	mustOpen(t, l, "erin")
	if _, err := l.CloseAccount(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	for _, legs := range [][]bank.Leg{
		{credit("erin", 1)},
		{debit("erin", 1)},
		{debit("alice", 1), credit("erin", 1)},
		{debit("erin", 1), credit("alice", 1)},
	} {
		id := newID()
		mustPrepare(t, l, id, no(bank.ErrAccountClosed, "erin"), legs...)
		// The refusal is final.
		mustPrepare(t, l, id, no(bank.ErrAccountClosed, "erin"), legs...)
	}
	for _, leg := range []bank.Leg{credit("erin", 1), debit("erin", 1)} {
		id := newID()
		for range 2 {
			if _, err := l.UpdateBalance(ctx, id, leg); !errors.Is(err, bank.ErrAccountClosed) {
				t.Errorf("%s on a closed account: %v, want ErrAccountClosed", leg.Direction, err)
			}
		}
	}
	wantBalances(t, l, "erin", balances{0, 0, 0})
	wantBalances(t, l, "alice", balances{100, 0, 0})
}

// TestClosedConfiguredAccountStaysClosed: an account of the bank's YAML that
// was closed is not reopened by the next start's EnsureAccount.
func TestClosedConfiguredAccountStaysClosed(t *testing.T) {
	t.Parallel()
	path := storetest.Target(t, t.TempDir(), "ledger")
	l := openClosable(t, path)
	if _, err := l.CloseAccount(t.Context(), "carol"); err != nil { // opened with 0
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLedger(t, path) // EnsureAccount of every seed again
	a, err := l.Balance(t.Context(), "carol")
	if err != nil || !a.Closed || a.Balance != 0 {
		t.Fatalf("carol after a restart = %+v, %v; want closed with nothing", a, err)
	}
}

func TestListAccounts(t *testing.T) {
	t.Parallel()
	l := newLedger(t) // alice, bob, carol, whale
	ctx := t.Context()
	for i := range 120 {
		mustOpen(t, l, fmt.Sprintf("acct%03d", i))
	}
	if _, err := l.CloseAccount(ctx, "acct007"); err != nil {
		t.Fatal(err)
	}
	var all []string
	token := ""
	pages := 0
	for {
		page, next, err := l.ListAccounts(ctx, 1000, token) // treated as 100
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > bank.MaxPageSize {
			t.Fatalf("page of %d accounts, want at most %d", len(page), bank.MaxPageSize)
		}
		for _, a := range page {
			all = append(all, a.ID)
			if a.ID == "acct007" != a.Closed {
				t.Errorf("%s closed = %v", a.ID, a.Closed)
			}
		}
		pages++
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 124 || pages != 2 {
		t.Errorf("listed %d accounts in %d pages, want 124 in 2", len(all), pages)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("not by account id: %s before %s", all[i-1], all[i])
		}
	}
	first, next, err := l.ListAccounts(ctx, 0, "")
	if err != nil || len(first) != bank.DefaultPageSize || next == "" {
		t.Errorf("default page: %d accounts, next %q, %v; want %d and a next page", len(first), next, err, bank.DefaultPageSize)
	}
	for _, bad := range []string{"not base64!", "YWJj", next + "x"} {
		if _, _, err := l.ListAccounts(ctx, 0, bad); !errors.Is(err, bank.ErrBadPageToken) {
			t.Errorf("token %q: %v, want ErrBadPageToken", bad, err)
		}
	}
}

// codeFormat is how a code is printed: four groups of four letters of the
// alphabet without 0, 1, I or O.
var codeFormat = regexp.MustCompile(`^[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$`)

func issue(t *testing.T, l *bank.Ledger, account string, ttl time.Duration) string {
	t.Helper()
	c, err := l.IssueEnrollmentCode(t.Context(), account, ttl)
	if err != nil {
		t.Fatalf("issue a code for %s: %v", account, err)
	}
	if !codeFormat.MatchString(c.Code) {
		t.Fatalf("code %q is not four dash-separated groups of the alphabet", c.Code)
	}
	return c.Code
}

func wantConsumed(t *testing.T, l *bank.Ledger, account, code, client string) bank.Enrollment {
	t.Helper()
	e, err := l.ConsumeEnrollmentCode(t.Context(), account, code, client)
	if err != nil {
		t.Fatalf("consume %s's code for %s: %v", account, client, err)
	}
	return e
}

// wantInvalid checks that a consumption fails as every failure must: the
// same error with the same text, whatever the cause.
func wantInvalid(t *testing.T, l *bank.Ledger, account, code, client, why string) {
	t.Helper()
	_, err := l.ConsumeEnrollmentCode(t.Context(), account, code, client)
	if !errors.Is(err, bank.ErrEnrollmentCodeInvalid) || err.Error() != bank.ErrEnrollmentCodeInvalid.Error() {
		t.Fatalf("%s: %v, want exactly ErrEnrollmentCodeInvalid", why, err)
	}
	if e, ok := errors.AsType[*bank.EnrollmentError](err); !ok || e.Why == "" {
		t.Errorf("%s: %T without a reason for the log", why, err)
	}
}

func TestEnrollmentCodes(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()

	code := issue(t, l, "alice", 0)
	// Case, dashes and spaces do not matter; the account and currency come back.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	e := wantConsumed(t, l, "alice", typed, "alice-new")
	if e.AccountID != "alice" || e.Currency != "usd" || e.Repeat {
		t.Errorf("enrollment = %+v", e)
	}
	// A retry by the same client id succeeds; anyone else fails.
	if e := wantConsumed(t, l, "alice", code, "alice-new"); !e.Repeat {
		t.Errorf("retry = %+v, want Repeat", e)
	}
	wantInvalid(t, l, "alice", code, "mallory", "a consumed code for another client")

	bobs := issue(t, l, "bob", time.Hour)
	wantInvalid(t, l, "alice", bobs, "mallory", "bob's code for alice's account")
	wantInvalid(t, l, "nobody", bobs, "mallory", "an unknown account")
	wantInvalid(t, l, "bob", "", "mallory", "an empty code")
	wantInvalid(t, l, "bob", strings.Repeat("A", 64), "mallory", "a long code")
	// A new code revokes the older unconsumed one.
	newer, err := l.IssueEnrollmentCode(ctx, "bob", time.Hour)
	if err != nil || newer.Revoked != 1 {
		t.Fatalf("reissue: %+v, %v; want one code revoked", newer, err)
	}
	wantInvalid(t, l, "bob", bobs, "bob-new", "a revoked code")
	wantConsumed(t, l, "bob", newer.Code, "bob-new")

	// Issuing: the account must exist and be open; the TTL has bounds.
	mustOpen(t, l, "erin")
	if _, err := l.CloseAccount(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		account string
		ttl     time.Duration
		want    error
	}{
		{"nobody", 0, bank.ErrAccountNotFound},
		{"erin", 0, bank.ErrAccountClosed},
		{"alice", bank.MaxEnrollmentTTL + time.Second, bank.ErrInvalidArgument},
		{"alice", -time.Second, bank.ErrInvalidArgument},
	} {
		if _, err := l.IssueEnrollmentCode(ctx, tt.account, tt.ttl); !errors.Is(err, tt.want) {
			t.Errorf("issue for %s, ttl %s: %v, want %v", tt.account, tt.ttl, err, tt.want)
		}
	}
	if _, err := l.IssueEnrollmentCode(ctx, "alice", bank.MaxEnrollmentTTL); err != nil {
		t.Errorf("issue for the longest TTL: %v", err)
	}
}

func TestEnrollmentCodeOfClosedAccount(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	mustOpen(t, l, "erin")
	code := issue(t, l, "erin", 0)
	if _, err := l.CloseAccount(t.Context(), "erin"); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, l, "erin", code, "erin", "the code of a closed account")
}

func TestEnrollmentCodeExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLedger(t)
		code := issue(t, l, "alice", time.Hour)
		c2 := issue(t, l, "bob", time.Hour)
		time.Sleep(time.Hour - time.Nanosecond)
		wantConsumed(t, l, "bob", c2, "bob-new")
		time.Sleep(time.Nanosecond)
		wantInvalid(t, l, "alice", code, "alice-new", "an expired code")
		// A consumed code's retry is answered after its expiry too.
		wantConsumed(t, l, "bob", c2, "bob-new")
	})
}

// TestEnrollmentLockout: after five wrong codes even the right one fails,
// for known and unknown accounts alike, until a new code is issued.
func TestEnrollmentLockout(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	code := issue(t, l, "alice", 0)
	wrong := issue(t, l, "bob", 0) // a well-formed code, of another account
	for i := range bank.MaxEnrollmentFailures {
		wantInvalid(t, l, "alice", wrong, "mallory", fmt.Sprintf("wrong try %d", i+1))
		wantInvalid(t, l, "nobody", wrong, "mallory", fmt.Sprintf("wrong try %d on an unknown account", i+1))
	}
	wantInvalid(t, l, "alice", code, "alice-new", "the right code after five wrong ones")
	// Four wrong tries do not lock.
	for range bank.MaxEnrollmentFailures - 1 {
		wantInvalid(t, l, "bob", "ABCD-EFGH-JKLM-NPQR", "mallory", "wrong code for bob")
	}
	wantConsumed(t, l, "bob", wrong, "bob-new")
	// A new code clears the lock.
	wantConsumed(t, l, "alice", issue(t, l, "alice", 0), "alice-new")
}

// TestEnrollmentCodeOnlyHashed: the code appears nowhere in the database
// files, in any spelling.
func TestEnrollmentCodeOnlyHashed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := storetest.Target(t, dir, "ledger")
	l := openClosable(t, path)
	code := issue(t, l, "alice", 0)
	wantConsumed(t, l, "alice", code, "alice-new")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	contents := storetest.Contents(t, path)
	plain := strings.ReplaceAll(code, "-", "")
	for name, b := range contents {
		for _, s := range []string{code, plain, strings.ToLower(plain)} {
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(hex.EncodeToString([]byte(s)))) {
				t.Errorf("%s contains the code %q", name, s)
			}
		}
	}
	// ... while the hash is there and still matches (the ledger reopens).
	l = openLedger(t, path)
	wantConsumed(t, l, "alice", code, "alice-new")
}

// TestCloseRacesPrepares closes an account while payments to and from it
// are prepared and aborted concurrently: the close succeeds only at a moment
// nothing is held or incoming, every prepare after it votes NO
// ACCOUNT_CLOSED, and the account ends closed and empty.
func TestCloseRacesPrepares(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := t.Context()
	mustOpen(t, l, "erin")
	const workers, rounds = 8, 30
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		votes []bank.Vote
	)
	for range workers {
		wg.Go(func() {
			for range rounds {
				id := newID()
				v, err := l.Prepare(ctx, id, []bank.Leg{debit("alice", 1), credit("erin", 1)}, time.Now().Add(time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				votes = append(votes, v)
				mu.Unlock()
				if _, err := l.Commit(ctx, id, false); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for {
		_, err := l.CloseAccount(ctx, "erin")
		if err == nil {
			break
		}
		if !errors.Is(err, bank.ErrAccountNotEmpty) {
			t.Fatal(err)
		}
	}
	// Every YES vote was appended before its abort, and the close
	// succeeded only after every abort: the votes from here on came after it.
	mu.Lock()
	closedAt := len(votes)
	mu.Unlock()
	wg.Wait()
	for i, v := range votes[closedAt:] {
		if v.Yes || !errors.Is(v.Reason, bank.ErrAccountClosed) {
			t.Errorf("vote %d after the close: %+v, want NO ACCOUNT_CLOSED", closedAt+i, v)
		}
	}
	a, err := l.Balance(ctx, "erin")
	if err != nil || !a.Closed || a.Balance != 0 || a.Held != 0 || a.Incoming != 0 {
		t.Errorf("erin = %+v, %v; want closed and empty", a, err)
	}
	wantBalances(t, l, "alice", balances{100, 0, 0})
}
