package chaos

import (
	"sync"

	"github.com/remitpay/remit/client"
)

// Outcomes a client was told. Unknown is an indeterminate operation: the
// client gave up (timeout, unreachable) without a final answer.
const (
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
	Unknown   = "UNKNOWN"
)

// op is one transaction id and everything any client was told about it.
type op struct {
	id      string
	kind    string // "payment", "adjustment" or "outbox"
	payer   client.AccountRef
	payee   client.AccountRef // the adjusted account, for an adjustment
	amount  int64
	deposit bool // adjustments: credit (true) or debit
	// told holds each final answer, in order: the first send, its
	// replays, and for the outbox its flushes.
	told []string
}

// history is what every client did and was told, for the checker.
type history struct {
	mu    sync.Mutex
	ops   map[string]*op
	reads int
	// anomalies are impossible answers seen while running (a negative
	// balance, available above balance).
	anomalies []string
}

func newHistory() *history { return &history{ops: map[string]*op{}} }

// add records a new id; record then adds what a client was told of it.
func (h *history) add(o *op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops[o.id] = o
}

func (h *history) record(id, outcome string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.ops[id]; o != nil {
		o.told = append(o.told, outcome)
	}
}

func (h *history) read(anomaly string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	if anomaly != "" {
		h.anomalies = append(h.anomalies, anomaly)
	}
}

// final is o's final outcome as told, or Unknown: the first answer that is
// not Unknown (the checker separately requires every such answer to agree).
func (o *op) final() string {
	for _, t := range o.told {
		if t != Unknown {
			return t
		}
	}
	return Unknown
}
