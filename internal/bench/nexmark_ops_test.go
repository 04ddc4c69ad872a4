package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/internal/nexmark"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

// benchNexmarkOp times one Nexmark operator of examples/nexmark in
// WebAssembly over batches of 1024 binary events: the operator's share of
// `weir bench nexmark`, without the engine around it.
func benchNexmarkOp(b *testing.B, op string, deadline bool) {
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "weir-bench-test-cache")
	res, err := modbuild.Build(ctx, modbuild.Options{Dir: "../../examples/nexmark", Out: filepath.Join(b.TempDir(), "nexmark.wasm"), CacheDir: cache})
	if err != nil {
		b.Fatal(err)
	}
	wasm, err := os.ReadFile(res.Out)
	if err != nil {
		b.Fatal(err)
	}
	cfg := wasmhost.Config{CacheDir: filepath.Join(cache, "wazero"), Limits: wasmhost.Limits{CallTimeout: -1}}
	if deadline {
		cfg.Limits.CallTimeout = wasmhost.DefaultLimits.CallTimeout
	}
	rt, err := wasmhost.NewRuntime(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(ctx, "nexmark.wasm", wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, op, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Open(nil); err != nil {
		b.Fatal(err)
	}
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: 1}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	in := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: 1024, Watermark: wasmabi.NoWatermark})
	var ev nexmark.Event
	var val []byte
	for range 1024 {
		g.Next(&ev)
		val = nexmark.AppendBinary(val[:0], &ev)
		in = wasmabi.AppendEntry(in, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: val, Timestamp: ev.DateTime()})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := inst.Call(wasmabi.MethodProcess, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/event")
}

func BenchmarkNexmarkQ0Wasm(b *testing.B)           { benchNexmarkOp(b, "q0", true) }
func BenchmarkNexmarkQ1Wasm(b *testing.B)           { benchNexmarkOp(b, "q1", true) }
func BenchmarkNexmarkQ1WasmNoDeadline(b *testing.B) { benchNexmarkOp(b, "q1", false) }
func BenchmarkNexmarkQ2Wasm(b *testing.B)           { benchNexmarkOp(b, "q2", true) }
