package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrGroupClosed is returned by Group.Do after Close: the write did not
// run.
var ErrGroupClosed = errors.New("store: database is closing")

// errGoexit answers the writes of a transaction abandoned because one of
// its functions called runtime.Goexit.
var errGoexit = errors.New("store: a write function exited its goroutine (runtime.Goexit); the transaction was rolled back")

// DefaultMaxBatch is how many writes a Group puts in one transaction when
// GroupOptions.MaxBatch is zero.
const DefaultMaxBatch = 256

// GroupOptions configures a Group. The zero value is usable.
type GroupOptions struct {
	// MaxBatch caps the writes in one transaction (DefaultMaxBatch if zero).
	MaxBatch int
}

// BatchBuckets and CommitBuckets are the upper bounds of the histograms in
// GroupStats: writes per transaction, and seconds per COMMIT.
var (
	BatchBuckets  = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
	CommitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
)

// GroupStats is what a Group has committed since it started, in the shape
// of two Prometheus histograms (prometheus.MustNewConstHistogram takes
// these fields as they are).
type GroupStats struct {
	// Waiting is the writes handed to Do and not answered yet: queued, or
	// in the transaction being run or committed.
	Waiting int64
	// Transactions committed (or whose COMMIT failed), and the writes they
	// carried in all.
	Transactions, Writes uint64
	// Unforced is how many of those transactions carried only DoUnforced
	// writes and were committed without an fsync.
	Unforced uint64
	// Batches maps each of BatchBuckets to the transactions that carried at
	// most that many writes.
	Batches map[float64]uint64
	// CommitSeconds is the time spent in COMMIT (the WAL write and its
	// fsync) in all; Commits maps each of CommitBuckets to the commits
	// that took at most that long.
	CommitSeconds float64
	Commits       map[float64]uint64
}

// Group is group commit for one SQLite database: the write transactions of
// many concurrent callers run, one after the other, inside one SQLite
// transaction, and share its COMMIT and so its one fsync.
//
// A caller hands Do a function that does its writes in a *sql.Tx, exactly
// as it would with InTx, and Do returns only after the transaction that
// carried them is durably committed (or with the reason it is not). Each
// function runs inside its own SAVEPOINT when the transaction carries more
// than one, so a function that returns an error has its own writes undone
// and leaves the others' in place: to each caller, Do behaves like InTx.
// The functions of one transaction run in the order they were queued and
// each sees the writes of those before it, which is what running their
// InTx calls one after the other on the one connection would show.
//
// No timer holds a write back: while one transaction commits, the writes
// that arrive queue, and the next transaction takes all of them (up to
// MaxBatch). Under load the transactions grow; when idle each carries one
// write and costs what InTx does.
type Group struct {
	db   *sql.DB
	pg   bool // PostgreSQL: an unforced transaction sets synchronous_commit off
	opts GroupOptions

	queue   chan *groupOp
	closing chan struct{}
	done    chan struct{}

	waiting atomic.Int64 // callers inside Do

	statsMu  sync.Mutex
	txns     uint64
	unforced uint64 // transactions committed without fsync
	writes   uint64
	batches  []uint64 // per BatchBuckets, not cumulative
	commitS  float64
	commits  []uint64 // per CommitBuckets, not cumulative

	// mu makes Close wait for the sends in progress, so that every op
	// that reached the queue is answered by the loop before it exits.
	mu     sync.RWMutex
	closed bool
}

// Op states: a queued op is either started by the committer or cancelled
// by its caller, never both, so a caller that gave up knows its write did
// not run.
const (
	opQueued int32 = iota
	opStarted
	opCancelled
)

type groupOp struct {
	ctx    context.Context //nolint:containedctx // a caller's context, carried to the committing goroutine
	fn     func(context.Context, *sql.Tx) error
	lazy   bool // DoUnforced: need not survive a power loss
	state  atomic.Int32
	err    error
	panicV any
	done   chan struct{}
}

// NewGroup starts the committing goroutine for db. Close stops it.
func NewGroup(db *sql.DB, opts GroupOptions) *Group {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	g := &Group{
		db:      db,
		pg:      DialectOf(db) == Postgres,
		opts:    opts,
		queue:   make(chan *groupOp, opts.MaxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		batches: make([]uint64, len(BatchBuckets)+1),
		commits: make([]uint64, len(CommitBuckets)+1),
	}
	go g.loop()
	return g
}

// Do runs fn in a write transaction shared with other callers' writes and
// returns once that transaction is durably committed. It returns fn's
// error if fn fails (fn's writes are then undone, and no one else's), the
// commit's error if the commit fails (no write of the transaction is then
// acknowledged to anyone), or ctx's error if ctx ends before fn started
// (fn then never runs). Once fn has started, Do waits for the commit
// whatever ctx does, so an error from Do always means fn's writes are not
// committed, except when COMMIT itself reports an I/O error, which InTx
// cannot tell apart either.
//
// fn must use the ctx it is given, not its caller's: that ctx carries the
// caller's values but no cancellation, because SQLite rolls back the whole
// transaction, everyone's writes, when a statement is interrupted. fn must
// not call Do (it would wait for itself) nor Commit or Rollback tx. A panic
// in fn is re-raised in its caller's goroutine, after fn's writes are
// undone.
func (g *Group) Do(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	return g.do(ctx, fn, false)
}

// DoUnforced is Do for a write that need not survive a power loss or a
// crash of the machine, only a crash of the process: one whose loss a
// later step of the protocol notices and repairs (see "Writes that are not
// forced" in docs/protocol.md). When every write of a transaction is
// unforced, the transaction commits with synchronous=NORMAL: its WAL
// frames reach the operating system before DoUnforced returns, so a killed
// process loses nothing, but they are not fsynced; the next forced commit
// fsyncs the WAL, and them with it. A transaction that carries a forced
// write (Do) beside unforced ones is forced whole. On PostgreSQL the
// transaction commits with synchronous_commit=off: the server flushes it
// within wal_writer_delay, so a crash of the server (not only of the
// machine) within that delay loses it too.
func (g *Group) DoUnforced(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	return g.do(ctx, fn, true)
}

func (g *Group) do(ctx context.Context, fn func(context.Context, *sql.Tx) error, lazy bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	op := &groupOp{ctx: ctx, fn: fn, lazy: lazy, done: make(chan struct{})}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrGroupClosed
	}
	select {
	case g.queue <- op:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-op.done:
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opCancelled) {
			return ctx.Err()
		}
		<-op.done // started: its commit is on its way
	}
	if op.panicV != nil {
		panic(op.panicV)
	}
	return op.err
}

// Close stops accepting writes, waits for the transaction in progress, and
// fails the writes still queued with ErrGroupClosed. The database stays
// open.
func (g *Group) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.closing)
	}
	g.mu.Unlock()
	<-g.done
}

func (g *Group) loop() {
	// A write function that calls runtime.Goexit (t.FailNow in a test)
	// unwinds this goroutine: commit has answered its batch with an error;
	// start a new committer so that the writes queued after it still run.
	stopped := false
	defer func() {
		if !stopped {
			go g.loop()
			return
		}
		close(g.done)
	}()
	batch := make([]*groupOp, 0, g.opts.MaxBatch)
	for {
		var first *groupOp
		select {
		case first = <-g.queue:
		case <-g.closing:
			g.failQueued()
			stopped = true
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < g.opts.MaxBatch {
			select {
			case op := <-g.queue:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		g.commit(batch)
		for i := range batch {
			batch[i] = nil
		}
	}
}

// failQueued answers every op still queued at Close.
func (g *Group) failQueued() {
	for {
		select {
		case op := <-g.queue:
			op.err = ErrGroupClosed
			close(op.done)
		default:
			return
		}
	}
}

// commit runs the batch's ops in one transaction and answers each.
func (g *Group) commit(batch []*groupOp) {
	// Ops their callers gave up on before they started are dropped now.
	live := batch[:0:0]
	for _, op := range batch {
		if op.state.CompareAndSwap(opQueued, opStarted) {
			live = append(live, op)
		}
	}
	if len(live) == 0 {
		return
	}
	lazy := true
	for _, op := range live {
		lazy = lazy && op.lazy
	}
	var tx *sql.Tx
	var conn *sql.Conn
	finished := false
	defer func() {
		if !finished {
			// An fn ended the goroutine (runtime.Goexit): nothing of the
			// transaction is committed, so no caller may be told otherwise.
			if tx != nil {
				tx.Rollback()
			}
			failAll(live, errGoexit)
		}
		if conn != nil {
			g.release(conn, lazy)
		}
		for _, op := range live {
			close(op.done)
		}
	}()
	// The transaction belongs to no caller: it must outlive any of them.
	bg := context.WithoutCancel(live[0].ctx)
	// The connection is held from the synchronous setting to its reset,
	// so that no write outside the group runs with the setting of an
	// unforced transaction.
	conn, err := g.db.Conn(bg)
	if err != nil {
		failAll(live, fmt.Errorf("store: begin: %w", err))
		finished = true
		return
	}
	if lazy && !g.pg {
		if _, err := conn.ExecContext(bg, "PRAGMA synchronous = NORMAL"); err != nil {
			lazy = false // committed forced instead: more than was asked
			g.resetSync(conn)
		}
	}
	tx, err = conn.BeginTx(bg, nil)
	if err != nil {
		failAll(live, fmt.Errorf("store: begin: %w", err))
		finished = true
		return
	}
	if lazy && g.pg {
		if err := unforced(bg, tx); err != nil {
			tx.Rollback()
			failAll(live, fmt.Errorf("store: begin: %w", err))
			finished = true
			return
		}
	}
	if len(live) == 1 {
		op := live[0]
		run(op, tx)
		if op.err != nil || op.panicV != nil {
			tx.Rollback()
			finished = true
			return
		}
	} else {
		for i, op := range live {
			if err := g.runSaved(op, tx); err != nil {
				// The transaction itself is gone (SQLite rolled it back):
				// nothing in it can be acknowledged, the ops not yet run
				// included.
				tx.Rollback()
				failAll(live[:i], fmt.Errorf("store: group transaction rolled back: %w", err))
				failAll(live[i+1:], fmt.Errorf("store: group transaction rolled back: %w", err))
				if op.err == nil && op.panicV == nil {
					op.err = err
				}
				finished = true
				return
			}
		}
	}
	start := time.Now()
	err = tx.Commit()
	finished = true
	g.observe(len(live), lazy, time.Since(start))
	if err != nil {
		for _, op := range live {
			if op.err == nil && op.panicV == nil {
				op.err = fmt.Errorf("store: commit: %w", err)
			}
		}
	}
}

// release resets the synchronous setting of conn after an unforced
// transaction and gives conn back to the pool.
func (g *Group) release(conn *sql.Conn, lazy bool) {
	if lazy && !g.pg {
		g.resetSync(conn)
	}
	_ = conn.Close() // back to the pool; a broken one is discarded and reopened with the DSN's FULL
}

// resetSync puts conn back to synchronous=FULL. If that fails, the
// connection is discarded: a new one starts FULL (the DSN's pragmas), so
// no forced write ever commits with the setting of an unforced one.
func (g *Group) resetSync(conn *sql.Conn) {
	bg := context.Background()
	if _, err := conn.ExecContext(bg, "PRAGMA synchronous = FULL"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // drop it
	}
}

// runSaved runs op inside a savepoint and undoes its writes if it fails.
// It returns an error only if the transaction can no longer be used.
func (g *Group) runSaved(op *groupOp, tx *sql.Tx) error {
	bg := context.WithoutCancel(op.ctx)
	if _, err := tx.ExecContext(bg, "SAVEPOINT remit_op"); err != nil {
		return err
	}
	run(op, tx)
	if op.err != nil || op.panicV != nil {
		if _, err := tx.ExecContext(bg, "ROLLBACK TO remit_op"); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(bg, "RELEASE remit_op")
	return err
}

// run calls op.fn, recording its error or panic.
func run(op *groupOp, tx *sql.Tx) {
	defer func() {
		if p := recover(); p != nil {
			op.panicV = p
		}
	}()
	op.err = op.fn(context.WithoutCancel(op.ctx), tx)
}

func failAll(ops []*groupOp, err error) {
	for _, op := range ops {
		if op.err == nil && op.panicV == nil {
			op.err = err
		}
	}
}

// observe adds one transaction to the statistics.
func (g *Group) observe(writes int, lazy bool, commit time.Duration) {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	g.txns++
	if lazy {
		g.unforced++
	}
	g.writes += uint64(writes) //nolint:gosec // a count of ops, at least 1
	g.batches[bucket(BatchBuckets, float64(writes))]++
	g.commitS += commit.Seconds()
	g.commits[bucket(CommitBuckets, commit.Seconds())]++
}

// bucket is the index of the first bound v fits under (len(bounds) if none).
func bucket(bounds []float64, v float64) int {
	for i, b := range bounds {
		if v <= b {
			return i
		}
	}
	return len(bounds)
}

// Stats reports what the Group has committed so far.
func (g *Group) Stats() GroupStats {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	cumulative := func(bounds []float64, counts []uint64) map[float64]uint64 {
		m := make(map[float64]uint64, len(bounds))
		var sum uint64
		for i, b := range bounds {
			sum += counts[i]
			m[b] = sum
		}
		return m
	}
	return GroupStats{
		Waiting:       g.waiting.Load(),
		Transactions:  g.txns,
		Unforced:      g.unforced,
		Writes:        g.writes,
		Batches:       cumulative(BatchBuckets, g.batches),
		CommitSeconds: g.commitS,
		Commits:       cumulative(CommitBuckets, g.commits),
	}
}
