package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	gatewayv1 "github.com/remitpay/remit/gen/remit/gateway/v1"
	"github.com/remitpay/remit/gen/remit/gateway/v1/gatewayv1connect"
	"github.com/remitpay/remit/internal/pki"
	"github.com/remitpay/remit/internal/serve"
	"github.com/remitpay/remit/services/gateway/gatewaytest"
)

// families is one scrape, by metric name.
type families map[string]*dto.MetricFamily

func scrape(t *testing.T, url string) families {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := get(ctx, t, url)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close() //nolint:errcheck // read-only
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, res.Status, body)
	}
	return string(body)
}

// value returns the value of the sample of name whose labels include
// labels, and whether there is one. Histograms give their count.
func (f families) value(name string, labels ...string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// want checks that the sample exists and cond holds for its value.
func (f families) want(name string, cond func(float64) bool, what string, labels ...string) error {
	v, ok := f.value(name, labels...)
	if !ok {
		return fmt.Errorf("no sample %s%v", name, labels)
	}
	if !cond(v) {
		return fmt.Errorf("%s%v = %v, want %s", name, labels, v, what)
	}
	return nil
}

func atLeast(n float64) (func(float64) bool, string) {
	return func(v float64) bool { return v >= n }, fmt.Sprintf(">= %v", n)
}

func equal(n float64) (func(float64) bool, string) {
	return func(v float64) bool { return v == n }, fmt.Sprintf("%v", n)
}

// TestMetricsAfterPayment scrapes the admin listeners of a running gateway
// and of both banks of one cross-bank payment: every documented metric is
// there and the payment moved the counters (docs/operations.md lists the
// same names).
func TestMetricsAfterPayment(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{Metrics: true})
	alice := n.Login(t, "alice")
	mustPay(t, alice, "bob", 100)

	// A call without a token is rejected by authorization, which runs
	// after the metrics interceptor: it is counted with its code.
	layout := pki.NewLayout(filepath.Join(n.Dir, "certs"))
	anonTLS, err := pki.ClientConfig(layout.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	anon := gatewayv1connect.NewPaymentServiceClient(serve.NewHTTP2Client(anonTLS), n.Gateway.URL)
	_, err = anon.MakePayment(callCtx(t), &gatewayv1.MakePaymentRequest{})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("MakePayment without a token: %v, want unauthenticated", err)
	}

	for _, name := range []string{
		"remit_rpc_requests_total", "remit_rpc_duration_seconds",
		"remit_gateway_2pc_phase_duration_seconds", "remit_gateway_payments_total",
		"remit_gateway_in_doubt_transactions", "remit_gateway_redrive_backlog",
		"remit_gateway_bank_state", "remit_gateway_registered_banks",
		"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds",
	} {
		if scrape(t, n.Gateway.MetricsURL())[name] == nil {
			t.Errorf("gateway: no metric %s", name)
		}
	}
	const pay = "/remit.gateway.v1.PaymentService/MakePayment"
	gatewaytest.WaitFor(t, "gateway metrics of the payment", func() error {
		f := scrape(t, n.Gateway.MetricsURL())
		one, two := equal(1)
		some, more := atLeast(1)
		zero, none := equal(0)
		return errors.Join(
			f.want("remit_rpc_requests_total", one, two, "procedure", pay, "code", "ok"),
			f.want("remit_rpc_duration_seconds", one, two, "procedure", pay, "code", "ok"),
			f.want("remit_rpc_requests_total", one, two, "procedure", pay, "code", "unauthenticated"),
			f.want("remit_gateway_payments_total", one, two, "outcome", "committed"),
			f.want("remit_gateway_payments_total", zero, none, "outcome", "aborted"),
			f.want("remit_gateway_2pc_phase_duration_seconds", one, two, "phase", "prepare"),
			f.want("remit_gateway_2pc_phase_duration_seconds", one, two, "phase", "decision"),
			f.want("remit_gateway_2pc_phase_duration_seconds", some, more, "phase", "phase_two"),
			// Phase two acknowledged: nothing in doubt, nothing to re-drive.
			f.want("remit_gateway_in_doubt_transactions", zero, none),
			f.want("remit_gateway_redrive_backlog", zero, none, "queue", "phase_two"),
			f.want("remit_gateway_redrive_backlog", zero, none, "queue", "undecided"),
			f.want("remit_gateway_redrive_backlog", zero, none, "queue", "adjustment"),
			f.want("remit_gateway_registered_banks", func(v float64) bool { return v == 3 }, "3"),
			f.want("remit_gateway_bank_state", one, two, "bank", "bank-a", "state", "serving"),
			f.want("remit_gateway_bank_state", zero, none, "bank", "bank-a", "state", "unreachable"),
			// Claim, decision and acknowledgement: at least one group-commit
			// transaction each (fewer if they shared one with other writes).
			f.want("remit_store_commit_writes", some, more, "database", "payments"),
			f.want("remit_store_commit_duration_seconds", some, more, "database", "payments"),
			f.want("remit_store_commit_waiting", zero, none, "database", "payments"),
		)
	})

	for bank, accounts := range map[string]float64{"bank-a": 2, "bank-b": 1} {
		gatewaytest.WaitFor(t, bank+" metrics of the payment", func() error {
			f := scrape(t, n.Banks[bank].MetricsURL())
			one, two := equal(1)
			zero, none := equal(0)
			return errors.Join(
				f.want("remit_rpc_requests_total", one, two, "procedure", "/remit.bank.v1.BankService/PrepareTransaction", "code", "ok"),
				f.want("remit_rpc_requests_total", one, two, "procedure", "/remit.bank.v1.BankService/CommitTransaction", "code", "ok"),
				f.want("remit_rpc_duration_seconds", one, two, "procedure", "/remit.bank.v1.BankService/CommitTransaction", "code", "ok"),
				f.want("remit_bank_prepared_transactions", zero, none),
				f.want("remit_bank_expired_prepared_transactions", zero, none),
				f.want("remit_bank_held_amount", zero, none, "currency", gatewaytest.Currency),
				f.want("remit_bank_accounts", func(v float64) bool { return v == accounts }, fmt.Sprint(accounts)),
				f.want("remit_store_commit_writes", func(v float64) bool { return v >= 2 }, ">= 2 (the vote, the commit)", "database", "ledger"),
				f.want("remit_store_commit_duration_seconds", func(v float64) bool { return v >= 2 }, ">= 2", "database", "ledger"),
				f.want("remit_store_commit_waiting", zero, none, "database", "ledger"),
				f.want("go_goroutines", func(v float64) bool { return v > 0 }, "> 0"),
			)
		})
	}
}

// TestPprofOnAdminListener: pprof answers on the admin listener of the
// gateway and of a bank, and not on the gateway's API listener.
func TestPprofOnAdminListener(t *testing.T) {
	t.Parallel()
	n := gatewaytest.Start(t, gatewaytest.Options{Metrics: true})
	ctx := callCtx(t)
	for name, metricsURL := range map[string]string{"gateway": n.Gateway.MetricsURL(), "bank-a": n.Banks["bank-a"].MetricsURL()} {
		base := strings.TrimSuffix(metricsURL, "/metrics")
		if index := get(ctx, t, base+"/debug/pprof/"); !strings.Contains(index, "goroutine") || !strings.Contains(index, "heap") {
			t.Errorf("%s: /debug/pprof/ lists no goroutine and heap profiles:\n%s", name, index)
		}
		if dump := get(ctx, t, base+"/debug/pprof/goroutine?debug=1"); !strings.Contains(dump, "goroutine profile:") {
			t.Errorf("%s: goroutine profile: %.200s", name, dump)
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Gateway.URL+"/debug/pprof/", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.CertHTTPClient(t, "bank-a").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s/debug/pprof/ on the API listener: %s, want 404", n.Gateway.URL, res.Status)
	}
}
