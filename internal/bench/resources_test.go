package bench

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remitpay/remit/internal/metrics"
)

// TestScrapeUsage reads a real process registry (the one every Remit
// process serves on its admin listener) over HTTP.
func TestScrapeUsage(t *testing.T) {
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(), slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	hc := newMetricsClient()
	u, err := scrapeUsage(context.Background(), hc, strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Goroutines < 1 || u.OpenFDs < 3 {
		t.Errorf("usage = %+v, want goroutines and open fds of a live process", u)
	}
	if _, err := scrapeUsage(context.Background(), hc, "127.0.0.1:1"); err == nil {
		t.Error("scraping a closed port succeeded")
	}
}

func TestParseUsage(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Usage
		wantErr  string
	}{
		{
			name: "both",
			in: "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 128\n" +
				"go_goroutines_other 3\nprocess_open_fds 75\nprocess_max_fds 1.048576e+06\n",
			want: Usage{Goroutines: 128, OpenFDs: 75},
		},
		{name: "no fds", in: "go_goroutines 12\n", wantErr: "lack"},
		{name: "garbage value", in: "go_goroutines x\nprocess_open_fds 3\n", wantErr: "not a number"},
	} {
		got, err := parseUsage(strings.NewReader(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: parseUsage = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestCompareUsage(t *testing.T) {
	idle := map[string]Usage{"gateway": {Goroutines: 100, OpenFDs: 70}, "bank-a": {Goroutines: 20, OpenFDs: 18}}
	for _, tc := range []struct {
		name  string
		after map[string]Usage
		want  []string
	}{
		{"same", idle, nil},
		{"within the slack", map[string]Usage{
			"gateway": {Goroutines: 100 + 10 + GoroutineSlack, OpenFDs: 70 + 7 + FDSlack},
			"bank-a":  {Goroutines: 20 + 2 + GoroutineSlack, OpenFDs: 18 + 1 + FDSlack},
		}, nil},
		{"fewer", map[string]Usage{"gateway": {Goroutines: 90, OpenFDs: 60}, "bank-a": {Goroutines: 10, OpenFDs: 10}}, nil},
		{"goroutine leak", map[string]Usage{
			"gateway": {Goroutines: 100 + 10 + GoroutineSlack + 1, OpenFDs: 70},
			"bank-a":  idle["bank-a"],
		}, []string{"gateway: 131 goroutines after the run, 100 at idle (at most 130 allowed)"}},
		{"fd leak", map[string]Usage{
			"gateway": idle["gateway"],
			"bank-a":  {Goroutines: 20, OpenFDs: 18 + 1 + FDSlack + 1},
		}, []string{"bank-a: 30 open fds after the run, 18 at idle (at most 29 allowed)"}},
		{"unreadable after", map[string]Usage{"gateway": idle["gateway"]},
			[]string{"bank-a: metrics not readable after the run"}},
	} {
		r := &Resources{Idle: idle, After: tc.after}
		r.compareUsage()
		if r.OK != (len(tc.want) == 0) {
			t.Errorf("%s: OK = %v", tc.name, r.OK)
		}
		if diff := cmp.Diff(tc.want, r.Problems); diff != "" {
			t.Errorf("%s: problems (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestWriteTableResources(t *testing.T) {
	res := &Resources{
		Idle:  map[string]Usage{"gateway": {Goroutines: 128, OpenFDs: 75}, "bank-a": {Goroutines: 20, OpenFDs: 18}},
		After: map[string]Usage{"gateway": {Goroutines: 400, OpenFDs: 75}},
	}
	res.compareUsage()
	rep := &Report{Own: true, Resources: res, Conservation: Conservation{OK: true}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	want := `
  process  goroutines idle  after  open fds idle  after
   bank-a               20      -             18      -
  gateway              128    400             75     75
`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("table lacks\n%s\ngot:\n%s", want, buf.String())
	}
	if !strings.Contains(buf.String(), "resources: FAILED: bank-a: metrics not readable after the run; gateway: 400 goroutines after the run, 128 at idle (at most 160 allowed)\n") {
		t.Errorf("no resource summary in\n%s", buf.String())
	}
}
