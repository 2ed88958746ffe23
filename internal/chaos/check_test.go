package chaos

import (
	"strings"
	"testing"

	"github.com/remitpay/remit/client"
)

// goodBooks is a network after one cross-bank payment of 10 from a/alice
// to b/bob, one declined payment and one deposit of 5 to b/bob.
func goodBooks() (*books, *history) {
	alice, bob := client.AccountRef{Bank: "bank-a", ID: "alice"}, client.AccountRef{Bank: "bank-b", ID: "bob"}
	b := &books{
		txns: map[string]gatewayTxn{
			"p1": {kind: "payment", status: "succeeded", payer: alice, payee: bob, amount: 10},
			"p2": {kind: "payment", status: "failed", payer: alice, payee: bob, amount: 1000},
			"d1": {kind: "adjustment", status: "succeeded", direction: "credit", payee: bob, amount: 5},
		},
		journal: map[string]map[string][]journalEntry{
			"bank-a": {"p1": {{account: "alice", direction: "debit", kind: "payment", amount: 10}}},
			"bank-b": {
				"p1": {{account: "bob", direction: "credit", kind: "payment", amount: 10}},
				"d1": {{account: "bob", direction: "credit", kind: "adjustment", amount: 5}},
			},
		},
		accounts: map[string]map[string][3]int64{"bank-a": {"alice": {90, 0, 0}}, "bank-b": {"bob": {115, 0, 0}}},
		opening:  map[string]map[string]int64{"bank-a": {"alice": 100}, "bank-b": {"bob": 100}},
		prepared: map[string]map[string]string{"bank-a": {"p1": "committed", "p2": "aborted"}, "bank-b": {"p1": "committed"}},
	}
	h := newHistory()
	h.add(&op{id: "p1", kind: "payment", payer: alice, payee: bob, amount: 10, told: []string{Unknown, Succeeded, Succeeded}})
	h.add(&op{id: "p2", kind: "payment", payer: alice, payee: bob, amount: 1000, told: []string{Failed}})
	h.add(&op{id: "d1", kind: "adjustment", payee: bob, amount: 5, deposit: true, told: []string{Succeeded}})
	return b, h
}

// TestCheckerFindsEachViolation: the checker passes a consistent network
// and fails each check on the corruption it exists to catch.
func TestCheckerFindsEachViolation(t *testing.T) {
	b, h := goodBooks()
	for _, c := range check(b, h, nil) {
		if !c.OK {
			t.Fatalf("consistent books fail %q: %v", c.Name, c.Violations)
		}
	}
	for _, tc := range []struct {
		name    string
		corrupt func(*books, *history) []string
		check   string
	}{
		{"money created", func(b *books, _ *history) []string {
			b.accounts["bank-b"]["bob"] = [3]int64{116, 0, 0}
			return nil
		}, "money conserved"},
		{"funds still held", func(b *books, _ *history) []string {
			b.accounts["bank-a"]["alice"] = [3]int64{90, 3, 0}
			return nil
		}, "money conserved"},
		{"applied twice", func(b *books, _ *history) []string {
			b.journal["bank-b"]["p1"] = append(b.journal["bank-b"]["p1"], journalEntry{account: "bob", direction: "credit", kind: "payment", amount: 10})
			b.accounts["bank-b"]["bob"] = [3]int64{125, 0, 0}
			return nil
		}, "applied once"},
		{"failed payment applied", func(b *books, _ *history) []string {
			b.journal["bank-a"]["p2"] = []journalEntry{{account: "alice", direction: "debit", kind: "payment", amount: 1000}}
			return nil
		}, "applied once"},
		{"applied for another amount", func(b *books, _ *history) []string {
			// Conserved (20 out, 20 in), one entry at each bank, each
			// balance equal to its journal: only the amounts are wrong.
			b.journal["bank-a"]["p1"][0].amount = 20
			b.journal["bank-b"]["p1"][0].amount = 20
			b.accounts["bank-a"]["alice"] = [3]int64{80, 0, 0}
			b.accounts["bank-b"]["bob"] = [3]int64{125, 0, 0}
			return nil
		}, "applied once"},
		{"adjustment applied twice, another never", func(b *books, _ *history) []string {
			// The sums of adjustments agree (10 in the journals, 10 at the
			// gateway) although d1 was applied twice and d2 not at all.
			b.txns["d2"] = gatewayTxn{kind: "adjustment", status: "succeeded", direction: "credit", payee: b.txns["d1"].payee, amount: 5}
			b.journal["bank-b"]["d1"] = append(b.journal["bank-b"]["d1"], journalEntry{account: "bob", direction: "credit", kind: "adjustment", amount: 5})
			b.accounts["bank-b"]["bob"] = [3]int64{120, 0, 0}
			return nil
		}, "applied once"},
		{"failed adjustment applied", func(b *books, _ *history) []string {
			t := b.txns["d1"]
			t.status = "failed"
			b.txns["d1"] = t
			b.txns["d2"] = gatewayTxn{kind: "adjustment", status: "succeeded", direction: "credit", payee: t.payee, amount: 5}
			return nil
		}, "applied once"},
		{"applied without a gateway record, its prepared record pruned", func(b *books, _ *history) []string {
			b.journal["bank-a"]["p9"] = []journalEntry{{account: "alice", direction: "debit", kind: "payment", amount: 7}}
			b.journal["bank-b"]["p9"] = []journalEntry{{account: "bob", direction: "credit", kind: "payment", amount: 7}}
			b.accounts["bank-a"]["alice"] = [3]int64{83, 0, 0}
			b.accounts["bank-b"]["bob"] = [3]int64{122, 0, 0}
			return nil
		}, "applied once"},
		{"still prepared", func(b *books, _ *history) []string {
			b.prepared["bank-b"]["p3"] = "prepared"
			return nil
		}, "nothing prepared"},
		{"bank committed what the gateway failed", func(b *books, _ *history) []string {
			b.prepared["bank-a"]["p2"] = "committed"
			return nil
		}, "nothing prepared"},
		{"two outcomes told", func(_ *books, h *history) []string {
			h.ops["p1"].told = append(h.ops["p1"].told, Failed)
			return nil
		}, "one outcome"},
		{"told succeeded, the gateway failed it", func(b *books, _ *history) []string {
			t := b.txns["p1"]
			t.status = "failed"
			b.txns["p1"] = t
			return nil
		}, "one outcome"},
		{"outbox payment never final", func(_ *books, h *history) []string {
			h.add(&op{id: "o1", kind: "outbox", told: []string{Unknown}})
			return nil
		}, "outbox"},
		{"impossible read", func(*books, *history) []string {
			return []string{"bank-a/alice: balance 5, available 9"}
		}, "impossible balance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, h := goodBooks()
			anomalies := tc.corrupt(b, h)
			failed := false
			for _, c := range check(b, h, anomalies) {
				if strings.Contains(c.Name, tc.check) && !c.OK && len(c.Violations) > 0 {
					failed = true
				}
			}
			if !failed {
				t.Errorf("the check %q did not fail", tc.check)
			}
		})
	}
}
