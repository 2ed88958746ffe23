package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/remitpay/remit/client"
	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
)

// ErrNotConserved is wrapped by the error of [Run] when the conservation
// check fails: money was created or destroyed, funds are still held, or a
// payment never became final.
var ErrNotConserved = errors.New("conservation check failed")

// Conservation is the check after the run.
type Conservation struct {
	// OK is true when every check passed.
	OK bool `json:"ok"`
	// Accounts is how many accounts were read.
	Accounts int `json:"accounts"`
	// Before and After are the sums of their balances before the first
	// level and after the last one; they must be equal, and so must the
	// sums of each currency (a problem names the currency).
	Before int64 `json:"balance_sum_before"`
	After  int64 `json:"balance_sum_after"`
	// HeldBefore and HeldAfter are the sums of balance - available: funds
	// held by payments in flight. HeldAfter must be 0.
	HeldBefore int64 `json:"held_before"`
	HeldAfter  int64 `json:"held_after"`
	// Payments is how many payments the gateway lists, Processing how many
	// of them were still PROCESSING once the bench stopped waiting.
	Payments   int `json:"payments_listed"`
	Processing int `json:"processing"`
	// Problems says what failed, for people.
	Problems []string `json:"problems,omitempty"`
}

// balances is one reading of every account.
type balances struct {
	sum, held int64
	n         int
	byCur     map[string]int64 // sum of balances per currency
}

// check fills in c from the readings and the payment census, and reports
// what does not add up.
func check(before, after balances, listed, processing int) Conservation {
	c := Conservation{
		Accounts: after.n, Before: before.sum, After: after.sum,
		HeldBefore: before.held, HeldAfter: after.held,
		Payments: listed, Processing: processing,
	}
	if before.n != after.n {
		c.Problems = append(c.Problems, fmt.Sprintf("read %d accounts before but %d after", before.n, after.n))
	}
	if before.sum != after.sum {
		c.Problems = append(c.Problems, fmt.Sprintf("balances sum to %d after but %d before: %+d created", after.sum, before.sum, after.sum-before.sum))
	}
	curs := map[string]int64{}
	maps.Copy(curs, before.byCur)
	maps.Copy(curs, after.byCur)
	for _, cur := range slices.Sorted(maps.Keys(curs)) {
		if b, a := before.byCur[cur], after.byCur[cur]; b != a {
			c.Problems = append(c.Problems, fmt.Sprintf("%s balances sum to %d after but %d before: %+d created", cur, a, b, a-b))
		}
	}
	if after.held != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d still held (balance - available) after every payment ended", after.held))
	}
	if processing != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d payments still PROCESSING", processing))
	}
	c.OK = len(c.Problems) == 0
	return c
}

// Summary is one line for people.
func (c Conservation) Summary() string {
	if c.OK {
		return fmt.Sprintf("conservation: ok (%d accounts sum to %d before and after, nothing held, all %d payments final)", c.Accounts, c.After, c.Payments)
	}
	return "conservation: FAILED: " + strings.Join(c.Problems, "; ")
}

// auditor reads balances and payments as staff, paced under the gateway's
// per-principal rate limit.
type auditor struct {
	c        *client.Client
	accounts []client.AccountRef
	limit    *rate.Limiter
}

// read reads every account, and returns each one's currency too.
func (a *auditor) read(ctx context.Context) (balances, map[client.AccountRef]string, error) {
	var b balances
	currencies := make(map[client.AccountRef]string, len(a.accounts))
	for _, acct := range a.accounts {
		if err := a.limit.Wait(ctx); err != nil {
			return b, nil, err
		}
		res, err := a.c.Balance(ctx, &acct)
		if err != nil {
			return b, nil, fmt.Errorf("read the balance of %s: %w", acct, err)
		}
		currencies[acct] = res.GetCurrency()
		if b.byCur == nil {
			b.byCur = map[string]int64{}
		}
		b.byCur[res.GetCurrency()] += res.GetBalance()
		b.sum += res.GetBalance()
		b.held += res.GetBalance() - res.GetAvailable()
		b.n++
	}
	return b, currencies, nil
}

// census counts every payment and those still PROCESSING.
func (a *auditor) census(ctx context.Context) (listed, processing int, err error) {
	for p, err := range a.c.Payments(ctx, client.PaymentFilter{PageSize: 100}) {
		if err != nil {
			return listed, processing, fmt.Errorf("list payments: %w", err)
		}
		if listed%100 == 0 {
			if err := a.limit.Wait(ctx); err != nil {
				return listed, processing, err
			}
		}
		listed++
		if p.GetStatus() == gatewayv1.PaymentStatus_PAYMENT_STATUS_PROCESSING {
			processing++
		}
	}
	return listed, processing, nil
}

// settle waits up to timeout for no payment to be PROCESSING and no funds
// held, and returns the last census and reading.
func (a *auditor) settle(ctx context.Context, timeout time.Duration) (listed, processing int, b balances, err error) {
	deadline := time.Now().Add(timeout)
	for {
		listed, processing, err = a.census(ctx)
		if err != nil {
			return listed, processing, b, err
		}
		if b, _, err = a.read(ctx); err != nil {
			return listed, processing, b, err
		}
		if (processing == 0 && b.held == 0) || time.Now().After(deadline) {
			return listed, processing, b, nil
		}
		select {
		case <-ctx.Done():
			return listed, processing, b, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
