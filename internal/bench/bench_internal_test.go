package bench

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"

	"github.com/remitpay/remit/client"
)

func TestParseConcurrency(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "1,16,64,256", want: []int{1, 16, 64, 256}},
		{in: " 8 , 2", want: []int{8, 2}},
		{in: "4", want: []int{4}},
		{in: "", wantErr: `"" is not a number`},
		{in: "1,,2", wantErr: `"" is not a number`},
		{in: "0", wantErr: "between 1 and"},
		{in: "10001", wantErr: "between 1 and"},
		{in: "x", wantErr: "not a number"},
		{in: "4,4", wantErr: "listed twice"},
	} {
		got, err := ParseConcurrency(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseConcurrency(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("ParseConcurrency(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Customers: 2, Duration: time.Second, Concurrency: []int{1}}
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"existing", func(c *Config) { c.Gateway, c.CA, c.Credentials, c.Customers = "https://x", "ca.pem", "c.json", 0 }, ""},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "--duration"},
		{"no levels", func(c *Config) { c.Concurrency = nil }, "--concurrency"},
		{"ratio above 1", func(c *Config) { c.SameBankRatio = 1.5 }, "--same-bank-ratio"},
		{"ratio below 0", func(c *Config) { c.SameBankRatio = -0.1 }, "--same-bank-ratio"},
		{"one customer", func(c *Config) { c.Customers = 1 }, "--customers"},
		{"gateway without ca", func(c *Config) { c.Gateway, c.Credentials = "https://x", "c.json" }, "--gateway needs"},
		{"ca without gateway", func(c *Config) { c.CA = "ca.pem" }, "go with --gateway"},
	} {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestCeilingDuration(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		2 * time.Second:  time.Second,
		9 * time.Second:  3 * time.Second,
		30 * time.Second: 5 * time.Second,
	} {
		c := Config{Duration: d}
		if got := c.ceiling(); got != want {
			t.Errorf("ceiling for %s = %s, want %s", d, got, want)
		}
	}
}

func TestRecorderLevel(t *testing.T) {
	r := newRecorder()
	for i := 1; i <= 100; i++ {
		r.record(time.Duration(i)*time.Millisecond, outcome{})
	}
	r.record(time.Second, outcome{reason: "INSUFFICIENT_FUNDS"})
	r.record(2*time.Second, outcome{code: "unavailable"})
	r.record(time.Millisecond, outcome{code: "resource_exhausted", rateLimited: true})
	r.record(time.Millisecond, outcome{code: "resource_exhausted", rateLimited: true})
	l := r.level(16, 10*time.Second)
	l.setCeiling(1000, 3)
	want := Level{
		Concurrency: 16, Succeeded: 100,
		Declined: 1, Declines: map[string]int64{"INSUFFICIENT_FUNDS": 1},
		Errors: 3, ErrorsByCode: map[string]int64{"unavailable": 1, "resource_exhausted": 2}, RateLimited: 2,
		Seconds: 10, PaymentsPerSec: 10,
		CeilingPerSec: 1000, CeilingErrors: 3, Ratio: 0.01,
	}
	got := l
	got.Latency = Latency{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("level (-want +got):\n%s", diff)
	}
	// 104 values: 100 of 1..100 ms, two of 1 ms, 1 s and 2 s; HDR keeps 3
	// significant figures.
	near := func(got, want float64) bool { return got >= want*0.999 && got <= want*1.001 }
	if lat := l.Latency; !near(lat.P50, 50) || !near(lat.P90, 92) || !near(lat.P99, 1000) || !near(lat.Max, 2000) {
		t.Errorf("latency = %+v, want p50 50 p90 92 p99 1000 max 2000", lat)
	}

	ok, p99, errs := r.progress()
	if ok != 100 || errs != 3 || p99 < 999*time.Millisecond {
		t.Errorf("progress = %d ok, p99 %s, %d errors", ok, p99, errs)
	}
	if ok, _, _ := r.progress(); ok != 0 {
		t.Errorf("second progress window has %d ok, want 0", ok)
	}
	if l := r.level(1, 0); l.PaymentsPerSec != 0 {
		t.Errorf("zero elapsed: %g payments/s", l.PaymentsPerSec)
	}
}

func TestLatencyEmpty(t *testing.T) {
	if got := newRecorder().level(1, time.Second).Latency; got != (Latency{}) {
		t.Errorf("empty latency = %+v", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want outcome
	}{
		{nil, outcome{}},
		{&client.Error{Code: connect.CodeFailedPrecondition, Reason: "INSUFFICIENT_FUNDS"}, outcome{reason: "INSUFFICIENT_FUNDS"}},
		{&client.Error{Code: connect.CodeFailedPrecondition, Reason: "TRANSACTION_ID_CONFLICT"}, outcome{code: "failed_precondition"}},
		{&client.Error{Code: connect.CodeResourceExhausted, Reason: "RATE_LIMITED"}, outcome{code: "resource_exhausted", rateLimited: true}},
		{&client.Error{Code: connect.CodeUnavailable}, outcome{code: "unavailable"}},
		{connect.NewError(connect.CodeDeadlineExceeded, errors.New("late")), outcome{code: "deadline_exceeded"}},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %+v, want %+v", tc.err, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	b := func(sum, held int64, n int) balances { return balances{sum: sum, held: held, n: n} }
	for _, tc := range []struct {
		name          string
		before, after balances
		processing    int
		wantProblems  []string
	}{
		{name: "conserved", before: b(1000, 3, 10), after: b(1000, 0, 10)},
		{name: "created", before: b(1000, 0, 10), after: b(1002, 0, 10), wantProblems: []string{"+2 created"}},
		{name: "destroyed", before: b(1000, 0, 10), after: b(999, 0, 10), wantProblems: []string{"-1 created"}},
		{name: "held", before: b(1000, 0, 10), after: b(1000, 5, 10), wantProblems: []string{"5 still held"}},
		{name: "processing", before: b(1000, 0, 10), after: b(1000, 0, 10), processing: 2, wantProblems: []string{"2 payments still PROCESSING"}},
		{name: "accounts", before: b(1000, 0, 10), after: b(1000, 0, 9), wantProblems: []string{"10 accounts before but 9"}},
		{name: "everything", before: b(1000, 0, 10), after: b(1001, 1, 10), processing: 1, wantProblems: []string{"created", "held", "PROCESSING"}},
		{
			name:         "offset across currencies",
			before:       balances{sum: 1000, n: 2, byCur: map[string]int64{"usd": 500, "eur": 500}},
			after:        balances{sum: 1000, n: 2, byCur: map[string]int64{"usd": 501, "eur": 499}},
			wantProblems: []string{"eur balances sum to 499 after but 500 before: -1 created", "usd balances sum to 501 after but 500 before: +1 created"},
		},
	} {
		c := check(tc.before, tc.after, 42, tc.processing)
		if c.OK != (len(tc.wantProblems) == 0) || len(c.Problems) != len(tc.wantProblems) {
			t.Errorf("%s: check = %+v, want problems %q", tc.name, c, tc.wantProblems)
			continue
		}
		for i, p := range tc.wantProblems {
			if !strings.Contains(c.Problems[i], p) {
				t.Errorf("%s: problem %d = %q, want it to contain %q", tc.name, i, c.Problems[i], p)
			}
		}
		if c.Before != tc.before.sum || c.After != tc.after.sum || c.HeldAfter != tc.after.held || c.Payments != 42 {
			t.Errorf("%s: check = %+v", tc.name, c)
		}
		if s := c.Summary(); c.OK != strings.HasPrefix(s, "conservation: ok") {
			t.Errorf("%s: summary %q", tc.name, s)
		}
	}
}

func TestParseVMHWM(t *testing.T) {
	status := "Name:\tremit\nVmPeak:\t  900000 kB\nVmHWM:\t   34716 kB\nVmRSS:\t   30000 kB\n"
	if got, err := parseVMHWM([]byte(status)); err != nil || got != 34716 {
		t.Errorf("parseVMHWM = %d, %v; want 34716", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t12 MB\n", "VmHWM:\tx kB\n"} {
		if _, err := parseVMHWM([]byte(bad)); err == nil {
			t.Errorf("parseVMHWM(%q) = nil error", bad)
		}
	}
}

func TestPeaksSelf(t *testing.T) {
	got := peaks(map[string]int{"self": 0, "gone": -1})
	if _, ok := got["gone"]; ok {
		t.Errorf("peaks read a process that does not exist: %v", got)
	}
}

func TestPicker(t *testing.T) {
	custs := []customer{
		{account: client.AccountRef{Bank: "a", ID: "1"}}, {account: client.AccountRef{Bank: "b", ID: "2"}},
		{account: client.AccountRef{Bank: "c", ID: "3"}}, {account: client.AccountRef{Bank: "a", ID: "4"}},
		{account: client.AccountRef{Bank: "b", ID: "5"}}, {account: client.AccountRef{Bank: "c", ID: "6"}},
		{account: client.AccountRef{Bank: "a", ID: "7"}},
	}
	p := newPicker(custs)
	rng := rand.New(rand.NewPCG(1, 2))
	payees := map[int]bool{}
	for range 2000 {
		for _, same := range []bool{false, true} {
			payer, payee := p.pick(rng, same)
			if payer == payee {
				t.Fatalf("pick(same=%v) paid %d to itself", same, payer)
			}
			sameBank := custs[payer].account.Bank == custs[payee].account.Bank
			// Customers at b and c have one peer each, so a same-bank pick
			// always exists.
			if sameBank != same {
				t.Fatalf("pick(same=%v) = %v -> %v", same, custs[payer].account, custs[payee].account)
			}
			if !same {
				payees[payee] = true
			}
		}
	}
	if len(payees) != len(custs) {
		t.Errorf("cross-bank picks reached %d payees, want all %d", len(payees), len(custs))
	}

	// Alone at its bank, or a single bank: fall back to the other kind.
	alone := newPicker([]customer{{account: client.AccountRef{Bank: "a", ID: "1"}}, {account: client.AccountRef{Bank: "b", ID: "2"}}})
	if payer, payee := alone.pick(rng, true); payer == payee {
		t.Errorf("alone: paid itself")
	}
	one := newPicker([]customer{{account: client.AccountRef{Bank: "a", ID: "1"}}, {account: client.AccountRef{Bank: "a", ID: "2"}}})
	if payer, payee := one.pick(rng, false); payer == payee {
		t.Errorf("one bank: paid itself")
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{
		Gateway: "https://127.0.0.1:9443", Own: true, Customers: 6, Duration: "2s", Ceiling: "1s", CPUs: 2,
		Levels: []Level{
			{
				Concurrency: 1, PaymentsPerSec: 83.4, Latency: Latency{P50: 11.94, P90: 13.72, P99: 15.38, Max: 21.17}, CeilingPerSec: 1963, Ratio: 0.0425, Succeeded: 167,
				PeakRSS: map[string]int64{"gateway": 1536, "bank-a": 512},
			},
			{
				Concurrency: 4, PaymentsPerSec: 124, Succeeded: 254, Declined: 1, Declines: map[string]int64{"INSUFFICIENT_FUNDS": 1},
				Errors: 3, ErrorsByCode: map[string]int64{"unavailable": 1, "resource_exhausted": 2}, RateLimited: 2,
			},
		},
		PeakRSS:      map[string]int64{"gateway": 2048, "bank-a": 1024},
		Conservation: Conservation{OK: true, Accounts: 10, Before: 1000000, After: 1000000, Payments: 421},
	}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	want := `remit bench: its own network at https://127.0.0.1:9443, 6 customers, 2s per level (ceiling 1s), same-bank ratio 0, 2 CPUs

  concurrency  payments/s  p50 ms  p90 ms  p99 ms  max ms  ceiling calls/s  ratio  succeeded  declined  errors  rate-limited
            1          83   11.94   13.72   15.38   21.17             1963  0.043        167         0       0             0
            4         124    0.00    0.00    0.00    0.00                0  0.000        254         1       3             2

concurrency 4: declines INSUFFICIENT_FUNDS 1; errors resource_exhausted 2, unavailable 1

   peak RSS MiB  bank-a  gateway
      whole run     1.0      2.0
  concurrency 1     0.5      1.5
  concurrency 4       -        -

conservation: ok (10 accounts sum to 1000000 before and after, nothing held, all 421 payments final)
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
