// Package logging builds Remit's structured loggers and the Connect
// interceptors that log RPCs and recover from handler panics.
//
// Conventions, enforced here so every server logs the same way:
//
//   - keys are snake_case (procedure, retry_attempt, transaction_id, ...);
//   - exactly one line per RPC, written by [LogInterceptor];
//   - request and response bodies and headers are never logged, because
//     they carry credentials, account numbers and other secrets. Only
//     values explicitly added with [AddFields] reach the RPC line.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"

	"github.com/remitpay/remit/internal/printable"
)

// Log formats accepted by [New] and [ParseFormat].
const (
	// FormatText is human-readable, tint-formatted output for developers;
	// it is colored only when the destination is a terminal.
	FormatText = "text"
	// FormatJSON is one JSON object per line, for log collectors.
	FormatJSON = "json"
	// FormatAuto picks FormatText on a terminal and FormatJSON otherwise,
	// so that the same binary is pleasant locally and machine-readable in
	// production without configuration.
	FormatAuto = ""
)

// ParseFormat validates a user-supplied log format (for example from a flag
// or environment variable) so that a typo is reported at startup instead of
// silently changing the output format. It accepts "text", "json" and ""
// (auto), case-insensitively and ignoring surrounding spaces, and returns the
// normalized value to pass to [New].
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case FormatText, FormatJSON, FormatAuto:
		return f, nil
	default:
		return "", fmt.Errorf("logging: unknown log format %q (want %q, %q or empty for auto)", s, FormatText, FormatJSON)
	}
}

// New returns a logger writing to w in the given format at level and above.
// It is the only way Remit binaries should construct loggers, so that output
// format and key conventions are uniform.
//
// format is one of [FormatText], [FormatJSON] or [FormatAuto]; validate
// user input with [ParseFormat] first. An unrecognized format falls back to
// FormatAuto rather than failing, because losing logs is worse than getting
// them in an unexpected format.
func New(w io.Writer, format string, level slog.Level) *slog.Logger {
	terminal := isTerminal(w)
	switch format {
	case FormatText, FormatJSON:
	default:
		format = FormatJSON
		if terminal {
			format = FormatText
		}
	}
	// Both formats escape what a client could have put in a line: text
	// through printableHandler (tint writes a message as it is), JSON
	// through printable.JSONWriter (the encoder escapes C0 controls;
	// the writer the C1 and bidirectional characters it leaves, in every
	// value, nested ones included), once per line.
	if format == FormatText {
		return slog.New(printableHandler{tint.NewTextHandler(w, &tint.Options{
			Level:      level,
			TimeFormat: time.RFC3339Nano,
			NoColor:    !terminal,
		})})
	}
	return slog.New(slog.NewJSONHandler(printable.JSONWriter(w), &slog.HandlerOptions{Level: level}))
}

// isTerminal reports whether w is a file descriptor attached to a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}
