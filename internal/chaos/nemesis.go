package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/remitpay/remit/client"
	"github.com/remitpay/remit/internal/devnet"
)

// Fault kinds, as reported.
const (
	KillGateway   = "kill-gateway"
	KillBank      = "kill-bank"
	PauseShort    = "pause"
	PauseLong     = "pause-past-expiry"
	PartitionBank = "partition-bank"
	LatencyBanks  = "latency"
	ResetBank     = "reset"
	CutClients    = "cut-clients"
	DiskFull      = "disk-full"
	OneWay        = "one-way-loss"
	SlowLinks     = "bandwidth"
	// RestartPostgres restarts the PostgreSQL server under a network of
	// replicas (replica mode only): every connection of every process
	// breaks at once, mid-transaction.
	RestartPostgres = "restart-postgres"
)

// Kinds is every fault kind, in the order the report lists them.
var Kinds = []string{KillGateway, KillBank, PauseShort, PauseLong, PartitionBank, LatencyBanks, SlowLinks, ResetBank, OneWay, CutClients, DiskFull, RestartPostgres}

// pastExpiry is how long the long faults last: beyond the gateway's
// decision deadline (10 s) plus the banks' expiry grace (20 s), so that
// prepared transactions expire at the banks while the fault lasts and
// their resolvers must ask the gateway.
const pastExpiry = 35 * time.Second

// FaultRecord is one fault as injected.
type FaultRecord struct {
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	Start  time.Duration `json:"start_ns"`
	Length time.Duration `json:"length_ns"`
	// Recovery is from healing until a payment through the faulted part
	// succeeded again (-1: it did not within the bound).
	Recovery time.Duration `json:"recovery_ns"`
	Note     string        `json:"note,omitempty"`
}

// nemesis injects faults on a schedule drawn from rng.
type nemesis struct {
	c       *cluster
	w       *workload
	rng     *rand.Rand
	started time.Time
	off     *offline
	// skipped says why a kind could not be injected here.
	skipped map[string]string

	mu     sync.Mutex
	faults []FaultRecord
}

func (n *nemesis) done(f FaultRecord) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = append(n.faults, f)
}

// recorded returns the faults injected so far.
func (n *nemesis) recorded() []FaultRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.faults)
}

// shortKinds are the faults that last seconds.
var shortKinds = []string{KillGateway, KillBank, PauseShort, LatencyBanks, SlowLinks, ResetBank, OneWay, CutClients, DiskFull, RestartPostgres}

// round returns the short kinds in random order, and with long set the
// long one too (PauseLong, which brings PartitionBank with it: a bank
// paused and another cut off, both past the expiry, at once).
func (n *nemesis) round(long bool) []string {
	kinds := slices.Clone(shortKinds)
	n.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	if long {
		kinds = slices.Insert(kinds, n.rng.IntN(len(kinds)+1), PauseLong)
	}
	return kinds
}

// run injects faults in rounds until d has passed since the start: the
// first round has every kind and always completes; later rounds have
// every short kind, in a new order, and stop when the time is up.
func (n *nemesis) run(ctx context.Context, d time.Duration) {
	end := n.started.Add(d)
	sleep(ctx, 2*time.Second) // let the load reach its pace first
	for i := 0; ctx.Err() == nil; i++ {
		for _, kind := range n.round(i == 0) {
			if i > 0 && !time.Now().Before(end) {
				return
			}
			n.inject(ctx, kind)
			sleep(ctx, time.Duration(500+n.rng.IntN(1000))*time.Millisecond)
		}
		if !time.Now().Before(end) {
			return
		}
	}
}

func (n *nemesis) bank() string { return devnet.Banks()[n.rng.IntN(len(devnet.Banks()))] }

// inject runs one fault of kind, heals it, and measures the recovery.
func (n *nemesis) inject(ctx context.Context, kind string) {
	if _, ok := n.skipped[kind]; ok {
		return
	}
	start := time.Now()
	rec := FaultRecord{Kind: kind, Start: start.Sub(n.started)}
	probeBank := ""
	var err error
	switch kind {
	case KillGateway:
		// With replicas, any of them: the clients fail over to the others,
		// which take over its payments once their deadlines pass.
		rec.Target = n.c.replicas[n.rng.IntN(len(n.c.replicas))]
		err = n.restart(ctx, rec.Target, time.Duration(500+n.rng.IntN(2000))*time.Millisecond)
	case RestartPostgres:
		rec.Target = "postgresql"
		err = restartPostgres(ctx)
	case KillBank:
		rec.Target = n.bank()
		probeBank = rec.Target
		// Kill it while it holds prepared transactions, if it comes to
		// hold any within a few seconds.
		if held := n.waitPrepared(ctx, rec.Target, 3*time.Second); held > 0 {
			rec.Note = fmt.Sprintf("killed holding %d prepared", held)
		}
		err = n.restart(ctx, rec.Target, time.Duration(500+n.rng.IntN(2000))*time.Millisecond)
	case PauseShort:
		rec.Target = append([]string{"gateway"}, devnet.Banks()...)[n.rng.IntN(1+len(devnet.Banks()))]
		if rec.Target != "gateway" {
			probeBank = rec.Target
		}
		err = n.pause(ctx, rec.Target, time.Duration(2000+n.rng.IntN(3000))*time.Millisecond)
	case PauseLong:
		// One bank paused and another cut off from the gateway, both past
		// the expiry, at the same time.
		banks := devnet.Banks()
		n.rng.Shuffle(len(banks), func(i, j int) { banks[i], banks[j] = banks[j], banks[i] })
		rec.Target = banks[0]
		part := FaultRecord{Kind: PartitionBank, Target: banks[1], Start: rec.Start}
		probeBank = banks[0]
		if err = n.c.signal(banks[0], syscall.SIGSTOP); err == nil {
			// Both ways: the gateway cannot reach the bank, nor the bank
			// (its resolver, its registration) the gateway.
			n.c.bankProxy[banks[1]].Set(Blackhole, 0)
			n.c.uplink[banks[1]].Set(Blackhole, 0)
			sleep(ctx, pastExpiry)
			n.c.bankProxy[banks[1]].Heal()
			n.c.uplink[banks[1]].Heal()
			err = n.c.signal(banks[0], syscall.SIGCONT)
		}
		part.Length = time.Since(start)
		part.Recovery = n.recovery(ctx, banks[1])
		n.done(part)
	case LatencyBanks:
		rec.Target = "every bank link"
		d := time.Duration(100+n.rng.IntN(200)) * time.Millisecond
		rec.Note = fmt.Sprintf("%v each way", d)
		n.allBankLinks(ctx, Latency, d)
	case SlowLinks:
		rec.Target = "every bank link"
		perKiB := time.Duration(30+n.rng.IntN(90)) * time.Millisecond
		rec.Note = fmt.Sprintf("%.0f KiB/s each way", float64(time.Second)/float64(perKiB))
		n.allBankLinks(ctx, Bandwidth, perKiB)
	case OneWay:
		rec.Target = n.bank()
		probeBank = rec.Target
		f := []Fault{BlackholeUp, BlackholeDown}[n.rng.IntN(2)]
		rec.Note = "gateway to bank: " + f.String()
		n.c.bankProxy[rec.Target].Set(f, 0)
		sleep(ctx, time.Duration(3000+n.rng.IntN(3000))*time.Millisecond)
		n.c.bankProxy[rec.Target].Heal()
	case ResetBank:
		rec.Target = n.bank()
		probeBank = rec.Target
		n.c.bankProxy[rec.Target].Set(Reset, 0)
		sleep(ctx, time.Duration(1000+n.rng.IntN(2000))*time.Millisecond)
		n.c.bankProxy[rec.Target].Heal()
	case CutClients:
		rec.Target = "clients"
		for _, p := range n.c.clientProxies() {
			p.Set(Blackhole, 0)
		}
		var queued sync.WaitGroup
		qrng := seeded(n.rng)
		queued.Go(func() { n.off.queue(ctx, n.w, qrng, 2+qrng.IntN(3)) })
		sleep(ctx, time.Duration(3000+n.rng.IntN(3000))*time.Millisecond)
		queued.Wait()
		for _, p := range n.c.clientProxies() {
			p.Heal()
		}
	case DiskFull:
		rec.Target = n.c.diskBank
		probeBank = rec.Target
		var filled int64
		filled, err = n.fillDisk(ctx, time.Duration(3000+n.rng.IntN(3000))*time.Millisecond)
		rec.Note = fmt.Sprintf("filled with %d MiB", filled>>20)
	}
	rec.Length = time.Since(start)
	if err != nil {
		rec.Note = "error: " + err.Error()
	}
	rec.Recovery = n.recovery(ctx, probeBank)
	n.done(rec)
}

// allBankLinks sets f on the gateway's link to every bank for 4 to 7 s,
// then heals them.
func (n *nemesis) allBankLinks(ctx context.Context, f Fault, d time.Duration) {
	for _, p := range n.c.bankProxy {
		p.Set(f, d)
	}
	sleep(ctx, time.Duration(4000+n.rng.IntN(3000))*time.Millisecond)
	for _, p := range n.c.bankProxy {
		p.Heal()
	}
}

// waitPrepared polls bank's ledger until it holds a prepared transaction
// or wait passes, and returns how many it holds.
func (n *nemesis) waitPrepared(ctx context.Context, bank string, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for ctx.Err() == nil {
		held, err := preparedAt(ctx, n.c.layout, bank)
		if (err == nil && held > 0) || time.Now().After(deadline) {
			return held
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return 0
}

// restart kills name, waits down, and starts it again.
func (n *nemesis) restart(ctx context.Context, name string, down time.Duration) error {
	if err := n.c.kill(name); err != nil {
		return err
	}
	sleep(ctx, down)
	return n.c.start(ctx, name)
}

// pause stops name with SIGSTOP for d, then resumes it.
func (n *nemesis) pause(ctx context.Context, name string, d time.Duration) error {
	if err := n.c.signal(name, syscall.SIGSTOP); err != nil {
		return err
	}
	sleep(ctx, d)
	return n.c.signal(name, syscall.SIGCONT)
}

// fillDisk fills the small disk of c.diskBank to the last byte, holds it
// full for d, frees it, and returns how much it wrote.
func (n *nemesis) fillDisk(ctx context.Context, d time.Duration) (int64, error) {
	path := filepath.Join(n.c.layout.DataDir(), n.c.diskBank, "chaos-fill")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	chunk := make([]byte, 1<<20)
	var filled int64
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		for {
			m, err := f.Write(chunk[:size])
			filled += int64(m)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				_ = f.Close()
				return filled, errors.Join(err, os.Remove(path))
			}
			break
		}
	}
	sleep(ctx, d)
	return filled, errors.Join(f.Close(), os.Remove(path))
}

// recovery measures how long until a payment from an account at bank (any
// bank, if empty) succeeds again, up to a bound. The probe payments are
// part of the history like any other.
func (n *nemesis) recovery(ctx context.Context, bank string) time.Duration {
	const bound = 60 * time.Second
	start := time.Now()
	var from, to []customer
	for _, c := range n.w.custs {
		if bank == "" || c.account.Bank == bank {
			from = append(from, c)
		}
		to = append(to, c)
	}
	for time.Since(start) < bound && ctx.Err() == nil {
		f := from[n.rng.IntN(len(from))]
		t := to[n.rng.IntN(len(to))]
		if f.id == t.id {
			continue
		}
		o := &op{id: client.NewTransactionID(), kind: "payment", payer: f.account, payee: t.account, amount: 1}
		n.w.h.add(o)
		n.w.send(ctx, f, o)
		if o.final() == Succeeded {
			return time.Since(start)
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return -1
}

// postgresCluster is the local PostgreSQL cluster pg_ctlcluster manages:
// its version (the one directory of /etc/postgresql) and name.
func postgresCluster() (version string, err error) {
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil {
		return "", err
	}
	if len(entries) != 1 {
		return "", fmt.Errorf("%d PostgreSQL versions in /etc/postgresql, want one", len(entries))
	}
	return entries[0].Name(), nil
}

// canRestartPostgres says why restart-postgres cannot run here ("" if it
// can): it restarts the local server with pg_ctlcluster, as root.
func canRestartPostgres() string {
	if os.Geteuid() != 0 {
		return "restarting PostgreSQL needs root (pg_ctlcluster)"
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		return "no pg_ctlcluster: " + err.Error()
	}
	if _, err := postgresCluster(); err != nil {
		return "no local PostgreSQL cluster: " + err.Error()
	}
	return ""
}

// restartPostgres restarts the local PostgreSQL server (fast shutdown:
// open transactions are rolled back, connections cut).
func restartPostgres(ctx context.Context) error {
	version, err := postgresCluster()
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "--", "-m", "fast").CombinedOutput() //nolint:gosec // G204: the version is a directory name of /etc/postgresql
	if err != nil {
		return fmt.Errorf("pg_ctlcluster restart: %w: %s", err, out)
	}
	return nil
}
