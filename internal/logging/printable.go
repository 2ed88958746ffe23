package logging

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/remitpay/remit/internal/printable"
)

// printableHandler escapes, with [printable.String], the message and every
// string, error and Stringer value of every record before next formats
// it. Log lines quote what clients sent (an unknown procedure, an error
// naming a field's value); in text format tint writes a message as is, so
// without this an escape sequence in a request could recolour or clear an
// operator's terminal, or a newline fake a whole log line. It is for the
// text format; JSON lines pass through printable.JSONWriter instead.
type printableHandler struct{ next slog.Handler }

func (h printableHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h printableHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, printable.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(printableAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h printableHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = printableAttr(a)
	}
	return printableHandler{h.next.WithAttrs(clean)}
}

func (h printableHandler) WithGroup(name string) slog.Handler {
	return printableHandler{h.next.WithGroup(printable.String(name))}
}

func printableAttr(a slog.Attr) slog.Attr {
	a.Key = printable.String(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(printable.String(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = printableAttr(g)
		}
		a.Value = slog.GroupValue(clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(printable.String(x.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(printable.String(x.String()))
		default:
			a.Value = v
		}
	default:
		a.Value = v
	}
	return a
}
