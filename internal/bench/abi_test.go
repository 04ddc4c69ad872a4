package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

func benchModule(b *testing.B, lang, op string, batch int, deadline bool) {
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "weir-bench-test-cache")
	wasm, err := buildEmbedded(ctx, cache, lang)
	if err != nil {
		b.Fatal(err)
	}
	limits := wasmhost.Limits{CallTimeout: -1}
	if deadline {
		limits.CallTimeout = wasmhost.DefaultLimits.CallTimeout
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: filepath.Join(cache, "wazero"), Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(ctx, lang, wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, op, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	recs := records(batch)
	size := len(encodeBatch(nil, recs))
	b.ResetTimer()
	b.SetBytes(int64(size))
	for i := 0; i < b.N; i++ {
		buf, err := inst.Input(size)
		if err != nil {
			b.Fatal(err)
		}
		buf = encodeBatch(buf, recs)
		if _, err := inst.Invoke(wasmabi.MethodProcess, len(buf)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

func BenchmarkGoIdentity1024(b *testing.B)         { benchModule(b, "go", "identity", 1024, false) }
func BenchmarkGoIdentity1024Deadline(b *testing.B) { benchModule(b, "go", "identity", 1024, true) }
func BenchmarkCIdentity1024(b *testing.B)          { benchModule(b, "c", "identity", 1024, false) }
func BenchmarkCIdentity1024Deadline(b *testing.B)  { benchModule(b, "c", "identity", 1024, true) }

func BenchmarkEncodeBatch1024(b *testing.B) {
	recs := records(1024)
	buf := encodeBatch(nil, recs)
	for i := 0; i < b.N; i++ {
		buf = encodeBatch(buf[:0], recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/record")
}
