package logtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remitpay/remit/internal/logging/logtest"
)

func TestBuffer(t *testing.T) {
	var b logtest.Buffer
	if got := b.Records(t); len(got) != 0 {
		t.Fatalf("empty buffer has records %v", got)
	}
	log := b.JSONLogger()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { log.Info("hello", "i", i) })
	}
	wg.Wait()
	log.Warn("bye", "who", "alice")
	log.Debug("not logged: below info")

	if got := len(b.Records(t)); got != 21 {
		t.Errorf("%d records, want 21 (concurrent lines must not interleave)", got)
	}
	if got := len(b.WithMsg(t, "hello")); got != 20 {
		t.Errorf("%d hello records, want 20", got)
	}
	bye := b.WithMsg(t, "bye")
	if len(bye) != 1 || bye[0]["who"] != "alice" || bye[0]["level"] != "WARN" {
		t.Errorf("bye records %v", bye)
	}
	if tail := b.Tail(1); !strings.Contains(tail, `"msg":"bye"`) || strings.Contains(tail, "\n") {
		t.Errorf("Tail(1) = %q, want the last line only", tail)
	}
	if got := strings.Count(b.Tail(1000), "\n"); got != 20 {
		t.Errorf("Tail(1000) has %d newlines, want 20 (all 21 lines)", got)
	}
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB

	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestRecordsRejectsNonJSON(t *testing.T) {
	var b logtest.Buffer
	fmt.Fprintln(&b, "plain text")
	ft := &fakeT{TB: t}
	b.Records(ft)
	if !strings.Contains(ft.failed, "not JSON") {
		t.Errorf("Records on a non-JSON line: %q, want a failure", ft.failed)
	}
}

// Wait wakes on the Write that makes its condition true, not on a poll,
// and gives up after the timeout.
func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b logtest.Buffer
		log := b.JSONLogger()
		start := time.Now()
		go func() {
			time.Sleep(time.Second)
			log.Info("first")
			time.Sleep(time.Second)
			log.Info("second")
		}()
		ok := b.Wait(time.Minute, func(string) bool { return len(b.WithMsg(t, "second")) == 1 })
		if !ok || time.Since(start) != 2*time.Second {
			t.Errorf("Wait = %v after %v, want true after exactly 2s (the second write)", ok, time.Since(start))
		}
		start = time.Now()
		if b.Wait(time.Second, func(logs string) bool { return strings.Contains(logs, "third") }) {
			t.Error("Wait for a line never written = true")
		}
		if time.Since(start) != time.Second {
			t.Errorf("Wait gave up after %v, want the 1s timeout", time.Since(start))
		}
	})
}
