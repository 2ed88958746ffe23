package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/services/bank"
)

var printedCode = regexp.MustCompile(`[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}`)

// TestBankEnroll runs `remit bank enroll` on the files `remit init` wrote,
// against a ledger the bank created: the printed code is the one the ledger
// accepts, and the log line does not carry it.
func TestBankEnroll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	if code, _, errOut := remit(t, "", "init", "--dir", dir, "--base-port", "9543"); code != exitOK {
		t.Fatalf("init = %d, %s", code, errOut)
	}
	cfgPath := devnet.Layout{Dir: dir}.BankConfig("bank-b")
	cfg, err := config.LoadBank(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// Before the bank ever started there is no ledger to write to.
	code, _, errOut := remit(t, "", "bank", "enroll", "--config", cfgPath, "--account", "bob")
	if code != exitFailure || !strings.Contains(errOut, "no ledger") {
		t.Fatalf("enroll without a ledger = %d, %q", code, errOut)
	}

	// The bank's first start, as far as the ledger goes.
	ctx := context.Background()
	l, err := bank.OpenLedger(ctx, filepath.Join(cfg.DataDir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() //nolint:errcheck // the test's own handle
	if _, err := l.EnsureAccount(ctx, bank.AccountSeed{ID: "bob", Owner: "bob", Currency: "usd"}); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := remit(t, "", "bank", "enroll", "--config", cfgPath, "--account", "bob", "--ttl", "2h")
	if code != exitOK {
		t.Fatalf("enroll = %d, %s", code, errOut)
	}
	printed := printedCode.FindString(out)
	if printed == "" || !strings.Contains(out, "bob") {
		t.Fatalf("enroll printed no code for bob:\n%s", out)
	}
	if strings.Contains(errOut, printed) || !strings.Contains(errOut, "enrollment code issued") {
		t.Errorf("log of enroll = %q; want a line without the code", errOut)
	}

	// --json; this code replaces the first one.
	code, out, errOut = remit(t, "", "bank", "enroll", "--config", cfgPath, "--account", "bob", "--json")
	if code != exitOK {
		t.Fatalf("enroll --json = %d, %s", code, errOut)
	}
	var doc struct {
		Bank       string    `json:"bank"`
		AccountID  string    `json:"account_id"`
		Code       string    `json:"code"`
		ExpireTime time.Time `json:"expire_time"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Code == "" || doc.Bank != "bank-b" {
		t.Fatalf("enroll --json = %q, %v", out, err)
	}
	if left := time.Until(doc.ExpireTime); left <= 23*time.Hour || left > 24*time.Hour {
		t.Errorf("default validity ends in %s, want 24h", left)
	}
	if _, err := l.ConsumeEnrollmentCode(ctx, "bob", printed, "bob-new"); err == nil {
		t.Error("the first code still works after a second was issued")
	}
	if _, err := l.ConsumeEnrollmentCode(ctx, "bob", doc.Code, "bob-new"); err != nil {
		t.Errorf("the printed code: %v", err)
	}

	for _, tt := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"bank", "enroll", "--config", cfgPath}, exitUsage, "--account is required"},
		{[]string{"bank", "enroll", "--account", "bob"}, exitUsage, "--config is required"},
		{[]string{"bank", "enroll", "--config", cfgPath, "--account", "bob", "--ttl", "169h"}, exitUsage, "--ttl"},
		{[]string{"bank", "enroll", "--config", cfgPath, "--account", "bo b"}, exitUsage, "account id"},
		{[]string{"bank", "--config", cfgPath, "--account", "bob"}, exitUsage, "only apply to 'remit bank enroll'"},
		{[]string{"bank", "enroll", "--config", cfgPath, "--account", "nobody"}, exitFailure, "account not found"},
	} {
		code, _, errOut := remit(t, "", tt.args...)
		if code != tt.exit || !strings.Contains(errOut, tt.want) {
			t.Errorf("remit %s = %d, %q; want %d and %q", strings.Join(tt.args, " "), code, errOut, tt.exit, tt.want)
		}
	}
}
