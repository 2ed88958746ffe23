package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/client/outbox"
	"github.com/remitpay/remit/internal/authz"
	"github.com/remitpay/remit/internal/devnet"
	"github.com/remitpay/remit/internal/pki"
)

// Config is one chaos run.
type Config struct {
	// Executable is the remit binary the servers run from.
	Executable string
	// Duration is how long faults are injected; the first round of every
	// kind is always completed, so a short run lasts about two minutes.
	Duration time.Duration
	// Seed makes the schedule and the workload's choices repeatable
	// (0: a random seed, printed).
	Seed uint64
	// Customers is how many customer accounts the payments move money
	// between (default 24, spread over the three banks).
	Customers int
	// Workers is how many clients pay concurrently (default 8).
	Workers int
	// Dir holds the network; empty means a temporary directory, removed
	// after a run that found nothing (kept, and printed, otherwise).
	Dir string
	// Progress, if set, receives a line per fault as it happens.
	Progress io.Writer
	// Postgres, when set, runs the network on that PostgreSQL database
	// (a postgres:// URL; the run's schemas are named after a random
	// prefix unless the URL gives one with search_path), with Replicas
	// gateway replicas. The kill-gateway fault then kills any replica, and
	// restart-postgres restarts the database server (local, as root).
	Postgres string
	Replicas int
}

// Report is what a run did and found.
type Report struct {
	Seed      uint64        `json:"seed"`
	Duration  time.Duration `json:"duration_ns"`
	Dir       string        `json:"dir"`
	Attempted int           `json:"payments_attempted"`
	Succeeded int           `json:"payments_succeeded"`
	Declined  int           `json:"payments_declined"`
	Sends     int64         `json:"payment_sends"`
	// Resolved counts payments whose first answer was not final and that
	// a later send with the same id resolved.
	Resolved    int            `json:"payments_resolved_by_retry"`
	Adjustments int            `json:"adjustments"`
	Outbox      int            `json:"outbox_payments"`
	Reads       int            `json:"balance_reads"`
	Faults      []FaultRecord  `json:"faults"`
	FaultCounts map[string]int `json:"fault_counts"`
	// Skipped names fault kinds that could not be injected here, and why.
	Skipped map[string]string `json:"skipped,omitempty"`
	// Exited names servers that died without being killed.
	Exited []string `json:"exited_on_their_own,omitempty"`
	Checks []Check  `json:"checks"`
	OK     bool     `json:"ok"`
}

// Run starts a network, runs the workload under the nemesis, heals, waits
// for everything to resolve, stops the network and checks its books.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if cfg.Customers == 0 {
		cfg.Customers = 24
	}
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() //nolint:gosec // G404: a seed, printed so a run can be replayed; not a secret
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, temp := cfg.Dir, cfg.Dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "remit-chaos-"); err != nil {
			return nil, err
		}
	}
	var dropSchemas func() error
	if cfg.Postgres != "" {
		if cfg.Postgres, dropSchemas, err = runSchemas(cfg.Postgres, cfg.Seed); err != nil { //nolint:contextcheck // the drop runs after ctx may have ended
			return nil, err
		}
	}
	rep = &Report{Seed: cfg.Seed, Dir: dir, FaultCounts: map[string]int{}}
	fmt.Fprintf(progress, "chaos: seed %d, network in %s\n", cfg.Seed, dir)
	c, err := newCluster(ctx, cfg.Executable, filepath.Join(dir, "net"), cfg.Customers, "bank-c", cfg.Postgres, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	defer func() {
		keep := err != nil || !rep.OK || !temp
		if cerr := c.close(keep); cerr != nil && err == nil {
			err = cerr
		}
		if !keep {
			_ = os.RemoveAll(dir)
			rep.Dir = ""
			if dropSchemas != nil {
				if derr := dropSchemas(); derr != nil && err == nil {
					err = derr
				}
			}
		}
	}()
	for name := range c.procs {
		if err := c.start(ctx, name); err != nil {
			return nil, err
		}
	}
	w, off, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer func() { _ = off.o.Close() }() // its outcomes are read already

	began := time.Now()
	master := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)) //nolint:gosec // G404: reproducible from the seed on purpose
	n := &nemesis{c: c, w: w, rng: seeded(master), started: began, off: off, skipped: map[string]string{}}
	if c.diskBank == "" {
		n.skipped[DiskFull] = c.diskNote
	}
	if c.postgres == "" {
		n.skipped[RestartPostgres] = "the network is on SQLite (--postgres runs it on PostgreSQL)"
	} else {
		// The ledgers are in PostgreSQL, not on the small disk.
		n.skipped[DiskFull] = "the ledgers are in PostgreSQL, not on the bank's disk"
		if why := canRestartPostgres(); why != "" {
			n.skipped[RestartPostgres] = why
		}
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for range cfg.Workers {
		rng := seeded(master)
		load.Go(func() { w.payer(loadCtx, rng) })
	}
	for _, f := range []func(context.Context, *rand.Rand){w.reader, w.adjuster} {
		rng := seeded(master)
		load.Go(func() { f(loadCtx, rng) })
	}
	go func() {
		// A line per fault, as it ends.
		seen := 0
		for loadCtx.Err() == nil {
			sleep(loadCtx, time.Second)
			faults := n.recorded()
			for ; seen < len(faults); seen++ {
				f := faults[seen]
				fmt.Fprintf(progress, "chaos: %6.1fs %-18s %-16s %5.1fs, recovered in %s %s\n", f.Start.Seconds(), f.Kind, f.Target, f.Length.Seconds(), recoveryText(f.Recovery), f.Note)
			}
		}
	}()
	n.run(ctx, cfg.Duration)
	stopLoad()
	load.Wait()
	rep.Duration = time.Since(began)
	if err := ctx.Err(); err != nil {
		// Interrupted: nothing to heal, restart or check; the deferred
		// close stops the servers, unmounts the small disk and keeps the
		// network for a look.
		return nil, fmt.Errorf("chaos run interrupted after %v; the network is in %s: %w", rep.Duration.Round(time.Second), dir, err)
	}

	// Heal everything, restart anything that died on its own, then let
	// clients resolve what they were not told and wait for the rest.
	for _, p := range c.clientProxies() {
		p.Heal()
	}
	for _, p := range c.bankProxy {
		p.Heal()
	}
	for _, p := range c.uplink {
		p.Heal()
	}
	rep.Exited = c.exited()
	for name, p := range c.procs {
		if cmd, done := p.running(); cmd != nil {
			select {
			case <-done:
				p.mu.Lock()
				p.cmd, p.done = nil, nil
				p.mu.Unlock()
			default:
				_ = c.signal(name, syscall.SIGCONT) // in case
				continue
			}
		}
		if err := c.start(ctx, name); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(progress, "chaos: healed; resolving what clients were not told")
	resolveCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	w.resolve(resolveCtx)
	flushErr := off.flush(resolveCtx, w.h)
	cancel()
	state, settleErr := waitSettled(ctx, c.layout, 2*time.Minute)
	fmt.Fprintf(progress, "chaos: %s\n", state)
	c.shutdown()
	b, err := readBooks(ctx, c.layout)
	if err != nil {
		return nil, err
	}
	w.h.mu.Lock()
	anomalies := append([]string(nil), w.h.anomalies...)
	rep.Reads = w.h.reads
	for _, o := range w.h.ops {
		switch o.kind {
		case "payment":
			rep.Attempted++
			switch o.final() {
			case Succeeded:
				rep.Succeeded++
			case Failed:
				rep.Declined++
			}
			if len(o.told) > 1 && o.told[0] == Unknown && o.final() != Unknown {
				rep.Resolved++
			}
		case "adjustment":
			rep.Adjustments++
		case "outbox":
			rep.Outbox++
		}
	}
	w.h.mu.Unlock()
	rep.Sends = w.sent.Load()
	rep.Faults = n.recorded()
	for _, f := range rep.Faults {
		rep.FaultCounts[f.Kind]++
	}
	rep.Skipped = n.skipped
	rep.Checks = check(b, w.h, anomalies)
	settle := Check{Name: "everything resolved after healing, every client answered", OK: settleErr == nil && flushErr == nil}
	if settleErr != nil {
		settle.failf("%v", settleErr)
	}
	if flushErr != nil {
		settle.failf("outbox flush: %v", flushErr)
	}
	w.h.mu.Lock()
	for id, o := range w.h.ops {
		if o.kind != "outbox" && o.final() == Unknown {
			settle.failf("%s (%s) has no final answer after healing: %v", id, o.kind, o.told)
		}
	}
	w.h.mu.Unlock()
	rep.Checks = append(rep.Checks, settle)
	rep.OK = true
	for i := range rep.Checks {
		rep.OK = rep.OK && rep.Checks[i].OK
		rep.Checks[i].Logs = c.linesNaming(rep.Checks[i].Violations)
	}
	return rep, nil
}

// runSchemas gives a run on PostgreSQL schemas of its own: base with
// search_path set to a prefix made from the seed, unless base names one
// already. drop removes them.
func runSchemas(base string, seed uint64) (target string, drop func() error, err error) {
	return devnet.WithSchemaPrefix(base, fmt.Sprintf("chaos_%x", seed&0xffffffffff))
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// linesNaming returns, for the transaction ids named in violations, the
// first few lines of every server's log that name them.
func (c *cluster) linesNaming(violations []string) []string {
	ids := map[string]bool{}
	for _, v := range violations {
		for _, id := range uuidRE.FindAllString(strings.ToLower(v), -1) {
			ids[id] = true
		}
	}
	if len(ids) == 0 {
		return nil
	}
	const perID, most = 6, 60
	var out []string
	names := make([]string, 0, len(c.procs))
	for name := range c.procs {
		names = append(names, name)
	}
	sort.Strings(names)
	for id := range ids {
		for _, name := range names {
			f, err := os.Open(c.procs[name].logFile)
			if err != nil {
				continue
			}
			n := 0
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() && n < perID && len(out) < most {
				if strings.Contains(strings.ToLower(sc.Text()), id) {
					out = append(out, name+": "+sc.Text())
					n++
				}
			}
			_ = f.Close()
		}
	}
	return out
}

// connect logs every customer, the auditor and the admin in, and opens the
// outbox of the first customer.
func connect(ctx context.Context, c *cluster) (*workload, *offline, error) {
	creds, err := devnet.LoadCredentials(c.layout.CredentialsFile())
	if err != nil {
		return nil, nil, err
	}
	tlsConf, err := pki.ClientConfig(creds.CA, "", "")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w := &workload{h: newHistory()}
	for _, cred := range creds.Users {
		var err error
		switch {
		case strings.HasPrefix(cred.ClientID, devnet.CustomerPrefix) && cred.Account != nil:
			cl, lerr := login(ctx, c.clientURLs, tlsConf, cred)
			err = lerr
			if lerr == nil {
				w.custs = append(w.custs, customer{id: cred.ClientID, account: client.AccountRef{Bank: cred.Account.Bank, ID: cred.Account.AccountID}, c: cl})
			}
		case has(cred, authz.RoleAuditor):
			w.auditor, err = login(ctx, c.clientURLs, tlsConf, cred)
		case has(cred, authz.RoleAdmin):
			w.admin, err = login(ctx, c.clientURLs, tlsConf, cred)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if len(w.custs) < 2 || w.auditor == nil || w.admin == nil {
		return nil, nil, errors.New("the network lacks customers, an auditor or an admin")
	}
	sort.Slice(w.custs, func(i, j int) bool { return w.custs[i].id < w.custs[j].id })
	from := w.custs[0]
	o, err := outbox.Open(ctx, filepath.Join(filepath.Dir(c.layout.Dir), "outbox"), outbox.Options{ClientID: from.id, GatewayURL: c.gatewayURL, Wait: true})
	if err != nil {
		return nil, nil, err
	}
	return w, &offline{o: o, from: from}, nil
}

// seeded returns a generator seeded from r: every choice of a run follows
// from its one seed.
func seeded(r *rand.Rand) *rand.Rand {
	return rand.New(rand.NewPCG(r.Uint64(), r.Uint64())) //nolint:gosec // G404: reproducible from the seed on purpose
}

func has(c devnet.Credential, r authz.Role) bool { return slices.Contains(c.Roles, string(r)) }

func recoveryText(d time.Duration) string {
	if d < 0 {
		return "NOT within 60s"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "seed %d, %.0fs of faults\n\n", r.Seed, r.Duration.Seconds())
	fmt.Fprintf(w, "payments: %d attempted (%d sends), %d succeeded, %d declined, %d resolved by a retry with the same id\n",
		r.Attempted, r.Sends, r.Succeeded, r.Declined, r.Resolved)
	fmt.Fprintf(w, "also: %d adjustments, %d outbox payments, %d balance reads\n\n", r.Adjustments, r.Outbox, r.Reads)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tCOUNT\tRECOVERY (max)")
	for _, k := range Kinds {
		var worst time.Duration
		for _, f := range r.Faults {
			if f.Kind == k && (f.Recovery < 0 || (worst >= 0 && f.Recovery > worst)) {
				worst = f.Recovery
			}
		}
		if why, ok := r.Skipped[k]; ok {
			fmt.Fprintf(tw, "%s\tskipped\t%s\n", k, why)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, r.FaultCounts[k], recoveryText(worst))
	}
	_ = tw.Flush()
	if len(r.Exited) > 0 {
		fmt.Fprintf(w, "\nexited on their own (restarted): %s\n", strings.Join(r.Exited, ", "))
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %s\n", mark, c.Name)
		for _, v := range c.Violations {
			fmt.Fprintf(w, "       %s\n", v)
		}
		for _, l := range c.Logs {
			fmt.Fprintf(w, "         %s\n", l)
		}
	}
	if !r.OK {
		fmt.Fprintf(w, "\nVIOLATION: rerun with --seed %d; the network and its logs are in %s\n", r.Seed, r.Dir)
	}
}

// JSON writes the report as one JSON document.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
