package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

func benchModule(b *testing.B, lang, op string, batch int, deadline string) {
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "weir-bench-test-cache")
	wasm, err := buildEmbedded(ctx, cache, lang)
	if err != nil {
		b.Fatal(err)
	}
	cfg := wasmhost.Config{CacheDir: filepath.Join(cache, "wazero"), Limits: wasmhost.Limits{CallTimeout: -1}}
	if deadline != "none" {
		cfg.Limits.CallTimeout = wasmhost.DefaultLimits.CallTimeout
		cfg.WazeroInterrupt = deadline == "wazero"
	}
	rt, err := wasmhost.NewRuntime(ctx, cfg)
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
	in := encodeBatch(nil, records(batch))
	b.ResetTimer()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		if _, err := inst.Call(wasmabi.MethodProcess, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

// go test -bench . ./internal/bench: the rows of `weir bench abi` that the
// targets name, as Go benchmarks (ns/record is the figure).
func BenchmarkGoIdentity1024(b *testing.B)       { benchModule(b, "go", "identity", 1024, "check") }
func BenchmarkGoIdentity1024None(b *testing.B)   { benchModule(b, "go", "identity", 1024, "none") }
func BenchmarkGoIdentity1024Wazero(b *testing.B) { benchModule(b, "go", "identity", 1024, "wazero") }
func BenchmarkCIdentity1024(b *testing.B)        { benchModule(b, "c", "identity", 1024, "check") }
func BenchmarkCIdentity1024None(b *testing.B)    { benchModule(b, "c", "identity", 1024, "none") }
func BenchmarkCIdentity1024Wazero(b *testing.B)  { benchModule(b, "c", "identity", 1024, "wazero") }
func BenchmarkCIdentity1(b *testing.B)           { benchModule(b, "c", "identity", 1, "check") }
func BenchmarkRustIdentity1024(b *testing.B)     { benchModule(b, "rust", "identity", 1024, "check") }
func BenchmarkRustRewrite1024(b *testing.B)      { benchModule(b, "rust", "rewrite", 1024, "check") }
func BenchmarkCRewrite1024(b *testing.B)         { benchModule(b, "c", "rewrite", 1024, "check") }

func BenchmarkEncodeBatch1024(b *testing.B) {
	recs := records(1024)
	buf := encodeBatch(nil, recs)
	for i := 0; i < b.N; i++ {
		buf = encodeBatch(buf[:0], recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/record")
}

// BenchmarkLoadCachedGo: loading the Go module in a new runtime whose
// on-disk compilation cache already holds it.
func BenchmarkLoadCachedGo(b *testing.B) {
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "weir-bench-test-cache")
	wasm, err := buildEmbedded(ctx, cache, "go")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: filepath.Join(cache, "wazero")})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Load(ctx, "go", wasm); err != nil {
			b.Fatal(err)
		}
		rt.Close()
	}
}

func BenchmarkASIdentity1024(b *testing.B) {
	benchModule(b, "assemblyscript", "identity", 1024, "check")
}
func BenchmarkASRewrite1024(b *testing.B) { benchModule(b, "assemblyscript", "rewrite", 1024, "check") }
func BenchmarkGoRewrite1024(b *testing.B) { benchModule(b, "go", "rewrite", 1024, "check") }
