package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bus carries change notices between the processes that share one
// PostgreSQL schema (gateway replicas), over LISTEN/NOTIFY: a process that
// changed something the others hold in memory (a revoked session, a
// disabled user, a new payment event) publishes a notice after its commit,
// and every process subscribed to that topic, itself included, receives it.
//
// A notice may arrive late or, while a listener is reconnecting, not at
// all: each subscriber also gives a resync function, called whenever the
// listener (re)connects, which must drop or reload whatever it holds
// (a connection that breaks may have missed notices). So the memory of a
// process is never stale for longer than one notice's delivery, or than
// its listener's reconnection.
//
// Topics are per schema: two networks in one database (tests, several
// environments) never hear each other.
type Bus struct {
	cfg    *pgx.ConnConfig
	pub    *sql.DB
	prefix string
	log    *slog.Logger

	mu     sync.Mutex
	subs   map[string][]subscriber // by channel
	ready  chan struct{}           // closed once the first LISTEN is in place
	listen bool                    // Run has started
}

type subscriber struct {
	notice func(payload string)
	resync func()
}

// OpenBus returns the bus of the PostgreSQL schema target names, or nil
// for an SQLite target (one process per database: nothing to tell).
func OpenBus(ctx context.Context, target string, log *slog.Logger) (*Bus, error) {
	if !IsPostgres(target) {
		return nil, nil //nolint:nilnil // no bus is the answer for SQLite
	}
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		return nil, fmt.Errorf("store: bus: %s: %w", Redact(target), err)
	}
	pub, err := OpenReader(ctx, target) // pg_notify runs in a read-only transaction
	if err != nil {
		return nil, err
	}
	schema := cfg.RuntimeParams["search_path"]
	if schema == "" {
		schema = "public"
	}
	sum := sha256.Sum256([]byte(cfg.Database + "/" + schema))
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{
		cfg: cfg, pub: pub, prefix: "remit_" + hex.EncodeToString(sum[:8]) + "_", log: log,
		subs: map[string][]subscriber{}, ready: make(chan struct{}),
	}, nil
}

// Subscribe calls notice with the payload of every notice published on
// topic, and resync whenever the listener (re)connects. Call it before Run.
// The methods of a nil Bus (SQLite) do nothing.
func (b *Bus) Subscribe(topic string, notice func(payload string), resync func()) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listen {
		panic("store: Bus.Subscribe after Run")
	}
	ch := b.prefix + topic
	b.subs[ch] = append(b.subs[ch], subscriber{notice: notice, resync: resync})
}

// Publish sends payload on topic to every subscriber of the schema. Call
// it after the change it announces is committed: a notice received is a
// change the receiver can read.
func (b *Bus) Publish(ctx context.Context, topic, payload string) error {
	if b == nil {
		return nil
	}
	if _, err := b.pub.ExecContext(ctx, `SELECT pg_notify(?, ?)`, b.prefix+topic, payload); err != nil {
		return fmt.Errorf("store: publish %s: %w", topic, err)
	}
	return nil
}

// PublishIn sends payload on topic as part of tx, a transaction of a
// writer of the same schema: PostgreSQL delivers it when, and only if, tx
// commits, so the change and its notice cannot be parted by a crash
// between them. Prefer it to Publish wherever the change is one
// transaction. A nil Bus does nothing.
func (b *Bus) PublishIn(ctx context.Context, tx *sql.Tx, topic, payload string) error {
	if b == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, b.prefix+topic, payload); err != nil {
		return fmt.Errorf("store: publish %s: %w", topic, err)
	}
	return nil
}

// Ready is closed once the listener first listens on every topic.
func (b *Bus) Ready() <-chan struct{} { return b.ready }

// Run listens until ctx ends, reconnecting with backoff (and resyncing
// every subscriber) when the connection breaks.
func (b *Bus) Run(ctx context.Context) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.listen = true
	b.mu.Unlock()
	failures := 0
	readyOnce := sync.OnceFunc(func() { close(b.ready) })
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, func() { failures = 0; readyOnce() })
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := min(time.Duration(1<<min(failures, 5))*100*time.Millisecond, 5*time.Second)
		wait += rand.N(wait/2 + 1) //nolint:gosec // jitter, not a secret
		b.log.Warn("change notices: listener lost; reconnecting", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// listenOnce connects, listens on every channel, resyncs the subscribers
// and delivers notices until the connection or ctx ends.
func (b *Bus) listenOnce(ctx context.Context, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the listener ends either way
	}()
	b.mu.Lock()
	subs := b.subs
	b.mu.Unlock()
	for ch := range subs {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	// Listening now: whatever changed before is read afresh.
	for _, list := range subs {
		for _, s := range list {
			if s.resync != nil {
				s.resync()
			}
		}
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		for _, s := range subs[n.Channel] {
			s.notice(n.Payload)
		}
	}
}

// Close releases the publishing pool. Stop Run first (its context).
func (b *Bus) Close() error {
	if b == nil {
		return nil
	}
	return b.pub.Close()
}
