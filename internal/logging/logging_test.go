package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/printable"
)

func TestParseFormat(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"text", "text"}, {"JSON", "json"}, {" json ", "json"}, {"", ""},
	} {
		in, want := tt.in, tt.want
		got, err := logging.ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, nil", in, got, err, want)
		}
	}
	for _, in := range []string{"yaml", "logfmt", "txt"} {
		if _, err := logging.ParseFormat(in); err == nil {
			t.Errorf("ParseFormat(%q) succeeded, want error", in)
		}
	}
}

func TestNewJSON(t *testing.T) {
	var buf bytes.Buffer
	logger := logging.New(&buf, logging.FormatJSON, slog.LevelInfo)
	logger.Debug("hidden")
	logger.Info("hello", slog.String("transaction_id", "tx-1"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1 (debug must be filtered): %q", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, lines[0])
	}
	if m["msg"] != "hello" || m["level"] != "INFO" || m["transaction_id"] != "tx-1" {
		t.Fatalf("unexpected record: %v", m)
	}
	assertSnakeCase(t, m)
}

func TestNewTextWithoutTerminalHasNoColors(t *testing.T) {
	var buf bytes.Buffer
	logger := logging.New(&buf, logging.FormatText, slog.LevelDebug)
	logger.Debug("hello", slog.String("principal", "alice"))
	out := buf.String()
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("text output to a non-terminal contains ANSI escapes: %q", out)
	}
	if !strings.Contains(out, "hello") || !strings.Contains(out, "principal=alice") {
		t.Fatalf("unexpected text output: %q", out)
	}
	if json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Fatalf("text format produced JSON: %q", out)
	}
}

func TestNewAutoAndUnknownUseJSONWhenNotATerminal(t *testing.T) {
	for _, format := range []string{logging.FormatAuto, "bogus"} {
		var buf bytes.Buffer
		logging.New(&buf, format, slog.LevelInfo).Info("hello")
		if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
			t.Errorf("format %q: want JSON for a non-terminal, got %q", format, buf.String())
		}
	}
}

func TestLevelForCode(t *testing.T) {
	if got := logging.LevelForCode(0, true); got != slog.LevelInfo {
		t.Errorf("ok: %v", got)
	}
	warn := []connect.Code{
		connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeNotFound,
		connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeAlreadyExists,
		connect.CodeAborted, connect.CodeResourceExhausted, connect.CodeOutOfRange, connect.CodeCanceled,
	}
	for _, c := range warn {
		if got := logging.LevelForCode(c, false); got != slog.LevelWarn {
			t.Errorf("%v: got %v, want WARN", c, got)
		}
	}
	errs := []connect.Code{
		connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss,
		connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeUnimplemented,
	}
	for _, c := range errs {
		if got := logging.LevelForCode(c, false); got != slog.LevelError {
			t.Errorf("%v: got %v, want ERROR", c, got)
		}
	}
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func assertSnakeCase(t *testing.T, m map[string]any) {
	t.Helper()
	for k, v := range m {
		if !snakeCase.MatchString(k) {
			t.Errorf("key %q is not snake_case", k)
		}
		if sub, ok := v.(map[string]any); ok {
			assertSnakeCase(t, sub)
		}
	}
}

// TestLinesEscapeWhatClientsSent: whatever a client put in a value that
// reaches a log line (the review's description here), the line has no
// escape sequence, carriage return, bell, C1 or bidirectional character,
// and is one line, in both formats.
func TestLinesEscapeWhatClientsSent(t *testing.T) {
	const hostile = "\u001b[2J\u001b[31mPAY ADMIN NOW\u001b[0m\nfake line\r\u0007\u009b\u202e"
	for _, format := range []string{logging.FormatText, logging.FormatJSON} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := logging.New(&buf, format, slog.LevelInfo).With("with", hostile).WithGroup("g" + hostile)
			log.Info("unknown procedure "+hostile,
				"str", hostile,
				"err", errors.New(hostile),
				slog.Group("nested", "inner", hostile),
				"stringer", stringer(hostile),
				"slice", []string{hostile},
				"struct", struct{ S string }{hostile},
			)
			out := buf.String()
			if n := strings.Count(out, "\n"); n != 1 || !strings.HasSuffix(out, "\n") {
				t.Errorf("%d lines, want one: %q", n, out)
			}
			for _, r := range strings.TrimSuffix(out, "\n") {
				if printable.Unsafe(r) {
					t.Errorf("line holds %U: %q", r, out)
					break
				}
			}
			if !strings.Contains(out, "PAY ADMIN NOW") || !strings.Contains(out, "fake line") {
				t.Errorf("the text itself is gone: %q", out)
			}
		})
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
