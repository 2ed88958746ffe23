package gateway

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remitpay/remit/internal/authz"
)

// DefaultMaxWatchStreams is how many WatchPayments streams one client id may
// hold open at once unless Config.MaxWatchStreams says otherwise.
const DefaultMaxWatchStreams = 8

// Sizes of the watch hub.
const (
	// defaultWatchBuffer is how many events a stream may lag behind the hub
	// before the hub stops handing it events and it re-reads them from the
	// log itself (see watchHub).
	defaultWatchBuffer = 64
	// sharedPoll is how often the hub reads a log shared with other
	// replicas when no notice woke it.
	sharedPoll = time.Second
	// hubBatch is how many events the hub reads from the log at a time.
	hubBatch = 256
	// catchUpBatch is how many events a stream reads at a time when it
	// reads the log itself (from its cursor on opening, and on resync).
	catchUpBatch = 100
)

// hubEvent is one event as the hub hands it out, with the payment it is
// about read once for every stream.
type hubEvent struct {
	Event

	txn *Txn
}

// watchSub is one open WatchPayments stream as the hub sees it.
type watchSub struct {
	p    *authz.Principal
	key  string   // whose streams it counts against (principalKey)
	acct *Account // the account it watches; nil: every account (staff)
	ch   chan hubEvent
	// resync is signalled (capacity 1) when the hub dropped an event for
	// this stream because ch was full.
	resync chan struct{}
	// behind, under watchHub.mu: the hub dropped an event for the stream
	// and hands it nothing more until the stream has cleared it.
	behind bool
}

// wants reports whether the stream is to get event e about payment t.
func (s *watchSub) wants(e Event, t *Txn) bool {
	return (s.acct == nil || *s.acct == e.Account) && visible(s.p, t)
}

// watchHub fans the event log out to the open WatchPayments streams, so that
// an event costs one read of the log (and one of its payment) whatever the
// number of streams, instead of every stream waking and querying for every
// event. One goroutine follows the log and hands each event to the streams
// whose principal may see it, over a bounded channel per stream, never
// blocking: a stream that is slow to send (its client does not read) falls
// behind instead of holding up the hub, the coordinator or other streams.
//
// Drop and resync: when a stream's channel is full the hub drops the event
// for that stream, marks it behind and hands it nothing more. The stream
// then clears the mark, discards what its channel holds and reads the log
// itself from the last event it sent, as it does when it opens, so its client
// still gets every event, in order, once. This is correct because the log is
// append-only with increasing ids, and every event the hub has handed out
// (or dropped) was committed before: a stream that registers, or clears its
// mark, when the hub has handed out everything up to id H gets every event
// after H from the hub, and reads every event up to H (and perhaps more)
// from the log; it skips ids it already sent.
//
// The hub also caps the streams a principal holds open (max).
type watchHub struct {
	store    *Store
	max      int
	buffer   int
	stopping <-chan struct{}

	resyncs atomic.Int64  // streams that fell behind, for tests
	exited  chan struct{} // closed when run returns

	mu      sync.Mutex
	started bool
	cursor  int64 // id of the last event handed out
	subs    map[*watchSub]struct{}
	count   map[string]int // open streams per principalKey
}

func newWatchHub(st *Store, maxStreams, buffer int, stopping <-chan struct{}) *watchHub {
	if maxStreams <= 0 {
		maxStreams = DefaultMaxWatchStreams
	}
	if buffer <= 0 {
		buffer = defaultWatchBuffer
	}
	return &watchHub{store: st, max: maxStreams, buffer: buffer, stopping: stopping, exited: make(chan struct{}),
		subs: map[*watchSub]struct{}{}, count: map[string]int{}}
}

// principalKey is what the stream cap counts by: the client id (every
// session of one user shares it).
func principalKey(p *authz.Principal) string {
	return string(p.Kind) + ":" + p.ClientID
}

// join registers a stream of p watching acct (nil: every account), starting
// the hub on first use. It refuses with errTooManyStreams when p holds max
// streams already.
func (h *watchHub) join(ctx context.Context, p *authz.Principal, acct *Account) (*watchSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := principalKey(p)
	if h.count[key] >= h.max {
		return nil, fmt.Errorf("%w: at most %d at a time; close one before opening another", errTooManyStreams, h.max)
	}
	if !h.started {
		// Under mu, so no stream registers before the hub knows where the
		// log ends: it hands out every event after that.
		last, err := h.store.lastEventID(ctx)
		if err != nil {
			return nil, err
		}
		h.cursor, h.started = last, true
		go h.run() //nolint:gosec,contextcheck // G118: the hub outlives the stream that starts it; it ends when the gateway stops
	}
	s := &watchSub{p: p, key: key, acct: acct, ch: make(chan hubEvent, h.buffer), resync: make(chan struct{}, 1)}
	h.subs[s] = struct{}{}
	h.count[key]++
	return s, nil
}

// leave unregisters a stream, freeing its principal's slot.
func (h *watchHub) leave(s *watchSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	if h.count[s.key]--; h.count[s.key] <= 0 {
		delete(h.count, s.key)
	}
}

// caughtUp clears s's behind mark and discards what its channel holds: the
// stream is about to read the log from its cursor, which covers every event
// the hub handed out so far.
func (h *watchHub) caughtUp(s *watchSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.behind = false
	for {
		select {
		case <-s.ch:
		default:
			return
		}
	}
}

// run follows the log until the gateway stops.
func (h *watchHub) run() {
	defer close(h.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		// Take the change signal before reading, so an event committed
		// between the read and the wait still wakes the hub.
		changed := h.store.EventsChanged()
		n, err := h.deliver(ctx)
		if err != nil {
			// The hub cannot read the log: every stream reads it itself,
			// and tells its client if it cannot either.
			h.dropAll()
		}
		if err == nil && n == hubBatch {
			continue
		}
		// On a log shared with other replicas, their events wake the hub
		// through the change bus; a notice lost with a replica that died
		// between its commit and its notice is made up for by reading the
		// log every sharedPoll anyway.
		var poll <-chan time.Time
		if h.store.Shared() {
			poll = time.After(sharedPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-poll:
		}
	}
}

// deliver reads the events after the cursor, reads each payment some stream
// wants once, and hands the events out. It returns how many it read.
func (h *watchHub) deliver(ctx context.Context) (int, error) {
	h.mu.Lock()
	after := h.cursor
	watched := map[Account]bool{}
	all := false
	for s := range h.subs {
		if s.acct == nil {
			all = true
		} else {
			watched[*s.acct] = true
		}
	}
	h.mu.Unlock()
	events, err := h.store.Events(ctx, nil, after, hubBatch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	txns := map[string]*Txn{}
	for _, e := range events {
		if _, read := txns[e.TxID]; read || (!all && !watched[e.Account]) {
			continue
		}
		t, err := h.store.Get(ctx, e.TxID)
		if err != nil {
			return 0, err
		}
		txns[e.TxID] = t
	}
	// One query for the refunds of every payment read.
	if err := h.store.WithRefunds(ctx, slices.Collect(maps.Values(txns))...); err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		t := txns[e.TxID]
		for s := range h.subs {
			if s.behind || (s.acct != nil && *s.acct != e.Account) {
				continue
			}
			if t == nil {
				// Its stream registered after the payment reads: it
				// reads this one itself.
				h.drop(s)
				continue
			}
			if !s.wants(e, t) {
				continue
			}
			select {
			case s.ch <- hubEvent{e, t}:
			default:
				h.drop(s)
			}
		}
	}
	h.cursor = events[len(events)-1].ID
	return len(events), nil
}

// drop marks s behind and tells its stream to resync. Call with mu held.
func (h *watchHub) drop(s *watchSub) {
	if s.behind {
		return
	}
	s.behind = true
	h.resyncs.Add(1)
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

func (h *watchHub) dropAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		h.drop(s)
	}
}
