package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/remitpay/remit/internal/config"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/pki"
)

// ErrResourcesGrew is wrapped by the error of [Run] when a process holds
// clearly more goroutines or open files after the run than at idle before
// it (a leak); the report is complete then.
var ErrResourcesGrew = errors.New("resource check failed")

// Slack of the resource check: after the last level, once every payment is
// final, a process may hold up to its idle count plus this many
// goroutines (or open fds), plus this fraction of the idle count. A run
// leaves some behind legitimately: an extra HTTP/2 connection the
// gateway opened to a bank when one was full of streams stays until it has
// been idle for a while, with its goroutines and its socket.
const (
	GoroutineSlack = 20
	FDSlack        = 10
	SlackFraction  = 0.10
)

// resourceSettle bounds the wait for the processes to come back within the
// slack after the last level; they are sampled every resourcePoll.
const (
	resourceSettle = 15 * time.Second
	resourcePoll   = time.Second
)

// Usage is what one process holds at one moment, from its Prometheus
// metrics (go_goroutines, process_open_fds).
type Usage struct {
	Goroutines int64 `json:"goroutines"`
	OpenFDs    int64 `json:"open_fds"`
}

// Resources compares each process's goroutines and open fds at idle before
// the first level with the same after the last one, once every payment is
// final. It covers the processes whose metrics listener the bench knows
// (those of its own network).
type Resources struct {
	Idle  map[string]Usage `json:"idle"`
	After map[string]Usage `json:"after"`
	// OK says every process's After is within the slack of its Idle;
	// Problems says which is not.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// GoroutineSlack, FDSlack and SlackFraction are the slack applied.
	GoroutineSlack int     `json:"goroutine_slack"`
	FDSlack        int     `json:"fd_slack"`
	SlackFraction  float64 `json:"slack_fraction"`
}

// allowed is the most a process may hold after the run, given idle.
func allowed(idle int64, slack int) int64 {
	return idle + int64(slack) + int64(float64(idle)*SlackFraction)
}

// compareUsage fills in r.OK and r.Problems from r.Idle and r.After. A
// process missing from After (its metrics could not be read) is a
// problem; one missing from Idle is not compared.
func (r *Resources) compareUsage() {
	r.GoroutineSlack, r.FDSlack, r.SlackFraction = GoroutineSlack, FDSlack, SlackFraction
	r.Problems = nil
	for _, name := range slices.Sorted(maps.Keys(r.Idle)) {
		idle := r.Idle[name]
		after, ok := r.After[name]
		switch {
		case !ok:
			r.Problems = append(r.Problems, name+": metrics not readable after the run")
			continue
		case after.Goroutines > allowed(idle.Goroutines, GoroutineSlack):
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d goroutines after the run, %d at idle (at most %d allowed)",
				name, after.Goroutines, idle.Goroutines, allowed(idle.Goroutines, GoroutineSlack)))
		}
		if after.OpenFDs > allowed(idle.OpenFDs, FDSlack) {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d open fds after the run, %d at idle (at most %d allowed)",
				name, after.OpenFDs, idle.OpenFDs, allowed(idle.OpenFDs, FDSlack)))
		}
	}
	r.OK = len(r.Problems) == 0
}

// Summary is one line for people.
func (r *Resources) Summary() string {
	if r.OK {
		return fmt.Sprintf("resources: ok (after the run every process holds at most its idle goroutines + %d and open fds + %d, plus %.0f%%)",
			r.GoroutineSlack, r.FDSlack, r.SlackFraction*100)
	}
	return "resources: FAILED: " + strings.Join(r.Problems, "; ")
}

// metricsAddrs returns the metrics listener of every process of the
// network in dir (as `remit init` wrote it), by process name; processes
// without one are left out.
func metricsAddrs(dir string) (map[string]string, error) {
	l := devnet.Layout{Dir: dir}
	g, err := config.LoadGateway(l.GatewayConfig())
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if g.MetricsListen != "" {
		out[pki.GatewayName] = g.MetricsListen
	}
	for r := 2; r <= devnet.MaxReplicas; r++ {
		if _, err := os.Stat(l.ReplicaConfig(r)); err != nil {
			break
		}
		rg, err := config.LoadGateway(l.ReplicaConfig(r))
		if err != nil {
			return nil, err
		}
		if rg.MetricsListen != "" {
			out[devnet.ReplicaName(r)] = rg.MetricsListen
		}
	}
	files, err := filepath.Glob(filepath.Join(l.BanksDir(), "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := config.LoadBank(f)
		if err != nil {
			return nil, err
		}
		if b.MetricsListen != "" {
			out[b.Name] = b.MetricsListen
		}
	}
	return out, nil
}

// sampleUsage reads every process's usage; a process whose metrics cannot
// be read is left out (and reported on stderr).
func sampleUsage(ctx context.Context, hc *http.Client, addrs map[string]string, stderr io.Writer) map[string]Usage {
	out := make(map[string]Usage, len(addrs))
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		u, err := scrapeUsage(ctx, hc, addrs[name])
		if err != nil {
			fmt.Fprintf(stderr, "remit bench: %s: %v\n", name, err)
			continue
		}
		out[name] = u
	}
	return out
}

// scrapeUsage reads go_goroutines and process_open_fds from the
// Prometheus /metrics of the admin listener at addr (plain HTTP).
func scrapeUsage(ctx context.Context, hc *http.Client, addr string) (Usage, error) {
	url, err := metricsURL(addr)
	if err != nil {
		return Usage{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Usage{}, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return Usage{}, fmt.Errorf("read metrics: %w", err)
	}
	defer res.Body.Close() //nolint:errcheck // a read-only GET
	if res.StatusCode != http.StatusOK {
		return Usage{}, fmt.Errorf("read metrics from %s: %s", addr, res.Status)
	}
	return parseUsage(res.Body)
}

// metricsURL is the /metrics URL of the admin listener at addr: an
// unspecified host means this machine.
func metricsURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics_listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/metrics", nil
}

// parseUsage finds go_goroutines and process_open_fds in a Prometheus text
// exposition.
func parseUsage(r io.Reader) (Usage, error) {
	var (
		u            Usage
		seenG, seenF bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		var dst *int64
		switch name {
		case "go_goroutines":
			dst, seenG = &u.Goroutines, true
		case "process_open_fds":
			dst, seenF = &u.OpenFDs, true
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return Usage{}, fmt.Errorf("metric %s: %q is not a number", name, value)
		}
		*dst = int64(f)
	}
	if err := sc.Err(); err != nil {
		return Usage{}, fmt.Errorf("read metrics: %w", err)
	}
	if !seenG || !seenF {
		return Usage{}, errors.New("metrics lack go_goroutines or process_open_fds")
	}
	return u, nil
}

// newMetricsClient returns the HTTP client the bench reads metrics with:
// one connection per request, so that the bench itself leaves no
// connection open in the processes it counts.
func newMetricsClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// settleUsage samples the processes every resourcePoll until each is
// within the slack of its idle usage, or resourceSettle has passed, and
// returns the check with the last sample.
func settleUsage(ctx context.Context, hc *http.Client, addrs map[string]string, idle map[string]Usage, stderr io.Writer) (*Resources, error) {
	r := &Resources{Idle: idle}
	deadline := time.Now().Add(resourceSettle)
	for {
		r.After = sampleUsage(ctx, hc, addrs, stderr)
		r.compareUsage()
		if r.OK || time.Now().After(deadline) {
			return r, nil
		}
		t := time.NewTimer(resourcePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
