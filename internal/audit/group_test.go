package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/remitpay/remit/internal/audit"
)

// TestRecordReturnsAfterItsFsync records from many goroutines at once and
// checks, as each Record returns, that its line is in the file, whole, and
// within the bytes already fsynced.
func TestRecordReturnsAfterItsFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				l.Record(context.Background(), audit.EventPaymentDecided, slog.String("id", id))
				durable, _ := audit.Durable(l)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Error(err)
					return
				}
				want := []byte(`"id":"` + id + `"}` + "\n")
				at := bytes.Index(data, want)
				if at < 0 {
					t.Errorf("%s: line not in the file after Record returned", id)
					return
				}
				if end := int64(at + len(want)); end > durable {
					t.Errorf("%s: line ends at byte %d, only %d fsynced when Record returned", id, end, durable)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(lines), writers*each)
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var got struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("interleaved or invalid line: %v: %.80s", err, line)
		}
		seen[got.ID] = true
	}
	if len(seen) != writers*each {
		t.Errorf("got %d distinct events, want %d", len(seen), writers*each)
	}
	durable, syncs := audit.Durable(l)
	if fi, err := os.Stat(path); err != nil || fi.Size() != durable {
		t.Errorf("file size %v (%v), fsynced %d", fi.Size(), err, durable)
	}
	if syncs > writers*each {
		t.Errorf("%d fsyncs for %d lines", syncs, writers*each)
	}
}

// TestRecordGroupCommit holds the first flush before its write until nine
// more Records have queued their lines: those nine then share one write
// and one fsync, and none of them returns before it.
func TestRecordGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	audit.SetBeforeWrite(l, func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	var wg sync.WaitGroup
	wg.Go(func() { l.Record(context.Background(), audit.EventLoginFailed, slog.Int("n", 0)) })
	<-entered
	var returned sync.Map
	for n := 1; n <= 9; n++ {
		wg.Go(func() {
			l.Record(context.Background(), audit.EventLoginFailed, slog.Int("n", n))
			returned.Store(n, true)
		})
	}
	for audit.Queued(l) < 9 {
		runtime.Gosched()
	}
	returned.Range(func(k, _ any) bool {
		t.Errorf("Record %v returned while its batch was not written", k)
		return true
	})
	close(release)
	wg.Wait()
	if _, syncs := audit.Durable(l); syncs != 2 {
		t.Errorf("%d fsyncs for 10 lines, want 2 (the first, then the nine queued behind it)", syncs)
	}
	if lines := readLines(t, path); len(lines) != 10 {
		t.Errorf("got %d lines, want 10", len(lines))
	}
}

// TestCloseFlushesQueuedLines closes the log while a batch is being written
// and more lines are queued behind it: Close waits, and every line that was
// queued before Close is written.
func TestCloseFlushesQueuedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	audit.SetBeforeWrite(l, func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	var wg sync.WaitGroup
	wg.Go(func() { l.Record(context.Background(), audit.EventLoginFailed) })
	<-entered
	for range 3 {
		wg.Go(func() { l.Record(context.Background(), audit.EventLoginLocked) })
	}
	for audit.Queued(l) < 3 {
		runtime.Gosched()
	}
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := l.Err(); err != nil {
		t.Fatalf("Err = %v: a line queued before Close was lost", err)
	}
	if lines := readLines(t, path); len(lines) != 4 {
		t.Errorf("got %d lines, want 4", len(lines))
	}
}
