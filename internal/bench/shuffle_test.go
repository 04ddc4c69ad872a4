package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A small shuffle: every run moves its records once and in order (the
// consumer checks each sequence number), and the report has the four
// runs and their figures.
func TestShuffleSmall(t *testing.T) {
	rep, err := Shuffle(context.Background(), ShuffleOptions{Records: 100_000, LatencyFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 5 {
		t.Fatalf("%d runs, want 5", len(rep.Runs))
	}
	for i, r := range rep.Runs {
		if r.RecordsPerSec <= 0 || r.MBPerSec <= 0 {
			t.Fatalf("run %d: %+v", i, r)
		}
		if latency := i >= 3; latency != (r.TargetPerSec > 0) || latency && (r.P99Ms < r.P50Ms || r.P50Ms <= 0) {
			t.Fatalf("run %d: %+v", i, r)
		}
	}
	if want := 100_000 * 100 / rep.Runs[0].Seconds / 1e6; rep.Runs[0].MBPerSec < want*0.99 || rep.Runs[0].MBPerSec > want*1.01 {
		t.Fatalf("MB/s %.1f, want %.1f", rep.Runs[0].MBPerSec, want)
	}
	if rep.Ratio != rep.Runs[0].RecordsPerSec/rep.Runs[1].RecordsPerSec {
		t.Fatalf("ratio %v", rep.Ratio)
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"quic", "tls-tcp", "p99 ms", "quic / tls-tcp throughput"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// BenchmarkShuffle runs the whole shuffle benchmark once per b.N and
// reports its figures; -v prints the table.
func BenchmarkShuffle(b *testing.B) {
	for range b.N {
		rep, err := Shuffle(context.Background(), ShuffleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		rep.WriteTable(&out)
		b.Log("\n" + out.String())
		b.ReportMetric(rep.Runs[0].MBPerSec, "quic-MB/s")
		b.ReportMetric(rep.Runs[1].MBPerSec, "tcp-MB/s")
		b.ReportMetric(rep.Ratio, "ratio")
		b.ReportMetric(rep.P99Ms, "p99-ms")
	}
}
