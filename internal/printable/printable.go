// Package printable makes text that someone else typed safe to show on a
// terminal or in a log line.
//
// A payment description, a client id from an old database, an error
// message that quotes a request: none of it may clear a reader's screen,
// colour it, ring its bell, fake a line of output or reorder what the
// reader sees. The API refuses such characters in new descriptions
// (remit.names.v1.text), but what is printed may be older than that rule,
// or come from a server that does not keep it; so every place that prints
// a user-supplied string prints it through [String], and the CLI's output
// passes through [Writer] as a backstop.
package printable

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a reader's screen as is: C0 and
// C1 control characters and DEL (escape sequences, carriage return, bell,
// backspace, line breaks, tabs), the Unicode line and paragraph separators,
// and the bidirectional controls (the marks U+061C, U+200E, U+200F and the
// embeddings, overrides and isolates). It is the set remit.names.v1.text
// refuses.
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // the bidi marks
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// String returns s with every [Unsafe] rune and every byte that is not
// valid UTF-8 written as a Go escape (\x1b, \n, \u202e, \xff), so that
// what a reader sees is exactly what was stored, one line, in order.
// Everything else, letters of every script and emoji included, is kept.
// A string that needs nothing escaped is returned as is.
func String(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case Unsafe(r):
			// QuoteRune gives '\x1b', '\n', '\u202e': keep what is between
			// the quotes.
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe is the byte offset of the first rune String escapes, or -1.
func firstUnsafe(s string) int {
	for i, r := range s {
		if Unsafe(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], string(utf8.RuneError))) {
			return i
		}
	}
	return -1
}

// Writer returns a writer that passes line breaks and tabs through (a
// command's own layout) and writes every other C0 control byte and DEL
// as a Go escape. It is a backstop under the per-field [String] for
// command output: even a field someone forgot to escape cannot start an
// escape sequence, move the cursor back or ring the bell. C1 controls
// and bidirectional characters are multi-byte and need [String].
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct{ w io.Writer }

func (w *writer) Write(p []byte) (int, error) {
	if !slices.ContainsFunc(p, controlByte) {
		return w.w.Write(p)
	}
	out := make([]byte, 0, len(p)+8)
	for _, c := range p {
		if controlByte(c) {
			out = append(out, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			continue
		}
		out = append(out, c)
	}
	if _, err := w.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func controlByte(c byte) bool { return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f }

// JSON rewrites, in the JSON document b, every [Unsafe] rune that JSON
// encoders leave raw (DEL, C1 controls, the line and paragraph separators,
// bidirectional formatting characters: encoding/json and protojson escape
// C0 only) as a \uXXXX escape. Outside strings JSON has no such runes, and
// inside one the escape means the same rune: the document's value is
// unchanged, but a terminal showing it is not driven by it. b is returned
// as is when it needs nothing.
func JSON(b []byte) []byte {
	if !bytes.ContainsFunc(b, jsonUnsafe) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if jsonUnsafe(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

func jsonUnsafe(r rune) bool { return r >= 0x7f && Unsafe(r) }

// JSONWriter returns a writer that passes each Write, one or more whole
// JSON documents, through [JSON].
func JSONWriter(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (w jsonWriter) Write(p []byte) (int, error) {
	if _, err := w.w.Write(JSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
