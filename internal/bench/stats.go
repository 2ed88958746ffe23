package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is everything one bench run measured; `remit bench --json` prints
// it as one object.
type Report struct {
	// Gateway is the gateway's URL; Own says the bench started the network.
	Gateway string `json:"gateway"`
	Own     bool   `json:"own_network"`
	// Customers is how many customers took part.
	Customers     int     `json:"customers"`
	Duration      string  `json:"duration"`
	Ceiling       string  `json:"ceiling_duration"`
	SameBankRatio float64 `json:"same_bank_ratio"`
	// GOMAXPROCS and CPUs describe the machine the bench ran on.
	CPUs   int     `json:"cpus"`
	Levels []Level `json:"levels"`
	// PeakRSS is each process's peak resident set (VmHWM) over the whole
	// run, start and logins included, in KiB: the bench itself, and the
	// network's processes when the bench started them.
	PeakRSS      map[string]int64 `json:"peak_rss_kib"`
	Conservation Conservation     `json:"conservation"`
	// Resources compares goroutines and open fds after the run with idle;
	// nil when the bench does not know the processes' metrics listeners
	// (an existing network).
	Resources *Resources `json:"resources,omitempty"`
}

// Level is the result of one concurrency level.
type Level struct {
	Concurrency int `json:"concurrency"`
	// Succeeded is how many payments succeeded, Declined how many the
	// gateway declined (by FailureReason name in Declines), Errors how many
	// failed otherwise (by Connect code in ErrorsByCode), RateLimited how
	// many of those were resource_exhausted.
	Succeeded    int64            `json:"succeeded"`
	Declined     int64            `json:"declined"`
	Declines     map[string]int64 `json:"declines"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	RateLimited  int64            `json:"rate_limited"`
	// Seconds is how long the payments ran; PaymentsPerSec is succeeded
	// payments per second of it.
	Seconds        float64 `json:"seconds"`
	PaymentsPerSec float64 `json:"payments_per_sec"`
	// Latency of every payment call, succeeded or not.
	Latency Latency `json:"latency_ms"`
	// CeilingPerSec is the health-check calls per second of the same
	// client stack at the same concurrency, just before; CeilingErrors the
	// failed checks. Ratio is PaymentsPerSec / CeilingPerSec.
	CeilingPerSec float64 `json:"ceiling_calls_per_sec"`
	CeilingErrors int64   `json:"ceiling_errors"`
	Ratio         float64 `json:"ratio"`
	// PeakRSS is each process's peak resident set during this level (its
	// ceiling and its payments), in KiB: the peak is reset before the level
	// where the kernel allows it (/proc/<pid>/clear_refs), else it is the
	// peak since the process started.
	PeakRSS map[string]int64 `json:"peak_rss_kib"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Histogram bounds, in microseconds.
const (
	histMin     = 1
	histMax     = int64(5 * time.Minute / time.Microsecond)
	histSigFigs = 3
)

// recorder collects the outcomes of one level's calls; it is safe for
// concurrent use.
type recorder struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	window   *hdrhistogram.Histogram // since the last progress line
	ok       int64
	windowOK int64
	declines map[string]int64
	errors   map[string]int64
	limited  int64
}

func newRecorder() *recorder {
	return &recorder{
		total:    hdrhistogram.New(histMin, histMax, histSigFigs),
		window:   hdrhistogram.New(histMin, histMax, histSigFigs),
		declines: map[string]int64{},
		errors:   map[string]int64{},
	}
}

// outcome is how one call ended: ok, declined (reason set) or an error
// (code set).
type outcome struct {
	reason      string
	code        string
	rateLimited bool
}

func (r *recorder) record(d time.Duration, o outcome) {
	us := min(max(d.Microseconds(), histMin), histMax)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Values are clamped into the histogram's range, so these cannot fail.
	_ = r.total.RecordValue(us)
	_ = r.window.RecordValue(us)
	switch {
	case o.reason != "":
		r.declines[o.reason]++
	case o.code != "":
		r.errors[o.code]++
		if o.rateLimited {
			r.limited++
		}
	default:
		r.ok++
		r.windowOK++
	}
}

// progress returns the successes and the p99 since the last call, and the
// errors so far, and starts a new window.
func (r *recorder) progress() (ok int64, p99 time.Duration, errs int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok, p99 = r.windowOK, time.Duration(r.window.ValueAtQuantile(99))*time.Microsecond
	for _, n := range r.errors {
		errs += n
	}
	r.windowOK = 0
	r.window.Reset()
	return ok, p99, errs
}

// level summarises what r recorded over elapsed.
func (r *recorder) level(concurrency int, elapsed time.Duration) Level {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := Level{
		Concurrency:  concurrency,
		Succeeded:    r.ok,
		Declines:     maps.Clone(r.declines),
		ErrorsByCode: maps.Clone(r.errors),
		RateLimited:  r.limited,
		Seconds:      elapsed.Seconds(),
		Latency:      latencyOf(r.total),
	}
	for _, n := range r.declines {
		l.Declined += n
	}
	for _, n := range r.errors {
		l.Errors += n
	}
	if elapsed > 0 {
		l.PaymentsPerSec = float64(r.ok) / elapsed.Seconds()
	}
	return l
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)),
		P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)),
		Max: ms(h.Max()),
	}
}

// setCeiling fills in the ceiling and the ratio.
func (l *Level) setCeiling(perSec float64, errs int64) {
	l.CeilingPerSec, l.CeilingErrors = perSec, errs
	if perSec > 0 {
		l.Ratio = l.PaymentsPerSec / perSec
	}
}

// WriteTable writes r for people: one row per level, then the
// counts, the peak RSS and the conservation check.
func (r *Report) WriteTable(w io.Writer) {
	network := "its own network"
	if !r.Own {
		network = "an existing network"
	}
	fmt.Fprintf(w, "remit bench: %s at %s, %d customers, %s per level (ceiling %s), same-bank ratio %g, %d CPUs\n\n",
		network, r.Gateway, r.Customers, r.Duration, r.Ceiling, r.SameBankRatio, r.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "concurrency\tpayments/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tceiling calls/s\tratio\tsucceeded\tdeclined\terrors\trate-limited\t\n")
	for _, l := range r.Levels {
		fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.3f\t%d\t%d\t%d\t%d\t\n",
			l.Concurrency, l.PaymentsPerSec, l.Latency.P50, l.Latency.P90, l.Latency.P99, l.Latency.Max,
			l.CeilingPerSec, l.Ratio, l.Succeeded, l.Declined, l.Errors, l.RateLimited)
	}
	tw.Flush()
	for _, l := range r.Levels {
		var parts []string
		if len(l.Declines) > 0 {
			parts = append(parts, "declines "+counts(l.Declines))
		}
		if len(l.ErrorsByCode) > 0 {
			parts = append(parts, "errors "+counts(l.ErrorsByCode))
		}
		if l.CeilingErrors > 0 {
			parts = append(parts, fmt.Sprintf("%d failed health checks", l.CeilingErrors))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "\nconcurrency %d: %s\n", l.Concurrency, strings.Join(parts, "; "))
		}
	}
	if len(r.PeakRSS) > 0 {
		names := slices.Sorted(maps.Keys(r.PeakRSS))
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "peak RSS MiB\t%s\t\n", strings.Join(names, "\t"))
		row := func(label string, m map[string]int64) {
			fmt.Fprintf(tw, "%s\t", label)
			for _, name := range names {
				if kib, ok := m[name]; ok {
					fmt.Fprintf(tw, "%.1f\t", float64(kib)/1024)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
			fmt.Fprintln(tw)
		}
		row("whole run", r.PeakRSS)
		for _, l := range r.Levels {
			row(fmt.Sprintf("concurrency %d", l.Concurrency), l.PeakRSS)
		}
		tw.Flush()
	}
	if res := r.Resources; res != nil {
		names := slices.Sorted(maps.Keys(res.Idle))
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "process\tgoroutines idle\tafter\topen fds idle\tafter\t\n")
		for _, name := range names {
			idle := res.Idle[name]
			after, aok := res.After[name]
			ag, af := "-", "-"
			if aok {
				ag, af = strconv.FormatInt(after.Goroutines, 10), strconv.FormatInt(after.OpenFDs, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t\n", name, idle.Goroutines, ag, idle.OpenFDs, af)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%s\n", r.Conservation.Summary())
	if r.Resources != nil {
		fmt.Fprintln(w, r.Resources.Summary())
	}
}

// counts renders a count map as "A 3, B 1", largest first.
func counts(m map[string]int64) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
