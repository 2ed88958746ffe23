package logging

import (
	"context"
	"log/slog"
	"sync"
)

// fields is the mutable per-RPC holder that LogInterceptor puts in the
// context. A context is immutable, so values discovered deeper in the call
// (principal, transaction id, ...) must be written into a shared holder for
// the outer interceptor to see them when it logs.
type fields struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

type fieldsKey struct{}

func withFields(ctx context.Context) (context.Context, *fields) {
	f := &fields{}
	return context.WithValue(ctx, fieldsKey{}, f), f
}

func (f *fields) add(attrs []slog.Attr) {
	f.mu.Lock()
	f.attrs = append(f.attrs, attrs...)
	f.mu.Unlock()
}

func (f *fields) snapshot() []slog.Attr {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]slog.Attr, len(f.attrs))
	copy(out, f.attrs)
	return out
}

// AddFields attaches attrs to the single log line that [LogInterceptor]
// writes for the RPC running in ctx, so that handlers and inner interceptors
// (authentication, authorization) can enrich it with values such as
// principal, role, transaction_id, amount or currency without writing log
// lines of their own. Keys must be snake_case.
//
// Only add values that are safe to log: never credentials, tokens, full
// account numbers or request bodies. AddFields is safe for concurrent use
// (streaming handlers may call it from several goroutines) and is a no-op
// when ctx does not come from an RPC wrapped by LogInterceptor.
func AddFields(ctx context.Context, attrs ...slog.Attr) {
	if len(attrs) == 0 {
		return
	}
	if f, ok := ctx.Value(fieldsKey{}).(*fields); ok {
		f.add(attrs)
	}
}
