package printable_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/remitpay/remit/internal/printable"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"rent for march", "rent for march"},
		{"Miete für März 😀 👩‍👩‍👧", "Miete für März 😀 👩‍👩‍👧"},
		{`back\slash and "quotes"`, `back\slash and "quotes"`},
		// The review's description.
		{"\u001b[2J\u001b[31mPAY ADMIN NOW\u001b[0m\nfake line\r\u0007", `\x1b[2J\x1b[31mPAY ADMIN NOW\x1b[0m\nfake line\r\a`},
		{"tab\tnul\x00del\x7f", `tab\tnul\x00del\x7f`},
		{"c1 csi \u009b2J", `c1 csi \u009b2J`},
		{"rtl \u202eevil\u202c", `rtl \u202eevil\u202c`},
		{"isolate \u2066x\u2069", `isolate \u2066x\u2069`},
		{"marks \u200e\u200f\u061c", `marks \u200e\u200f\u061c`},
		{"ls \u2028 ps \u2029", `ls \u2028 ps \u2029`},
		{"bad utf-8 \xff\xfe end", `bad utf-8 \xff\xfe end`},
		{"a real \uFFFD replacement character stays", "a real \uFFFD replacement character stays"},
	} {
		got := printable.String(c.in)
		if got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, r := range got {
			if printable.Unsafe(r) {
				t.Errorf("String(%q) still holds %U", c.in, r)
			}
		}
		if !utf8.ValidString(got) {
			t.Errorf("String(%q) = %q is not valid UTF-8", c.in, got)
		}
	}
}

func TestStringKeepsSafeStringsAsIs(t *testing.T) {
	s := strings.Repeat("safe text ", 10)
	if n := testing.AllocsPerRun(100, func() { _ = printable.String(s) }); n != 0 {
		t.Errorf("String of a safe string allocates %v times", n)
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := printable.Writer(&buf)
	in := "Description\t\x1b[2Jhi\r\a\x7f\nnext line\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if want := "Description\t\\x1b[2Jhi\\x0d\\x07\\x7f\nnext line\n"; buf.String() != want {
		t.Errorf("wrote %q, want %q", buf.String(), want)
	}
}

// TestJSON: a JSON document keeps its value, but no C1 or bidirectional
// character reaches the screen raw.
func TestJSON(t *testing.T) {
	in := map[string]any{"d\u202e": []string{"x\u009b31m\u202ey\u2066 Miete für März 😀", "\u007f"}}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := printable.JSON(raw)
	for _, r := range string(out) {
		if printable.Unsafe(r) {
			t.Errorf("printable.JSON left %U in %s", r, out)
		}
	}
	var back any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("not JSON any more: %v: %s", err, out)
	}
	if !reflect.DeepEqual(back, map[string]any{"d\u202e": []any{"x\u009b31m\u202ey\u2066 Miete für März 😀", "\u007f"}}) {
		t.Errorf("value changed: %#v", back)
	}
	if plain := []byte(`{"a":"Miete für März"}`); !bytes.Equal(printable.JSON(plain), plain) {
		t.Errorf("a clean document changed")
	}
}
