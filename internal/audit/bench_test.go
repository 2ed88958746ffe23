package audit_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/remitpay/remit/internal/audit"
)

// BenchmarkRecordParallel records payment decisions from many goroutines
// at once, as the gateway does under load. Each Record returns after its
// line is fsynced; run the binary under `strace -f -c -e trace=fsync,fdatasync`
// to count the fsyncs.
func BenchmarkRecordParallel(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	attrs := []slog.Attr{
		slog.String("transaction_id", "0b9e2f0c-4c1e-4f57-9d0e-3f5f6e1f2a3b"), slog.String("decision", "commit"),
		slog.Int64("amount", 1250), slog.String("currency", "eur"),
		slog.Group("payer", slog.String("bank", "bank-a"), slog.String("account_id", "alice")),
		slog.Group("payee", slog.String("bank", "bank-b"), slog.String("account_id", "bob")),
	}
	b.SetParallelism(32) // 32 * GOMAXPROCS concurrent Records
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Record(context.Background(), audit.EventPaymentDecided, attrs...)
		}
	})
	b.StopTimer()
	if err := l.Err(); err != nil {
		b.Fatal(err)
	}
}
