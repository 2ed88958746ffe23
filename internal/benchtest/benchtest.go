// Package benchtest holds the loop the payment benchmarks share, so that
// their payments/s figures are measured alike.
package benchtest

import "testing"

// Payments runs pay b.N times and reports payments/s beside the usual
// figures. With parallel, it runs 8 goroutines per GOMAXPROCS (16 in flight
// on 2 cores); a failing pay fails the benchmark.
func Payments(b *testing.B, parallel bool, pay func() error) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := pay(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := pay(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}
